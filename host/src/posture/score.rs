//! The 0-100 score per namespace and for the cluster.
//!
//! Each finding weighs by its severity: critical 1, high 0.5, medium 0.2,
//! low 0.05, info 0. An object's penalty is the sum of its findings' weights,
//! capped at 1 (one critical finding, or two high ones, make an object fully
//! unhealthy). The objects counted are every object of the kinds that some
//! finding is about (listed from the cluster), so clean objects of those kinds
//! raise the score; an object found but not listed still counts. Findings
//! about the cluster as a whole count as one more object, "the cluster".
//!
//! score = round(100 * (1 - sum of penalties / objects)), per namespace over
//! its objects, and for the cluster over all objects, cluster-scoped included.
//! No objects: 100.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::inventory::{Inventory, ObjectKey};
use crate::audit::AuditReport;
use crate::bindings::Severity;
use crate::kube::KindRef;

/// The weight of one finding of `severity`.
pub fn weight(severity: Severity) -> f64 {
    match severity {
        Severity::Critical => 1.0,
        Severity::High => 0.5,
        Severity::Medium => 0.2,
        Severity::Low => 0.05,
        Severity::Info => 0.0,
    }
}

/// One namespace's score.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceScore {
    pub score: u8,
    /// Objects counted.
    pub objects: usize,
    /// Objects with at least one finding.
    pub affected: usize,
    pub findings: usize,
}

/// The cluster's and each namespace's score.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Score {
    pub cluster: NamespaceScore,
    /// Per namespace (cluster-scoped objects count only for the cluster).
    pub namespaces: BTreeMap<String, NamespaceScore>,
}

#[derive(Default)]
struct Tally {
    objects: usize,
    affected: usize,
    findings: usize,
    penalty: f64,
}

impl Tally {
    fn score(&self) -> NamespaceScore {
        let score = if self.objects == 0 {
            100.0
        } else {
            100.0 * (1.0 - self.penalty / self.objects as f64)
        };
        NamespaceScore {
            score: score.round().clamp(0.0, 100.0) as u8,
            objects: self.objects,
            affected: self.affected,
            findings: self.findings,
        }
    }
}

impl Score {
    /// Scores the findings of `report` over the objects of `inventory`.
    pub fn of(report: &AuditReport, inventory: &Inventory) -> Self {
        // Penalty and finding count per object; `None` is the cluster itself.
        let mut per_object: HashMap<Option<ObjectKey>, (f64, usize)> = HashMap::new();
        for (_, f) in report.findings() {
            let key = f.resource.as_ref().map(|r| ObjectKey {
                kind: KindRef::new(&r.api_version, &r.kind),
                namespace: r.namespace.clone().unwrap_or_default(),
                name: r.name.clone(),
            });
            let entry = per_object.entry(key).or_insert((0.0, 0));
            entry.0 += weight(f.severity);
            entry.1 += 1;
        }
        let mut namespaces: BTreeMap<String, Tally> = BTreeMap::new();
        let mut cluster = Tally::default();
        for (ns, n) in inventory.objects_per_namespace() {
            cluster.objects += n;
            if !ns.is_empty() {
                namespaces.entry(ns.to_string()).or_default().objects += n;
            }
        }
        for (key, (penalty, findings)) in per_object {
            let penalty = penalty.min(1.0);
            let listed = key
                .as_ref()
                .is_some_and(|k| inventory.annotations_of(k).is_some());
            let mut tallies = vec![&mut cluster];
            let ns_tally = key
                .as_ref()
                .filter(|k| !k.namespace.is_empty())
                .map(|k| namespaces.entry(k.namespace.clone()).or_default());
            tallies.extend(ns_tally);
            for t in tallies {
                if !listed {
                    t.objects += 1;
                }
                t.affected += 1;
                t.findings += findings;
                t.penalty += penalty;
            }
        }
        Score {
            cluster: cluster.score(),
            namespaces: namespaces
                .into_iter()
                .map(|(ns, t)| (ns, t.score()))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditReport;
    use crate::bindings::{Finding, ResourceRef};
    use crate::runtime::{RunOutcome, RunStatus};

    fn finding(sev: Severity, ns: Option<&str>, name: &str) -> Finding {
        Finding {
            rule: "R".into(),
            severity: sev,
            resource: Some(ResourceRef {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                namespace: ns.map(Into::into),
                name: name.into(),
                uid: None,
            }),
            message: String::new(),
            remedy: None,
            labels: Vec::new(),
        }
    }

    fn report(findings: Vec<Finding>) -> AuditReport {
        AuditReport {
            source: "test".into(),
            started_at: String::new(),
            input_issues: Vec::new(),
            probes: Vec::new(),
            runs: vec![RunOutcome {
                probe: "p".into(),
                run_id: "r".into(),
                status: RunStatus::Succeeded,
                reason: None,
                findings,
                logs: Vec::new(),
                denials: Vec::new(),
                duration: Default::default(),
            }],
            exempted: Vec::new(),
            score: None,
        }
    }

    fn inventory(objects: &[(&str, &str)]) -> Inventory {
        let mut inv = Inventory::default();
        for (ns, name) in objects {
            inv.annotations.insert(
                ObjectKey {
                    kind: KindRef::new("apps/v1", "Deployment"),
                    namespace: ns.to_string(),
                    name: name.to_string(),
                },
                Default::default(),
            );
        }
        inv
    }

    #[test]
    fn clean_objects_raise_the_score_and_penalties_cap_at_one() {
        let inv = inventory(&[("a", "x"), ("a", "y"), ("a", "z"), ("a", "w"), ("b", "v")]);
        let r = report(vec![
            // x: 3 criticals, capped at 1.
            finding(Severity::Critical, Some("a"), "x"),
            finding(Severity::Critical, Some("a"), "x"),
            finding(Severity::Critical, Some("a"), "x"),
            // y: one medium, 0.2.
            finding(Severity::Medium, Some("a"), "y"),
        ]);
        let s = Score::of(&r, &inv);
        // a: 1 - 1.2 / 4 = 0.7
        assert_eq!(
            s.namespaces["a"],
            NamespaceScore {
                score: 70,
                objects: 4,
                affected: 2,
                findings: 4
            }
        );
        assert_eq!(s.namespaces["b"].score, 100);
        // cluster: 1 - 1.2 / 5 = 0.76
        assert_eq!(s.cluster.score, 76);
        assert_eq!(s.cluster.objects, 5);
    }

    #[test]
    fn unlisted_objects_and_cluster_findings_still_count() {
        let mut cluster_wide = finding(Severity::High, None, "");
        cluster_wide.resource = None;
        let r = report(vec![
            finding(Severity::High, Some("gone"), "x"),
            cluster_wide,
        ]);
        let s = Score::of(&r, &Inventory::default());
        assert_eq!(s.namespaces["gone"].score, 50);
        assert_eq!(s.namespaces["gone"].objects, 1);
        // Two objects (x and the cluster), 0.5 each.
        assert_eq!(s.cluster.objects, 2);
        assert_eq!(s.cluster.score, 50);
        assert_eq!(
            Score::of(&report(vec![]), &Inventory::default())
                .cluster
                .score,
            100
        );
    }

    #[test]
    fn info_findings_do_not_lower_the_score() {
        let inv = inventory(&[("a", "x")]);
        let s = Score::of(&report(vec![finding(Severity::Info, Some("a"), "x")]), &inv);
        assert_eq!(s.namespaces["a"].score, 100);
        assert_eq!(s.namespaces["a"].affected, 1);
    }
}
