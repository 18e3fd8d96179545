//! The configuration gpu-slicer reads from Kubernetes objects and flags: the NVIDIA device
//! plugin's ConfigMap, annotated Karpenter NodePools, and the pod/NodePool annotation values
//! of `gpu-slicer.io/*` (see `shared/design/CONTRACT.md`).
//!
//! Everything here is pure: functions over `serde_json::Value` and `&str`, no I/O. Every
//! error is a [`FieldError`] naming the field (a JSON-path-like string) and the reason;
//! the caller adds the file, document and object.
//!
//! Parsing is strict: an unknown, misplaced or mistyped key is an error with a reason,
//! never a silent default, because a config that gpu-slicer misreads plans the wrong
//! capacity.

mod annotations;
mod device_plugin;
mod nodepool;
pub(crate) mod value;

pub use annotations::{
    ANNOTATION_PREFIX, CONTEXT_MEMORY, EMISSION, EMISSION_MODES, ENABLED, GPU_MEMORY,
    GPU_MEMORY_CONTEXT, GPU_MEMORY_HEADROOM, GPU_SHARE, ISOLATION, MAX_HOURLY_COST, MAX_REPLICAS,
    MPS_EFFICIENCY, NODEPOOL_ANNOTATIONS, POD_ANNOTATIONS, REPLICAS, SHARE_MODEL, SHARING,
    SHARING_STRATEGY, TIME_SLICING_EFFICIENCY, annotation_field, parse_efficiency,
    parse_gpu_memory_context, parse_gpu_memory_mib, parse_isolation, parse_share, parse_sharing,
};
pub use device_plugin::{
    DevicePluginConfig, SharingProfile, SharingStrategy, device_plugin_from_configmap,
    parse_device_plugin_config,
};
pub(crate) use nodepool::parse_taint;
pub use nodepool::{
    DEFAULT_MAX_REPLICAS, annotations_without_enabled, parse_replicas_flag, pool_from_nodepool,
};

use crate::model::quantity::QuantityError;

/// A configuration value that gpu-slicer cannot use, and why.
///
/// `field` is a JSON-path-like string: `metadata.annotations["gpu-slicer.io/replicas"]`,
/// `spec.template.spec.requirements[0].operator`, or for a device-plugin ConfigMap
/// `data.any: sharing.timeSlicing.resources[0].replicas` (the data key, then the path
/// inside that config). It is empty only when the error concerns a whole device-plugin
/// config document passed to [`parse_device_plugin_config`] (not valid YAML, empty).
///
/// Displays as `field `{field}`: {message}` (the message alone when `field` is empty).
/// A value that is not a Kubernetes quantity keeps the [`QuantityError`] as its
/// [`source`](std::error::Error::source); the message already says what it says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", field_prefix(.field))]
pub struct FieldError {
    pub field: String,
    pub message: String,
    /// The quantity that did not parse, when the message is about one.
    #[source]
    pub cause: Option<Box<QuantityError>>,
}

/// `field `x`: `, or nothing for an error without a field.
fn field_prefix(field: &str) -> String {
    if field.is_empty() {
        String::new()
    } else {
        format!("field `{field}`: ")
    }
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
            cause: None,
        }
    }

    /// The same error, caused by the quantity that did not parse.
    pub fn caused_by(self, cause: QuantityError) -> Self {
        FieldError {
            cause: Some(Box::new(cause)),
            ..self
        }
    }

    /// The same error seen from an enclosing object: `prefix: field` (or just `prefix`
    /// when the error had no field). Used for the values of a ConfigMap's `data`.
    pub fn within(self, prefix: &str) -> Self {
        let field = if self.field.is_empty() {
            prefix.to_string()
        } else if prefix.is_empty() {
            self.field
        } else {
            format!("{prefix}: {}", self.field)
        };
        FieldError { field, ..self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_within() {
        let e = FieldError::new("sharing.timeSlicing.resources[0].replicas", "must be ...");
        assert_eq!(
            e.to_string(),
            "field `sharing.timeSlicing.resources[0].replicas`: must be ..."
        );
        let e = e.within("data.any");
        assert_eq!(
            e.field,
            "data.any: sharing.timeSlicing.resources[0].replicas"
        );
        let whole = FieldError::new("", "empty config").within("data.any");
        assert_eq!(whole.to_string(), "field `data.any`: empty config");
        assert_eq!(
            FieldError::new("", "empty config").to_string(),
            "empty config"
        );
    }

    #[test]
    fn a_quantity_error_is_the_source() {
        use std::error::Error as _;
        let q = crate::model::quantity::parse("4Xi").unwrap_err();
        let e = FieldError::new("spec.limits.memory", q.to_string()).caused_by(q.clone());
        assert_eq!(e.to_string(), format!("field `spec.limits.memory`: {q}"));
        assert_eq!(e.source().map(ToString::to_string), Some(q.to_string()));
        let e = e.within("data.any");
        assert_eq!(e.field, "data.any: spec.limits.memory");
        assert!(e.source().is_some(), "within keeps the cause");
        assert!(FieldError::new("f", "m").source().is_none());
    }
}
