//! The host side of each WIT interface, one module per interface, each
//! implementing its generated `Host` trait on `RunState`. Every call is
//! checked against the run's grant first (see `crate::grants`).

pub mod collectors;
pub mod dns;
pub mod etcd;
pub mod http;
pub mod kube;
pub mod log;

use std::sync::Arc;

use crate::bindings::sonde::probe::types;
use crate::kube::KubeBackend;
use crate::runtime::RunState;

/// The backends capabilities call into, shared by every run.
#[derive(Clone, Default)]
pub struct HostServices {
    /// Where Kubernetes reads go; `None` when no cluster or snapshot is configured.
    pub kube: Option<Arc<dyn KubeBackend>>,
    /// Name resolution settings.
    pub dns: dns::DnsSettings,
    /// Where the node collectors' data is read from (the daemon's store);
    /// `None`: every collector is unavailable.
    pub collectors: Option<crate::store::Store>,
    /// Probes' outbound HTTP(S).
    pub http: http::HttpClient,
    /// The cluster's etcd, when configured.
    pub etcd: etcd::EtcdClient,
}

impl types::Host for RunState {}
