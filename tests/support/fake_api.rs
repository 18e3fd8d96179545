//! A scripted, in-memory Kubernetes API server behind kube-rs's `tower-test` mock service
//! (the "mocked API server" pattern of kube-rs and controller-rs). It answers server-side
//! apply (PATCH with `application/apply-patch+yaml`), JSON patches, GET, LIST, POST, PUT and
//! DELETE for any resource path, keeps the objects it was given, records every request,
//! and can be told to fail the next requests matching a method and path substring with a
//! status code.
//!
//! Chaos (tests/controller_chaos.rs): a write gate that lets exactly k writes through and
//! then holds the rest unanswered ([`FakeApi::gate_writes`]), a flapping server answering
//! every other request 503 (optionally with `Retry-After`, [`FakeApi::flap`]), slow
//! answers ([`FakeApi::slow_next`]), failures with `Retry-After`, watch scripts per path
//! ([`FakeApi::push_watch_on`]), `generateName` on POST, and a timeline of when each
//! request came and what it was answered ([`FakeApi::timeline`]).
#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

/// When a request came (tokio's clock: simulated under a paused runtime) and the status it
/// was answered (`None`: held, never answered).
#[derive(Debug, Clone)]
pub struct Stamp {
    pub at: tokio::time::Instant,
    pub status: Option<u16>,
}

/// What the write gate does with the write that crosses it (see [`FakeApi::gate_writes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Writes 1..=k are answered; write k+1 (and every later one) is held unapplied.
    HoldBefore,
    /// Writes 1..k-1 are answered; write k is applied but its answer is held (a response
    /// lost on the way back); later writes are held unapplied.
    ApplyThenHold,
}

struct GateState {
    allow: usize,
    passed: usize,
    mode: Gate,
    fired: Arc<tokio::sync::Notify>,
}

struct Failure {
    method: String,
    path_part: String,
    code: u16,
    retry_after: Option<u32>,
    /// The request is applied first (the answer is lost, not the write).
    apply_first: bool,
}

#[derive(Default)]
struct State {
    objects: BTreeMap<String, Value>,
    seen: Vec<Seen>,
    stamps: Vec<Stamp>,
    failures: VecDeque<Failure>,
    next_uid: u64,
    next_rv: u64,
    next_generated: u64,
    /// Scripted answers to watch requests, in order: (path part, events).
    watches: VecDeque<(String, Vec<Value>)>,
    /// Called on every request before it is answered (e.g. to drop the lease).
    hook: Option<Hook>,
    gate: Option<GateState>,
    /// Flapping: every other non-watch request is answered 503 (with this `Retry-After`).
    flap: Option<(u64, Option<u32>)>,
    /// The next n requests are answered this much later (after being applied).
    slow: Option<(usize, Duration)>,
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
        self.fail_next_retry_after(method, path_part, code, None);
    }

    /// [`FakeApi::fail_next`], the answer carrying a `Retry-After: <secs>` header.
    pub fn fail_next_retry_after(
        &self,
        method: &str,
        path_part: &str,
        code: u16,
        retry_after: Option<u32>,
    ) {
        self.lock().failures.push_back(Failure {
            method: method.to_string(),
            path_part: path_part.to_string(),
            code,
            retry_after,
            apply_first: false,
        });
    }

    /// Applies the next request whose method is `method` and whose path contains
    /// `path_part`, then answers it `code` (a write whose answer was lost on the way).
    pub fn fail_next_after_apply(&self, method: &str, path_part: &str, code: u16) {
        self.lock().failures.push_back(Failure {
            method: method.to_string(),
            path_part: path_part.to_string(),
            code,
            retry_after: None,
            apply_first: true,
        });
    }

    /// Lets exactly `k` writes (non-GET requests) through, then holds every later write
    /// unanswered (see [`Gate`]); the returned `Notify` gets a permit when the gate first
    /// holds one. Replaces an earlier gate.
    pub fn gate_writes(&self, k: usize, mode: Gate) -> Arc<tokio::sync::Notify> {
        let fired = Arc::new(tokio::sync::Notify::new());
        self.lock().gate = Some(GateState {
            allow: k,
            passed: 0,
            mode,
            fired: fired.clone(),
        });
        fired
    }

    /// Removes the write gate (writes held so far stay unanswered).
    pub fn ungate(&self) {
        self.lock().gate = None;
    }

    /// Flaps: from now on, every other non-watch request (the first one included) is
    /// answered 503, with `Retry-After: <secs>` when given. `None` stops flapping.
    pub fn flap(&self, on: Option<Option<u32>>) {
        self.lock().flap = on.map(|ra| (0, ra));
    }

    /// The next `n` requests are answered `delay` later (tokio time), after being applied.
    pub fn slow_next(&self, n: usize, delay: Duration) {
        self.lock().slow = Some((n, delay));
    }

    /// Ends every injected fault: queued failures, the gate, flapping, slow answers.
    pub fn clear_faults(&self) {
        let mut st = self.lock();
        st.failures.clear();
        st.gate = None;
        st.flap = None;
        st.slow = None;
    }

    /// Every request seen (as [`FakeApi::seen`]) with when it came and how it was answered.
    pub fn timeline(&self) -> Vec<(Seen, Stamp)> {
        let st = self.lock();
        st.seen
            .iter()
            .cloned()
            .zip(st.stamps.iter().cloned())
            .collect()
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
        let mut st = self.lock();
        st.seen.clear();
        st.stamps.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Scripts the answer to the next watch request: these watch events (newline-delimited
    /// JSON, then the stream ends). Unscripted watches are held open.
    pub fn push_watch(&self, events: Vec<Value>) {
        self.push_watch_on("", events);
    }

    /// [`FakeApi::push_watch`] for the next watch request whose path contains `path_part`.
    pub fn push_watch_on(&self, path_part: &str, events: Vec<Value>) {
        self.lock()
            .watches
            .push_back((path_part.to_string(), events));
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
        let (resp, delay) = self.decide(seen)?;
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        Some(resp)
    }

    /// The answer to a request (`None`: held unanswered) and how long to wait before
    /// sending it.
    fn decide(&self, seen: Seen) -> Option<(Response<Body>, Option<Duration>)> {
        let mut st = self.lock();
        st.seen.push(seen.clone());
        st.stamps.push(Stamp {
            at: tokio::time::Instant::now(),
            status: None,
        });
        // The stamp to fill in once answered (`clear_seen` may run meanwhile).
        let index = st.seen.len() - 1;
        if let Some(mut hook) = st.hook.take() {
            drop(st);
            hook(&seen);
            st = self.lock();
            st.hook = Some(hook);
        }
        let path = seen.path().to_string();
        if seen.method == "GET" && seen.uri.contains("watch=true") {
            let at = st
                .watches
                .iter()
                .position(|(part, _)| path.contains(part.as_str()))?;
            let (_, events) = st.watches.remove(at)?;
            let mut body = Vec::new();
            for e in events {
                body.extend(serde_json::to_vec(&e).unwrap_or_default());
                body.push(b'\n');
            }
            return Some((
                Response::builder()
                    .status(StatusCode::OK)
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(Body::from(body))
                    .unwrap_or_else(|_| Response::new(Body::empty())),
                None,
            ));
        }
        // The write gate: the write that crosses it is held (applied first or not).
        let mut hold_after_apply = false;
        if seen.is_write()
            && let Some(g) = st.gate.as_mut()
        {
            g.passed += 1;
            if g.passed > g.allow || (g.mode == Gate::ApplyThenHold && g.passed == g.allow) {
                g.fired.notify_one();
                if g.passed > g.allow {
                    return None;
                }
                hold_after_apply = true;
            }
        }
        let resp = if let Some(i) = st
            .failures
            .iter()
            .position(|f| f.method == seen.method && path.contains(f.path_part.as_str()))
        {
            let f = st.failures.remove(i).expect("index from position");
            if f.apply_first {
                st.handle(&seen, &path);
            }
            status_after(f.code, "injected failure", f.retry_after)
        } else if let Some((n, ra)) = st.flap.as_mut() {
            *n += 1;
            if *n % 2 == 1 {
                let ra = *ra;
                status_after(503, "flapping", ra)
            } else {
                st.handle(&seen, &path)
            }
        } else {
            st.handle(&seen, &path)
        };
        if hold_after_apply {
            return None;
        }
        let code = resp.status().as_u16();
        let same = st.seen.get(index).is_some_and(|s| s.uri == seen.uri);
        if let Some(s) = st.stamps.get_mut(index).filter(|_| same) {
            s.status = Some(code);
        }
        let delay = match st.slow.as_mut() {
            Some((n, d)) if *n > 0 => {
                *n -= 1;
                Some(*d)
            }
            _ => None,
        };
        Some((resp, delay))
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
                let mut body = seen.body.clone();
                let mut name = body
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                // generateName: a fresh name per create, as the API server does (so a
                // create retried after a lost answer makes a second object).
                if name.is_empty()
                    && let Some(prefix) = body
                        .pointer("/metadata/generateName")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                {
                    self.next_generated += 1;
                    name = format!("{prefix}{:05x}", self.next_generated);
                    if let Some(m) = body.get_mut("metadata").and_then(Value::as_object_mut) {
                        m.insert("name".into(), json!(name));
                    }
                }
                let full = format!("{path}/{name}");
                if self.objects.contains_key(&full) {
                    return status(409, "already exists");
                }
                let obj = self.stamp(body, None);
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
    let plural = gpu_slicer::controller::writer::ApiResources::default()
        .get(api, kind)
        .map_or_else(|| format!("{}s", kind.to_lowercase()), |ar| ar.plural);
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
    status_after(code, message, None)
}

/// A `Status` answer, with a `Retry-After: <secs>` header when given.
fn status_after(code: u16, message: &str, retry_after: Option<u32>) -> Response<Body> {
    let mut resp = status_body(code, message);
    if let Some(secs) = retry_after {
        resp.headers_mut()
            .insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
    }
    resp
}

fn status_body(code: u16, message: &str) -> Response<Body> {
    let reason = match code {
        404 => "NotFound",
        409 => "Conflict",
        422 => "Invalid",
        429 => "TooManyRequests",
        503 => "ServiceUnavailable",
        _ => "InternalError",
    };
    respond(
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": "Failure", "message": message, "reason": reason, "code": code}),
    )
}
