//! Safety checks on a plan before anything is written: the budget guard (global
//! `--max-hourly-cost`/`--max-nodes` and each pool's `gpu-slicer.io/max-hourly-cost`) and
//! the namespace allow/deny lists.

use std::collections::BTreeMap;
use std::fmt;

use crate::model::Pool;
use crate::planner::Plan;

/// Global limits from the controller's flags.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Budget {
    /// Most $/h of gpu-slicer capacity (existing owned nodes plus the plan).
    pub max_hourly_cost: Option<f64>,
    /// Most gpu-slicer nodes (existing plus planned).
    pub max_nodes: Option<usize>,
}

/// What gpu-slicer already runs, per pool: $/h and nodes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Existing {
    pub per_pool: BTreeMap<String, (f64, usize)>,
}

impl Existing {
    fn total(&self) -> (f64, usize) {
        self.per_pool
            .values()
            .fold((0.0, 0), |(c, n), (pc, pn)| (c + pc, n + pn))
    }
}

/// Why a plan is refused. Displayed as the Event message.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    Cost { total: f64, max: f64 },
    Nodes { total: usize, max: usize },
    PoolCost { pool: String, total: f64, max: f64 },
}

impl Refusal {
    /// The pool the refusal is about (for the Event's object), if any.
    pub fn pool(&self) -> Option<&str> {
        match self {
            Refusal::PoolCost { pool, .. } => Some(pool),
            _ => None,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Cost { total, max } => write!(
                f,
                "plan refused: gpu-slicer capacity would cost ${total:.4}/h, above --max-hourly-cost ${max:.4}/h"
            ),
            Refusal::Nodes { total, max } => write!(
                f,
                "plan refused: gpu-slicer would run {total} nodes, above --max-nodes {max}"
            ),
            Refusal::PoolCost { pool, total, max } => write!(
                f,
                "plan refused: pool {pool} would cost ${total:.4}/h, above its gpu-slicer.io/max-hourly-cost ${max:.4}/h"
            ),
        }
    }
}

/// Checks the plan plus what already runs against the global budget and every pool's
/// annotation. All refusals are returned, so each gets its Event.
pub fn check(
    plan: &Plan,
    pools: &[Pool],
    budget: &Budget,
    existing: &Existing,
) -> Result<(), Vec<Refusal>> {
    let mut refusals = Vec::new();
    let mut per_pool: BTreeMap<&str, f64> = BTreeMap::new();
    for n in &plan.nodes {
        *per_pool.entry(n.node_pool.as_str()).or_default() += n.hourly_price;
    }
    let (ex_cost, ex_nodes) = existing.total();
    let total_cost = ex_cost + plan.nodes.iter().map(|n| n.hourly_price).sum::<f64>();
    let total_nodes = ex_nodes + plan.nodes.len();
    if let Some(max) = budget.max_hourly_cost
        && total_cost > max + 1e-9
    {
        refusals.push(Refusal::Cost {
            total: total_cost,
            max,
        });
    }
    if let Some(max) = budget.max_nodes
        && total_nodes > max
    {
        refusals.push(Refusal::Nodes {
            total: total_nodes,
            max,
        });
    }
    for p in pools {
        let Some(max) = p.max_hourly_cost else {
            continue;
        };
        let planned = per_pool.get(p.name.as_str()).copied().unwrap_or(0.0);
        let ex = existing.per_pool.get(&p.name).map_or(0.0, |(c, _)| *c);
        if planned > 0.0 && planned + ex > max + 1e-9 {
            refusals.push(Refusal::PoolCost {
                pool: p.name.clone(),
                total: planned + ex,
                max,
            });
        }
    }
    if refusals.is_empty() {
        Ok(())
    } else {
        Err(refusals)
    }
}

/// Which namespaces' pods gpu-slicer plans for: the allow list (empty = all) minus the
/// deny list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Namespaces {
    pub allow: Vec<String>,
    pub deny: Vec<String>,
}

impl Namespaces {
    pub fn allows(&self, ns: &str) -> bool {
        (self.allow.is_empty() || self.allow.iter().any(|a| a == ns))
            && !self.deny.iter().any(|d| d == ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DemandItem, ReplicaPolicy, Resources};
    use crate::planner::{self, PlanOptions};

    fn plan(n: usize) -> Plan {
        let cat = crate::catalog::embedded().expect("catalog");
        let items: Vec<DemandItem> = (0..n)
            .map(|i| DemandItem::shared(format!("ns/p{i}"), Resources::new(100, 1 << 28)))
            .collect();
        let opts = PlanOptions {
            default_replicas: ReplicaPolicy::Fixed(2),
            dedicated: false,
            ..PlanOptions::default()
        };
        planner::plan(&cat, &items, &opts)
    }

    #[test]
    fn global_and_pool_budgets() {
        let p = plan(6);
        let cost = p.summary.hourly_cost;
        let nodes = p.nodes.len();
        assert!(check(&p, &[], &Budget::default(), &Existing::default()).is_ok());
        let tight = Budget {
            max_hourly_cost: Some(cost - 0.01),
            max_nodes: Some(nodes),
        };
        let e = check(&p, &[], &tight, &Existing::default()).expect_err("cost");
        assert_eq!(e.len(), 1);
        assert!(matches!(e[0], Refusal::Cost { .. }));
        assert!(e[0].to_string().contains("--max-hourly-cost"));

        // Existing nodes count towards the node cap.
        let existing = Existing {
            per_pool: BTreeMap::from([("gpu-slicer".to_string(), (1.0, 1))]),
        };
        let nodes_cap = Budget {
            max_hourly_cost: None,
            max_nodes: Some(nodes),
        };
        let e = check(&p, &[], &nodes_cap, &existing).expect_err("nodes");
        assert!(matches!(e[0], Refusal::Nodes { total, .. } if total == nodes + 1));

        let mut pool = Pool::default_pool(ReplicaPolicy::Fixed(2));
        pool.max_hourly_cost = Some(cost / 2.0);
        let e = check(
            &p,
            &[pool.clone()],
            &Budget::default(),
            &Existing::default(),
        )
        .expect_err("pool");
        assert_eq!(e[0].pool(), Some("gpu-slicer"));
        pool.max_hourly_cost = Some(cost + 1.0);
        assert!(check(&p, &[pool], &Budget::default(), &Existing::default()).is_ok());
    }

    #[test]
    fn namespace_lists() {
        let all = Namespaces::default();
        assert!(all.allows("a"));
        let n = Namespaces {
            allow: vec!["ml".into(), "infer".into()],
            deny: vec!["infer".into()],
        };
        assert!(n.allows("ml"));
        assert!(!n.allows("infer"));
        assert!(!n.allows("default"));
    }
}
