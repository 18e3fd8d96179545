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
//!
//! Size (~600 code lines): most of it is the strict schema above, one struct per config
//! section with `deny_unknown_fields`; it reads best as one file beside the plugin's
//! `api/config/v1`.

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
mod tests;
