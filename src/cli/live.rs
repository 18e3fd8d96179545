//! `--live-prices` for the one-shot commands (plan, render, catalog): fetch what is due,
//! merge, and say on stderr what came from where. Never fails: AWS trouble becomes a
//! warning and the cache or the base catalog is used.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

#[cfg(feature = "aws")]
use super::usage;
use super::{Failure, LiveWhen, parse_duration};
#[cfg(feature = "aws")]
use crate::aws::{self, AwsSettings, Clients, LiveSource};
#[cfg(feature = "aws")]
use crate::catalog::live::Merged;
use crate::catalog::live::{DEFAULT_PRICING_REGION, KindStatus, TypeOrigin};
use crate::model::Catalog;

/// The flags shared by every command that reads the catalog.
#[derive(Debug, clap::Args)]
pub struct LiveFlags {
    /// Ask AWS for instance data and prices: EC2 DescribeInstanceTypes,
    /// DescribeInstanceTypeOfferings and DescribeSpotPriceHistory, and the Pricing API's
    /// GetProducts. AWS trouble never fails a command: the cache, then the catalog, is used.
    /// plan, render, catalog: off unless given (`--live-prices` alone means true);
    /// run: auto (on when AWS credentials are found).
    #[arg(long, value_enum, value_name = "WHEN", num_args = 0..=1, default_missing_value = "true")]
    pub live_prices: Option<LiveWhen>,
    /// AWS region of the instance data and prices (default: the AWS chain's, e.g. AWS_REGION).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// EC2 endpoint (testing, VPC endpoints), e.g. http://127.0.0.1:5000.
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// Pricing API endpoint.
    #[arg(long, value_name = "URL")]
    pub pricing_endpoint_url: Option<String>,
    /// Region of the Pricing API endpoint (it is served from us-east-1, eu-central-1 and ap-south-1).
    #[arg(long, value_name = "REGION", default_value = DEFAULT_PRICING_REGION)]
    pub pricing_region: String,
    /// AWS requests per second (governor quota over every attempt; burst the same).
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub aws_requests_per_second: u32,
    /// Timeout of one AWS request attempt.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub aws_timeout: Duration,
    /// Attempts per AWS call (throttling, 5xx, timeouts and refused connections are retried).
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub aws_max_attempts: u32,
    /// Directory of the live-data cache (default: $XDG_CACHE_HOME/gpu-slicer or
    /// ~/.cache/gpu-slicer for plan/render/catalog; none for run).
    #[arg(long, value_name = "DIR", conflicts_with = "no_price_cache")]
    pub price_cache: Option<PathBuf>,
    /// Keep live data in memory only.
    #[arg(long)]
    pub no_price_cache: bool,
}

#[cfg(feature = "aws")]
impl LiveFlags {
    pub fn settings(&self) -> Result<AwsSettings, Failure> {
        let rps = std::num::NonZeroU32::new(self.aws_requests_per_second)
            .ok_or_else(|| usage("--aws-requests-per-second must be at least 1"))?;
        if self.aws_max_attempts == 0 {
            return Err(usage("--aws-max-attempts must be at least 1"));
        }
        if self.aws_timeout.is_zero() {
            return Err(usage("--aws-timeout must be more than 0"));
        }
        for (flag, url) in [
            ("--endpoint-url", &self.endpoint_url),
            ("--pricing-endpoint-url", &self.pricing_endpoint_url),
        ] {
            if let Some(u) = url
                && !(u.starts_with("http://") || u.starts_with("https://"))
            {
                return Err(usage(format!("{flag}: {u:?} is not an http(s) URL")));
            }
        }
        Ok(AwsSettings {
            region: self.region.clone(),
            endpoint_url: self.endpoint_url.clone(),
            pricing_endpoint_url: self.pricing_endpoint_url.clone(),
            pricing_region: self.pricing_region.clone(),
            requests_per_second: rps,
            burst: rps,
            attempt_timeout: self.aws_timeout,
            max_attempts: self.aws_max_attempts,
            ..AwsSettings::default()
        })
    }

    /// The cache directory: the flag, else (for one-shot commands) the user cache dir.
    pub fn cache_dir(&self, one_shot: bool) -> Option<PathBuf> {
        if self.no_price_cache {
            return None;
        }
        if let Some(d) = &self.price_cache {
            return Some(d.clone());
        }
        if !one_shot {
            return None;
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|v| !v.is_empty())
                    .map(|h| PathBuf::from(h).join(".cache"))
            })?;
        Some(base.join("gpu-slicer"))
    }
}

/// What `catalog` shows beside the types when live data was asked for.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveReport {
    pub region: String,
    /// Unix seconds at merge time (ages are relative to it).
    pub now: i64,
    pub status: Vec<KindStatus>,
    pub origins: BTreeMap<String, TypeOrigin>,
    pub notes: Vec<String>,
    pub warnings: Vec<String>,
}

/// Without the `aws` feature there is no AWS client: asking for live data is a usage
/// error that says how to get it.
#[cfg(not(feature = "aws"))]
pub fn apply(_: &LiveFlags, _: Catalog) -> Result<(Catalog, Option<LiveReport>), Failure> {
    Err(super::usage(
        "--live-prices: this gpu-slicer was built without the `aws` feature \
         (cargo build --features aws)",
    ))
}

/// Fetches (what is due), merges into `base` and reports on stderr. `Ok((base, None))`
/// when the region or credentials cannot be found; never an error for AWS trouble.
#[cfg(feature = "aws")]
pub fn apply(flags: &LiveFlags, base: Catalog) -> Result<(Catalog, Option<LiveReport>), Failure> {
    let settings = flags.settings()?;
    let cache_dir = flags.cache_dir(true);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| usage(format!("cannot start the async runtime: {e}")))?;
    let auto = flags.live_prices == Some(LiveWhen::Auto);
    let result = rt.block_on(async {
        let conf = aws::load_sdk_config(&settings).await;
        if auto && !aws::has_credentials(&conf, Duration::from_secs(10)).await {
            return Ok(None);
        }
        let clients = match Clients::from_sdk_config(&conf, &settings) {
            Ok(c) => c,
            Err(e) => return Err(e.to_string()),
        };
        let (mut source, cache_warning) = LiveSource::new(clients, cache_dir.as_deref());
        let now = aws::now_unix();
        let refresh = source.refresh(&base, now, false).await;
        let region = source.clients().region().to_string();
        Ok(Some((
            source.merged(&base, now),
            refresh,
            cache_warning,
            now,
            region,
        )))
    });
    let (merged, refresh, cache_warning, now, region) = match result {
        Ok(Some(v)) => v,
        Ok(None) => {
            eprintln!(
                "note: live prices: no AWS credentials found (--live-prices=auto); using {} (observed {})",
                base.source.name, base.source.observed
            );
            return Ok((base, None));
        }
        Err(e) => {
            eprintln!(
                "warning: live prices: {e}; using {} (observed {})",
                base.source.name, base.source.observed
            );
            return Ok((base, None));
        }
    };
    let mut warnings: Vec<String> = cache_warning.into_iter().collect();
    for (kind, err) in &refresh.failed {
        warnings.push(format!("{kind}: {err}"));
    }
    warnings.extend(refresh.notes.iter().cloned());
    let Merged {
        catalog,
        origins,
        status,
        notes,
    } = merged;
    for w in &warnings {
        eprintln!("warning: live prices: {w}");
    }
    for s in &status {
        match (s.fetched_at, s.stale) {
            (None, _) => eprintln!(
                "warning: live prices: no {} from AWS; using {} (observed {})",
                s.kind, base.source.name, base.source.observed
            ),
            (Some(_), true) => eprintln!(
                "warning: live prices: {} are stale ({} old), used anyway",
                s.kind,
                age(s.age_seconds.unwrap_or(0))
            ),
            _ => {}
        }
    }
    for n in &notes {
        eprintln!("note: live prices: {n}");
    }
    Ok((
        catalog,
        Some(LiveReport {
            region,
            now,
            status,
            origins,
            notes,
            warnings,
        }),
    ))
}

/// `42s`, `5m`, `3h12m`, `2d4h`.
pub fn age(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{}h", s / 86_400, (s % 86_400) / 3600),
    }
}
