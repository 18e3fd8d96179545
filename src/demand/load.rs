//! The loader: documents → objects → [`Inputs`].
//!
//! Size (~690 code lines): one pass over the documents with one error location per
//! object, for every kind the loader reads (`KNOWN`: Pod, the workload controllers,
//! LeaderWorkerSet, ConfigMap, NodePool, Provisioner, EC2NodeClass); the
//! per-kind parts are short and share the location, so they stay together.

use std::collections::{BTreeMap, HashSet};

use serde_json::{Map, Value};

use super::engines::StatedMemory;
use super::pod::demand_and_memory;
use super::pod::string_map;
use super::requests::effective_requests;
use super::text::for_each_document;
use super::{InputError, Inputs, LoadOptions, MAX_WORKLOAD_PODS};
use crate::config::value::{describe, opt_map, opt_str};
use crate::config::{self, FieldError};
use crate::model::{DemandItem, NVIDIA_GPU};

/// Adds the documents of one source (a file path or `<stdin>`) to `inputs`.
///
/// All or nothing: on error `inputs` is left as it was. Errors name the source, the
/// document, the object and the field (see [`InputError`]).
pub fn load_str(
    inputs: &mut Inputs,
    source: &str,
    text: &str,
    opts: &LoadOptions,
) -> Result<(), InputError> {
    let left = opts.max_documents.saturating_sub(inputs.documents);
    let flag = format!("--max-documents {}", opts.max_documents);
    let mut loader = Loader {
        source,
        opts,
        existing: inputs,
        staged: Inputs::default(),
        ids: inputs.items.iter().map(|i| i.id.clone()).collect(),
        expanded: 0,
    };
    // Each document is loaded as soon as it is parsed and its value dropped: the values
    // of a whole input never coexist.
    let mut documents = 0usize;
    let read = for_each_document(
        text,
        left,
        &flag,
        &mut |number, value| {
            documents += 1;
            loader.object(number, "", &value, None)
        },
        &|e| InputError {
            source: source.to_string(),
            document: e.document,
            object: None,
            field: None,
            message: e.message,
            cause: None,
        },
    );
    let Loader {
        staged, expanded, ..
    } = loader;
    inputs.expanded_pods = inputs.expanded_pods.saturating_add(expanded);
    read?;
    if documents == 0 {
        return Err(InputError::new(source, "no Kubernetes objects found"));
    }
    inputs.items.extend(staged.items);
    inputs.pools.extend(staged.pools);
    inputs.ec2nodeclasses.extend(staged.ec2nodeclasses);
    if staged.device_plugin.is_some() {
        inputs.device_plugin = staged.device_plugin;
    }
    let o = &mut inputs.daemonset_overhead;
    o.resources = o
        .resources
        .saturating_add(staged.daemonset_overhead.resources);
    o.pods = o.pods.saturating_add(staged.daemonset_overhead.pods);
    inputs.warnings.extend(staged.warnings);
    inputs.notes.extend(staged.notes);
    inputs.documents = inputs.documents.saturating_add(documents);
    Ok(())
}

/// Where an object is: its document, its name for messages and, for an item of a
/// List, the path of the item (`items[3].`).
struct Place<'p> {
    document: usize,
    prefix: &'p str,
    label: Option<String>,
}

/// Kinds gpu-slicer reads and the apiVersions it reads them in.
const KNOWN: &[(&str, &[&str])] = &[
    ("Pod", &["v1"]),
    ("Deployment", &["apps/v1"]),
    ("StatefulSet", &["apps/v1"]),
    ("ReplicaSet", &["apps/v1"]),
    ("DaemonSet", &["apps/v1"]),
    ("Job", &["batch/v1"]),
    ("LeaderWorkerSet", &["leaderworkerset.x-k8s.io/v1"]),
    ("ConfigMap", &["v1"]),
    ("NodePool", &["karpenter.sh/v1", "karpenter.sh/v1beta1"]),
    ("Provisioner", &["karpenter.sh/v1alpha5"]),
    (
        "EC2NodeClass",
        &["karpenter.k8s.aws/v1", "karpenter.k8s.aws/v1beta1"],
    ),
];

/// Kinds whose objects live in a namespace (named `namespace/name` in messages and ids).
const NAMESPACED: &[&str] = &[
    "Pod",
    "Deployment",
    "StatefulSet",
    "ReplicaSet",
    "DaemonSet",
    "Job",
    "LeaderWorkerSet",
    "ConfigMap",
];

struct Loader<'a> {
    source: &'a str,
    opts: &'a LoadOptions,
    existing: &'a Inputs,
    staged: Inputs,
    ids: HashSet<String>,
    /// Pods made so far, kept or not ([`Inputs::expanded_pods`]).
    expanded: usize,
}

fn non_negative_int(v: &Value, path: &str) -> Result<u64, FieldError> {
    match v {
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Ok(u)
            } else if n.as_i64().is_some_and(|i| i < 0) || n.as_f64().is_some_and(|f| f < 0.0) {
                Err(FieldError::new(
                    path,
                    format!("must not be negative, got {n}"),
                ))
            } else {
                Err(FieldError::new(
                    path,
                    format!("must be a whole number, got {n}"),
                ))
            }
        }
        other => Err(FieldError::new(
            path,
            format!("expected an integer, found {}", describe(other)),
        )),
    }
}

fn opt_count(m: &Map<String, Value>, key: &str, path: &str) -> Result<Option<u64>, FieldError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => non_negative_int(v, path).map(Some),
    }
}

fn required<'v>(m: &'v Map<String, Value>, key: &str, path: &str) -> Result<&'v Value, FieldError> {
    match m.get(key) {
        None | Some(Value::Null) => Err(FieldError::new(path, "required field is missing")),
        Some(v) => Ok(v),
    }
}

fn required_object<'v>(
    m: &'v Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<&'v Map<String, Value>, FieldError> {
    opt_map(m, key, path)?.ok_or_else(|| FieldError::new(path, "required field is missing"))
}

impl Loader<'_> {
    fn error(
        &self,
        place: &Place<'_>,
        field: Option<&str>,
        message: impl Into<String>,
    ) -> InputError {
        let field = match field {
            Some(f) if !f.is_empty() => Some(format!("{}{f}", place.prefix)),
            _ if !place.prefix.is_empty() => Some(place.prefix.trim_end_matches('.').to_string()),
            _ => None,
        };
        InputError {
            source: self.source.to_string(),
            document: Some(place.document),
            object: place.label.clone(),
            field,
            message: message.into(),
            cause: None,
        }
    }

    /// A field error of the object; `base` is prepended to its field (`spec.template.`).
    fn field_error(&self, place: &Place<'_>, base: &str, e: FieldError) -> InputError {
        let field = if e.field.is_empty() {
            base.trim_end_matches('.').to_string()
        } else {
            format!("{base}{}", e.field)
        };
        let error = self.error(place, Some(&field), e.message.clone());
        InputError {
            cause: Some(Box::new(e)),
            ..error
        }
    }

    /// A note on what a pod (or a workload's template at `template`, when that is not
    /// `spec.template`) states of GPU memory; nothing when it states nothing. One per
    /// object, not per replica.
    fn note_memory(&mut self, place: &Place<'_>, template: Option<&str>, stated: &StatedMemory) {
        let Some(text) = stated.note() else {
            return;
        };
        let mut n = place
            .label
            .clone()
            .unwrap_or_else(|| format!("{}: document {}", self.source, place.document));
        if let Some(t) = template.filter(|t| *t != "spec.template") {
            n.push_str(&format!(": {t}"));
        }
        n.push_str(": ");
        n.push_str(&text);
        self.staged.notes.push(n);
    }

    fn warn(&mut self, place: &Place<'_>, message: &str) {
        let mut w = format!("{}: document {}", self.source, place.document);
        if let Some(l) = &place.label {
            w.push_str(&format!(" ({l})"));
        }
        w.push_str(": ");
        w.push_str(message);
        self.staged.warnings.push(w);
    }

    /// One object of a document (or an item of a List, with `prefix` `items[i].` and
    /// the kind and apiVersion a typed `*List` implies).
    fn object(
        &mut self,
        document: usize,
        prefix: &str,
        value: &Value,
        implied: Option<(&str, Option<&str>)>,
    ) -> Result<(), InputError> {
        let mut place = Place {
            document,
            prefix,
            label: None,
        };
        let Value::Object(m) = value else {
            return Err(self.error(
                &place,
                None,
                format!(
                    "expected a Kubernetes object (a mapping), found {}",
                    describe(value)
                ),
            ));
        };
        let kind = match m.get("kind") {
            None | Some(Value::Null) => implied.map(|(k, _)| k),
            Some(Value::String(s)) => Some(s.as_str()),
            Some(other) => {
                return Err(self.error(
                    &place,
                    Some("kind"),
                    format!("expected a string, found {}", describe(other)),
                ));
            }
        };
        let Some(kind) = kind.filter(|k| !k.is_empty()) else {
            return Err(self.error(&place, Some("kind"), "required field is missing"));
        };
        let api = opt_str(m, "apiVersion", "apiVersion")
            .map_err(|e| self.field_error(&place, "", e))?
            .or(implied.and_then(|(_, a)| a))
            .filter(|a| !a.is_empty());

        let is_list = kind == "List" || (kind.ends_with("List") && m.contains_key("items"));
        if is_list {
            place.label = Some(kind.to_string());
            return self.list(&place, kind, api, m);
        }

        let meta =
            opt_map(m, "metadata", "metadata").map_err(|e| self.field_error(&place, "", e))?;
        let empty = Map::new();
        let meta = meta.unwrap_or(&empty);
        let name = opt_str(meta, "name", "metadata.name")
            .map_err(|e| self.field_error(&place, "", e))?
            .filter(|n| !n.is_empty());
        let generate_name = opt_str(meta, "generateName", "metadata.generateName")
            .map_err(|e| self.field_error(&place, "", e))?
            .filter(|n| !n.is_empty());
        let namespace = opt_str(meta, "namespace", "metadata.namespace")
            .map_err(|e| self.field_error(&place, "", e))?
            .filter(|n| !n.is_empty());
        let namespaced = NAMESPACED.contains(&kind) || namespace.is_some();
        let ns = namespace.unwrap_or("default");
        let shown_name = name.or(if kind == "Pod" { generate_name } else { None });
        place.label = Some(match shown_name {
            Some(n) if namespaced => format!("{kind} {ns}/{n}"),
            Some(n) => format!("{kind} {n}"),
            None => kind.to_string(),
        });

        let Some(api) = api else {
            return Err(self.error(&place, Some("apiVersion"), "required field is missing"));
        };
        if shown_name.is_none() {
            return Err(self.error(&place, Some("metadata.name"), "required field is missing"));
        }

        match (kind, api) {
            ("Pod", "v1") => self.pod(&place, m, meta, ns, name, generate_name),
            ("Deployment" | "StatefulSet" | "ReplicaSet", "apps/v1") => {
                let spec = required_object(m, "spec", "spec")
                    .map_err(|e| self.field_error(&place, "", e))?;
                let replicas = opt_count(spec, "replicas", "spec.replicas")
                    .map_err(|e| self.field_error(&place, "", e))?
                    .unwrap_or(1);
                self.workload(
                    &place,
                    spec,
                    ns,
                    name.unwrap_or_default(),
                    replicas,
                    "spec.replicas",
                )
            }
            ("Job", "batch/v1") => {
                let spec = required_object(m, "spec", "spec")
                    .map_err(|e| self.field_error(&place, "", e))?;
                let parallelism = opt_count(spec, "parallelism", "spec.parallelism")
                    .map_err(|e| self.field_error(&place, "", e))?
                    .unwrap_or(1);
                let completions = opt_count(spec, "completions", "spec.completions")
                    .map_err(|e| self.field_error(&place, "", e))?;
                let suspended = spec.get("suspend").and_then(Value::as_bool) == Some(true);
                let mut pods = completions.map_or(parallelism, |c| parallelism.min(c));
                if suspended {
                    self.warn(&place, "suspended: it creates no pods until resumed");
                    pods = 0;
                }
                self.workload(
                    &place,
                    spec,
                    ns,
                    name.unwrap_or_default(),
                    pods,
                    "spec.parallelism",
                )
            }
            ("LeaderWorkerSet", "leaderworkerset.x-k8s.io/v1") => {
                self.leader_worker_set(&place, m, ns, name.unwrap_or_default())
            }
            ("DaemonSet", "apps/v1") => self.daemonset(&place, m),
            ("NodePool", _) | ("Provisioner", _) if self.known_version(kind, api) => {
                self.pool(&place, value)
            }
            ("EC2NodeClass", _) if self.known_version(kind, api) => {
                self.staged.ec2nodeclasses.push(value.clone());
                Ok(())
            }
            ("ConfigMap", "v1") => self.configmap(&place, name.unwrap_or_default(), value),
            _ => {
                let msg = match KNOWN.iter().find(|(k, _)| *k == kind) {
                    Some((_, versions)) => format!(
                        "skipped: apiVersion {api} of {kind} is not supported (supported: {})",
                        versions.join(", ")
                    ),
                    None => format!("skipped: kind {kind} ({api}) is not read by gpu-slicer"),
                };
                self.warn(&place, &msg);
                Ok(())
            }
        }
    }

    fn known_version(&self, kind: &str, api: &str) -> bool {
        KNOWN
            .iter()
            .any(|(k, versions)| *k == kind && versions.contains(&api))
    }

    fn list(
        &mut self,
        place: &Place<'_>,
        kind: &str,
        api: Option<&str>,
        m: &Map<String, Value>,
    ) -> Result<(), InputError> {
        if !place.prefix.is_empty() {
            self.warn(place, "skipped: a List inside a List");
            return Ok(());
        }
        let items = match m.get("items") {
            None | Some(Value::Null) => &[][..],
            Some(Value::Array(a)) => a.as_slice(),
            Some(other) => {
                return Err(self.error(
                    place,
                    Some("items"),
                    format!("expected a list, found {}", describe(other)),
                ));
            }
        };
        // `PodList` items from the API may leave out kind and apiVersion.
        let implied = kind
            .strip_suffix("List")
            .filter(|k| !k.is_empty())
            .map(|k| (k, api));
        for (i, item) in items.iter().enumerate() {
            let prefix = format!("items[{i}].");
            self.object(place.document, &prefix, item, implied)?;
        }
        Ok(())
    }

    /// Refuses `pods` more pods when they would take the inputs past `--max-pods`,
    /// before any is made (`field`: the count that asked for them).
    fn room_for(
        &self,
        place: &Place<'_>,
        pods: u64,
        field: Option<&str>,
    ) -> Result<(), InputError> {
        let so_far = self.existing.items.len() + self.staged.items.len();
        let max = self.opts.max_pods;
        if usize::try_from(pods).map_or(true, |p| so_far.saturating_add(p) > max) {
            return Err(self.error(
                place,
                field,
                format!(
                    "{pods} more pods would take the inputs past {max} pods, what \
                     --max-pods {max} allows; raise the limit if they are meant"
                ),
            ));
        }
        Ok(())
    }

    fn add_item(&mut self, place: &Place<'_>, item: DemandItem) -> Result<(), InputError> {
        self.room_for(place, 1, None)?;
        if !self.ids.insert(item.id.clone()) {
            return Err(self.error(
                place,
                None,
                format!(
                    "pod {:?} is defined twice (ids must be unique across all inputs)",
                    item.id
                ),
            ));
        }
        self.staged.items.push(item);
        self.expanded += 1;
        Ok(())
    }

    fn not_gpu(&mut self, place: &Place<'_>) {
        self.warn(
            place,
            &format!("skipped: requests no {NVIDIA_GPU} (not a GPU pod)"),
        );
    }

    fn pod(
        &mut self,
        place: &Place<'_>,
        m: &Map<String, Value>,
        meta: &Map<String, Value>,
        ns: &str,
        name: Option<&str>,
        generate_name: Option<&str>,
    ) -> Result<(), InputError> {
        let spec = required(m, "spec", "spec").map_err(|e| self.field_error(place, "", e))?;
        if let Value::Object(s) = spec
            && let Some(node) = opt_str(s, "nodeName", "spec.nodeName")
                .map_err(|e| self.field_error(place, "", e))?
                .filter(|n| !n.is_empty())
        {
            self.warn(
                place,
                &format!("skipped: not pending (bound to node {node})"),
            );
            return Ok(());
        }
        if let Some(status) =
            opt_map(m, "status", "status").map_err(|e| self.field_error(place, "", e))?
        {
            let phase = opt_str(status, "phase", "status.phase")
                .map_err(|e| self.field_error(place, "", e))?;
            if let Some(p @ ("Running" | "Succeeded" | "Failed")) = phase {
                self.warn(place, &format!("skipped: not pending (phase {p})"));
                return Ok(());
            }
        }
        let annotations = string_map(meta, "annotations", "metadata.annotations")
            .map_err(|e| self.field_error(place, "", e))?;
        let id = match (name, generate_name) {
            (Some(n), _) => format!("{ns}/{n}"),
            // generateName: the first free `<generateName><k>`, deterministic.
            (None, Some(g)) => (0u64..)
                .map(|k| format!("{ns}/{g}{k}"))
                .find(|id| !self.ids.contains(id))
                .unwrap_or_else(|| format!("{ns}/{g}")),
            (None, None) => {
                return Err(self.error(place, Some("metadata.name"), "required field is missing"));
            }
        };
        match demand_and_memory(id, &annotations, spec)
            .map_err(|e| self.field_error(place, "", e))?
        {
            Some((item, stated)) => {
                self.note_memory(place, None, &stated);
                self.add_item(place, item)
            }
            None => {
                self.not_gpu(place);
                Ok(())
            }
        }
    }

    /// A workload: `pods` copies of its template's pod, `namespace/<name>-<i>`.
    fn workload(
        &mut self,
        place: &Place<'_>,
        spec: &Map<String, Value>,
        ns: &str,
        name: &str,
        pods: u64,
        count_field: &str,
    ) -> Result<(), InputError> {
        if pods > MAX_WORKLOAD_PODS {
            return Err(self.error(
                place,
                Some(count_field),
                format!("{pods} pods is more than the limit of {MAX_WORKLOAD_PODS} per workload"),
            ));
        }
        let template = required_object(spec, "template", "spec.template")
            .map_err(|e| self.field_error(place, "", e))?;
        let Some(item) = self.template_demand(place, template, "spec.template")? else {
            self.not_gpu(place);
            return Ok(());
        };
        self.room_for(place, pods, Some(count_field))?;
        for i in 0..pods {
            let mut it = item.clone();
            it.id = format!("{ns}/{name}-{i}");
            self.add_item(place, it)?;
        }
        Ok(())
    }

    /// A LeaderWorkerSet: `spec.replicas` (default 1) groups of
    /// `spec.leaderWorkerTemplate.size` (default 1) pods. Group `g` is its leader
    /// `namespace/<name>-<g>`, from `leaderTemplate` (else `workerTemplate`), and its
    /// workers `namespace/<name>-<g>-<w>`, `w` in 1..size, from `workerTemplate`; the names
    /// the LWS controller gives them. A template without a GPU adds no items (warning).
    fn leader_worker_set(
        &mut self,
        place: &Place<'_>,
        m: &Map<String, Value>,
        ns: &str,
        name: &str,
    ) -> Result<(), InputError> {
        const LWT: &str = "spec.leaderWorkerTemplate";
        const SIZE: &str = "spec.leaderWorkerTemplate.size";
        const WORKER: &str = "spec.leaderWorkerTemplate.workerTemplate";
        const LEADER: &str = "spec.leaderWorkerTemplate.leaderTemplate";
        let field = |e| self.field_error(place, "", e);
        let spec = required_object(m, "spec", "spec").map_err(field)?;
        let groups = opt_count(spec, "replicas", "spec.replicas")
            .map_err(field)?
            .unwrap_or(1);
        let lwt = required_object(spec, "leaderWorkerTemplate", LWT).map_err(field)?;
        let size = opt_count(lwt, "size", SIZE).map_err(field)?.unwrap_or(1);
        if size == 0 {
            return Err(self.error(place, Some(SIZE), "must be at least 1 (the leader)"));
        }
        if groups
            .checked_mul(size)
            .is_none_or(|pods| pods > MAX_WORKLOAD_PODS)
        {
            return Err(self.error(
                place,
                Some("spec.replicas"),
                format!(
                    "{groups} groups of {size} pods ({SIZE}) is more than the limit of \
                     {MAX_WORKLOAD_PODS} pods per workload"
                ),
            ));
        }
        let worker_template = required_object(lwt, "workerTemplate", WORKER).map_err(field)?;
        let worker = self.template_demand(place, worker_template, WORKER)?;
        let leader = match opt_map(lwt, "leaderTemplate", LEADER)
            .map_err(|e| self.field_error(place, "", e))?
        {
            Some(t) => self.template_demand(place, t, LEADER)?,
            None => worker.clone(),
        };
        let no_gpu = |path: &str| format!("skipped its {path} pods: they request no {NVIDIA_GPU}");
        match (&leader, &worker) {
            (None, None) => self.not_gpu(place),
            (None, Some(_)) if size == 1 => self.not_gpu(place),
            (None, Some(_)) => self.warn(place, &no_gpu("leader")),
            (Some(_), None) if size > 1 => self.warn(place, &no_gpu("worker")),
            (Some(_), _) => {}
        }
        // Checked above not to overflow: at most groups × size.
        let per_group = u64::from(leader.is_some()) + u64::from(worker.is_some()) * (size - 1);
        if per_group > 0 {
            self.room_for(
                place,
                groups.saturating_mul(per_group),
                Some("spec.replicas"),
            )?;
        }
        for g in 0..groups {
            if let Some(item) = &leader {
                let mut it = item.clone();
                it.id = format!("{ns}/{name}-{g}");
                self.add_item(place, it)?;
            }
            if let Some(item) = &worker {
                for w in 1..size {
                    let mut it = item.clone();
                    it.id = format!("{ns}/{name}-{g}-{w}");
                    self.add_item(place, it)?;
                }
            }
        }
        Ok(())
    }

    /// The GPU demand of the pod template at `path` (`spec.template`): `None` when it
    /// requests no GPU. Field errors are prefixed with `path`. Notes the GPU memory its
    /// containers state.
    fn template_demand(
        &mut self,
        place: &Place<'_>,
        template: &Map<String, Value>,
        path: &str,
    ) -> Result<Option<DemandItem>, InputError> {
        let (annotations, pod_spec) = self.template(place, template, path)?;
        let demand = demand_and_memory(String::new(), &annotations, pod_spec)
            .map_err(|e| self.field_error(place, &format!("{path}."), e))?;
        Ok(demand.map(|(item, stated)| {
            self.note_memory(place, Some(path), &stated);
            item
        }))
    }

    /// The pod template at `path` (`spec.template`): its annotations and its pod spec.
    fn template<'v>(
        &self,
        place: &Place<'_>,
        template: &'v Map<String, Value>,
        path: &str,
    ) -> Result<(BTreeMap<String, String>, &'v Value), InputError> {
        let field = |e| self.field_error(place, "", e);
        let annotations = match opt_map(template, "metadata", &format!("{path}.metadata"))
            .map_err(field)?
        {
            Some(meta) => string_map(meta, "annotations", &format!("{path}.metadata.annotations"))
                .map_err(field)?,
            None => BTreeMap::new(),
        };
        let pod_spec = required(template, "spec", &format!("{path}.spec")).map_err(field)?;
        Ok((annotations, pod_spec))
    }

    fn daemonset(&mut self, place: &Place<'_>, m: &Map<String, Value>) -> Result<(), InputError> {
        let spec =
            required_object(m, "spec", "spec").map_err(|e| self.field_error(place, "", e))?;
        let template = required_object(spec, "template", "spec.template")
            .map_err(|e| self.field_error(place, "", e))?;
        let (_, pod_spec) = self.template(place, template, "spec.template")?;
        let r = effective_requests(pod_spec, "spec.template.spec")
            .map_err(|e| self.field_error(place, "", e))?;
        let o = &mut self.staged.daemonset_overhead;
        o.resources = o.resources.saturating_add(r.resources());
        o.pods = o.pods.saturating_add(1);
        Ok(())
    }

    fn pool(&mut self, place: &Place<'_>, value: &Value) -> Result<(), InputError> {
        let Some(pool) =
            config::pool_from_nodepool(value).map_err(|e| self.field_error(place, "", e))?
        else {
            let keys = config::annotations_without_enabled(value);
            if !keys.is_empty() {
                self.warn(
                    place,
                    &format!(
                        "has {} but not {}: \"true\", so gpu-slicer ignores it (add the \
                         annotation to opt it in, or \"false\" to say it stays out)",
                        keys.join(", "),
                        config::ENABLED
                    ),
                );
            }
            return Ok(());
        };
        let taken = self
            .existing
            .pools
            .iter()
            .chain(self.staged.pools.iter())
            .any(|(p, _)| p.name == pool.name);
        if taken {
            return Err(self.error(
                place,
                Some("metadata.name"),
                format!(
                    "a NodePool or Provisioner named {:?} was already loaded; pool names must be unique",
                    pool.name
                ),
            ));
        }
        self.staged.pools.push((pool, value.clone()));
        Ok(())
    }

    fn configmap(
        &mut self,
        place: &Place<'_>,
        name: &str,
        value: &Value,
    ) -> Result<(), InputError> {
        if name != self.opts.device_plugin_configmap {
            return Ok(());
        }
        if self.existing.device_plugin.is_some() || self.staged.device_plugin.is_some() {
            return Err(self.error(
                place,
                None,
                format!("a second device-plugin ConfigMap named {name:?}; give only one"),
            ));
        }
        let cfg = config::device_plugin_from_configmap(value)
            .map_err(|e| self.field_error(place, "", e))?;
        self.staged.device_plugin = Some(cfg);
        Ok(())
    }
}
