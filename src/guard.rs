//! The one budget rule, checked on a plan before anything is rendered or written, by
//! every command that writes (`render`, the controller's rounds and its re-packing):
//!
//! - the global limits from the controller's flags (`--max-hourly-cost`, `--max-nodes`)
//!   on everything gpu-slicer runs, existing nodes plus the plan;
//! - each pool's `gpu-slicer.io/max-hourly-cost` annotation and its NodePool's cpu and
//!   memory limits ([`PoolLimits`]) on the pool's existing nodes plus its planned ones. A
//!   pool the plan adds nothing to is never refused: its existing nodes are already there.
//!
//! Also the namespace allow/deny lists (which pods gpu-slicer plans for at all).
//!
//! Pure: the caller says what already runs ([`Existing`]); the CLI has nothing running
//! (`render` plans from scratch). Every refusal is returned, so each gets its Event.

use std::collections::BTreeMap;
use std::fmt;

use crate::catalog;
use crate::config::{MAX_HOURLY_COST, annotation_field};
use crate::model::{Catalog, InstanceType, MIB, Pool, PoolLimits};
use crate::planner::Plan;

/// Global limits from the controller's flags.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Budget {
    /// Most $/h of gpu-slicer capacity (existing owned nodes plus the plan).
    pub max_hourly_cost: Option<f64>,
    /// Most gpu-slicer nodes (existing plus planned).
    pub max_nodes: Option<usize>,
}

/// What some nodes cost and hold.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    pub hourly_cost: f64,
    pub nodes: usize,
    pub cpu_milli: u64,
    pub memory_bytes: u64,
}

impl Usage {
    /// Adds one node of type `t` (its catalog entry: cpu and memory; a type the catalog
    /// does not list adds none) at `hourly_price`.
    pub fn add(&mut self, t: Option<&InstanceType>, hourly_price: f64) {
        self.hourly_cost += hourly_price;
        self.nodes += 1;
        if let Some(t) = t {
            self.cpu_milli += u64::from(t.vcpus) * 1000;
            self.memory_bytes += t.memory_mib * MIB;
        }
    }

    fn plus(self, o: Usage) -> Usage {
        Usage {
            hourly_cost: self.hourly_cost + o.hourly_cost,
            nodes: self.nodes + o.nodes,
            cpu_milli: self.cpu_milli + o.cpu_milli,
            memory_bytes: self.memory_bytes + o.memory_bytes,
        }
    }
}

/// What gpu-slicer already runs, per pool.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Existing {
    pub per_pool: BTreeMap<String, Usage>,
}

impl Existing {
    fn total(&self) -> Usage {
        self.per_pool
            .values()
            .fold(Usage::default(), |a, u| a.plus(*u))
    }
}

/// Why a plan is refused. Displayed as the Event message (the controller) or after the
/// pool's object and field (the CLI).
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    Cost {
        total: f64,
        max: f64,
    },
    Nodes {
        total: usize,
        max: usize,
    },
    PoolCost {
        pool: String,
        total: f64,
        max: f64,
    },
    /// The pool's nodes would hold more of `resource` than its NodePool's limit.
    PoolLimit {
        pool: String,
        resource: Limited,
        /// Milli-CPUs or bytes.
        total: u64,
        limits: PoolLimits,
    },
}

/// A resource a NodePool's limits cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    Cpu,
    Memory,
}

impl Limited {
    /// The key under `spec.limits`.
    pub fn key(self) -> &'static str {
        match self {
            Limited::Cpu => "cpu",
            Limited::Memory => "memory",
        }
    }

    /// `amount` (milli-CPUs or bytes) as a person reads it.
    fn show(self, amount: u64) -> String {
        match self {
            Limited::Cpu => format!("{} vCPUs", amount / 1000),
            Limited::Memory => format!("{} GiB of memory", amount / (1024 * MIB)),
        }
    }
}

impl Refusal {
    /// The pool the refusal is about (for the Event's object), if any.
    pub fn pool(&self) -> Option<&str> {
        match self {
            Refusal::PoolCost { pool, .. } | Refusal::PoolLimit { pool, .. } => Some(pool),
            Refusal::Cost { .. } | Refusal::Nodes { .. } => None,
        }
    }

    /// The pool's field the refusal is about: its annotation or its limit.
    pub fn field(&self) -> Option<String> {
        match self {
            Refusal::PoolCost { .. } => Some(annotation_field(MAX_HOURLY_COST)),
            Refusal::PoolLimit {
                resource, limits, ..
            } => Some(format!("{}.{}", limits.field, resource.key())),
            Refusal::Cost { .. } | Refusal::Nodes { .. } => None,
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
            Refusal::PoolLimit {
                pool,
                resource,
                total,
                limits,
            } => write!(
                f,
                "plan refused: pool {pool} would hold {}, above its limit {}",
                resource.show(*total),
                limits
                    .written
                    .get(resource.key())
                    .map_or("", String::as_str)
            ),
        }
    }
}

/// Checks the plan plus what already runs against the global budget and every pool's
/// budget annotation and limits.
pub fn check(
    plan: &Plan,
    pools: &[Pool],
    cat: &Catalog,
    budget: &Budget,
    existing: &Existing,
) -> Result<(), Vec<Refusal>> {
    let mut refusals = Vec::new();
    let mut planned: BTreeMap<&str, Usage> = BTreeMap::new();
    for n in &plan.nodes {
        planned
            .entry(n.node_pool.as_str())
            .or_default()
            .add(catalog::find(cat, &n.instance_type), n.hourly_price);
    }
    let total = planned.values().fold(existing.total(), |a, u| a.plus(*u));
    if let Some(max) = budget.max_hourly_cost
        && total.hourly_cost > max + 1e-9
    {
        refusals.push(Refusal::Cost {
            total: total.hourly_cost,
            max,
        });
    }
    if let Some(max) = budget.max_nodes
        && total.nodes > max
    {
        refusals.push(Refusal::Nodes {
            total: total.nodes,
            max,
        });
    }
    for p in pools {
        let Some(add) = planned.get(p.name.as_str()) else {
            continue;
        };
        let after = existing
            .per_pool
            .get(&p.name)
            .copied()
            .unwrap_or_default()
            .plus(*add);
        if let Some(max) = p.max_hourly_cost
            && after.hourly_cost > max + 1e-9
        {
            refusals.push(Refusal::PoolCost {
                pool: p.name.clone(),
                total: after.hourly_cost,
                max,
            });
        }
        let limited = [
            (Limited::Cpu, p.limits.cpu_milli, after.cpu_milli),
            (Limited::Memory, p.limits.memory_bytes, after.memory_bytes),
        ];
        for (resource, max, total) in limited {
            if max.is_some_and(|max| total > max) {
                refusals.push(Refusal::PoolLimit {
                    pool: p.name.clone(),
                    resource,
                    total,
                    limits: p.limits.clone(),
                });
            }
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
mod tests;
