//! The NVIDIA device plugin's ConfigMap that gpu-slicer owns: one key per profile
//! (`ts-r1`, `ts-r4`, `mps-r4`, …), and the plugin Helm chart values that select it.
//!
//! gpu-slicer never rewrites the user's own device-plugin ConfigMap. It writes its own
//! (default `kube-system/gpu-slicer-device-plugin`), carrying a corrected copy of every key
//! of the user's ConfigMap found among the inputs (so nodes that select those keys keep
//! their configuration once the chart points at the new ConfigMap) and a key per profile.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use crate::config::{DevicePluginConfig, SharingProfile, SharingStrategy};
use crate::model::slice::{NodeSharing, Slice};
use crate::model::{NVIDIA_GPU, profile_name};

use super::RenderError;
use crate::model::contract::owned_labels;

/// Name of the ConfigMap gpu-slicer writes, unless `--device-plugin-configmap` says otherwise.
pub const DEVICE_PLUGIN_CONFIGMAP: &str = "gpu-slicer-device-plugin";

/// What the NVIDIA device plugin Helm chart needs to use gpu-slicer's ConfigMap
/// (`--set config.name=… --set config.default=…`, and `--set gfd.enabled=true` when a
/// profile uses MPS: the chart runs its MPS control daemon only on nodes that GPU Feature
/// Discovery labels `nvidia.com/mps.capable=true`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChartValues {
    pub config: ChartConfig,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gfd: Option<ChartGfd>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChartConfig {
    /// The ConfigMap the plugin reads.
    pub name: String,
    /// The key used on nodes without the `nvidia.com/device-plugin.config` label.
    pub default: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ChartGfd {
    pub enabled: bool,
}

impl ChartValues {
    /// The values as YAML, for `helm upgrade -f`.
    pub fn to_yaml(&self) -> String {
        let mut y = format!(
            "config:\n  name: {}\n  default: {}\n",
            self.config.name, self.config.default
        );
        if let Some(g) = &self.gfd {
            y.push_str(&format!("gfd:\n  enabled: {}\n", g.enabled));
        }
        y
    }
}

/// One config in the plugin's `version: v1` format. Every sharing setting is explicit.
pub fn config_text(profile: &SharingProfile) -> String {
    let mut s = String::from("version: v1\nflags:\n  migStrategy: none\n");
    let section = match profile.strategy {
        SharingStrategy::None => return s,
        SharingStrategy::TimeSlicing => "timeSlicing",
        SharingStrategy::Mps => "mps",
    };
    s.push_str(&format!(
        "sharing:\n  {section}:\n    renameByDefault: {}\n    failRequestsGreaterThanOne: {}\n    \
         resources:\n    - name: {NVIDIA_GPU}\n      replicas: {}\n",
        profile.rename_by_default, profile.fail_requests_greater_than_one, profile.replicas
    ));
    s
}

/// The profile gpu-slicer writes for nodes with `slice`: MPS, time-slicing or none.
pub fn profile_of(slice: &Slice, fail_requests_greater_than_one: bool) -> SharingProfile {
    if slice.sharing == NodeSharing::Mps && slice.replicas > 1 {
        // The plugin forces failRequestsGreaterThanOne for MPS.
        SharingProfile {
            strategy: SharingStrategy::Mps,
            replicas: slice.replicas,
            rename_by_default: false,
            fail_requests_greater_than_one: true,
        }
    } else {
        time_slicing(slice.replicas, fail_requests_greater_than_one)
    }
}

/// The profile gpu-slicer writes for `replicas` per GPU.
pub fn time_slicing(replicas: u32, fail_requests_greater_than_one: bool) -> SharingProfile {
    if replicas <= 1 {
        return SharingProfile::UNSHARED;
    }
    SharingProfile {
        strategy: SharingStrategy::TimeSlicing,
        replicas,
        rename_by_default: false,
        fail_requests_greater_than_one,
    }
}

/// Builds the ConfigMap (keys: the user's, corrected, then the profile of every slice in
/// `slices`, `ts-r<R>` or `mps-r<R>`, and always `ts-r1`) and the chart values. Refuses a user config that renames the resource, and
/// a user key named like a profile whose content differs from gpu-slicer's.
pub fn configmap(
    namespace: &str,
    name: &str,
    slices: &[Slice],
    fail_requests_greater_than_one: bool,
    user: Option<&DevicePluginConfig>,
) -> Result<(ConfigMap, ChartValues), RenderError> {
    let mut data: BTreeMap<String, String> = BTreeMap::new();
    let mut profiles: BTreeMap<String, SharingProfile> = BTreeMap::new();
    if let Some(u) = user {
        let object = format!("ConfigMap {}/{}", or_default_ns(&u.namespace), u.name);
        for (key, p) in &u.profiles {
            if p.rename_by_default {
                return Err(RenderError::new(
                    &object,
                    format!("data.{key}: sharing.*.renameByDefault"),
                    "is true: the plugin would advertise nvidia.com/gpu.shared, while pods and \
                     gpu-slicer's plan use nvidia.com/gpu; set renameByDefault: false",
                ));
            }
            profiles.insert(key.clone(), p.clone());
        }
    }
    let mut wanted: BTreeMap<String, SharingProfile> = slices
        .iter()
        .map(|s| (s.profile(), profile_of(s, fail_requests_greater_than_one)))
        .collect();
    wanted.insert(profile_name(1), SharingProfile::UNSHARED);
    let mps = wanted.values().any(|p| p.strategy == SharingStrategy::Mps);
    for (key, ours) in wanted {
        if let Some(theirs) = profiles.get(&key)
            && *theirs != ours
        {
            let u = user.map_or(String::new(), |u| {
                format!("ConfigMap {}/{}", or_default_ns(&u.namespace), u.name)
            });
            return Err(RenderError::new(
                &u,
                format!("data.{key}"),
                format!(
                    "is named like gpu-slicer's profile {key} but configures {} replicas ({}); \
                     rename that key",
                    theirs.replicas,
                    theirs.strategy.as_str()
                ),
            ));
        }
        profiles.insert(key, ours);
    }
    for (k, p) in &profiles {
        data.insert(k.clone(), config_text(p));
    }
    let default = match user {
        Some(u) if u.profiles.len() == 1 => u.profiles.keys().next().cloned(),
        _ => None,
    }
    .unwrap_or_else(|| profile_name(1));
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(owned_labels(None)),
            ..ObjectMeta::default()
        },
        data: Some(data),
        ..ConfigMap::default()
    };
    let values = ChartValues {
        config: ChartConfig {
            name: name.to_string(),
            default,
        },
        gfd: mps.then_some(ChartGfd { enabled: true }),
    };
    Ok((cm, values))
}

fn or_default_ns(ns: &str) -> &str {
    if ns.is_empty() { "default" } else { ns }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_device_plugin_config;

    fn ts(r: u32) -> Slice {
        Slice::new(16384, r)
    }

    #[test]
    fn config_text_round_trips_through_the_strict_parser() {
        for r in [1, 2, 4, 10, 48] {
            for fail in [false, true] {
                let p = time_slicing(r, fail);
                let text = config_text(&p);
                let back = parse_device_plugin_config(&text).expect("own output parses");
                assert_eq!(back, p, "{text}");
            }
        }
        let t = config_text(&time_slicing(4, false));
        assert!(t.contains("renameByDefault: false"), "{t}");
        assert!(t.contains("failRequestsGreaterThanOne: false"), "{t}");
    }

    #[test]
    fn keys_and_default() {
        let (cm, v) = configmap(
            "kube-system",
            "gpu-slicer-device-plugin",
            &[ts(4), ts(2), ts(4)],
            false,
            None,
        )
        .expect("renders");
        let keys: Vec<&String> = cm.data.as_ref().expect("data").keys().collect();
        assert_eq!(keys, ["ts-r1", "ts-r2", "ts-r4"]);
        assert_eq!(v.config.default, "ts-r1");
        assert_eq!(v.config.name, "gpu-slicer-device-plugin");
        assert!(v.to_yaml().contains("default: ts-r1"));
        assert!(!v.to_yaml().contains("gfd"), "no MPS, no GFD needed");
    }

    #[test]
    fn mps_keys_parse_as_mps_and_ask_for_gfd() {
        let (cm, v) = configmap(
            "kube-system",
            "x",
            &[
                ts(4),
                ts(4).under_mps(crate::model::slice::Efficiency::MEASURED),
            ],
            true,
            None,
        )
        .expect("renders");
        let data = cm.data.expect("data");
        let keys: Vec<&String> = data.keys().collect();
        assert_eq!(keys, ["mps-r4", "ts-r1", "ts-r4"]);
        let back = parse_device_plugin_config(&data["mps-r4"]).expect("own output parses");
        assert_eq!(back.strategy, SharingStrategy::Mps);
        assert_eq!(back.replicas, 4);
        assert!(!back.rename_by_default && back.fail_requests_greater_than_one);
        assert!(
            data["mps-r4"].contains("sharing:\n  mps:"),
            "{}",
            data["mps-r4"]
        );
        assert!(
            v.to_yaml().ends_with("gfd:\n  enabled: true\n"),
            "{}",
            v.to_yaml()
        );
    }

    #[test]
    fn user_keys_are_kept_corrected_and_rename_is_refused() {
        let mut user = DevicePluginConfig {
            namespace: "kube-system".into(),
            name: "nvidia-device-plugin".into(),
            profiles: BTreeMap::from([(
                "any".to_string(),
                SharingProfile {
                    strategy: SharingStrategy::TimeSlicing,
                    replicas: 10,
                    rename_by_default: false,
                    fail_requests_greater_than_one: false,
                },
            )]),
        };
        let (cm, v) = configmap("kube-system", "x", &[ts(10)], false, Some(&user)).expect("ok");
        let data = cm.data.expect("data");
        assert!(data["any"].contains("replicas: 10"));
        assert!(data["any"].contains("renameByDefault: false"));
        assert_eq!(v.config.default, "any");

        user.profiles.get_mut("any").expect("any").rename_by_default = true;
        let e = configmap("kube-system", "x", &[ts(10)], false, Some(&user)).expect_err("rename");
        let msg = e.to_string();
        assert!(
            msg.contains("ConfigMap kube-system/nvidia-device-plugin"),
            "{msg}"
        );
        assert!(msg.contains("renameByDefault"), "{msg}");

        let mut clash = user.clone();
        clash.profiles.clear();
        clash
            .profiles
            .insert("ts-r4".into(), time_slicing(8, false));
        let e = configmap("kube-system", "x", &[ts(4)], false, Some(&clash)).expect_err("clash");
        assert!(e.to_string().contains("data.ts-r4"), "{e}");
    }
}
