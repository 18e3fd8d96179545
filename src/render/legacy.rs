//! Karpenter before v1: NodePool/EC2NodeClass v1beta1 (0.33–0.37) and the seed guide's
//! Provisioner v1alpha5 + AWSNodeTemplate v1alpha1 (≤ 0.32).
//!
//! These Karpenter versions plan with physical GPUs and know no overlays, so the
//! generated pools are pinned to the planned instance types and capped at the planned
//! number of physical GPUs (`limits: nvidia.com/gpu`). Karpenter then launches no more
//! GPUs than planned, and the scheduler packs the sliced replicas once the nodes register.

use std::collections::BTreeMap;

use serde_json::json;

use crate::karpenter::{
    awsnodetemplate_v1alpha1 as ant, ec2nodeclass_v1beta1 as ec2b, nodepool_v1beta1 as npb,
    provisioner_v1alpha5 as prov,
};
use crate::model::{Catalog, NVIDIA_GPU};

use super::frame::FrameApi;
use super::v1::{derived_bottlerocket, meta, requirements_json, taints_json, typed};
use super::{
    AmiFamily, Ctx, Emitted, Group, NAME_MAX, RenderError, fit_name, gpu_key, gpu_quantity,
    to_value,
};

fn opt_vec<T>(v: Vec<T>) -> Option<Vec<T>> {
    if v.is_empty() { None } else { Some(v) }
}

/// Pods planned onto more slices than their node type has physical GPUs cannot make a
/// pre-overlay Karpenter launch anything: say so.
fn physical_gpu_note(g: &Group<'_>, mode: &str, out: &mut Emitted) {
    if g.r > 1 {
        out.notes.push(format!(
            "{mode} ({}): Karpenter counts physical GPUs here, so it launches these nodes only \
             for pods whose slice request fits a type's physical GPU count, and only up to the \
             nvidia.com/gpu limit of {} physical GPUs; once a node registers its sliced capacity \
             counts against that limit, so later growth needs a new render",
            g.name,
            g.gpus()
        ));
    }
}

/// The node class of a group in v1beta1: the user's (derived when Bottlerocket), or a
/// generated EC2NodeClass v1beta1.
fn node_class_v1beta1(
    ctx: &Ctx<'_>,
    g: &Group<'_>,
    out: &mut Emitted,
) -> Result<String, RenderError> {
    let referenced = match g.frame.api {
        Some(FrameApi::V1 | FrameApi::V1beta1) => g.frame.node_class.clone(),
        _ => None,
    };
    if let Some(name) = referenced {
        if let Some(c) = ctx.node_classes.iter().find(|c| c.name == name)
            && c.family == Some(AmiFamily::Bottlerocket)
        {
            if c.api_version != "karpenter.k8s.aws/v1beta1" {
                return Err(RenderError::new(
                    &format!("EC2NodeClass {name}"),
                    "apiVersion",
                    format!(
                        "is {}; emission v1beta1 derives a Bottlerocket class from a \
                         karpenter.k8s.aws/v1beta1 EC2NodeClass",
                        c.api_version
                    ),
                ));
            }
            let derived = fit_name(&format!("{name}-{}", g.profile()), NAME_MAX);
            out.node_classes
                .push(derived_bottlerocket(ctx, g, c, &derived)?);
            return Ok(derived);
        }
        return Ok(name);
    }
    let o = ctx.opts;
    let fam = o.ami_family;
    // Built through JSON: the generated spec has no Default (amiFamily is a required enum).
    let spec: ec2b::Ec2NodeClassSpec = typed(
        json!({
            "amiFamily": fam.field(),
            "role": o.node_role(),
            "subnetSelectorTerms": [{"tags": o.discovery()}],
            "securityGroupSelectorTerms": [{"tags": o.discovery()}],
            "blockDeviceMappings": [fam.image_volume()],
            "tags": {crate::model::contract::PROFILE_LABEL: g.profile()},
            "userData": fam.user_data(&g.slice, o.fail_requests_greater_than_one),
        }),
        "EC2NodeClass spec",
    )?;
    out.node_classes.push(to_value(&ec2b::Ec2NodeClass {
        metadata: meta(&g.name, &g.pool.name),
        spec,
        status: None,
    })?);
    Ok(g.name.clone())
}

/// A NodePool v1beta1 (and its node class) for a group.
pub(crate) fn v1beta1(ctx: &Ctx<'_>, g: &Group<'_>, out: &mut Emitted) -> Result<(), RenderError> {
    let class = node_class_v1beta1(ctx, g, out)?;
    physical_gpu_note(g, "v1beta1", out);
    let reqs = g.requirements(&g.types(), &g.capacity_types());
    let disruption = match (&g.frame.disruption, g.frame.api) {
        (Some(d), Some(FrameApi::V1beta1)) => Some(
            typed::<npb::NodePoolDisruption>(d.clone(), "spec.disruption")
                .map_err(|e| e.of(&g.frame.object))?,
        ),
        _ => None,
    };
    let spec = npb::NodePoolSpec {
        disruption,
        limits: Some(BTreeMap::from([(gpu_key(), gpu_quantity(g.gpus()))])),
        weight: g.frame.weight,
        template: npb::NodePoolTemplate {
            metadata: Some(npb::NodePoolTemplateMetadata {
                annotations: None,
                labels: Some(g.node_labels()),
            }),
            spec: npb::NodePoolTemplateSpec {
                node_class_ref: npb::NodePoolTemplateSpecNodeClassRef {
                    api_version: Some("karpenter.k8s.aws/v1beta1".to_string()),
                    kind: Some("EC2NodeClass".to_string()),
                    name: class,
                },
                requirements: typed(requirements_json(&reqs), "requirements")?,
                startup_taints: opt_vec(typed(taints_json(&g.startup_taints()), "startupTaints")?),
                taints: opt_vec(typed(taints_json(&g.pool.taints), "taints")?),
                ..Default::default()
            },
        },
    };
    out.pools.push(to_value(&npb::NodePool {
        metadata: meta(&g.name, &g.pool.name),
        spec,
        status: None,
    })?);
    Ok(())
}

/// A Provisioner v1alpha5 and AWSNodeTemplate v1alpha1 for a group: the seed guide's
/// objects, corrected (see the README, "The seed guide's objects").
pub(crate) fn v1alpha5(
    ctx: &Ctx<'_>,
    g: &Group<'_>,
    _catalog: &Catalog,
    out: &mut Emitted,
) -> Result<(), RenderError> {
    physical_gpu_note(g, "v1alpha5", out);
    let o = ctx.opts;
    let template = match (g.frame.api, &g.frame.node_class) {
        (Some(FrameApi::V1alpha5), Some(name)) => {
            out.notes.push(format!(
                "{}: uses the user's AWSNodeTemplate {name}; nodes are sliced through the {} \
                 label and the device-plugin ConfigMap (Bottlerocket userData is only written \
                 into templates gpu-slicer generates)",
                g.frame.object,
                crate::model::contract::DEVICE_PLUGIN_CONFIG_LABEL
            ));
            name.clone()
        }
        _ => {
            // Karpenter ≤ 0.32 knows no AL2023 family: its GPU AMI is the AL2 one.
            let fam = match o.ami_family {
                AmiFamily::Al2023 => {
                    out.notes.push(format!(
                        "v1alpha5 ({}): Karpenter <= 0.32 has no AL2023 AMI family; the \
                         AWSNodeTemplate uses AL2 (the accelerated AL2 AMI)",
                        g.name
                    ));
                    AmiFamily::Al2
                }
                f => f,
            };
            let spec = ant::AwsNodeTemplateSpec {
                ami_family: Some(fam.field().to_string()),
                instance_profile: Some(o.instance_profile()),
                subnet_selector: Some(o.discovery()),
                security_group_selector: Some(o.discovery()),
                block_device_mappings: Some(vec![typed(
                    fam.image_volume(),
                    "blockDeviceMappings",
                )?]),
                tags: Some(BTreeMap::from([(
                    crate::model::contract::PROFILE_LABEL.to_string(),
                    g.profile(),
                )])),
                user_data: Some(fam.user_data(&g.slice, o.fail_requests_greater_than_one)),
                ..Default::default()
            };
            out.node_classes.push(to_value(&ant::AwsNodeTemplate {
                metadata: meta(&g.name, &g.pool.name),
                spec,
                status: None,
            })?);
            g.name.clone()
        }
    };
    let reqs = g.requirements(&g.types(), &g.capacity_types());
    let spec = prov::ProvisionerSpec {
        labels: Some(g.node_labels()),
        requirements: Some(typed(requirements_json(&reqs), "requirements")?),
        startup_taints: opt_vec(typed(taints_json(&g.startup_taints()), "startupTaints")?),
        taints: opt_vec(typed(taints_json(&g.pool.taints), "taints")?),
        limits: Some(prov::ProvisionerLimits {
            resources: Some(BTreeMap::from([(
                NVIDIA_GPU.to_string(),
                gpu_quantity(g.gpus()),
            )])),
        }),
        provider_ref: Some(prov::ProvisionerProviderRef {
            api_version: Some("karpenter.k8s.aws/v1alpha1".to_string()),
            kind: Some("AWSNodeTemplate".to_string()),
            name: template,
        }),
        consolidation: Some(prov::ProvisionerConsolidation {
            enabled: Some(true),
        }),
        weight: g.frame.weight,
        ..Default::default()
    };
    out.pools.push(to_value(&prov::Provisioner {
        metadata: meta(&g.name, &g.pool.name),
        spec,
        status: None,
    })?);
    Ok(())
}
