//! The objects of every kind that some finding is about, listed once per
//! kind from the cluster source: their annotations (for exemptions) and how
//! many there are per namespace (for the score).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::audit::AuditReport;
use crate::kube::{KindRef, KubeBackend, ListQuery};

/// An object's identity within its kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub kind: KindRef,
    /// Empty for cluster-scoped objects.
    pub namespace: String,
    pub name: String,
}

/// The listed objects.
#[derive(Debug, Default)]
pub struct Inventory {
    /// Annotations of every listed object.
    pub annotations: HashMap<ObjectKey, BTreeMap<String, String>>,
    /// The kinds that were listed completely.
    pub kinds: BTreeSet<KindRef>,
    /// Kinds that could not be listed, with why.
    pub problems: Vec<String>,
}

/// Page size of the inventory's lists.
const PAGE: u32 = 500;

impl Inventory {
    /// Lists every kind some finding of `report` is about.
    pub async fn for_report(report: &AuditReport, backend: &dyn KubeBackend) -> Self {
        let kinds: BTreeSet<KindRef> = report
            .findings()
            .filter_map(|(_, f)| f.resource.as_ref())
            .filter(|r| !r.kind.is_empty())
            .map(|r| KindRef::new(&r.api_version, &r.kind))
            .collect();
        let mut inventory = Inventory::default();
        for kind in kinds {
            match list_all(backend, &kind, &mut inventory.annotations).await {
                Ok(()) => {
                    inventory.kinds.insert(kind);
                }
                Err(e) => inventory
                    .problems
                    .push(format!("cannot list {kind} for exemptions and score: {e}")),
            }
        }
        inventory
    }

    /// The annotations of an object, if it was listed.
    pub fn annotations_of(&self, key: &ObjectKey) -> Option<&BTreeMap<String, String>> {
        self.annotations.get(key)
    }

    /// How many listed objects each namespace (`""`: cluster-scoped) holds.
    pub fn objects_per_namespace(&self) -> BTreeMap<&str, usize> {
        let mut counts = BTreeMap::new();
        for key in self.annotations.keys() {
            *counts.entry(key.namespace.as_str()).or_insert(0) += 1;
        }
        counts
    }
}

async fn list_all(
    backend: &dyn KubeBackend,
    kind: &KindRef,
    into: &mut HashMap<ObjectKey, BTreeMap<String, String>>,
) -> Result<(), crate::kube::KubeError> {
    let mut query = ListQuery {
        limit: Some(PAGE),
        ..Default::default()
    };
    loop {
        let page = backend.list(kind, &query).await?;
        for item in &page.items {
            let annotations = item
                .value
                .pointer("/metadata/annotations")
                .and_then(|a| a.as_object())
                .map(|a| {
                    a.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                        .collect()
                })
                .unwrap_or_default();
            into.insert(
                ObjectKey {
                    kind: kind.clone(),
                    namespace: item.namespace.clone().unwrap_or_default(),
                    name: item.name.clone(),
                },
                annotations,
            );
        }
        match page.continue_token {
            Some(token) if !token.is_empty() => query.continue_token = Some(token),
            _ => return Ok(()),
        }
    }
}
