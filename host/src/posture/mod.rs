//! What a report says beyond the raw findings: exemptions the operator
//! declared (annotations on objects, or a config file) and a 0-100 score per
//! namespace and for the cluster. Both read an inventory of the objects the
//! findings are about, listed once per kind from the cluster source.

pub mod exempt;
pub mod inventory;
pub mod score;

pub use exempt::{Exempted, ExemptionError, Exemptions};
pub use inventory::Inventory;
pub use score::{NamespaceScore, Score};

use crate::audit::AuditReport;
use crate::kube::KubeBackend;

/// Applies `exemptions` to `report` (exempted findings move to `report.exempted`)
/// and scores what remains. `backend` is the audited cluster, if any.
pub async fn assess(
    report: &mut AuditReport,
    exemptions: &Exemptions,
    backend: Option<&dyn KubeBackend>,
) {
    let inventory = match backend {
        Some(b) => Inventory::for_report(report, b).await,
        None => Inventory::default(),
    };
    for problem in &inventory.problems {
        tracing::warn!("{problem}");
    }
    exemptions.apply(report, &inventory);
    report.score = Some(Score::of(report, &inventory));
}
