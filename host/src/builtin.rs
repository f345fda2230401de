//! The probes shipped inside the `sonde` binary (built by `probes/artifacts`),
//! found by name without any file to copy.

pub use sonde_probes::BuiltinProbe;

/// Every built-in probe.
pub fn all() -> &'static [BuiltinProbe] {
    sonde_probes::BUILTIN
}

/// The built-in probe called `name`.
pub fn find(name: &str) -> Option<&'static BuiltinProbe> {
    all().iter().find(|p| p.name == name)
}

/// The names of every built-in probe, for error messages.
pub fn names() -> Vec<&'static str> {
    all().iter().map(|p| p.name).collect()
}
