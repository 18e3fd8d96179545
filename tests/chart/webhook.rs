//! The admission webhook: configuration, Service, certificate (Helm's or cert-manager's).

use super::*;

// ---------------------------------------------------------------------------------------
// The admission webhook: configuration, Service, certificate (Helm's or cert-manager's)
// ---------------------------------------------------------------------------------------

fn mutating_webhook<'a>(docs: &'a [Value], ctx: &str) -> &'a Value {
    let mwc = one(docs, "MutatingWebhookConfiguration", ctx);
    let hooks = mwc["webhooks"].as_array().expect("webhooks");
    assert_eq!(hooks.len(), 1, "{ctx}: one webhook");
    &hooks[0]
}

/// The Secret the Deployment mounts at `--webhook-cert-dir`.
fn mounted_webhook_secret(d: &Value, ctx: &str) -> String {
    let flags = run_args(d, ctx);
    let dir = arg(&flags, "webhook-cert-dir", ctx);
    let c = controller_container(d, ctx);
    let mount = c["volumeMounts"]
        .as_array()
        .and_then(|m| m.iter().find(|m| str_at(m, "/mountPath") == dir))
        .unwrap_or_else(|| panic!("{ctx}: nothing mounted at --webhook-cert-dir={dir}"));
    assert_eq!(mount["readOnly"], json!(true), "{ctx}: read-only mount");
    let vol = str_at(mount, "/name");
    let volumes = d
        .pointer("/spec/template/spec/volumes")
        .and_then(Value::as_array)
        .expect("volumes");
    let v = volumes
        .iter()
        .find(|v| str_at(v, "/name") == vol)
        .expect("the mounted volume");
    let keys: BTreeSet<String> = v["secret"]["items"]
        .as_array()
        .map(|i| i.iter().map(|i| str_at(i, "/path").to_string()).collect())
        .unwrap_or_default();
    assert_eq!(
        keys,
        BTreeSet::from(["tls.crt".to_string(), "tls.key".to_string()]),
        "{ctx}: the volume holds tls.crt and tls.key"
    );
    str_at(v, "/secret/secretName").to_string()
}

/// The NotIn and In values of the webhook's namespaceSelector.
fn namespace_selector(hook: &Value) -> (BTreeSet<String>, Option<BTreeSet<String>>) {
    let exprs = hook["namespaceSelector"]["matchExpressions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let values = |op: &str| {
        exprs
            .iter()
            .find(|e| {
                str_at(e, "/operator") == op && str_at(e, "/key") == "kubernetes.io/metadata.name"
            })
            .map(|e| {
                strings(e.get("values"))
                    .into_iter()
                    .collect::<BTreeSet<_>>()
            })
    };
    (values("NotIn").unwrap_or_default(), values("In"))
}

#[test]
fn the_webhook_is_registered_for_gpu_pod_creates_and_served_by_the_pods() {
    for r in renderings()
        .iter()
        .filter(|r| r.file != "webhook-off-values.yaml")
    {
        let ctx = format!("ci/{}", r.file);
        let docs = &r.docs;
        let d = deployment(docs, &ctx);
        let hook = mutating_webhook(docs, &ctx);
        assert_eq!(hook["admissionReviewVersions"], json!(["v1"]), "{ctx}");
        assert_eq!(str_at(hook, "/sideEffects"), "None", "{ctx}");
        assert!(
            hook["timeoutSeconds"]
                .as_u64()
                .is_some_and(|t| (1..=30).contains(&t))
        );
        assert_eq!(
            hook["rules"],
            json!([{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                "resources": ["pods"], "scope": "Namespaced"}]),
            "{ctx}: pod CREATE only"
        );
        // Only pods requesting nvidia.com/gpu (limits or requests, any container).
        let conds = hook["matchConditions"].as_array().expect("matchConditions");
        let expr = str_at(&conds[0], "/expression");
        for needle in [
            "'nvidia.com/gpu' in c.resources.limits",
            "'nvidia.com/gpu' in c.resources.requests",
            "object.spec.containers.exists",
            "object.spec.initContainers.exists",
        ] {
            assert!(expr.contains(needle), "{ctx}: {needle} in {expr}");
        }
        // The controller's own namespace and kube-system are never sent.
        let (not_in, _) = namespace_selector(hook);
        for ns in [helm::NAMESPACE, "kube-system"] {
            assert!(
                not_in.contains(ns),
                "{ctx}: {ns} must be excluded: {not_in:?}"
            );
        }
        // The Service: the webhook port of the controller pods, as the config calls it.
        let svc = webhook_service(docs).unwrap_or_else(|| panic!("{ctx}: no webhook Service"));
        let cc = &hook["clientConfig"]["service"];
        assert_eq!(str_at(cc, "/name"), name(svc), "{ctx}");
        assert_eq!(str_at(cc, "/namespace"), helm::NAMESPACE, "{ctx}");
        assert_eq!(str_at(cc, "/path"), "/mutate-pods", "{ctx}");
        let sp = &svc["spec"]["ports"][0];
        assert_eq!(
            cc["port"], sp["port"],
            "{ctx}: clientConfig port = Service port"
        );
        assert_eq!(str_at(sp, "/targetPort"), "https-webhook", "{ctx}");
        assert!(
            selects(&string_map(svc.pointer("/spec/selector")), &pod_labels(d)),
            "{ctx}: the webhook Service selects the controller pods"
        );
        let flags = run_args(d, &ctx);
        let port = controller_container(d, &ctx)["ports"]
            .as_array()
            .and_then(|p| p.iter().find(|p| str_at(p, "/name") == "https-webhook"))
            .map(|p| p["containerPort"].to_string())
            .unwrap_or_else(|| panic!("{ctx}: no https-webhook container port"));
        assert_eq!(arg(&flags, "webhook-port", &ctx), port, "{ctx}");
        // The certificate is mounted, never read through the API.
        let secret = mounted_webhook_secret(d, &ctx);
        assert!(!secret.is_empty(), "{ctx}");
        for role in docs
            .iter()
            .filter(|d| matches!(kind(d), "Role" | "ClusterRole"))
        {
            assert!(
                !role.to_string().contains("secrets"),
                "{ctx}: {} mentions secrets",
                describe(role)
            );
        }
    }

    // Defaults: Fail, and the Helm-generated Secret whose CA is the caBundle.
    let docs = &rendered("minimal-values.yaml").docs;
    let hook = mutating_webhook(docs, "minimal");
    assert_eq!(str_at(hook, "/failurePolicy"), "Fail");
    assert_eq!(str_at(hook, "/reinvocationPolicy"), "IfNeeded");
    assert!(hook.get("objectSelector").is_none());
    let secret = one(docs, "Secret", "minimal");
    assert_eq!(str_at(secret, "/type"), "kubernetes.io/tls");
    assert_eq!(
        name(secret),
        mounted_webhook_secret(deployment(docs, "minimal"), "minimal")
    );
    assert_eq!(
        hook["clientConfig"]["caBundle"], secret["data"]["ca.crt"],
        "caBundle = the Secret's CA"
    );
    let (not_in, only) = namespace_selector(hook);
    assert_eq!(
        not_in,
        BTreeSet::from([helm::NAMESPACE.to_string(), "kube-system".to_string()])
    );
    assert!(only.is_none(), "all other namespaces by default");

    // Values reach the configuration.
    let ctx = "ci/every-flag-values.yaml";
    let hook = mutating_webhook(&rendered("every-flag-values.yaml").docs, ctx);
    assert_eq!(str_at(hook, "/failurePolicy"), "Ignore", "{ctx}");
    assert_eq!(hook["timeoutSeconds"], json!(10), "{ctx}");
    assert_eq!(str_at(hook, "/reinvocationPolicy"), "Never", "{ctx}");
    assert_eq!(
        str_at(&hook["objectSelector"]["matchExpressions"][0], "/key"),
        "gpu-slicer.io/skip"
    );
    let (not_in, only) = namespace_selector(hook);
    assert!(
        not_in.contains("monitoring") && not_in.contains("gpu-slicer"),
        "{not_in:?}"
    );
    assert_eq!(
        only,
        Some(BTreeSet::from(["ml".to_string(), "inference".to_string()])),
        "{ctx}: planner.namespaces narrows the webhook too"
    );
    let docs = render_with(&["clusterName=x", "webhook.failurePolicy=Ignore"]);
    assert_eq!(
        str_at(mutating_webhook(&docs, "Ignore"), "/failurePolicy"),
        "Ignore"
    );
    let err = template_raw(&[], &["clusterName=x", "webhook.failurePolicy=Sometimes"])
        .expect_err("the schema refuses an unknown failurePolicy");
    assert!(err.contains("failurePolicy"), "{err}");

    // Before Kubernetes 1.28 there are no matchConditions: left out, not refused.
    let out = helm::helm(&[
        "template",
        "gs",
        &helm::chart_dir().display().to_string(),
        "--namespace",
        helm::NAMESPACE,
        "--kube-version",
        "1.27.0",
        "--set",
        "clusterName=x",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs = helm::parse_docs(&String::from_utf8_lossy(&out.stdout));
    assert!(
        mutating_webhook(&docs, "1.27")
            .get("matchConditions")
            .is_none()
    );
}

#[test]
fn webhook_off_renders_no_webhook_objects() {
    let ctx = "ci/webhook-off-values.yaml";
    let docs = &rendered("webhook-off-values.yaml").docs;
    assert!(
        docs_of(docs, "MutatingWebhookConfiguration").is_empty(),
        "{ctx}"
    );
    assert!(docs_of(docs, "Secret").is_empty(), "{ctx}");
    assert!(webhook_service(docs).is_none(), "{ctx}");
    let d = deployment(docs, ctx);
    let flags = run_args(d, ctx);
    assert_eq!(arg(&flags, "webhook-port", ctx), "0");
    assert!(!flags.contains_key("webhook-cert-dir"), "{ctx}");
    let c = controller_container(d, ctx);
    assert!(
        !c.to_string().contains("https-webhook"),
        "{ctx}: no webhook port"
    );
    assert!(
        !d.to_string().contains("webhook-tls"),
        "{ctx}: no certificate volume"
    );
}

#[test]
fn cert_manager_issues_the_certificate_and_injects_the_ca() {
    // An existing ClusterIssuer.
    let ctx = "ci/cert-manager-webhook-values.yaml";
    let docs = &rendered("cert-manager-webhook-values.yaml").docs;
    assert!(
        docs_of(docs, "Secret").is_empty(),
        "{ctx}: cert-manager writes the Secret"
    );
    assert!(
        docs_of(docs, "Issuer").is_empty(),
        "{ctx}: the given issuer is used"
    );
    let cert = one(docs, "Certificate", ctx);
    assert_eq!(str_at(cert, "/apiVersion"), "cert-manager.io/v1");
    assert_eq!(
        str_at(cert, "/spec/secretName"),
        mounted_webhook_secret(deployment(docs, ctx), ctx),
        "{ctx}: the pods mount cert-manager's Secret"
    );
    assert_eq!(
        cert["spec"]["issuerRef"],
        json!({"name": "platform-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"})
    );
    let svc = webhook_service(docs).expect("webhook Service");
    let host = format!("{}.{}.svc", name(svc), helm::NAMESPACE);
    assert!(
        strings(cert.pointer("/spec/dnsNames")).contains(&host),
        "{ctx}: the certificate names {host}"
    );
    let mwc = one(docs, "MutatingWebhookConfiguration", ctx);
    assert_eq!(
        str_at(mwc, "/metadata/annotations/cert-manager.io~1inject-ca-from"),
        format!("{}/{}", helm::NAMESPACE, name(cert))
    );
    assert!(
        mutating_webhook(docs, ctx)["clientConfig"]
            .get("caBundle")
            .is_none(),
        "{ctx}: the CA injector fills caBundle"
    );

    // No issuer given: a self-signed CA chain in the release namespace.
    let docs = render_with(&["clusterName=x", "webhook.certManager.enabled=true"]);
    let issuers = docs_of(&docs, "Issuer");
    let certs = docs_of(&docs, "Certificate");
    assert_eq!(
        (issuers.len(), certs.len()),
        (2, 2),
        "self-signed + CA issuers, CA + serving"
    );
    let selfsigned = issuers
        .iter()
        .find(|i| i["spec"].get("selfSigned").is_some())
        .expect("a selfSigned Issuer");
    let ca_cert = certs
        .iter()
        .find(|c| c["spec"]["isCA"] == json!(true))
        .expect("a CA Certificate");
    assert_eq!(str_at(ca_cert, "/spec/issuerRef/name"), name(selfsigned));
    let ca_issuer = issuers
        .iter()
        .find(|i| str_at(i, "/spec/ca/secretName") == str_at(ca_cert, "/spec/secretName"))
        .expect("an Issuer of the CA's Secret");
    let serving = certs
        .iter()
        .find(|c| c["spec"]["isCA"] != json!(true))
        .expect("the serving Certificate");
    assert_eq!(str_at(serving, "/spec/issuerRef/name"), name(ca_issuer));
    assert_eq!(str_at(serving, "/spec/issuerRef/kind"), "Issuer");
}

/// Renders a copy of the chart in which `lookup` of the webhook Secret returns `existing`
/// (a Helm dict literal): `helm template` never reaches a cluster, so this is how the
/// reuse branch of gpu-slicer.webhookCerts is exercised.
fn render_with_existing_secret(existing: &str) -> Vec<Value> {
    let dir = helm::scratch("lookup");
    let copy = dir.join("gpu-slicer");
    let status = Command::new("cp")
        .args([
            "-r",
            &helm::chart_dir().display().to_string(),
            &copy.display().to_string(),
        ])
        .status()
        .expect("cp");
    assert!(status.success());
    let helpers = copy.join("templates/_helpers.tpl");
    let text = std::fs::read_to_string(&helpers).expect("helpers");
    let call = r#"(lookup "v1" "Secret" .Release.Namespace $secret)"#;
    assert_eq!(
        text.matches("lookup ").count(),
        1,
        "the chart has one lookup, of the webhook Secret"
    );
    assert!(text.contains(call), "_helpers.tpl no longer has {call}");
    std::fs::write(&helpers, text.replace(call, existing)).expect("write helpers");
    let out = helm::helm(&[
        "template",
        helm::RELEASE,
        &copy.display().to_string(),
        "--namespace",
        helm::NAMESPACE,
        "--kube-version",
        helm::KUBE_VERSION,
        "--set",
        "clusterName=x",
    ]);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    helm::parse_docs(&String::from_utf8_lossy(&out.stdout))
}

#[test]
fn the_generated_certificate_is_kept_when_the_secret_exists() {
    let data = |docs: &[Value]| one(docs, "Secret", "lookup")["data"].clone();
    let ca_bundle =
        |docs: &[Value]| mutating_webhook(docs, "lookup")["clientConfig"]["caBundle"].clone();
    // Nothing to look up (helm template, a first install): a new CA every time, and the
    // caBundle of the same rendering is that CA.
    let a = render_with(&["clusterName=x"]);
    let b = render_with(&["clusterName=x"]);
    assert_ne!(
        data(&a)["ca.crt"],
        data(&b)["ca.crt"],
        "fresh certificates per install"
    );
    assert_eq!(ca_bundle(&a), data(&a)["ca.crt"]);
    assert_eq!(ca_bundle(&b), data(&b)["ca.crt"]);

    // An upgrade finds the Secret: its certificate and CA are reused, byte for byte.
    let old = data(&a);
    let existing = format!(
        r#"(dict "data" (dict "ca.crt" {:?} "tls.crt" {:?} "tls.key" {:?}))"#,
        str_at(&old, "/ca.crt"),
        str_at(&old, "/tls.crt"),
        str_at(&old, "/tls.key"),
    );
    for _ in 0..2 {
        let docs = render_with_existing_secret(&existing);
        assert_eq!(data(&docs), old, "the existing Secret's data is kept");
        assert_eq!(
            ca_bundle(&docs),
            old["ca.crt"],
            "and the caBundle stays its CA"
        );
    }
    // A Secret without ca.crt (e.g. written by hand) is replaced by a fresh pair.
    let partial = format!(
        r#"(dict "data" (dict "tls.crt" {:?} "tls.key" {:?}))"#,
        str_at(&old, "/tls.crt"),
        str_at(&old, "/tls.key"),
    );
    let docs = render_with_existing_secret(&partial);
    assert_ne!(data(&docs)["tls.crt"], old["tls.crt"]);
    assert_eq!(ca_bundle(&docs), data(&docs)["ca.crt"]);
}
