//! The leader elector: one replica holds the `gpu-slicer` Lease and only it writes. The
//! decision is [`crate::reconcile::lease::decide`]; writes carry the Lease's
//! resourceVersion, so a lost race is a 409 and this replica follows.
//!
//! An answer that asks to retry after a while (`Retry-After`, through
//! [`super::writer::honouring_retry_after`]) is waited for before the next look, at most
//! [`crate::backoff::MAX_RETRY_AFTER`], and a holder still stops writing once it could
//! not renew for 0.8 of the Lease's duration, however long it was asked to wait.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, PostParams};
use tokio::sync::watch;
use tokio::time::Instant;

use super::error::Category;
use super::writer::{LeaderFlag, honouring_retry_after, retry_after};
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
            api: Api::namespaced(honouring_retry_after(&client), &cfg.namespace),
            cfg,
            flag,
        }
    }

    /// One look at the Lease at `now`: acquire, renew or follow. Returns whether this
    /// replica leads afterwards (the flag is set accordingly).
    pub async fn step(&self, now: Timestamp) -> Result<bool, (Category, String)> {
        self.look(now)
            .await
            .map_err(|e| (Category::of(&e), e.to_string()))
    }

    /// [`Elector::step`] with the API's own error.
    async fn look(&self, now: Timestamp) -> Result<bool, kube::Error> {
        let current = self.api.get_opt(&self.cfg.name).await?;
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
            Err(e) => Err(e),
        }
    }

    /// Renews until `shutdown` turns true. A holder that cannot renew for a whole Lease
    /// duration stops writing before another replica may take over.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut last_ok = Instant::now();
        // A holder that has not renewed for this long stops writing.
        let give_up = self.cfg.duration.mul_f64(0.8);
        loop {
            let mut wait = self.cfg.renew_every;
            match self.look(Timestamp::now()).await {
                Ok(leading) => {
                    last_ok = Instant::now();
                    tracing::debug!(leading, "lease checked");
                }
                Err(e) => {
                    let (category, message) = (Category::of(&e), e.to_string());
                    tracing::warn!(%category, %message, "lease check failed");
                    wait = wait.max(retry_after(&e).unwrap_or_default());
                }
            }
            // Sleeps `wait`, dropping the flag on the way if the holder's time runs out.
            let woke = Instant::now() + wait;
            loop {
                let expires = last_ok + give_up;
                let now = Instant::now();
                if now >= expires {
                    self.flag.set(false);
                }
                if now >= woke {
                    break;
                }
                let until = if now < expires {
                    woke.min(expires)
                } else {
                    woke
                };
                tokio::select! {
                    _ = tokio::time::sleep_until(until) => {}
                    _ = shutdown.changed() => {
                        self.flag.set(false);
                        return;
                    }
                }
            }
        }
    }
}
