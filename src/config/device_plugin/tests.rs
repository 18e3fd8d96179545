use super::*;
use serde_json::json;

/// The seed guide's ConfigMap (Step 4), as YAML would load it.
fn seed_configmap() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "nvidia-device-plugin", "namespace": "kube-system"},
        "data": {
            "any": "version: v1\nflags:\n  migStrategy: none\nsharing:\n  timeSlicing:\n    resources:\n    - name: nvidia.com/gpu\n      replicas: 10"
        }
    })
}

fn ts(replicas: u32) -> SharingProfile {
    SharingProfile {
        strategy: SharingStrategy::TimeSlicing,
        replicas,
        rename_by_default: false,
        fail_requests_greater_than_one: false,
    }
}

/// The error for a config text, as (field, message).
fn err_of(text: &str) -> (String, String) {
    match parse_device_plugin_config(text) {
        Ok(p) => panic!("accepted {text:?} as {p:?}"),
        Err(e) => (e.field, e.message),
    }
}

fn sliced(body: &str) -> String {
    format!("version: v1\nsharing:\n  timeSlicing:\n{body}")
}

#[test]
fn seed_configmap_parses() {
    let cfg = device_plugin_from_configmap(&seed_configmap()).unwrap();
    assert_eq!(cfg.name, "nvidia-device-plugin");
    assert_eq!(cfg.namespace, "kube-system");
    assert_eq!(cfg.profiles.len(), 1);
    assert_eq!(cfg.profiles["any"], ts(10));
    assert_eq!(cfg.replica_policy(), Some(ReplicaPolicy::Fixed(10)));
}

#[test]
fn gpu_operator_multi_profile_configmap() {
    // The GPU Operator / device-plugin chart style: several named configs, a node picks
    // one with the `nvidia.com/device-plugin.config` label.
    let cm = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "time-slicing-config", "namespace": "gpu-operator"},
        "data": {
            "default": "version: v1\nflags:\n  migStrategy: none\n  failOnInitError: true\n  nvidiaDriverRoot: /\n  plugin:\n    passDeviceSpecs: false\n    deviceListStrategy: envvar\n    deviceIDStrategy: uuid\n  gfd:\n    oneshot: false\n    sleepInterval: 60s\n",
            "ts-r4": "version: v1\nflags:\n  migStrategy: none\nsharing:\n  timeSlicing:\n    renameByDefault: false\n    failRequestsGreaterThanOne: false\n    resources:\n      - name: nvidia.com/gpu\n        replicas: 4\n",
            "ts-r8": "version: v1\nsharing:\n  timeSlicing:\n    failRequestsGreaterThanOne: true\n    resources:\n    - name: nvidia.com/gpu\n      replicas: 8\n      devices: all\n",
            "mps-2": "version: v1\nsharing:\n  mps:\n    resources:\n    - name: gpu\n      replicas: 2\n",
            "json": "{\"version\": \"v1\", \"sharing\": {\"timeSlicing\": {\"resources\": [{\"name\": \"nvidia.com/gpu\", \"replicas\": 4}]}}}",
        }
    });
    let cfg = device_plugin_from_configmap(&cm).unwrap();
    assert_eq!(cfg.profiles.len(), 5);
    assert_eq!(cfg.profiles["default"], SharingProfile::UNSHARED);
    assert_eq!(cfg.profiles["ts-r4"], ts(4));
    assert_eq!(
        cfg.profiles["ts-r8"],
        SharingProfile {
            fail_requests_greater_than_one: true,
            ..ts(8)
        }
    );
    assert_eq!(
        cfg.profiles["mps-2"],
        SharingProfile {
            strategy: SharingStrategy::Mps,
            replicas: 2,
            rename_by_default: false,
            fail_requests_greater_than_one: true,
        }
    );
    assert_eq!(cfg.profiles["json"], ts(4));
    assert_eq!(
        cfg.replica_policy(),
        Some(ReplicaPolicy::OneOf(vec![2, 4, 8]))
    );
    assert_eq!(SharingStrategy::Mps.as_str(), "mps");
}

#[test]
fn no_sharing_profiles_give_no_policy() {
    let cm = json!({
        "metadata": {"name": "nvdp"},
        "data": {"plain": "version: v1\nflags:\n  migStrategy: none\n", "empty-sharing": "version: v1\nsharing: {}\n"}
    });
    let cfg = device_plugin_from_configmap(&cm).unwrap();
    assert_eq!(cfg.namespace, "");
    assert_eq!(cfg.replica_policy(), None);
}

#[test]
fn full_real_config_is_accepted() {
    let text = r#"
version: v1
flags:
  migStrategy: mixed
  failOnInitError: true
  restartOnDeviceUnhealthy: false
  mpsRoot: /run/nvidia/mps
  nvidiaDriverRoot: /run/nvidia/driver
  nvidiaDevRoot: /
  gdrcopyEnabled: false
  gdsEnabled: false
  mofedEnabled: false
  useNodeFeatureAPI: false
  deviceDiscoveryStrategy: auto
  plugin:
    passDeviceSpecs: true
    deviceListStrategy: [envvar, cdi-annotations]
    deviceIDStrategy: index
    cdiAnnotationPrefix: cdi.k8s.io/
    nvidiaCTKPath: /usr/bin/nvidia-ctk
    containerDriverRoot: /driver-root
    kubeletSocket: /var/lib/kubelet/device-plugins/kubelet.sock
  gfd:
    oneshot: false
    noTimestamp: true
    sleepInterval: 60s
    outputFile: /etc/kubernetes/node-feature-discovery/features.d/gfd
    machineTypeFile: /sys/class/dmi/id/product_name
resources:
  gpus:
  - pattern: "*"
    name: gpu
imex:
  channelIDs: [0]
  required: false
health:
  eventTypes: [EventTypeXidCriticalError]
sharing:
  timeSlicing:
    renameByDefault: true
    resources:
    - name: nvidia.com/gpu
      rename: nvidia.com/gpu
      devices: all
      replicas: 48
"#;
    let p = parse_device_plugin_config(text).unwrap();
    assert_eq!(
        p,
        SharingProfile {
            rename_by_default: true,
            ..ts(48)
        }
    );
}

#[test]
fn strictness_errors() {
    let cases: Vec<(String, &str, &str)> = vec![
        (
            "version: v1\nflags:\n  renameByDefault: true\n".into(),
            "flags.renameByDefault",
            "`renameByDefault` is not valid under `flags`; it belongs under `sharing.timeSlicing` (or `sharing.mps`)",
        ),
        (
            "version: v1\nflags:\n  migStrategy: none\n  timeSlicing: {}\n".into(),
            "flags.timeSlicing",
            "`timeSlicing` is not valid under `flags`; it belongs under `sharing`",
        ),
        (
            "version: v1\nmigStrategy: none\n".into(),
            "migStrategy",
            "`migStrategy` is not valid at the top level; it belongs under `flags`",
        ),
        (
            "version: v1\nflags:\n  deviceIDStrategy: uuid\n".into(),
            "flags.deviceIDStrategy",
            "`deviceIDStrategy` is not valid under `flags`; it belongs under `flags.plugin`",
        ),
        (
            "version: v1\nsharing:\n  timeSlicing:\n    replicas: 4\n".into(),
            "sharing.timeSlicing.replicas",
            "`replicas` is not valid under `sharing.timeSlicing`; it belongs in each entry of `sharing.timeSlicing.resources`",
        ),
        (
            "version: v1\nsharing:\n  timeslicing:\n    resources: []\n".into(),
            "sharing.timeslicing",
            "unknown key `timeslicing`; did you mean `timeSlicing`? (expected one of: timeSlicing, mps)",
        ),
        (
            "version: v1\nflags:\n  renamebydefault: true\n".into(),
            "flags.renamebydefault",
            "unknown key `renamebydefault`; did you mean `renameByDefault`, which belongs under `sharing.timeSlicing` (or `sharing.mps`)?",
        ),
        (
            "version: v1\nextra: 1\n".into(),
            "extra",
            "unknown key `extra` (expected one of: version, flags, resources, sharing, imex, health)",
        ),
        (
            "flags:\n  migStrategy: none\n".into(),
            "version",
            "is required (must be `v1`)",
        ),
        ("version: v2\n".into(), "version", "must be `v1`, got \"v2\""),
        ("version: 1\n".into(), "version", "must be `v1`, got the number 1"),
        (
            "version: v1\nsharing:\n  timeSlicing:\n    resources:\n    - name: nvidia.com/gpu\n      replicas: 2\n  mps:\n    resources:\n    - name: nvidia.com/gpu\n      replicas: 2\n".into(),
            "sharing",
            "`timeSlicing` and `mps` are mutually exclusive; configure only one",
        ),
        (
            sliced("    resources:\n    - name: nvidia.com/gpu\n      replicas: 1\n"),
            "sharing.timeSlicing.resources[0].replicas",
            "must be at least 2, got 1 (a config without sharing has no `sharing` section)",
        ),
        (
            sliced("    resources:\n    - name: nvidia.com/gpu\n      replicas: -3\n"),
            "sharing.timeSlicing.resources[0].replicas",
            "must be at least 2, got -3 (a config without sharing has no `sharing` section)",
        ),
        (
            sliced("    resources:\n    - name: nvidia.com/gpu\n      replicas: 49\n"),
            "sharing.timeSlicing.resources[0].replicas",
            "must be at most 48 (the most replicas gpu-slicer plans with), got 49",
        ),
        (
            sliced("    resources:\n    - name: nvidia.com/gpu\n      replicas: 2.5\n"),
            "sharing.timeSlicing.resources[0].replicas",
            "must be an integer, got the number 2.5",
        ),
        (
            sliced("    resources:\n    - name: nvidia.com/gpu\n      replicas: \"10\"\n"),
            "sharing.timeSlicing.resources[0].replicas",
            "must be an integer from 2 to 48, got the string \"10\"",
        ),
        (
            sliced("    resources:\n    - name: nvidia.com/gpu\n"),
            "sharing.timeSlicing.resources[0].replicas",
            "is required (an integer from 2 to 48)",
        ),
        (
            sliced("    resources:\n    - name: nvidia.com/mig-1g.5gb\n      replicas: 2\n"),
            "sharing.timeSlicing.resources[0].name",
            "resource \"nvidia.com/mig-1g.5gb\" is not supported: only nvidia.com/gpu is supported by gpu-slicer",
        ),
        (
            sliced("    resources:\n    - replicas: 2\n"),
            "sharing.timeSlicing.resources[0].name",
            "is required",
        ),
        (
            sliced("    resources: []\n"),
            "sharing.timeSlicing.resources",
            "must list at least one resource (`nvidia.com/gpu` with its replicas)",
        ),
        (
            sliced("    renameByDefault: false\n"),
            "sharing.timeSlicing.resources",
            "is required: list `nvidia.com/gpu` with its replicas",
        ),
        (
            sliced("    resources:\n    - name: nvidia.com/gpu\n      replicas: 2\n    - name: gpu\n      replicas: 4\n"),
            "sharing.timeSlicing.resources[1].name",
            "duplicate entry for nvidia.com/gpu (first at `sharing.timeSlicing.resources[0]`)",
        ),
        (
            sliced("    resources:\n    - name: nvidia.com/gpu\n      rename: nvidia.com/gpu-small\n      replicas: 2\n"),
            "sharing.timeSlicing.resources[0].rename",
            "renaming is not supported: gpu-slicer plans with the resource name nvidia.com/gpu (remove `rename`), got \"nvidia.com/gpu-small\"",
        ),
        (
            sliced("    resources:\n    - name: nvidia.com/gpu\n      devices: [0, 1]\n      replicas: 2\n"),
            "sharing.timeSlicing.resources[0].devices",
            "must be `all` or absent: gpu-slicer gives every GPU of a node the same replicas, got a list",
        ),
        (
            sliced("    resources:\n    - name: nvidia.com/gpu\n      devices: 2\n      replicas: 2\n"),
            "sharing.timeSlicing.resources[0].devices",
            "must be `all` or absent: gpu-slicer gives every GPU of a node the same replicas, got the number 2",
        ),
        (
            sliced("    renameByDefault: \"true\"\n    resources:\n    - name: nvidia.com/gpu\n      replicas: 2\n"),
            "sharing.timeSlicing.renameByDefault",
            "must be true or false, got the string \"true\"",
        ),
        (
            "version: v1\nflags:\n  failOnInitError: \"yes\"\n".into(),
            "flags.failOnInitError",
            "must be true or false, got the string \"yes\"",
        ),
        (
            "version: v1\nflags:\n  migStrategy: full\n".into(),
            "flags.migStrategy",
            "must be one of none, single, mixed, got the string \"full\"",
        ),
        (
            "version: v1\nflags:\n  plugin:\n    deviceListStrategy: [envvar, bogus]\n".into(),
            "flags.plugin.deviceListStrategy[1]",
            "must be one of envvar, volume-mounts, cdi-annotations, cdi-cri (or a list of them), got the string \"bogus\"",
        ),
        (
            "version: v1\nimex:\n  channelIDs: [1]\n".into(),
            "imex.channelIDs",
            "must be [] or [0] (the only IMEX channel configurations the plugin supports), got a list",
        ),
        (
            "version: v1\nresources:\n- name: nvidia.com/gpu\n  replicas: 4\n".into(),
            "resources",
            "the top-level `resources` takes `gpus`/`mig` renaming patterns; a list of replicated resources belongs under `sharing.timeSlicing.resources` (or `sharing.mps.resources`)",
        ),
        (
            "version: v1\nsharing:\n  mps:\n    replicas: 2\n".into(),
            "sharing.mps.replicas",
            "`replicas` is not valid under `sharing.mps`; it belongs in each entry of `sharing.mps.resources`",
        ),
        (
            "version: v1\nsharing:\n  timeSlicing: 4\n".into(),
            "sharing.timeSlicing",
            "must be a mapping, got the number 4",
        ),
        (
            "- version: v1\n".into(),
            "",
            "must be a mapping (a device-plugin config with `version: v1`), got a list",
        ),
        (
            "   \n".into(),
            "",
            "empty config; expected a device-plugin config starting with `version: v1`",
        ),
        (
            "# just a comment\n".into(),
            "",
            "empty config; expected a device-plugin config starting with `version: v1`",
        ),
        (
            "version: v1\nversion: v1\n".into(),
            "",
            "not valid YAML: duplicate mapping key `version` is not allowed here at line 2, column 1",
        ),
        (
            "version: v1\nsharing: [\n".into(),
            "",
            "not valid YAML: unclosed bracket '[' at line 2, column 10",
        ),
        (
            "version: v1\nsharing:\n  ? [timeSlicing]\n  : {}\n".into(),
            "",
            "not valid YAML: a mapping key is a sequence or a mapping (or an alias of one); \
                 Kubernetes objects have text keys only at line 3, column 5",
        ),
    ];
    for (text, field, message) in cases {
        assert_eq!(
            err_of(&text),
            (field.to_string(), message.to_string()),
            "config:\n{text}"
        );
    }
}

#[test]
fn configmap_errors() {
    let cases = vec![
        (
            json!({"kind": "ConfigMap", "metadata": {"name": "nvdp"}, "data": {}}),
            "data",
            "is empty; expected at least one device-plugin config (e.g. `any: |` with `version: v1`)",
        ),
        (
            json!({"kind": "ConfigMap", "metadata": {"name": "nvdp"}}),
            "data",
            "is empty; expected at least one device-plugin config (e.g. `any: |` with `version: v1`)",
        ),
        (
            json!({"kind": "Secret", "metadata": {"name": "nvdp"}, "data": {"a": ""}}),
            "kind",
            "must be ConfigMap, got \"Secret\"",
        ),
        (
            json!({"kind": "ConfigMap", "metadata": {}, "data": {"a": ""}}),
            "metadata.name",
            "is required",
        ),
        (
            json!({"kind": "ConfigMap", "metadata": {"name": "nvdp"}, "data": {"any": {"version": "v1"}}}),
            "data.any",
            "must be a string holding a device-plugin config (YAML or JSON), got a mapping",
        ),
        (
            json!({"kind": "ConfigMap", "metadata": {"name": "nvdp"}, "data": {"any": ""}}),
            "data.any",
            "empty config; expected a device-plugin config starting with `version: v1`",
        ),
        (
            json!({"kind": "ConfigMap", "metadata": {"name": "nvdp"}, "data": {"any": "version: v1\nsharing:\n  timeSlicing:\n    resources:\n    - name: nvidia.com/gpu\n      replicas: 64\n"}}),
            "data.any: sharing.timeSlicing.resources[0].replicas",
            "must be at most 48 (the most replicas gpu-slicer plans with), got 64",
        ),
        (
            json!({"kind": "ConfigMap", "metadata": {"name": "nvdp"}, "data": {"a.yaml": "version: v1\nsharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 64}]}}"}}),
            "data[\"a.yaml\"]: sharing.timeSlicing.resources[0].replicas",
            "must be at most 48 (the most replicas gpu-slicer plans with), got 64",
        ),
        (
            json!("text"),
            "",
            "must be a mapping (a ConfigMap), got the string \"text\"",
        ),
    ];
    for (cm, field, message) in cases {
        let e = device_plugin_from_configmap(&cm).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.message.as_str()),
            (field, message),
            "{cm}"
        );
    }
    let e = device_plugin_from_configmap(&cases_last_display()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "field `data.any: sharing`: `timeSlicing` and `mps` are mutually exclusive; configure only one"
    );
}

fn cases_last_display() -> Value {
    json!({"metadata": {"name": "nvdp"}, "data": {"any": "version: v1\nsharing:\n  timeSlicing: {resources: [{name: gpu, replicas: 2}]}\n  mps: {resources: [{name: gpu, replicas: 2}]}\n"}})
}

#[test]
fn mps_fail_requests_default_and_override() {
    let p = parse_device_plugin_config(
        "version: v1\nsharing:\n  mps:\n    failRequestsGreaterThanOne: false\n    resources:\n    - name: nvidia.com/gpu\n      replicas: 3\n",
    )
    .unwrap();
    assert_eq!(p.strategy, SharingStrategy::Mps);
    assert!(!p.fail_requests_greater_than_one);
}

#[test]
fn no_panic_on_malformed_configs() {
    let valid = [
        "version: v1\nflags:\n  migStrategy: none\nsharing:\n  timeSlicing:\n    resources:\n    - name: nvidia.com/gpu\n      replicas: 10",
        "{\"version\": \"v1\", \"sharing\": {\"mps\": {\"resources\": [{\"name\": \"gpu\", \"replicas\": 4, \"devices\": \"all\"}]}}}",
    ];
    let mut inputs: Vec<String> = Vec::new();
    for v in valid {
        // Every prefix, and every single-character deletion and substitution.
        let chars: Vec<char> = v.chars().collect();
        for i in 0..=chars.len() {
            inputs.push(chars[..i].iter().collect());
            if i < chars.len() {
                let mut d = chars.clone();
                d.remove(i);
                inputs.push(d.iter().collect());
                for sub in [':', '-', '[', '{', '"', '\t', '\n', '&', '*', '!', '0'] {
                    let mut s = chars.clone();
                    s[i] = sub;
                    inputs.push(s.iter().collect());
                }
            }
        }
    }
    for extra in [
        "\u{0}",
        "\u{feff}version: v1",
        "a: &x [*x]",
        "a: !!binary ZZZ",
        "? : :",
        "%YAML 1.2\n---\n",
        "version: v1\nsharing:\n  timeSlicing:\n    resources:\n    - name: nvidia.com/gpu\n      replicas: 18446744073709551616\n",
        "version: v1\nsharing:\n  timeSlicing:\n    resources:\n    - name: nvidia.com/gpu\n      replicas: -9223372036854775809\n",
        "version: v1\nsharing:\n  timeSlicing:\n    resources:\n    - name: nvidia.com/gpu\n      replicas: .nan\n",
        "version: v1\nsharing:\n  timeSlicing:\n    resources:\n    - name: nvidia.com/gpu\n      replicas: 1e400\n",
        "x: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
    ] {
        inputs.push(extra.to_string());
    }
    // A deterministic pseudo-random sweep of short strings over YAML's punctuation.
    let alphabet: Vec<char> = "version: v1\n -[]{}\"',&*!|>#?%@`sharing timeSlicing replicas 2"
        .chars()
        .collect();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..3000 {
        let mut s = String::new();
        for _ in 0..(state % 40) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let i = usize::try_from(state % alphabet.len() as u64).unwrap();
            s.push(alphabet[i]);
        }
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
        inputs.push(s);
    }
    for text in &inputs {
        let _ = parse_device_plugin_config(text);
        let cm = json!({"metadata": {"name": "x"}, "data": {"k": text}});
        let _ = device_plugin_from_configmap(&cm);
    }
}
