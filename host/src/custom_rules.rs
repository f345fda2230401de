//! The operator's own rules, read from files for the built-in probes that
//! run them (probes have no filesystem): KubeEye's OPA rules (`--rego DIR`,
//! every `*.rego` below it, for the `rego` probe) and rule.yaml JSON-schema
//! checks (`--checks FILE`, for `schema-checks`). Each becomes that probe's
//! JSON config, the files' text by the path the operator gave.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::audit::ProbeSource;

/// The built-in probe that runs Rego rules.
pub const REGO_PROBE: &str = "rego";
/// The built-in probe that runs rule.yaml checks.
pub const CHECKS_PROBE: &str = "schema-checks";

/// Why the rule files could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CustomRulesError {
    /// A file or folder could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file is not UTF-8 text.
    #[error("{}: not UTF-8 text", path.display())]
    NotText { path: PathBuf },
    /// `--rego` names something that is not a folder.
    #[error("{}: not a folder (--rego takes a folder of .rego files)", path.display())]
    NotAFolder { path: PathBuf },
    /// `--rego` names a folder without any `.rego` file.
    #[error("{}: no .rego file in this folder or below it", path.display())]
    NoRegoFiles { path: PathBuf },
}

/// One file as a probe receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleText {
    /// The path as the operator wrote it (the folder joined with the file below it).
    pub path: String,
    pub text: String,
}

fn read_text(path: &Path) -> Result<RuleText, CustomRulesError> {
    let bytes = std::fs::read(path).map_err(|source| CustomRulesError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|_| CustomRulesError::NotText {
        path: path.to_path_buf(),
    })?;
    Ok(RuleText {
        path: path.display().to_string(),
        text,
    })
}

/// Every `*.rego` file below `dir`, recursively, sorted by path. Symbolic
/// links to folders are not followed (no loops); links to files are.
pub fn rego_files(dir: &Path) -> Result<Vec<PathBuf>, CustomRulesError> {
    let read_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CustomRulesError::Read { path, source }
    };
    let meta = std::fs::metadata(dir).map_err(read_error(dir))?;
    if !meta.is_dir() {
        return Err(CustomRulesError::NotAFolder {
            path: dir.to_path_buf(),
        });
    }
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).map_err(read_error(&folder))? {
            let entry = entry.map_err(read_error(&folder))?;
            let path = entry.path();
            let kind = entry.file_type().map_err(read_error(&path))?;
            if kind.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rego")
                && (kind.is_file() || path.is_file())
            {
                files.push(path);
            }
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(CustomRulesError::NoRegoFiles {
            path: dir.to_path_buf(),
        });
    }
    Ok(files)
}

/// The `rego` probe's config for `--rego` folders: `{"modules": [{path, text}]}`.
pub fn rego_config(dirs: &[PathBuf]) -> Result<String, CustomRulesError> {
    let mut modules = Vec::new();
    for dir in dirs {
        for file in rego_files(dir)? {
            modules.push(read_text(&file)?);
        }
    }
    Ok(serde_json::json!({ "modules": modules }).to_string())
}

/// The `schema-checks` probe's config for `--checks` files: `{"files": [{path, text}]}`.
pub fn checks_config(files: &[PathBuf]) -> Result<String, CustomRulesError> {
    let files = files
        .iter()
        .map(|f| read_text(f))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(serde_json::json!({ "files": files }).to_string())
}

/// The configs of the probes that run the operator's rules, from `--rego` and `--checks`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeConfigs {
    rego: Option<String>,
    checks: Option<String>,
}

impl ProbeConfigs {
    /// Reads the files the flags name.
    pub fn read(rego_dirs: &[PathBuf], check_files: &[PathBuf]) -> Result<Self, CustomRulesError> {
        Ok(ProbeConfigs {
            rego: (!rego_dirs.is_empty())
                .then(|| rego_config(rego_dirs))
                .transpose()?,
            checks: (!check_files.is_empty())
                .then(|| checks_config(check_files))
                .transpose()?,
        })
    }

    /// The config a probe runs with: its rules, or `{}`.
    pub fn config_for(&self, source: &ProbeSource) -> String {
        let config = match source {
            ProbeSource::Builtin(REGO_PROBE) => self.rego.as_ref(),
            ProbeSource::Builtin(CHECKS_PROBE) => self.checks.as_ref(),
            _ => None,
        };
        config.cloned().unwrap_or_else(|| "{}".into())
    }

    /// Adds the probes that run the given rules when `--probe` left them out.
    pub fn add_probes(&self, sources: &mut Vec<ProbeSource>) {
        for (name, given) in [(REGO_PROBE, &self.rego), (CHECKS_PROBE, &self.checks)] {
            if given.is_some() && !sources.contains(&ProbeSource::Builtin(name)) {
                sources.push(ProbeSource::Builtin(name));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_go_to_their_probes_which_are_added() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("r.rego"), "package kubeeye_nodes_rego").unwrap();
        let configs = ProbeConfigs::read(&[dir.path().to_path_buf()], &[]).unwrap();
        let mut sources = vec![ProbeSource::Builtin("workload-audit")];
        configs.add_probes(&mut sources);
        assert_eq!(
            sources,
            [
                ProbeSource::Builtin("workload-audit"),
                ProbeSource::Builtin(REGO_PROBE)
            ]
        );
        assert!(
            configs
                .config_for(&sources[1])
                .contains("kubeeye_nodes_rego")
        );
        assert_eq!(configs.config_for(&sources[0]), "{}");
        assert_eq!(
            configs.config_for(&ProbeSource::Builtin(CHECKS_PROBE)),
            "{}"
        );
        configs.add_probes(&mut sources);
        assert_eq!(sources.len(), 2);
    }

    #[test]
    fn rego_files_below_a_folder_sorted_and_only_rego() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("b/nested")).unwrap();
        std::fs::write(root.join("z.rego"), "package z").unwrap();
        std::fs::write(root.join("a.rego"), "package a").unwrap();
        std::fs::write(root.join("b/nested/m.rego"), "package m").unwrap();
        std::fs::write(root.join("notes.md"), "not a rule").unwrap();
        let config: serde_json::Value =
            serde_json::from_str(&rego_config(&[root.to_path_buf()]).unwrap()).unwrap();
        let paths: Vec<String> = config["modules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                Path::new(m["path"].as_str().unwrap())
                    .strip_prefix(root)
                    .unwrap()
                    .display()
                    .to_string()
            })
            .collect();
        assert_eq!(paths, ["a.rego", "b/nested/m.rego", "z.rego"]);
        assert_eq!(config["modules"][0]["text"], "package a");
    }

    #[test]
    fn errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let e = rego_config(std::slice::from_ref(&missing)).unwrap_err();
        assert!(matches!(e, CustomRulesError::Read { .. }));
        assert!(e.to_string().contains("missing"), "{e}");

        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        let e = rego_config(std::slice::from_ref(&empty)).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}: no .rego file in this folder or below it",
                empty.display()
            )
        );

        let file = dir.path().join("rule.yaml");
        std::fs::write(&file, b"checks: {}\n").unwrap();
        assert!(matches!(
            rego_config(std::slice::from_ref(&file)),
            Err(CustomRulesError::NotAFolder { .. })
        ));

        let binary = dir.path().join("bin.yaml");
        std::fs::write(&binary, [0xff, 0xfe, 0x00]).unwrap();
        let e = checks_config(&[file.clone(), binary.clone()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{}: not UTF-8 text", binary.display())
        );
        let ok: serde_json::Value = serde_json::from_str(&checks_config(&[file]).unwrap()).unwrap();
        assert_eq!(ok["files"][0]["text"], "checks: {}\n");
    }
}
