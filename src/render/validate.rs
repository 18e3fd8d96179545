//! Checks on the rendered objects before they leave `render`: every profile label names
//! a key of the device-plugin ConfigMap, and no two objects share a name.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::model::contract::DEVICE_PLUGIN_CONFIG_LABEL;

use super::RenderError;
use super::naming::describe_object;

/// Every `nvidia.com/device-plugin.config` label on an emitted NodePool, NodeClaim or
/// Provisioner must name a key of the emitted device-plugin ConfigMap.
pub fn check_profiles(objects: &[Value]) -> Result<(), RenderError> {
    let keys: BTreeSet<&str> = objects
        .iter()
        .filter(|o| o.get("kind").and_then(Value::as_str) == Some("ConfigMap"))
        .filter_map(|o| o.get("data").and_then(Value::as_object))
        .flat_map(|d| d.keys().map(String::as_str))
        .collect();
    for o in objects {
        let (labels, field) = match o.get("kind").and_then(Value::as_str) {
            Some("NodePool") => (
                o.pointer("/spec/template/metadata/labels"),
                "spec.template.metadata.labels",
            ),
            Some("NodeClaim") => (o.pointer("/metadata/labels"), "metadata.labels"),
            Some("Provisioner") => (o.pointer("/spec/labels"), "spec.labels"),
            _ => continue,
        };
        let Some(profile) = labels
            .and_then(|l| l.get(DEVICE_PLUGIN_CONFIG_LABEL))
            .and_then(Value::as_str)
        else {
            return Err(RenderError::new(
                &describe_object(o),
                format!("{field}[{DEVICE_PLUGIN_CONFIG_LABEL:?}]"),
                "is missing: the device plugin would not know the node's profile",
            ));
        };
        if !keys.contains(profile) {
            return Err(RenderError::new(
                &describe_object(o),
                format!("{field}[{DEVICE_PLUGIN_CONFIG_LABEL:?}]"),
                format!(
                    "names profile {profile:?}, which is not a key of the device-plugin ConfigMap"
                ),
            ));
        }
    }
    Ok(())
}

pub(super) fn check_unique_names(objects: &[Value]) -> Result<(), RenderError> {
    let mut seen = BTreeSet::new();
    for o in objects {
        let id = (
            o.get("apiVersion").and_then(Value::as_str).unwrap_or(""),
            describe_object(o),
        );
        if !seen.insert(id) {
            return Err(RenderError::new(
                &describe_object(o),
                "metadata.name",
                "two generated objects got the same name; rename one of the pools",
            ));
        }
    }
    Ok(())
}

/// Node classes shared by several groups are emitted once.
pub(super) fn dedup_by_identity(v: Vec<Value>) -> Vec<Value> {
    let mut seen = BTreeSet::new();
    v.into_iter()
        .filter(|o| {
            seen.insert((
                o.get("apiVersion")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                describe_object(o),
            ))
        })
        .collect()
}
