//! KubeEye's `rule.yaml` (Polaris's config format): `checks` gives each
//! check id a severity (`warning`, `danger`, `ignore`), `customChecks`
//! defines them (a message, a category, a target and a JSON schema). Each
//! check is read and compiled on its own, so one bad check is an error naming
//! the file and its line while the others still run.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use sonde_sdk::Severity;

/// A rule file the host read, by the path the operator knows it by.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    pub path: String,
    pub text: String,
}

/// What a check validates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Target {
    /// Each container of the pod spec, init containers included.
    Container,
    /// The pod spec.
    Pod,
    /// The workload object itself.
    Controller,
}

/// `include`/`exclude` lists (of `container`/`initContainer`, or of controller kinds).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncludeExclude {
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
}

impl IncludeExclude {
    /// Polaris's rule: included when `include` is empty or names it, and
    /// `exclude` does not (names compared without case, as Polaris reads kinds).
    pub fn admits(&self, name: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|i| i.eq_ignore_ascii_case(name)))
            && !self.exclude.iter().any(|e| e.eq_ignore_ascii_case(name))
    }
}

/// A custom check as written (fields Sonde does not use are ignored, as Polaris does).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CheckSpec {
    #[serde(default)]
    prompt_message: Option<String>,
    #[serde(default)]
    failure_message: Option<String>,
    #[serde(default)]
    category: String,
    target: Target,
    #[serde(default)]
    schema_target: Option<Target>,
    #[serde(default)]
    containers: IncludeExclude,
    #[serde(default)]
    controllers: IncludeExclude,
    #[serde(default)]
    schema: Option<serde_yaml::Value>,
    #[serde(default)]
    json_schema: Option<String>,
}

/// A check ready to run.
#[derive(Debug)]
pub struct Check {
    pub id: String,
    pub file: String,
    pub severity: Severity,
    pub message: String,
    pub category: String,
    pub target: Target,
    /// For container checks: validate the pod spec holding only that container.
    pub pod_schema_target: bool,
    pub containers: IncludeExclude,
    pub controllers: IncludeExclude,
    pub validator: jsonschema::Validator,
}

/// A problem with a rule file or one of its checks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// The file is not YAML, or not a mapping.
    #[error("{file}{}: {message}", at(*line, *column))]
    File {
        file: String,
        line: Option<usize>,
        column: Option<usize>,
        message: String,
    },
    /// One check cannot run.
    #[error("{file}{}: check {id}: {message}", at(*line, None))]
    Check {
        file: String,
        id: String,
        line: Option<usize>,
        message: String,
    },
}

fn at(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(":{l}:{c}"),
        (Some(l), None) => format!(":{l}"),
        _ => String::new(),
    }
}

/// The 1-based line of `key` directly under the top-level `section` of a
/// block-style YAML text (where Polaris configs write their checks).
pub fn key_line(text: &str, section: &str, key: &str) -> Option<usize> {
    let unquote = |k: &str| k.trim().trim_matches(|c| c == '"' || c == '\'').to_string();
    let mut in_section = false;
    let mut child_indent = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with("---") {
            continue;
        }
        let indent = line.len() - trimmed.len();
        let name = trimmed.split_once(':').map(|(k, _)| unquote(k));
        if indent == 0 {
            in_section = name.as_deref() == Some(section);
            child_indent = None;
            continue;
        }
        if !in_section {
            continue;
        }
        let child = *child_indent.get_or_insert(indent);
        if indent == child && name.as_deref() == Some(key) {
            return Some(i + 1);
        }
    }
    None
}

/// What reading one file produced.
#[derive(Debug, Default)]
pub struct Loaded {
    pub checks: Vec<Check>,
    pub errors: Vec<RuleError>,
    /// Things that do not stop a check but the operator should know.
    pub warnings: Vec<String>,
}

fn severity_of(level: &str) -> Result<Option<Severity>, String> {
    match level {
        "warning" => Ok(Some(Severity::Medium)),
        "danger" => Ok(Some(Severity::High)),
        "ignore" => Ok(None),
        other => Err(format!(
            "severity {other:?} is not warning, danger or ignore"
        )),
    }
}

fn mapping<'a>(
    doc: &'a serde_yaml::Mapping,
    key: &str,
    file: &str,
    text: &str,
) -> Result<Option<&'a serde_yaml::Mapping>, RuleError> {
    match doc.get(key) {
        None | Some(serde_yaml::Value::Null) => Ok(None),
        Some(serde_yaml::Value::Mapping(m)) => Ok(Some(m)),
        Some(_) => Err(RuleError::File {
            file: file.into(),
            line: text
                .lines()
                .position(|l| l.starts_with(&format!("{key}:")))
                .map(|i| i + 1),
            column: None,
            message: format!("`{key}` must be a mapping of check ids"),
        }),
    }
}

/// Reads a rule file: its enabled custom checks, compiled.
pub fn load(file: &RuleFile) -> Loaded {
    let mut out = Loaded::default();
    let path = file.path.as_str();
    let file_error = |e: serde_yaml::Error| {
        let loc = e.location();
        RuleError::File {
            file: path.into(),
            line: loc.as_ref().map(|l| l.line()),
            column: loc.as_ref().map(|l| l.column()),
            message: e.to_string(),
        }
    };
    let doc: serde_yaml::Value = match serde_yaml::from_str(&file.text) {
        Ok(d) => d,
        Err(e) => {
            out.errors.push(file_error(e));
            return out;
        }
    };
    let Some(doc) = doc.as_mapping() else {
        out.errors.push(RuleError::File {
            file: path.into(),
            line: None,
            column: None,
            message: "expected a mapping with `checks` and `customChecks`".into(),
        });
        return out;
    };
    let (checks, custom) = match (
        mapping(doc, "checks", path, &file.text),
        mapping(doc, "customChecks", path, &file.text),
    ) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            out.errors.push(e);
            return out;
        }
    };
    let mut custom_by_id: BTreeMap<String, &serde_yaml::Value> = BTreeMap::new();
    for (k, v) in custom.into_iter().flatten() {
        if let Some(id) = k.as_str() {
            custom_by_id.insert(id.to_string(), v);
        }
    }
    let mut enabled: Vec<(String, &serde_yaml::Value)> = checks
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v)))
        .collect();
    enabled.sort_by(|a, b| a.0.cmp(&b.0));
    for (id, level) in enabled {
        let check_error = |section: &str, message: String| RuleError::Check {
            file: path.into(),
            id: id.clone(),
            line: key_line(&file.text, section, &id),
            message,
        };
        let spec = custom_by_id.remove(&id);
        let severity = match severity_of(level.as_str().unwrap_or_default()) {
            Ok(Some(s)) => s,
            Ok(None) => continue,
            Err(e) => {
                out.errors.push(check_error("checks", e));
                continue;
            }
        };
        let Some(spec) = spec else {
            out.warnings.push(format!(
                "{path}{}: check {id} is not defined in customChecks (Polaris's built-in checks are not run here; workload-audit covers them): skipped",
                at(key_line(&file.text, "checks", &id), None)
            ));
            continue;
        };
        match compile(&id, path, severity, spec) {
            Ok(check) => out.checks.push(check),
            Err(e) => out.errors.push(check_error("customChecks", e)),
        }
    }
    for id in custom_by_id.keys() {
        out.warnings.push(format!(
            "{path}{}: check {id} is defined but not enabled in `checks`: not run",
            at(key_line(&file.text, "customChecks", id), None)
        ));
    }
    out
}

fn compile(
    id: &str,
    file: &str,
    severity: Severity,
    spec: &serde_yaml::Value,
) -> Result<Check, String> {
    let spec: CheckSpec = serde_yaml::from_value(spec.clone()).map_err(|e| e.to_string())?;
    let schema: Value = match (&spec.schema, &spec.json_schema) {
        (Some(_), Some(_)) => return Err("has both `schema` and `jsonSchema`".into()),
        (Some(s), None) => serde_json::to_value(s).map_err(|e| format!("schema: {e}"))?,
        (None, Some(text)) => {
            serde_json::from_str(text).map_err(|e| format!("jsonSchema is not JSON: {e}"))?
        }
        (None, None) => return Err("has no `schema` (or `jsonSchema`)".into()),
    };
    let validator = crate::quantity::options()
        .build(&schema)
        .map_err(|e| format!("invalid schema: {e}"))?;
    let pod_schema_target = match (spec.target, spec.schema_target) {
        (_, None) => false,
        (Target::Container, Some(Target::Pod)) => true,
        (t, Some(s)) if t == s => false,
        (_, Some(s)) => {
            return Err(format!(
                "schemaTarget {s:?} applies only to Container checks (as Pod)"
            ));
        }
    };
    Ok(Check {
        id: id.into(),
        file: file.into(),
        severity,
        message: spec
            .prompt_message
            .or(spec.failure_message)
            .filter(|m| !m.trim().is_empty())
            .unwrap_or_else(|| format!("fails check {id}")),
        category: spec.category,
        target: spec.target,
        pod_schema_target,
        containers: spec.containers,
        controllers: spec.controllers,
        validator,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn file(text: &str) -> RuleFile {
        RuleFile {
            path: "rule.yaml".into(),
            text: text.into(),
        }
    }

    const SEED: &str = "checks:
  imageFromUnauthorizedRegistry: warning

customChecks:
  imageFromUnauthorizedRegistry:
    promptMessage: When the corresponding rule does not match. Show that image from an unauthorized registry.
    category: Images
    target: Container
    schema:
      '$schema': http://json-schema.org/draft-07/schema
      type: object
      properties:
        image:
          type: string
          not:
            pattern: ^quay.io
";

    #[test]
    fn the_seed_rule_file_loads() {
        let loaded = load(&file(SEED));
        assert!(
            loaded.errors.is_empty() && loaded.warnings.is_empty(),
            "{loaded:?}"
        );
        let c = &loaded.checks[0];
        assert_eq!(
            (c.id.as_str(), c.severity, c.target, c.category.as_str()),
            (
                "imageFromUnauthorizedRegistry",
                Severity::Medium,
                Target::Container,
                "Images"
            )
        );
        assert!(
            c.message
                .starts_with("When the corresponding rule does not match")
        );
        assert!(
            c.validator
                .is_valid(&json!({"name": "a", "image": "nginx:1.25"}))
        );
        assert!(
            !c.validator
                .is_valid(&json!({"name": "a", "image": "quay.io/x/y:1"}))
        );
    }

    #[test]
    fn lines_of_checks_are_found() {
        assert_eq!(
            key_line(SEED, "checks", "imageFromUnauthorizedRegistry"),
            Some(2)
        );
        assert_eq!(
            key_line(SEED, "customChecks", "imageFromUnauthorizedRegistry"),
            Some(5)
        );
        // A deeper key of the same name is not the check.
        assert_eq!(
            key_line("customChecks:\n  a:\n    b: 1\n  b:\n", "customChecks", "b"),
            Some(4)
        );
        assert_eq!(key_line(SEED, "customChecks", "missing"), None);
    }

    #[test]
    fn a_bad_check_is_an_error_with_its_line_and_the_others_load() {
        let text = "checks:
  good: danger
  badSchema: warning
  badTarget: warning
  ignored: ignore
  weird: fatal

customChecks:
  good:
    failureMessage: Must have a name
    target: Pod
    schema: {required: [containers]}
  badSchema:
    target: Container
    schema:
      type: strin
  badTarget:
    target: Namespace
    schema: {}
  ignored:
    target: Pod
    schema: {type: strin}
  weird:
    target: Pod
    schema: {}
";
        let loaded = load(&file(text));
        assert_eq!(loaded.checks.len(), 1);
        assert_eq!(loaded.checks[0].severity, Severity::High);
        assert_eq!(loaded.checks[0].message, "Must have a name");
        let errors: Vec<String> = loaded.errors.iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(
            errors[0].starts_with("rule.yaml:13: check badSchema: invalid schema"),
            "{}",
            errors[0]
        );
        assert!(
            errors[1].starts_with("rule.yaml:17: check badTarget: "),
            "{}",
            errors[1]
        );
        assert!(
            errors[2].starts_with("rule.yaml:6: check weird: severity \"fatal\""),
            "{}",
            errors[2]
        );
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    }

    #[test]
    fn malformed_yaml_is_an_error_with_line_and_column() {
        let loaded = load(&file("checks:\n  a: warning\n customChecks: [\n"));
        assert!(loaded.checks.is_empty());
        let e = loaded.errors[0].to_string();
        assert!(e.starts_with("rule.yaml:3:"), "{e}");
    }

    #[test]
    fn built_in_and_disabled_checks_are_warnings() {
        let loaded = load(&file(
            "checks:\n  cpuLimitsMissing: warning\ncustomChecks:\n  unused:\n    target: Pod\n    schema: {}\n",
        ));
        assert!(loaded.checks.is_empty() && loaded.errors.is_empty());
        assert_eq!(loaded.warnings.len(), 2);
        assert!(
            loaded.warnings[0].starts_with("rule.yaml:2: check cpuLimitsMissing is not defined")
        );
        assert!(
            loaded.warnings[1].starts_with("rule.yaml:4: check unused is defined but not enabled")
        );
    }

    #[test]
    fn json_schema_strings_and_schema_targets() {
        let loaded = load(&file(
            "checks:\n  a: warning\n  b: warning\ncustomChecks:\n  a:\n    target: Container\n    schemaTarget: Pod\n    jsonSchema: '{\"required\": [\"containers\"]}'\n  b:\n    target: Pod\n    schemaTarget: Container\n    schema: {}\n",
        ));
        assert_eq!(loaded.checks.len(), 1);
        assert!(loaded.checks[0].pod_schema_target);
        assert!(
            loaded.errors[0]
                .to_string()
                .contains("check b: schemaTarget")
        );
    }

    #[test]
    fn remote_refs_are_not_fetched() {
        let loaded = load(&file(
            "checks:\n  remote: warning\ncustomChecks:\n  remote:\n    target: Pod\n    schema:\n      $ref: https://example.com/pod.json\n",
        ));
        assert!(loaded.checks.is_empty());
        let e = loaded.errors[0].to_string();
        assert!(
            e.starts_with("rule.yaml:4: check remote: invalid schema"),
            "{e}"
        );
    }

    #[test]
    fn include_exclude_follows_polaris() {
        let any = IncludeExclude::default();
        assert!(any.admits("initContainer"));
        let only = IncludeExclude {
            include: vec!["container".into()],
            exclude: vec![],
        };
        assert!(only.admits("container") && !only.admits("initContainer"));
        let not = IncludeExclude {
            include: vec![],
            exclude: vec!["Job".into()],
        };
        assert!(!not.admits("Job") && not.admits("Deployment"));
    }
}
