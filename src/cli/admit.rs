//! `gpu-slicer admit`: what the admission webhook does to the pods among the inputs,
//! offline, for GitOps users who add the affinity to their manifests instead of running
//! the webhook. The decision is `admission::admit`, the webhook's own function.
//!
//! Reads the same `-f` sources as `plan`. Pods are judged as the webhook judges them;
//! Deployments, StatefulSets, ReplicaSets, DaemonSets and Jobs by their pod template, and
//! LeaderWorkerSets by their leader and worker templates (the webhook sees the pods they
//! create, which carry the template). Output:
//! - `-o text` (default): one line per GPU pod or workload: patched (with the terms
//!   added), unchanged (and why), or rejected (with the webhook's message);
//! - `-o yaml`: every input object, with the affinity added where the webhook would add
//!   it (comments and key order of the input are not kept);
//! - `-o json`: one record per GPU pod or workload with its verdict and JSON patch.
//!
//! Exit code 1 when a pod would be rejected (so a CI check fails), after printing.

use clap::{Args, ValueEnum};
use serde_json::{Value, json};

use super::{Failure, InputLimits, bad_input, read_sources};
use crate::admission::{self, Policy, Skip, Template, Verdict};
use crate::demand::text::for_each_document;
use crate::guard::Namespaces;
use crate::model::Requirement;

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum AdmitOutput {
    Text,
    Yaml,
    Json,
}

#[derive(Debug, Args)]
pub struct AdmitArgs {
    /// Kubernetes YAML/JSON: a file, a directory (its *.yaml, *.yml, *.json), or - for stdin. Repeatable.
    #[arg(short = 'f', long = "filename", value_name = "PATH", required = true)]
    filenames: Vec<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    output: AdmitOutput,
    /// Namespaces the webhook serves (comma-separated; default all), as `run --namespaces`.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    namespaces: Vec<String>,
    /// Namespaces the webhook never serves, as `run --exclude-namespaces`.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    exclude_namespaces: Vec<String>,
    /// The device plugin runs with failRequestsGreaterThanOne (as `run`'s flag of that name).
    #[arg(long)]
    fail_requests_greater_than_one: bool,
    /// GPU memory each pod's CUDA context holds, as `run --context-memory` (default 618Mi).
    #[arg(long, value_name = "QTY")]
    context_memory: Option<String>,
    /// How gpu-share is read, as `run --share-model`: time adds a slice-share-milli term,
    /// throughput a slice-throughput-milli term.
    #[arg(long, value_enum, default_value = "time")]
    share_model: super::share_flags::ShareModelArg,
    #[command(flatten)]
    limits: InputLimits,
}

/// One GPU pod or workload and what admission does to it.
struct Judged {
    /// `Kind namespace/name`.
    object: String,
    verdict: Verdict,
}

const WORKLOADS: [&str; 5] = [
    "Deployment",
    "StatefulSet",
    "ReplicaSet",
    "DaemonSet",
    "Job",
];

pub fn admit_cmd(a: AdmitArgs) -> Result<(), Failure> {
    let policy = Policy {
        namespaces: Namespaces {
            allow: a.namespaces.clone(),
            deny: a.exclude_namespaces.clone(),
        },
        fail_requests_greater_than_one: a.fail_requests_greater_than_one,
        context_memory_mib: super::context_memory_flag(a.context_memory.as_deref())?,
        share_model: a.share_model.model(),
    };
    let mut judged = Vec::new();
    let mut objects = Vec::new();
    let mut left = a.limits.max_documents;
    let flag = format!("--max-documents {}", a.limits.max_documents);
    for (name, text) in read_sources(&a.filenames, a.limits.max_input_size)? {
        let mut documents = 0usize;
        for_each_document(
            &text,
            left,
            &flag,
            &mut |_, mut doc| {
                documents += 1;
                judge(&mut doc, &policy, &mut judged);
                objects.push(doc);
                Ok(())
            },
            &|e| match e.document {
                Some(d) => bad_input(format!("{name}: document {d}: {}", e.message)),
                None => bad_input(format!("{name}: {}", e.message)),
            },
        )?;
        left = left.saturating_sub(documents);
    }
    let text = match a.output {
        AdmitOutput::Text => text_report(&judged),
        AdmitOutput::Json => {
            let records: Vec<Value> = judged.iter().map(record).collect();
            serde_json::to_string_pretty(&records).map_err(bad_input)? + "\n"
        }
        AdmitOutput::Yaml => {
            let mut out = String::new();
            for o in &objects {
                out.push_str("---\n");
                out.push_str(&serde_saphyr::to_string(o).map_err(bad_input)?);
            }
            out
        }
    };
    print!("{text}");
    let rejected = judged
        .iter()
        .filter(|j| matches!(j.verdict, Verdict::Reject(_)))
        .count();
    if rejected > 0 {
        return Err(bad_input(format!(
            "{rejected} pod(s) or workload(s) would be rejected by admission"
        )));
    }
    Ok(())
}

/// Judges one object (a List's items each), applying the patch to it in place.
fn judge(obj: &mut Value, policy: &Policy, out: &mut Vec<Judged>) {
    let kind = obj
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    // `List` and the typed lists (`PodList`, `DeploymentList`, ...).
    if kind.ends_with("List") {
        if let Some(Value::Array(items)) = obj.get_mut("items") {
            for it in items {
                judge(it, policy, out);
            }
        }
        return;
    }
    // A LeaderWorkerSet has two pod templates: each is judged (the leader's only when it
    // has its own; without one the leader is a worker).
    let templates: Vec<(Template, &str)> = if kind == "Pod" {
        vec![(Template::Pod, "")]
    } else if WORKLOADS.contains(&kind.as_str()) {
        vec![(Template::Workload, "")]
    } else if kind == "LeaderWorkerSet" {
        let has_leader = obj
            .pointer("/spec/leaderWorkerTemplate/leaderTemplate")
            .is_some_and(|v| !v.is_null());
        let mut t = vec![(Template::LwsWorker, " (workers)")];
        if has_leader {
            t.insert(0, (Template::LwsLeader, " (leader)"));
        }
        t
    } else {
        return;
    };
    let meta = obj.get("metadata");
    let field = |k: &str| meta.and_then(|m| m.get(k)).and_then(Value::as_str);
    let namespace = field("namespace").unwrap_or("default").to_string();
    let name = field("name").unwrap_or("<unnamed>").to_string();
    let id = format!("{namespace}/{name}");
    for (template, which) in templates {
        let verdict = admission::admit(&id, &namespace, obj, template, policy);
        if verdict == Verdict::Skip(Skip::NoGpu) {
            continue;
        }
        if let Verdict::Mutate { patch, .. } = &verdict {
            // The patch was computed against this very object; it cannot fail to apply,
            // but if it did the object is left as it was and the verdict still says what
            // to add.
            let _ = json_patch::patch(obj, patch);
        }
        out.push(Judged {
            object: format!("{kind} {id}{which}"),
            verdict,
        });
    }
}

fn describe_requirement(r: &Requirement) -> String {
    format!("{} {} {}", r.key, r.operator.as_str(), r.values.join(","))
}

fn text_report(judged: &[Judged]) -> String {
    if judged.is_empty() {
        return "no GPU pods or workloads among the inputs\n".to_string();
    }
    let mut out = String::new();
    for j in judged {
        let line = match &j.verdict {
            Verdict::Mutate { requirements, .. } => format!(
                "patched: adds to every required node-affinity term: {}",
                requirements
                    .iter()
                    .map(describe_requirement)
                    .collect::<Vec<_>>()
                    .join(" AND ")
            ),
            Verdict::Skip(s) => format!("unchanged: {}", skip_text(*s)),
            Verdict::Reject(m) => format!("rejected: {m}"),
        };
        out.push_str(&format!("{}: {line}\n", j.object));
    }
    out
}

fn skip_text(s: Skip) -> &'static str {
    match s {
        Skip::NoGpu => "requests no nvidia.com/gpu",
        Skip::Namespace => "its namespace is not served",
        Skip::AnySlice => "every slice is safe for it (no gpu-memory or gpu-share, shared)",
        Skip::AlreadyAdmitted => "its affinity already has the slice terms",
    }
}

fn record(j: &Judged) -> Value {
    match &j.verdict {
        Verdict::Mutate {
            requirements,
            patch,
        } => json!({
            "object": j.object,
            "verdict": j.verdict.as_str(),
            "requirements": requirements.iter().map(describe_requirement).collect::<Vec<_>>(),
            "patch": patch,
        }),
        Verdict::Skip(s) => {
            json!({"object": j.object, "verdict": j.verdict.as_str(), "reason": s.as_str()})
        }
        Verdict::Reject(m) => {
            json!({"object": j.object, "verdict": j.verdict.as_str(), "message": m})
        }
    }
}
