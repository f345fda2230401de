//! The operator's Rego modules, each compiled into an engine of its own (as
//! KubeEye evaluates each file alone), with the KubeEye package it belongs
//! to. Rules are Rego v0 as KubeEye's OPA read them; a file in v1 syntax is
//! accepted too. Errors name the file, line and column.

use regorus::Engine;
use serde::Deserialize;

/// A Rego file the host read, by the path the operator knows it by.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleText {
    pub path: String,
    pub text: String,
}

/// What KubeEye evaluates a package against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// `kubeeye_workloads_rego`: each workload.
    Workloads,
    /// `kubeeye_RBAC_rego`: each Role and ClusterRole.
    Rbac,
    /// `kubeeye_nodes_rego`: each Node.
    Nodes,
    /// `kubeeye_events_rego`: each Event.
    Events,
}

impl Target {
    /// Every target, with its package.
    pub const ALL: [(Target, &'static str); 4] = [
        (Target::Workloads, "kubeeye_workloads_rego"),
        (Target::Rbac, "kubeeye_RBAC_rego"),
        (Target::Nodes, "kubeeye_nodes_rego"),
        (Target::Events, "kubeeye_events_rego"),
    ];

    /// The package's name.
    pub fn package(self) -> &'static str {
        Target::ALL
            .iter()
            .find(|(t, _)| *t == self)
            .map(|(_, p)| *p)
            .unwrap_or_default()
    }

    /// The target of `data.<package>`, if KubeEye evaluates that package.
    fn of_package(data_path: &str) -> Option<Target> {
        let package = data_path.strip_prefix("data.")?;
        Target::ALL
            .iter()
            .find(|(_, p)| *p == package)
            .map(|(t, _)| *t)
    }
}

/// A problem with one module, located when the engine says where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModuleError {
    /// The module does not parse or compile.
    #[error("{}: {message}", location(path, *line, *column))]
    Invalid {
        path: String,
        line: Option<u32>,
        column: Option<u32>,
        message: String,
    },
    /// Evaluating the module against an object failed.
    #[error("{}: evaluating it against {object} failed: {message}", location(path, *line, *column))]
    Eval {
        path: String,
        object: String,
        line: Option<u32>,
        column: Option<u32>,
        message: String,
    },
}

fn location(path: &str, line: Option<u32>, column: Option<u32>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!("{path}:{l}:{c}"),
        (Some(l), None) => format!("{path}:{l}"),
        _ => path.to_string(),
    }
}

/// Where and what, from a regorus error. Its located errors read
/// `\n--> file:line:col\n  |\n3 | source\n  |   ^\nerror: message`.
pub(crate) fn locate(error: &str) -> (Option<u32>, Option<u32>, String) {
    let mut line = None;
    let mut column = None;
    if let Some(at) = error.find("--> ") {
        let place = error[at + 4..].lines().next().unwrap_or_default();
        let mut parts = place.rsplitn(3, ':');
        column = parts.next().and_then(|c| c.trim().parse().ok());
        line = parts.next().and_then(|l| l.trim().parse().ok());
        if line.is_none() {
            column = None;
        }
    }
    let message = error
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("error: "))
        .map(str::to_string)
        .unwrap_or_else(|| {
            error
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        });
    (line, column, message)
}

/// One compiled module.
#[derive(Debug, Clone)]
pub struct Module {
    pub path: String,
    /// `data.<package>` as written.
    pub package: String,
    /// Absent when KubeEye does not evaluate this package.
    pub target: Option<Target>,
    pub(crate) engine: Engine,
}

fn engine_for(module: &ModuleText, rego_v0: bool) -> Result<(Engine, String), String> {
    let mut engine = Engine::new();
    engine.set_rego_v0(rego_v0);
    // As KubeEye's OPA (not in strict mode): a builtin's error makes its
    // expression undefined rather than failing the whole evaluation.
    engine.set_strict_builtin_errors(false);
    let package = engine
        .add_policy(module.path.clone(), module.text.clone())
        .map_err(|e| format!("{e:#}"))?;
    Ok((engine, package))
}

/// Parses and compiles a module: as Rego v0 first (KubeEye's), else as v1.
pub fn compile(module: &ModuleText) -> Result<Module, ModuleError> {
    let (engine, package) = match engine_for(module, true) {
        Ok(ok) => ok,
        Err(v0_error) => match engine_for(module, false) {
            Ok(ok) => ok,
            Err(_) => {
                let (line, column, message) = locate(&v0_error);
                return Err(ModuleError::Invalid {
                    path: module.path.clone(),
                    line,
                    column,
                    message,
                });
            }
        },
    };
    Ok(Module {
        path: module.path.clone(),
        target: Target::of_package(&package),
        package,
        engine,
    })
}

impl Module {
    /// Evaluates the module's package with `input` and returns the value of
    /// each of its rules (`deny` and any other), as JSON.
    pub fn evaluate(
        &mut self,
        input: regorus::Value,
        object: &str,
    ) -> Result<Vec<(String, serde_json::Value)>, ModuleError> {
        self.engine.set_input(input);
        let eval_error = |e: String| {
            let (line, column, message) = locate(&e);
            ModuleError::Eval {
                path: self.path.clone(),
                object: object.to_string(),
                line,
                column,
                message,
            }
        };
        let results = self
            .engine
            .eval_query(self.package.clone(), false)
            .map_err(|e| eval_error(format!("{e:#}")))?;
        let mut rules = Vec::new();
        for result in results.result {
            for expression in result.expressions {
                let value = serde_json::to_value(&expression.value)
                    .map_err(|e| eval_error(e.to_string()))?;
                if let serde_json::Value::Object(map) = value {
                    rules.extend(map);
                }
            }
        }
        Ok(rules)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text(path: &str, text: &str) -> ModuleText {
        ModuleText {
            path: path.into(),
            text: text.into(),
        }
    }

    #[test]
    fn a_v0_module_compiles_with_its_package() {
        let m = compile(&text(
            "opa/a.rego",
            "package kubeeye_RBAC_rego\n\ndeny[msg] {\n  input.Object.kind == \"Role\"\n  msg := {\"Message\": \"X\"}\n}\n",
        ))
        .unwrap();
        assert_eq!(m.package, "data.kubeeye_RBAC_rego");
        assert_eq!(m.target, Some(Target::Rbac));
    }

    #[test]
    fn a_v1_module_compiles_too() {
        let m = compile(&text(
            "v1.rego",
            "package kubeeye_nodes_rego\n\ndeny contains msg if {\n  input.Object.kind == \"Node\"\n  msg := {\"Message\": \"X\"}\n}\n",
        ))
        .unwrap();
        assert_eq!(m.target, Some(Target::Nodes));
    }

    #[test]
    fn other_packages_have_no_target() {
        let m = compile(&text("lib.rego", "package mylib\n\nx := 1\n")).unwrap();
        assert_eq!(m.target, None);
    }

    #[test]
    fn parse_errors_name_file_line_and_column() {
        let err = compile(&text(
            "opa/bad.rego",
            "package kubeeye_workloads_rego\n\ndeny[msg] {\n    msg := {\"Message\": \"X\"\n}\n",
        ))
        .unwrap_err();
        let ModuleError::Invalid {
            path, line, column, ..
        } = &err
        else {
            panic!("{err:?}")
        };
        assert_eq!(path, "opa/bad.rego");
        assert!(line.is_some() && column.is_some(), "{err}");
        assert!(err.to_string().starts_with("opa/bad.rego:"), "{err}");
        assert!(!err.to_string().contains('\n'), "{err}");
    }

    #[test]
    fn locate_reads_regorus_messages() {
        let (l, c, m) = locate(
            "\n--> opa/x.rego:4:12\n  |\n4 | deny[msg {\n  |        ^\nerror: expecting `]`",
        );
        assert_eq!((l, c, m.as_str()), (Some(4), Some(12), "expecting `]`"));
        let (l, c, m) = locate("something\nwent wrong");
        assert_eq!((l, c, m.as_str()), (None, None, "something went wrong"));
    }

    #[test]
    fn evaluation_returns_every_rule_of_the_package() {
        let mut m = compile(&text(
            "w.rego",
            "package kubeeye_workloads_rego\n\ndeny[msg] {\n  input.Object.kind == \"Deployment\"\n  msg := {\"Message\": \"D\", \"Name\": input.Object.metadata.name}\n}\n",
        ))
        .unwrap();
        let input = regorus::Value::from_json_str(
            &json!({"Object": {"kind": "Deployment", "metadata": {"name": "web"}}}).to_string(),
        )
        .unwrap();
        let rules = m.evaluate(input, "Deployment web").unwrap();
        assert_eq!(
            rules,
            vec![("deny".to_string(), json!([{"Message": "D", "Name": "web"}]))]
        );
    }
}
