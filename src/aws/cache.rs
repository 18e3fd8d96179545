//! Refreshing live data by TTL, the CLI's on-disk cache, and [`LiveSource`], which the
//! CLI and the controller both use.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{CallError, Clients, Reason};
use crate::catalog::live::{self, DataKind, Ec2Type, Fetched, LiveData, Merged};
use crate::model::Catalog;

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// What one refresh did.
#[derive(Debug, Default)]
pub struct Refresh {
    /// Kinds fetched now.
    pub fetched: Vec<DataKind>,
    /// Kinds that were due but could not be fetched (the old data, if any, stays in use).
    pub failed: Vec<(DataKind, CallError)>,
    /// Things skipped while reading answers.
    pub notes: Vec<String>,
}

fn empty(api: &'static str, what: &str) -> CallError {
    CallError {
        api,
        reason: Reason::BadResponse,
        attempts: 1,
        message: format!("the answer had no {what}"),
        cause: None,
    }
}

/// The families of the base catalog, sorted.
fn families(base: &Catalog) -> Vec<String> {
    base.types
        .iter()
        .map(|t| t.family.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Fetches every kind that is missing or past its TTL (every kind with `force`). A kind
/// whose fetch fails, or whose answer is empty, keeps its old data. Offerings, on-demand
/// and spot prices are fetched concurrently after the instance types (offerings and spot
/// prices are asked for the GPU types found, else for the base catalog's types).
pub async fn refresh(
    clients: &Clients,
    data: &mut LiveData,
    base: &Catalog,
    now: i64,
    force: bool,
) -> Refresh {
    let ttls = clients.settings.ttls;
    let due = |d: &LiveData, k: DataKind| force || d.needs_refresh(k, now, &ttls);
    let fams = families(base);
    let mut r = Refresh::default();
    if data.region != clients.region {
        *data = LiveData::new(&clients.region);
    }

    if due(data, DataKind::InstanceTypes) {
        match clients.instance_types(&fams).await {
            Ok(v) if v.iter().any(Ec2Type::has_gpu) => {
                data.instances = Some(Fetched {
                    fetched_at: now,
                    data: v,
                });
                r.fetched.push(DataKind::InstanceTypes);
            }
            Ok(_) => r.failed.push((
                DataKind::InstanceTypes,
                empty("ec2:DescribeInstanceTypes", "GPU instance type"),
            )),
            Err(e) => r.failed.push((DataKind::InstanceTypes, e)),
        }
    }
    let gpu_types: Vec<String> = match &data.instances {
        Some(f) => f
            .data
            .iter()
            .filter(|t| t.has_gpu())
            .map(|t| t.name.clone())
            .collect(),
        None => base.types.iter().map(|t| t.name.clone()).collect(),
    };

    let offerings = async {
        if due(data, DataKind::Offerings) {
            Some(clients.offerings(&gpu_types).await)
        } else {
            None
        }
    };
    let on_demand = async {
        if due(data, DataKind::OnDemandPrices) {
            Some(clients.on_demand_prices().await)
        } else {
            None
        }
    };
    let spot = async {
        if due(data, DataKind::SpotPrices) {
            Some(clients.spot_prices(&gpu_types).await)
        } else {
            None
        }
    };
    let (offerings, on_demand, spot) = tokio::join!(offerings, on_demand, spot);

    match offerings {
        Some(Ok(v)) if !v.is_empty() => {
            data.offerings = Some(Fetched {
                fetched_at: now,
                data: v,
            });
            r.fetched.push(DataKind::Offerings);
        }
        Some(Ok(_)) => r.failed.push((
            DataKind::Offerings,
            empty("ec2:DescribeInstanceTypeOfferings", "offering"),
        )),
        Some(Err(e)) => r.failed.push((DataKind::Offerings, e)),
        None => {}
    }
    match on_demand {
        Some(Ok((v, note))) => {
            r.notes.extend(note);
            if v.is_empty() {
                r.failed.push((
                    DataKind::OnDemandPrices,
                    empty("pricing:GetProducts", "on-demand price"),
                ));
            } else {
                data.on_demand = Some(Fetched {
                    fetched_at: now,
                    data: v,
                });
                r.fetched.push(DataKind::OnDemandPrices);
            }
        }
        Some(Err(e)) => r.failed.push((DataKind::OnDemandPrices, e)),
        None => {}
    }
    match spot {
        Some(Ok((v, note))) => {
            r.notes.extend(note);
            if v.is_empty() {
                r.failed.push((
                    DataKind::SpotPrices,
                    empty("ec2:DescribeSpotPriceHistory", "spot price"),
                ));
            } else {
                data.spot = Some(Fetched {
                    fetched_at: now,
                    data: v,
                });
                r.fetched.push(DataKind::SpotPrices);
            }
        }
        Some(Err(e)) => r.failed.push((DataKind::SpotPrices, e)),
        None => {}
    }
    r
}

/// Version of the on-disk cache format.
const CACHE_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct CacheFile {
    version: u32,
    data: LiveData,
}

/// The cache file of a region and endpoints, in `dir`: endpoint overrides get their own
/// file (a test server's data never poisons the real cache).
pub fn cache_file(
    dir: &Path,
    region: &str,
    endpoint_url: Option<&str>,
    pricing_endpoint_url: Option<&str>,
) -> PathBuf {
    // FNV-1a over the endpoints: a stable name, not a security property.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in endpoint_url
        .unwrap_or("")
        .bytes()
        .chain([0])
        .chain(pricing_endpoint_url.unwrap_or("").bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let safe: String = region
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if endpoint_url.is_none() && pricing_endpoint_url.is_none() {
        dir.join(format!("live-{safe}.json"))
    } else {
        dir.join(format!("live-{safe}-{h:016x}.json"))
    }
}

/// Why a cache file could not be read or written. Each names the file; the I/O or JSON
/// error underneath is the [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The file exists but cannot be read.
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not a cache's JSON.
    #[error("{path}: not a gpu-slicer price cache: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// Another version of gpu-slicer wrote it.
    #[error("{path}: cache version {version} (this gpu-slicer writes {CACHE_VERSION}); ignored")]
    Version { path: PathBuf, version: u32 },
    /// The data cannot be serialised.
    #[error("{path}: {source}")]
    Serialise {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// The directory, the temporary file or the rename failed.
    #[error("{path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Reads a cache file: `Ok(None)` if it does not exist, `Err` (naming the file) if it
/// cannot be read or parsed, or is another version.
pub fn load_cache(path: &Path) -> Result<Option<LiveData>, CacheError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(CacheError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let f: CacheFile = serde_json::from_str(&text).map_err(|source| CacheError::Parse {
        path: path.to_path_buf(),
        source,
    })?;
    if f.version != CACHE_VERSION {
        return Err(CacheError::Version {
            path: path.to_path_buf(),
            version: f.version,
        });
    }
    Ok(Some(f.data))
}

/// Writes a cache file atomically (a temporary file renamed over it).
pub fn save_cache(path: &Path, data: &LiveData) -> Result<(), CacheError> {
    let err = |source: std::io::Error| CacheError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let text = serde_json::to_string(&CacheFile {
        version: CACHE_VERSION,
        data: data.clone(),
    })
    .map_err(|source| CacheError::Serialise {
        path: path.to_path_buf(),
        source,
    })?;
    let tmp = path.with_extension(format!("json.tmp{}", std::process::id()));
    std::fs::write(&tmp, text).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// Live data for one region: the clients, what was fetched, and where it is cached.
pub struct LiveSource {
    clients: Clients,
    data: LiveData,
    cache: Option<PathBuf>,
}

impl LiveSource {
    /// A source; with a cache directory, earlier data for the same region and endpoints
    /// is loaded from it. Returns a warning for a cache that could not be read.
    pub fn new(clients: Clients, cache_dir: Option<&Path>) -> (Self, Option<String>) {
        let s = clients.settings();
        let cache = cache_dir.map(|d| {
            cache_file(
                d,
                clients.region(),
                s.endpoint_url.as_deref(),
                s.pricing_endpoint_url.as_deref(),
            )
        });
        let (data, warning) = match cache.as_deref().map(load_cache) {
            Some(Ok(Some(d))) if d.region == clients.region() => (d, None),
            Some(Err(e)) => (LiveData::new(clients.region()), Some(e.to_string())),
            _ => (LiveData::new(clients.region()), None),
        };
        (
            LiveSource {
                clients,
                data,
                cache,
            },
            warning,
        )
    }

    pub fn clients(&self) -> &Clients {
        &self.clients
    }

    pub fn data(&self) -> &LiveData {
        &self.data
    }

    /// Refreshes what is due and, if anything was fetched, writes the cache. A cache
    /// write failure becomes a note.
    pub async fn refresh(&mut self, base: &Catalog, now: i64, force: bool) -> Refresh {
        let mut r = refresh(&self.clients, &mut self.data, base, now, force).await;
        if !r.fetched.is_empty()
            && let Some(path) = &self.cache
            && let Err(e) = save_cache(path, &self.data)
        {
            r.notes.push(format!("price cache not written: {e}"));
        }
        r
    }

    /// The base catalog with the live data merged in, at `now`.
    pub fn merged(&self, base: &Catalog, now: i64) -> Merged {
        live::merge(base, &self.data, now, &self.clients.settings().ttls)
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn cache_errors_name_the_file_and_keep_their_cause() {
        let dir = std::env::temp_dir().join(format!("gpu-slicer-cache-{}", std::process::id()));
        let path = dir.join("live-us-east-1.json");
        assert!(matches!(load_cache(&path), Ok(None)), "no file yet");

        let data = LiveData::new("us-east-1");
        save_cache(&path, &data).expect("written");
        assert!(matches!(load_cache(&path), Ok(Some(_))));

        std::fs::write(&path, "{").expect("written");
        let e = load_cache(&path).expect_err("not JSON");
        let json = serde_json::from_str::<CacheFile>("{")
            .err()
            .map(|j| j.to_string());
        assert_eq!(
            Some(e.to_string()),
            json.map(|j| format!("{}: not a gpu-slicer price cache: {j}", path.display()))
        );
        assert!(e.source().is_some_and(|s| s.is::<serde_json::Error>()));

        let other = serde_json::to_string(&CacheFile {
            version: 7,
            data: data.clone(),
        })
        .expect("serialised");
        std::fs::write(&path, other).expect("written");
        let v = load_cache(&path).expect_err("another version");
        assert_eq!(
            v.to_string(),
            format!(
                "{}: cache version 7 (this gpu-slicer writes {CACHE_VERSION}); ignored",
                path.display()
            )
        );
        assert!(v.source().is_none());

        // A directory where the file should be: reading it fails with the I/O error.
        std::fs::remove_file(&path).expect("removed");
        std::fs::create_dir_all(&path).expect("a directory");
        let e = load_cache(&path).expect_err("a directory");
        assert!(matches!(e, CacheError::Read { .. }), "{e}");
        assert!(e.source().is_some_and(|s| s.is::<std::io::Error>()));
        let e = save_cache(&path, &data).expect_err("renaming over a directory");
        assert!(matches!(e, CacheError::Write { .. }), "{e}");
        assert!(
            e.to_string().starts_with(&format!("{}: ", path.display())),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).expect("cleaned up");
    }
}
