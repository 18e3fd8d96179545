//! Defragmentation in the cluster: the I/O around the pure `reconcile::repack`. Every loop
//! [`Repacker::progress`] reads the moves from the live NodeClaims and finishes (deletes
//! the replaced NodeClaims once every replacement is Ready and sliced) or rolls back
//! (deletes the replacements, keeps the old nodes); every `--repack-interval`
//! [`Repacker::propose`] asks `repack::propose` for one move and launches its replacement
//! NodeClaims. Writes go through the one [`Writer`] (leader only, uid preconditions);
//! Events and metrics say what happened.
//!
//! What it deletes, and why that is safe: only NodeClaims that `repack::may_delete`
//! allows (gpu-slicer created them, or Karpenter launched them for a NodePool gpu-slicer
//! owns), each with its uid as a precondition; Karpenter's termination then cordons and
//! drains the node with PDBs honoured. A move's state lives in the API (labels and
//! annotations on the replacements), so a new leader takes a move over where the old one
//! left it, and the rate limit (`--repack-max-nodes-per-hour`) counts the moves whose
//! replacements were created in the last hour from the API too. One move at a time: no
//! proposal while a move is in progress, so two moves never count on the same free room.
//! A move whose pods all fit onto nodes that stay has no replacements: its NodeClaims are
//! deleted at once, and only this replica's memory counts it against the rate limit.
//! The pure half (reading moves off NodeClaims, rendering a move's replacements) is in
//! `repack/claims.rs`.
//!
//! Size (~625 code lines): progress and proposal share the writer, the Events and the
//! move's state in the API; the pure half is already `repack/claims.rs` and
//! `reconcile::repack`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::events::Events;
use k8s_openapi::api::core::v1::ObjectReference;
use serde_json::Value;

mod claims;

pub use claims::replacement_claims;
use claims::{age_s, claim_ref, move_id, name_of, replaced_last_hour, replaces, round_pools};

use super::metrics::{Metrics, ReasonLabel};
use super::writer::{LeaderFlag, Writer};
use crate::guard;
use crate::model::Catalog;
use crate::reconcile::cache::{Cache, Snapshot, SnapshotSettings, WatchedKind};
use crate::reconcile::repack::{self, Move, Proposal, Step};
use crate::reconcile::round;
use crate::reconcile::{Actions, Deletion, ObjectKey, is_owned};

/// How the controller repacks (`--repack-*`).
#[derive(Debug, Clone, PartialEq)]
pub struct RepackConfig {
    /// How often a move is proposed; `None` turns repacking off (`--repack-interval 0s`).
    pub interval: Option<Duration>,
    /// `--repack-min-saving` and `--repack-min-pod-age`.
    pub settings: repack::Settings,
    /// `--repack-max-nodes-per-hour`: nodes replaced in any hour.
    pub max_nodes_per_hour: usize,
    /// `--repack-ready-timeout`: replacements not Ready and sliced after this long roll
    /// the move back.
    pub ready_timeout: Duration,
}

impl Default for RepackConfig {
    fn default() -> Self {
        RepackConfig {
            interval: Some(Duration::from_secs(3600)),
            settings: repack::Settings::default(),
            max_nodes_per_hour: 10,
            ready_timeout: Duration::from_secs(900),
        }
    }
}

/// What repacking writes and publishes through.
pub struct Io<'a> {
    pub writer: &'a Writer,
    pub events: &'a Events,
    pub metrics: &'a Metrics,
    pub leader: &'a LeaderFlag,
    /// `--dry-run`: propose and log, write nothing.
    pub dry_run: bool,
}

impl Io<'_> {
    async fn event(&self, r: &ObjectReference, warning: bool, reason: &str, note: String) {
        self.events
            .send(
                self.dry_run || !self.leader.is_leader(),
                r,
                warning,
                reason,
                note,
                "Repack",
            )
            .await;
    }

    fn count(&self, outcome: &str) {
        Metrics::count_outcome(&self.metrics.repack_moves, outcome);
    }
}

/// What one [`Repacker::progress`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    /// Moves whose replaced NodeClaims were deleted now.
    pub finished: Vec<String>,
    /// Moves whose replacements were deleted now.
    pub rolled_back: Vec<String>,
    /// Moves still launching.
    pub waiting: Vec<String>,
    /// NodeClaims deleted.
    pub deleted: Vec<ObjectKey>,
}

/// What one [`Repacker::propose`] did.
#[derive(Debug, Default)]
pub struct Proposed {
    /// Why nothing was proposed (not the leader, a move in progress, …).
    pub skipped: Option<String>,
    pub proposal: Option<Proposal>,
    /// The id of the move started (dry-run: proposed).
    pub started: Option<String>,
    /// The replacement NodeClaims applied (dry-run: that would be).
    pub replacements: Vec<Value>,
    /// Replacements were applied: plan again now, so the device-plugin ConfigMap and the
    /// pools count them.
    pub force_round: bool,
}

/// The controller's repacking state. Everything a move needs is read from the API; this
/// only remembers what not to repeat (deletions in flight, Events published).
#[derive(Debug, Default)]
pub struct Repacker {
    cfg: RepackConfig,
    /// The cluster serves `karpenter.sh/v1` NodeClaims (the kind of every replacement).
    nodeclaim_v1: bool,
    /// Uids of NodeClaims this replica deleted, so a cache that has not seen the
    /// deletion yet does not delete them again.
    deleted: BTreeSet<String>,
    /// Events published once per move: (move id, reason).
    noted: BTreeSet<(String, &'static str)>,
    /// The last budget error published per NodePool.
    budget_notes: BTreeMap<String, String>,
    /// Moves without replacements made by this replica: (when, nodes).
    direct: Vec<(i64, usize)>,
    /// Reasons of the last proposal's blocked nodes (set back to 0 when they go).
    blocked_reasons: BTreeSet<&'static str>,
    /// Warnings logged once.
    warned: BTreeSet<String>,
}

/// A step of a move to write: what to delete, and where the Events go.
struct Todo {
    id: String,
    finish: bool,
    delete: Vec<Deletion>,
    why: String,
    /// The replaced claims (Event targets).
    replaced: Vec<String>,
    /// Pods bound to the replaced nodes (evicted by a finish).
    pods: usize,
}

impl Repacker {
    pub fn new(cfg: RepackConfig, nodeclaim_v1: bool) -> Self {
        Repacker {
            cfg,
            nodeclaim_v1,
            ..Repacker::default()
        }
    }

    pub fn config(&self) -> &RepackConfig {
        &self.cfg
    }

    /// Reads every move from the cached NodeClaims and writes its next step (leader only).
    pub async fn progress(&mut self, io: &Io<'_>, cache: &Mutex<Cache>, now_s: i64) -> Progress {
        let mut out = Progress::default();
        if !io.leader.is_leader() {
            return out;
        }
        let timeout = self.cfg.ready_timeout.as_secs();
        let (claims, todo) = {
            let Ok(c) = cache.lock() else { return out };
            let claims = c.move_claims();
            if claims.is_empty() {
                self.deleted.clear();
                return out;
            }
            let steps =
                repack::progress(&claims, &|x| c.claim_node(x), &|x| age_s(x, now_s), timeout);
            let nodepools: Vec<Value> = c
                .objects_of(WatchedKind::NodePool)
                .filter(|o| is_owned(o))
                .cloned()
                .collect();
            let paced = deletion_budgets(&nodepools, c.objects_of(WatchedKind::NodeClaim));
            let mut todo = Vec::new();
            for step in steps {
                let (id, finish, delete, why) = match step {
                    Step::Wait { id } => {
                        out.waiting.push(id);
                        continue;
                    }
                    Step::Done { .. } => continue,
                    // The budgets bound the deletions at once: a wave now, the rest once
                    // these are gone.
                    Step::Finish { id, delete } => (
                        id,
                        true,
                        repack::pace(delete, &claims, &paced),
                        String::new(),
                    ),
                    Step::RollBack { id, delete, why } => (id, false, delete, why),
                };
                let replaced: Vec<String> = claims
                    .iter()
                    .filter(|x| is_owned(x) && move_id(x) == Some(id.as_str()))
                    .flat_map(replaces)
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                let mut keep = Vec::new();
                for d in delete {
                    if d.uid.as_ref().is_some_and(|u| self.deleted.contains(u)) {
                        continue;
                    }
                    let claim = claims.iter().find(|x| name_of(x) == Some(&d.key.name));
                    if claim.is_some_and(|x| repack::may_delete(x, &nodepools)) {
                        keep.push(d);
                    } else if self.warned.insert(format!("{id}/{}", d.key.name)) {
                        tracing::warn!(move_id = %id, claim = %d.key.name,
                            "repack: not deleting a NodeClaim gpu-slicer neither created nor \
                             launched for a NodePool it owns");
                    }
                }
                if keep.is_empty() {
                    continue;
                }
                let pods = if finish {
                    let nodes: BTreeSet<&str> = keep
                        .iter()
                        .filter_map(|d| claims.iter().find(|x| name_of(x) == Some(&d.key.name)))
                        .filter_map(|x| x.pointer("/status/nodeName").and_then(Value::as_str))
                        .collect();
                    c.pods
                        .values()
                        .filter(|p| p.running.is_some())
                        .filter(|p| {
                            p.bound
                                .as_ref()
                                .is_some_and(|(n, _, _)| nodes.contains(n.as_str()))
                        })
                        .count()
                } else {
                    0
                };
                todo.push(Todo {
                    id,
                    finish,
                    delete: keep,
                    why,
                    replaced,
                    pods,
                });
            }
            (claims, todo)
        };
        for t in todo {
            let res = io
                .writer
                .execute(&Actions {
                    delete: t.delete.clone(),
                    ..Actions::default()
                })
                .await;
            io.metrics
                .count_apply("deleted", "none", res.deleted.len() as u64);
            io.metrics
                .count_apply("skipped_not_leader", "none", res.not_leader as u64);
            io.metrics
                .count_apply("skipped_dry_run", "none", res.dry_run as u64);
            for f in &res.failed {
                io.metrics.count_apply("failed", f.category.as_str(), 1);
                tracing::warn!(move_id = %t.id, object = %f.object, category = %f.category,
                    message = %f.message, "repack: deletion failed");
            }
            for d in &t.delete {
                if res.deleted.contains(&d.key)
                    && let Some(u) = &d.uid
                {
                    self.deleted.insert(u.clone());
                }
            }
            if res.deleted.is_empty() {
                continue;
            }
            let names: Vec<&str> = res.deleted.iter().map(|k| k.name.as_str()).collect();
            out.deleted.extend(res.deleted.iter().cloned());
            if t.finish {
                out.finished.push(t.id.clone());
                tracing::info!(move_id = %t.id, deleted = ?names, pods = t.pods,
                    "repack: replacements Ready and sliced; replaced NodeClaims deleted");
                // Pods on the claims deleted now (a wave, when budgets pace the move).
                io.metrics.repack_pods_restarted.inc_by(t.pods as u64);
                if self.noted.insert((t.id.clone(), "RepackFinished")) {
                    io.count("finished");
                }
                for k in &res.deleted {
                    let note = format!(
                        "repack move {}: the replacement nodes are Ready and sliced; NodeClaim {} \
                         is deleted and Karpenter drains this node (PDBs honoured)",
                        t.id, k.name
                    );
                    io.event(&claim_ref(&claims, &k.name), false, "RepackFinished", note)
                        .await;
                }
            } else {
                out.rolled_back.push(t.id.clone());
                tracing::warn!(move_id = %t.id, why = %t.why, deleted = ?names,
                    "repack: move rolled back; replacements deleted, old nodes kept");
                if self.noted.insert((t.id.clone(), "RepackRolledBack")) {
                    io.count("rolled_back");
                }
                for r in &t.replaced {
                    let note = format!(
                        "repack move {} rolled back: {}; its replacement NodeClaim(s) {} are \
                         deleted and this node stays",
                        t.id,
                        t.why,
                        names.join(", ")
                    );
                    io.event(&claim_ref(&claims, r), true, "RepackRolledBack", note)
                        .await;
                }
            }
        }
        // Forget what the API no longer has.
        let uids: BTreeSet<&str> = claims
            .iter()
            .filter_map(|c| c.pointer("/metadata/uid").and_then(Value::as_str))
            .collect();
        self.deleted.retain(|u| uids.contains(u.as_str()));
        let ids: BTreeSet<&str> = claims.iter().filter_map(move_id).collect();
        self.noted.retain(|(id, _)| ids.contains(id.as_str()));
        out
    }

    /// Proposes one move and launches its replacements (leader only; `--dry-run` logs it).
    /// `base` are the round's snapshot settings; `now_s` is seconds since the epoch.
    pub async fn propose(
        &mut self,
        io: &Io<'_>,
        cache: &Mutex<Cache>,
        catalog: Arc<Catalog>,
        settings: &round::Settings,
        base: &SnapshotSettings,
        now_s: i64,
    ) -> Proposed {
        let mut out = Proposed::default();
        if !io.leader.is_leader() && !io.dry_run {
            out.skipped = Some("not the leader".into());
            return out;
        }
        if !self.nodeclaim_v1 {
            let why = "the cluster does not serve karpenter.sh/v1 NodeClaims";
            if self.warned.insert(why.into()) {
                tracing::warn!("repack is off: {why}");
            }
            out.skipped = Some(why.into());
            return out;
        }
        let (snap, open, recent) = {
            let Ok(c) = cache.lock() else { return out };
            let snap = c.snapshot(&SnapshotSettings {
                repack_now_s: Some(now_s),
                ..base.clone()
            });
            let claims = c.move_claims();
            let steps = repack::progress(&claims, &|x| c.claim_node(x), &|_| 0, u64::MAX);
            let open = steps
                .iter()
                .filter(|s| !matches!(s, Step::Done { .. }))
                .count();
            (snap, open, replaced_last_hour(&claims, now_s))
        };
        if open > 0 {
            out.skipped = Some(format!("{open} move(s) in progress"));
            return out;
        }
        let budgets = self.budgets(io, &snap).await;
        self.direct.retain(|(t, _)| now_s - t < 3600);
        let direct: usize = self.direct.iter().map(|(_, n)| n).sum();
        let allowance = self
            .cfg
            .max_nodes_per_hour
            .saturating_sub(recent)
            .saturating_sub(direct);
        let (pools, plan) = round_pools(&snap, settings);
        let s = self.cfg.settings;
        let cat = catalog.clone();
        let (snap, proposal) = match tokio::task::spawn_blocking(move || {
            let p = repack::propose(
                &repack::RepackInputs {
                    catalog: &cat,
                    nodes: &snap.repack,
                    pools: &pools,
                    plan: &plan,
                    budgets: &budgets,
                    allowance,
                },
                &s,
            );
            (snap, p)
        })
        .await
        {
            Ok(r) => r,
            Err(_) => {
                tracing::error!("repack proposal panicked");
                out.skipped = Some("the proposal panicked".into());
                return out;
            }
        };
        self.publish_blocked(io, &proposal);
        io.metrics
            .repack_last_saving
            .set(proposal.chosen.as_ref().map_or(0.0, Move::saving_per_hour));
        tracing::debug!(candidates = proposal.candidates, blocked = proposal.blocked.len(),
            tried = ?proposal.tried, allowance, "repack proposal");
        let Some(m) = proposal.chosen.clone() else {
            out.proposal = Some(proposal);
            return out;
        };
        let (pools, _) = round_pools(&snap, settings);
        // Old and new nodes run side by side until the move finishes: both must fit the
        // budget guard (`--max-hourly-cost`, `--max-nodes`, the pools' cost annotations and
        // limits).
        let existing = round::existing_cost(&snap.fleet, &catalog);
        if let Err(refusals) = guard::check(&m.plan, &pools, &catalog, &settings.budget, &existing)
        {
            for r in &refusals {
                tracing::warn!(refusal = %r, "repack: move skipped, the budget has no room for its replacements");
            }
            out.proposal = Some(proposal);
            return out;
        }
        let claims = match replacement_claims(&m, &snap, &catalog, &pools, &settings.render) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "repack: the move's replacements cannot be rendered");
                out.proposal = Some(proposal);
                return out;
            }
        };
        let taken: BTreeSet<&str> = snap
            .live
            .iter()
            .filter(|o| o.get("kind").and_then(Value::as_str) == Some("NodeClaim"))
            .filter_map(name_of)
            .collect();
        if let Some(n) = claims
            .iter()
            .filter_map(name_of)
            .find(|n| taken.contains(n))
        {
            tracing::warn!(claim = %n, "repack: a replacement's name is taken; move skipped");
            out.proposal = Some(proposal);
            return out;
        }
        let id = m.id();
        let types: Vec<String> = m
            .plan
            .nodes
            .iter()
            .map(|n| {
                format!(
                    "{} {} R={}",
                    n.instance_type,
                    n.capacity_type.as_str(),
                    n.replicas_per_gpu
                )
            })
            .collect();
        if io.dry_run {
            tracing::info!(move_id = %id, replaced = ?m.replaced, new = ?types,
                onto_kept = m.onto_kept.len(), saving_per_hour = m.saving_per_hour(),
                old_per_hour = m.old_hourly_cost, pods = m.pods_restarted,
                "repack: move proposed (dry run: nothing written)");
            io.count("proposed_dry_run");
            out.started = Some(id);
            out.replacements = claims;
            out.proposal = Some(proposal);
            return out;
        }
        let started = if claims.is_empty() {
            self.delete_directly(io, &m, &snap, now_s).await
        } else {
            self.launch(io, cache, &claims).await
        };
        if started {
            io.count("started");
            io.metrics.repack_saving.inc_by(m.saving_per_hour());
            tracing::info!(move_id = %id, replaced = ?m.replaced, new = ?types,
                saving_per_hour = m.saving_per_hour(), pods = m.pods_restarted,
                "repack: move started");
            let note = if claims.is_empty() {
                format!(
                    "repack move {id}: {} node(s) removed, their {} pod(s) restart on nodes that \
                     stay; saves ${:.3}/h of ${:.3}/h",
                    m.replaced.len(),
                    m.pods_restarted,
                    m.saving_per_hour(),
                    m.old_hourly_cost
                )
            } else {
                format!(
                    "repack move {id}: {} node(s) replaced by {} new ({}), saving ${:.3}/h of \
                     ${:.3}/h; {} pod(s) restart once the new nodes are Ready and sliced",
                    m.replaced.len(),
                    m.plan.nodes.len(),
                    types.join(", "),
                    m.saving_per_hour(),
                    m.old_hourly_cost,
                    m.pods_restarted
                )
            };
            for node in &m.replaced {
                io.event(
                    &super::events::object_ref("v1", "Node", node),
                    false,
                    "RepackStarted",
                    note.clone(),
                )
                .await;
            }
            out.started = Some(id);
            out.force_round = !claims.is_empty();
        }
        out.replacements = claims;
        out.proposal = Some(proposal);
        out
    }

    /// Each NodePool's disruption budget for its nodes; an unreadable budget blocks that
    /// NodePool's nodes (an Event and the invalid-input metric name it and the field).
    async fn budgets(&mut self, io: &Io<'_>, snap: &Snapshot) -> BTreeMap<String, u32> {
        let mut per: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for n in &snap.repack {
            if let Some(np) = &n.nodepool {
                let e = per.entry(np.as_str()).or_default();
                e.0 += 1;
                e.1 += usize::from(n.moving);
            }
        }
        let mut out = BTreeMap::new();
        for (np, (count, disrupting)) in per {
            let Some(obj) = snap.live.iter().find(|o| {
                o.get("kind").and_then(Value::as_str) == Some("NodePool") && name_of(o) == Some(np)
            }) else {
                continue;
            };
            match repack::allowed_disruptions(obj, count, disrupting) {
                Ok(a) => {
                    out.insert(np.to_string(), a);
                    self.budget_notes.remove(np);
                }
                Err(e) => {
                    out.insert(np.to_string(), 0);
                    Metrics::count_kind(&io.metrics.invalid_input, WatchedKind::NodePool.as_str());
                    let note = format!(
                        "NodePool {np}: {e}; gpu-slicer does not repack its nodes until it \
                         can be read"
                    );
                    if self.budget_notes.get(np) != Some(&note) {
                        tracing::warn!(nodepool = %np, error = %e, "repack: disruption budget cannot be read");
                        let api = obj
                            .get("apiVersion")
                            .and_then(Value::as_str)
                            .unwrap_or("karpenter.sh/v1");
                        io.event(
                            &super::events::object_ref(api, "NodePool", np),
                            true,
                            "InvalidConfiguration",
                            note.clone(),
                        )
                        .await;
                        self.budget_notes.insert(np.to_string(), note);
                    }
                }
            }
        }
        out
    }

    fn publish_blocked(&mut self, io: &Io<'_>, p: &Proposal) {
        let mut counts: BTreeMap<&'static str, i64> = BTreeMap::new();
        for (_, b) in &p.blocked {
            *counts.entry(b.reason()).or_default() += 1;
        }
        for r in self.blocked_reasons.iter().chain(counts.keys()) {
            io.metrics
                .repack_blocked
                .get_or_create(&ReasonLabel {
                    reason: (*r).to_string(),
                })
                .set(counts.get(r).copied().unwrap_or(0));
        }
        self.blocked_reasons.extend(counts.keys());
    }

    /// Applies the replacements; inserts those applied into the cache, so the next round
    /// counts them before the watch brings them. True when all were applied (a partial
    /// launch is rolled back by [`Repacker::progress`]: a replacement is missing).
    async fn launch(&mut self, io: &Io<'_>, cache: &Mutex<Cache>, claims: &[Value]) -> bool {
        let res = io
            .writer
            .execute(&Actions {
                apply: claims.to_vec(),
                ..Actions::default()
            })
            .await;
        io.metrics
            .count_apply("applied", "none", res.applied.len() as u64);
        for f in &res.failed {
            io.metrics.count_apply("failed", f.category.as_str(), 1);
            tracing::warn!(object = %f.object, category = %f.category, message = %f.message,
                "repack: replacement not applied");
        }
        if let Ok(mut c) = cache.lock()
            && let Some(store) = c.object_store(WatchedKind::NodeClaim)
        {
            for o in claims {
                let key = Cache::object_key(o);
                if ObjectKey::of(o).is_some_and(|k| res.applied.contains(&k))
                    && store.get(&key).is_none()
                {
                    store.apply(key, o.clone());
                }
            }
        }
        !res.applied.is_empty() && res.applied.len() == claims.len()
    }

    /// A move without replacements: deletes the replaced NodeClaims now.
    async fn delete_directly(
        &mut self,
        io: &Io<'_>,
        m: &Move,
        snap: &Snapshot,
        now_s: i64,
    ) -> bool {
        let delete: Vec<Deletion> = m
            .claims
            .iter()
            .filter_map(|name| {
                let c = snap.live.iter().find(|o| {
                    o.get("kind").and_then(Value::as_str) == Some("NodeClaim")
                        && name_of(o) == Some(name)
                })?;
                if !repack::may_delete(c, &snap.live) {
                    return None;
                }
                Deletion::of(c)
            })
            .collect();
        if delete.is_empty() {
            return false;
        }
        let res = io
            .writer
            .execute(&Actions {
                delete,
                ..Actions::default()
            })
            .await;
        io.metrics
            .count_apply("deleted", "none", res.deleted.len() as u64);
        for f in &res.failed {
            io.metrics.count_apply("failed", f.category.as_str(), 1);
        }
        if res.deleted.is_empty() {
            return false;
        }
        self.direct.push((now_s, res.deleted.len()));
        io.count("finished");
        io.metrics
            .repack_pods_restarted
            .inc_by(m.pods_restarted as u64);
        true
    }
}

/// What each owned NodePool's budgets allow to be deleted now: `allowed_disruptions` with
/// its NodeClaims counted and those already being deleted subtracted (an unreadable budget
/// allows none; [`Repacker::propose`] reports it with an Event).
fn deletion_budgets<'a>(
    nodepools: &[Value],
    claims: impl Iterator<Item = &'a Value>,
) -> BTreeMap<String, u32> {
    let mut per: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for c in claims {
        if let Some(np) = c
            .pointer("/metadata/labels")
            .and_then(|l| l.get(crate::model::labels::NODEPOOL))
            .and_then(Value::as_str)
        {
            let e = per.entry(np).or_default();
            e.0 += 1;
            e.1 += usize::from(c.pointer("/metadata/deletionTimestamp").is_some());
        }
    }
    nodepools
        .iter()
        .filter_map(|np| {
            let name = name_of(np)?;
            let (count, deleting) = per.get(name).copied().unwrap_or((0, 0));
            let allowed = repack::allowed_disruptions(np, count, deleting).unwrap_or(0);
            Some((name.to_string(), allowed))
        })
        .collect()
}
