//! helm lint, the values schema, and every rendered object against the Kubernetes
//! schemas and the k8s-openapi types.

use super::*;

// ---------------------------------------------------------------------------------------
// 1. helm lint
// ---------------------------------------------------------------------------------------

/// What `helm template` / `helm install` say without `clusterName` (the `required` in
/// gpu-slicer.args).
const CLUSTER_NAME_REQUIRED: &str = "clusterName is required";

#[test]
fn lint_strict_passes_with_defaults_and_every_ci_values_file() {
    // The defaults: Helm lints `required` leniently (a warning, as chart-testing expects);
    // the schema lets the empty default through so that this is the message users see.
    let out = helm::lint(&[], &[])
        .unwrap_or_else(|e| panic!("helm lint --strict on the defaults failed:\n{e}"));
    assert!(
        out.contains(CLUSTER_NAME_REQUIRED),
        "helm lint on the defaults must warn that clusterName is missing:\n{out}"
    );
    // ... but nothing renders or installs without it, and the message names it.
    let err = helm::template(&[], &[]).expect_err("helm template without clusterName must fail");
    assert!(err.contains(CLUSTER_NAME_REQUIRED), "{err}");
    helm::lint(&[], &["clusterName=x"])
        .unwrap_or_else(|e| panic!("helm lint --strict --set clusterName=x failed:\n{e}"));
    let files = helm::ci_values_files();
    assert!(files.len() >= 8, "only {} ci values files", files.len());
    for f in files {
        helm::lint(&[f.as_path()], &[])
            .unwrap_or_else(|e| panic!("helm lint --strict -f {}:\n{e}", f.display()));
    }
}

#[test]
fn schema_and_template_refuse_bad_values() {
    // (settings, what the error must mention)
    let cases: &[(&[&str], &str)] = &[
        (&["clusterName=x", "replicaCount=0"], "replicaCount"),
        (&["clusterName=x", "cluserName=y"], "cluserName"),
        (&["clusterName=-bad"], "clusterName"),
        (&["clusterName=x", "strategy.type=Sometimes"], "strategy"),
        (
            &["clusterName=x", "extraVolumeMounts[0].name=a"],
            "mountPath",
        ),
        (&["clusterName=x", "render.emission=v2"], "emission"),
        (&["clusterName=x", "render.amiFamily=ubuntu"], "amiFamily"),
        (
            &["clusterName=x", "planner.capacityType=reserved"],
            "capacityType",
        ),
        (&["clusterName=x", "planner.effort=medium"], "effort"),
        (&["clusterName=x", "planner.gap=1.5"], "gap"),
        (
            &["clusterName=x", "planner.planDeadline=soon"],
            "planDeadline",
        ),
        (&["clusterName=x", "controller.logFormat=xml"], "logFormat"),
        (&["clusterName=x", "aws.livePrices=sometimes"], "livePrices"),
        (&["clusterName=x", "aws.maxAttempts=0"], "maxAttempts"),
        (
            &["clusterName=x", "controller.resyncPeriod=often"],
            "resyncPeriod",
        ),
        (&["clusterName=x", "planner.maxReplicas=49"], "maxReplicas"),
        (&["clusterName=x", "repack.minSaving=1.5"], "minSaving"),
        (
            &["clusterName=x", "repack.maxNodesPerHour=0"],
            "maxNodesPerHour",
        ),
        (&["clusterName=x", "repack.readyTimeout=0s"], "readyTimeout"),
        (&["clusterName=x", "planner.replicas=many"], "replicas"),
        (&["clusterName=x", "metrics.port=0"], "port"),
        (&["clusterName=x", "image.digest=latest"], "digest"),
        (
            &["clusterName=x", "serviceAccount.roleArn=gpu-slicer"],
            "roleArn",
        ),
        (&["clusterName=x", "controller.typo=1"], "typo"),
        (
            &["clusterName=x", "render.karpenterVersion=1"],
            "karpenterVersion",
        ),
        (
            &[
                "clusterName=x",
                "aws.priceCache.enabled=true",
                "aws.noPriceCache=true",
            ],
            "/aws",
        ),
    ];
    for (sets, needle) in cases {
        let err = match helm::lint(&[], sets) {
            Ok(out) => panic!("helm lint --set {sets:?} passed but must fail:\n{out}"),
            Err(e) => e,
        };
        assert!(
            err.contains(needle),
            "helm lint --set {sets:?} failed without naming {needle:?}:\n{err}"
        );
    }
    // helm template applies the same schema (checked for a few; each call costs 0.1 s).
    for (sets, _) in &cases[..3] {
        assert!(
            helm::template(&[], sets).is_err(),
            "helm template --set {sets:?} must fail too"
        );
    }
    // Past the schema, the templates' own checks.
    let template_cases: &[(&[&str], &str)] = &[
        (&["--skip-schema-validation"], "clusterName is required"),
        (
            &["clusterName=x", "leaderElection.identity=fixed"],
            "leaderElection.identity",
        ),
        (
            &["clusterName=x", "serviceAccount.create=false"],
            "serviceAccount.name",
        ),
        (
            &[
                "clusterName=x",
                "serviceMonitor.enabled=true",
                "service.enabled=false",
            ],
            "service.enabled",
        ),
        (
            &[
                "clusterName=x",
                "planner.catalog.csv=a",
                "planner.catalog.existingConfigMap=b",
            ],
            "not both",
        ),
        // `run --capacity-type spot --live-prices=false` exits at once without spot prices
        // in its catalog (with live prices they come from EC2).
        (
            &[
                "clusterName=x",
                "planner.capacityType=spot",
                "aws.livePrices=false",
            ],
            "spot_usd_per_hour",
        ),
        (
            &[
                "clusterName=x",
                "planner.capacityType=spot",
                "aws.livePrices=false",
                "planner.catalog.csv=instance_type",
            ],
            "spot_usd_per_hour",
        ),
    ];
    for (sets, needle) in template_cases {
        let (flags, sets): (Vec<&str>, Vec<&str>) = sets.iter().partition(|s| s.starts_with("--"));
        let err = match template_raw(&flags, &sets) {
            Ok(_) => panic!("helm template {flags:?} --set {sets:?} must fail"),
            Err(e) => e,
        };
        assert!(
            err.contains(needle),
            "helm template {flags:?} --set {sets:?} failed without naming {needle:?}:\n{err}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 2. Every rendered object: schema, types, namespaces
// ---------------------------------------------------------------------------------------

const CLUSTER_SCOPED: &[&str] = &[
    "ClusterRole",
    "ClusterRoleBinding",
    "MutatingWebhookConfiguration",
];

#[test]
fn rendered_objects_pass_kubernetes_validate_and_k8s_openapi() {
    for r in renderings() {
        let mut builtin = Vec::new();
        for d in &r.docs {
            let what = format!("ci/{}: {}", r.file, describe(d));
            // kubectl apply -f of the rendered output must land in the right namespaces.
            let ns = str_at(d, "/metadata/namespace");
            if CLUSTER_SCOPED.contains(&kind(d)) {
                assert!(
                    ns.is_empty(),
                    "{what}: a cluster-scoped object has a namespace"
                );
            } else {
                assert!(!ns.is_empty(), "{what}: no explicit metadata.namespace");
            }
            if CRD_KINDS.contains(&kind(d)) {
                continue;
            }
            typed(d).unwrap_or_else(|e| panic!("{what}: not a valid k8s-openapi object: {e}"));
            builtin.push(d);
        }
        helm::kubernetes_validate(&builtin).unwrap_or_else(|e| panic!("ci/{}: {e}", r.file));
    }
}

#[test]
fn kubernetes_validate_rejects_a_broken_deployment() {
    let docs = &rendered("minimal-values.yaml").docs;
    let good = deployment(docs, "minimal").clone();
    helm::kubernetes_validate(&[&good]).expect("the rendered Deployment passes");

    let mut bad = good.clone();
    bad["spec"]["replicas"] = json!("two");
    let err = helm::kubernetes_validate(&[&bad])
        .expect_err("kubernetes-validate must reject replicas: \"two\"");
    assert!(err.contains("replicas"), "{err}");

    let mut unknown = good;
    unknown["spec"]["template"]["spec"]["containers"][0]["runAsRoot"] = json!(true);
    let err = helm::kubernetes_validate(&[&unknown])
        .expect_err("kubernetes-validate --strict must reject an unknown field");
    assert!(err.contains("runAsRoot"), "{err}");
}
