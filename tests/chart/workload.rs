//! The Deployment: its arguments against `gpu-slicer run`, replicas, PDB, affinity,
//! probes, env, ServiceAccount, Services, ServiceMonitor and NetworkPolicy.

use super::*;

// ---------------------------------------------------------------------------------------
// The Deployment's arguments and `gpu-slicer run`
// ---------------------------------------------------------------------------------------

#[test]
fn deployment_args_are_flags_of_gpu_slicer_run() {
    let known = run_help_flags();
    let mut union = BTreeSet::new();
    for r in renderings() {
        let ctx = format!("ci/{}", r.file);
        let flags = run_args(deployment(&r.docs, &ctx), &ctx);
        for (flag, value) in &flags {
            let takes_value = known.get(flag).unwrap_or_else(|| {
                panic!("{ctx}: the Deployment passes --{flag}, which `gpu-slicer run --help` does not list")
            });
            // Valued flags as --flag=value; booleans bare (only when true).
            match (takes_value, value) {
                (true, None) => panic!("{ctx}: --{flag} needs =VALUE"),
                (false, Some(v)) => panic!("{ctx}: boolean --{flag} passed with ={v}"),
                (true, Some(v)) if v.is_empty() => {
                    panic!(
                        "{ctx}: --{flag}= is empty (an empty optional value must leave the flag out)"
                    )
                }
                _ => {}
            }
            union.insert(flag.clone());
        }
        assert!(flags.contains_key("cluster-name"), "{ctx}: --cluster-name");
    }
    // controller.extraArgs are checked like the rest.
    let docs = render_with(&["clusterName=x", "controller.extraArgs[0]=--no-such-flag=1"]);
    let extra = run_args(deployment(&docs, "extraArgs"), "extraArgs");
    assert!(
        extra.contains_key("no-such-flag") && !known.contains_key("no-such-flag"),
        "controller.extraArgs must reach the args (and the check above would refuse them)"
    );
    // every-flag-values.yaml passes every flag, so a new flag without a chart value fails.
    let every = run_args(
        deployment(&rendered("every-flag-values.yaml").docs, "every-flag"),
        "every-flag",
    );
    let missing: Vec<&String> = known
        .keys()
        .filter(|f| !every.contains_key(*f))
        .filter(|f| !CONFLICTING_FLAGS.iter().any(|(c, _)| c == f))
        .collect();
    assert!(
        missing.is_empty(),
        "ci/every-flag-values.yaml does not pass {missing:?}: give each flag of `gpu-slicer run` a chart value (values.yaml, values.schema.json, templates/_helpers.tpl)"
    );
    for (flag, conflicts_with) in CONFLICTING_FLAGS {
        assert!(
            known.contains_key(*flag),
            "CONFLICTING_FLAGS names --{flag}, which run no longer has"
        );
        assert!(
            every.contains_key(*conflicts_with),
            "every-flag must pass --{conflicts_with}"
        );
        assert!(
            union.contains(*flag),
            "no ci values file passes --{flag} (it conflicts with --{conflicts_with}, so every-flag cannot)"
        );
    }
}

/// Runs the binary with a rendering's args, as the container would (with `$(POD_NAME)`
/// expanded and the mounted catalog replaced by a local copy), without a cluster: every
/// check of the arguments passes and it stops where it needs the API server.
fn run_with_rendered_args(docs: &[Value], ctx: &str) {
    let deploy = deployment(docs, ctx);
    let c = controller_container(deploy, ctx);
    let dir = helm::scratch("run");
    let mut args: Vec<String> = Vec::new();
    for a in c["args"].as_array().expect("args") {
        let a = a
            .as_str()
            .expect("string arg")
            .replace("$(POD_NAME)", "gs-gpu-slicer-0");
        let a = match a.strip_prefix("--catalog=") {
            Some(path) => {
                let file = Path::new(path)
                    .file_name()
                    .and_then(|n| n.to_str())
                    .expect("catalog file name")
                    .to_string();
                // The chart's own ConfigMap when it renders one, else the embedded CSV.
                let csv = docs
                    .iter()
                    .filter(|d| kind(d) == "ConfigMap")
                    .find_map(|d| d.pointer(&format!("/data/{file}")).and_then(Value::as_str))
                    .map(str::to_string)
                    .unwrap_or_else(|| {
                        std::fs::read_to_string(
                            helm::repo().join("src/catalog/aws-gpu-instances.csv"),
                        )
                        .expect("embedded catalog")
                    });
                let local = dir.join(&file);
                std::fs::write(&local, csv).expect("write catalog");
                format!("--catalog={}", local.display())
            }
            None => a,
        };
        args.push(a);
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_gpu-slicer"))
        .args(&args)
        .env_clear()
        .env("HOME", &dir)
        .env("KUBECONFIG", dir.join("no-kubeconfig"))
        .env("POD_NAMESPACE", helm::NAMESPACE)
        .env("POD_NAME", "gs-gpu-slicer-0")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn gpu-slicer");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{ctx}: gpu-slicer {args:?} did not stop without a cluster");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().expect("output");
    let stderr = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        status.code() == Some(3) && stderr.contains("no usable in-cluster config or kubeconfig"),
        "{ctx}: gpu-slicer must accept the chart's arguments and stop only for want of a cluster; \
         exit {:?}:\n{stderr}\nargs: {args:?}",
        status.code()
    );
}

#[test]
fn gpu_slicer_accepts_the_rendered_args() {
    for r in renderings() {
        run_with_rendered_args(&r.docs, &format!("ci/{}", r.file));
    }
    // And it does refuse bad ones (the check bites): a conflicting pair.
    let mut docs = rendered("every-flag-values.yaml").docs.clone();
    let d = docs
        .iter_mut()
        .find(|d| kind(d) == "Deployment")
        .expect("Deployment");
    d["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array_mut()
        .expect("args")
        .push(json!("--no-price-cache"));
    assert!(
        std::panic::catch_unwind(|| run_with_rendered_args(&docs, "tampered")).is_err(),
        "--price-cache with --no-price-cache must be refused"
    );
}

#[test]
fn values_map_to_their_flags() {
    let ctx = "ci/every-flag-values.yaml";
    let flags = run_args(
        deployment(&rendered("every-flag-values.yaml").docs, ctx),
        ctx,
    );
    let expect = [
        ("cluster-name", "every-flag"),
        ("daemonset-overhead", "cpu=250m,memory=512Mi,pods=4"),
        ("live-prices", "true"),
        ("region", "us-west-2"),
        ("pricing-region", "ap-south-1"),
        ("aws-requests-per-second", "2"),
        ("aws-timeout", "20s"),
        ("aws-max-attempts", "6"),
        ("price-cache", "/cache"),
        ("replicas", "auto"),
        ("max-replicas", "8"),
        ("gpu-memory-headroom", "1Gi"),
        ("instance-types", "g5.xlarge,g6.xlarge"),
        ("families", "g5,g6"),
        ("capacity-type", "spot"),
        ("device-plugin-configmap", "time-slicing-config"),
        ("device-plugin-namespace", "nvidia-device-plugin"),
        ("effort", "fast"),
        ("gap", "0.02"),
        ("plan-deadline", "500ms"),
        ("max-hourly-cost", "125.5"),
        ("max-nodes", "40"),
        ("namespaces", "ml,inference"),
        ("exclude-namespaces", "kube-system"),
        ("emission", "static"),
        ("karpenter-version", "1.8"),
        ("ami-family", "al2"),
        ("ami-version", "v20250101"),
        ("node-role", "KarpenterNodeRole-custom"),
        ("instance-profile", "KarpenterNodeInstanceProfile-custom"),
        ("configmap-name", "slicer-profiles"),
        ("configmap-namespace", "gpu-operator"),
        ("batch-idle-duration", "2s"),
        ("batch-max-duration", "20s"),
        ("resync-period", "2m"),
        ("slicing-timeout", "15m"),
        ("metrics-bind-address", "[::]:9090"),
        ("lease-name", "slicer-leader"),
        ("lease-namespace", "gpu-slicer-leases"),
        ("identity", "gpu-slicer/$(POD_NAME)"),
        ("writes-per-second", "5"),
        ("write-burst", "10"),
        ("max-pod-events", "50"),
        ("log-format", "json"),
        ("webhook-port", "8443"),
        ("webhook-bind-address", "::"),
        ("webhook-cert-dir", "/etc/gpu-slicer/webhook-tls"),
        ("repack-interval", "30m"),
        ("repack-min-saving", "0.1"),
        ("repack-min-pod-age", "10m"),
        ("repack-max-nodes-per-hour", "4"),
        ("repack-ready-timeout", "20m"),
    ];
    for (flag, value) in expect {
        assert_eq!(arg(&flags, flag, ctx), value, "{ctx}: --{flag}");
    }
    for flag in ["dry-run", "fail-requests-greater-than-one"] {
        assert_eq!(flags.get(flag), Some(&None), "{ctx}: --{flag}");
    }
    // Defaults: optional flags left out, booleans absent, derived names.
    let ctx = "ci/minimal-values.yaml";
    let flags = run_args(deployment(&rendered("minimal-values.yaml").docs, ctx), ctx);
    for flag in [
        "catalog",
        "daemonset-overhead",
        "region",
        "endpoint-url",
        "pricing-endpoint-url",
        "price-cache",
        "no-price-cache",
        "replicas",
        "gpu-memory-headroom",
        "instance-types",
        "families",
        "max-hourly-cost",
        "max-nodes",
        "namespaces",
        "exclude-namespaces",
        "node-role",
        "instance-profile",
        "fail-requests-greater-than-one",
        "dry-run",
        "identity",
    ] {
        assert!(
            !flags.contains_key(flag),
            "{ctx}: --{flag} must be left out by default"
        );
    }
    assert_eq!(arg(&flags, "live-prices", ctx), "auto");
    assert_eq!(arg(&flags, "effort", ctx), "full");
    assert_eq!(arg(&flags, "gap", ctx), "0.01");
    assert_eq!(arg(&flags, "plan-deadline", ctx), "1s");
    assert_eq!(arg(&flags, "lease-namespace", ctx), helm::NAMESPACE);
    assert_eq!(arg(&flags, "lease-name", ctx), "gs-gpu-slicer");
    assert_eq!(arg(&flags, "configmap-namespace", ctx), "kube-system");
    assert_eq!(arg(&flags, "metrics-bind-address", ctx), "0.0.0.0:8080");
    for (flag, value) in [
        ("repack-interval", "1h"),
        ("repack-min-saving", "0.05"),
        ("repack-min-pod-age", "5m"),
        ("repack-max-nodes-per-hour", "10"),
        ("repack-ready-timeout", "15m"),
    ] {
        assert_eq!(arg(&flags, flag, ctx), value, "{ctx}: --{flag} default");
    }
    // Whole dollars are written as integers (no 1e+06).
    let flags = run_args(
        deployment(
            &render_with(&["clusterName=x", "planner.maxHourlyCost=1000000"]),
            "cost",
        ),
        "cost",
    );
    assert_eq!(arg(&flags, "max-hourly-cost", "cost"), "1000000");
    let flags = run_args(
        deployment(
            &render_with(&["clusterName=x", "aws.livePrices=false"]),
            "bool",
        ),
        "bool",
    );
    assert_eq!(arg(&flags, "live-prices", "bool"), "false");
}

// ---------------------------------------------------------------------------------------
// Shape: replicas, PDB, affinity, probes, env, ServiceAccount, image
// ---------------------------------------------------------------------------------------

#[test]
fn deployment_pdb_affinity_probes_and_service_account() {
    for r in renderings() {
        let ctx = format!("ci/{}", r.file);
        let docs = &r.docs;
        let d = deployment(docs, &ctx);
        let labels = pod_labels(d);
        let selector = string_map(d.pointer("/spec/selector/matchLabels"));
        assert!(
            selects(&selector, &labels),
            "{ctx}: selector does not match the pod labels"
        );
        let replicas = d["spec"]["replicas"].as_i64().unwrap_or(1);
        assert!(replicas >= 2, "{ctx}: replicas {replicas}, want >= 2");

        // A PDB that selects these pods and keeps one up.
        let pdb = one(docs, "PodDisruptionBudget", &ctx);
        assert!(
            selects(
                &string_map(pdb.pointer("/spec/selector/matchLabels")),
                &labels
            ),
            "{ctx}: the PodDisruptionBudget does not select the controller pods"
        );
        let min = &pdb["spec"]["minAvailable"];
        let max = &pdb["spec"]["maxUnavailable"];
        assert!(
            (*min == json!(1) && max.is_null()) || (*max == json!(1) && min.is_null()),
            "{ctx}: PDB must have minAvailable 1 or maxUnavailable 1, got {min} / {max}"
        );

        // Anti-affinity (the chart's preferred default, or the user's).
        let anti = d.pointer("/spec/template/spec/affinity/podAntiAffinity");
        assert!(anti.is_some(), "{ctx}: no pod anti-affinity");

        // Probes on the metrics port, which is the one --metrics-bind-address opens.
        let c = controller_container(d, &ctx);
        let flags = run_args(d, &ctx);
        let bind = arg(&flags, "metrics-bind-address", &ctx);
        let port: i64 = bind
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or_else(|| panic!("{ctx}: --metrics-bind-address={bind}"));
        let ports = c["ports"].as_array().expect("ports");
        assert!(
            ports
                .iter()
                .any(|p| str_at(p, "/name") == "http-metrics" && p["containerPort"] == json!(port)),
            "{ctx}: no container port http-metrics = {port}"
        );
        for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
            assert_eq!(
                str_at(c, &format!("/{probe}/httpGet/path")),
                path,
                "{ctx}: {probe}"
            );
            assert_eq!(
                str_at(c, &format!("/{probe}/httpGet/port")),
                "http-metrics",
                "{ctx}: {probe} port"
            );
        }
        // The downward API gives the Lease namespace and identity.
        for (var, field) in [
            ("POD_NAMESPACE", "metadata.namespace"),
            ("POD_NAME", "metadata.name"),
        ] {
            let e = c["env"]
                .as_array()
                .and_then(|env| env.iter().find(|e| str_at(e, "/name") == var))
                .unwrap_or_else(|| panic!("{ctx}: no env {var}"));
            assert_eq!(
                str_at(e, "/valueFrom/fieldRef/fieldPath"),
                field,
                "{ctx}: {var}"
            );
        }
        // The ServiceAccount the pods use is the chart's.
        let sa = one(docs, "ServiceAccount", &ctx);
        assert_eq!(
            name(sa),
            str_at(d, "/spec/template/spec/serviceAccountName"),
            "{ctx}: serviceAccountName"
        );
        // Resources are set.
        assert!(
            c.pointer("/resources/requests/memory").is_some(),
            "{ctx}: memory request"
        );
        assert!(
            c.pointer("/resources/limits/memory").is_some(),
            "{ctx}: memory limit"
        );
    }

    // IRSA: the role ARN becomes the annotation, with the extra annotations.
    let docs = &rendered("irsa-live-prices-values.yaml").docs;
    let sa = one(docs, "ServiceAccount", "irsa");
    let ann = string_map(sa.pointer("/metadata/annotations"));
    assert_eq!(
        ann.get("eks.amazonaws.com/role-arn").map(String::as_str),
        Some("arn:aws:iam::123456789012:role/gpu-slicer"),
        "irsa: eks.amazonaws.com/role-arn"
    );
    assert_eq!(
        ann.get("eks.amazonaws.com/sts-regional-endpoints")
            .map(String::as_str),
        Some("true")
    );
    let minimal = &rendered("minimal-values.yaml").docs;
    assert!(
        one(minimal, "ServiceAccount", "minimal")
            .pointer("/metadata/annotations")
            .is_none(),
        "minimal: no ServiceAccount annotations without a role"
    );

    // Image: appVersion by default, the digest when given.
    let image = |docs: &[Value], ctx: &str| {
        str_at(controller_container(deployment(docs, ctx), ctx), "/image").to_string()
    };
    assert_eq!(
        image(minimal, "minimal"),
        format!("gpu-slicer:{}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(
        image(&rendered("every-flag-values.yaml").docs, "every-flag"),
        "registry.example/platform/gpu-slicer@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    );

    // One replica: no PDB (it would block every drain), and no anti-affinity needed but harmless.
    let single = render_with(&["clusterName=x", "replicaCount=1"]);
    assert!(
        docs_of(&single, "PodDisruptionBudget").is_empty(),
        "replicaCount=1: no PDB"
    );
    // maxUnavailable instead of minAvailable.
    let max = render_with(&["clusterName=x", "podDisruptionBudget.maxUnavailable=1"]);
    let pdb = one(&max, "PodDisruptionBudget", "maxUnavailable");
    assert_eq!(pdb["spec"]["maxUnavailable"], json!(1));
    assert!(pdb["spec"]["minAvailable"].is_null());
}

#[test]
fn service_monitor_and_network_policy() {
    for file in [
        "monitoring-networkpolicy-values.yaml",
        "every-flag-values.yaml",
    ] {
        let ctx = format!("ci/{file}");
        let docs = &rendered(file).docs;
        let d = deployment(docs, &ctx);
        let svc = metrics_service(docs, &ctx);
        let sm = one(docs, "ServiceMonitor", &ctx);
        // The ServiceMonitor does not select the webhook's Service.
        if let Some(wh) = webhook_service(docs) {
            let sel = string_map(sm.pointer("/spec/selector/matchLabels"));
            assert!(
                !selects(&sel, &string_map(wh.pointer("/metadata/labels"))),
                "{ctx}: the ServiceMonitor selects the webhook Service"
            );
        }

        // The Service selects the controller pods and targets the metrics port by name.
        assert!(
            selects(&string_map(svc.pointer("/spec/selector")), &pod_labels(d)),
            "{ctx}: the Service does not select the controller pods"
        );
        let svc_ports = svc["spec"]["ports"].as_array().expect("service ports");
        assert!(
            svc_ports
                .iter()
                .any(|p| str_at(p, "/name") == "http-metrics"
                    && str_at(p, "/targetPort") == "http-metrics"),
            "{ctx}: Service port http-metrics -> http-metrics"
        );

        // The ServiceMonitor by hand (kubernetes-validate has no schema for it).
        assert_eq!(
            str_at(sm, "/apiVersion"),
            "monitoring.coreos.com/v1",
            "{ctx}"
        );
        let sel = string_map(sm.pointer("/spec/selector/matchLabels"));
        assert!(
            selects(&sel, &string_map(svc.pointer("/metadata/labels"))),
            "{ctx}: ServiceMonitor selector {sel:?} does not match the Service's labels"
        );
        let svc_ns = str_at(svc, "/metadata/namespace");
        if str_at(sm, "/metadata/namespace") != svc_ns {
            assert!(
                strings(sm.pointer("/spec/namespaceSelector/matchNames"))
                    .contains(&svc_ns.to_string()),
                "{ctx}: ServiceMonitor in another namespace must select {svc_ns}"
            );
        }
        let endpoints = sm["spec"]["endpoints"].as_array().expect("endpoints");
        assert!(!endpoints.is_empty(), "{ctx}: no endpoints");
        for e in endpoints {
            let port = str_at(e, "/port");
            assert!(
                svc_ports.iter().any(|p| str_at(p, "/name") == port),
                "{ctx}: ServiceMonitor endpoint port {port:?} is not a Service port name"
            );
            assert_eq!(str_at(e, "/path"), "/metrics", "{ctx}");
            for key in e.as_object().expect("endpoint").keys() {
                assert!(
                    [
                        "port",
                        "path",
                        "scheme",
                        "interval",
                        "scrapeTimeout",
                        "relabelings",
                        "metricRelabelings"
                    ]
                    .contains(&key.as_str()),
                    "{ctx}: unexpected ServiceMonitor endpoint field {key}"
                );
            }
        }

        // The NetworkPolicy: the controller pods, ingress only to the metrics port.
        let np = one(docs, "NetworkPolicy", &ctx);
        check_network_policy(np, d, &ctx);
        let types = strings(np.pointer("/spec/policyTypes"));
        assert!(
            types.contains(&"Egress".to_string()),
            "{ctx}: egress is restricted here"
        );
        assert!(
            np["spec"]["egress"]
                .as_array()
                .is_some_and(|e| !e.is_empty()),
            "{ctx}: restricted egress needs rules"
        );
    }
    // Enabled with defaults: ingress restricted, egress open (no Egress policy type).
    let docs = render_with(&["clusterName=x", "networkPolicy.enabled=true"]);
    let np = one(&docs, "NetworkPolicy", "default networkPolicy");
    check_network_policy(np, deployment(&docs, "np"), "default networkPolicy");
    assert_eq!(
        strings(np.pointer("/spec/policyTypes")),
        vec!["Ingress".to_string()]
    );
    assert!(np["spec"].get("egress").is_none(), "egress open by default");
    // Off by default; no ServiceMonitor by default.
    let minimal = &rendered("minimal-values.yaml").docs;
    assert!(docs_of(minimal, "NetworkPolicy").is_empty());
    assert!(docs_of(minimal, "ServiceMonitor").is_empty());
}

fn check_network_policy(np: &Value, d: &Value, ctx: &str) {
    assert!(
        selects(
            &string_map(np.pointer("/spec/podSelector/matchLabels")),
            &pod_labels(d)
        ),
        "{ctx}: NetworkPolicy does not select the controller pods"
    );
    let c = controller_container(d, ctx);
    let metrics_port = c["ports"]
        .as_array()
        .and_then(|p| p.iter().find(|p| str_at(p, "/name") == "http-metrics"))
        .map(|p| p["containerPort"].clone())
        .expect("metrics port");
    let webhook_port = c["ports"]
        .as_array()
        .and_then(|p| p.iter().find(|p| str_at(p, "/name") == "https-webhook"))
        .map(|p| p["containerPort"].clone());
    let ingress = np["spec"]["ingress"].as_array().expect("ingress rules");
    assert!(!ingress.is_empty(), "{ctx}: no ingress rule");
    for rule in ingress {
        let ports = rule["ports"]
            .as_array()
            .expect("ingress rule without ports opens every port");
        for p in ports {
            assert!(
                p["port"] == metrics_port
                    || str_at(p, "/port") == "http-metrics"
                    || webhook_port.as_ref() == Some(&p["port"]),
                "{ctx}: ingress to a port other than the metrics and webhook ports: {p}"
            );
        }
    }
    assert!(strings(np.pointer("/spec/policyTypes")).contains(&"Ingress".to_string()));
}
