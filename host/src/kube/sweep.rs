//! Deleting what an earlier, crashed run left behind: objects labelled
//! `sonde.dev/run` (every object a probe creates is) older than any run can
//! last, so the runs of another Sonde still in progress are left alone.

use std::time::Duration;

use super::selector::LabelSelector;
use super::{KindRef, KubeBackend, KubeError, ListQuery};

/// The label every object created by a probe carries, with the run's id.
pub const RUN_LABEL: &str = "sonde.dev/run";
/// The label naming the probe that created an object.
pub const PROBE_LABEL: &str = "sonde.dev/probe";

/// Deletes objects of `kinds` labelled by a run and created more than `older_than` before `now`.
/// Returns what was deleted, as `Kind namespace/name`.
pub async fn sweep_leftovers(
    backend: &dyn KubeBackend,
    kinds: &[KindRef],
    older_than: Duration,
    now: jiff::Timestamp,
) -> Result<Vec<String>, KubeError> {
    let labels = LabelSelector::parse(RUN_LABEL).map_err(|e| KubeError::Invalid(e.to_string()))?;
    let query = ListQuery {
        labels,
        raw_labels: Some(RUN_LABEL.into()),
        ..Default::default()
    };
    let cutoff =
        now - jiff::SignedDuration::try_from(older_than).unwrap_or(jiff::SignedDuration::ZERO);
    let mut swept = Vec::new();
    for kind in kinds {
        let page = match backend.list(kind, &query).await {
            Ok(p) => p,
            Err(KubeError::NotFound(_) | KubeError::Forbidden(_)) => continue,
            Err(e) => return Err(e),
        };
        for object in page.items {
            let created = object.value["metadata"]["creationTimestamp"]
                .as_str()
                .and_then(|t| t.parse::<jiff::Timestamp>().ok());
            if created.is_some_and(|c| c < cutoff) {
                match backend
                    .delete(kind, object.namespace.as_deref(), &object.name)
                    .await
                {
                    Ok(()) | Err(KubeError::NotFound(_)) => swept.push(format!(
                        "{kind} {}/{}",
                        object.namespace.as_deref().unwrap_or(""),
                        object.name
                    )),
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(swept)
}

/// The concrete kinds a grant lets a probe create (wildcards cannot be swept by listing).
pub fn creatable_kinds(grants: &crate::grants::GrantSet) -> Vec<KindRef> {
    let mut kinds = Vec::new();
    for rule in &grants.kube {
        if !rule.verbs.iter().any(|v| v == "create" || v == "*") {
            continue;
        }
        for resource in &rule.resources {
            let (group, kind) = resource.rsplit_once('/').unwrap_or(("", resource));
            if kind != "*" && group != "*" {
                let k = KindRef {
                    group: group.to_string(),
                    kind: kind.to_string(),
                };
                if !kinds.contains(&k) {
                    kinds.push(k);
                }
            }
        }
    }
    kinds
}
