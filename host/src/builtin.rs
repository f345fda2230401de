//! The probes shipped inside the `sonde` binary (built by `probes/artifacts`),
//! found by name without any file to copy.

pub use sonde_probes::BuiltinProbe;

/// Every built-in probe.
pub fn all() -> &'static [BuiltinProbe] {
    sonde_probes::BUILTIN
}

/// The built-in probes of the default audit (`sonde audit` without
/// `--probe`, the demo): those that only read.
pub fn audit() -> impl Iterator<Item = &'static BuiltinProbe> {
    all().iter().filter(|p| p.audit)
}

/// The built-in probe called `name`.
pub fn find(name: &str) -> Option<&'static BuiltinProbe> {
    all().iter().find(|p| p.name == name)
}

/// The names of every built-in probe, for error messages.
pub fn names() -> Vec<&'static str> {
    all().iter().map(|p| p.name).collect()
}
