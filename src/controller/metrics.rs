//! Prometheus metrics, all prefixed `gpu_slicer_`.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApplyLabels {
    /// `applied`, `deleted`, `failed`, `skipped_dry_run`, `skipped_not_leader`.
    pub outcome: String,
    /// Error category for failures, `none` otherwise.
    pub category: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AwsLabels {
    /// `ec2:DescribeInstanceTypes`, `pricing:GetProducts`, …
    pub api: String,
    /// `ok` or the failure reason (`throttled`, `server-error`, `timeout`, `connect`, …).
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefreshLabels {
    /// `instance-types`, `offerings`, `on-demand-prices`, `spot-prices`.
    pub kind: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// Webhook requests: `patched`, `allowed`, `rejected`, `error`; certificate reloads:
    /// `reloaded`, `failed`; repack moves: `started`, `finished`, `rolled_back`,
    /// `proposed_dry_run`.
    pub outcome: String,
}

pub struct Metrics {
    registry: Registry,
    pub webhook_requests: Family<OutcomeLabel, Counter>,
    pub webhook_duration: Histogram,
    pub webhook_certificate_reloads: Family<OutcomeLabel, Counter>,
    pub aws_requests: Family<AwsLabels, Counter>,
    pub catalog_refresh_failures: Family<RefreshLabels, Counter>,
    pub catalog_data_age: Family<KindLabel, Gauge<f64, AtomicU64>>,
    pub catalog_fallback: Family<KindLabel, Gauge>,
    pub planning_duration: Histogram,
    pub pending_gpu_pods: Gauge,
    pub planned_nodes: Gauge,
    pub planned_hourly_cost: Gauge<f64, AtomicU64>,
    pub rounds: Counter,
    pub applies: Family<ApplyLabels, Counter>,
    pub watch_restarts: Family<KindLabel, Counter>,
    pub invalid_input: Family<KindLabel, Counter>,
    pub refusals: Family<ReasonLabel, Counter>,
    pub slicing_timeouts: Counter,
    pub taints_removed: Counter,
    pub leader: Gauge,
    /// Repack moves by outcome: `started`, `finished`, `rolled_back`, `proposed_dry_run`.
    pub repack_moves: Family<OutcomeLabel, Counter>,
    /// Sum of the hourly savings of the moves started.
    pub repack_saving: Counter<f64, AtomicU64>,
    /// Hourly saving of the last proposal's move (0 when none was found).
    pub repack_last_saving: Gauge<f64, AtomicU64>,
    /// Pods evicted by finished moves (re-created by their controllers).
    pub repack_pods_restarted: Counter,
    /// Nodes the last proposal could not move, by `repack::Blocked::reason`.
    pub repack_blocked: Family<ReasonLabel, Gauge>,
    /// Pods the last round could place nowhere, by `planner::UnplacedReason::as_str`.
    pub unplaced_pods: Family<ReasonLabel, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("gpu_slicer");
        let m = Metrics {
            planning_duration: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            pending_gpu_pods: Gauge::default(),
            planned_nodes: Gauge::default(),
            planned_hourly_cost: Gauge::default(),
            rounds: Counter::default(),
            applies: Family::default(),
            watch_restarts: Family::default(),
            invalid_input: Family::default(),
            refusals: Family::default(),
            slicing_timeouts: Counter::default(),
            taints_removed: Counter::default(),
            leader: Gauge::default(),
            repack_moves: Family::default(),
            repack_saving: Counter::default(),
            repack_last_saving: Gauge::default(),
            repack_pods_restarted: Counter::default(),
            repack_blocked: Family::default(),
            unplaced_pods: Family::default(),
            aws_requests: Family::default(),
            catalog_refresh_failures: Family::default(),
            catalog_data_age: Family::default(),
            catalog_fallback: Family::default(),
            webhook_requests: Family::default(),
            webhook_duration: Histogram::new(exponential_buckets(0.0001, 2.0, 14)),
            webhook_certificate_reloads: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "planning_duration_seconds",
            "Wall time of one planning round (plan, render, diff)",
            m.planning_duration.clone(),
        );
        registry.register(
            "pending_gpu_pods",
            "Pending unschedulable GPU pods in the last round",
            m.pending_gpu_pods.clone(),
        );
        registry.register(
            "planned_nodes",
            "New nodes in the last plan",
            m.planned_nodes.clone(),
        );
        registry.register(
            "planned_hourly_cost_dollars",
            "Hourly cost of the new nodes in the last plan",
            m.planned_hourly_cost.clone(),
        );
        registry.register("rounds", "Planning rounds run", m.rounds.clone());
        registry.register(
            "applies",
            "Writes by outcome and error category",
            m.applies.clone(),
        );
        registry.register(
            "watch_restarts",
            "Watch errors after which the watch was restarted, by kind",
            m.watch_restarts.clone(),
        );
        registry.register(
            "invalid_input",
            "Objects that could not be read (pods, NodePools, the device-plugin ConfigMap), by kind",
            m.invalid_input.clone(),
        );
        registry.register(
            "plan_refusals",
            "Plans refused by the budget guard or by render, by reason",
            m.refusals.clone(),
        );
        registry.register(
            "slicing_timeouts",
            "Nodes not sliced as planned within the timeout",
            m.slicing_timeouts.clone(),
        );
        registry.register(
            "startup_taints_removed",
            "Startup taints removed from sliced nodes",
            m.taints_removed.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease",
            m.leader.clone(),
        );
        registry.register(
            "aws_requests",
            "AWS request attempts by API and outcome (ok or the failure reason)",
            m.aws_requests.clone(),
        );
        registry.register(
            "catalog_refresh_failures",
            "Live-data refreshes that failed after retries, by kind of data and reason",
            m.catalog_refresh_failures.clone(),
        );
        registry.register(
            "catalog_data_age_seconds",
            "Age of the live data in use by kind (-1: never fetched)",
            m.catalog_data_age.clone(),
        );
        registry.register(
            "catalog_fallback",
            "1 while a kind of data comes from the embedded or --catalog table instead of AWS",
            m.catalog_fallback.clone(),
        );
        registry.register(
            "webhook_requests",
            "Admission webhook requests by outcome (patched, allowed, rejected, error)",
            m.webhook_requests.clone(),
        );
        registry.register(
            "webhook_duration_seconds",
            "Time to answer one admission webhook request, body read included",
            m.webhook_duration.clone(),
        );
        registry.register(
            "webhook_certificate_reloads",
            "Changes of the webhook's certificate files, by outcome (reloaded, or failed and the old one kept)",
            m.webhook_certificate_reloads.clone(),
        );
        registry.register(
            "repack_moves",
            "Repack moves by outcome (started, finished, rolled_back, proposed_dry_run)",
            m.repack_moves.clone(),
        );
        registry.register(
            "repack_saving_dollars_per_hour",
            "Sum of the hourly savings of the repack moves started",
            m.repack_saving.clone(),
        );
        registry.register(
            "repack_last_proposal_saving_dollars_per_hour",
            "Hourly saving of the move of the last repack proposal (0: none found)",
            m.repack_last_saving.clone(),
        );
        registry.register(
            "repack_pods_restarted",
            "Pods evicted by finished repack moves (re-created by their controllers)",
            m.repack_pods_restarted.clone(),
        );
        registry.register(
            "repack_blocked_nodes",
            "gpu-slicer's nodes the last repack proposal could not move, by reason",
            m.repack_blocked.clone(),
        );
        registry.register(
            "unplaced_pods",
            "Pods the last round could place nowhere, by reason",
            m.unplaced_pods.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut s = String::new();
        if prometheus_client::encoding::text::encode(&mut s, &self.registry).is_err() {
            s.clear();
        }
        s
    }

    pub fn count_apply(&self, outcome: &str, category: &str, n: u64) {
        if n > 0 {
            self.applies
                .get_or_create(&ApplyLabels {
                    outcome: outcome.to_string(),
                    category: category.to_string(),
                })
                .inc_by(n);
        }
    }

    pub fn count_outcome(family: &Family<OutcomeLabel, Counter>, outcome: &str) {
        family
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    pub fn count_kind(family: &Family<KindLabel, Counter>, kind: &str) {
        family
            .get_or_create(&KindLabel {
                kind: kind.to_string(),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_the_prefix_and_labels() {
        let m = Metrics::new();
        m.count_apply("failed", "throttled", 2);
        Metrics::count_kind(&m.watch_restarts, "Pod");
        m.planned_hourly_cost.set(1.5);
        Metrics::count_outcome(&m.webhook_requests, "patched");
        Metrics::count_outcome(&m.repack_moves, "started");
        m.repack_saving.inc_by(0.25);
        m.repack_blocked
            .get_or_create(&ReasonLabel {
                reason: "budget".into(),
            })
            .set(3);
        m.unplaced_pods
            .get_or_create(&ReasonLabel {
                reason: crate::planner::UnplacedReason::PodSlots.as_str().into(),
            })
            .inc();
        let text = m.encode();
        assert!(
            text.contains("gpu_slicer_unplaced_pods{reason=\"pod-slots\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("gpu_slicer_repack_moves_total{outcome=\"started\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("gpu_slicer_repack_saving_dollars_per_hour_total 0.25"),
            "{text}"
        );
        assert!(
            text.contains("gpu_slicer_repack_blocked_nodes{reason=\"budget\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("gpu_slicer_applies_total{outcome=\"failed\",category=\"throttled\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("gpu_slicer_watch_restarts_total{kind=\"Pod\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("gpu_slicer_planned_hourly_cost_dollars 1.5"),
            "{text}"
        );
        assert!(
            text.contains("gpu_slicer_webhook_requests_total{outcome=\"patched\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("gpu_slicer_planning_duration_seconds_bucket"),
            "{text}"
        );
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            assert!(line.starts_with("gpu_slicer_"), "{line}");
        }
    }
}
