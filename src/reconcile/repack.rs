//! Defragmentation ("repack"), pure: which of gpu-slicer's nodes to replace by cheaper
//! ones, and where a move in progress stands. No client, no clock: ages and `now` are
//! arguments. The controller (`src/controller/repack.rs`) launches the replacements,
//! deletes the replaced NodeClaims once the replacements are Ready and sliced, and rolls a
//! move back when they are not; the simulator calls [`propose`] on its own fleet.
//!
//! # Choosing a move
//!
//! A node is a *candidate* when it is Ready and sliced, not part of a move already, its
//! pool allows repacking (`gpu-slicer.io/repack`), every pod on it is movable (has a
//! controller that re-creates it, is not `karpenter.sh/do-not-disrupt`, and has run for at
//! least `min_pod_age_s`), and its Karpenter NodePool's disruption budget is not 0 now.
//! Candidates are ordered least utilised first (the largest of the used fractions of
//! slices, cpu and memory; then the dearest; then by name). For prefixes of that order of
//! 1, 2, 4, … nodes up to the allowance (the rate limit's nodes left this hour), the
//! prefix's pods are placed with the same two steps as a round:
//! first onto the free room of the nodes that stay (`round::assign_in_flight`, the
//! slice-fit rule of `model::slice`, labels, taints, every dimension), then the rest by the
//! planner. A prefix is a valid move when every pod is placed and the new nodes cost at
//! least `min_saving` (a fraction) less per hour than the prefix; the move saving the most
//! per hour wins (ties: fewer nodes, so fewer restarts).
//!
//! **Budgets** are Karpenter's: a NodePool's budget bounds how many of its nodes are
//! *being deleted at once*, not how many a move may replace. So a NodePool whose budget
//! allows no disruption now pins its nodes, and a move's replaced NodeClaims are deleted in
//! waves of at most what each NodePool allows ([`pace`]), the next wave once the previous
//! one is gone. Capping the move itself at the budget (10 % of a NodePool's nodes by
//! default) would forbid the merges that save: in the replays it kept the saving at a
//! third of what the same moves save when paced.
//!
//! # A move in the cluster
//!
//! Its state lives in the API, not in the controller's memory, so a new leader picks up a
//! move where the old one left it: each replacement is a standalone NodeClaim owned by
//! gpu-slicer, labelled [`MOVE_LABEL`] with the move's id and annotated with the NodeClaims
//! it replaces ([`REPLACES_ANNOTATION`]). [`progress`] reads those and says what to do:
//! wait, delete the replaced NodeClaims (every replacement is Ready and sliced), roll back
//! (a replacement vanished or is not Ready within the timeout: delete the replacements,
//! keep the old nodes), or nothing (done).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::round::{FleetNode, assign_in_flight};
use super::{Deletion, is_owned};
use crate::catalog;
use crate::config::FieldError;
use crate::model::{Catalog, DemandItem, Pool, labels};
use crate::planner::{self, Plan, PlanOptions};

/// The planner's deadline for each candidate move.
const MOVE_PLAN_DEADLINE: std::time::Duration = std::time::Duration::from_millis(100);

/// Label on replacement NodeClaims: the id of the move they belong to.
pub const MOVE_LABEL: &str = "gpu-slicer.io/repack-move";
/// Annotation on replacement NodeClaims: the NodeClaims the move replaces, comma-separated.
pub const REPLACES_ANNOTATION: &str = "gpu-slicer.io/repack-replaces";
/// Karpenter's pod annotation that blocks voluntary disruption of its node.
pub const DO_NOT_DISRUPT: &str = "karpenter.sh/do-not-disrupt";
/// The budget reason a repack counts against (Karpenter's for consolidation moves).
pub const BUDGET_REASON: &str = "Underutilized";

/// How repacking decides.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// A move must save at least this fraction of the replaced nodes' hourly cost (0.05).
    pub min_saving: f64,
    /// Pods younger than this (seconds) pin their node (300).
    pub min_pod_age_s: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            min_saving: 0.05,
            min_pod_age_s: 300,
        }
    }
}

/// A pod running on a fleet node, as repacking sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunningPod {
    /// Its demand (`id` is `namespace/name`).
    pub item: DemandItem,
    /// Seconds since it started.
    pub age_s: u64,
    /// Annotated `karpenter.sh/do-not-disrupt: "true"`.
    pub do_not_disrupt: bool,
    /// `Some(why)` when evicting it would lose it: no controller re-creates it, or its spec
    /// cannot be read.
    pub unmovable: Option<String>,
}

/// A node gpu-slicer runs, with its pods.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The node (`in_flight` false once Ready and sliced; `used` filled in).
    pub fleet: FleetNode,
    /// Its NodeClaim: what a move deletes. A node without one is never moved.
    pub claim: Option<String>,
    /// Its Karpenter NodePool (`karpenter.sh/nodepool`), whose budget it counts against.
    pub nodepool: Option<String>,
    /// Its pods (DaemonSet pods left out: they come with every node).
    pub pods: Vec<RunningPod>,
    /// Part of a move in progress (replaced or replacement).
    pub moving: bool,
}

/// Why a node is not a candidate.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Blocked {
    InFlight,
    Moving,
    NoClaim,
    PoolOptedOut,
    UnknownType,
    DoNotDisrupt(String),
    YoungPod(String),
    Unmovable(String, String),
    Budget(String),
}

impl Blocked {
    /// A short reason for metrics labels.
    pub fn reason(&self) -> &'static str {
        match self {
            Blocked::InFlight => "in_flight",
            Blocked::Moving => "moving",
            Blocked::NoClaim => "no_claim",
            Blocked::PoolOptedOut => "pool_opted_out",
            Blocked::UnknownType => "unknown_type",
            Blocked::DoNotDisrupt(_) => "do_not_disrupt",
            Blocked::YoungPod(_) => "young_pod",
            Blocked::Unmovable(..) => "unmovable_pod",
            Blocked::Budget(_) => "budget",
        }
    }
}

impl std::fmt::Display for Blocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Blocked::InFlight => write!(f, "not Ready and sliced yet"),
            Blocked::Moving => write!(f, "part of a move in progress"),
            Blocked::NoClaim => write!(f, "has no NodeClaim"),
            Blocked::PoolOptedOut => write!(f, "its pool is annotated gpu-slicer.io/repack: false"),
            Blocked::UnknownType => write!(f, "its instance type is not in the catalog"),
            Blocked::DoNotDisrupt(p) => write!(f, "pod {p} is annotated {DO_NOT_DISRUPT}"),
            Blocked::YoungPod(p) => write!(f, "pod {p} has not run for the minimum pod age"),
            Blocked::Unmovable(p, why) => write!(f, "pod {p} cannot be moved: {why}"),
            Blocked::Budget(np) => write!(f, "NodePool {np}'s disruption budget is used up"),
        }
    }
}

/// What [`propose`] reads.
pub struct RepackInputs<'a> {
    pub catalog: &'a Catalog,
    pub nodes: &'a [Node],
    /// The pools (their `repack` flag and GPU memory headroom).
    pub pools: &'a [Pool],
    /// The planner's options, pools included.
    pub plan: &'a PlanOptions,
    /// Disruptions each Karpenter NodePool allows now ([`allowed_disruptions`]): 0 pins its
    /// nodes (more does not cap the move; [`pace`] spreads its deletions). A NodePool not in
    /// the map is not limited by a budget.
    pub budgets: &'a BTreeMap<String, u32>,
    /// Nodes the rate limit still allows (`--repack-max-nodes-per-hour` less the nodes
    /// moved in the last hour).
    pub allowance: usize,
}

/// A move: replace `replaced` by the plan's new nodes (its pods also use the free room of
/// nodes that stay, `onto_kept`).
#[derive(Debug, Clone, PartialEq)]
pub struct Move {
    /// Node names of the replaced nodes, in candidate order.
    pub replaced: Vec<String>,
    /// Their NodeClaims, in the same order.
    pub claims: Vec<String>,
    /// The new nodes and the pods planned onto them.
    pub plan: Plan,
    /// Pods expected on nodes that stay: (pod, node).
    pub onto_kept: Vec<(String, String)>,
    /// USD per hour of the replaced nodes.
    pub old_hourly_cost: f64,
    /// USD per hour of the new nodes.
    pub new_hourly_cost: f64,
    /// Pods evicted (and re-created) by the move.
    pub pods_restarted: usize,
}

impl Move {
    pub fn saving_per_hour(&self) -> f64 {
        self.old_hourly_cost - self.new_hourly_cost
    }

    /// A stable id from the replaced NodeClaims: 16 hex digits (a valid label value).
    pub fn id(&self) -> String {
        let mut claims = self.claims.clone();
        claims.sort();
        format!("{:016x}", crate::render::fnv1a(claims.join(",").as_bytes()))
    }
}

/// What [`propose`] decided.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Proposal {
    /// The best valid move, if any.
    pub chosen: Option<Move>,
    /// Nodes that are not candidates, and why.
    pub blocked: Vec<(String, Blocked)>,
    /// Candidates (after the budgets).
    pub candidates: usize,
    /// Each prefix tried: (nodes, USD per hour saved; negative or below the threshold =
    /// rejected, `None` = some pod could not be placed).
    pub tried: Vec<(usize, Option<f64>)>,
}

/// Why `n` is not a candidate, if it is not (budgets aside).
fn blocked(n: &Node, cat: &Catalog, pools: &[Pool], s: &Settings) -> Option<Blocked> {
    if n.fleet.in_flight {
        return Some(Blocked::InFlight);
    }
    if n.moving {
        return Some(Blocked::Moving);
    }
    if n.claim.is_none() {
        return Some(Blocked::NoClaim);
    }
    if pools
        .iter()
        .find(|p| p.name == n.fleet.pool)
        .is_some_and(|p| !p.repack)
    {
        return Some(Blocked::PoolOptedOut);
    }
    if catalog::find(cat, &n.fleet.instance_type).is_none() {
        return Some(Blocked::UnknownType);
    }
    for p in &n.pods {
        if p.do_not_disrupt {
            return Some(Blocked::DoNotDisrupt(p.item.id.clone()));
        }
        if let Some(why) = &p.unmovable {
            return Some(Blocked::Unmovable(p.item.id.clone(), why.clone()));
        }
        if p.age_s < s.min_pod_age_s {
            return Some(Blocked::YoungPod(p.item.id.clone()));
        }
    }
    None
}

/// The node's price, USD per hour (0 for an unknown type or price).
fn price(n: &FleetNode, cat: &Catalog) -> f64 {
    catalog::find(cat, &n.instance_type)
        .and_then(|t| t.price(n.capacity_type))
        .unwrap_or(0.0)
}

/// The largest used fraction of the node's slices, cpu and memory.
fn utilisation(n: &FleetNode, cat: &Catalog, plan: &PlanOptions) -> f64 {
    let Some(t) = catalog::find(cat, &n.instance_type) else {
        return 1.0;
    };
    let (res, _) = plan.daemonset_overhead.remaining(t);
    let frac = |used: u64, cap: u64| {
        if cap == 0 {
            1.0
        } else {
            used as f64 / cap as f64
        }
    };
    let slices = u64::from(t.gpu_count) * u64::from(n.replicas);
    frac(n.used.slices, slices)
        .max(frac(n.used.requests.cpu_milli, res.cpu_milli))
        .max(frac(n.used.requests.memory_bytes, res.memory_bytes))
}

/// Proposes at most one move (see the module docs).
pub fn propose(inp: &RepackInputs<'_>, s: &Settings) -> Proposal {
    let mut out = Proposal::default();
    let mut order: Vec<(usize, f64, f64)> = Vec::new();
    for (i, n) in inp.nodes.iter().enumerate() {
        match blocked(n, inp.catalog, inp.pools, s) {
            Some(b) => out.blocked.push((n.fleet.name.clone(), b)),
            None => order.push((
                i,
                utilisation(&n.fleet, inp.catalog, inp.plan),
                price(&n.fleet, inp.catalog),
            )),
        }
    }
    order.sort_by(|a, b| {
        a.1.total_cmp(&b.1)
            .then(b.2.total_cmp(&a.2))
            .then_with(|| inp.nodes[a.0].fleet.name.cmp(&inp.nodes[b.0].fleet.name))
    });
    // A NodePool that allows no disruption now pins its nodes; the others' deletions are
    // paced at the finish ([`pace`]).
    let mut cands: Vec<usize> = Vec::new();
    for (i, _, _) in order {
        let n = &inp.nodes[i];
        if let Some(np) = &n.nodepool
            && inp.budgets.get(np) == Some(&0)
        {
            out.blocked
                .push((n.fleet.name.clone(), Blocked::Budget(np.clone())));
            continue;
        }
        cands.push(i);
    }
    out.candidates = cands.len();
    let limit = cands.len().min(inp.allowance);
    let mut sizes: Vec<usize> = std::iter::successors(Some(1usize), |k| k.checked_mul(2))
        .take_while(|&k| k < limit)
        .collect();
    if limit > 0 {
        sizes.push(limit);
    }
    for k in sizes {
        let m = try_move(inp, &cands[..k]);
        let saving = m.as_ref().map(Move::saving_per_hour);
        out.tried.push((k, saving));
        let Some(m) = m else { continue };
        let saving = m.saving_per_hour();
        if saving <= 0.0 || saving < s.min_saving * m.old_hourly_cost {
            continue;
        }
        let better = match &out.chosen {
            None => true,
            Some(c) => saving.partial_cmp(&c.saving_per_hour()) == Some(Ordering::Greater),
        };
        if better {
            out.chosen = Some(m);
        }
    }
    out
}

/// The move that replaces the nodes `set` (indexes into `inp.nodes`), if all their pods
/// can be placed.
fn try_move(inp: &RepackInputs<'_>, set: &[usize]) -> Option<Move> {
    let in_set: BTreeSet<usize> = set.iter().copied().collect();
    // The nodes that stay, as capacity the pods may use (in flight for `assign_in_flight`:
    // it only fills nodes that can still take pods). Nodes being replaced by another move
    // are left out: they are going away.
    let kept: Vec<FleetNode> = inp
        .nodes
        .iter()
        .enumerate()
        .filter(|(i, n)| !in_set.contains(i) && (!n.moving || n.fleet.in_flight))
        .map(|(_, n)| FleetNode {
            in_flight: true,
            ..n.fleet.clone()
        })
        .collect();
    let items: Vec<DemandItem> = set
        .iter()
        .flat_map(|&i| inp.nodes[i].pods.iter().map(|p| p.item.clone()))
        .collect();
    let (rest, onto_kept) = assign_in_flight(&items, &kept, inp.catalog, inp.pools, inp.plan);
    // A move is tried for several prefixes each round and only has to prove a saving of
    // `min_saving`, not the last percent: each plan gets a share of the deadline and
    // stops at the gap, small or not.
    let opts = PlanOptions {
        dedicated: false,
        prove_small: false,
        deadline: Some(
            inp.plan
                .deadline
                .map_or(MOVE_PLAN_DEADLINE, |d| d.min(MOVE_PLAN_DEADLINE)),
        ),
        ..inp.plan.clone()
    };
    let plan = planner::plan(inp.catalog, &rest, &opts);
    if !plan.unplaced.is_empty() {
        return None;
    }
    let old: f64 = set
        .iter()
        .map(|&i| price(&inp.nodes[i].fleet, inp.catalog))
        .sum();
    let new: f64 = plan.nodes.iter().map(|n| n.hourly_price).sum();
    Some(Move {
        replaced: set
            .iter()
            .map(|&i| inp.nodes[i].fleet.name.clone())
            .collect(),
        claims: set
            .iter()
            .filter_map(|&i| inp.nodes[i].claim.clone())
            .collect(),
        plan,
        onto_kept,
        old_hourly_cost: old,
        new_hourly_cost: new,
        pods_restarted: items.len(),
    })
}

/// Disruptions a NodePool's budgets allow now for a repack (Karpenter's rules for the
/// `Underutilized` reason): each budget without `reasons`, or whose reasons include
/// `Underutilized`, allows `nodes` (a count, or a percentage of `nodes_in_pool` rounded
/// up); the least of them applies, less `disrupting` (nodes of the pool being deleted or
/// replaced now). No budgets: Karpenter's default, `10%`. A budget with a `schedule` is
/// treated as always active (gpu-slicer does not evaluate cron schedules; the stricter
/// reading). An unreadable budget is an error naming its field.
pub fn allowed_disruptions(
    nodepool: &Value,
    nodes_in_pool: usize,
    disrupting: usize,
) -> Result<u32, FieldError> {
    let budgets = match nodepool.pointer("/spec/disruption/budgets") {
        None | Some(Value::Null) => None,
        Some(Value::Array(b)) => Some(b.as_slice()),
        Some(_) => return Err(FieldError::new("spec.disruption.budgets", "must be a list")),
    };
    let default = [serde_json::json!({"nodes": "10%"})];
    let budgets = budgets.unwrap_or(&default);
    let mut allowed: Option<u64> = None;
    for (i, b) in budgets.iter().enumerate() {
        let field = format!("spec.disruption.budgets[{i}]");
        if let Some(reasons) = b.get("reasons") {
            let Some(list) = reasons.as_array() else {
                return Err(FieldError::new(
                    format!("{field}.reasons"),
                    "must be a list",
                ));
            };
            if !list.iter().any(|r| r.as_str() == Some(BUDGET_REASON)) {
                continue;
            }
        }
        let nodes = match b.get("nodes") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            None => "10%".to_string(),
            Some(_) => {
                return Err(FieldError::new(
                    format!("{field}.nodes"),
                    "must be a count or a percentage",
                ));
            }
        };
        let n = scaled(&nodes, nodes_in_pool).ok_or_else(|| {
            FieldError::new(
                format!("{field}.nodes"),
                format!("{nodes:?} is not a count or a percentage"),
            )
        })?;
        allowed = Some(allowed.map_or(n, |a| a.min(n)));
    }
    let allowed = allowed.unwrap_or(u64::MAX);
    let left = allowed.saturating_sub(disrupting as u64);
    Ok(u32::try_from(left).unwrap_or(u32::MAX))
}

/// `"5"` or `"10%"` of `total`, percentages rounded up (as Karpenter and PDBs do).
fn scaled(s: &str, total: usize) -> Option<u64> {
    let s = s.trim();
    if let Some(p) = s.strip_suffix('%') {
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let p: u64 = p.parse().ok().filter(|p| *p <= 100)?;
        Some((p * total as u64).div_ceil(100))
    } else {
        if s.is_empty() || s.len() > 9 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    }
}

/// Where a move in the cluster stands (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Replacements are launching; nothing to do yet.
    Wait { id: String },
    /// Every replacement is Ready and sliced: delete the replaced NodeClaims (Karpenter
    /// cordons and drains them, PDBs honoured).
    Finish { id: String, delete: Vec<Deletion> },
    /// A replacement vanished or was not Ready in time: delete the replacements, keep the
    /// old nodes.
    RollBack {
        id: String,
        delete: Vec<Deletion>,
        why: String,
    },
    /// The replaced NodeClaims are gone: the move is over.
    Done { id: String },
}

/// What [`progress`] knows of a NodeClaim's node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimNode {
    /// No Node registered yet, or not Ready.
    NotReady,
    /// Ready but still `slicing-pending`.
    Unsliced,
    /// Ready and sliced.
    Ready,
}

/// Reads every move from the live NodeClaims. `node_of(claim)` says where a claim's node
/// stands; `age_s(claim)` how long ago it was created. Replacements not Ready and sliced
/// within `timeout_s` roll the move back.
pub fn progress(
    claims: &[Value],
    node_of: &dyn Fn(&Value) -> ClaimNode,
    age_s: &dyn Fn(&Value) -> u64,
    timeout_s: u64,
) -> Vec<Step> {
    let by_name: BTreeMap<&str, &Value> = claims
        .iter()
        .filter_map(|c| Some((c.pointer("/metadata/name")?.as_str()?, c)))
        .collect();
    // Replacements by move id (owned claims with the label only).
    let mut moves: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for c in claims.iter().filter(|c| is_owned(c)) {
        if let Some(id) = c
            .pointer("/metadata/labels")
            .and_then(|l| l.get(MOVE_LABEL))
            .and_then(Value::as_str)
        {
            moves.entry(id.to_string()).or_default().push(c);
        }
    }
    let mut steps = Vec::new();
    for (id, reps) in moves {
        let replaced: BTreeSet<&str> = reps
            .iter()
            .filter_map(|c| {
                c.pointer("/metadata/annotations")
                    .and_then(|a| a.get(REPLACES_ANNOTATION))
                    .and_then(Value::as_str)
            })
            .flat_map(|s| s.split(',').map(str::trim).filter(|s| !s.is_empty()))
            .collect();
        let old: Vec<&Value> = replaced
            .iter()
            .filter_map(|n| by_name.get(n).copied())
            .filter(|c| c.pointer("/metadata/deletionTimestamp").is_none())
            .collect();
        let gone_old = replaced
            .iter()
            .filter(|n| !by_name.contains_key(*n))
            .count();
        if old.is_empty() {
            steps.push(Step::Done { id });
            continue;
        }
        let deleting = reps
            .iter()
            .any(|c| c.pointer("/metadata/deletionTimestamp").is_some());
        let expected: usize = reps
            .iter()
            .filter_map(|c| {
                c.pointer("/metadata/annotations")
                    .and_then(|a| a.get(MOVE_SIZE_ANNOTATION))
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse().ok())
            })
            .max()
            .unwrap_or(reps.len());
        let live_reps: Vec<&Value> = reps
            .iter()
            .copied()
            .filter(|c| c.pointer("/metadata/deletionTimestamp").is_none())
            .collect();
        let why = if deleting || live_reps.len() < expected {
            Some(format!(
                "{} of {expected} replacement NodeClaim(s) are gone or being deleted",
                expected - live_reps.len()
            ))
        } else if gone_old > 0 && live_reps.iter().all(|c| node_of(c) == ClaimNode::Ready) {
            // Some old claims already went (deleted by us earlier, or by someone else):
            // finish deleting the rest.
            None
        } else {
            live_reps
                .iter()
                .find(|c| node_of(c) != ClaimNode::Ready && age_s(c) >= timeout_s)
                .map(|c| {
                    format!(
                        "replacement NodeClaim {} is not Ready and sliced after {timeout_s}s",
                        c.pointer("/metadata/name")
                            .and_then(Value::as_str)
                            .unwrap_or("?")
                    )
                })
        };
        if let Some(why) = why {
            steps.push(Step::RollBack {
                id,
                delete: live_reps.iter().filter_map(|c| Deletion::of(c)).collect(),
                why,
            });
        } else if live_reps.iter().all(|c| node_of(c) == ClaimNode::Ready) {
            steps.push(Step::Finish {
                id,
                delete: old.iter().filter_map(|c| Deletion::of(c)).collect(),
            });
        } else {
            steps.push(Step::Wait { id });
        }
    }
    steps
}

/// The deletions of a finishing move that the budgets allow now: per Karpenter NodePool
/// (the claim's `karpenter.sh/nodepool`), at most `budgets[nodepool]` of them (what
/// [`allowed_disruptions`] gives with the NodePool's claims already being deleted counted);
/// claims of a NodePool not in `budgets` (standalone NodeClaims) are not held back. The
/// rest wait for a later loop, once these are gone.
pub fn pace(
    delete: Vec<Deletion>,
    claims: &[Value],
    budgets: &BTreeMap<String, u32>,
) -> Vec<Deletion> {
    let mut left = budgets.clone();
    delete
        .into_iter()
        .filter(|d| {
            let np = claims
                .iter()
                .find(|c| c.pointer("/metadata/name").and_then(Value::as_str) == Some(&d.key.name))
                .and_then(|c| c.pointer("/metadata/labels"))
                .and_then(|l| l.get(labels::NODEPOOL))
                .and_then(Value::as_str);
            match np.and_then(|np| left.get_mut(np)) {
                None => true,
                Some(0) => false,
                Some(n) => {
                    *n -= 1;
                    true
                }
            }
        })
        .collect()
}

/// Annotation on replacement NodeClaims: how many replacements the move launched (so a
/// replacement that vanished is noticed).
pub const MOVE_SIZE_ANNOTATION: &str = "gpu-slicer.io/repack-size";

/// May gpu-slicer delete this NodeClaim for a move? Only one it created (ownership label),
/// or one Karpenter launched for a NodePool gpu-slicer owns (`karpenter.sh/nodepool`
/// names an owned NodePool in `live`). Never anyone else's.
pub fn may_delete(claim: &Value, live: &[Value]) -> bool {
    if is_owned(claim) {
        return true;
    }
    let Some(np) = claim
        .pointer("/metadata/labels")
        .and_then(|l| l.get(labels::NODEPOOL))
        .and_then(Value::as_str)
    else {
        return false;
    };
    live.iter().any(|o| {
        o.get("kind").and_then(Value::as_str) == Some("NodePool")
            && o.pointer("/metadata/name").and_then(Value::as_str) == Some(np)
            && is_owned(o)
    })
}

#[cfg(test)]
mod tests;
