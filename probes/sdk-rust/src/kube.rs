//! Typed reads of the Kubernetes API through the host's `kube` interface.
//! Objects arrive as the API server's JSON and are parsed into k8s-openapi
//! types; pages are followed until the list is complete.

use serde::de::DeserializeOwned;

use crate::ProbeError;
use crate::bindings::sonde::probe::kube as host;

/// Which objects to list.
#[derive(Debug, Clone, Default)]
pub struct ListParams {
    /// Absent: all namespaces.
    pub namespace: Option<String>,
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    /// Page size asked of the host (absent: as large as the host serves).
    pub page_size: Option<u32>,
}

fn parse<K: DeserializeOwned>(kind: &str, json: &str) -> Result<K, ProbeError> {
    serde_json::from_str(json)
        .map_err(|e| ProbeError::Internal(format!("cannot parse a {kind}: {e}")))
}

/// Every object of a kind as JSON text, following continue tokens.
pub fn list_raw(
    api_version: &str,
    kind: &str,
    params: &ListParams,
) -> Result<Vec<String>, ProbeError> {
    let mut items = Vec::new();
    let mut token = None;
    loop {
        let page = host::list(
            api_version,
            kind,
            &host::ListOptions {
                namespace: params.namespace.clone(),
                label_selector: params.label_selector.clone(),
                field_selector: params.field_selector.clone(),
                limit: params.page_size,
                continue_token: token.take(),
            },
        )?;
        items.extend(page.items);
        match page.continue_token {
            Some(t) if !t.is_empty() => token = Some(t),
            _ => return Ok(items),
        }
    }
}

/// Every object of a kind, as parsed JSON values.
pub fn list_values(
    api_version: &str,
    kind: &str,
    params: &ListParams,
) -> Result<Vec<serde_json::Value>, ProbeError> {
    list_raw(api_version, kind, params)?
        .iter()
        .map(|j| parse(kind, j))
        .collect()
}

/// Every object of a typed kind.
pub fn list<K>(params: &ListParams) -> Result<Vec<K>, ProbeError>
where
    K: k8s_openapi::Resource + DeserializeOwned,
{
    list_raw(K::API_VERSION, K::KIND, params)?
        .iter()
        .map(|j| parse(K::KIND, j))
        .collect()
}

/// One object of a typed kind; `namespace` is `None` for cluster-scoped kinds.
pub fn get<K>(namespace: Option<&str>, name: &str) -> Result<K, ProbeError>
where
    K: k8s_openapi::Resource + DeserializeOwned,
{
    let json = host::get(K::API_VERSION, K::KIND, namespace, name)?;
    parse(K::KIND, &json)
}

pub use host::{LogOptions, discover, pod_logs, server_version};
