//! Where probes' Kubernetes reads are served from. `KubeBackend` is the one
//! trait both backends implement: the snapshot backend (files, in memory)
//! and the live backend (kube-rs against an API server).

pub mod cache;
pub mod live;
pub mod scope;
pub mod selector;
pub mod snapshot;
pub mod sweep;

use std::sync::Arc;

use crate::bindings::ProbeError;

pub use live::{LiveBackend, LiveError, LiveOptions};
pub use snapshot::{SnapshotBackend, SnapshotIssue};

/// A kind as probes address it: API group and kind (the version is ignored
/// when matching stored objects, since a snapshot cannot convert between versions).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KindRef {
    pub group: String,
    pub kind: String,
}

impl KindRef {
    /// From an `apiVersion` and `kind` pair.
    pub fn new(api_version: &str, kind: &str) -> Self {
        KindRef {
            group: crate::grants::group_of(api_version).to_string(),
            kind: kind.to_string(),
        }
    }
}

impl std::fmt::Display for KindRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::grants::qualified_kind(&self.group, &self.kind))
    }
}

/// The parameters of a list call, already validated.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub namespace: Option<String>,
    pub labels: selector::LabelSelector,
    pub fields: selector::FieldSelector,
    /// The selectors as the probe wrote them, for backends that forward them.
    pub raw_labels: Option<String>,
    pub raw_fields: Option<String>,
    pub limit: Option<u32>,
    pub continue_token: Option<String>,
}

/// One page of objects, each as the API server's JSON text.
#[derive(Debug, Clone, Default)]
pub struct ObjectPage {
    pub items: Vec<StoredObject>,
    pub resource_version: Option<String>,
    pub continue_token: Option<String>,
}

/// An object held by a backend: its parsed form (for selectors) and its JSON text.
#[derive(Debug)]
pub struct StoredObjectInner {
    pub value: serde_json::Value,
    pub json: String,
    pub namespace: Option<String>,
    pub name: String,
}

/// Shared, immutable stored object.
pub type StoredObject = Arc<StoredObjectInner>;

/// One kind the backend serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiResourceInfo {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub namespaced: bool,
    pub verbs: Vec<String>,
}

/// Why a backend call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KubeError {
    /// The object or kind does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The cluster refused the call (RBAC).
    #[error("{0}")]
    Forbidden(String),
    /// The request was malformed (bad selector, bad object).
    #[error("{0}")]
    Invalid(String),
    /// The backend cannot serve this call (read-only snapshot, unreachable server).
    #[error("{0}")]
    Unavailable(String),
    /// A list continuation or resourceVersion the server can no longer serve (410).
    #[error("{0}")]
    Expired(String),
}

impl From<KubeError> for ProbeError {
    fn from(e: KubeError) -> Self {
        match e {
            KubeError::NotFound(m) => ProbeError::NotFound(m),
            KubeError::Forbidden(m) => ProbeError::Denied(m),
            KubeError::Invalid(m) => ProbeError::InvalidInput(m),
            KubeError::Unavailable(m) | KubeError::Expired(m) => ProbeError::Unavailable(m),
        }
    }
}

/// Log request parameters.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    pub container: Option<String>,
    pub tail_lines: Option<u32>,
    pub since_seconds: Option<u32>,
    pub previous: bool,
    pub limit_bytes: usize,
}

/// A source of Kubernetes objects for probes.
#[async_trait::async_trait]
pub trait KubeBackend: Send + Sync {
    /// A short description for logs and reports (`snapshot ./manifests`).
    fn describe(&self) -> String;
    /// One object.
    async fn get(
        &self,
        kind: &KindRef,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<StoredObject, KubeError>;
    /// Objects of a kind.
    async fn list(&self, kind: &KindRef, query: &ListQuery) -> Result<ObjectPage, KubeError>;
    /// A container's log.
    async fn pod_logs(
        &self,
        namespace: &str,
        name: &str,
        query: &LogQuery,
    ) -> Result<String, KubeError>;
    /// The kinds served.
    async fn discover(&self) -> Result<Vec<ApiResourceInfo>, KubeError>;
    /// The API server's `gitVersion`.
    async fn server_version(&self) -> Result<String, KubeError>;
    /// Create an object; returns it as stored.
    async fn create(&self, object: serde_json::Value) -> Result<StoredObject, KubeError>;
    /// Patch an object.
    async fn patch(
        &self,
        kind: &KindRef,
        namespace: Option<&str>,
        name: &str,
        patch_type: crate::bindings::sonde::probe::kube::PatchType,
        patch: &str,
    ) -> Result<StoredObject, KubeError>;
    /// Delete an object.
    async fn delete(
        &self,
        kind: &KindRef,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<(), KubeError>;
}
