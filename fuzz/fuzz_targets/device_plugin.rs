//! The NVIDIA device plugin's config: one config text (`parse_device_plugin_config`), the
//! same text as the `data` value of a ConfigMap, and the input itself as a ConfigMap
//! object when it is JSON (`device_plugin_from_configmap`).
#![no_main]

use fuzz_common::{measured, text};
use gpu_slicer::config::{device_plugin_from_configmap, parse_device_plugin_config};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

fuzz_target!(|data: &[u8]| {
    let Some(s) = text(data) else { return };
    measured("config::device_plugin", s.len(), || {
        if let Ok(profile) = parse_device_plugin_config(s) {
            let _ = profile.is_shared();
        }
        let cm = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "nvidia-device-plugin", "namespace": "kube-system"},
            "data": {"any": s}
        });
        if let Ok(c) = device_plugin_from_configmap(&cm) {
            let _ = c.replica_policy();
        }
        if let Ok(v) = serde_json::from_str::<Value>(s)
            && let Ok(c) = device_plugin_from_configmap(&v)
        {
            let _ = c.replica_policy();
        }
    });
});
