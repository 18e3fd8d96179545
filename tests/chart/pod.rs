//! The pod: the restricted Pod Security Standard, priority, node affinity, extra pod
//! settings and the ServiceMonitor's API gate.

use super::*;

// ---------------------------------------------------------------------------------------
// Pod security: the restricted Pod Security Standard, plus a read-only root file system
// ---------------------------------------------------------------------------------------

/// Volume types the restricted profile allows.
const RESTRICTED_VOLUMES: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
];
/// Sysctls the baseline profile allows.
const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];
const SELINUX_TYPES: &[&str] = &[
    "",
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
];

/// What the pod template violates of the restricted profile (and of readOnlyRootFilesystem).
fn restricted_violations(template: &Value) -> Vec<String> {
    let mut v = Vec::new();
    let spec = &template["spec"];
    let psc = &spec["securityContext"];
    let annotations = string_map(template.pointer("/metadata/annotations"));

    for host in ["hostNetwork", "hostPID", "hostIPC"] {
        if spec[host] == json!(true) {
            v.push(format!("pod: {host} is true"));
        }
    }
    for vol in spec["volumes"].as_array().into_iter().flatten() {
        let name = str_at(vol, "/name");
        let types: Vec<&String> = vol
            .as_object()
            .map(|m| m.keys().filter(|k| *k != "name").collect())
            .unwrap_or_default();
        for t in types {
            if !RESTRICTED_VOLUMES.contains(&t.as_str()) {
                v.push(format!(
                    "volume {name}: type {t} is not allowed (hostPath and others)"
                ));
            }
        }
    }
    for s in psc["sysctls"].as_array().into_iter().flatten() {
        let n = str_at(s, "/name");
        if !SAFE_SYSCTLS.contains(&n) {
            v.push(format!("pod: unsafe sysctl {n}"));
        }
    }
    if psc["runAsUser"] == json!(0) {
        v.push("pod: runAsUser 0".into());
    }
    check_selinux(&psc["seLinuxOptions"], "pod", &mut v);
    let pod_seccomp = str_at(psc, "/seccompProfile/type");
    if !pod_seccomp.is_empty() && !matches!(pod_seccomp, "RuntimeDefault" | "Localhost") {
        v.push(format!("pod: seccompProfile {pod_seccomp}"));
    }
    let pod_apparmor = str_at(psc, "/appArmorProfile/type");
    if !pod_apparmor.is_empty() && !matches!(pod_apparmor, "RuntimeDefault" | "Localhost") {
        v.push(format!("pod: appArmorProfile {pod_apparmor}"));
    }
    if psc["windowsOptions"]["hostProcess"] == json!(true) {
        v.push("pod: windowsOptions.hostProcess".into());
    }

    let containers = ["containers", "initContainers", "ephemeralContainers"]
        .iter()
        .flat_map(|k| spec[*k].as_array().into_iter().flatten());
    let mut any = false;
    for c in containers {
        any = true;
        let n = format!("container {}", str_at(c, "/name"));
        let sc = &c["securityContext"];
        if sc["privileged"] == json!(true) {
            v.push(format!("{n}: privileged"));
        }
        if sc["allowPrivilegeEscalation"] != json!(false) {
            v.push(format!("{n}: allowPrivilegeEscalation must be false"));
        }
        // runAsNonRoot: true on the container, or on the pod and not false on the container.
        let non_root = sc["runAsNonRoot"] == json!(true)
            || (psc["runAsNonRoot"] == json!(true) && sc["runAsNonRoot"] != json!(false));
        if !non_root {
            v.push(format!("{n}: runAsNonRoot must be true (pod or container)"));
        }
        if sc["runAsUser"] == json!(0) {
            v.push(format!("{n}: runAsUser 0"));
        }
        let seccomp = str_at(sc, "/seccompProfile/type");
        let seccomp_ok = match seccomp {
            "" => matches!(pod_seccomp, "RuntimeDefault" | "Localhost"),
            "RuntimeDefault" | "Localhost" => true,
            _ => false,
        };
        if !seccomp_ok {
            v.push(format!("{n}: seccompProfile must be RuntimeDefault or Localhost (pod or container), got {seccomp:?}"));
        }
        let drops = strings(sc.pointer("/capabilities/drop"));
        if !drops.iter().any(|d| d == "ALL") {
            v.push(format!("{n}: capabilities.drop must contain ALL"));
        }
        for add in strings(sc.pointer("/capabilities/add")) {
            if add != "NET_BIND_SERVICE" {
                v.push(format!("{n}: capabilities.add {add}"));
            }
        }
        let proc_mount = str_at(sc, "/procMount");
        if !matches!(proc_mount, "" | "Default") {
            v.push(format!("{n}: procMount {proc_mount}"));
        }
        check_selinux(&sc["seLinuxOptions"], &n, &mut v);
        let apparmor = str_at(sc, "/appArmorProfile/type");
        if !apparmor.is_empty() && !matches!(apparmor, "RuntimeDefault" | "Localhost") {
            v.push(format!("{n}: appArmorProfile {apparmor}"));
        }
        if let Some(a) = annotations.get(&format!(
            "container.apparmor.security.beta.kubernetes.io/{}",
            str_at(c, "/name")
        )) && !(a == "runtime/default" || a.starts_with("localhost/"))
        {
            v.push(format!("{n}: AppArmor annotation {a}"));
        }
        if sc["windowsOptions"]["hostProcess"] == json!(true) {
            v.push(format!("{n}: windowsOptions.hostProcess"));
        }
        for p in c["ports"].as_array().into_iter().flatten() {
            if p.get("hostPort").and_then(Value::as_i64).unwrap_or(0) != 0 {
                v.push(format!("{n}: hostPort {}", p["hostPort"]));
            }
        }
        // Not part of the profile, but required of this chart.
        if sc["readOnlyRootFilesystem"] != json!(true) {
            v.push(format!("{n}: readOnlyRootFilesystem must be true"));
        }
    }
    if !any {
        v.push("pod: no containers".into());
    }
    v
}

fn check_selinux(opts: &Value, who: &str, v: &mut Vec<String>) {
    if opts.is_null() {
        return;
    }
    let t = str_at(opts, "/type");
    if !SELINUX_TYPES.contains(&t) {
        v.push(format!("{who}: seLinuxOptions.type {t}"));
    }
    for f in ["user", "role"] {
        if !str_at(opts, &format!("/{f}")).is_empty() {
            v.push(format!("{who}: seLinuxOptions.{f} must be unset"));
        }
    }
}

#[test]
fn pods_meet_the_restricted_pod_security_standard() {
    for r in renderings() {
        let d = deployment(&r.docs, &r.file);
        let template = &d["spec"]["template"];
        let v = restricted_violations(template);
        assert!(
            v.is_empty(),
            "ci/{}: the controller pod violates the restricted profile:\n  {}",
            r.file,
            v.join("\n  ")
        );
        // The chart sets both levels explicitly, as the issue asks.
        let sc = &controller_container(d, &r.file)["securityContext"];
        let psc = &template["spec"]["securityContext"];
        assert_eq!(
            psc["runAsNonRoot"],
            json!(true),
            "ci/{}: pod runAsNonRoot",
            r.file
        );
        assert_eq!(
            psc["runAsUser"],
            json!(65532),
            "ci/{}: pod runAsUser",
            r.file
        );
        assert_eq!(
            str_at(psc, "/seccompProfile/type"),
            "RuntimeDefault",
            "ci/{}",
            r.file
        );
        assert_eq!(
            str_at(sc, "/seccompProfile/type"),
            "RuntimeDefault",
            "ci/{}",
            r.file
        );
        assert_eq!(
            sc["runAsUser"],
            json!(65532),
            "ci/{}: container runAsUser",
            r.file
        );
    }
}

#[test]
fn pod_security_check_bites() {
    let good =
        deployment(&rendered("minimal-values.yaml").docs, "minimal")["spec"]["template"].clone();
    assert!(restricted_violations(&good).is_empty());
    let cases: &[(&str, Value, &str)] = &[
        ("/spec/hostNetwork", json!(true), "hostNetwork"),
        ("/spec/hostPID", json!(true), "hostPID"),
        ("/spec/hostIPC", json!(true), "hostIPC"),
        (
            "/spec/volumes",
            json!([{"name": "root", "hostPath": {"path": "/"}}]),
            "hostPath",
        ),
        (
            "/spec/containers/0/securityContext/privileged",
            json!(true),
            "privileged",
        ),
        (
            "/spec/containers/0/securityContext/allowPrivilegeEscalation",
            json!(true),
            "allowPrivilegeEscalation",
        ),
        (
            "/spec/containers/0/securityContext/runAsNonRoot",
            json!(false),
            "runAsNonRoot",
        ),
        (
            "/spec/containers/0/securityContext/runAsUser",
            json!(0),
            "runAsUser 0",
        ),
        (
            "/spec/containers/0/securityContext/capabilities",
            json!({"add": ["SYS_ADMIN"], "drop": ["ALL"]}),
            "SYS_ADMIN",
        ),
        (
            "/spec/containers/0/securityContext/capabilities",
            json!({"drop": ["NET_RAW"]}),
            "drop must contain ALL",
        ),
        (
            "/spec/containers/0/securityContext/seccompProfile",
            json!({"type": "Unconfined"}),
            "seccompProfile",
        ),
        (
            "/spec/containers/0/securityContext/readOnlyRootFilesystem",
            json!(false),
            "readOnlyRootFilesystem",
        ),
        (
            "/spec/containers/0/ports",
            json!([{"containerPort": 8080, "hostPort": 8080}]),
            "hostPort",
        ),
        (
            "/spec/initContainers",
            json!([{"name": "init", "image": "busybox"}]),
            "container init",
        ),
    ];
    for (pointer, value, needle) in cases {
        let mut t = good.clone();
        set_pointer(&mut t, pointer, value.clone());
        let v = restricted_violations(&t);
        assert!(
            v.iter().any(|m| m.contains(needle)),
            "setting {pointer} = {value} must be caught ({needle}); got {v:?}"
        );
    }
}

/// Sets the value at a JSON pointer, creating the last key.
fn set_pointer(v: &mut Value, pointer: &str, value: Value) {
    let (parent, key) = pointer.rsplit_once('/').expect("pointer");
    let p = v
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("no {parent}"));
    match p {
        Value::Object(m) => {
            m.insert(key.to_string(), value);
        }
        Value::Array(a) => {
            let i: usize = key.parse().expect("index");
            a[i] = value;
        }
        _ => panic!("{parent} is not a container"),
    }
}

// ---------------------------------------------------------------------------------------
// Hardening: priority, node affinity, extra pod settings, the ServiceMonitor's API gate
// ---------------------------------------------------------------------------------------

/// Node labels of the capacity the controller must never run on: Karpenter v1/v1beta1 and
/// v1alpha5 nodes, and gpu-slicer's own (`render::POOL_LABEL`, spelt out here so that the
/// chart's contract is read from the chart, not from the crate's current layout).
const PROVISIONED_NODE_LABELS: &[&str] = &[
    "karpenter.sh/nodepool",
    "karpenter.sh/provisioner-name",
    "gpu-slicer.io/pool",
];

fn pod_spec(d: &Value) -> &Value {
    &d["spec"]["template"]["spec"]
}

/// Whether a node with `labels` satisfies the pod's required node affinity (the
/// nodeSelectorTerms are ORed, their matchExpressions ANDed), as the scheduler decides;
/// true when there is none.
fn node_admitted(d: &Value, labels: &[(&str, &str)]) -> bool {
    let Some(terms) = pod_spec(d)
        .pointer("/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")
        .and_then(Value::as_array)
    else {
        return true;
    };
    let label = |k: &str| labels.iter().find(|(l, _)| *l == k).map(|(_, v)| *v);
    terms.iter().any(|term| {
        assert!(
            term.get("matchFields").is_none(),
            "matchFields are not evaluated here: {term}"
        );
        term["matchExpressions"].as_array().is_some_and(|exprs| {
            exprs.iter().all(|e| {
                let key = str_at(e, "/key");
                let values = strings(e.get("values"));
                match (str_at(e, "/operator"), label(key)) {
                    ("Exists", l) => l.is_some(),
                    ("DoesNotExist", l) => l.is_none(),
                    ("In", Some(v)) => values.iter().any(|x| x == v),
                    ("NotIn", l) => l.is_none_or(|v| !values.iter().any(|x| x == v)),
                    ("In", None) => false,
                    (op, _) => panic!("operator {op} is not evaluated here: {e}"),
                }
            })
        })
    })
}

/// The pod anti-affinity terms (required ones, and the podAffinityTerm of preferred ones).
fn anti_affinity_terms(d: &Value) -> Vec<&Value> {
    let anti = &pod_spec(d)["affinity"]["podAntiAffinity"];
    let required = anti["requiredDuringSchedulingIgnoredDuringExecution"]
        .as_array()
        .into_iter()
        .flatten();
    let preferred = anti["preferredDuringSchedulingIgnoredDuringExecution"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| &p["podAffinityTerm"]);
    required.chain(preferred).collect()
}

#[test]
fn priority_class_is_system_cluster_critical_by_default_and_removable() {
    let pc = |docs: &[Value], ctx: &str| {
        pod_spec(deployment(docs, ctx))
            .get("priorityClassName")
            .cloned()
    };
    let minimal = &rendered("minimal-values.yaml").docs;
    assert_eq!(
        pc(minimal, "minimal"),
        Some(json!("system-cluster-critical")),
        "the default priority class"
    );
    assert_eq!(
        pc(&rendered("every-flag-values.yaml").docs, "every-flag"),
        Some(json!("platform-critical")),
        "priorityClassName overrides the default"
    );
    let none = render_with(&["clusterName=x", "priorityClassName="]);
    assert_eq!(
        pc(&none, "empty"),
        None,
        "priorityClassName=\"\" must leave the field out"
    );
    // The field left out is still a valid Deployment.
    helm::kubernetes_validate(&[deployment(&none, "empty")]).expect("valid without a priority");
}

#[test]
fn node_affinity_keeps_the_controller_off_provisioned_nodes_and_is_overridable() {
    // Default: required, and every term excludes every provisioned-node label.
    let d = deployment(&rendered("minimal-values.yaml").docs, "minimal");
    let terms = pod_spec(d)
        .pointer("/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")
        .and_then(Value::as_array)
        .expect("minimal: a required node affinity by default");
    assert!(!terms.is_empty());
    for term in terms {
        for label in PROVISIONED_NODE_LABELS {
            assert!(
                term["matchExpressions"].as_array().is_some_and(|e| e
                    .iter()
                    .any(
                        |e| str_at(e, "/key") == *label && str_at(e, "/operator") == "DoesNotExist"
                    )),
                "minimal: the term {term} lets a node with {label} in"
            );
        }
    }
    assert!(node_admitted(
        d,
        &[("eks.amazonaws.com/nodegroup", "system")]
    ));
    for label in PROVISIONED_NODE_LABELS {
        assert!(
            !node_admitted(
                d,
                &[("eks.amazonaws.com/nodegroup", "system"), (label, "x")]
            ),
            "minimal: a node labelled {label} must not be admitted"
        );
    }
    // The default anti-affinity terms got the chart's selector labels: they select the pods.
    let anti = anti_affinity_terms(d);
    assert_eq!(anti.len(), 2, "minimal: preferred across nodes and zones");
    for t in &anti {
        assert!(
            selects(
                &string_map(t.pointer("/labelSelector/matchLabels")),
                &pod_labels(d)
            ),
            "minimal: anti-affinity term {t} does not select the controller pods"
        );
    }

    // Replaced (every-flag): the user's terms only, not merged with the default's.
    let ctx = "ci/every-flag-values.yaml";
    let d = deployment(&rendered("every-flag-values.yaml").docs, ctx);
    assert!(node_admitted(
        d,
        &[
            ("eks.amazonaws.com/nodegroup", "system"),
            ("karpenter.sh/nodepool", "x")
        ]
    ));
    assert!(!node_admitted(d, &[]), "{ctx}: the user's term is required");
    let anti = &pod_spec(d)["affinity"]["podAntiAffinity"];
    assert!(
        anti.get("preferredDuringSchedulingIgnoredDuringExecution")
            .is_none(),
        "{ctx}: the default preferred terms were set to null"
    );
    assert_eq!(
        anti["requiredDuringSchedulingIgnoredDuringExecution"][0]["labelSelector"],
        json!({"matchLabels": {"app.kubernetes.io/name": "slicer"}}),
        "{ctx}: a term's own labelSelector is kept"
    );

    // Dropped: the node affinity alone, or the whole affinity.
    let no_node = render_with(&["clusterName=x", "affinity.nodeAffinity=null"]);
    let d = deployment(&no_node, "nodeAffinity=null");
    assert!(pod_spec(d).pointer("/affinity/nodeAffinity").is_none());
    assert!(node_admitted(d, &[("karpenter.sh/nodepool", "x")]));
    assert_eq!(anti_affinity_terms(d).len(), 2, "anti-affinity kept");
    let none = render_with(&["clusterName=x", "affinity=null"]);
    assert!(
        pod_spec(deployment(&none, "affinity=null"))
            .get("affinity")
            .is_none(),
        "affinity=null renders no affinity"
    );
    helm::kubernetes_validate(&[
        deployment(&no_node, "nodeAffinity=null"),
        deployment(&none, "affinity=null"),
    ])
    .expect("valid Deployments");
}

#[test]
fn node_affinity_check_bites() {
    let d = deployment(&rendered("minimal-values.yaml").docs, "minimal");
    let mut open = d.clone();
    open["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
        ["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        .as_array_mut()
        .expect("terms")
        .push(json!({"matchExpressions": [{"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}]}));
    assert!(
        node_admitted(
            &open,
            &[
                ("kubernetes.io/os", "linux"),
                ("karpenter.sh/nodepool", "x")
            ]
        ),
        "an ORed term that lets Karpenter nodes in must be seen"
    );
}

#[test]
fn extra_volumes_mounts_env_from_and_strategy_are_rendered() {
    let ctx = "ci/every-flag-values.yaml";
    let d = deployment(&rendered("every-flag-values.yaml").docs, ctx);
    assert_eq!(
        d["spec"]["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}),
        "{ctx}: strategy"
    );
    let c = controller_container(d, ctx);
    assert_eq!(
        c["envFrom"],
        json!([{"configMapRef": {"name": "aws-env"}}]),
        "{ctx}: envFrom"
    );
    let volumes = pod_spec(d)["volumes"].as_array().expect("volumes");
    assert!(
        volumes
            .iter()
            .any(|v| *v == json!({"name": "aws-config", "configMap": {"name": "aws-config"}})),
        "{ctx}: extraVolumes in {volumes:?}"
    );
    let mounts = c["volumeMounts"].as_array().expect("volumeMounts");
    assert!(
        mounts.iter().any(
            |m| *m == json!({"name": "aws-config", "mountPath": "/etc/aws", "readOnly": true})
        ),
        "{ctx}: extraVolumeMounts in {mounts:?}"
    );
    // The chart's own volumes are kept beside them.
    for own in ["catalog", "price-cache", "webhook-tls"] {
        assert!(
            volumes.iter().any(|v| str_at(v, "/name") == own),
            "{ctx}: volume {own} lost"
        );
    }

    // Defaults: none of them rendered.
    let ctx = "ci/minimal-values.yaml";
    let d = deployment(&rendered("minimal-values.yaml").docs, ctx);
    assert!(d["spec"].get("strategy").is_none(), "{ctx}: no strategy");
    assert!(
        controller_container(d, ctx).get("envFrom").is_none(),
        "{ctx}: no envFrom"
    );
    let names: Vec<&str> = pod_spec(d)["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .map(|v| str_at(v, "/name"))
        .collect();
    assert_eq!(names, ["webhook-tls"], "{ctx}: only the chart's volumes");

    // Alone (no webhook, no catalog, no cache): the lists are still rendered, and valid.
    let docs = render_with(&[
        "clusterName=x",
        "webhook.enabled=false",
        "extraVolumes[0].name=scratch",
        "extraVolumes[0].emptyDir.medium=Memory",
        "extraVolumeMounts[0].name=scratch",
        "extraVolumeMounts[0].mountPath=/scratch",
        "envFrom[0].secretRef.name=creds",
        "strategy.type=Recreate",
    ]);
    let d = deployment(&docs, "extras alone");
    assert_eq!(
        pod_spec(d)["volumes"],
        json!([{"name": "scratch", "emptyDir": {"medium": "Memory"}}])
    );
    let c = controller_container(d, "extras alone");
    assert_eq!(
        c["volumeMounts"],
        json!([{"name": "scratch", "mountPath": "/scratch"}])
    );
    assert_eq!(c["envFrom"], json!([{"secretRef": {"name": "creds"}}]));
    assert_eq!(d["spec"]["strategy"], json!({"type": "Recreate"}));
    typed(d).expect("a k8s-openapi Deployment");
    helm::kubernetes_validate(&[d]).expect("a valid Deployment");
    assert!(restricted_violations(&d["spec"]["template"]).is_empty());
}

#[test]
fn service_monitor_needs_the_prometheus_operator_api() {
    let sets = ["clusterName=x", "serviceMonitor.enabled=true"];
    // Enabled, but the cluster does not serve the API: left out, not an error.
    assert!(
        docs_of(&render_with(&sets), "ServiceMonitor").is_empty(),
        "a ServiceMonitor rendered without {PROMETHEUS_OPERATOR_API}"
    );
    // Enabled and served: rendered.
    let docs = render_with_apis(&sets, &[PROMETHEUS_OPERATOR_API]);
    let sm = one(&docs, "ServiceMonitor", "enabled, API served");
    assert_eq!(str_at(sm, "/apiVersion"), PROMETHEUS_OPERATOR_API);
    // Served but not enabled: none.
    let docs = render_with_apis(&["clusterName=x"], &[PROMETHEUS_OPERATOR_API]);
    assert!(docs_of(&docs, "ServiceMonitor").is_empty());
    // The ci file that enables it renders one only with the API (renderings() passes it).
    let f = helm::chart_dir().join("ci/monitoring-networkpolicy-values.yaml");
    let without = helm::parse_docs(&helm::template(&[f.as_path()], &[]).expect("template"));
    assert!(docs_of(&without, "ServiceMonitor").is_empty());
    one(
        &rendered("monitoring-networkpolicy-values.yaml").docs,
        "ServiceMonitor",
        "ci/monitoring-networkpolicy-values.yaml with the API",
    );
}
