//! The search space: node kinds, pod classes, configurations, and the reasons pods
//! fit nowhere.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{PlanOptions, UnplacedReason};
use crate::model::slice::{self, Slice, SliceNeed};
use crate::model::{
    CapacityType, Catalog, DemandItem, Isolation, Operator, Pool, Requirement, Resources, Sharing,
    SharingChoice, Taint, Toleration, labels, tolerates_all,
};

/// A node that could be launched: pool × instance type × capacity type × zone.
#[derive(Debug, Clone)]
pub(crate) struct Kind {
    pub pool: usize,
    pub ty: usize,
    pub ct: CapacityType,
    pub zone: Option<String>,
    pub price: f64,
    pub spot_price: Option<f64>,
    /// Allocatable after DaemonSets.
    pub cap: Resources,
    pub pods: u32,
    pub gpus: u32,
    /// Usable GPU memory per GPU (after the pool's headroom), MiB; for a fractional type,
    /// of its part of a GPU.
    pub gpu_mem_mib: u64,
    /// The slice-fit rule's settings on the pool's nodes ([`PlanOptions::fit_rules`]): the
    /// CUDA context each pod holds, the readings of its share.
    pub rules: slice::FitRules,
    /// What the pool's shared GPUs deliver: the slices' throughput.
    pub efficiency: slice::Efficiency,
    /// The type's share of a physical GPU, thousandths: 1000, or less for a
    /// hardware-fractional type (g6f, gr6f), whose one slice is that part (R = 1).
    pub fraction_milli: u32,
    /// Node labels beyond the instance type's own (pool template labels, pool name,
    /// single-valued pool requirements on custom keys).
    pub labels: BTreeMap<String, String>,
    /// The pool's requirements name `kubernetes.io/arch` (and this type satisfies them).
    pub arch_named: bool,
    /// Shared GPUs of this kind use MPS, not time-slicing (whole-GPU types of pools whose
    /// `sharing-strategy` is `mps`, or `auto` when some pod asks for memory isolation).
    pub mps: bool,
}

/// True for the architecture label, GA or beta.
fn is_arch_key(k: &str) -> bool {
    k == labels::ARCH || k == labels::ARCH_BETA
}

/// Pods that are interchangeable for placement.
#[derive(Debug, Clone)]
pub(crate) struct Class {
    /// Indices into the demand items, in input order.
    pub items: Vec<usize>,
    pub cpu: u64,
    pub mem: u64,
    /// Slices (shared) or whole GPUs (exclusive) per pod.
    pub gpus: u32,
    /// Per kind: the largest allowed replicas per GPU this class tolerates there, 0 = cannot go.
    pub r: Vec<u32>,
    /// What makes the class (requests, sharing, selectors, tolerations), hashed: the same
    /// in every plan, for the column cache ([`super::Columns`]).
    pub key: u64,
}

/// A kind run with a given number of replicas per GPU.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub kind: usize,
    pub r: u32,
    pub price: f64,
    /// cpu, memory, pod slots, GPU slices.
    pub cap: [u64; 4],
    /// Classes that may go on it, with how many fit on an empty node (≤ demand).
    pub eligible: Vec<(usize, u32)>,
}

pub(crate) struct Space {
    pub kinds: Vec<Kind>,
    pub classes: Vec<Class>,
    pub configs: Vec<Config>,
    /// Per configuration: (pool, type, capacity type, zone, R) hashed, for the column cache.
    pub config_keys: Vec<u64>,
    /// Items that fit nowhere, with the reason.
    pub unplaced: Vec<(usize, UnplacedReason)>,
}

#[derive(PartialEq, Eq, Hash)]
struct ClassKey<'a> {
    requests: Resources,
    gpus: u32,
    sharing: Sharing,
    gpu_memory_mib: Option<u64>,
    gpu_memory_excludes_context: bool,
    gpu_share_milli: Option<u32>,
    gpu_memory_fraction_milli: Option<u32>,
    isolation: Isolation,
    node_selector: &'a BTreeMap<String, String>,
    affinity_terms: &'a Vec<Vec<Requirement>>,
    tolerations: &'a Vec<Toleration>,
}

/// A node label's value as far as planning knows it.
enum LabelValue<'a> {
    Known(std::borrow::Cow<'a, str>),
    Absent,
    /// Zone of a node not pinned to a zone: Karpenter picks one.
    AnyZone,
    /// A slice label (`model::slice`): it depends on the R chosen per node, so
    /// requirements on it are checked per R ([`replicas_on`]), not per kind.
    PerReplicas,
}

fn is_zone_key(k: &str) -> bool {
    k == labels::ZONE || k == labels::ZONE_BETA
}

impl Kind {
    /// The node's slice at `r` replicas per GPU (`model::slice`); a fractional type has
    /// only R = 1, its part of a GPU.
    pub(crate) fn slice(&self, r: u32) -> Slice {
        self.slice_shared(r, self.mps)
    }

    /// The node's slice at `r`, shared by MPS when `mps`, else time-sliced.
    pub(crate) fn slice_shared(&self, r: u32, mps: bool) -> Slice {
        Slice::of_node(
            self.gpu_mem_mib,
            self.fraction_milli,
            r,
            mps,
            self.efficiency,
        )
    }

    /// The replicas per GPU this kind may run from the pool's `allowed`: only 1 on a
    /// fractional type (no time-slicing on top of a hardware part).
    fn allowed<'a>(&self, allowed: &'a [u32]) -> &'a [u32] {
        if self.fraction_milli < 1000 {
            &[1]
        } else {
            allowed
        }
    }

    fn label<'a>(&'a self, catalog: &'a Catalog, key: &str) -> LabelValue<'a> {
        if key == labels::CAPACITY_TYPE {
            return LabelValue::Known(self.ct.as_str().into());
        }
        if slice::is_slice_key(key) {
            return LabelValue::PerReplicas;
        }
        if is_zone_key(key) {
            return match &self.zone {
                Some(z) => LabelValue::Known(z.as_str().into()),
                None => LabelValue::AnyZone,
            };
        }
        if let Some(v) = catalog.types[self.ty].label(key) {
            return LabelValue::Known(v.into());
        }
        match self.labels.get(key) {
            Some(v) => LabelValue::Known(v.as_str().into()),
            None => LabelValue::Absent,
        }
    }

    fn satisfies(&self, catalog: &Catalog, r: &Requirement) -> bool {
        match self.label(catalog, &r.key) {
            LabelValue::Known(v) => r.matches(Some(&v)),
            LabelValue::Absent => r.matches(None),
            LabelValue::AnyZone => matches!(r.operator, Operator::NotIn | Operator::Exists),
            LabelValue::PerReplicas => true,
        }
    }

    /// The pod's node selector and required node affinity allow this kind. A type of
    /// another architecture than `amd64` (arm64 `g5g`) is only for pods or pools that
    /// name `kubernetes.io/arch` and allow it: images are amd64 unless said otherwise,
    /// and Karpenter would otherwise launch a Graviton node for a pod that cannot run.
    fn matches_pod(&self, catalog: &Catalog, it: &DemandItem) -> bool {
        let other_arch = !catalog.types[self.ty].is_default_arch();
        let named = self.arch_named || it.node_selector.keys().any(|k| is_arch_key(k));
        let sel = it.node_selector.iter().all(|(k, v)| {
            self.satisfies(
                catalog,
                &Requirement {
                    key: k.clone(),
                    operator: Operator::In,
                    values: vec![v.clone()],
                },
            )
        });
        sel && if it.affinity_terms.is_empty() {
            !other_arch || named
        } else {
            it.affinity_terms.iter().any(|t| {
                t.iter().all(|r| self.satisfies(catalog, r))
                    && (!other_arch || named || t.iter().any(|r| is_arch_key(&r.key)))
            })
        }
    }
}

/// Zones named by pods' `In` requirements and node selectors.
fn zones_of(items: &[DemandItem]) -> BTreeSet<String> {
    let mut z = BTreeSet::new();
    for it in items {
        for (k, v) in &it.node_selector {
            if is_zone_key(k) {
                z.insert(v.clone());
            }
        }
        for r in it.affinity_terms.iter().flatten() {
            if is_zone_key(&r.key) && matches!(r.operator, Operator::In) {
                z.extend(r.values.iter().cloned());
            }
        }
    }
    z
}

fn build_kinds(
    catalog: &Catalog,
    items: &[DemandItem],
    pools: &[Pool],
    opts: &PlanOptions,
) -> Vec<Kind> {
    let zones: Vec<Option<String>> = std::iter::once(None)
        .chain(zones_of(items).into_iter().map(Some))
        .collect();
    let ds = opts.daemonset_overhead;
    // MPS is worth a kind of its own in an `auto` pool only when some pod needs memory
    // isolation on a shared GPU, or when shares are read as throughput and some pod
    // declares one (MPS gives each of R busy pods more than time-slicing does): for
    // every other pod it offers the same slices as time-slicing (and refuses
    // multi-GPU requests).
    let isolated = items
        .iter()
        .any(|it| it.isolation == Isolation::Memory && it.sharing == Sharing::Shared);
    let shares = items
        .iter()
        .any(|it| it.gpu_share_milli.is_some() && it.sharing == Sharing::Shared);
    let mut kinds = Vec::new();
    for (pi, pool) in pools.iter().enumerate() {
        let by_throughput = shares && opts.fit_rules(Some(pool)).shares.throughput;
        let mps_choices: &[bool] = match pool.sharing_strategy {
            SharingChoice::TimeSlicing => &[false],
            SharingChoice::Mps => &[true],
            SharingChoice::Auto if isolated || by_throughput => &[false, true],
            SharingChoice::Auto => &[false],
        };
        // Labels a node of this pool carries besides the instance type's.
        let mut extra = pool.labels.clone();
        extra.insert(labels::NODEPOOL.to_string(), pool.name.clone());
        for r in &pool.requirements {
            let known = catalog
                .types
                .first()
                .is_some_and(|t| t.label(&r.key).is_some())
                || r.key == labels::CAPACITY_TYPE
                || is_zone_key(&r.key);
            if !known
                && r.operator == Operator::In
                && let Some(v) = r.values.first()
            {
                extra.entry(r.key.clone()).or_insert_with(|| v.clone());
            }
        }
        for (ti, t) in catalog.types.iter().enumerate() {
            if !opts.instance_types.is_empty() && !opts.instance_types.contains(&t.name) {
                continue;
            }
            if !opts.families.is_empty() && !opts.families.contains(&t.family) {
                continue;
            }
            if !t.is_plannable() || (t.is_fractional() && !opts.fractional_gpus) {
                continue;
            }
            for &ct in &opts.capacity_types {
                let Some(price) = t.price(ct) else { continue };
                if !(price.is_finite() && price > 0.0) {
                    continue;
                }
                let choices = if t.is_fractional() {
                    &[false][..]
                } else {
                    mps_choices
                };
                for (zone, &mps) in zones
                    .iter()
                    .flat_map(|z| choices.iter().map(move |m| (z, m)))
                {
                    let k = Kind {
                        pool: pi,
                        ty: ti,
                        ct,
                        zone: zone.clone(),
                        price,
                        spot_price: t.spot_price,
                        cap: t.allocatable.saturating_sub(ds.resources),
                        pods: t.max_pods.saturating_sub(ds.pods),
                        gpus: t.gpu_count,
                        gpu_mem_mib: t
                            .gpu_memory_mib
                            .saturating_sub(pool.gpu_memory_headroom_mib),
                        rules: opts.fit_rules(Some(pool)),
                        efficiency: opts.efficiency(Some(pool)),
                        fraction_milli: t.gpu_fraction_milli,
                        labels: extra.clone(),
                        arch_named: pool.requirements.iter().any(|r| is_arch_key(&r.key)),
                        mps,
                    };
                    if pool.requirements.iter().all(|r| k.satisfies(catalog, r)) {
                        kinds.push(k);
                    }
                }
            }
        }
    }
    kinds
}

/// Largest R of `allowed` whose slice of the kind's GPUs is safe for the pod (the
/// slice-fit rule, `model::slice`) and allowed by the pod's own requirements on slice
/// labels, with enough slices on the node for its `nvidia.com/gpu`; ignoring cpu/memory/
/// pod slots; 0 if none. A class is eligible on configurations of every R up to this one:
/// the rule is monotone in R, and so are the requirements admission adds (a hand-written
/// term that refuses a *smaller* R, such as `replicas In ["4"]`, is honoured only at the
/// largest R).
fn replicas_on(it: &DemandItem, k: &Kind, allowed: &[u32]) -> u32 {
    let need = SliceNeed::of(it, k.rules);
    let best = k
        .allowed(allowed)
        .iter()
        .copied()
        .filter(|&r| {
            let s = k.slice(r);
            need.fits(&s) && slice::terms_allow(it, &s)
        })
        .max()
        .unwrap_or(0);
    let slots = match it.sharing {
        // Exclusive pods take whole GPUs (their best R is 1).
        Sharing::Exclusive => u64::from(k.gpus),
        Sharing::Shared => u64::from(k.gpus) * u64::from(best),
    };
    if best == 0 || u64::from(it.gpus) > slots {
        0
    } else {
        best
    }
}

fn fits_empty(it: &DemandItem, k: &Kind) -> bool {
    it.requests.fits_in(k.cap) && k.pods >= 1
}

pub(super) fn gib(bytes_or_mib: f64) -> String {
    let v = bytes_or_mib;
    if (v - v.round()).abs() < 0.005 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// Why a pod fits no kind, found by applying the filters one at a time.
fn reason(
    catalog: &Catalog,
    it: &DemandItem,
    kinds: &[Kind],
    pools: &[Pool],
    allowed: &[Vec<u32>],
) -> UnplacedReason {
    if kinds.is_empty() {
        return UnplacedReason::NoInstanceType;
    }
    let by_label: Vec<&Kind> = kinds
        .iter()
        .filter(|k| k.matches_pod(catalog, it))
        .collect();
    if by_label.is_empty() {
        let mut keys: BTreeSet<&str> = it.node_selector.keys().map(String::as_str).collect();
        keys.extend(it.affinity_terms.iter().flatten().map(|r| r.key.as_str()));
        return UnplacedReason::NodeSelector {
            keys: keys.into_iter().map(str::to_string).collect(),
        };
    }
    let by_taint: Vec<&Kind> = by_label
        .iter()
        .copied()
        .filter(|k| tolerates_all(&it.tolerations, &pools[k.pool].taints))
        .collect();
    if by_taint.is_empty() {
        let k = by_label[0];
        let t: Option<&Taint> = pools[k.pool]
            .taints
            .iter()
            .find(|t| !tolerates_all(&it.tolerations, std::slice::from_ref(*t)));
        return match t {
            Some(t) => UnplacedReason::Taint {
                taint: format!(
                    "{}{}:{:?}",
                    t.key,
                    t.value
                        .as_ref()
                        .map(|v| format!("={v}"))
                        .unwrap_or_default(),
                    t.effect
                ),
                pool: pools[k.pool].name.clone(),
            },
            None => UnplacedReason::Taints,
        };
    }
    if it.sharing == Sharing::Exclusive {
        let max = by_taint.iter().map(|k| k.gpus).max().unwrap_or(0);
        if it.gpus > max {
            return UnplacedReason::WholeGpus {
                needs: it.gpus,
                most: max,
            };
        }
    }
    // Its GPU memory with the CUDA context of each kind's pool (`model::slice`): too much
    // for every GPU even alone on it.
    let needs = |k: &Kind| slice::memory_with_context(it, k.rules.context_mib);
    if !by_taint.is_empty()
        && by_taint
            .iter()
            .all(|k| needs(k).is_some_and(|m| m > k.gpu_mem_mib))
    {
        let max = by_taint.iter().map(|k| k.gpu_mem_mib).max().unwrap_or(0);
        let least = by_taint.iter().filter_map(|k| needs(k)).min().unwrap_or(0);
        let headroom = by_taint
            .iter()
            .map(|k| pools[k.pool].gpu_memory_headroom_mib)
            .max()
            .unwrap_or(0);
        return UnplacedReason::GpuMemory {
            needs_mib: least,
            most_mib: max,
            headroom_mib: headroom,
        };
    }
    let by_gpu: Vec<&Kind> = by_taint
        .iter()
        .copied()
        .filter(|k| replicas_on(it, k, &allowed[k.pool]) > 0)
        .collect();
    if by_gpu.is_empty() {
        let max = by_taint
            .iter()
            .map(|k| u64::from(k.gpus) * u64::from(*allowed[k.pool].last().unwrap_or(&1)))
            .max()
            .unwrap_or(0);
        return UnplacedReason::GpuSlices {
            needs: it.gpus,
            most: max,
        };
    }
    let max_cpu = by_gpu.iter().map(|k| k.cap.cpu_milli).max().unwrap_or(0);
    let max_mem = by_gpu.iter().map(|k| k.cap.memory_bytes).max().unwrap_or(0);
    if it.requests.cpu_milli > max_cpu {
        return UnplacedReason::Cpu {
            requests_milli: it.requests.cpu_milli,
            most_milli: max_cpu,
        };
    }
    if it.requests.memory_bytes > max_mem {
        return UnplacedReason::Memory {
            requests_bytes: it.requests.memory_bytes,
            most_bytes: max_mem,
        };
    }
    if by_gpu.iter().all(|k| k.pods == 0) {
        return UnplacedReason::PodSlots;
    }
    UnplacedReason::CpuAndMemory
}

impl Space {
    pub fn build(
        catalog: &Catalog,
        items: &[DemandItem],
        pools: &[Pool],
        opts: &PlanOptions,
    ) -> Space {
        let kinds = build_kinds(catalog, items, pools, opts);
        let allowed: Vec<Vec<u32>> = pools.iter().map(|p| p.replicas.allowed()).collect();

        // Group identical pods.
        let mut index: HashMap<ClassKey<'_>, usize> = HashMap::new();
        let mut groups: Vec<Vec<usize>> = Vec::new();
        let mut keys: Vec<u64> = Vec::new();
        for (i, it) in items.iter().enumerate() {
            let key = ClassKey {
                requests: it.requests,
                gpus: it.gpus,
                sharing: it.sharing,
                gpu_memory_mib: it.gpu_memory_mib,
                gpu_memory_excludes_context: it.gpu_memory_excludes_context,
                gpu_share_milli: it.gpu_share_milli,
                gpu_memory_fraction_milli: it.gpu_memory_fraction_milli,
                isolation: it.isolation,
                node_selector: &it.node_selector,
                affinity_terms: &it.affinity_terms,
                tolerations: &it.tolerations,
            };
            let next = groups.len();
            let hashed = stable_hash(&key);
            let g = *index.entry(key).or_insert(next);
            if g == next {
                groups.push(Vec::new());
                keys.push(hashed);
            }
            groups[g].push(i);
        }

        let mut classes = Vec::new();
        let mut unplaced = Vec::new();
        for (g, key) in groups.into_iter().zip(keys) {
            let it = &items[g[0]];
            let r: Vec<u32> = kinds
                .iter()
                .map(|k| {
                    if it.gpus == 0
                        || !fits_empty(it, k)
                        || !tolerates_all(&it.tolerations, &pools[k.pool].taints)
                        || !k.matches_pod(catalog, it)
                    {
                        0
                    } else {
                        replicas_on(it, k, &allowed[k.pool])
                    }
                })
                .collect();
            if r.iter().all(|x| *x == 0) {
                let why = if it.gpus == 0 {
                    UnplacedReason::NoGpu
                } else {
                    reason(catalog, it, &kinds, pools, &allowed)
                };
                unplaced.extend(g.into_iter().map(|i| (i, why.clone())));
                continue;
            }
            classes.push(Class {
                cpu: it.requests.cpu_milli,
                mem: it.requests.memory_bytes,
                gpus: it.gpus,
                items: g,
                r,
                key,
            });
        }

        let mut configs = Vec::new();
        for (ki, k) in kinds.iter().enumerate() {
            let rs: BTreeSet<u32> = classes.iter().map(|c| c.r[ki]).filter(|r| *r > 0).collect();
            for r in rs {
                let slices = u64::from(k.gpus) * u64::from(r);
                let cap = [
                    k.cap.cpu_milli,
                    k.cap.memory_bytes,
                    u64::from(k.pods),
                    slices,
                ];
                let eligible: Vec<(usize, u32)> = classes
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.r[ki] >= r)
                    .filter_map(|(ci, c)| {
                        let w = [c.cpu, c.mem, 1, u64::from(c.gpus)];
                        let mut n = c.items.len() as u64;
                        for (&cd, &wd) in cap.iter().zip(&w) {
                            if let Some(m) = cd.checked_div(wd) {
                                n = n.min(m);
                            }
                        }
                        (n > 0).then(|| (ci, u32::try_from(n).unwrap_or(u32::MAX)))
                    })
                    .collect();
                if !eligible.is_empty() {
                    configs.push(Config {
                        kind: ki,
                        r,
                        price: k.price,
                        cap,
                        eligible,
                    });
                }
            }
        }
        let configs = undominated(configs, classes.len());
        let config_keys = configs
            .iter()
            .map(|q| {
                let k = &kinds[q.kind];
                stable_hash(&(
                    &pools[k.pool].name,
                    &catalog.types[k.ty].name,
                    k.ct.as_str(),
                    &k.zone,
                    q.r,
                    k.mps,
                ))
            })
            .collect();
        Space {
            kinds,
            classes,
            configs,
            config_keys,
            unplaced,
        }
    }
}

/// A hash that is the same in every run (std's SipHash with its fixed default keys).
fn stable_hash<T: std::hash::Hash>(t: &T) -> u64 {
    use std::hash::{DefaultHasher, Hasher};
    let mut h = DefaultHasher::new();
    t.hash(&mut h);
    h.finish()
}

/// Drops every configuration another one dominates: costs no more, is no smaller in any
/// dimension, and admits a superset of its classes, as many of each. Any node of the
/// dominated one fits the other at no more cost, so no plan or bound gets worse. Of equal
/// configurations the first is kept. R values need no separate pruning: configurations
/// exist only for R values some class tolerates at most.
fn undominated(configs: Vec<Config>, classes: usize) -> Vec<Config> {
    let words = classes.div_ceil(64).max(1);
    let sets: Vec<Vec<u64>> = configs
        .iter()
        .map(|q| {
            let mut b = vec![0u64; words];
            for &(c, _) in &q.eligible {
                b[c / 64] |= 1 << (c % 64);
            }
            b
        })
        .collect();
    let dominates = |k: usize, j: usize| -> bool {
        let (a, b) = (&configs[k], &configs[j]);
        a.price <= b.price
            && (0..4).all(|d| a.cap[d] >= b.cap[d])
            && sets[j].iter().zip(&sets[k]).all(|(x, y)| x & !y == 0)
            && b.eligible.iter().all(|&(c, m)| {
                a.eligible
                    .binary_search_by_key(&c, |e| e.0)
                    .is_ok_and(|i| a.eligible[i].1 >= m)
            })
    };
    let keep: Vec<bool> = (0..configs.len())
        .map(|j| {
            !(0..configs.len()).any(|k| k != j && dominates(k, j) && (k < j || !dominates(j, k)))
        })
        .collect();
    configs
        .into_iter()
        .zip(keep)
        .filter_map(|(q, k)| k.then_some(q))
        .collect()
}
