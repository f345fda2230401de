//! The live backend: kube-rs against an API server. Connection follows
//! kubectl (`--kubeconfig`, `KUBECONFIG` with several files, `~/.kube/config`,
//! `--context`, in-cluster service account). Requests go through a client-side
//! rate limit and are retried with jittered backoff on 429 and 5xx. Lists are
//! paginated (`limit`/`continue`); objects reach probes as the API server's
//! JSON with `kind`/`apiVersion` on list items and `managedFields` hidden, as
//! `kubectl get -o json` shows them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::{Map, Value};
use tokio::sync::{Mutex, OnceCell};

use super::cache::KindCache;
use super::{
    ApiResourceInfo, KindRef, KubeBackend, KubeError, ListQuery, LogQuery, ObjectPage,
    StoredObject, StoredObjectInner,
};
use crate::bindings::sonde::probe::kube::PatchType;

/// How to reach the cluster, and how hard to press it.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// A kubeconfig file; default: `KUBECONFIG`, then `~/.kube/config`, then in-cluster.
    pub kubeconfig: Option<PathBuf>,
    /// A context of the kubeconfig; default: its current context.
    pub context: Option<String>,
    /// Objects per list page.
    pub page_size: u32,
    /// Sustained requests per second.
    pub qps: f64,
    /// Requests that may go at once above the sustained rate.
    pub burst: u32,
    /// Attempts for a request answered 429 or 5xx, or not answered.
    pub attempts: u32,
    /// Serve whole-kind lists from a shared watch cache (daemon mode) instead of listing per call.
    pub watch_cache: bool,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            kubeconfig: None,
            context: None,
            page_size: 500,
            qps: 50.0,
            burst: 100,
            attempts: 4,
            watch_cache: false,
        }
    }
}

/// The cluster could not be reached or configured.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The kubeconfig (or in-cluster configuration) could not be used.
    #[error("cannot load the cluster configuration{}", .path.as_ref().map(|p| format!(" from {}", p.display())).unwrap_or_default())]
    Config {
        path: Option<PathBuf>,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// A token bucket: `qps` sustained, `burst` at once.
struct RateLimit {
    state: Mutex<(f64, Instant)>,
    qps: f64,
    burst: f64,
}

impl RateLimit {
    async fn acquire(&self) {
        loop {
            let wait = {
                let mut s = self.state.lock().await;
                let now = Instant::now();
                s.0 = (s.0 + now.duration_since(s.1).as_secs_f64() * self.qps).min(self.burst);
                s.1 = now;
                if s.0 >= 1.0 {
                    s.0 -= 1.0;
                    return;
                }
                Duration::from_secs_f64((1.0 - s.0) / self.qps)
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// Kubernetes objects from a live API server.
pub struct LiveBackend {
    client: Client,
    server: String,
    context: String,
    options: LiveOptions,
    limit: RateLimit,
    resources: OnceCell<Arc<Vec<ApiResourceInfo>>>,
    caches: Mutex<std::collections::HashMap<KindRef, Arc<KindCache>>>,
}

impl LiveBackend {
    /// Connects as kubectl would with the same flags.
    pub async fn connect(options: LiveOptions) -> Result<Self, LiveError> {
        let config_error = |source: Box<dyn std::error::Error + Send + Sync>| LiveError::Config {
            path: options.kubeconfig.clone(),
            source,
        };
        let kc_options = KubeConfigOptions {
            context: options.context.clone(),
            ..Default::default()
        };
        let (config, context) = match &options.kubeconfig {
            Some(path) => {
                let kc = Kubeconfig::read_from(path).map_err(|e| config_error(e.into()))?;
                let context = options
                    .context
                    .clone()
                    .or(kc.current_context.clone())
                    .unwrap_or_default();
                let config = Config::from_custom_kubeconfig(kc, &kc_options)
                    .await
                    .map_err(|e| config_error(e.into()))?;
                (config, context)
            }
            None if options.context.is_some() => {
                let config = Config::from_kubeconfig(&kc_options)
                    .await
                    .map_err(|e| config_error(e.into()))?;
                (config, options.context.clone().unwrap_or_default())
            }
            None => {
                let context = Kubeconfig::read()
                    .ok()
                    .and_then(|k| k.current_context)
                    .unwrap_or_else(|| "in-cluster".into());
                (
                    Config::infer().await.map_err(|e| config_error(e.into()))?,
                    context,
                )
            }
        };
        let server = config
            .cluster_url
            .to_string()
            .trim_end_matches('/')
            .to_string();
        // One retry policy, ours (attempts with jittered backoff), rather than two stacked.
        let mut config = config;
        config.default_retry = false;
        let client = Client::try_from(config).map_err(|e| config_error(e.into()))?;
        let limit = RateLimit {
            state: Mutex::new((options.burst as f64, Instant::now())),
            qps: options.qps.max(0.1),
            burst: options.burst.max(1) as f64,
        };
        Ok(LiveBackend {
            client,
            server,
            context,
            options,
            limit,
            resources: OnceCell::new(),
            caches: Mutex::new(Default::default()),
        })
    }

    /// Asks the server for its version: the first request, so an unreachable
    /// server or refused credentials are reported before any probe runs.
    pub async fn check(&self) -> Result<String, KubeError> {
        let v = self.get_json("/version").await?;
        Ok(v["gitVersion"].as_str().unwrap_or("unknown").to_string())
    }

    fn unreachable(&self, e: &kube::Error) -> KubeError {
        unreachable(&self.server, &self.context, e)
    }

    fn api_error(&self, status: &kube::core::Status) -> KubeError {
        api_error(&self.server, &self.context, status)
    }

    /// The watch cache of a kind, started on first use.
    async fn cache_for(&self, kind: &KindRef, r: &ApiResourceInfo) -> Arc<KindCache> {
        let mut caches = self.caches.lock().await;
        if let Some(c) = caches.get(kind).filter(|c| !c.failed()) {
            return c.clone();
        }
        let (server, context, res) = (self.server.clone(), self.context.clone(), r.clone());
        let cache = Arc::new(KindCache::start(
            self.client.clone(),
            r,
            move |v| stored(&res, v),
            move |e| match e {
                kube::Error::Api(status) => api_error(&server, &context, status),
                other => unreachable(&server, &context, other),
            },
        ));
        caches.insert(kind.clone(), cache.clone());
        cache
    }

    /// A whole-kind list from the watch cache, filtered here; `None` when the
    /// cache cannot serve it and a direct list should be tried.
    async fn cached_list(
        &self,
        kind: &KindRef,
        r: &ApiResourceInfo,
        query: &ListQuery,
    ) -> Option<Result<ObjectPage, KubeError>> {
        let cache = self.cache_for(kind, r).await;
        match cache.objects().await {
            Ok(objects) => {
                let items = objects
                    .into_iter()
                    .filter(|o| query.namespace.is_none() || o.namespace == query.namespace)
                    .filter(|o| {
                        query.labels.matches(o.value.pointer("/metadata/labels"))
                            && query.fields.matches(&o.value)
                    })
                    .collect();
                Some(Ok(ObjectPage {
                    items,
                    resource_version: None,
                    continue_token: None,
                }))
            }
            // Sonde may not watch the kind cluster-wide, yet may list one namespace.
            Err(KubeError::Forbidden(_)) if query.namespace.is_some() => None,
            Err(e) => Some(Err(e)),
        }
    }

    /// Sends a request under the rate limit, retrying 429, 5xx and transport errors with jittered backoff.
    async fn send(
        &self,
        method: http::Method,
        path: &str,
        body: Vec<u8>,
        content_type: Option<&str>,
    ) -> Result<String, KubeError> {
        self.send_accepting(method, path, body, content_type, "application/json")
            .await
    }

    async fn send_accepting(
        &self,
        method: http::Method,
        path: &str,
        body: Vec<u8>,
        content_type: Option<&str>,
        accept: &str,
    ) -> Result<String, KubeError> {
        let mut delay = Duration::from_millis(100);
        let mut attempt = 1;
        loop {
            self.limit.acquire().await;
            let mut builder = http::Request::builder()
                .method(method.clone())
                .uri(path)
                .header("accept", accept);
            if let Some(ct) = content_type {
                builder = builder.header("content-type", ct);
            }
            let request = builder
                .body(body.clone())
                .map_err(|e| KubeError::Invalid(e.to_string()))?;
            let error = match self.client.request_text(request).await {
                Ok(text) => return Ok(text),
                Err(kube::Error::Api(status)) if status.code == 429 || status.code >= 500 => {
                    self.api_error(&status)
                }
                Err(kube::Error::Api(status)) => return Err(self.api_error(&status)),
                Err(e @ (kube::Error::HyperError(_) | kube::Error::Service(_))) => {
                    self.unreachable(&e)
                }
                Err(e) => return Err(KubeError::Unavailable(format!("{}: {e}", self.server))),
            };
            if attempt >= self.options.attempts {
                return Err(error);
            }
            let jitter =
                Duration::from_millis(u64::from(rand_u16()) % (delay.as_millis() as u64 + 1));
            tokio::time::sleep(delay + jitter).await;
            delay = (delay * 2).min(Duration::from_secs(5));
            attempt += 1;
        }
    }

    async fn get_json(&self, path: &str) -> Result<Value, KubeError> {
        self.get_json_accepting(path, "application/json").await
    }

    async fn get_json_accepting(&self, path: &str, accept: &str) -> Result<Value, KubeError> {
        let text = self
            .send_accepting(http::Method::GET, path, Vec::new(), None, accept)
            .await?;
        serde_json::from_str(&text)
            .map_err(|e| KubeError::Unavailable(format!("{}{path}: not JSON: {e}", self.server)))
    }

    /// Every kind the server serves, fetched once: aggregated discovery (`/api`
    /// and `/apis`, two requests, as kubectl 1.26+ asks), else each preferred group version.
    async fn resources(&self) -> Result<Arc<Vec<ApiResourceInfo>>, KubeError> {
        self.resources
            .get_or_try_init(|| async {
                let mut all = Vec::new();
                for path in ["/api", "/apis"] {
                    let doc = self.get_json_accepting(path, AGGREGATED).await?;
                    if doc["kind"] != "APIGroupDiscoveryList" {
                        return self.legacy_discovery().await.map(Arc::new);
                    }
                    for group in doc["items"].as_array().into_iter().flatten() {
                        let name = group["metadata"]["name"].as_str().unwrap_or_default();
                        // The first version listed is the preferred one.
                        let Some(version) = group["versions"].as_array().and_then(|v| v.first())
                        else {
                            continue;
                        };
                        let v = version["version"].as_str().unwrap_or_default();
                        for r in version["resources"].as_array().into_iter().flatten() {
                            all.push(ApiResourceInfo {
                                group: name.to_string(),
                                version: v.to_string(),
                                kind: r["responseKind"]["kind"]
                                    .as_str()
                                    .unwrap_or_default()
                                    .to_string(),
                                plural: r["resource"].as_str().unwrap_or_default().to_string(),
                                namespaced: r["scope"].as_str() == Some("Namespaced"),
                                verbs: strings(&r["verbs"]),
                            });
                        }
                    }
                }
                Ok(Arc::new(all))
            })
            .await
            .cloned()
    }

    async fn legacy_discovery(&self) -> Result<Vec<ApiResourceInfo>, KubeError> {
        let mut versions = vec![("".to_string(), "/api/v1".to_string())];
        let groups = self.get_json("/apis").await?;
        for g in groups["groups"].as_array().into_iter().flatten() {
            if let (Some(name), Some(gv)) = (
                g["name"].as_str(),
                g["preferredVersion"]["groupVersion"].as_str(),
            ) {
                versions.push((name.to_string(), format!("/apis/{gv}")));
            }
        }
        let mut all = Vec::new();
        for (group, path) in versions {
            let list = match self.get_json(&path).await {
                Ok(l) => l,
                Err(KubeError::Forbidden(_) | KubeError::NotFound(_)) => continue,
                Err(e) => return Err(e),
            };
            let gv = list["groupVersion"].as_str().unwrap_or_default();
            let version = gv.rsplit('/').next().unwrap_or_default().to_string();
            for r in list["resources"].as_array().into_iter().flatten() {
                let plural = r["name"].as_str().unwrap_or_default();
                if plural.contains('/') {
                    continue;
                }
                all.push(ApiResourceInfo {
                    group: group.clone(),
                    version: version.clone(),
                    kind: r["kind"].as_str().unwrap_or_default().to_string(),
                    plural: plural.to_string(),
                    namespaced: r["namespaced"].as_bool().unwrap_or(true),
                    verbs: strings(&r["verbs"]),
                });
            }
        }
        Ok(all)
    }

    async fn resolve(&self, kind: &KindRef) -> Result<ApiResourceInfo, KubeError> {
        self.resources()
            .await?
            .iter()
            .find(|r| r.group == kind.group && r.kind == kind.kind)
            .cloned()
            .ok_or_else(|| {
                KubeError::NotFound(format!(
                    "the cluster at {} does not serve {kind}",
                    self.server
                ))
            })
    }

    fn path(r: &ApiResourceInfo, namespace: Option<&str>, name: Option<&str>) -> String {
        let mut p = if r.group.is_empty() {
            "/api/v1".to_string()
        } else {
            format!("/apis/{}/{}", r.group, r.version)
        };
        if let (true, Some(ns)) = (r.namespaced, namespace) {
            p.push_str(&format!("/namespaces/{}", encode(ns)));
        }
        p.push('/');
        p.push_str(&r.plural);
        if let Some(n) = name {
            p.push('/');
            p.push_str(&encode(n));
        }
        p
    }
}

fn unreachable(server: &str, context: &str, e: &kube::Error) -> KubeError {
    KubeError::Unavailable(format!(
        "cannot reach the API server {server} (context {context}): {e}"
    ))
}

fn api_error(server: &str, context: &str, status: &kube::core::Status) -> KubeError {
    let msg = status.message.clone();
    match status.code {
        401 => KubeError::Forbidden(format!(
            "the API server {server} refused the credentials of context {context}: {msg}"
        )),
        403 => KubeError::Forbidden(msg),
        404 => KubeError::NotFound(msg),
        410 => KubeError::Expired(msg),
        400 | 409 | 422 => KubeError::Invalid(msg),
        _ => KubeError::Unavailable(format!("{server} ({}): {msg}", status.code)),
    }
}

/// The `Accept` of aggregated discovery (apidiscovery.k8s.io/v2beta1), with a plain fallback.
const AGGREGATED: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

/// Percent-encodes a path segment or query value.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn rand_u16() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (nanos ^ (nanos >> 16)) as u16
}

/// An object as kubectl shows it: `kind` and `apiVersion` first, `managedFields` hidden.
fn stored(r: &ApiResourceInfo, mut item: Value) -> StoredObject {
    let api_version = if r.group.is_empty() {
        r.version.clone()
    } else {
        format!("{}/{}", r.group, r.version)
    };
    if let Some(meta) = item.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    let mut out = Map::new();
    out.insert("kind".into(), Value::String(r.kind.clone()));
    out.insert("apiVersion".into(), Value::String(api_version));
    if let Value::Object(obj) = item {
        for (k, v) in obj {
            if k != "kind" && k != "apiVersion" {
                out.insert(k, v);
            }
        }
    }
    let value = Value::Object(out);
    let namespace = value["metadata"]["namespace"].as_str().map(str::to_string);
    let name = value["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let json = value.to_string();
    Arc::new(StoredObjectInner {
        value,
        json,
        namespace,
        name,
    })
}

#[async_trait::async_trait]
impl KubeBackend for LiveBackend {
    fn describe(&self) -> String {
        format!("cluster {} (context {})", self.server, self.context)
    }

    async fn get(
        &self,
        kind: &KindRef,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<StoredObject, KubeError> {
        let r = self.resolve(kind).await?;
        let value = self
            .get_json(&Self::path(&r, namespace, Some(name)))
            .await?;
        Ok(stored(&r, value))
    }

    async fn list(&self, kind: &KindRef, query: &ListQuery) -> Result<ObjectPage, KubeError> {
        let r = self.resolve(kind).await?;
        if self.options.watch_cache
            && query.limit.is_none()
            && query.continue_token.is_none()
            && let Some(result) = self.cached_list(kind, &r, query).await
        {
            return result;
        }
        let base = Self::path(&r, query.namespace.as_deref(), None);
        let mut params = Vec::new();
        if let Some(l) = &query.raw_labels {
            params.push(format!("labelSelector={}", encode(l)));
        }
        if let Some(f) = &query.raw_fields {
            params.push(format!("fieldSelector={}", encode(f)));
        }
        // The probe pages itself when it asks for a page; otherwise every page is fetched here.
        let one_page = query.limit.is_some();
        let limit = query.limit.unwrap_or(self.options.page_size);
        let mut token = query.continue_token.clone();
        let mut page = ObjectPage::default();
        let mut restarted = false;
        loop {
            let mut q = params.clone();
            q.push(format!("limit={limit}"));
            if let Some(t) = &token {
                q.push(format!("continue={}", encode(t)));
            }
            let doc = match self.get_json(&format!("{base}?{}", q.join("&"))).await {
                // The server lost the list's snapshot between pages: list again from the start, once.
                Err(KubeError::Expired(_)) if !one_page && !restarted && token.is_some() => {
                    restarted = true;
                    token = None;
                    page = ObjectPage::default();
                    continue;
                }
                other => other?,
            };
            page.resource_version = doc["metadata"]["resourceVersion"]
                .as_str()
                .map(str::to_string);
            if let Some(items) = doc.get("items").and_then(Value::as_array) {
                page.items
                    .extend(items.iter().cloned().map(|i| stored(&r, i)));
            }
            token = doc["metadata"]["continue"]
                .as_str()
                .filter(|t| !t.is_empty())
                .map(str::to_string);
            if one_page || token.is_none() {
                page.continue_token = token;
                return Ok(page);
            }
        }
    }

    async fn pod_logs(
        &self,
        namespace: &str,
        name: &str,
        query: &LogQuery,
    ) -> Result<String, KubeError> {
        let mut q = vec![format!("limitBytes={}", query.limit_bytes.max(1))];
        if let Some(c) = &query.container {
            q.push(format!("container={}", encode(c)));
        }
        if let Some(t) = query.tail_lines {
            q.push(format!("tailLines={t}"));
        }
        if let Some(s) = query.since_seconds {
            q.push(format!("sinceSeconds={s}"));
        }
        if query.previous {
            q.push("previous=true".into());
        }
        let path = format!(
            "/api/v1/namespaces/{}/pods/{}/log?{}",
            encode(namespace),
            encode(name),
            q.join("&")
        );
        self.send(http::Method::GET, &path, Vec::new(), None).await
    }

    async fn discover(&self) -> Result<Vec<ApiResourceInfo>, KubeError> {
        Ok(self.resources().await?.as_ref().clone())
    }

    async fn server_version(&self) -> Result<String, KubeError> {
        self.check().await
    }

    async fn create(&self, object: Value) -> Result<StoredObject, KubeError> {
        let kind = KindRef::new(
            object["apiVersion"].as_str().unwrap_or_default(),
            object["kind"].as_str().unwrap_or_default(),
        );
        let r = self.resolve(&kind).await?;
        let path = Self::path(&r, object["metadata"]["namespace"].as_str(), None);
        let text = self
            .send(
                http::Method::POST,
                &path,
                object.to_string().into_bytes(),
                Some("application/json"),
            )
            .await?;
        let value =
            serde_json::from_str(&text).map_err(|e| KubeError::Unavailable(e.to_string()))?;
        Ok(stored(&r, value))
    }

    async fn patch(
        &self,
        kind: &KindRef,
        namespace: Option<&str>,
        name: &str,
        patch_type: PatchType,
        patch: &str,
    ) -> Result<StoredObject, KubeError> {
        let r = self.resolve(kind).await?;
        let (content_type, query) = match patch_type {
            PatchType::Merge => ("application/merge-patch+json", ""),
            PatchType::Json => ("application/json-patch+json", ""),
            PatchType::Strategic => ("application/strategic-merge-patch+json", ""),
            PatchType::Apply => ("application/apply-patch+yaml", "?fieldManager=sonde"),
        };
        let path = format!("{}{query}", Self::path(&r, namespace, Some(name)));
        let text = self
            .send(
                http::Method::PATCH,
                &path,
                patch.as_bytes().to_vec(),
                Some(content_type),
            )
            .await?;
        let value =
            serde_json::from_str(&text).map_err(|e| KubeError::Unavailable(e.to_string()))?;
        Ok(stored(&r, value))
    }

    async fn delete(
        &self,
        kind: &KindRef,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<(), KubeError> {
        let r = self.resolve(kind).await?;
        self.send(
            http::Method::DELETE,
            &Self::path(&r, namespace, Some(name)),
            Vec::new(),
            None,
        )
        .await
        .map(|_| ())
    }
}
