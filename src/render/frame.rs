//! The user's objects as the frame of what gpu-slicer generates: an annotated NodePool (or
//! legacy Provisioner) gives nodeClassRef, startup taints, expiry, disruption, weight and
//! limits; its requirements, labels and taints are already in [`Pool`]. EC2NodeClasses
//! among the inputs tell which AMI family a referenced class uses. Read-only: nothing
//! here changes the user's objects.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::config::value::{join, opt_map, opt_str, req_str};
use crate::config::{FieldError, parse_taint};
use crate::model::{Pool, SharingChoice, Taint};

use super::{AmiFamily, Emission, RenderError};

/// Which API the frame object is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameApi {
    V1,
    V1beta1,
    V1alpha5,
}

/// What gpu-slicer takes from a pool's NodePool object, beyond [`Pool`].
#[derive(Debug, Clone, Default)]
pub(crate) struct PoolFrame {
    /// `NodePool gpu`, for messages; empty for the implicit pool.
    pub object: String,
    pub api: Option<FrameApi>,
    /// The referenced EC2NodeClass (v1, v1beta1) or AWSNodeTemplate (v1alpha5 providerRef).
    pub node_class: Option<String>,
    pub startup_taints: Vec<Taint>,
    pub expire_after: Option<String>,
    pub termination_grace_period: Option<String>,
    /// `spec.disruption`, kept raw; used only when emitting the same API version.
    pub disruption: Option<Value>,
    pub weight: Option<i32>,
    /// `spec.limits` (`spec.limits.resources` for a Provisioner) as written
    /// ([`Pool::limits`]).
    pub limits: BTreeMap<String, String>,
    /// The `gpu-slicer.io/emission` annotation, parsed.
    pub emission: Option<Emission>,
}

fn field_err(object: &str, e: FieldError) -> RenderError {
    RenderError::new(object, e.field.clone(), e.message.clone()).caused_by(e)
}

/// Reads the frame of an annotated pool from its raw object.
pub(crate) fn read(pool: &Pool, raw: &Value) -> Result<PoolFrame, RenderError> {
    let obj = raw.as_object().cloned().unwrap_or_default();
    let kind = obj
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("NodePool");
    let object = format!("{kind} {}", pool.name);
    let api = match obj.get("apiVersion").and_then(Value::as_str) {
        Some("karpenter.sh/v1alpha5") => FrameApi::V1alpha5,
        Some("karpenter.sh/v1beta1") => FrameApi::V1beta1,
        _ if kind == "Provisioner" => FrameApi::V1alpha5,
        _ => FrameApi::V1,
    };
    let emission = match pool.emission.as_deref() {
        None => None,
        Some(s) => Some(Emission::parse(s).ok_or_else(|| {
            RenderError::new(
                &object,
                crate::config::annotation_field(crate::config::EMISSION),
                format!(
                    "must be one of {}, got {s:?}",
                    crate::config::EMISSION_MODES.join(", ")
                ),
            )
        })?),
    };
    let e = |err| field_err(&object, err);
    let empty = Map::new();
    let spec = opt_map(&obj, "spec", "spec").map_err(e)?.unwrap_or(&empty);
    let mut f = PoolFrame {
        object: object.clone(),
        api: Some(api),
        emission,
        ..PoolFrame::default()
    };
    let (inner, inner_path) = match api {
        FrameApi::V1alpha5 => (spec, "spec".to_string()),
        FrameApi::V1 | FrameApi::V1beta1 => {
            let t = opt_map(spec, "template", "spec.template").map_err(e)?;
            let s = match t {
                Some(t) => opt_map(t, "spec", "spec.template.spec").map_err(e)?,
                None => None,
            };
            (s.unwrap_or(&empty), "spec.template.spec".to_string())
        }
    };
    f.node_class = match api {
        FrameApi::V1alpha5 => match opt_map(spec, "providerRef", "spec.providerRef").map_err(e)? {
            Some(r) => Some(
                req_str(r, "name", "spec.providerRef.name")
                    .map_err(e)?
                    .to_string(),
            ),
            None => None,
        },
        FrameApi::V1 | FrameApi::V1beta1 => {
            let path = join(&inner_path, "nodeClassRef");
            match opt_map(inner, "nodeClassRef", &path).map_err(e)? {
                Some(r) => {
                    if let Some(k) = opt_str(r, "kind", &join(&path, "kind")).map_err(e)?
                        && k != "EC2NodeClass"
                    {
                        return Err(RenderError::new(
                            &object,
                            join(&path, "kind"),
                            format!("gpu-slicer renders for EC2NodeClass, got {k:?}"),
                        ));
                    }
                    Some(
                        req_str(r, "name", &join(&path, "name"))
                            .map_err(e)?
                            .to_string(),
                    )
                }
                None => None,
            }
        }
    };
    if let Some(list) = inner.get("startupTaints") {
        let path = join(&inner_path, "startupTaints");
        let arr = list
            .as_array()
            .ok_or_else(|| RenderError::new(&object, path.clone(), "must be a list of taints"))?;
        for (i, t) in arr.iter().enumerate() {
            f.startup_taints
                .push(parse_taint(t, &format!("{path}[{i}]")).map_err(e)?);
        }
    }
    if api != FrameApi::V1alpha5 {
        f.expire_after = opt_str(inner, "expireAfter", &join(&inner_path, "expireAfter"))
            .map_err(e)?
            .map(str::to_string);
        f.termination_grace_period = opt_str(
            inner,
            "terminationGracePeriod",
            &join(&inner_path, "terminationGracePeriod"),
        )
        .map_err(e)?
        .map(str::to_string);
        f.disruption = spec.get("disruption").cloned();
    }
    f.weight = match spec.get("weight") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_i64()
                .and_then(|w| i32::try_from(w).ok())
                .filter(|w| (1..=100).contains(w))
                .ok_or_else(|| {
                    RenderError::new(&object, "spec.weight", "must be an integer from 1 to 100")
                })?,
        ),
    };
    // Read and checked with the pool (`config::pool_from_nodepool`).
    f.limits = pool.limits.written.clone();
    Ok(f)
}

/// An EC2NodeClass among the inputs.
#[derive(Debug, Clone)]
pub(crate) struct NodeClass {
    pub name: String,
    pub api_version: String,
    pub family: Option<AmiFamily>,
    /// The version of its `amiSelectorTerms` alias (`latest`, `v1.54.0`), if it has one.
    pub alias_version: Option<String>,
    pub raw: Value,
}

impl NodeClass {
    /// Why nodes of this class cannot run the device plugin's MPS; `None` when they can
    /// ([`bottlerocket_mps_refusal`]; only Bottlerocket decides it in its settings).
    pub fn mps_refusal(&self) -> Option<String> {
        (self.family == Some(AmiFamily::Bottlerocket)).then(|| {
            bottlerocket_mps_refusal(
                &format!("EC2NodeClass {} runs", self.name),
                self.alias_version.as_deref(),
            )
        })?
    }
}

impl PoolFrame {
    /// The node class the pool's nodes use by reference (v1 and v1beta1 frames); `None`
    /// when gpu-slicer generates theirs.
    pub(crate) fn referenced_class(&self) -> Option<&str> {
        match self.api {
            Some(FrameApi::V1 | FrameApi::V1beta1) => self.node_class.as_deref(),
            _ => None,
        }
    }
}

/// Why Bottlerocket AMIs of alias version `version` cannot run MPS; `None` when they can:
/// from 1.54 on, or `latest` ([`super::bootstrap::BOTTLEROCKET_MPS_SINCE`]). AMIs picked
/// by ID, name or tags (no `version`) have no version to go by. `who` begins the message
/// (`EC2NodeClass gpu runs`).
fn bottlerocket_mps_refusal(who: &str, version: Option<&str>) -> Option<String> {
    let (major, minor) = super::bootstrap::BOTTLEROCKET_MPS_SINCE;
    match version {
        Some(v) if super::bootstrap::bottlerocket_has_mps(v) == Some(true) => None,
        Some(v) => Some(format!(
            "{who} Bottlerocket {v}, whose settings cannot express MPS \
             (settings.kubelet-device-plugins.nvidia.mps, from Bottlerocket {major}.{minor})"
        )),
        None => Some(format!(
            "{who} a Bottlerocket AMI chosen without an alias, so gpu-slicer cannot tell \
             whether its settings express MPS (settings.kubelet-device-plugins.nvidia.mps, \
             from Bottlerocket {major}.{minor}); use amiSelectorTerms alias \
             bottlerocket@latest or bottlerocket@v{major}.{minor}.0 or later"
        )),
    }
}

/// Why the nodes of a pool cannot run MPS: those of its referenced class among `classes`
/// (a class not among them: nothing is known), else those of the classes gpu-slicer
/// generates, `generated` (`--ami-family`, `--ami-version`; `None`: not known here).
pub(crate) fn pool_mps_refusal(
    frame: Option<&PoolFrame>,
    classes: &[NodeClass],
    generated: Option<(AmiFamily, &str)>,
) -> Option<String> {
    match frame.and_then(PoolFrame::referenced_class) {
        Some(name) => classes
            .iter()
            .find(|c| c.name == name)
            .and_then(NodeClass::mps_refusal),
        None => match generated? {
            (AmiFamily::Bottlerocket, v) => bottlerocket_mps_refusal(
                "the generated EC2NodeClasses (--ami-family, --ami-version) run",
                Some(v),
            ),
            _ => None,
        },
    }
}

/// Settles each pool's `sharing-strategy` against the AMI its nodes run. A pool whose node
/// class cannot run MPS is refused when it asks for `mps`, and plans time-slicing only
/// when it says `auto` (with a note). `generated` is the family and version of the node
/// classes gpu-slicer generates for pools without a class of their own (`None`: not known
/// here, nothing is decided for them). Returns the notes.
pub fn settle_sharing(
    pools: &mut [Pool],
    raw: &[(Pool, Value)],
    ec2nodeclasses: &[Value],
    generated: Option<(AmiFamily, &str)>,
) -> Result<Vec<String>, RenderError> {
    let classes = node_classes(ec2nodeclasses)?;
    let mut notes = Vec::new();
    for pool in pools.iter_mut() {
        if pool.sharing_strategy == SharingChoice::TimeSlicing {
            continue;
        }
        let object_raw = raw.iter().find(|(p, _)| p.name == pool.name);
        let frame = match object_raw {
            Some((p, v)) => Some(read(p, v)?),
            None => None,
        };
        let Some(why) = pool_mps_refusal(frame.as_ref(), &classes, generated) else {
            continue;
        };
        let object = frame
            .as_ref()
            .map_or_else(|| format!("pool {}", pool.name), |f| f.object.clone());
        match pool.sharing_strategy {
            SharingChoice::Mps => {
                return Err(RenderError::new(
                    &object,
                    crate::config::annotation_field(crate::config::SHARING_STRATEGY),
                    format!("is \"mps\", but {why}; use time-slicing or a newer AMI"),
                ));
            }
            _ => {
                notes.push(format!(
                    "{object}: {why}; its shared GPUs are time-sliced, so pods asking for \
                     memory isolation get fractional or whole GPUs there, and shares read as \
                     throughput get time slices (R at most the time-slicing efficiency / share)"
                ));
                pool.sharing_strategy = SharingChoice::TimeSlicing;
            }
        }
    }
    Ok(notes)
}

/// Reads the EC2NodeClasses among the inputs (name, version and AMI family).
pub(crate) fn node_classes(raw: &[Value]) -> Result<Vec<NodeClass>, RenderError> {
    let mut out = Vec::new();
    for v in raw {
        let obj = v.as_object().cloned().unwrap_or_default();
        let name = obj
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let object = format!("EC2NodeClass {name}");
        let api_version = obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let spec = obj.get("spec").and_then(Value::as_object);
        let from_field = spec
            .and_then(|s| s.get("amiFamily"))
            .and_then(Value::as_str)
            .map(|f| (f.to_string(), "spec.amiFamily"));
        // `family@version`, from the first term with an alias.
        let alias = spec
            .and_then(|s| s.get("amiSelectorTerms"))
            .and_then(Value::as_array)
            .and_then(|terms| {
                terms
                    .iter()
                    .find_map(|t| t.get("alias").and_then(Value::as_str))
            });
        let from_alias = alias.map(|a| {
            (
                a.split('@').next().unwrap_or_default().to_string(),
                "spec.amiSelectorTerms[].alias",
            )
        });
        let alias_version = alias.and_then(|a| a.split_once('@').map(|(_, v)| v.to_string()));
        let family = match from_alias.or(from_field) {
            None => None,
            Some((f, field)) => match f.to_ascii_lowercase().as_str() {
                "bottlerocket" => Some(AmiFamily::Bottlerocket),
                "al2023" => Some(AmiFamily::Al2023),
                "al2" => Some(AmiFamily::Al2),
                "custom" => None,
                other if other.starts_with("windows") => {
                    return Err(RenderError::new(
                        &object,
                        field,
                        format!("{f:?}: NVIDIA time-slicing needs a Linux AMI family"),
                    ));
                }
                _ => None,
            },
        };
        out.push(NodeClass {
            name,
            api_version,
            family,
            alias_version,
            raw: v.clone(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::pool_from_nodepool;
    use serde_json::json;

    fn pool(v: &Value) -> Pool {
        pool_from_nodepool(v).expect("valid").expect("opted in")
    }

    #[test]
    fn reads_v1_frame() {
        let np = json!({
            "apiVersion": "karpenter.sh/v1", "kind": "NodePool",
            "metadata": {"name": "gpu", "annotations": {"gpu-slicer.io/enabled": "true", "gpu-slicer.io/emission": "static"}},
            "spec": {
                "weight": 20,
                "limits": {"cpu": "1000", "memory": "4000Gi", "nvidia.com/gpu": 0},
                "disruption": {"consolidationPolicy": "WhenEmpty", "consolidateAfter": "5m"},
                "template": {"spec": {
                    "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "gpu-class"},
                    "expireAfter": "336h",
                    "startupTaints": [{"key": "example.com/warming", "effect": "NoSchedule"}],
                    "requirements": []
                }}
            }
        });
        let f = read(&pool(&np), &np).expect("frame");
        assert_eq!(f.api, Some(FrameApi::V1));
        assert_eq!(f.node_class.as_deref(), Some("gpu-class"));
        assert_eq!(f.emission, Some(Emission::Static));
        assert_eq!(f.weight, Some(20));
        assert_eq!(f.expire_after.as_deref(), Some("336h"));
        assert_eq!(f.startup_taints.len(), 1);
        assert_eq!(f.limits["cpu"], "1000");
        assert_eq!(f.limits["nvidia.com/gpu"], "0");
        assert!(f.disruption.is_some());
    }

    #[test]
    fn reads_provisioner_frame_and_rejects_bad_fields() {
        let p = json!({
            "apiVersion": "karpenter.sh/v1alpha5", "kind": "Provisioner",
            "metadata": {"name": "old", "annotations": {"gpu-slicer.io/enabled": "true"}},
            "spec": {"providerRef": {"name": "tmpl"}, "limits": {"resources": {"cpu": "64"}}}
        });
        let f = read(&pool(&p), &p).expect("frame");
        assert_eq!(f.api, Some(FrameApi::V1alpha5));
        assert_eq!(f.node_class.as_deref(), Some("tmpl"));
        assert_eq!(f.limits["cpu"], "64");

        let mut bad = p.clone();
        bad["spec"]["weight"] = json!(500);
        let e = read(&pool(&bad), &bad).expect_err("weight");
        assert_eq!(e.object, "Provisioner old");
        assert_eq!(e.field, "spec.weight");

        let np = json!({
            "apiVersion": "karpenter.sh/v1", "kind": "NodePool",
            "metadata": {"name": "gpu", "annotations": {"gpu-slicer.io/enabled": "true"}},
            "spec": {"template": {"spec": {
                "nodeClassRef": {"group": "example.com", "kind": "OtherClass", "name": "x"},
                "requirements": []}}}
        });
        let e = read(&pool(&np), &np).expect_err("kind");
        assert_eq!(e.field, "spec.template.spec.nodeClassRef.kind");
    }

    #[test]
    fn node_class_families() {
        let classes = node_classes(&[
            json!({"apiVersion": "karpenter.k8s.aws/v1", "kind": "EC2NodeClass", "metadata": {"name": "br"},
                   "spec": {"amiSelectorTerms": [{"alias": "bottlerocket@v1.40.0"}]}}),
            json!({"apiVersion": "karpenter.k8s.aws/v1beta1", "kind": "EC2NodeClass", "metadata": {"name": "al"},
                   "spec": {"amiFamily": "AL2023"}}),
            json!({"apiVersion": "karpenter.k8s.aws/v1", "kind": "EC2NodeClass", "metadata": {"name": "c"},
                   "spec": {"amiFamily": "Custom", "amiSelectorTerms": [{"id": "ami-1"}]}}),
        ])
        .expect("classes");
        assert_eq!(classes[0].family, Some(AmiFamily::Bottlerocket));
        assert_eq!(classes[1].family, Some(AmiFamily::Al2023));
        assert_eq!(classes[2].family, None);
        let e = node_classes(&[json!({"apiVersion": "karpenter.k8s.aws/v1", "kind": "EC2NodeClass",
            "metadata": {"name": "w"}, "spec": {"amiSelectorTerms": [{"alias": "windows2022@latest"}]}})])
        .expect_err("windows");
        assert!(e.to_string().contains("EC2NodeClass w"), "{e}");
    }
}
