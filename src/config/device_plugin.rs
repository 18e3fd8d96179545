//! The NVIDIA device plugin's ConfigMap: named configs (one per `data` key), each a
//! `version: v1` config of `k8s-device-plugin` (`api/config/v1`), read strictly.
//!
//! The accepted schema is the union of the plugin's v1 config fields across its releases
//! (v0.12 to the 2025 main branch; `api/config/v1` in NVIDIA/k8s-device-plugin):
//!
//! ```yaml
//! version: v1                       # required here (the plugin defaults it; we do not)
//! flags:                            # CommandLineFlags
//!   migStrategy: none|single|mixed
//!   failOnInitError, restartOnDeviceUnhealthy, gdrcopyEnabled, gdsEnabled, mofedEnabled,
//!   useNodeFeatureAPI: <bool>
//!   mpsRoot, nvidiaDriverRoot, nvidiaDevRoot, deviceDiscoveryStrategy: <string>
//!   plugin: {passDeviceSpecs, deviceListStrategy, deviceIDStrategy, cdiAnnotationPrefix,
//!            nvidiaCTKPath, containerDriverRoot, kubeletSocket, cdiFeatureFlags}
//!   gfd: {oneshot, noTimestamp, sleepInterval, outputFile, machineTypeFile}
//! resources: {gpus: [{pattern, name}], mig: [{pattern, name}]}   # ignored by the plugin
//! sharing:
//!   timeSlicing | mps:              # mutually exclusive
//!     renameByDefault: <bool>       # default false
//!     failRequestsGreaterThanOne: <bool>   # default false (time-slicing), true (MPS)
//!     resources: [{name, rename, devices, replicas}]
//! imex: {channelIDs: [] | [0], required: <bool>}
//! health: {...}                     # newest plugins; accepted as an opaque mapping
//! ```
//!
//! On top of the plugin's own rules, gpu-slicer only plans `nvidia.com/gpu` with 2..=48
//! replicas on every GPU of a node, so it rejects other resources, `rename` and a
//! `devices` subset (the plugin ignores `rename` and `devices` with a warning anyway).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::model::{NVIDIA_GPU, ReplicaPolicy};

use super::FieldError;
use super::value::{
    as_map, describe, index, join, opt_list, opt_map, opt_str, req_str, show, suggest,
};

/// How a config shares each GPU (the plugin's `nvidia.com/gpu.sharing-strategy` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SharingStrategy {
    /// No `sharing` section: every GPU is one `nvidia.com/gpu`.
    None,
    /// `sharing.timeSlicing`.
    TimeSlicing,
    /// `sharing.mps` (CUDA MPS: memory and compute split evenly between replicas).
    Mps,
}

impl SharingStrategy {
    /// The value the plugin writes to the `nvidia.com/gpu.sharing-strategy` node label.
    pub fn as_str(self) -> &'static str {
        match self {
            SharingStrategy::None => "none",
            SharingStrategy::TimeSlicing => "time-slicing",
            SharingStrategy::Mps => "mps",
        }
    }
}

/// What one named config of the device plugin does to `nvidia.com/gpu`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharingProfile {
    pub strategy: SharingStrategy,
    /// Replicas per GPU; 1 when not shared.
    pub replicas: u32,
    /// `renameByDefault`: advertise `nvidia.com/gpu.shared` instead of `nvidia.com/gpu`.
    /// False when absent (the plugin's default).
    pub rename_by_default: bool,
    /// `failRequestsGreaterThanOne`: a container asking for more than one replica fails
    /// admission. When absent: false for time-slicing (the plugin's default), true for MPS
    /// (the plugin forces or defaults it to true for MPS).
    pub fail_requests_greater_than_one: bool,
}

impl SharingProfile {
    /// A config without sharing.
    pub const UNSHARED: SharingProfile = SharingProfile {
        strategy: SharingStrategy::None,
        replicas: 1,
        rename_by_default: false,
        fail_requests_greater_than_one: false,
    };

    pub fn is_shared(&self) -> bool {
        self.strategy != SharingStrategy::None
    }
}

/// The device plugin's ConfigMap: its configs by `data` key (the profile name a node
/// selects with the `nvidia.com/device-plugin.config` label).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicePluginConfig {
    /// `metadata.namespace`; empty when the object does not say.
    pub namespace: String,
    pub name: String,
    pub profiles: BTreeMap<String, SharingProfile>,
}

impl DevicePluginConfig {
    /// The replicas policy this config allows: `Fixed(r)` when every sharing profile uses
    /// the same `r`, `OneOf(sorted distinct)` when they differ, `None` when no profile
    /// shares. Time-slicing and MPS profiles both count: either way a pod on such a GPU
    /// gets at most 1/R of it.
    pub fn replica_policy(&self) -> Option<ReplicaPolicy> {
        let mut rs: Vec<u32> = self
            .profiles
            .values()
            .filter(|p| p.is_shared())
            .map(|p| p.replicas)
            .collect();
        rs.sort_unstable();
        rs.dedup();
        match rs.as_slice() {
            [] => None,
            [r] => Some(ReplicaPolicy::Fixed(*r)),
            _ => Some(ReplicaPolicy::OneOf(rs)),
        }
    }
}

/// Reads a device-plugin ConfigMap object. Every `data` value must be a valid config
/// ([`parse_device_plugin_config`]); errors inside one name it as `data.<key>: <path>`.
pub fn device_plugin_from_configmap(cm: &Value) -> Result<DevicePluginConfig, FieldError> {
    let obj = cm.as_object().ok_or_else(|| {
        FieldError::new(
            "",
            format!("must be a mapping (a ConfigMap), got {}", describe(cm)),
        )
    })?;
    if let Some(kind) = opt_str(obj, "kind", "kind")?
        && kind != "ConfigMap"
    {
        return Err(FieldError::new(
            "kind",
            format!("must be ConfigMap, got {}", show(kind)),
        ));
    }
    let meta = opt_map(obj, "metadata", "metadata")?
        .ok_or_else(|| FieldError::new("metadata.name", "is required"))?;
    let name = req_str(meta, "name", "metadata.name")?.to_string();
    let namespace = opt_str(meta, "namespace", "metadata.namespace")?
        .unwrap_or("")
        .to_string();
    let data = opt_map(obj, "data", "data")?.filter(|d| !d.is_empty());
    let Some(data) = data else {
        return Err(FieldError::new(
            "data",
            "is empty; expected at least one device-plugin config (e.g. `any: |` with `version: v1`)",
        ));
    };
    let mut profiles = BTreeMap::new();
    for (key, v) in data {
        let field = join("data", key);
        let Value::String(text) = v else {
            return Err(FieldError::new(
                field,
                format!(
                    "must be a string holding a device-plugin config (YAML or JSON), got {}",
                    describe(v)
                ),
            ));
        };
        let profile = parse_device_plugin_config(text).map_err(|e| e.within(&field))?;
        profiles.insert(key.clone(), profile);
    }
    Ok(DevicePluginConfig {
        namespace,
        name,
        profiles,
    })
}

/// Reads one device-plugin config (one `data` value: YAML, or JSON which is YAML too).
/// Errors name the path inside the config (`sharing.timeSlicing.resources[0].replicas`);
/// errors about the whole text (not valid YAML, empty) have an empty field.
pub fn parse_device_plugin_config(text: &str) -> Result<SharingProfile, FieldError> {
    const EMPTY: &str = "empty config; expected a device-plugin config starting with `version: v1`";
    if text.trim().is_empty() {
        return Err(FieldError::new("", EMPTY));
    }
    if let Some((line, column)) = super::value::complex_key(text) {
        return Err(FieldError::new(
            "",
            format!(
                "not valid YAML: {} at line {line}, column {column}",
                super::value::COMPLEX_KEY
            ),
        ));
    }
    let doc: Value =
        serde_saphyr::from_str_with_options(text, super::value::yaml_options(text.len())).map_err(
            |e| {
                let msg = e.render_with_options(serde_saphyr::render_options! {
                    formatter: &serde_saphyr::UserMessageFormatter,
                    snippets: serde_saphyr::SnippetMode::Off,
                });
                FieldError::new("", format!("not valid YAML: {msg}"))
            },
        )?;
    let top = match &doc {
        Value::Null => return Err(FieldError::new("", EMPTY)),
        Value::Object(m) => m,
        other => {
            return Err(FieldError::new(
                "",
                format!(
                    "must be a mapping (a device-plugin config with `version: v1`), got {}",
                    describe(other)
                ),
            ));
        }
    };
    check_keys(top, "", TOP_KEYS)?;
    match top.get("version") {
        None | Some(Value::Null) => {
            return Err(FieldError::new("version", "is required (must be `v1`)"));
        }
        Some(Value::String(v)) if v == "v1" => {}
        Some(Value::String(v)) => {
            return Err(FieldError::new(
                "version",
                format!("must be `v1`, got {}", show(v)),
            ));
        }
        Some(other) => {
            return Err(FieldError::new(
                "version",
                format!("must be `v1`, got {}", describe(other)),
            ));
        }
    }
    if let Some(v) = top.get("flags") {
        check_ty(v, Ty::Map(FLAGS), "flags")?;
    }
    if let Some(v) = top.get("resources") {
        check_rename_resources(v)?;
    }
    if let Some(v) = top.get("imex") {
        check_ty(v, Ty::Map(IMEX), "imex")?;
    }
    if let Some(v) = top.get("health") {
        check_ty(v, Ty::Opaque, "health")?;
    }
    parse_sharing(top)
}

// ---------------------------------------------------------------------------------------
// Schema of the parts gpu-slicer checks but does not use.

#[derive(Clone, Copy)]
enum Ty {
    Bool,
    Str,
    /// A string from a fixed set.
    Enum(&'static [&'static str]),
    /// A string or a list of strings, each from the set (any string if the set is empty).
    StrOrList(&'static [&'static str]),
    /// A Go duration: a string (`60s`) or a number of nanoseconds.
    Duration,
    /// `imex.channelIDs`: `[]` or `[0]`.
    ChannelIds,
    /// Any mapping, not looked into.
    Opaque,
    Map(&'static [(&'static str, Ty)]),
}

const TOP_KEYS: &[&str] = &["version", "flags", "resources", "sharing", "imex", "health"];

const FLAGS: &[(&str, Ty)] = &[
    ("migStrategy", Ty::Enum(&["none", "single", "mixed"])),
    ("failOnInitError", Ty::Bool),
    ("restartOnDeviceUnhealthy", Ty::Bool),
    ("mpsRoot", Ty::Str),
    ("nvidiaDriverRoot", Ty::Str),
    ("nvidiaDevRoot", Ty::Str),
    ("gdrcopyEnabled", Ty::Bool),
    ("gdsEnabled", Ty::Bool),
    ("mofedEnabled", Ty::Bool),
    ("useNodeFeatureAPI", Ty::Bool),
    ("deviceDiscoveryStrategy", Ty::Str),
    ("plugin", Ty::Map(PLUGIN_FLAGS)),
    ("gfd", Ty::Map(GFD_FLAGS)),
];

const PLUGIN_FLAGS: &[(&str, Ty)] = &[
    ("passDeviceSpecs", Ty::Bool),
    (
        "deviceListStrategy",
        Ty::StrOrList(&["envvar", "volume-mounts", "cdi-annotations", "cdi-cri"]),
    ),
    ("deviceIDStrategy", Ty::Enum(&["uuid", "index"])),
    ("cdiAnnotationPrefix", Ty::Str),
    ("nvidiaCTKPath", Ty::Str),
    ("containerDriverRoot", Ty::Str),
    ("kubeletSocket", Ty::Str),
    ("cdiFeatureFlags", Ty::StrOrList(&[])),
];

const GFD_FLAGS: &[(&str, Ty)] = &[
    ("oneshot", Ty::Bool),
    ("noTimestamp", Ty::Bool),
    ("sleepInterval", Ty::Duration),
    ("outputFile", Ty::Str),
    ("machineTypeFile", Ty::Str),
];

const IMEX: &[(&str, Ty)] = &[("channelIDs", Ty::ChannelIds), ("required", Ty::Bool)];

const SHARING_KEYS: &[&str] = &["timeSlicing", "mps"];
const REPLICATED_KEYS: &[&str] = &["renameByDefault", "failRequestsGreaterThanOne", "resources"];
const RESOURCE_ENTRY_KEYS: &[&str] = &["name", "rename", "devices", "replicas"];
const RENAME_KEYS: &[&str] = &["gpus", "mig"];
const RENAME_ENTRY_KEYS: &[&str] = &["pattern", "name"];

fn names(schema: &[(&'static str, Ty)]) -> Vec<&'static str> {
    schema.iter().map(|(k, _)| *k).collect()
}

/// Where a key that is valid somewhere in the config belongs, for a key found at `here`.
fn home_of(key: &str, here: &str) -> Option<String> {
    let in_list = |block: &str| format!("in each entry of `{block}.resources`");
    let block = if here.starts_with("sharing.mps") {
        "sharing.mps"
    } else {
        "sharing.timeSlicing"
    };
    let home = match key {
        "version" | "flags" | "sharing" | "imex" | "health" => "at the top level".to_string(),
        "timeSlicing" | "mps" => "under `sharing`".to_string(),
        "renameByDefault" | "failRequestsGreaterThanOne" => {
            if here.starts_with("sharing.mps") {
                "under `sharing.mps`".to_string()
            } else {
                "under `sharing.timeSlicing` (or `sharing.mps`)".to_string()
            }
        }
        "replicas" | "rename" | "devices" => in_list(block),
        "name" if here.is_empty() || here.starts_with("sharing") => in_list(block),
        "resources" if here.starts_with("flags") || here == "sharing" => {
            "under `sharing.timeSlicing` (or `sharing.mps`)".to_string()
        }
        "channelIDs" | "required" => "under `imex`".to_string(),
        "gpus" | "mig" => "under the top-level `resources`".to_string(),
        "pattern" => "in the entries of `resources.gpus` or `resources.mig`".to_string(),
        k if FLAGS.iter().any(|(n, _)| *n == k) => "under `flags`".to_string(),
        k if PLUGIN_FLAGS.iter().any(|(n, _)| *n == k) => "under `flags.plugin`".to_string(),
        k if GFD_FLAGS.iter().any(|(n, _)| *n == k) => "under `flags.gfd`".to_string(),
        _ => return None,
    };
    Some(home)
}

/// Every key valid somewhere in a config, for suggestions across levels.
fn all_keys() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = Vec::new();
    v.extend_from_slice(TOP_KEYS);
    v.extend(names(FLAGS));
    v.extend(names(PLUGIN_FLAGS));
    v.extend(names(GFD_FLAGS));
    v.extend(names(IMEX));
    v.extend_from_slice(SHARING_KEYS);
    v.extend_from_slice(REPLICATED_KEYS);
    v.extend_from_slice(RESOURCE_ENTRY_KEYS);
    v.extend_from_slice(RENAME_KEYS);
    v.extend_from_slice(RENAME_ENTRY_KEYS);
    v
}

fn where_is(here: &str) -> String {
    if here.is_empty() {
        "at the top level".to_string()
    } else {
        format!("under `{here}`")
    }
}

/// Rejects keys of `map` (at path `here`) outside `known`, saying where a misplaced key
/// belongs, or which known key a typo resembles.
fn check_keys(map: &Map<String, Value>, here: &str, known: &[&str]) -> Result<(), FieldError> {
    let Some(key) = map.keys().find(|k| !known.contains(&k.as_str())) else {
        return Ok(());
    };
    let field = join(here, key);
    if let Some(home) = home_of(key, here) {
        return Err(FieldError::new(
            field,
            format!("`{key}` is not valid {}; it belongs {home}", where_is(here)),
        ));
    }
    let expected = known.join(", ");
    if let Some(s) = suggest(key, known) {
        return Err(FieldError::new(
            field,
            format!("unknown key `{key}`; did you mean `{s}`? (expected one of: {expected})"),
        ));
    }
    if let Some(s) = suggest(key, &all_keys())
        && let Some(home) = home_of(s, here)
    {
        return Err(FieldError::new(
            field,
            format!("unknown key `{key}`; did you mean `{s}`, which belongs {home}?"),
        ));
    }
    Err(FieldError::new(
        field,
        format!("unknown key `{key}` (expected one of: {expected})"),
    ))
}

fn check_ty(v: &Value, ty: Ty, field: &str) -> Result<(), FieldError> {
    let bad = |what: &str| FieldError::new(field, format!("must be {what}, got {}", describe(v)));
    if v.is_null() {
        // An explicit null leaves the option unset, as in the plugin.
        return Ok(());
    }
    match ty {
        Ty::Bool => v
            .is_boolean()
            .then_some(())
            .ok_or_else(|| bad("true or false")),
        Ty::Str => v.is_string().then_some(()).ok_or_else(|| bad("a string")),
        Ty::Enum(opts) => match v.as_str() {
            Some(s) if opts.contains(&s) => Ok(()),
            _ => Err(bad(&format!("one of {}", opts.join(", ")))),
        },
        Ty::StrOrList(opts) => {
            let what = if opts.is_empty() {
                "a string or a list of strings".to_string()
            } else {
                format!("one of {} (or a list of them)", opts.join(", "))
            };
            let ok = |s: &str| opts.is_empty() || opts.contains(&s);
            match v {
                Value::String(s) if ok(s) => Ok(()),
                Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        match item.as_str() {
                            Some(s) if ok(s) => {}
                            _ => {
                                return Err(FieldError::new(
                                    index(field, i),
                                    format!("must be {what}, got {}", describe(item)),
                                ));
                            }
                        }
                    }
                    Ok(())
                }
                _ => Err(bad(&what)),
            }
        }
        Ty::Duration => match v {
            Value::String(s) if !s.is_empty() => Ok(()),
            Value::Number(_) => Ok(()),
            _ => Err(bad("a duration such as \"60s\"")),
        },
        Ty::ChannelIds => match v {
            Value::Array(a) if a.is_empty() => Ok(()),
            Value::Array(a) if a.len() == 1 && a[0].as_u64() == Some(0) => Ok(()),
            _ => Err(bad(
                "[] or [0] (the only IMEX channel configurations the plugin supports)",
            )),
        },
        Ty::Opaque => as_map(v, field).map(|_| ()),
        Ty::Map(schema) => {
            let map = as_map(v, field)?;
            check_keys(map, field, &names(schema))?;
            for (k, val) in map {
                if let Some((_, t)) = schema.iter().find(|(n, _)| n == k) {
                    check_ty(val, *t, &join(field, k))?;
                }
            }
            Ok(())
        }
    }
}

/// The top-level `resources` (renaming patterns for full GPUs and MIG devices, which the
/// plugin ignores with a warning). A list here is a misplaced `sharing.*.resources`.
fn check_rename_resources(v: &Value) -> Result<(), FieldError> {
    let field = "resources";
    match v {
        Value::Null => Ok(()),
        Value::Array(_) => Err(FieldError::new(
            field,
            "the top-level `resources` takes `gpus`/`mig` renaming patterns; a list of \
             replicated resources belongs under `sharing.timeSlicing.resources` (or `sharing.mps.resources`)",
        )),
        _ => {
            let map = as_map(v, field)?;
            check_keys(map, field, RENAME_KEYS)?;
            for key in RENAME_KEYS {
                let list_field = join(field, key);
                let Some(list) = opt_list(map, key, &list_field)? else {
                    continue;
                };
                for (i, entry) in list.iter().enumerate() {
                    let ef = index(&list_field, i);
                    let em = as_map(entry, &ef)?;
                    check_keys(em, &ef, RENAME_ENTRY_KEYS)?;
                    req_str(em, "pattern", &join(&ef, "pattern"))?;
                    req_str(em, "name", &join(&ef, "name"))?;
                }
            }
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------------------
// The part gpu-slicer uses: `sharing`.

fn parse_sharing(top: &Map<String, Value>) -> Result<SharingProfile, FieldError> {
    let Some(sharing) = opt_map(top, "sharing", "sharing")? else {
        return Ok(SharingProfile::UNSHARED);
    };
    check_keys(sharing, "sharing", SHARING_KEYS)?;
    let present = |k: &str| sharing.get(k).filter(|v| !v.is_null());
    match (present("timeSlicing"), present("mps")) {
        (Some(_), Some(_)) => Err(FieldError::new(
            "sharing",
            "`timeSlicing` and `mps` are mutually exclusive; configure only one",
        )),
        (Some(ts), None) => {
            parse_replicated(ts, "sharing.timeSlicing", SharingStrategy::TimeSlicing)
        }
        (None, Some(mps)) => parse_replicated(mps, "sharing.mps", SharingStrategy::Mps),
        (None, None) => Ok(SharingProfile::UNSHARED),
    }
}

fn opt_bool(map: &Map<String, Value>, key: &str, here: &str) -> Result<Option<bool>, FieldError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(FieldError::new(
            join(here, key),
            format!("must be true or false, got {}", describe(other)),
        )),
    }
}

fn parse_replicated(
    v: &Value,
    here: &str,
    strategy: SharingStrategy,
) -> Result<SharingProfile, FieldError> {
    let map = as_map(v, here)?;
    check_keys(map, here, REPLICATED_KEYS)?;
    let rename_by_default = opt_bool(map, "renameByDefault", here)?.unwrap_or(false);
    let fail_requests_greater_than_one = opt_bool(map, "failRequestsGreaterThanOne", here)?
        .unwrap_or(strategy == SharingStrategy::Mps);
    let list_field = join(here, "resources");
    let list = match map.get("resources") {
        None | Some(Value::Null) => {
            return Err(FieldError::new(
                list_field,
                "is required: list `nvidia.com/gpu` with its replicas",
            ));
        }
        Some(Value::Array(a)) => a,
        Some(other) => {
            return Err(FieldError::new(
                list_field,
                format!("must be a list, got {}", describe(other)),
            ));
        }
    };
    if list.is_empty() {
        return Err(FieldError::new(
            list_field,
            "must list at least one resource (`nvidia.com/gpu` with its replicas)",
        ));
    }
    let mut replicas = None;
    let mut first_at: Option<String> = None;
    for (i, entry) in list.iter().enumerate() {
        let ef = index(&list_field, i);
        let r = parse_resource_entry(entry, &ef)?;
        if let Some(first) = &first_at {
            return Err(FieldError::new(
                join(&ef, "name"),
                format!("duplicate entry for nvidia.com/gpu (first at `{first}`)"),
            ));
        }
        first_at = Some(ef);
        replicas = Some(r);
    }
    // The list is non-empty and every entry either returned an error or set `replicas`.
    let replicas = replicas.ok_or_else(|| {
        FieldError::new(
            list_field.clone(),
            "must list at least one resource (`nvidia.com/gpu` with its replicas)",
        )
    })?;
    Ok(SharingProfile {
        strategy,
        replicas,
        rename_by_default,
        fail_requests_greater_than_one,
    })
}

/// A resource name as the plugin reads it: without a `/`, the `nvidia.com/` prefix is implied.
fn full_resource_name(name: &str) -> String {
    if name.contains('/') {
        name.to_string()
    } else {
        format!("nvidia.com/{name}")
    }
}

/// One `sharing.*.resources[i]` entry; returns its replicas.
fn parse_resource_entry(v: &Value, here: &str) -> Result<u32, FieldError> {
    let map = as_map(v, here)?;
    check_keys(map, here, RESOURCE_ENTRY_KEYS)?;
    let name_field = join(here, "name");
    let name = req_str(map, "name", &name_field)?;
    if full_resource_name(name) != NVIDIA_GPU {
        return Err(FieldError::new(
            name_field,
            format!(
                "resource {} is not supported: only nvidia.com/gpu is supported by gpu-slicer",
                show(name)
            ),
        ));
    }
    let rename_field = join(here, "rename");
    if let Some(rename) = opt_str(map, "rename", &rename_field)?
        && full_resource_name(rename) != NVIDIA_GPU
    {
        return Err(FieldError::new(
            rename_field,
            format!(
                "renaming is not supported: gpu-slicer plans with the resource name nvidia.com/gpu \
                 (remove `rename`), got {}",
                show(rename)
            ),
        ));
    }
    match map.get("devices") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s == "all" => {}
        Some(other) => {
            return Err(FieldError::new(
                join(here, "devices"),
                format!(
                    "must be `all` or absent: gpu-slicer gives every GPU of a node the same replicas, got {}",
                    describe(other)
                ),
            ));
        }
    }
    parse_replicas_value(map.get("replicas"), &join(here, "replicas"))
}

fn parse_replicas_value(v: Option<&Value>, field: &str) -> Result<u32, FieldError> {
    let min = ReplicaPolicy::MIN_SLICED;
    let max = ReplicaPolicy::MAX;
    let v = match v {
        None | Some(Value::Null) => {
            return Err(FieldError::new(
                field,
                format!("is required (an integer from {min} to {max})"),
            ));
        }
        Some(v) => v,
    };
    let n = match v {
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                i128::from(u)
            } else if let Some(i) = n.as_i64() {
                i128::from(i)
            } else {
                return Err(FieldError::new(
                    field,
                    format!("must be an integer, got {}", describe(v)),
                ));
            }
        }
        other => {
            return Err(FieldError::new(
                field,
                format!(
                    "must be an integer from {min} to {max}, got {}",
                    describe(other)
                ),
            ));
        }
    };
    if n < i128::from(min) {
        return Err(FieldError::new(
            field,
            format!(
                "must be at least {min}, got {n} (a config without sharing has no `sharing` section)"
            ),
        ));
    }
    if n > i128::from(max) {
        return Err(FieldError::new(
            field,
            format!("must be at most {max} (the most replicas gpu-slicer plans with), got {n}"),
        ));
    }
    // min <= n <= max (48) here, so the conversion cannot fail.
    u32::try_from(n).map_err(|_| FieldError::new(field, format!("must be at most {max}, got {n}")))
}

#[cfg(test)]
mod tests {
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
}
