//! The pure half of the controller's repacking: reading moves off NodeClaims (their
//! id, what they replace, their age, the rate limit's count) and rendering a move's
//! replacement NodeClaims. No client, no clock: `now` is an argument.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use crate::model::{Catalog, Pool};
use crate::planner::{self, PlannedNode};
use crate::reconcile::cache::Snapshot;
use crate::reconcile::is_owned;
use crate::reconcile::repack::{MOVE_LABEL, MOVE_SIZE_ANNOTATION, Move, REPLACES_ANNOTATION};
use crate::reconcile::round::{self, as_planned};
use crate::render::{self, Emission, Frame, RenderError, RenderOptions};

/// Seconds since the claim was created (0 when it does not say).
pub(super) fn age_s(claim: &Value, now_s: i64) -> u64 {
    claim
        .pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<Timestamp>().ok())
        .map_or(0, |t| u64::try_from(now_s - t.as_second()).unwrap_or(0))
}

pub(super) fn name_of(c: &Value) -> Option<&str> {
    c.pointer("/metadata/name").and_then(Value::as_str)
}

pub(super) fn move_id(c: &Value) -> Option<&str> {
    c.pointer("/metadata/labels")
        .and_then(|l| l.get(MOVE_LABEL))
        .and_then(Value::as_str)
}

/// The claims a replacement names in [`REPLACES_ANNOTATION`].
pub(super) fn replaces(c: &Value) -> Vec<String> {
    c.pointer("/metadata/annotations")
        .and_then(|a| a.get(REPLACES_ANNOTATION))
        .and_then(Value::as_str)
        .map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Nodes replaced by the moves whose replacements were created in the last hour (a claim
/// that does not say when it was created counts as recent).
pub(super) fn replaced_last_hour(claims: &[Value], now_s: i64) -> usize {
    let mut moves: BTreeMap<&str, (u64, BTreeSet<String>)> = BTreeMap::new();
    for c in claims.iter().filter(|c| is_owned(c)) {
        let Some(id) = move_id(c) else { continue };
        let age = if c.pointer("/metadata/creationTimestamp").is_some() {
            age_s(c, now_s)
        } else {
            0
        };
        let e = moves.entry(id).or_insert((u64::MAX, BTreeSet::new()));
        e.0 = e.0.min(age);
        e.1.extend(replaces(c));
    }
    moves
        .values()
        .filter(|(age, _)| *age < 3600)
        .map(|(_, r)| r.len())
        .sum()
}

/// Where Events about a claim go: its Node when it has one, else the NodeClaim.
pub(super) fn claim_ref(claims: &[Value], name: &str) -> ObjectReference {
    let node = claims
        .iter()
        .find(|c| name_of(c) == Some(name))
        .and_then(|c| c.pointer("/status/nodeName"))
        .and_then(Value::as_str);
    match node {
        Some(n) => super::super::events::object_ref("v1", "Node", n),
        None => super::super::events::object_ref("karpenter.sh/v1", "NodeClaim", name),
    }
}

/// The pools and planner options a round plans with (the annotated NodePools, else the
/// implicit pool).
pub(super) fn round_pools(
    snap: &Snapshot,
    settings: &round::Settings,
) -> (Vec<Pool>, planner::PlanOptions) {
    let mut plan = settings.plan.clone();
    let pools: Vec<Pool> = if snap.pools.is_empty() {
        planner::effective_pools(&plan)
    } else {
        snap.pools.iter().map(|(p, _)| p.clone()).collect()
    };
    if !snap.pools.is_empty() {
        plan.pools = pools.clone();
    }
    (pools, plan)
}

/// The move's replacement NodeClaims: render's `nodeclaim` emission of the move's plan in
/// the round's frame (the same pools, node classes and fleet, so names, labels and node
/// classes are the round's), NodeClaims only, labelled with the move's id and annotated
/// with the claims they replace and how many replacements there are. Names are those of
/// render (a hash of the pods planned onto each), so the same move has the same names.
pub fn replacement_claims(
    m: &Move,
    snap: &Snapshot,
    catalog: &Catalog,
    pools: &[Pool],
    render_opts: &RenderOptions,
) -> Result<Vec<Value>, RenderError> {
    if m.plan.nodes.is_empty() {
        return Ok(Vec::new());
    }
    let fleet: Vec<PlannedNode> = snap
        .fleet
        .iter()
        .filter_map(|f| as_planned(f, catalog, pools))
        .collect();
    let frame = Frame {
        pools: &snap.pools,
        ec2nodeclasses: &snap.ec2nodeclasses,
        device_plugin: snap.device_plugin.as_ref(),
        fleet: &fleet,
    };
    let opts = RenderOptions {
        emission: Emission::NodeClaim,
        ..render_opts.clone()
    };
    let rendered = render::render(&m.plan, catalog, frame, &opts)?;
    let mut claims: Vec<Value> = rendered
        .objects
        .into_iter()
        .filter(|o| o.get("kind").and_then(Value::as_str) == Some("NodeClaim"))
        .collect();
    let id = m.id();
    let size = claims.len().to_string();
    let replaced = m.claims.join(",");
    for c in &mut claims {
        let Some(meta) = c.get_mut("metadata").and_then(Value::as_object_mut) else {
            continue;
        };
        let labels = meta
            .entry("labels")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(l) = labels.as_object_mut() {
            l.insert(MOVE_LABEL.into(), Value::String(id.clone()));
        }
        let ann = meta
            .entry("annotations")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(a) = ann.as_object_mut() {
            a.insert(REPLACES_ANNOTATION.into(), Value::String(replaced.clone()));
            a.insert(MOVE_SIZE_ANNOTATION.into(), Value::String(size.clone()));
        }
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_rate_limit_counts_the_last_hours_moves_once_each() {
        let owned = json!({"app.kubernetes.io/managed-by": "gpu-slicer", MOVE_LABEL: "m1"});
        let rep = |name: &str, created: &str, replaces: &str, labels: &Value| {
            json!({"metadata": {"name": name, "labels": labels,
                "creationTimestamp": created,
                "annotations": {REPLACES_ANNOTATION: replaces}}})
        };
        let now: Timestamp = "2026-12-02T10:00:00Z".parse().expect("ts");
        let now_s = now.as_second();
        let claims = [
            rep("r1", "2026-12-02T09:30:00Z", "a,b", &owned),
            rep("r2", "2026-12-02T09:31:00Z", "a,b", &owned),
            rep(
                "r3",
                "2026-12-02T08:00:00Z",
                "c",
                &json!({"app.kubernetes.io/managed-by": "gpu-slicer", MOVE_LABEL: "m0"}),
            ),
            // Not gpu-slicer's: not a move.
            rep("x", "2026-12-02T09:59:00Z", "d", &json!({MOVE_LABEL: "m9"})),
        ];
        assert_eq!(replaced_last_hour(&claims, now_s), 2);
        assert_eq!(age_s(&claims[0], now_s), 1800);
        assert_eq!(age_s(&json!({}), now_s), 0);
    }
}
