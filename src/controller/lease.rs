//! The leader elector: one replica holds the `gpu-slicer` Lease and only it writes. The
//! decision is [`crate::reconcile::lease::decide`]; writes carry the Lease's
//! resourceVersion, so a lost race is a 409 and this replica follows.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, PostParams};
use tokio::sync::watch;

use super::error::Category;
use super::writer::LeaderFlag;
use crate::reconcile::lease::{Decision, decide, next};

#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    /// This replica's identity (the pod name).
    pub identity: String,
    /// How long a Lease holds without renewal.
    pub duration: Duration,
    /// How often the holder renews (and followers look).
    pub renew_every: Duration,
}

pub struct Elector {
    api: Api<Lease>,
    cfg: LeaseConfig,
    flag: LeaderFlag,
}

impl Elector {
    pub fn new(client: Client, cfg: LeaseConfig, flag: LeaderFlag) -> Self {
        Elector {
            api: Api::namespaced(client, &cfg.namespace),
            cfg,
            flag,
        }
    }

    /// One look at the Lease at `now`: acquire, renew or follow. Returns whether this
    /// replica leads afterwards (the flag is set accordingly).
    pub async fn step(&self, now: Timestamp) -> Result<bool, (Category, String)> {
        let err = |e: kube::Error| (Category::of(&e), e.to_string());
        let current = self.api.get_opt(&self.cfg.name).await.map_err(err)?;
        let decision = decide(current.as_ref(), &self.cfg.identity, now);
        let Some(lease) = next(
            current.as_ref(),
            decision,
            &self.cfg.name,
            &self.cfg.namespace,
            &self.cfg.identity,
            self.cfg.duration,
            now,
        ) else {
            self.flag.set(false);
            return Ok(false);
        };
        let pp = PostParams::default();
        let written = if decision == Decision::Create {
            self.api.create(&pp, &lease).await
        } else {
            self.api.replace(&self.cfg.name, &pp, &lease).await
        };
        match written {
            Ok(_) => {
                self.flag.set(true);
                Ok(true)
            }
            Err(e) if matches!(Category::of(&e), Category::Conflict) => {
                // Someone else wrote first.
                self.flag.set(false);
                Ok(false)
            }
            Err(e) => Err(err(e)),
        }
    }

    /// Renews until `shutdown` turns true. A holder that cannot renew for a whole Lease
    /// duration stops writing before another replica may take over.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut last_ok = Instant::now();
        loop {
            match self.step(Timestamp::now()).await {
                Ok(leading) => {
                    last_ok = Instant::now();
                    tracing::debug!(leading, "lease checked");
                }
                Err((category, message)) => {
                    tracing::warn!(%category, %message, "lease check failed");
                    if last_ok.elapsed() >= self.cfg.duration.mul_f64(0.8) {
                        self.flag.set(false);
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.cfg.renew_every) => {}
                _ = shutdown.changed() => {
                    self.flag.set(false);
                    return;
                }
            }
        }
    }
}
