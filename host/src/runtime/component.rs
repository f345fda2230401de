//! Turning bytes into a runnable probe: recognising what the bytes are (not
//! wasm, a core module, a component), checking the component targets the
//! `sonde:probe` world at a version this host implements, and naming the
//! file and the problem when it does not.

use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

use crate::bindings::{WIT_PACKAGE, WIT_VERSION};

/// Why a component cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("{origin}: cannot read the file")]
    Read {
        origin: String,
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not WebAssembly at all.
    #[error(
        "{origin}: not a WebAssembly component (the file does not start with the wasm magic bytes)"
    )]
    NotWasm { origin: String },
    /// A core module, not a component.
    #[error(
        "{origin}: this is a core WebAssembly module, not a component; build the probe for \
         the wasm32-wasip2 target, or wrap the module with `wasm-tools component new`"
    )]
    CoreModule { origin: String },
    /// The component does not compile or validate.
    #[error("{origin}: invalid component: {message}")]
    Invalid { origin: String, message: String },
    /// It imports an interface this host does not provide.
    #[error("{origin}: {message}")]
    WrongWorld { origin: String, message: String },
}

/// The imports and exports of a component, as WIT names.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WorldSummary {
    pub imports: Vec<String>,
    pub exports: Vec<String>,
}

/// Classifies raw bytes before handing them to the compiler, for clear errors.
pub fn check_kind(origin: &str, bytes: &[u8]) -> Result<(), LoadError> {
    if !bytes.starts_with(b"\0asm") {
        return Err(LoadError::NotWasm {
            origin: origin.into(),
        });
    }
    if wasmparser::Parser::is_core_wasm(bytes) {
        return Err(LoadError::CoreModule {
            origin: origin.into(),
        });
    }
    Ok(())
}

/// The WIT imports and exports of a compiled component.
pub fn world_of(engine: &Engine, component: &Component) -> WorldSummary {
    let ty = component.component_type();
    let mut imports: Vec<String> = ty.imports(engine).map(|(n, _)| n.to_string()).collect();
    let mut exports: Vec<String> = ty
        .exports(engine)
        .map(|(n, item)| match item.ty {
            ComponentItem::ComponentFunc(_) => format!("{n}: func"),
            _ => n.to_string(),
        })
        .collect();
    imports.sort();
    exports.sort();
    WorldSummary { imports, exports }
}

/// Checks that the component targets `sonde:probe@0.1.x`: imports only WASI and
/// `sonde:probe` interfaces of a compatible version, and exports `describe` and `run`.
pub fn check_world(origin: &str, world: &WorldSummary) -> Result<(), LoadError> {
    let wrong = |message: String| LoadError::WrongWorld {
        origin: origin.into(),
        message,
    };
    for import in &world.imports {
        let (package, version) = match import.split_once('@') {
            Some((name, v)) => (name.split('/').next().unwrap_or(name), Some(v)),
            None => (import.split('/').next().unwrap_or(import), None),
        };
        if package == WIT_PACKAGE {
            let v = version.unwrap_or("");
            if !compatible(v) {
                return Err(wrong(format!(
                    "the component targets {WIT_PACKAGE}@{v}, but this host implements \
                     {WIT_PACKAGE}@{WIT_VERSION}; rebuild the probe against this version's wit/"
                )));
            }
        } else if !package.starts_with("wasi:") {
            return Err(wrong(format!(
                "the component imports {import}, which is not part of the {WIT_PACKAGE} world \
                 (a probe may import only sonde:probe and WASI interfaces)"
            )));
        }
    }
    for needed in ["describe", "run"] {
        if !world
            .exports
            .iter()
            .any(|e| e == &format!("{needed}: func"))
        {
            return Err(wrong(format!(
                "the component does not export `{needed}`; it is not a {WIT_PACKAGE} probe \
                 (exports: {})",
                if world.exports.is_empty() {
                    "none".into()
                } else {
                    world.exports.join(", ")
                }
            )));
        }
    }
    Ok(())
}

/// Semver compatibility with the host's version: 0.1.x for 0.x releases.
fn compatible(version: &str) -> bool {
    let mine: Vec<&str> = WIT_VERSION.split('.').collect();
    let theirs: Vec<&str> = version.split(['.', '-', '+']).collect();
    if theirs.len() < 2 {
        return false;
    }
    if mine[0] == "0" {
        theirs[0] == "0" && theirs[1] == mine[1]
    } else {
        theirs[0] == mine[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world(imports: &[&str], exports: &[&str]) -> WorldSummary {
        WorldSummary {
            imports: imports.iter().map(|s| s.to_string()).collect(),
            exports: exports.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn kinds_are_told_apart() {
        assert!(matches!(
            check_kind("x", b"hello"),
            Err(LoadError::NotWasm { .. })
        ));
        let core = b"\0asm\x01\0\0\0";
        assert!(matches!(
            check_kind("x", core),
            Err(LoadError::CoreModule { .. })
        ));
        let component = b"\0asm\x0d\0\x01\0";
        assert!(check_kind("x", component).is_ok());
    }

    #[test]
    fn world_versions() {
        let ok = world(
            &["sonde:probe/kube@0.1.0", "wasi:cli/stdout@0.2.0"],
            &["describe: func", "run: func"],
        );
        assert!(check_world("p", &ok).is_ok());
        let patch = world(&["sonde:probe/log@0.1.7"], &["describe: func", "run: func"]);
        assert!(check_world("p", &patch).is_ok());
        let newer = world(
            &["sonde:probe/kube@0.2.0"],
            &["describe: func", "run: func"],
        );
        let err = check_world("p.wasm", &newer).unwrap_err().to_string();
        assert!(
            err.contains("targets sonde:probe@0.2.0") && err.starts_with("p.wasm:"),
            "{err}"
        );
        let foreign = world(&["acme:thing/api"], &["describe: func", "run: func"]);
        assert!(
            check_world("p", &foreign)
                .unwrap_err()
                .to_string()
                .contains("acme:thing/api")
        );
        let no_run = world(&[], &["hello: func"]);
        assert!(
            check_world("p", &no_run)
                .unwrap_err()
                .to_string()
                .contains("does not export `describe`")
        );
    }
}
