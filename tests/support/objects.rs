//! Kubernetes objects the tests build, as the API server serves them (JSON): a Pod with
//! one container `c` and only what the test sets, e.g.
//! `pod("p").namespace("ml").gpu(1).pending_unschedulable().build()`.

// Each test uses only some of the setters.
#![allow(dead_code)]

use serde_json::{Value, json};

/// A v1 Pod named `name`, with one container `c` and nothing else set.
pub fn pod(name: &str) -> PodBuilder {
    PodBuilder {
        pod: json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "resources": {}}]}}),
    }
}

/// A Pod under construction; [`PodBuilder::build`] gives its JSON.
#[derive(Debug, Clone)]
pub struct PodBuilder {
    pod: Value,
}

impl PodBuilder {
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.pod["metadata"]["namespace"] = json!(namespace);
        self
    }

    /// `metadata.annotations`, as given (an empty object stays one).
    pub fn annotations(mut self, annotations: Value) -> Self {
        self.pod["metadata"]["annotations"] = annotations;
        self
    }

    /// One owner reference, the controller (e.g. the ReplicaSet of a Deployment's pod).
    pub fn controlled_by(mut self, api_version: &str, kind: &str, name: &str, uid: &str) -> Self {
        self.pod["metadata"]["ownerReferences"] = json!([{"apiVersion": api_version,
            "kind": kind, "name": name, "uid": uid, "controller": true}]);
        self
    }

    /// The container's image.
    pub fn image(mut self, image: &str) -> Self {
        self.container()["image"] = json!(image);
        self
    }

    /// The container's `resources`, as given (replaces requests and limits set so far).
    pub fn resources(mut self, resources: Value) -> Self {
        self.container()["resources"] = resources;
        self
    }

    /// The container's CPU and memory requests.
    pub fn requests(mut self, cpu: &str, memory: &str) -> Self {
        self.container()["resources"]["requests"] = json!({"cpu": cpu, "memory": memory});
        self
    }

    /// `nvidia.com/gpu: "<n>"` in the container's limits.
    pub fn gpu(mut self, n: u32) -> Self {
        self.container()["resources"]["limits"]["nvidia.com/gpu"] = json!(n.to_string());
        self
    }

    /// Bound to `node` (`spec.nodeName`).
    pub fn node(mut self, node: &str) -> Self {
        self.pod["spec"]["nodeName"] = json!(node);
        self
    }

    /// Pending and unschedulable: what the scheduler reports for a pod no node fits.
    pub fn pending_unschedulable(mut self) -> Self {
        self.pod["status"] = json!({"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]});
        self
    }

    /// Running since `start_time` (RFC 3339).
    pub fn running_since(mut self, start_time: &str) -> Self {
        self.pod["status"] = json!({"phase": "Running", "startTime": start_time});
        self
    }

    pub fn build(self) -> Value {
        self.pod
    }

    fn container(&mut self) -> &mut Value {
        &mut self.pod["spec"]["containers"][0]
    }
}
