//! The shared watch cache of the live backend (daemon mode): one list and one
//! watch per kind, started on the first probe request for that kind and kept
//! warm by kube-runtime's watcher (bookmarks on; on `410 Gone` it relists).
//! Objects are kept in the form probes receive, so N probes reading pods cost
//! one list and one watch, not N lists.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::watcher::{self, Event};
use tokio::sync::watch;

use super::{ApiResourceInfo, KubeError, StoredObject};

/// Where a kind's cache stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheState {
    /// The initial list is under way.
    Pending,
    /// Serving; kept up to date by the watch.
    Ready,
    /// The initial list failed; the cache is dropped and the next request tries again.
    Failed(KubeError),
}

/// The objects of one kind, cluster-wide.
pub struct KindCache {
    objects: Arc<RwLock<BTreeMap<String, StoredObject>>>,
    state: watch::Receiver<CacheState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for KindCache {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn key_of(o: &StoredObject) -> String {
    match &o.namespace {
        Some(ns) => format!("{ns}/{}", o.name),
        None => o.name.clone(),
    }
}

impl KindCache {
    /// Starts the list and watch of a kind. `convert` turns a watched object into
    /// the stored form; `map_error` words a client error for probes.
    pub fn start(
        client: kube::Client,
        resource: &ApiResourceInfo,
        convert: impl Fn(serde_json::Value) -> StoredObject + Send + Sync + 'static,
        map_error: impl Fn(&kube::Error) -> KubeError + Send + Sync + 'static,
    ) -> Self {
        let api_version = if resource.group.is_empty() {
            resource.version.clone()
        } else {
            format!("{}/{}", resource.group, resource.version)
        };
        let ar = ApiResource {
            group: resource.group.clone(),
            version: resource.version.clone(),
            api_version,
            kind: resource.kind.clone(),
            plural: resource.plural.clone(),
        };
        let api: Api<DynamicObject> = Api::all_with(client, &ar);
        let objects = Arc::new(RwLock::new(BTreeMap::new()));
        let (tx, state) = watch::channel(CacheState::Pending);
        let shared = objects.clone();
        let kind = resource.kind.clone();
        let task = tokio::spawn(async move {
            let mut stream = watcher::watcher(api, watcher::Config::default()).boxed();
            let mut buffer = BTreeMap::new();
            let mut ready = false;
            let to_stored = |o: DynamicObject| serde_json::to_value(&o).ok().map(&convert);
            while let Some(event) = stream.next().await {
                match event {
                    Ok(Event::Init) => buffer.clear(),
                    Ok(Event::InitApply(o)) => {
                        if let Some(s) = to_stored(o) {
                            buffer.insert(key_of(&s), s);
                        }
                    }
                    Ok(Event::InitDone) => {
                        *shared.write().unwrap_or_else(|e| e.into_inner()) =
                            std::mem::take(&mut buffer);
                        if !ready {
                            ready = true;
                            let _ = tx.send(CacheState::Ready);
                        }
                    }
                    Ok(Event::Apply(o)) => {
                        if let Some(s) = to_stored(o) {
                            shared
                                .write()
                                .unwrap_or_else(|e| e.into_inner())
                                .insert(key_of(&s), s);
                        }
                    }
                    Ok(Event::Delete(o)) => {
                        if let Some(s) = to_stored(o) {
                            shared
                                .write()
                                .unwrap_or_else(|e| e.into_inner())
                                .remove(&key_of(&s));
                        }
                    }
                    Err(e) => {
                        let error = match &e {
                            watcher::Error::InitialListFailed(c)
                            | watcher::Error::WatchStartFailed(c)
                            | watcher::Error::WatchFailed(c) => map_error(c),
                            other => KubeError::Unavailable(other.to_string()),
                        };
                        if !ready {
                            let _ = tx.send(CacheState::Failed(error));
                            return;
                        }
                        tracing::warn!(%kind, error = %e, "watch interrupted; resuming");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
        KindCache {
            objects,
            state,
            task,
        }
    }

    /// Waits for the initial list; then the objects, ordered by namespace/name.
    pub async fn objects(&self) -> Result<Vec<StoredObject>, KubeError> {
        let mut state = self.state.clone();
        let current = state
            .wait_for(|s| *s != CacheState::Pending)
            .await
            .map(|s| s.clone())
            .unwrap_or_else(|_| {
                CacheState::Failed(KubeError::Unavailable("the watch ended".into()))
            });
        match current {
            CacheState::Failed(e) => Err(e),
            _ => Ok(self
                .objects
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .values()
                .cloned()
                .collect()),
        }
    }

    /// Whether the initial list failed (so the cache should be dropped).
    pub fn failed(&self) -> bool {
        matches!(*self.state.borrow(), CacheState::Failed(_))
    }
}
