//! `render`: a plan → the Kubernetes objects that make Karpenter launch exactly that
//! capacity, on nodes that come up already time-sliced. Pure: plan, frame and options in,
//! typed objects (serialised to JSON values) out.
//!
//! Planned nodes are grouped by (pool, replicas per GPU, zone). Each group becomes, by
//! emission mode (CONTRACT.md, "Emission modes"):
//!
//! | mode | objects per group |
//! |---|---|
//! | `overlay` | NodePool v1 pinned to the planned types and capacity types, limit `nvidia.com/gpu` = planned slices; a NodeOverlay v1alpha1 per GPU count with `nvidia.com/gpu` = count × R |
//! | `static` | a static NodePool v1 (`replicas`, `limits.nodes`) per planned (type, capacity type), each with its NodeOverlay |
//! | `nodeclaim` | a NodeClaim v1 per planned node, one type and capacity type each, `expireAfter: Never` |
//! | `v1beta1` | NodePool v1beta1 pinned to the planned types, limit `nvidia.com/gpu` = planned physical GPUs |
//! | `v1alpha5` | Provisioner v1alpha5 + AWSNodeTemplate v1alpha1, limit `nvidia.com/gpu` = planned physical GPUs |
//!
//! plus the node class (an EC2NodeClass of the mode's version, generated or derived from
//! the user's), and once for all groups the device-plugin ConfigMap with a key per
//! profile. Names are stable: derived from the pool, the profile, the zone and (for static
//! pools and NodeClaims) the type and ordinal, never random, so a new plan updates the
//! same objects in place.
//!
//! Size (~640 code lines): the emission choice, the orchestration per pool and the
//! `RenderError` every emitter returns; the emitters (`v1.rs`, `legacy.rs`), names
//! (`naming.rs`), validation (`validate.rs`), bootstrap and the frame are their own files.

pub mod bootstrap;
mod deviceplugin;
mod frame;
pub use frame::settle_sharing;
mod legacy;
mod naming;
mod v1;
mod validate;

pub(crate) use naming::fnv1a;
pub use naming::{NAME_MAX, describe_object, fit_name};
pub use validate::check_profiles;
use validate::{check_unique_names, dedup_by_identity};

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use crate::config::DevicePluginConfig;
use crate::model::contract::{
    DEVICE_PLUGIN_CONFIG_LABEL, POOL_LABEL, PROFILE_LABEL, RESERVED_NODE_LABELS,
    SLICING_PENDING_TAINT, slicing_pending,
};
use crate::model::slice::{NodeSharing, Slice};
use crate::model::{CapacityType, Catalog, NVIDIA_GPU, Pool, Requirement, Taint, labels};
use crate::planner::{Plan, PlannedNode};

pub use deviceplugin::{ChartConfig, ChartGfd, ChartValues, DEVICE_PLUGIN_CONFIGMAP, config_text};

/// Weight of generated NodeOverlays: above hand-written overlays of the same types.
pub const OVERLAY_WEIGHT: i32 = 1000;

/// How a plan is written as Karpenter objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Emission {
    /// By `--karpenter-version` (and, in the controller, by what the cluster serves).
    Auto,
    Overlay,
    Static,
    NodeClaim,
    V1beta1,
    V1alpha5,
}

impl Emission {
    pub const ALL: [Emission; 6] = [
        Emission::Auto,
        Emission::Overlay,
        Emission::Static,
        Emission::NodeClaim,
        Emission::V1beta1,
        Emission::V1alpha5,
    ];

    pub fn parse(s: &str) -> Option<Emission> {
        Self::ALL.into_iter().find(|e| e.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Emission::Auto => "auto",
            Emission::Overlay => "overlay",
            Emission::Static => "static",
            Emission::NodeClaim => "nodeclaim",
            Emission::V1beta1 => "v1beta1",
            Emission::V1alpha5 => "v1alpha5",
        }
    }

    /// What `auto` means for a Karpenter version: ≤ 0.32 `v1alpha5`; 0.33–0.37 `v1beta1`;
    /// 1.0–1.6 `nodeclaim` (v1 without NodeOverlay); ≥ 1.7 `overlay` (the `NodeOverlay`
    /// feature gate must be on).
    pub fn for_version(v: KarpenterVersion) -> Emission {
        if v < KarpenterVersion::new(0, 33) {
            Emission::V1alpha5
        } else if v < KarpenterVersion::new(1, 0) {
            Emission::V1beta1
        } else if v < KarpenterVersion::new(1, 7) {
            Emission::NodeClaim
        } else {
            Emission::Overlay
        }
    }
}

impl fmt::Display for Emission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Karpenter release, major.minor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct KarpenterVersion {
    pub major: u32,
    pub minor: u32,
}

impl KarpenterVersion {
    /// The release whose CRDs gpu-slicer's types are generated from.
    pub const NEWEST_KNOWN: KarpenterVersion = KarpenterVersion::new(1, 14);

    pub const fn new(major: u32, minor: u32) -> Self {
        KarpenterVersion { major, minor }
    }

    /// `1.14`, `v1.14.1`, `0.32.10`.
    pub fn parse(s: &str) -> Option<KarpenterVersion> {
        let s = s.strip_prefix('v').unwrap_or(s);
        let mut parts = s.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        match parts.next() {
            None => {}
            Some(p) if p.parse::<u32>().is_ok() => {}
            Some(_) => return None,
        }
        if parts.next().is_some() {
            return None;
        }
        Some(KarpenterVersion { major, minor })
    }
}

impl fmt::Display for KarpenterVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// AMI family of the node classes gpu-slicer generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmiFamily {
    Bottlerocket,
    Al2023,
    Al2,
}

impl AmiFamily {
    pub fn parse(s: &str) -> Option<AmiFamily> {
        match s.to_ascii_lowercase().as_str() {
            "bottlerocket" => Some(AmiFamily::Bottlerocket),
            "al2023" => Some(AmiFamily::Al2023),
            "al2" => Some(AmiFamily::Al2),
            _ => None,
        }
    }

    /// The `amiSelectorTerms` alias family (`bottlerocket@latest`).
    pub fn alias(self) -> &'static str {
        match self {
            AmiFamily::Bottlerocket => "bottlerocket",
            AmiFamily::Al2023 => "al2023",
            AmiFamily::Al2 => "al2",
        }
    }

    /// The `amiFamily` field value of v1beta1 and v1alpha5.
    pub fn field(self) -> &'static str {
        match self {
            AmiFamily::Bottlerocket => "Bottlerocket",
            AmiFamily::Al2023 => "AL2023",
            AmiFamily::Al2 => "AL2",
        }
    }

    /// The userData that preloads the sharing of `slice`.
    pub fn user_data(self, slice: &Slice, fail_requests_greater_than_one: bool) -> String {
        match self {
            AmiFamily::Bottlerocket => {
                bootstrap::bottlerocket_toml(slice, fail_requests_greater_than_one)
            }
            AmiFamily::Al2023 | AmiFamily::Al2 => bootstrap::mime_userdata(slice),
        }
    }

    /// Root (AL) or data (Bottlerocket) volume device that holds container images.
    fn image_volume_device(self) -> &'static str {
        match self {
            AmiFamily::Bottlerocket => "/dev/xvdb",
            AmiFamily::Al2023 | AmiFamily::Al2 => "/dev/xvda",
        }
    }

    /// The block device mapping of generated node classes (the same JSON shape in v1,
    /// v1beta1 and v1alpha5): [`IMAGE_VOLUME_SIZE`] of encrypted gp3 for images.
    pub(crate) fn image_volume(self) -> Value {
        serde_json::json!({
            "deviceName": self.image_volume_device(),
            "ebs": {"volumeSize": IMAGE_VOLUME_SIZE, "volumeType": "gp3", "encrypted": true, "deleteOnTermination": true}
        })
    }
}

/// Size of the volume that holds container images on generated node classes (CUDA
/// images are several GiB; Karpenter's defaults are 20 GiB).
pub const IMAGE_VOLUME_SIZE: &str = "100Gi";

/// How to render.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderOptions {
    /// Forced mode, or `Auto`: then a pool's `gpu-slicer.io/emission` annotation, else
    /// [`Emission::for_version`] of `karpenter_version`.
    pub emission: Emission,
    pub karpenter_version: KarpenterVersion,
    /// What `auto` means when the cluster was asked (the controller's discovery); wins
    /// over `karpenter_version`.
    pub discovered: Option<Emission>,
    /// AMI family of generated node classes.
    pub ami_family: AmiFamily,
    /// AMI version in the generated `amiSelectorTerms` alias (`latest`, or a pinned one).
    pub ami_version: String,
    /// Cluster name for the `karpenter.sh/discovery` subnet and security-group selectors.
    pub cluster_name: String,
    /// IAM role of generated EC2NodeClasses (default `KarpenterNodeRole-<cluster>`).
    pub node_role: Option<String>,
    /// Instance profile of generated AWSNodeTemplates (default
    /// `KarpenterNodeInstanceProfile-<cluster>`).
    pub instance_profile: Option<String>,
    /// Namespace and name of the device-plugin ConfigMap gpu-slicer writes.
    pub configmap_namespace: String,
    pub configmap_name: String,
    /// `failRequestsGreaterThanOne` in every time-slicing profile.
    pub fail_requests_greater_than_one: bool,
}

/// Placeholder cluster name used when none is given.
pub const CLUSTER_PLACEHOLDER: &str = "CLUSTER_NAME";

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            emission: Emission::Auto,
            karpenter_version: KarpenterVersion::NEWEST_KNOWN,
            discovered: None,
            ami_family: AmiFamily::Al2023,
            ami_version: "latest".to_string(),
            cluster_name: CLUSTER_PLACEHOLDER.to_string(),
            node_role: None,
            instance_profile: None,
            configmap_namespace: "kube-system".to_string(),
            configmap_name: DEVICE_PLUGIN_CONFIGMAP.to_string(),
            fail_requests_greater_than_one: false,
        }
    }
}

impl RenderOptions {
    fn node_role(&self) -> String {
        self.node_role
            .clone()
            .unwrap_or_else(|| format!("KarpenterNodeRole-{}", self.cluster_name))
    }

    fn instance_profile(&self) -> String {
        self.instance_profile
            .clone()
            .unwrap_or_else(|| format!("KarpenterNodeInstanceProfile-{}", self.cluster_name))
    }

    fn discovery(&self) -> BTreeMap<String, String> {
        BTreeMap::from([(
            "karpenter.sh/discovery".to_string(),
            self.cluster_name.clone(),
        )])
    }
}

/// The user's objects among the inputs that frame the generated ones.
#[derive(Debug, Clone, Copy, Default)]
pub struct Frame<'a> {
    /// Annotated NodePools/Provisioners and their raw objects.
    pub pools: &'a [(Pool, Value)],
    /// EC2NodeClasses among the inputs.
    pub ec2nodeclasses: &'a [Value],
    /// The user's device-plugin ConfigMap, when among the inputs.
    pub device_plugin: Option<&'a DevicePluginConfig>,
    /// Nodes gpu-slicer already runs or has launched (the controller's fleet): their
    /// pools keep them, counted in limits, overlays and static replicas; only the plan's
    /// new nodes get NodeClaims.
    pub fleet: &'a [PlannedNode],
}

/// Configuration that cannot be rendered: the object, the field and why.
///
/// Displays as `{object}: field `{field}`: {message}`, leaving out the parts that are
/// empty. An error made from another one (a [`FieldError`](crate::config::FieldError) of
/// the frame, a serialiser's error, a userData conflict) keeps it as its
/// [`source`](std::error::Error::source), shared so that the error stays `Clone`
/// (downcast through `cause`); the message already says what it says.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}{}{message}", prefix(object, ""), prefix(field, "field "))]
pub struct RenderError {
    /// `NodePool gpu`, `ConfigMap kube-system/nvidia-device-plugin`, or empty.
    pub object: String,
    /// Field path inside the object, or a flag (`--emission`), or empty.
    pub field: String,
    pub message: String,
    /// The error this one was made from, if any.
    #[source]
    pub cause: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

/// `{what}{s}: ` (`s` in backquotes after `field `), or nothing for an empty `s`.
fn prefix(s: &str, what: &str) -> String {
    match (s.is_empty(), what.is_empty()) {
        (true, _) => String::new(),
        (false, true) => format!("{s}: "),
        (false, false) => format!("{what}`{s}`: "),
    }
}

impl RenderError {
    pub fn new(object: &str, field: impl Into<String>, message: impl Into<String>) -> Self {
        RenderError {
            object: object.to_string(),
            field: field.into(),
            message: message.into(),
            cause: None,
        }
    }

    /// The same error, made from `cause`.
    pub fn caused_by(self, cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        RenderError {
            cause: Some(Arc::new(cause)),
            ..self
        }
    }

    /// The same error (and cause) about `object`.
    pub fn of(self, object: &str) -> Self {
        RenderError {
            object: object.to_string(),
            ..self
        }
    }
}

/// The objects that realise a plan.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// In apply order: device-plugin ConfigMap, node classes, NodePools/Provisioners,
    /// NodeOverlays, NodeClaims.
    pub objects: Vec<Value>,
    /// The emission mode each pool was rendered in.
    pub modes: BTreeMap<String, Emission>,
    /// The NVIDIA device plugin Helm chart values that select the ConfigMap.
    pub chart_values: ChartValues,
    /// What the user should know (placeholders, limits of a mode, unplaced pods).
    pub notes: Vec<String>,
}

impl Rendered {
    /// Multi-document YAML for `kubectl apply -f -`, with the notes and chart values as
    /// leading comments.
    pub fn to_yaml(&self) -> Result<String, RenderError> {
        let mut out = String::from("# Rendered by gpu-slicer.\n");
        out.push_str(&format!(
            "# NVIDIA device plugin Helm values: --set config.name={} --set config.default={}{}\n",
            self.chart_values.config.name,
            self.chart_values.config.default,
            if self.chart_values.gfd.is_some_and(|g| g.enabled) {
                " --set gfd.enabled=true"
            } else {
                ""
            }
        ));
        for n in &self.notes {
            out.push_str(&format!("# note: {n}\n"));
        }
        for o in &self.objects {
            let text = serde_saphyr::to_string(o).map_err(|e| {
                RenderError::new(&describe_object(o), "", format!("cannot write YAML: {e}"))
                    .caused_by(e)
            })?;
            out.push_str("---\n");
            out.push_str(&text);
            if !text.ends_with('\n') {
                out.push('\n');
            }
        }
        Ok(out)
    }
}

/// Planned nodes that share one NodePool: same pool, replicas per GPU, zone and slice
/// (so the slice labels of its template hold for every type it may launch).
#[derive(Debug)]
pub(crate) struct Group<'a> {
    pub pool: &'a Pool,
    pub frame: &'a frame::PoolFrame,
    pub r: u32,
    pub zone: Option<&'a str>,
    /// The slice every node of the group has (`model::slice`).
    pub slice: Slice,
    /// NodePool (and generated node class) name.
    pub name: String,
    /// Existing and new nodes of the group.
    pub nodes: Vec<&'a PlannedNode>,
    /// The plan's new nodes only.
    pub fresh: Vec<&'a PlannedNode>,
}

impl Group<'_> {
    pub fn profile(&self) -> String {
        self.slice.profile()
    }

    /// Distinct planned instance types, sorted.
    pub fn types(&self) -> Vec<String> {
        let s: BTreeSet<&str> = self
            .nodes
            .iter()
            .map(|n| n.instance_type.as_str())
            .collect();
        s.into_iter().map(str::to_string).collect()
    }

    pub fn capacity_types(&self) -> Vec<CapacityType> {
        let s: BTreeSet<CapacityType> = self.nodes.iter().map(|n| n.capacity_type).collect();
        s.into_iter().collect()
    }

    pub fn gpus(&self) -> u64 {
        self.nodes.iter().map(|n| u64::from(n.gpus)).sum()
    }

    pub fn slices(&self) -> u64 {
        self.gpus() * u64::from(self.r)
    }

    /// Instance types by GPU count.
    pub fn types_by_gpu_count(&self) -> BTreeMap<u32, Vec<String>> {
        let mut m: BTreeMap<u32, BTreeSet<String>> = BTreeMap::new();
        for n in &self.nodes {
            m.entry(n.gpus).or_default().insert(n.instance_type.clone());
        }
        m.into_iter()
            .map(|(k, v)| (k, v.into_iter().collect()))
            .collect()
    }

    /// Planned node count per (instance type, capacity type), with the GPU count.
    pub fn counts(&self) -> BTreeMap<(String, CapacityType), (u32, u32)> {
        let mut m: BTreeMap<(String, CapacityType), (u32, u32)> = BTreeMap::new();
        for n in &self.nodes {
            let e = m
                .entry((n.instance_type.clone(), n.capacity_type))
                .or_insert((0, n.gpus));
            e.0 += 1;
        }
        m
    }

    /// Whether Karpenter needs a NodeOverlay to know the group's `nvidia.com/gpu`: sliced
    /// nodes advertise GPUs × R, and a fractional type (g6f, gr6f) advertises 1 where
    /// EC2 (and so Karpenter) reports no GPU.
    pub fn needs_overlay(&self) -> bool {
        self.r > 1 || self.slice.sharing == NodeSharing::Fractional
    }

    /// Node labels: the frame's template labels plus gpu-slicer's.
    pub fn node_labels(&self) -> BTreeMap<String, String> {
        let mut l = self.pool.labels.clone();
        l.insert(POOL_LABEL.to_string(), self.pool.name.clone());
        let profile = self.profile();
        l.insert(DEVICE_PLUGIN_CONFIG_LABEL.to_string(), profile.clone());
        l.insert(PROFILE_LABEL.to_string(), profile);
        for (k, v) in self.slice.labels() {
            l.insert(k.to_string(), v);
        }
        l
    }

    /// The frame's requirements without the keys gpu-slicer pins, then the pins.
    pub fn requirements(
        &self,
        types: &[String],
        capacity_types: &[CapacityType],
    ) -> Vec<Requirement> {
        let pinned = [
            labels::INSTANCE_TYPE,
            labels::INSTANCE_TYPE_BETA,
            labels::CAPACITY_TYPE,
        ];
        let mut reqs: Vec<Requirement> = self
            .pool
            .requirements
            .iter()
            .filter(|r| !pinned.contains(&r.key.as_str()))
            .filter(|r| {
                self.zone.is_none() || (r.key != labels::ZONE && r.key != labels::ZONE_BETA)
            })
            .cloned()
            .collect();
        reqs.push(Requirement {
            key: labels::INSTANCE_TYPE.to_string(),
            operator: crate::model::Operator::In,
            values: types.to_vec(),
        });
        reqs.push(Requirement {
            key: labels::CAPACITY_TYPE.to_string(),
            operator: crate::model::Operator::In,
            values: capacity_types
                .iter()
                .map(|c| c.as_str().to_string())
                .collect(),
        });
        if let Some(z) = self.zone {
            reqs.push(Requirement {
                key: labels::ZONE.to_string(),
                operator: crate::model::Operator::In,
                values: vec![z.to_string()],
            });
        }
        reqs
    }

    /// The frame's startup taints plus gpu-slicer's slicing-pending taint.
    pub fn startup_taints(&self) -> Vec<Taint> {
        let mut t = self.frame.startup_taints.clone();
        if !t.iter().any(|x| x.key == SLICING_PENDING_TAINT) {
            t.push(slicing_pending());
        }
        t
    }
}

/// Renders `plan` for the pools of `frame` (the implicit pool when none opted in).
pub fn render(
    plan: &Plan,
    catalog: &Catalog,
    frame: Frame<'_>,
    opts: &RenderOptions,
) -> Result<Rendered, RenderError> {
    let default_pool = Pool::default_pool(crate::model::ReplicaPolicy::Auto { max: 10 });
    let mut frames: BTreeMap<&str, (&Pool, frame::PoolFrame)> = BTreeMap::new();
    for (pool, raw) in frame.pools {
        let f = frame::read(pool, raw)?;
        for key in RESERVED_NODE_LABELS {
            if pool.labels.contains_key(key) {
                return Err(RenderError::new(
                    &f.object,
                    template_labels_field(f.api, key),
                    "is set by gpu-slicer per profile; remove it from the annotated NodePool",
                ));
            }
        }
        frames.insert(pool.name.as_str(), (pool, f));
    }
    let implicit = frame::PoolFrame::default();
    let node_classes = frame::node_classes(frame.ec2nodeclasses)?;

    // Group the planned nodes.
    type Nodes<'n> = (Vec<&'n PlannedNode>, Vec<&'n PlannedNode>);
    let mut groups: BTreeMap<(String, Option<String>, Slice), Nodes<'_>> = BTreeMap::new();
    for (n, fresh) in frame
        .fleet
        .iter()
        .map(|n| (n, false))
        .chain(plan.nodes.iter().map(|n| (n, true)))
    {
        let r = n.replicas_per_gpu.max(1);
        // The node's slice as planned; a node from before the strategy existed is
        // time-sliced above R = 1.
        let sharing =
            NodeSharing::parse(&n.sharing).unwrap_or_else(|| NodeSharing::for_replicas(r));
        let slice = Slice {
            replicas: r,
            gpu_memory_mib: n.slice_gpu_memory_mib,
            share_milli: n.slice_share_milli,
            throughput_milli: n.slice_throughput_milli,
            sharing,
        };
        let e = groups
            .entry((n.node_pool.clone(), n.zone.clone(), slice))
            .or_default();
        e.0.push(n);
        if fresh {
            e.1.push(n);
        }
    }
    let mut built: Vec<Group<'_>> = Vec::new();
    for ((pool_name, zone, slice), (nodes, fresh)) in &groups {
        let (r, slice_mib) = (&slice.replicas, slice.gpu_memory_mib);
        let (pool, f) = match frames.get(pool_name.as_str()) {
            Some((p, f)) => (*p, f),
            None if frame.pools.is_empty() || pool_name == &default_pool.name => {
                (&default_pool, &implicit)
            }
            None => {
                return Err(RenderError::new(
                    "",
                    "",
                    format!(
                        "the plan uses pool {pool_name:?}, which is not among the annotated NodePools"
                    ),
                ));
            }
        };
        // `<pool>-ts-r4-4096mi[-zone]` (`<pool>-fractional-125m-2861mi` for a part of a
        // GPU): the slice is part of the name, so each NodePool's slice labels are one
        // value and a name never changes meaning.
        let mut base = if slice.sharing == NodeSharing::Fractional {
            format!(
                "{pool_name}-fractional-{}m-{slice_mib}mi",
                slice.share_milli
            )
        } else {
            format!("{pool_name}-{}-{slice_mib}mi", slice.profile())
        };
        if let Some(z) = zone {
            base.push('-');
            base.push_str(z);
        }
        let slice = *slice;
        built.push(Group {
            pool,
            frame: f,
            r: *r,
            zone: zone.as_deref(),
            slice,
            name: fit_name(&base, NAME_MAX),
            nodes: nodes.clone(),
            fresh: fresh.clone(),
        });
    }

    // The device-plugin ConfigMap.
    let slices: Vec<Slice> = built.iter().map(|g| g.slice).collect();
    let (cm, chart_values) = deviceplugin::configmap(
        &opts.configmap_namespace,
        &opts.configmap_name,
        &slices,
        opts.fail_requests_greater_than_one,
        frame.device_plugin,
    )?;

    let mut out = Emitted::default();
    if opts.cluster_name == CLUSTER_PLACEHOLDER {
        out.notes.push(format!(
            "no --cluster-name: generated node classes select subnets and security groups tagged \
             karpenter.sh/discovery={CLUSTER_PLACEHOLDER}; set it before applying"
        ));
    }
    if !plan.unplaced.is_empty() {
        out.notes.push(format!(
            "{} pod(s) fit nowhere and get no capacity (see `gpu-slicer plan`)",
            plan.unplaced.len()
        ));
    }
    let mut modes = BTreeMap::new();
    for g in &built {
        let mode = resolve_mode(opts, g.frame);
        modes.insert(g.pool.name.clone(), mode);
        if g.slice.sharing == NodeSharing::Mps {
            let generated = Some((opts.ami_family, opts.ami_version.as_str()));
            if let Some(why) = frame::pool_mps_refusal(Some(g.frame), &node_classes, generated) {
                let object = if g.frame.object.is_empty() {
                    format!("pool {}", g.pool.name)
                } else {
                    g.frame.object.clone()
                };
                return Err(RenderError::new(
                    &object,
                    crate::config::annotation_field(crate::config::SHARING_STRATEGY),
                    format!(
                        "the plan shares {} by MPS, but {why}; set it to time-slicing or use a \
                         newer AMI",
                        g.name
                    ),
                ));
            }
        }
        let ctx = Ctx {
            opts,
            node_classes: &node_classes,
        };
        match mode {
            Emission::Overlay | Emission::Static | Emission::NodeClaim | Emission::Auto => {
                v1::group(&ctx, g, mode, &mut out)?
            }
            // Nothing in these APIs can make Karpenter see a fractional type's GPU.
            Emission::V1beta1 | Emission::V1alpha5
                if g.slice.sharing == NodeSharing::Fractional =>
            {
                out.notes.push(format!(
                    "pool {}: {} planned fractional-GPU node(s) ({}) left out: Karpenter \
                     {} reports no GPU on these types and cannot be told otherwise (a \
                     NodeOverlay needs NodePool v1); use --emission overlay, static or \
                     nodeclaim",
                    g.pool.name,
                    g.fresh.len(),
                    g.types().join(", "),
                    mode.as_str()
                ));
            }
            Emission::V1beta1 => legacy::v1beta1(&ctx, g, &mut out)?,
            Emission::V1alpha5 => legacy::v1alpha5(&ctx, g, catalog, &mut out)?,
        }
    }
    let cm_value = to_value(&cm)?;
    let mut objects = vec![cm_value];
    objects.extend(dedup_by_identity(out.node_classes));
    objects.extend(out.pools);
    objects.extend(out.overlays);
    objects.extend(out.claims);
    check_profiles(&objects)?;
    check_unique_names(&objects)?;
    Ok(Rendered {
        objects,
        modes,
        chart_values,
        notes: out.notes,
    })
}

/// Shared inputs of the per-mode builders.
pub(crate) struct Ctx<'a> {
    pub opts: &'a RenderOptions,
    pub node_classes: &'a [frame::NodeClass],
}

/// Objects collected by the builders, by apply order.
#[derive(Default)]
pub(crate) struct Emitted {
    pub node_classes: Vec<Value>,
    pub pools: Vec<Value>,
    pub overlays: Vec<Value>,
    pub claims: Vec<Value>,
    pub notes: Vec<String>,
}

fn resolve_mode(opts: &RenderOptions, f: &frame::PoolFrame) -> Emission {
    if opts.emission != Emission::Auto {
        return opts.emission;
    }
    match f.emission {
        Some(e) if e != Emission::Auto => e,
        _ => opts
            .discovered
            .unwrap_or_else(|| Emission::for_version(opts.karpenter_version)),
    }
}

/// What `auto` means for the APIs a cluster serves, as (group, version, kind): NodePool v1
/// with NodeOverlay v1alpha1 → `overlay`; NodePool v1 alone → `nodeclaim`; NodePool
/// v1beta1 → `v1beta1`; Provisioner v1alpha5 → `v1alpha5`; none (no Karpenter) → `None`.
/// Static NodePools need a feature gate that discovery cannot see: ask for `static` by
/// flag or annotation.
pub fn emission_for_served(served: &BTreeSet<(String, String, String)>) -> Option<Emission> {
    let has =
        |g: &str, v: &str, k: &str| served.contains(&(g.to_string(), v.to_string(), k.to_string()));
    if has("karpenter.sh", "v1", "NodePool") {
        if has("karpenter.sh", "v1alpha1", "NodeOverlay") {
            Some(Emission::Overlay)
        } else {
            Some(Emission::NodeClaim)
        }
    } else if has("karpenter.sh", "v1beta1", "NodePool") {
        Some(Emission::V1beta1)
    } else if has("karpenter.sh", "v1alpha5", "Provisioner") {
        Some(Emission::V1alpha5)
    } else {
        None
    }
}

fn template_labels_field(api: Option<frame::FrameApi>, key: &str) -> String {
    match api {
        Some(frame::FrameApi::V1alpha5) => format!("spec.labels[{key:?}]"),
        _ => format!("spec.template.metadata.labels[{key:?}]"),
    }
}

pub(crate) fn to_value<T: serde::Serialize>(t: &T) -> Result<Value, RenderError> {
    serde_json::to_value(t)
        .map_err(|e| RenderError::new("", "", format!("cannot serialise: {e}")).caused_by(e))
}

/// `nvidia.com/gpu` as the NodePool limit / overlay capacity quantity.
pub(crate) fn gpu_quantity(n: u64) -> k8s_openapi::apimachinery::pkg::util::intstr::IntOrString {
    k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(n.to_string())
}

pub(crate) fn gpu_key() -> String {
    NVIDIA_GPU.to_string()
}

#[cfg(test)]
mod tests;
