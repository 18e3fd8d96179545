//! The Events a round calls for, as data: which object, which reason, what note. The
//! controller publishes them afterwards (`controller::run`), de-duplicated so an object
//! hears of a decision once, and with pod notes capped per round; nothing here sends.
//!
//! Every Event gpu-slicer writes about a round is listed by [`Reason`], so the README's
//! Event table and this enum can be checked against each other.

use std::fmt;
use std::time::Duration;

use serde_json::Value;

use super::cache::Snapshot;
use super::round::Outcome;
use crate::model::contract::SLICING_PENDING_TAINT;
use crate::model::{DemandItem, Pool};

/// Why an Event is published: its `reason`, and whether it is a Warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// A pod's place in the plan (a new node, or one launched earlier); a pool's new
    /// nodes and their cost.
    Planned,
    /// A pod the plan could not place, and why.
    Unplaced,
    /// A pod shares a time-sliced GPU and declares no GPU memory.
    UndeclaredGpuMemory,
    /// A pod's annotations or requests cannot be read.
    InvalidInput,
    /// A pool's annotations, limits or device-plugin config cannot be read or rendered.
    InvalidConfiguration,
    /// The budget guard refused the plan.
    PlanRefused,
    /// What the round settled for a pool's sharing (MPS its AMI cannot run).
    SharingStrategy,
    /// A node did not advertise GPUs × replicas within the slicing timeout.
    SlicingTimeout,
}

impl Reason {
    /// The Event's `reason` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Planned => "Planned",
            Reason::Unplaced => "Unplaced",
            Reason::UndeclaredGpuMemory => "UndeclaredGpuMemory",
            Reason::InvalidInput => "InvalidInput",
            Reason::InvalidConfiguration => "InvalidConfiguration",
            Reason::PlanRefused => "PlanRefused",
            Reason::SharingStrategy => "SharingStrategy",
            Reason::SlicingTimeout => "SlicingTimeout",
        }
    }

    /// Warning, or Normal.
    pub fn is_warning(self) -> bool {
        !matches!(self, Reason::Planned | Reason::SharingStrategy)
    }

    /// The note slot a reason fills on its subject: a later note in the same slot
    /// replaces the earlier one, and only a changed note is published again. A pod's
    /// fate (planned, unplaced, unreadable) is one slot, so a pod hears when its fate
    /// changes; the undeclared-memory warning is kept apart from it.
    fn slot(self) -> Reason {
        match self {
            Reason::Unplaced | Reason::InvalidInput => Reason::Planned,
            r => r,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an Event is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Subject {
    /// A pod, by `namespace/name`.
    Pod(String),
    /// A cluster-scoped object: a NodePool, Provisioner or Node.
    Object {
        api_version: String,
        kind: String,
        name: String,
    },
}

impl Subject {
    fn node(name: &str) -> Subject {
        Subject::Object {
            api_version: "v1".into(),
            kind: "Node".into(),
            name: name.into(),
        }
    }

    /// A pool named as `NodePool name` or `Provisioner name` (how snapshots, render
    /// errors and sharing notes name them), with the apiVersion of the pool as cached,
    /// or the one its kind is served at by default.
    fn pool(object: &str, pools: &[(Pool, Value)]) -> Option<Subject> {
        let (kind, name) = object.split_once(' ')?;
        let api_version = pools
            .iter()
            .find(|(p, _)| p.name == name)
            .and_then(|(_, raw)| raw.get("apiVersion").and_then(Value::as_str))
            .unwrap_or(match kind {
                "Provisioner" => "karpenter.sh/v1alpha5",
                _ => "karpenter.sh/v1",
            });
        Some(Subject::Object {
            api_version: api_version.into(),
            kind: kind.into(),
            name: name.into(),
        })
    }

    /// A cached pool object.
    fn of_pool(pool: &Pool, raw: &Value) -> Subject {
        let field = |f: &str, default: &str| {
            raw.get(f)
                .and_then(Value::as_str)
                .unwrap_or(default)
                .to_string()
        };
        Subject::Object {
            api_version: field("apiVersion", "karpenter.sh/v1"),
            kind: field("kind", "NodePool"),
            name: pool.name.clone(),
        }
    }

    /// The pod's `namespace/name`, for pod notes.
    pub fn pod(&self) -> Option<&str> {
        match self {
            Subject::Pod(id) => Some(id),
            Subject::Object { .. } => None,
        }
    }
}

/// One Event to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    pub subject: Subject,
    pub reason: Reason,
    pub text: String,
}

impl Note {
    fn new(subject: Subject, reason: Reason, text: impl Into<String>) -> Note {
        Note {
            subject,
            reason,
            text: text.into(),
        }
    }

    /// The note's slot: its subject and [`Reason::slot`]. The publisher remembers the
    /// last text per slot.
    pub fn slot(&self) -> (Subject, Reason) {
        (self.subject.clone(), self.reason.slot())
    }
}

/// The Events a round calls for, in publishing order: unreadable pods and pools, plan
/// refusals and render errors, sharing decisions, each pending pod's fate, and each
/// pool's new nodes.
pub fn round_notes(snap: &Snapshot, out: &Outcome) -> Vec<Note> {
    let mut notes = Vec::new();
    for (pod, why) in &snap.pod_errors {
        notes.push(Note::new(
            Subject::Pod(pod.clone()),
            Reason::InvalidInput,
            format!("gpu-slicer cannot plan this pod: {why}"),
        ));
    }
    for (object, why) in &snap.pool_errors {
        if let Some(s) = Subject::pool(object, &snap.pools) {
            notes.push(Note::new(s, Reason::InvalidConfiguration, why.clone()));
        }
    }
    for r in &out.refusals {
        // A pool's refusal goes to that pool (planned from the defaults, it may not be
        // cached); a fleet-wide one to every pool.
        let targets: Vec<Subject> = match r.pool() {
            Some(name) => match snap.pools.iter().find(|(p, _)| p.name == name) {
                Some((p, raw)) => vec![Subject::of_pool(p, raw)],
                None => Subject::pool(&format!("NodePool {name}"), &snap.pools)
                    .into_iter()
                    .collect(),
            },
            None => snap
                .pools
                .iter()
                .map(|(p, raw)| Subject::of_pool(p, raw))
                .collect(),
        };
        for s in targets {
            notes.push(Note::new(s, Reason::PlanRefused, r.to_string()));
        }
    }
    if let Some(e) = &out.error
        && let Some(s) = Subject::pool(&e.object, &snap.pools)
    {
        notes.push(Note::new(s, Reason::InvalidConfiguration, e.to_string()));
    }
    for n in &out.notes {
        if let Some((object, _)) = n.split_once(": ")
            && let Some(s) = Subject::pool(object, &snap.pools)
        {
            notes.push(Note::new(s, Reason::SharingStrategy, n.clone()));
        }
    }
    notes.extend(pod_notes(out, &snap.pending));
    for (pool, raw) in &snap.pools {
        let nodes: Vec<_> = out
            .plan
            .nodes
            .iter()
            .filter(|n| n.node_pool == pool.name)
            .collect();
        if nodes.is_empty() {
            continue;
        }
        let cost: f64 = nodes.iter().map(|n| n.hourly_price).sum();
        notes.push(Note::new(
            Subject::of_pool(pool, raw),
            Reason::Planned,
            format!("{} new node(s), ${cost:.3}/h", nodes.len()),
        ));
    }
    notes
}

/// Each pending pod's fate: planned onto a new node or one launched earlier, or
/// unplaced and why; and a warning for pods that share a time-sliced GPU without
/// declaring their GPU memory.
pub fn pod_notes(out: &Outcome, pending: &[DemandItem]) -> Vec<Note> {
    let mut notes = Vec::new();
    for n in &out.plan.nodes {
        for p in &n.pods {
            notes.push(Note::new(
                Subject::Pod(p.clone()),
                Reason::Planned,
                format!(
                    "planned onto a new {} ({} {}, {} replicas per GPU) in pool {}",
                    n.instance_type,
                    n.capacity_type.as_str(),
                    n.profile,
                    n.replicas_per_gpu,
                    n.node_pool
                ),
            ));
        }
    }
    for (p, node) in &out.onto_fleet {
        notes.push(Note::new(
            Subject::Pod(p.clone()),
            Reason::Planned,
            format!("expected on node {node}, launched earlier"),
        ));
    }
    for u in &out.plan.unplaced {
        notes.push(Note::new(
            Subject::Pod(u.pod.clone()),
            Reason::Unplaced,
            u.reason.to_string(),
        ));
    }
    for (p, others) in crate::planner::undeclared::undeclared_memory(pending, &out.plan.nodes) {
        notes.push(Note::new(
            Subject::Pod(p.to_string()),
            Reason::UndeclaredGpuMemory,
            crate::planner::undeclared::message(others),
        ));
    }
    notes
}

/// The Event for a node still not sliced as planned after `waited`.
pub fn slicing_timeout(node: &str, expected: u64, actual: u64, waited: Duration) -> Note {
    Note::new(
        Subject::node(node),
        Reason::SlicingTimeout,
        format!(
            "node advertises {actual} nvidia.com/gpu after {}s, expected {expected} \
             (GPUs x replicas); it stays tainted {SLICING_PENDING_TAINT}. Check the \
             device plugin's config for this node's profile label",
            waited.as_secs()
        ),
    )
}

#[cfg(test)]
mod tests;
