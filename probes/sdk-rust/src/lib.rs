//! Write Sonde probes in Rust.
//!
//! A thin layer over the `sonde:probe` WIT bindings: typed Kubernetes objects
//! (k8s-openapi) from the host's `kube` interface, rules declared once and
//! turned into findings, a typed config, and one macro that exports it all:
//!
//! ```no_run
//! use sonde_sdk::{Probe, ProbeInfo, ProbeError, Finding, Rule, Severity, kube};
//! use sonde_sdk::k8s_openapi::api::core::v1::Pod;
//!
//! const HOST_NETWORK: Rule = Rule::new("HostNetworkAllowed", "Host network", "security",
//!     Severity::High, "The pod shares the node's network namespace.", "Remove hostNetwork.");
//!
//! struct MyProbe;
//! impl Probe for MyProbe {
//!     type Config = ();
//!     fn describe() -> ProbeInfo {
//!         sonde_sdk::describe("my-probe", env!("CARGO_PKG_VERSION"), "Pods on the host network")
//!             .rules(&[HOST_NETWORK]).kube_read::<Pod>().build()
//!     }
//!     fn run(_: ()) -> Result<Vec<Finding>, ProbeError> {
//!         Ok(kube::list::<Pod>(&Default::default())?.iter()
//!             .filter(|p| p.spec.as_ref().and_then(|s| s.host_network) == Some(true))
//!             .map(|p| HOST_NETWORK.finding(p, "uses the host network").into())
//!             .collect())
//!     }
//! }
//! sonde_sdk::export_probe!(MyProbe);
//! ```

pub mod collectors;
pub mod http;
pub mod kube;
pub mod log;
pub mod npd;
pub mod quantity;
pub mod time;
pub mod workloads;

/// The raw bindings generated from `wit/` (for what the typed layer does not cover).
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "probe",
        pub_export_macro: true,
        export_macro_name: "export_guest",
        default_bindings_module: "sonde_sdk::bindings",
        generate_all,
    });
}

pub use bindings::sonde::probe::types::{
    Capabilities, Finding, KubeAccess, KubeVerb, ProbeError, ProbeInfo, ResourceRef, RuleInfo,
    Severity,
};
pub use k8s_openapi;
pub use serde_json;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// Probes built with the SDK allocate with talc rather than dlmalloc: a run
/// that returns many findings frees them all at the boundary, and talc's
/// free path is several times faster in WebAssembly (see BENCHMARKS.md).
#[cfg(all(not(target_feature = "atomics"), target_family = "wasm"))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

/// What every probe implements; `export_probe!` turns it into the component's exports.
pub trait Probe {
    /// The probe's config, parsed from the operator's JSON (`{}` when none is given).
    type Config: serde::de::DeserializeOwned;
    /// Name, version, rules and needs.
    fn describe() -> ProbeInfo;
    /// One inspection.
    fn run(config: Self::Config) -> Result<Vec<Finding>, ProbeError>;
}

/// Parses the config and runs the probe; used by `export_probe!`.
pub fn run_probe<P: Probe>(config: &str) -> Result<Vec<Finding>, ProbeError> {
    let text = if config.trim().is_empty() {
        "{}"
    } else {
        config
    };
    let parsed = match serde_json::from_str::<P::Config>(text) {
        Ok(c) => c,
        // A probe without config (`()`) accepts `{}`.
        Err(_) if text.trim() == "{}" => serde_json::from_str::<P::Config>("null")
            .map_err(|e| ProbeError::InvalidInput(format!("config: {e}")))?,
        Err(e) => return Err(ProbeError::InvalidInput(format!("config: {e}"))),
    };
    P::run(parsed)
}

/// Exports a `Probe` implementation as the component's `describe` and `run`.
#[macro_export]
macro_rules! export_probe {
    ($probe:ty) => {
        const _: () = {
            #[allow(dead_code)]
            struct SondeGuest;
            impl $crate::bindings::Guest for SondeGuest {
                fn describe() -> $crate::ProbeInfo {
                    <$probe as $crate::Probe>::describe()
                }
                fn run(
                    config: ::std::string::String,
                ) -> ::std::result::Result<::std::vec::Vec<$crate::Finding>, $crate::ProbeError>
                {
                    $crate::run_probe::<$probe>(&config)
                }
            }
            #[cfg(target_arch = "wasm32")]
    $crate::bindings::export_guest!(SondeGuest with_types_in $crate::bindings);
        };
    };
}

/// A rule a probe can emit, declared once as a constant.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub id: &'static str,
    pub title: &'static str,
    pub category: &'static str,
    pub severity: Severity,
    pub description: &'static str,
    pub remedy: &'static str,
}

impl Rule {
    /// Declares a rule.
    pub const fn new(
        id: &'static str,
        title: &'static str,
        category: &'static str,
        severity: Severity,
        description: &'static str,
        remedy: &'static str,
    ) -> Self {
        Rule {
            id,
            title,
            category,
            severity,
            description,
            remedy,
        }
    }

    /// The rule as `describe()` reports it.
    pub fn info(&self) -> RuleInfo {
        RuleInfo {
            id: self.id.into(),
            title: self.title.into(),
            category: self.category.into(),
            default_severity: self.severity,
            description: self.description.into(),
            remedy: self.remedy.into(),
        }
    }

    /// A finding of this rule about `resource`, with the rule's severity (the
    /// host adds the rule's remedy unless `remedy()` sets another).
    pub fn finding(
        &self,
        resource: impl Into<ResourceRef>,
        message: impl Into<String>,
    ) -> FindingBuilder {
        FindingBuilder(Finding {
            rule: self.id.into(),
            severity: self.severity,
            resource: Some(resource.into()),
            message: message.into(),
            remedy: None,
            labels: Vec::new(),
        })
    }

    /// A finding about the cluster as a whole.
    pub fn cluster_finding(&self, message: impl Into<String>) -> FindingBuilder {
        FindingBuilder(Finding {
            rule: self.id.into(),
            severity: self.severity,
            resource: None,
            message: message.into(),
            remedy: None,
            labels: Vec::new(),
        })
    }
}

/// Adjusts a finding before it is returned.
#[derive(Debug, Clone)]
pub struct FindingBuilder(pub Finding);

impl FindingBuilder {
    /// Adds a key/value label (e.g. `container`).
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.0.labels.push((key.into(), value.into()));
        self
    }

    /// Overrides the rule's default severity.
    pub fn severity(mut self, severity: Severity) -> Self {
        self.0.severity = severity;
        self
    }

    /// Overrides the rule's remedy.
    pub fn remedy(mut self, remedy: impl Into<String>) -> Self {
        self.0.remedy = Some(remedy.into());
        self
    }
}

impl From<FindingBuilder> for Finding {
    fn from(b: FindingBuilder) -> Finding {
        b.0
    }
}

/// `ip:port`, an IPv6 address in brackets (`[fd00::1]:53`), as URLs and
/// nameserver arguments write it.
pub fn host_port(ip: &str, port: i32) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// A reference to a typed object.
pub fn resource_ref<K>(object: &K) -> ResourceRef
where
    K: k8s_openapi::Resource + k8s_openapi::Metadata<Ty = ObjectMeta>,
{
    let meta = object.metadata();
    ResourceRef {
        api_version: K::API_VERSION.into(),
        kind: K::KIND.into(),
        namespace: meta.namespace.clone(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone(),
    }
}

impl<K> From<&K> for ResourceRef
where
    K: k8s_openapi::Resource + k8s_openapi::Metadata<Ty = ObjectMeta>,
{
    fn from(object: &K) -> Self {
        resource_ref(object)
    }
}

/// Starts a `ProbeInfo`.
pub fn describe(name: &str, version: &str, description: &str) -> DescribeBuilder {
    DescribeBuilder(ProbeInfo {
        name: name.into(),
        version: version.into(),
        description: description.into(),
        rules: Vec::new(),
        capabilities: Capabilities {
            kube: Vec::new(),
            dns: false,
            http: Vec::new(),
            etcd: Vec::new(),
            collectors: Vec::new(),
        },
        schedule: None,
    })
}

/// Builds the `ProbeInfo` `describe()` returns.
pub struct DescribeBuilder(ProbeInfo);

impl DescribeBuilder {
    /// The rules the probe can emit.
    pub fn rules(mut self, rules: &[Rule]) -> Self {
        self.0.rules.extend(rules.iter().map(Rule::info));
        self
    }

    /// Access to a kind, by group and kind name.
    pub fn kube(mut self, group: &str, kind: &str, verbs: &[KubeVerb]) -> Self {
        self.0.capabilities.kube.push(KubeAccess {
            group: group.into(),
            kind: kind.into(),
            verbs: verbs.to_vec(),
        });
        self
    }

    /// `get` and `list` on a typed kind.
    pub fn kube_read<K: k8s_openapi::Resource>(self) -> Self {
        self.kube(K::GROUP, K::KIND, &[KubeVerb::Get, KubeVerb::List])
    }

    /// Name resolution.
    pub fn dns(mut self) -> Self {
        self.0.capabilities.dns = true;
        self
    }

    /// HTTP to a `host:port` pattern.
    pub fn http(mut self, host_port: &str) -> Self {
        self.0.capabilities.http.push(host_port.into());
        self
    }

    /// etcd keys under a prefix.
    pub fn etcd(mut self, prefix: &str) -> Self {
        self.0.capabilities.etcd.push(prefix.into());
        self
    }

    /// A collector.
    pub fn collector(mut self, name: &str) -> Self {
        self.0.capabilities.collectors.push(name.into());
        self
    }

    /// A suggested cron schedule (with seconds).
    pub fn schedule(mut self, cron: &str) -> Self {
        self.0.schedule = Some(cron.into());
        self
    }

    /// The finished description.
    pub fn build(self) -> ProbeInfo {
        self.0
    }
}
