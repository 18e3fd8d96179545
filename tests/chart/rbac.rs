//! RBAC: least privilege and complete, against the list in tests/support/permissions.rs.

use super::*;
use crate::permissions::ALLOWED;
use crate::permissions::Names::{Any, ConfigMap, Lease};
use crate::permissions::Scope::{Cluster, ConfigMapNs, DevicePluginNs, LeaseNs};

// ---------------------------------------------------------------------------------------
// RBAC
// ---------------------------------------------------------------------------------------

/// One granted permission: (namespace or "" for cluster-wide, apiGroup, resource, verb,
/// resourceNames).
type Grant = (String, String, String, String, Vec<String>);

fn grants_of(role: &Value, what: &str) -> Vec<Grant> {
    assert!(
        role.get("aggregationRule").is_none(),
        "{what}: aggregationRule would pull in other roles' rules"
    );
    let ns = str_at(role, "/metadata/namespace").to_string();
    let rules = role
        .get("rules")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("{what}: no rules"));
    let mut out = Vec::new();
    for rule in rules {
        assert!(
            rule.get("nonResourceURLs").is_none(),
            "{what}: nonResourceURLs in {rule}"
        );
        let groups = strings(rule.get("apiGroups"));
        let resources = strings(rule.get("resources"));
        let verbs = strings(rule.get("verbs"));
        let names = strings(rule.get("resourceNames"));
        assert!(
            !groups.is_empty() && !resources.is_empty() && !verbs.is_empty(),
            "{what}: incomplete rule {rule}"
        );
        for s in groups.iter().chain(&resources).chain(&verbs).chain(&names) {
            assert!(!s.contains('*'), "{what}: wildcard {s:?} in {rule}");
        }
        for r in &resources {
            assert!(
                !r.starts_with("secrets"),
                "{what}: a rule on {r} (nothing on secrets): {rule}"
            );
        }
        for g in &groups {
            for r in &resources {
                for v in &verbs {
                    out.push((ns.clone(), g.clone(), r.clone(), v.clone(), names.clone()));
                }
            }
        }
    }
    out
}

/// Checks the RBAC objects of one rendering against ALLOWED; returns the grants.
fn check_rbac(docs: &[Value], ctx: &str) -> BTreeSet<Grant> {
    let deploy = deployment(docs, ctx);
    let flags = run_args(deploy, ctx);
    let dp_ns = arg(&flags, "device-plugin-namespace", ctx);
    let cm_ns = arg(&flags, "configmap-namespace", ctx);
    let cm_name = arg(&flags, "configmap-name", ctx);
    let lease_ns = arg(&flags, "lease-namespace", ctx);
    let lease_name = arg(&flags, "lease-name", ctx);
    let sa = str_at(deploy, "/spec/template/spec/serviceAccountName");
    let release_ns = str_at(deploy, "/metadata/namespace");

    // The allowed set, resolved against this rendering's namespaces and names.
    let mut allowed: BTreeSet<Grant> = BTreeSet::new();
    for (scope, group, resources, verbs, names) in ALLOWED {
        let ns = match scope {
            Cluster => "",
            DevicePluginNs => dp_ns,
            ConfigMapNs => cm_ns,
            LeaseNs => lease_ns,
        };
        let names: Vec<String> = match names {
            Any => vec![],
            ConfigMap => vec![cm_name.to_string()],
            Lease => vec![lease_name.to_string()],
        };
        for r in *resources {
            for v in *verbs {
                allowed.insert((
                    ns.to_string(),
                    group.to_string(),
                    r.to_string(),
                    v.to_string(),
                    names.clone(),
                ));
            }
        }
    }
    // A grant without names is allowed only where the list allows it without names; one
    // with names where the list allows it with exactly those names (or without any).
    let permitted = |g: &Grant| {
        allowed.contains(g) || {
            let mut unnamed = g.clone();
            unnamed.4.clear();
            allowed.contains(&unnamed)
        }
    };

    let mut granted = BTreeSet::new();
    let roles: Vec<&Value> = docs
        .iter()
        .filter(|d| matches!(kind(d), "ClusterRole" | "Role"))
        .collect();
    for role in &roles {
        let what = format!("{ctx}: {}", describe(role));
        for g in grants_of(role, &what) {
            assert!(
                permitted(&g),
                "{what} grants {g:?}, which is not in the issue's list (ALLOWED in tests/support/permissions.rs)"
            );
            granted.insert(g);
        }
        // Bound to the controller's ServiceAccount, by a binding of the same scope.
        let binding_kind = if kind(role) == "ClusterRole" {
            "ClusterRoleBinding"
        } else {
            "RoleBinding"
        };
        let bound = docs.iter().any(|b| {
            kind(b) == binding_kind
                && str_at(b, "/metadata/namespace") == str_at(role, "/metadata/namespace")
                && str_at(b, "/roleRef/kind") == kind(role)
                && str_at(b, "/roleRef/name") == name(role)
                && b.get("subjects")
                    .and_then(Value::as_array)
                    .is_some_and(|s| {
                        s.iter().any(|s| {
                            str_at(s, "/kind") == "ServiceAccount"
                                && str_at(s, "/name") == sa
                                && str_at(s, "/namespace") == release_ns
                        })
                    })
        });
        assert!(
            bound,
            "{what}: no {binding_kind} binds it to ServiceAccount {release_ns}/{sa}"
        );
    }
    // Bindings refer only to the chart's own roles (never e.g. cluster-admin).
    for b in docs
        .iter()
        .filter(|d| matches!(kind(d), "ClusterRoleBinding" | "RoleBinding"))
    {
        let target = roles.iter().any(|r| {
            kind(r) == str_at(b, "/roleRef/kind")
                && name(r) == str_at(b, "/roleRef/name")
                && (kind(r) == "ClusterRole"
                    || str_at(r, "/metadata/namespace") == str_at(b, "/metadata/namespace"))
        });
        assert!(
            target,
            "{ctx}: {} binds a role the chart does not define",
            describe(b)
        );
    }
    // Nothing the controller needs is missing.
    let missing: Vec<&Grant> = allowed.iter().filter(|a| !granted.contains(*a)).collect();
    assert!(
        missing.is_empty(),
        "{ctx}: the chart does not grant what the controller needs: {missing:#?}"
    );
    granted
}

#[test]
fn rbac_is_least_privilege_and_complete() {
    for r in renderings() {
        let ctx = format!("ci/{}", r.file);
        check_rbac(&r.docs, &ctx);
    }
    // The default namespaces: one ConfigMap Role in kube-system, the Lease in the release's.
    let docs = &rendered("minimal-values.yaml").docs;
    let roles = docs_of(docs, "Role");
    let namespaces: BTreeSet<&str> = roles
        .iter()
        .map(|r| str_at(r, "/metadata/namespace"))
        .collect();
    assert_eq!(
        namespaces,
        BTreeSet::from(["kube-system", helm::NAMESPACE]),
        "Roles by default: ConfigMaps in kube-system, the Lease in the release namespace"
    );
    // A separate ConfigMap namespace: read-only in the device plugin's, write in its own.
    let docs = &rendered("every-flag-values.yaml").docs;
    let granted = check_rbac(docs, "ci/every-flag-values.yaml");
    let writes_in = |ns: &str| {
        granted.iter().any(|g| {
            g.0 == ns && g.2 == "configmaps" && g.3 != "get" && g.3 != "list" && g.3 != "watch"
        })
    };
    assert!(
        !writes_in("nvidia-device-plugin"),
        "no ConfigMap writes in the device plugin's namespace"
    );
    assert!(
        writes_in("gpu-operator"),
        "ConfigMap writes where gpu-slicer writes its ConfigMap"
    );
    // rbac.create=false renders no RBAC at all.
    let docs = render_with(&["clusterName=x", "rbac.create=false"]);
    assert!(
        docs.iter()
            .all(|d| !str_at(d, "/apiVersion").starts_with("rbac.authorization.k8s.io/")),
        "rbac.create=false still renders RBAC objects"
    );
}

#[test]
fn rbac_check_bites() {
    // A copy of the default rendering with one extra verb, a wildcard and a secret rule.
    let docs = &rendered("minimal-values.yaml").docs;
    let tamper = |f: &dyn Fn(&mut Value)| {
        let mut docs = docs.clone();
        let cr = docs
            .iter_mut()
            .find(|d| kind(d) == "ClusterRole")
            .expect("ClusterRole");
        f(cr);
        std::panic::catch_unwind(|| check_rbac(&docs, "tampered")).is_err()
    };
    assert!(tamper(&|cr| cr["rules"][0]["verbs"]
        .as_array_mut()
        .expect("verbs")
        .push(json!("delete"))));
    assert!(tamper(&|cr| cr["rules"][0]["resources"] = json!(["*"])));
    assert!(tamper(&|cr| cr["rules"]
        .as_array_mut()
        .expect("rules")
        .push(
            json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]})
        )));
    assert!(tamper(&|cr| cr["rules"]
        .as_array_mut()
        .expect("rules")
        .push(
            json!({"nonResourceURLs": ["/metrics"], "verbs": ["get"]})
        )));
    // Dropping a needed permission fails too.
    assert!(tamper(&|cr| {
        cr["rules"].as_array_mut().expect("rules").remove(1);
    }));
}
