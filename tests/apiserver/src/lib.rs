//! An in-process kube-apiserver for tests. It serves the responses a real
//! kube-apiserver 1.28.7 gave (`shared/fixtures/kube-apiserver-1.28`) byte
//! for byte, with their status and content type; what was not recorded
//! (other pages, generated objects) it answers from its object store in the
//! recorded shapes. It keeps a log of every request so tests can count them.
//!
//! Tokens: `admin-token` is `realkube-admin`, `restricted-token` is
//! `realkube-restricted` (may read pods in `shop` only); anything else is 401.

pub mod generate;
pub mod recordings;
pub mod store;
pub mod validate;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::Response;
use serde_json::{Value, json};
use sonde::kube::selector::{FieldSelector, LabelSelector};

use recordings::{AcceptKind, Recording, RequestKey, parse_query};
use store::{Resource, Store, continue_token, parse_continue, status, with_type};

pub const ADMIN_TOKEN: &str = "admin-token";
pub const RESTRICTED_TOKEN: &str = "restricted-token";
const ADMIN: &str = "realkube-admin";
const RESTRICTED: &str = "realkube-restricted";

/// One request the server received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub user: String,
    pub status: u16,
}

/// What open watches hear: an event line for a resource, or the order to close.
#[derive(Debug, Clone)]
enum WatchSignal {
    Event {
        group: String,
        plural: String,
        namespace: Option<String>,
        line: Bytes,
    },
    CloseAll,
}

struct State {
    recordings: HashMap<RequestKey, Recording>,
    events: tokio::sync::broadcast::Sender<WatchSignal>,
    /// Watches from a resourceVersion below this get 410 Expired (the watch cache moved on).
    oldest_rv: Mutex<u64>,
    /// Requests left before an automatic `expire_watches`.
    expire_countdown: Mutex<Option<usize>>,
    /// Answers to give before any other: (status, Retry-After seconds), oldest first.
    injected: Mutex<std::collections::VecDeque<u16>>,
    /// True until the objects change: only then are the recordings the server's state.
    pristine: std::sync::atomic::AtomicBool,
    store: Mutex<Store>,
    log: Mutex<Vec<LoggedRequest>>,
    responses: PathBuf,
}

/// A running fake apiserver on a loopback port.
pub struct FakeApiServer {
    addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

/// The fixture folder beside the repository (`../shared/fixtures/kube-apiserver-1.28`).
pub fn default_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/kube-apiserver-1.28")
}

impl FakeApiServer {
    /// Starts a server over the default fixtures.
    pub async fn start() -> Self {
        Self::start_with(&default_fixtures()).await
    }

    /// Starts a server over the fixtures in `dir`.
    pub async fn start_with(dir: &Path) -> Self {
        let responses = dir.join("responses");
        let state = Arc::new(State {
            recordings: recordings::load(&responses),
            events: tokio::sync::broadcast::channel(1024).0,
            oldest_rv: Mutex::new(0),
            pristine: std::sync::atomic::AtomicBool::new(true),
            injected: Mutex::new(Default::default()),
            expire_countdown: Mutex::new(None),
            store: Mutex::new(Store::seed(&responses)),
            log: Mutex::new(Vec::new()),
            responses,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = serve(listener, state.clone());
        FakeApiServer { addr, state, task }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Writes a kubeconfig for this server (context `fake`, user per token) and returns its path.
    pub fn kubeconfig(&self, dir: &Path, token: &str) -> PathBuf {
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\nclusters:\n- name: fake\n  cluster:\n    server: {}\n\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\nusers:\n- name: fake\n  user:\n    token: {token}\n",
            self.url()
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.state.log.lock().unwrap().clone()
    }

    /// How many requests matched `method` and `path` (exact path, any query).
    pub fn count(&self, method: &str, path: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method == method && r.path == path)
            .count()
    }

    /// After `requests` more requests, the server restarts as `expire_watches` does
    /// (e.g. between the pages of a list).
    pub fn expire_after(&self, requests: usize) {
        *self.state.expire_countdown.lock().unwrap() = Some(requests);
    }

    /// The next requests get these statuses (429 TooManyRequests, 503 ServiceUnavailable, ...)
    /// as `kind: Status` answers, before the server answers normally again.
    pub fn fail_next(&self, statuses: &[u16]) {
        self.state.injected.lock().unwrap().extend(statuses);
    }

    /// Replaces the cluster with a generated one in the recorded shape (`generate::cluster`).
    pub fn generate(&self, workloads: usize, pods: usize) {
        for (group, plural, items) in generate::cluster(&self.state.responses, workloads, pods) {
            self.set_objects(group, plural, items);
        }
    }

    /// Replaces every object of a resource (e.g. 10,000 generated pods).
    pub fn set_objects(&self, group: &str, plural: &str, items: Vec<Value>) {
        self.state
            .pristine
            .store(false, std::sync::atomic::Ordering::SeqCst);
        self.state.store.lock().unwrap().set(group, plural, items);
    }

    /// As after an apiserver restart: open watches end, and a watch from any
    /// resourceVersion seen so far gets `410 Expired`, so clients must relist.
    pub fn expire_watches(&self) {
        self.state
            .pristine
            .store(false, std::sync::atomic::Ordering::SeqCst);
        let mut store = self.state.store.lock().unwrap();
        store.resource_version += 21;
        *self.state.oldest_rv.lock().unwrap() = store.resource_version;
        let _ = self.state.events.send(WatchSignal::CloseAll);
    }

    /// Creates or replaces an object and tells open watches (ADDED or MODIFIED).
    pub fn apply(&self, group: &str, plural: &str, mut object: Value) {
        let mut store = self.state.store.lock().unwrap();
        store.resource_version += 1;
        object["metadata"]["resourceVersion"] = json!(store.resource_version.to_string());
        let Some(resource) = store
            .resources
            .iter()
            .find(|r| r.group == group && r.plural == plural)
            .cloned()
        else {
            panic!("unknown resource {group}/{plural}");
        };
        let key = store::key_of(&object);
        let objects = store
            .objects
            .entry((group.to_string(), plural.to_string()))
            .or_default();
        let kind = if objects.insert(key, object.clone()).is_some() {
            "MODIFIED"
        } else {
            "ADDED"
        };
        notify(&self.state, &resource, kind, &object);
    }

    /// Stops serving: new connections are refused, as when an apiserver goes away.
    pub fn stop(&mut self) {
        self.task.abort();
    }

    /// Serves again on the same address, as an apiserver that came back.
    pub async fn resume(&mut self) {
        self.task.abort();
        let listener = loop {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        };
        self.task = serve(listener, self.state.clone());
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn expire(state: &State) {
    state
        .pristine
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let mut store = state.store.lock().unwrap();
    store.resource_version += 21;
    *state.oldest_rv.lock().unwrap() = store.resource_version;
    let _ = state.events.send(WatchSignal::CloseAll);
}

/// Sends one watch event line to the open watches (every change goes through here).
fn notify(state: &State, resource: &Resource, kind: &str, object: &Value) {
    state
        .pristine
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let mut line =
        serde_json::to_vec(&json!({"type": kind, "object": with_type(resource, object)})).unwrap();
    line.push(b'\n');
    let _ = state.events.send(WatchSignal::Event {
        group: resource.group.clone(),
        plural: resource.plural.clone(),
        namespace: object["metadata"]["namespace"].as_str().map(str::to_string),
        line: Bytes::from(line),
    });
}

/// A watch: HTTP 200, one JSON event per line, flushed per event, closed at `timeoutSeconds`.
fn watch(
    state: &State,
    store: &Store,
    target: &Target,
    query: &std::collections::BTreeMap<String, String>,
) -> Response {
    use futures::StreamExt;
    let rv: u64 = query
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse().ok())
        .unwrap_or(1800u64);
    let mut initial = Vec::new();
    let oldest = *state.oldest_rv.lock().unwrap();
    if rv != 0 && rv < oldest {
        let msg = format!("too old resource version: {rv} ({oldest})");
        let mut line = serde_json::to_vec(&json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1",
            "metadata": {}, "status": "Failure", "message": msg, "reason": "Expired", "code": 410}}))
        .unwrap();
        line.push(b'\n');
        return respond(200, "application/json", line);
    }
    if rv == 0 {
        // resourceVersion=0: synthetic ADDED for every current object first.
        let slot = (
            target.resource.group.clone(),
            target.resource.plural.clone(),
        );
        for (key, object) in store.objects.get(&slot).into_iter().flatten() {
            if target
                .namespace
                .is_none_or(|ns| key.starts_with(&format!("{ns}/")))
            {
                let mut line = serde_json::to_vec(
                    &json!({"type": "ADDED", "object": with_type(&target.resource, object)}),
                )
                .unwrap();
                line.push(b'\n');
                initial.push(Bytes::from(line));
            }
        }
    }
    let (group, plural) = (
        target.resource.group.clone(),
        target.resource.plural.clone(),
    );
    let namespace = target.namespace.map(str::to_string);
    let live = tokio_stream::wrappers::BroadcastStream::new(state.events.subscribe())
        .take_while(|signal| std::future::ready(!matches!(signal, Ok(WatchSignal::CloseAll))))
        .filter_map(move |signal| {
            let wanted = match signal {
                Ok(WatchSignal::Event {
                    group: g,
                    plural: p,
                    namespace: ns,
                    line,
                }) => (g == group
                    && p == plural
                    && namespace.as_ref().is_none_or(|n| ns.as_ref() == Some(n)))
                .then_some(line),
                _ => None,
            };
            std::future::ready(wanted)
        });
    let stream = futures::stream::iter(initial)
        .chain(live)
        .take_until(tokio::time::sleep(std::time::Duration::from_secs(timeout)))
        .map(Ok::<Bytes, std::convert::Infallible>);
    Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "application/json")
        .header("cache-control", "no-cache, private")
        .body(Body::from_stream(stream))
        .unwrap()
}

fn serve(listener: tokio::net::TcpListener, state: Arc<State>) -> tokio::task::JoinHandle<()> {
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let state = state.clone();
            async move { handle(&state, method, uri, headers, body) }
        },
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    })
}

/// `/version`, `/api`, `/apis`, `/api/v1`, `/apis/GROUP/VERSION`.
fn is_discovery(path: &str) -> bool {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    matches!(
        segs.as_slice(),
        ["version"] | ["api"] | ["apis"] | ["api", _] | ["apis", _, _]
    )
}

/// Open to `system:unauthenticated` through the recorded cluster's
/// `system:public-info-viewer` binding (exact paths, as nonResourceURLs
/// match). A request without credentials there is anonymous, not refused.
const PUBLIC_INFO: [&str; 5] = ["/healthz", "/livez", "/readyz", "/version", "/version/"];

fn user_of(headers: &HeaderMap) -> Option<&'static str> {
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    match auth.strip_prefix("Bearer ")? {
        ADMIN_TOKEN => Some(ADMIN),
        RESTRICTED_TOKEN => Some(RESTRICTED),
        _ => None,
    }
}

fn respond(status: u16, content_type: &str, body: Vec<u8>) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap())
        .header(header::CONTENT_TYPE, content_type)
        .header("cache-control", "no-cache, private")
        .body(Body::from(body))
        .unwrap()
}

/// Compact JSON with the trailing newline the apiserver writes.
fn json_response(code: u16, value: &Value) -> Response {
    let mut body = serde_json::to_vec(value).unwrap();
    body.push(b'\n');
    respond(code, "application/json", body)
}

fn recorded_file(state: &State, file: &str, status: u16, content_type: &str) -> Response {
    respond(
        status,
        content_type,
        std::fs::read(state.responses.join(file)).unwrap(),
    )
}

fn handle(state: &State, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path().to_string();
    let query = uri.query().unwrap_or("").to_string();
    let anonymous = headers.get(header::AUTHORIZATION).is_none()
        && method == Method::GET
        && PUBLIC_INFO.contains(&path.as_str());
    // The recordings were made as admin; these paths answer everyone alike.
    let user = user_of(&headers).or(anonymous.then_some(ADMIN));
    {
        let mut countdown = state.expire_countdown.lock().unwrap();
        if let Some(n) = countdown.as_mut() {
            if *n == 0 {
                *countdown = None;
                expire(state);
            } else {
                *n -= 1;
            }
        }
    }
    let injected = state.injected.lock().unwrap().pop_front();
    let response = match user {
        Some(_) if injected.is_some() => {
            let code = injected.unwrap_or(503);
            let (reason, message) = match code {
                429 => (
                    "TooManyRequests",
                    "Too many requests, please try again later.",
                ),
                _ => (
                    "ServiceUnavailable",
                    "the server is currently unable to handle the request",
                ),
            };
            let mut r = json_response(
                code,
                &status(code, reason, message, json!({"retryAfterSeconds": 1})),
            );
            r.headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from_static("1"));
            r
        }
        None => recorded_file(state, "error-401-bad-token.json", 401, "application/json"),
        Some(user) => {
            let accept = headers
                .get(header::ACCEPT)
                .and_then(|a| a.to_str().ok())
                .unwrap_or("application/json");
            let key = RequestKey {
                method: method.to_string(),
                path: path.clone(),
                query: parse_query(&query),
                user: user.to_string(),
                accept: AcceptKind::of(accept),
                impersonate: headers
                    .get("impersonate-user")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string),
            };
            // Discovery is open to every authenticated user (system:discovery).
            let as_admin = RequestKey {
                user: ADMIN.into(),
                ..key.clone()
            };
            // Writes depend on their body, which the index does not record: they are always computed.
            let pristine = state.pristine.load(std::sync::atomic::Ordering::SeqCst);
            // The API server does not page componentstatuses (their REST storage ignores
            // `limit`): a paged list is answered with the recorded unpaged one.
            let unpaged = (path == "/api/v1/componentstatuses").then(|| RequestKey {
                query: key
                    .query
                    .iter()
                    .filter(|(k, _)| *k != "limit")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                ..key.clone()
            });
            let recorded = (method == Method::GET && pristine)
                .then(|| {
                    state
                        .recordings
                        .get(&key)
                        .or_else(|| unpaged.as_ref().and_then(|u| state.recordings.get(u)))
                })
                .flatten();
            match recorded.or_else(|| {
                is_discovery(&path)
                    .then(|| state.recordings.get(&as_admin))
                    .flatten()
            }) {
                Some(rec) => respond(rec.status, &rec.content_type, rec.body.clone()),
                None => generated(state, &method, &path, &key.query, user, &body),
            }
        }
    };
    state.log.lock().unwrap().push(LoggedRequest {
        method: method.to_string(),
        path,
        query,
        user: if anonymous {
            "system:anonymous"
        } else {
            user.unwrap_or("(invalid bearer token)")
        }
        .to_string(),
        status: response.status().as_u16(),
    });
    response
}

/// What a request addresses, parsed from its path.
struct Target<'a> {
    resource: Resource,
    namespace: Option<&'a str>,
    name: Option<&'a str>,
    subresource: Option<&'a str>,
}

enum Parsed<'a> {
    Target(Target<'a>),
    UnknownGroup,
    UnknownResource,
}

fn parse_path<'a>(store: &Store, path: &'a str) -> Parsed<'a> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Parsed::UnknownGroup,
    };
    if !store
        .resources
        .iter()
        .any(|r| r.group == group && r.version == version)
    {
        return Parsed::UnknownGroup;
    }
    let (namespace, rest) = match rest {
        ["namespaces", ns, plural, tail @ ..]
            if store
                .resource(group, version, plural)
                .is_some_and(|r| r.namespaced) =>
        {
            (
                Some(*ns),
                std::iter::once(*plural)
                    .chain(tail.iter().copied())
                    .collect::<Vec<_>>(),
            )
        }
        _ => (None, rest.to_vec()),
    };
    let Some(resource) = rest
        .first()
        .and_then(|p| store.resource(group, version, p))
        .cloned()
    else {
        return Parsed::UnknownResource;
    };
    Parsed::Target(Target {
        resource,
        namespace,
        name: rest.get(1).copied(),
        subresource: rest.get(2).copied(),
    })
}

fn forbidden(user: &str, verb: &str, t: &Target) -> Value {
    let scope = match t.namespace {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".into(),
    };
    let subject = match t.name {
        Some(n) => format!("{} \"{n}\"", t.resource.qualified()),
        None => t.resource.qualified(),
    };
    let mut details = json!({"kind": t.resource.plural});
    if let Some(n) = t.name {
        details = json!({"name": n, "kind": t.resource.plural});
    }
    if !t.resource.group.is_empty() {
        details["group"] = json!(t.resource.group);
    }
    status(
        403,
        "Forbidden",
        &format!(
            "{subject} is forbidden: User \"{user}\" cannot {verb} resource \"{}\" in API group \"{}\" {scope}",
            t.resource.plural, t.resource.group
        ),
        details,
    )
}

fn generated(
    state: &State,
    method: &Method,
    path: &str,
    query: &std::collections::BTreeMap<String, String>,
    user: &str,
    body: &[u8],
) -> Response {
    let mut store = state.store.lock().unwrap();
    let target = match parse_path(&store, path) {
        Parsed::UnknownGroup => {
            return recorded_file(
                state,
                "error-404-unknown-group.txt",
                404,
                "text/plain; charset=utf-8",
            );
        }
        Parsed::UnknownResource => {
            return recorded_file(
                state,
                "error-404-unknown-resource.json",
                404,
                "application/json",
            );
        }
        Parsed::Target(t) => t,
    };
    let verb = match (method.as_str(), target.name) {
        ("GET", _) if query.get("watch").is_some_and(|w| w == "1" || w == "true") => "watch",
        ("GET", Some(_)) => "get",
        ("GET", None) => "list",
        ("POST", None) => "create",
        ("DELETE", Some(_)) => "delete",
        _ => {
            let msg = "the server does not allow this method on the requested resource";
            return json_response(405, &status(405, "MethodNotAllowed", msg, json!({})));
        }
    };
    let allowed = user == ADMIN
        || (target.resource.group.is_empty()
            && target.resource.plural == "pods"
            && target.namespace == Some("shop")
            && matches!(verb, "get" | "list"));
    if !allowed {
        return json_response(403, &forbidden(user, verb, &target));
    }
    match verb {
        "create" => return create(state, &mut store, &target, body),
        "delete" => return delete(state, &mut store, &target),
        "watch" => return watch(state, &store, &target, query),
        _ => {}
    }
    let store = &*store;
    let objects = store.objects.get(&(
        target.resource.group.clone(),
        target.resource.plural.clone(),
    ));
    let empty = Default::default();
    let objects = objects.unwrap_or(&empty);
    match (target.name, target.subresource) {
        (Some(name), None) => {
            let key = match target.namespace {
                Some(ns) => format!("{ns}/{name}"),
                None => name.to_string(),
            };
            match objects.get(&key) {
                Some(item) => json_response(200, &with_type(&target.resource, item)),
                None => {
                    let mut details = json!({"name": name, "kind": target.resource.plural});
                    if !target.resource.group.is_empty() {
                        details = json!({"name": name, "group": target.resource.group, "kind": target.resource.plural});
                    }
                    let msg = format!("{} \"{name}\" not found", target.resource.qualified());
                    json_response(404, &status(404, "NotFound", &msg, details))
                }
            }
        }
        (Some(name), Some("log")) if target.resource.plural == "pods" => {
            let key = object_key(&target, name);
            match objects.get(&key) {
                Some(pod) => pod_log(&target, name, pod, query),
                None => {
                    let msg = format!("pods \"{name}\" not found");
                    json_response(404, &status(404, "NotFound", &msg, details(&target, name)))
                }
            }
        }
        (Some(_), Some(_)) => json_response(
            404,
            &status(
                404,
                "NotFound",
                "the server could not find the requested resource",
                json!({}),
            ),
        ),
        (None, _) => {
            let oldest = *state.oldest_rv.lock().unwrap();
            if let Some(expired) = expired_list(query, oldest) {
                return expired;
            }
            list(store, &target, objects, query)
        }
    }
}

/// No kubelet runs behind the recorded apiserver: a log request for a
/// scheduled pod fails as recorded (500, the dial error to the node's kubelet).
fn pod_log(
    target: &Target,
    name: &str,
    pod: &Value,
    query: &std::collections::BTreeMap<String, String>,
) -> Response {
    let Some(host) = pod["status"]["hostIP"].as_str() else {
        return respond(200, "text/plain", Vec::new());
    };
    let container = match query.get("container") {
        Some(c) => c.clone(),
        None => pod["spec"]["containers"][0]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    };
    // The apiserver forwards the other options to the kubelet, keys sorted (Go's url.Values).
    let forwarded: Vec<String> = query
        .iter()
        .filter(|(k, _)| *k != "container")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let ns = target.namespace.unwrap_or_default();
    let mut url = format!("https://{host}:10250/containerLogs/{ns}/{name}/{container}");
    if !forwarded.is_empty() {
        url = format!("{url}?{}", forwarded.join("&"));
    }
    let message = format!("Get \"{url}\": dial tcp {host}:10250: connect: connection refused");
    json_response(
        500,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "code": 500}),
    )
}

fn details(target: &Target, name: &str) -> Value {
    let mut d = json!({"name": name});
    if !target.resource.group.is_empty() {
        d["group"] = json!(target.resource.group);
    }
    d["kind"] = json!(target.resource.plural);
    d
}

fn object_key(target: &Target, name: &str) -> String {
    match target.namespace {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    }
}

fn create(state: &State, store: &mut Store, target: &Target, body: &[u8]) -> Response {
    let Ok(mut object) = serde_json::from_slice::<Value>(body) else {
        let msg = "the object provided is unrecognized";
        return json_response(400, &status(400, "BadRequest", msg, json!({})));
    };
    if let Some(invalid) = validate::invalid(&target.resource, &object) {
        return json_response(422, &invalid);
    }
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let key = object_key(target, &name);
    let slot = (
        target.resource.group.clone(),
        target.resource.plural.clone(),
    );
    if store
        .objects
        .get(&slot)
        .is_some_and(|o| o.contains_key(&key))
    {
        let msg = format!("{} \"{name}\" already exists", target.resource.qualified());
        return json_response(
            409,
            &status(409, "AlreadyExists", &msg, details(target, &name)),
        );
    }
    store.resource_version += 1;
    let rv = store.resource_version;
    if let Some(obj) = object.as_object_mut() {
        obj.remove("kind");
        obj.remove("apiVersion");
        // The API server ignores a new pod's status and answers with its own
        // (as the recorded creates: `{"phase": "Pending", "qosClass": ...}`).
        if target.resource.group.is_empty() && target.resource.plural == "pods" {
            let qos = qos_class(&obj["spec"]);
            obj.insert(
                "status".into(),
                json!({"phase": "Pending", "qosClass": qos}),
            );
        }
    }
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        if let Some(ns) = target.namespace {
            meta.insert("namespace".into(), json!(ns));
        }
        meta.insert(
            "uid".into(),
            json!(format!("00000000-0000-4000-8000-{rv:012}")),
        );
        meta.insert("resourceVersion".into(), json!(rv.to_string()));
        meta.insert("creationTimestamp".into(), json!("2026-11-22T18:30:00Z"));
    }
    store
        .objects
        .entry(slot)
        .or_default()
        .insert(key, object.clone());
    notify(state, &target.resource, "ADDED", &object);
    json_response(201, &with_type(&target.resource, &object))
}

/// A pod's QoS class as the API server sets it: BestEffort without any CPU
/// or memory request or limit, Guaranteed when every container limits both
/// and requests (defaulted from the limits) equal them (compared as
/// written), else Burstable.
fn qos_class(spec: &Value) -> &'static str {
    let containers: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .filter_map(|k| spec[*k].as_array())
        .flatten()
        .collect();
    let amount =
        |c: &Value, kind: &str, res: &str| c["resources"][kind][res].as_str().map(str::to_string);
    let any = containers.iter().any(|c| {
        ["requests", "limits"]
            .iter()
            .any(|k| ["cpu", "memory"].iter().any(|r| amount(c, k, r).is_some()))
    });
    if !any {
        return "BestEffort";
    }
    let guaranteed = containers.iter().all(|c| {
        ["cpu", "memory"].iter().all(|r| {
            let limit = amount(c, "limits", r);
            let request = amount(c, "requests", r).or_else(|| limit.clone());
            limit.is_some() && request == limit
        })
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

fn delete(state: &State, store: &mut Store, target: &Target) -> Response {
    let name = target.name.unwrap_or_default();
    let slot = (
        target.resource.group.clone(),
        target.resource.plural.clone(),
    );
    let removed = store
        .objects
        .get_mut(&slot)
        .and_then(|o| o.remove(&object_key(target, name)));
    match removed {
        Some(object) => {
            store.resource_version += 1;
            notify(state, &target.resource, "DELETED", &object);
            let mut d = details(target, name);
            d["uid"] = object["metadata"]["uid"].clone();
            let doc = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": d});
            json_response(200, &doc)
        }
        None => {
            let msg = format!("{} \"{name}\" not found", target.resource.qualified());
            json_response(404, &status(404, "NotFound", &msg, details(target, name)))
        }
    }
}

/// A list the compacted (or restarted) server can no longer serve consistently: 410 Expired as recorded.
fn expired_list(
    query: &std::collections::BTreeMap<String, String>,
    oldest: u64,
) -> Option<Response> {
    // A token with rv -1 (offered by a 410) continues inconsistently, as asked.
    if let Some((rv, start)) = query.get("continue").and_then(|t| parse_continue(t))
        && rv >= 0
        && (rv as u64) < oldest
    {
        let message = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";
        let fresh = store::continue_token_raw(-1, &start);
        let doc = json!({"kind": "Status", "apiVersion": "v1", "metadata": {"continue": fresh}, "status": "Failure",
            "message": message, "reason": "Expired", "code": 410});
        return Some(json_response(410, &doc));
    }
    let exact = query
        .get("resourceVersionMatch")
        .is_some_and(|m| m == "Exact");
    if exact
        && query
            .get("resourceVersion")
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|rv| rv < oldest)
    {
        let doc = status(
            410,
            "Expired",
            "The resourceVersion for the provided list is too old.",
            json!({}),
        );
        let mut doc = doc;
        doc.as_object_mut().map(|o| o.remove("details"));
        return Some(json_response(410, &doc));
    }
    None
}

fn list(
    store: &Store,
    target: &Target,
    objects: &std::collections::BTreeMap<String, Value>,
    query: &std::collections::BTreeMap<String, String>,
) -> Response {
    let labels =
        match LabelSelector::parse(query.get("labelSelector").map(String::as_str).unwrap_or("")) {
            Ok(l) => l,
            Err(e) => {
                return json_response(400, &status(400, "BadRequest", &e.to_string(), json!({})));
            }
        };
    let fields =
        match FieldSelector::parse(query.get("fieldSelector").map(String::as_str).unwrap_or("")) {
            Ok(f) => f,
            Err(e) => {
                return json_response(400, &status(400, "BadRequest", &e.to_string(), json!({})));
            }
        };
    let start_after = match query.get("continue") {
        Some(token) => match parse_continue(token) {
            Some((_, key)) => Some(key),
            None => {
                return json_response(
                    400,
                    &status(400, "BadRequest", "continue key is not valid", json!({})),
                );
            }
        },
        None => None,
    };
    let prefix = target.namespace.map(|ns| format!("{ns}/"));
    let selected: Vec<(&String, &Value)> = objects
        .iter()
        .filter(|(k, _)| prefix.as_ref().is_none_or(|p| k.starts_with(p.as_str())))
        .filter(|(k, _)| start_after.as_ref().is_none_or(|s| k.as_str() > s.as_str()))
        .filter(|(_, v)| labels.matches(v.pointer("/metadata/labels")) && fields.matches(v))
        .collect();
    let limit = query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let rv = store.resource_version;
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    let page: Vec<Value> = match limit {
        Some(l) if selected.len() > l => {
            metadata["continue"] = json!(continue_token(rv, selected[l - 1].0));
            metadata["remainingItemCount"] = json!(selected.len() - l);
            selected[..l].iter().map(|(_, v)| (*v).clone()).collect()
        }
        _ => selected.iter().map(|(_, v)| (*v).clone()).collect(),
    };
    let doc = json!({
        "kind": format!("{}List", target.resource.kind),
        "apiVersion": target.resource.api_version(),
        "metadata": metadata,
        "items": page,
    });
    json_response(200, &doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        let responses = default_fixtures().join("responses");
        State {
            recordings: HashMap::new(),
            events: tokio::sync::broadcast::channel(16).0,
            oldest_rv: Mutex::new(0),
            pristine: std::sync::atomic::AtomicBool::new(true),
            injected: Mutex::new(Default::default()),
            expire_countdown: Mutex::new(None),
            store: Mutex::new(Store::seed(&responses)),
            log: Mutex::new(Vec::new()),
            responses,
        }
    }

    async fn body(r: Response) -> (u16, String) {
        let code = r.status().as_u16();
        let bytes = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap();
        (code, String::from_utf8(bytes.to_vec()).unwrap())
    }

    fn recorded(file: &str) -> String {
        std::fs::read_to_string(default_fixtures().join("responses").join(file)).unwrap()
    }

    /// What the store generates is byte for byte what the real apiserver answered.
    #[tokio::test]
    async fn generated_answers_equal_the_recorded_ones() {
        let s = state();
        let get = |path: &str, query: &str| {
            generated(&s, &Method::GET, path, &parse_query(query), ADMIN, b"")
        };
        let token = |file: &str| {
            let page: Value = serde_json::from_str(&recorded(file)).unwrap();
            page["metadata"]["continue"].as_str().unwrap().to_string()
        };
        let after_page1 = format!("limit=2&continue={}", token("list-pods-limit2-page1.json"));
        let after_page4 = format!("limit=2&continue={}", token("list-pods-limit2-page4.json"));
        let cases: [(&str, &str, u16, &str); 12] = [
            (
                "/apis/apps/v1/deployments",
                "",
                200,
                "list-deployments.json",
            ),
            (
                "/api/v1/namespaces/shop/pods",
                "",
                200,
                "list-pods-ns-shop.json",
            ),
            (
                "/api/v1/pods",
                "limit=2",
                200,
                "list-pods-limit2-page1.json",
            ),
            (
                "/api/v1/pods",
                &after_page1,
                200,
                "list-pods-limit2-page2.json",
            ),
            (
                "/api/v1/pods",
                &after_page4,
                200,
                "list-pods-limit2-page5.json",
            ),
            (
                "/api/v1/pods",
                "labelSelector=app%3Dweb",
                200,
                "list-pods-labelselector.json",
            ),
            (
                "/api/v1/pods",
                "fieldSelector=spec.nodeName%3Dnode-2",
                200,
                "list-pods-fieldselector-node.json",
            ),
            (
                "/api/v1/namespaces/shop/pods/web-7d9c6b5f4-x2bqk",
                "",
                200,
                "get-pod-running.json",
            ),
            (
                "/api/v1/namespaces/shop/pods/does-not-exist",
                "",
                404,
                "error-404-pod.json",
            ),
            (
                "/apis/rbac.authorization.k8s.io/v1/clusterroles/no-such-role",
                "",
                404,
                "error-404-clusterrole.json",
            ),
            (
                "/apis/example.com/v1/widgets",
                "",
                404,
                "error-404-unknown-group.txt",
            ),
            (
                "/api/v1/namespaces/shop/widgets",
                "",
                404,
                "error-404-unknown-resource.json",
            ),
        ];
        for (path, query, code, file) in cases {
            assert_eq!(
                body(get(path, query)).await,
                (code, recorded(file)),
                "GET {path}?{query}"
            );
        }
        let post = generated(
            &s,
            &Method::POST,
            "/api/v1/namespaces/shop/configmaps",
            &Default::default(),
            ADMIN,
            br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"web-config"}}"#,
        );
        assert_eq!(
            body(post).await,
            (409, recorded("error-409-already-exists.json"))
        );
        let restricted =
            |path: &str| generated(&s, &Method::GET, path, &Default::default(), RESTRICTED, b"");
        assert_eq!(
            body(restricted("/api/v1/pods")).await,
            (403, recorded("error-403-list-pods-cluster.json"))
        );
        assert_eq!(
            body(restricted("/api/v1/nodes")).await,
            (403, recorded("error-403-list-nodes.json"))
        );
        assert_eq!(
            body(restricted("/api/v1/namespaces/shop/secrets/db-credentials")).await,
            (403, recorded("error-403-get-secret.json"))
        );
    }
}
