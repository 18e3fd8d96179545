//! A scripted, in-memory Kubernetes API server behind kube-rs's `tower-test` mock service
//! (the "mocked API server" pattern of kube-rs and controller-rs). It answers server-side
//! apply (PATCH with `application/apply-patch+yaml`), JSON patches, GET, LIST, POST, PUT and
//! DELETE for any resource path, keeps the objects it was given, records every request,
//! and can be told to fail the next requests matching a method and path substring with a
//! status code.
#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use http::{Request, Response, StatusCode};
use kube::client::Body;
use serde_json::{Value, json};

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path and query.
    pub uri: String,
    pub content_type: String,
    pub body: Value,
}

impl Seen {
    pub fn path(&self) -> &str {
        self.uri.split('?').next().unwrap_or_default()
    }
    pub fn is_write(&self) -> bool {
        self.method != "GET"
    }
}

/// Called on every request before it is answered.
type Hook = Box<dyn FnMut(&Seen) + Send>;

#[derive(Default)]
struct State {
    objects: BTreeMap<String, Value>,
    seen: Vec<Seen>,
    failures: VecDeque<(String, String, u16)>,
    next_uid: u64,
    next_rv: u64,
    /// Scripted answers to watch requests, in order.
    watches: VecDeque<Vec<Value>>,
    /// Called on every request before it is answered (e.g. to drop the lease).
    hook: Option<Hook>,
}

/// Handle to the fake server's state.
#[derive(Clone, Default)]
pub struct FakeApi(Arc<Mutex<State>>);

impl FakeApi {
    /// A kube `Client` served by this fake. Spawns the server task on the current runtime.
    pub fn client(&self) -> kube::Client {
        let (svc, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let me = self.clone();
        tokio::spawn(async move {
            // Watches with nothing scripted are held open: never answered, as a quiet watch.
            let mut held = Vec::new();
            while let Some((req, send)) = handle.next_request().await {
                match me.answer(req).await {
                    Some(resp) => send.send_response(resp),
                    None => held.push(send),
                }
            }
        });
        kube::Client::new(svc, "default")
    }

    /// Fail the next request whose method is `method` and whose path contains `path_part`.
    pub fn fail_next(&self, method: &str, path_part: &str, code: u16) {
        self.lock()
            .failures
            .push_back((method.to_string(), path_part.to_string(), code));
    }

    pub fn on_request(&self, f: impl FnMut(&Seen) + Send + 'static) {
        self.lock().hook = Some(Box::new(f));
    }

    /// Stores an object as if it existed in the cluster (at its canonical path).
    pub fn insert(&self, obj: Value) {
        let path = object_path(&obj).expect("object has apiVersion, kind, name");
        let mut st = self.lock();
        let stamped = st.stamp(obj, None);
        st.objects.insert(path, stamped);
    }

    /// Replaces a stored object as an update would: same uid and creation time, a new
    /// resourceVersion (e.g. Karpenter writing a NodeClaim's status).
    pub fn update(&self, obj: Value) {
        let path = object_path(&obj).expect("object has apiVersion, kind, name");
        let mut st = self.lock();
        let old = st.objects.get(&path).cloned();
        let stamped = st.stamp(obj, old.as_ref());
        st.objects.insert(path, stamped);
    }

    /// Stores a document at a path as it is (discovery documents such as `/apis`).
    pub fn insert_at(&self, path: &str, doc: Value) {
        self.lock().objects.insert(path.to_string(), doc);
    }

    /// Removes an object (as if someone deleted it).
    pub fn remove(&self, path: &str) {
        self.lock().objects.remove(path);
    }

    pub fn objects(&self) -> Vec<Value> {
        self.lock().objects.values().cloned().collect()
    }

    pub fn get(&self, path: &str) -> Option<Value> {
        self.lock().objects.get(path).cloned()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.lock().seen.clone()
    }

    pub fn writes(&self) -> Vec<Seen> {
        self.seen().into_iter().filter(Seen::is_write).collect()
    }

    pub fn clear_seen(&self) {
        self.lock().seen.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Scripts the answer to the next watch request: these watch events (newline-delimited
    /// JSON, then the stream ends). Unscripted watches are held open.
    pub fn push_watch(&self, events: Vec<Value>) {
        self.lock().watches.push_back(events);
    }

    async fn answer(&self, req: Request<Body>) -> Option<Response<Body>> {
        let (parts, body) = req.into_parts();
        let bytes = http_body_util::BodyExt::collect(body)
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        let content_type = parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                let text = String::from_utf8_lossy(&bytes);
                serde_saphyr::from_str(&text).unwrap_or(Value::Null)
            })
        };
        let seen = Seen {
            method: parts.method.to_string(),
            uri: parts.uri.to_string(),
            content_type,
            body,
        };
        let mut st = self.lock();
        st.seen.push(seen.clone());
        if let Some(mut hook) = st.hook.take() {
            drop(st);
            hook(&seen);
            st = self.lock();
            st.hook = Some(hook);
        }
        let path = seen.path().to_string();
        if seen.method == "GET" && seen.uri.contains("watch=true") {
            let events = st.watches.pop_front()?;
            let mut body = Vec::new();
            for e in events {
                body.extend(serde_json::to_vec(&e).unwrap_or_default());
                body.push(b'\n');
            }
            return Some(
                Response::builder()
                    .status(StatusCode::OK)
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(Body::from(body))
                    .unwrap_or_else(|_| Response::new(Body::empty())),
            );
        }
        if let Some(i) = st
            .failures
            .iter()
            .position(|(m, p, _)| *m == seen.method && path.contains(p.as_str()))
        {
            let (_, _, code) = st.failures.remove(i).expect("index from position");
            return Some(status(code, "injected failure"));
        }
        Some(st.handle(&seen, &path))
    }
}

impl State {
    fn stamp(&mut self, mut obj: Value, old: Option<&Value>) -> Value {
        self.next_rv += 1;
        let uid = match old.and_then(|o| o.pointer("/metadata/uid")).cloned() {
            Some(u) => u,
            None => {
                self.next_uid += 1;
                json!(format!("uid-{}", self.next_uid))
            }
        };
        let created = old
            .and_then(|o| o.pointer("/metadata/creationTimestamp"))
            .cloned();
        if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            m.insert("uid".into(), uid);
            m.insert("resourceVersion".into(), json!(self.next_rv.to_string()));
            // Kept across updates; a new object is created now (unless it says when).
            match created {
                Some(c) => {
                    m.insert("creationTimestamp".into(), c);
                }
                None => {
                    m.entry("creationTimestamp").or_insert_with(|| {
                        let now = k8s_openapi::jiff::Timestamp::now().as_second();
                        let t = k8s_openapi::jiff::Timestamp::from_second(now).unwrap_or_default();
                        json!(t.to_string())
                    });
                }
            }
        }
        obj
    }

    fn handle(&mut self, seen: &Seen, path: &str) -> Response<Body> {
        match seen.method.as_str() {
            "GET" => match self.objects.get(path) {
                Some(o) => ok(o),
                None => {
                    // A collection: every object under the path (for a cluster-wide list of
                    // a namespaced kind, in every namespace).
                    let prefix = format!("{path}/");
                    let (base, plural) = path.rsplit_once('/').unwrap_or(("", ""));
                    let in_ns = |k: &str| {
                        k.strip_prefix(&format!("{base}/namespaces/"))
                            .and_then(|rest| rest.split_once('/'))
                            .and_then(|(_, rest)| rest.strip_prefix(&format!("{plural}/")))
                            .is_some_and(|name| !name.contains('/'))
                    };
                    let items: Vec<Value> = self
                        .objects
                        .iter()
                        .filter(|(k, _)| {
                            (k.starts_with(&prefix) && !k[prefix.len()..].contains('/')) || in_ns(k)
                        })
                        .map(|(_, v)| v.clone())
                        .collect();
                    if items.is_empty() && !is_collection(path) {
                        return status(404, "not found");
                    }
                    ok(&json!({"apiVersion": "v1", "kind": "List",
                               "metadata": {"resourceVersion": self.next_rv.to_string()},
                               "items": items}))
                }
            },
            "PATCH" if seen.content_type.contains("apply-patch") => {
                let old = self.objects.get(path).cloned();
                let obj = self.stamp(seen.body.clone(), old.as_ref());
                self.objects.insert(path.to_string(), obj.clone());
                ok(&obj)
            }
            "PATCH" if seen.content_type.contains("json-patch") => {
                let Some(mut obj) = self.objects.get(path).cloned() else {
                    return status(404, "not found");
                };
                let patch: json_patch::Patch = match serde_json::from_value(seen.body.clone()) {
                    Ok(p) => p,
                    Err(e) => return status(400, &e.to_string()),
                };
                if let Err(e) = json_patch::patch(&mut obj, &patch) {
                    return status(422, &e.to_string());
                }
                let obj = self.stamp(obj, None);
                self.objects.insert(path.to_string(), obj.clone());
                ok(&obj)
            }
            "POST" => {
                let name = seen
                    .body
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let full = format!("{path}/{name}");
                if self.objects.contains_key(&full) {
                    return status(409, "already exists");
                }
                let obj = self.stamp(seen.body.clone(), None);
                self.objects.insert(full, obj.clone());
                respond(StatusCode::CREATED, &obj)
            }
            "PUT" => {
                let Some(old) = self.objects.get(path).cloned() else {
                    return status(404, "not found");
                };
                let want = seen.body.pointer("/metadata/resourceVersion");
                if want.is_some() && want != old.pointer("/metadata/resourceVersion") {
                    return status(409, "the object has been modified");
                }
                let obj = self.stamp(seen.body.clone(), Some(&old));
                self.objects.insert(path.to_string(), obj.clone());
                ok(&obj)
            }
            "DELETE" => {
                let Some(old) = self.objects.get(path).cloned() else {
                    return status(404, "not found");
                };
                let want = seen.body.pointer("/preconditions/uid");
                if want.is_some_and(|w| !w.is_null()) && want != old.pointer("/metadata/uid") {
                    return status(409, "precondition failed: uid");
                }
                self.objects.remove(path);
                ok(&old)
            }
            _ => status(405, "method not allowed"),
        }
    }
}

fn is_collection(path: &str) -> bool {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts.first() {
        Some(&"api") => matches!(parts.len(), 3 | 5),
        Some(&"apis") => matches!(parts.len(), 4 | 6),
        _ => false,
    }
}

/// The REST path of an object.
pub fn object_path(obj: &Value) -> Option<String> {
    let api = obj.get("apiVersion")?.as_str()?;
    let kind = obj.get("kind")?.as_str()?;
    let name = obj.pointer("/metadata/name")?.as_str()?;
    let ns = obj.pointer("/metadata/namespace").and_then(Value::as_str);
    let plural = gpu_slicer::controller::writer::plural(kind)
        .map(str::to_string)
        .unwrap_or_else(|| format!("{}s", kind.to_lowercase()));
    let base = if api.contains('/') {
        format!("/apis/{api}")
    } else {
        format!("/api/{api}")
    };
    Some(match ns {
        Some(ns) => format!("{base}/namespaces/{ns}/{plural}/{name}"),
        None => format!("{base}/{plural}/{name}"),
    })
}

fn ok(v: &Value) -> Response<Body> {
    respond(StatusCode::OK, v)
}

fn respond(code: StatusCode, v: &Value) -> Response<Body> {
    Response::builder()
        .status(code)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::to_vec(v).unwrap_or_default()))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

fn status(code: u16, message: &str) -> Response<Body> {
    let reason = match code {
        404 => "NotFound",
        409 => "Conflict",
        422 => "Invalid",
        429 => "TooManyRequests",
        _ => "InternalError",
    };
    respond(
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": "Failure", "message": message, "reason": reason, "code": code}),
    )
}
