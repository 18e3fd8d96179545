//! The controller's catalog: the base table (embedded or `--catalog`) with live AWS data
//! merged in by a background task, published through a `watch` channel so that a round
//! always reads one consistent catalog.
//!
//! The task refreshes what is past its TTL every tick. AWS trouble is logged, counted
//! (`gpu_slicer_catalog_refresh_failures_total`, `gpu_slicer_aws_requests_total`) and
//! shown as `gpu_slicer_catalog_fallback{kind}` = 1 while a kind comes from the base
//! table; older data keeps being used (its age in `gpu_slicer_catalog_data_age_seconds`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::metrics::{AwsLabels, KindLabel, RefreshLabels};
use super::server::Shared;
use crate::aws::{self, AwsSettings, Clients, LiveSource, Observer};
use crate::catalog::live::KindStatus;
use crate::model::Catalog;

/// Whether and how the controller asks AWS.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    pub settings: AwsSettings,
    /// Only when the credential chain yields credentials (`--live-prices=auto`).
    pub only_with_credentials: bool,
    pub cache_dir: Option<PathBuf>,
    /// How often what is due is refreshed.
    pub tick: Duration,
    /// A ready SDK configuration instead of the standard chain (tests: static
    /// credentials).
    pub sdk_config: Option<aws_config::SdkConfig>,
}

/// Counts every AWS attempt into the controller's metrics.
struct MetricsObserver(Arc<Shared>);

impl Observer for MetricsObserver {
    fn attempt(&self, api: &'static str, outcome: &'static str) {
        self.0
            .metrics
            .aws_requests
            .get_or_create(&AwsLabels {
                api: api.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }
}

fn set_status(shared: &Shared, status: &[KindStatus]) {
    for s in status {
        let kind = KindLabel {
            kind: s.kind.as_str().to_string(),
        };
        shared
            .metrics
            .catalog_data_age
            .get_or_create(&kind)
            .set(s.age_seconds.map_or(-1.0, |a| a as f64));
        shared
            .metrics
            .catalog_fallback
            .get_or_create(&kind)
            .set(i64::from(s.fetched_at.is_none()));
    }
}

/// Starts the live-data task (if `live` is set) and returns the receiver of the catalog
/// in use, which starts as `base`.
pub fn spawn(
    base: Catalog,
    live: Option<LiveConfig>,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) -> watch::Receiver<Arc<Catalog>> {
    let (tx, rx) = watch::channel(Arc::new(base.clone()));
    match live {
        None => {
            for kind in crate::catalog::live::DataKind::ALL {
                shared
                    .metrics
                    .catalog_fallback
                    .get_or_create(&KindLabel {
                        kind: kind.as_str().to_string(),
                    })
                    .set(1);
            }
        }
        Some(cfg) => {
            tokio::spawn(live_loop(base, cfg, tx, shared, shutdown));
        }
    }
    rx
}

async fn live_loop(
    base: Catalog,
    cfg: LiveConfig,
    tx: watch::Sender<Arc<Catalog>>,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    set_status(
        &shared,
        &crate::catalog::live::LiveData::default().status(0, &cfg.settings.ttls),
    );
    let conf = match &cfg.sdk_config {
        Some(c) => c.clone(),
        None => aws::load_sdk_config(&cfg.settings).await,
    };
    if cfg.only_with_credentials && !aws::has_credentials(&conf, Duration::from_secs(10)).await {
        tracing::info!(
            "no AWS credentials found: planning with the catalog's prices (--live-prices=true insists)"
        );
        return;
    }
    let clients = match Clients::from_sdk_config(&conf, &cfg.settings) {
        Ok(c) => c.observe(Arc::new(MetricsObserver(shared.clone()))),
        Err(e) => {
            tracing::warn!(error = %e, "live prices off: planning with the catalog's prices");
            return;
        }
    };
    let (mut source, warning) = LiveSource::new(clients, cfg.cache_dir.as_deref());
    if let Some(w) = warning {
        tracing::warn!(warning = %w, "price cache not used");
    }
    loop {
        let now = aws::now_unix();
        let r = source.refresh(&base, now, false).await;
        for (kind, err) in &r.failed {
            tracing::warn!(%kind, error = %err, "live data not refreshed; using older data or the catalog");
            shared
                .metrics
                .catalog_refresh_failures
                .get_or_create(&RefreshLabels {
                    kind: kind.as_str().to_string(),
                    reason: err.reason.as_str().to_string(),
                })
                .inc();
        }
        for n in &r.notes {
            tracing::info!(note = %n, "live data");
        }
        let merged = source.merged(&base, now);
        set_status(&shared, &merged.status);
        if !r.fetched.is_empty() {
            tracing::info!(
                fetched = ?r.fetched.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
                types = merged.catalog.types.len(),
                prices = %merged.catalog.source.name,
                "live data refreshed"
            );
            for n in &merged.notes {
                tracing::info!(note = %n, "live catalog");
            }
        }
        tx.send_if_modified(|cur| {
            if **cur == merged.catalog {
                false
            } else {
                *cur = Arc::new(merged.catalog);
                true
            }
        });
        tokio::select! {
            _ = tokio::time::sleep(cfg.tick) => {}
            _ = shutdown.changed() => return,
        }
    }
}
