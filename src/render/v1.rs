//! Karpenter v1 objects: NodePool (dynamic or static), NodeOverlay, NodeClaim and
//! EC2NodeClass.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::karpenter::{
    ec2nodeclass_v1 as ec2, nodeclaim_v1 as nc, nodeoverlay_v1alpha1 as ov, nodepool_v1 as np,
};
use crate::model::{CapacityType, Requirement, Taint, labels};

use super::frame::{FrameApi, NodeClass};
use super::{
    AmiFamily, Ctx, Emission, Emitted, Group, NAME_MAX, OVERLAY_WEIGHT, RenderError, bootstrap,
    fit_name, gpu_key, gpu_quantity, to_value,
};
use crate::model::contract::owned_labels;

/// Converts through JSON into a generated type (the shapes are Kubernetes' own).
pub(crate) fn typed<T: DeserializeOwned>(v: Value, what: &str) -> Result<T, RenderError> {
    serde_json::from_value(v).map_err(|e| {
        RenderError::new("", what.to_string(), format!("cannot be converted: {e}")).caused_by(e)
    })
}

pub(crate) fn requirements_json(reqs: &[Requirement]) -> Value {
    Value::Array(
        reqs.iter()
            .map(|r| {
                let mut m = serde_json::Map::new();
                m.insert("key".into(), json!(r.key));
                m.insert("operator".into(), json!(r.operator));
                if !r.values.is_empty() {
                    m.insert("values".into(), json!(r.values));
                }
                Value::Object(m)
            })
            .collect(),
    )
}

pub(crate) fn taints_json(taints: &[Taint]) -> Value {
    Value::Array(
        taints
            .iter()
            .map(|t| {
                let mut m = serde_json::Map::new();
                m.insert("key".into(), json!(t.key));
                if let Some(v) = &t.value {
                    m.insert("value".into(), json!(v));
                }
                m.insert("effect".into(), json!(t.effect));
                Value::Object(m)
            })
            .collect(),
    )
}

pub(crate) fn meta(name: &str, pool: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        labels: Some(owned_labels(Some(pool))),
        ..ObjectMeta::default()
    }
}

fn opt_vec<T>(v: Vec<T>) -> Option<Vec<T>> {
    if v.is_empty() { None } else { Some(v) }
}

/// The name of the node class a group's nodes use, emitting a generated or derived one
/// when needed.
fn node_class(ctx: &Ctx<'_>, g: &Group<'_>, out: &mut Emitted) -> Result<String, RenderError> {
    let opts = ctx.opts;
    let Some(name) = g.frame.referenced_class().map(str::to_string) else {
        let obj = generated_class(ctx, g, &g.name)?;
        out.node_classes.push(obj);
        return Ok(g.name.clone());
    };
    match ctx.node_classes.iter().find(|c| c.name == name) {
        Some(c) if c.family == Some(AmiFamily::Bottlerocket) => {
            let derived = fit_name(&format!("{name}-{}", g.profile()), NAME_MAX);
            out.node_classes
                .push(derived_bottlerocket(ctx, g, c, &derived)?);
            Ok(derived)
        }
        Some(_) => Ok(name),
        None => {
            out.notes.push(format!(
                "{}: EC2NodeClass {name} is not among the inputs; nodes are sliced through the \
                 {} label and the device-plugin ConfigMap. If it is a Bottlerocket class, pass it \
                 with -f so gpu-slicer derives one with the time-slicing settings",
                g.frame.object,
                crate::model::contract::DEVICE_PLUGIN_CONFIG_LABEL
            ));
            let _ = opts;
            Ok(name)
        }
    }
}

/// A generated EC2NodeClass v1 for a group.
fn generated_class(ctx: &Ctx<'_>, g: &Group<'_>, name: &str) -> Result<Value, RenderError> {
    let o = ctx.opts;
    let fam = o.ami_family;
    let spec = ec2::Ec2NodeClassSpec {
        ami_selector_terms: vec![ec2::Ec2NodeClassAmiSelectorTerms {
            alias: Some(format!("{}@{}", fam.alias(), o.ami_version)),
            ..Default::default()
        }],
        role: Some(o.node_role()),
        subnet_selector_terms: vec![ec2::Ec2NodeClassSubnetSelectorTerms {
            tags: Some(o.discovery()),
            ..Default::default()
        }],
        security_group_selector_terms: vec![ec2::Ec2NodeClassSecurityGroupSelectorTerms {
            tags: Some(o.discovery()),
            ..Default::default()
        }],
        block_device_mappings: Some(vec![typed(fam.image_volume(), "blockDeviceMappings")?]),
        tags: Some(BTreeMap::from([(
            crate::model::contract::PROFILE_LABEL.to_string(),
            g.profile(),
        )])),
        user_data: Some(fam.user_data(&g.slice, o.fail_requests_greater_than_one)),
        ..Default::default()
    };
    let obj = ec2::Ec2NodeClass {
        metadata: meta(name, &g.pool.name),
        spec,
        status: None,
    };
    to_value(&obj)
}

/// A copy of the user's Bottlerocket EC2NodeClass with the time-slicing settings merged
/// into its userData. The user's object itself is never changed.
pub(crate) fn derived_bottlerocket(
    ctx: &Ctx<'_>,
    g: &Group<'_>,
    c: &NodeClass,
    name: &str,
) -> Result<Value, RenderError> {
    let object = format!("EC2NodeClass {}", c.name);
    let mut spec = c.raw.get("spec").cloned().unwrap_or_else(|| json!({}));
    let user = spec.get("userData").and_then(Value::as_str);
    let merged =
        bootstrap::merge_bottlerocket(user, &g.slice, ctx.opts.fail_requests_greater_than_one)
            .map_err(|e| RenderError::new(&object, "spec.userData", e.to_string()).caused_by(e))?;
    if let Some(m) = spec.as_object_mut() {
        m.insert("userData".into(), json!(merged));
    }
    let mut labels = c
        .raw
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for (k, v) in owned_labels(Some(&g.pool.name)) {
        labels.insert(k, json!(v));
    }
    Ok(json!({
        "apiVersion": c.api_version,
        "kind": "EC2NodeClass",
        "metadata": {"name": name, "labels": labels},
        "spec": spec,
    }))
}

fn disruption(g: &Group<'_>) -> Result<Option<np::NodePoolDisruption>, RenderError> {
    match (&g.frame.disruption, g.frame.api) {
        (Some(d), Some(FrameApi::V1)) => typed(d.clone(), "spec.disruption")
            .map_err(|e| e.of(&g.frame.object))
            .map(Some),
        _ => Ok(None),
    }
}

fn node_class_ref(name: &str) -> np::NodePoolTemplateSpecNodeClassRef {
    np::NodePoolTemplateSpecNodeClassRef {
        group: "karpenter.k8s.aws".to_string(),
        kind: "EC2NodeClass".to_string(),
        name: name.to_string(),
    }
}

/// A NodePool v1 for `types` × `capacity_types` of a group; `replicas` makes it static.
fn nodepool(
    g: &Group<'_>,
    name: &str,
    class: &str,
    types: &[String],
    capacity_types: &[CapacityType],
    replicas: Option<u32>,
    slices: u64,
) -> Result<Value, RenderError> {
    let reqs = g.requirements(types, capacity_types);
    let limits = match replicas {
        Some(n) => BTreeMap::from([("nodes".to_string(), IntOrString::String(n.to_string()))]),
        None => BTreeMap::from([(gpu_key(), gpu_quantity(slices))]),
    };
    let spec = np::NodePoolSpec {
        disruption: if replicas.is_some() {
            None
        } else {
            disruption(g)?
        },
        limits: Some(limits),
        replicas: replicas.map(i64::from),
        weight: if replicas.is_some() {
            None
        } else {
            g.frame.weight
        },
        template: np::NodePoolTemplate {
            metadata: Some(np::NodePoolTemplateMetadata {
                annotations: None,
                labels: Some(g.node_labels()),
            }),
            spec: np::NodePoolTemplateSpec {
                expire_after: g.frame.expire_after.clone(),
                node_class_ref: node_class_ref(class),
                requirements: typed(requirements_json(&reqs), "requirements")?,
                startup_taints: opt_vec(typed(taints_json(&g.startup_taints()), "startupTaints")?),
                taints: opt_vec(typed(taints_json(&g.pool.taints), "taints")?),
                termination_grace_period: g.frame.termination_grace_period.clone(),
            },
        },
    };
    to_value(&np::NodePool {
        metadata: meta(name, &g.pool.name),
        spec,
        status: None,
    })
}

/// A NodeOverlay giving `types` (all with `gpus` GPUs) in NodePool `pool_name` the
/// capacity `gpus × R` of `nvidia.com/gpu` (1 for a fractional type: one device, R = 1).
fn overlay(
    g: &Group<'_>,
    pool_name: &str,
    gpus: u32,
    types: &[String],
) -> Result<Value, RenderError> {
    let name = fit_name(&format!("{pool_name}-g{gpus}"), NAME_MAX);
    let reqs = vec![
        Requirement {
            key: labels::NODEPOOL.to_string(),
            operator: crate::model::Operator::In,
            values: vec![pool_name.to_string()],
        },
        Requirement {
            key: labels::INSTANCE_TYPE.to_string(),
            operator: crate::model::Operator::In,
            values: types.to_vec(),
        },
    ];
    let spec = ov::NodeOverlaySpec {
        capacity: Some(BTreeMap::from([(
            gpu_key(),
            gpu_quantity(u64::from(gpus) * u64::from(g.r)),
        )])),
        requirements: typed(requirements_json(&reqs), "requirements")?,
        weight: Some(OVERLAY_WEIGHT),
        ..Default::default()
    };
    to_value(&ov::NodeOverlay {
        metadata: meta(&name, &g.pool.name),
        spec,
        status: None,
    })
}

/// Renders one group in `overlay`, `static` or `nodeclaim` mode.
pub(crate) fn group(
    ctx: &Ctx<'_>,
    g: &Group<'_>,
    mode: Emission,
    out: &mut Emitted,
) -> Result<(), RenderError> {
    let class = node_class(ctx, g, out)?;
    match mode {
        Emission::Static => {
            for ((ty, ct), (count, gpus)) in g.counts() {
                let mut base = format!("{}-{ty}", g.name);
                if ct == CapacityType::Spot {
                    base.push_str("-spot");
                }
                let name = fit_name(&base, NAME_MAX);
                let slices = u64::from(count) * u64::from(gpus) * u64::from(g.r);
                out.pools.push(nodepool(
                    g,
                    &name,
                    &class,
                    std::slice::from_ref(&ty),
                    &[ct],
                    Some(count),
                    slices,
                )?);
                if g.needs_overlay() {
                    out.overlays
                        .push(overlay(g, &name, gpus, std::slice::from_ref(&ty))?);
                }
            }
        }
        Emission::NodeClaim => {
            // Only new nodes get claims (existing ones keep theirs). A claim's name ends in
            // a hash of the pods planned onto it: stable for the same pending pods, never
            // the name of an earlier claim.
            let mut ordinal: BTreeMap<(String, CapacityType), u32> = BTreeMap::new();
            for n in &g.fresh {
                let i = ordinal
                    .entry((n.instance_type.clone(), n.capacity_type))
                    .or_insert(0);
                let mut base = format!("{}-{}", g.name, n.instance_type);
                if n.capacity_type == CapacityType::Spot {
                    base.push_str("-spot");
                }
                let content = format!("{}#{i}", n.pods.join(","));
                base.push_str(&format!(
                    "-{}",
                    &format!("{:016x}", super::fnv1a(content.as_bytes()))[..8]
                ));
                *i += 1;
                out.claims
                    .push(nodeclaim(g, &fit_name(&base, NAME_MAX), &class, n)?);
            }
        }
        _ => {
            let types = g.types();
            out.pools.push(nodepool(
                g,
                &g.name,
                &class,
                &types,
                &g.capacity_types(),
                None,
                g.slices(),
            )?);
            if g.needs_overlay() {
                for (gpus, types) in g.types_by_gpu_count() {
                    out.overlays.push(overlay(g, &g.name, gpus, &types)?);
                }
            }
        }
    }
    Ok(())
}

/// A standalone NodeClaim for one planned node.
fn nodeclaim(
    g: &Group<'_>,
    name: &str,
    class: &str,
    n: &crate::planner::PlannedNode,
) -> Result<Value, RenderError> {
    let reqs = g.requirements(std::slice::from_ref(&n.instance_type), &[n.capacity_type]);
    let mut m = meta(name, &g.pool.name);
    if let Some(l) = m.labels.as_mut() {
        l.extend(g.node_labels());
    }
    let spec = nc::NodeClaimSpec {
        expire_after: Some("Never".to_string()),
        node_class_ref: nc::NodeClaimNodeClassRef {
            group: "karpenter.k8s.aws".to_string(),
            kind: "EC2NodeClass".to_string(),
            name: class.to_string(),
        },
        requirements: typed(requirements_json(&reqs), "requirements")?,
        startup_taints: opt_vec(typed(taints_json(&g.startup_taints()), "startupTaints")?),
        taints: opt_vec(typed(taints_json(&g.pool.taints), "taints")?),
        termination_grace_period: g.frame.termination_grace_period.clone(),
        ..Default::default()
    };
    to_value(&nc::NodeClaim {
        metadata: m,
        spec,
        status: None,
    })
}
