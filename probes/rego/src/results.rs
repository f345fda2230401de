//! KubeEye's result messages (`{Name, Namespace, Type, Message, Level,
//! Reason}`, matched without regard to case as Go's JSON decoding does)
//! turned into findings: the rule id is `Message`, the resource is what the
//! message names, with the evaluated object's apiVersion and uid.

use serde_json::Value;
use sonde_sdk::{Finding, ResourceRef, Severity};

use crate::RULES;

/// One result message of a rule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResultMessage {
    pub name: String,
    pub namespace: String,
    pub kind: String,
    pub message: String,
    pub level: String,
    pub reason: String,
}

/// Why a rule's value is not a list of result messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    /// The rule's value is not a set or array (KubeEye decodes each rule of the package as a list).
    #[error("rule `{rule}` is not a set of result messages ({{Name, Namespace, Type, Message}})")]
    NotASet { rule: String },
    /// An element is not an object.
    #[error(
        "rule `{rule}` yields {value}, not a result message ({{Name, Namespace, Type, Message}})"
    )]
    NotAnObject { rule: String, value: String },
    /// An element has no `Message`, which is the rule id.
    #[error("rule `{rule}` yields a result message without `Message`")]
    NoMessage { rule: String },
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

impl ResultMessage {
    /// Reads a message: fields by name, case-insensitively.
    pub fn parse(rule: &str, value: &Value) -> Result<Self, ShapeError> {
        let Value::Object(map) = value else {
            let mut shown = value.to_string();
            if shown.len() > 80 {
                let cut = (0..=80)
                    .rev()
                    .find(|i| shown.is_char_boundary(*i))
                    .unwrap_or(0);
                shown.truncate(cut);
                shown.push('…');
            }
            return Err(ShapeError::NotAnObject {
                rule: rule.into(),
                value: shown,
            });
        };
        // Go's encoding/json prefers an exact match, then any case-insensitive one.
        let field = |name: &str| {
            map.get(name)
                .or_else(|| {
                    map.iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(name))
                        .map(|(_, v)| v)
                })
                .map(text)
                .unwrap_or_default()
        };
        let msg = ResultMessage {
            name: field("Name"),
            namespace: field("Namespace"),
            kind: field("Type"),
            message: field("Message"),
            level: field("Level"),
            reason: field("Reason"),
        };
        if msg.message.is_empty() {
            return Err(ShapeError::NoMessage { rule: rule.into() });
        }
        Ok(msg)
    }

    /// Every result message of a rule's value, and what could not be read.
    pub fn all(rule: &str, value: &Value) -> (Vec<Self>, Vec<ShapeError>) {
        let Value::Array(items) = value else {
            return (Vec::new(), vec![ShapeError::NotASet { rule: rule.into() }]);
        };
        let mut messages = Vec::new();
        let mut errors = Vec::new();
        for item in items {
            match Self::parse(rule, item) {
                Ok(m) => messages.push(m),
                Err(e) => errors.push(e),
            }
        }
        (messages, errors)
    }

    /// The severity of `Level`: KubeEye's `danger`, `warning` (and its own rules'
    /// `waring`), `ignore`, or a Sonde severity; `None` when it is none of them.
    pub fn severity(&self) -> Option<Severity> {
        let level = self.level.trim().to_ascii_lowercase();
        Some(match level.as_str() {
            "" => Severity::Medium,
            "danger" | "dangerous" => Severity::High,
            "warning" | "waring" | "warn" => Severity::Medium,
            "ignore" => Severity::Info,
            "critical" => Severity::Critical,
            "high" => Severity::High,
            "medium" => Severity::Medium,
            "low" => Severity::Low,
            "info" => Severity::Info,
            _ => return None,
        })
    }

    /// The finding: about the resource the message names (the evaluated
    /// object's apiVersion and uid when it names that object).
    pub fn finding(&self, object: &ResourceRef, file: &str) -> Finding {
        let kind = if self.kind.is_empty() {
            object.kind.clone()
        } else {
            self.kind.clone()
        };
        let name = if self.name.is_empty() {
            object.name.clone()
        } else {
            self.name.clone()
        };
        let same_kind = kind == object.kind;
        let same_object = same_kind && name == object.name;
        let resource = ResourceRef {
            api_version: if same_kind {
                object.api_version.clone()
            } else {
                String::new()
            },
            kind,
            namespace: Some(self.namespace.clone()).filter(|n| !n.is_empty()),
            name,
            uid: if same_object {
                object.uid.clone()
            } else {
                None
            },
        };
        // The rule id is `Message`; the finding says why (`Reason`) or where from.
        let message = if self.reason.is_empty() {
            format!("reported by the Rego rules of {file}")
        } else {
            self.reason.clone()
        };
        let mut finding: Finding = RULES
            .finding(resource, message)
            .severity(self.severity().unwrap_or(Severity::Medium))
            .label("file", file)
            .into();
        finding.rule = self.message.clone();
        finding
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> ResourceRef {
        ResourceRef {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            namespace: Some("shop".into()),
            name: "web".into(),
            uid: Some("u1".into()),
        }
    }

    #[test]
    fn the_seed_message_becomes_a_finding_about_the_object() {
        let value = json!([{"Name": "web", "Namespace": "shop", "Type": "Deployment", "Message": "ImageRegistryNotmyregistry"}]);
        let (msgs, errors) = ResultMessage::all("deny", &value);
        assert!(errors.is_empty());
        let f = msgs[0].finding(&deployment(), "opa/imageRegistryRule.rego");
        assert_eq!(f.rule, "ImageRegistryNotmyregistry");
        assert_eq!(f.severity, Severity::Medium);
        assert_eq!(
            format!("{:?}", f.resource),
            format!("{:?}", Some(deployment()))
        );
        assert_eq!(
            f.message,
            "reported by the Rego rules of opa/imageRegistryRule.rego"
        );
        assert_eq!(
            f.labels,
            vec![("file".to_string(), "opa/imageRegistryRule.rego".to_string())]
        );
    }

    #[test]
    fn fields_match_without_case_and_levels_map_to_severities() {
        let msg = ResultMessage::parse(
            "deny",
            &json!({"name": "n1", "TYPE": "Node", "message": "NodeNotReady", "level": "danger", "reason": "Kubelet stopped"}),
        )
        .unwrap();
        assert_eq!(msg.kind, "Node");
        assert_eq!(msg.severity(), Some(Severity::High));
        let node = ResourceRef {
            api_version: "v1".into(),
            kind: "Node".into(),
            namespace: None,
            name: "n1".into(),
            uid: Some("n".into()),
        };
        let f = msg.finding(&node, "n.rego");
        assert_eq!(f.message, "Kubelet stopped");
        assert_eq!(format!("{:?}", f.resource), format!("{:?}", Some(node)));
        for (level, severity) in [
            ("warning", Some(Severity::Medium)),
            ("waring", Some(Severity::Medium)),
            ("ignore", Some(Severity::Info)),
            ("Critical", Some(Severity::Critical)),
            ("", Some(Severity::Medium)),
            ("urgent", None),
        ] {
            let m = ResultMessage {
                level: level.into(),
                ..msg.clone()
            };
            assert_eq!(m.severity(), severity, "{level}");
        }
    }

    #[test]
    fn another_object_named_by_the_message_gets_no_uid() {
        let msg = ResultMessage::parse(
            "deny",
            &json!({"Name": "other", "Type": "Deployment", "Message": "M"}),
        )
        .unwrap();
        let r = msg.finding(&deployment(), "f").resource.unwrap();
        assert_eq!((r.name.as_str(), r.uid, r.namespace), ("other", None, None));
        assert_eq!(r.api_version, "apps/v1");
    }

    #[test]
    fn shapes_kubeeye_cannot_decode_are_errors() {
        assert_eq!(
            ResultMessage::all("allow", &json!(true)),
            (
                vec![],
                vec![ShapeError::NotASet {
                    rule: "allow".into()
                }]
            )
        );
        let (ok, errors) = ResultMessage::all(
            "deny",
            &json!(["just text", {"Name": "x"}, {"Message": "Fine"}]),
        );
        assert_eq!(ok.len(), 1);
        assert!(matches!(errors[0], ShapeError::NotAnObject { .. }));
        assert_eq!(
            errors[1],
            ShapeError::NoMessage {
                rule: "deny".into()
            }
        );
    }
}
