//! Events, best effort: kube-rs's [`Recorder`] on a client whose error answers carry the
//! server's `Retry-After` ([`super::writer::honouring_retry_after`]). An answer that asks
//! to wait pauses every Event until then, at most [`crate::backoff::MAX_RETRY_AFTER`]:
//! the Events in between are dropped (counted, and logged at debug), because Events are
//! notes and the controller's work never waits for them.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tokio::time::Instant;

use super::writer::{honouring_retry_after, retry_after};
use crate::reconcile::notes::Subject;

/// The longest note sent; the API server refuses notes over 1 KiB.
const NOTE_CHARS: usize = 1000;

pub struct Events {
    recorder: Recorder,
    /// No Event is sent before this instant (the server asked to wait).
    paused_until: Mutex<Option<Instant>>,
    /// Events dropped while paused.
    dropped: AtomicU64,
}

impl Events {
    pub fn new(client: &Client, reporter: Reporter) -> Self {
        Events {
            recorder: Recorder::new(honouring_retry_after(client), reporter),
            paused_until: Mutex::new(None),
            dropped: AtomicU64::new(0),
        }
    }

    /// Events dropped so far because the server had asked to wait.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Publishes one Event about `r` (its note cut to 1,000 characters) unless `skip` or
    /// paused; a failure is logged at debug, and one that asks to wait pauses the Events.
    pub async fn send(
        &self,
        skip: bool,
        r: &ObjectReference,
        warning: bool,
        reason: &str,
        note: String,
        action: &str,
    ) {
        if skip {
            return;
        }
        let paused = self
            .paused_until
            .lock()
            .map(|p| p.is_some_and(|t| Instant::now() < t))
            // A poisoned lock only follows a panic elsewhere; sending is harmless.
            .unwrap_or(false);
        if paused {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(reason, "event dropped: the API server asked to wait");
            return;
        }
        let ev = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.into(),
            note: Some(note.chars().take(NOTE_CHARS).collect()),
            action: action.into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, r).await {
            tracing::debug!(error = %e, "event not published");
            if let Some(wait) = retry_after(&e)
                && let Ok(mut p) = self.paused_until.lock()
            {
                *p = Some(Instant::now() + wait);
            }
        }
    }
}

/// A reference to a cluster-scoped object, for an Event's subject.
pub(super) fn object_ref(api_version: &str, kind: &str, name: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some(api_version.into()),
        kind: Some(kind.into()),
        name: Some(name.into()),
        ..ObjectReference::default()
    }
}

/// The reference an Event about `subject` names.
pub(super) fn subject_ref(subject: &Subject) -> ObjectReference {
    match subject {
        Subject::Pod(id) => {
            let (ns, name) = id.split_once('/').unwrap_or(("default", id));
            ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                namespace: Some(ns.into()),
                name: Some(name.into()),
                ..ObjectReference::default()
            }
        }
        Subject::Object {
            api_version,
            kind,
            name,
        } => object_ref(api_version, kind, name),
    }
}
