//! The one place that runs `bindgen!` over `wit/`: the host side of the
//! `sonde:probe@0.1.0` world. Every import is async (host calls may do I/O)
//! and trappable (a broken limit stops the guest).

wasmtime::component::bindgen!({
    path: "../wit",
    world: "probe",
    imports: { default: async | trappable },
    exports: { default: async },
    additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
});

pub use self::sonde::probe::types::{
    Capabilities, KubeAccess, KubeVerb, ResourceRef, RuleInfo, Severity,
};

/// The WIT package this host implements, as it appears in import names.
pub const WIT_PACKAGE: &str = "sonde:probe";
/// The version of that package.
pub const WIT_VERSION: &str = "0.1.0";

impl Severity {
    /// Every severity, lowest first.
    pub const ALL: [Severity; 5] = [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    /// The lower-case name used in configs, reports and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// Rank for ordering (info = 0 ... critical = 4).
    pub fn rank(self) -> u8 {
        self as u8
    }
}

impl std::str::FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Severity::ALL
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                format!("unknown severity {s:?}: expected one of info, low, medium, high, critical")
            })
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl KubeVerb {
    /// The verb as the Kubernetes API names it (`logs` is `get` on `pods/log`).
    pub fn as_str(self) -> &'static str {
        match self {
            KubeVerb::Get => "get",
            KubeVerb::List => "list",
            KubeVerb::Watch => "watch",
            KubeVerb::Create => "create",
            KubeVerb::Patch => "patch",
            KubeVerb::Delete => "delete",
            KubeVerb::Logs => "logs",
        }
    }

    /// Whether the verb changes the cluster.
    pub fn is_write(self) -> bool {
        matches!(self, KubeVerb::Create | KubeVerb::Patch | KubeVerb::Delete)
    }
}

impl std::str::FromStr for KubeVerb {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "get" => KubeVerb::Get,
            "list" => KubeVerb::List,
            "watch" => KubeVerb::Watch,
            "create" => KubeVerb::Create,
            "patch" => KubeVerb::Patch,
            "delete" => KubeVerb::Delete,
            "logs" => KubeVerb::Logs,
            other => {
                return Err(format!(
                    "unknown verb {other:?}: expected get, list, watch, create, patch, delete or logs"
                ));
            }
        })
    }
}

impl ProbeError {
    /// The error as a sentence: `denied: ...`, `not found: ...`.
    pub fn text(&self) -> String {
        let (kind, msg) = match self {
            ProbeError::Denied(m) => ("denied", m),
            ProbeError::NotFound(m) => ("not found", m),
            ProbeError::Unavailable(m) => ("unavailable", m),
            ProbeError::Timeout(m) => ("timeout", m),
            ProbeError::InvalidInput(m) => ("invalid input", m),
            ProbeError::Internal(m) => ("internal error", m),
        };
        format!("{kind}: {msg}")
    }
}
