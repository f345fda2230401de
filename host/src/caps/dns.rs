//! `sonde:probe/dns`: A, AAAA, SRV and CNAME lookups through hickory-resolver,
//! against the host's resolver or one nameserver the probe names (allowed by
//! the grant's nameserver patterns), so a probe can test each CoreDNS pod.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType as HickoryType};
use serde::{Deserialize, Serialize};

use crate::bindings::ProbeError;
use crate::bindings::sonde::probe::dns::{DnsRecord, Host, RecordData, RecordType, SrvTarget};
use crate::runtime::RunState;

/// Resolver settings for the host.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsSettings {
    /// Nameservers (`ip` or `ip:port`) used when a probe names none; empty: the system's (`/etc/resolv.conf`).
    #[serde(default)]
    pub nameservers: Vec<String>,
    /// Per-lookup timeout in milliseconds (default 2000).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// Parses `ip` or `ip:port` (`[v6]:port` for IPv6), port 53 by default.
pub fn parse_nameserver(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    text.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| format!("invalid nameserver {text:?}: expected ip or ip:port"))
}

impl DnsSettings {
    fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.unwrap_or(2000))
    }

    /// A resolver for `servers`, or the configured/system one when empty.
    pub(crate) fn resolver(&self, servers: &[SocketAddr]) -> Result<TokioResolver, ProbeError> {
        let mut configured = Vec::new();
        if servers.is_empty() {
            for ns in &self.nameservers {
                configured.push(parse_nameserver(ns).map_err(ProbeError::Unavailable)?);
            }
        }
        let servers = if servers.is_empty() {
            &configured[..]
        } else {
            servers
        };
        let mut builder = if servers.is_empty() {
            TokioResolver::builder_tokio()
                .map_err(|e| ProbeError::Unavailable(format!("no system resolver: {e}")))?
        } else {
            let configs = servers
                .iter()
                .map(|addr| {
                    let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
                    for c in &mut ns.connections {
                        c.port = addr.port();
                    }
                    ns
                })
                .collect();
            TokioResolver::builder_with_config(
                ResolverConfig::from_parts(None, Vec::new(), configs),
                TokioRuntimeProvider::default(),
            )
        };
        let opts: &mut ResolverOpts = builder.options_mut();
        opts.timeout = self.timeout();
        opts.attempts = 1;
        opts.cache_size = 0;
        builder
            .build()
            .map_err(|e| ProbeError::Unavailable(format!("cannot build resolver: {e}")))
    }
}

fn to_hickory(t: RecordType) -> HickoryType {
    match t {
        RecordType::A => HickoryType::A,
        RecordType::Aaaa => HickoryType::AAAA,
        RecordType::Srv => HickoryType::SRV,
        RecordType::Cname => HickoryType::CNAME,
    }
}

fn map_error(name: &str, e: NetError) -> ProbeError {
    if e.is_nx_domain() {
        ProbeError::NotFound(format!("{name}: no such domain (NXDOMAIN)"))
    } else if e.is_no_records_found() {
        ProbeError::NotFound(format!("{name}: no records of that type"))
    } else if matches!(e, NetError::Timeout) {
        ProbeError::Timeout(format!("{name}: the nameserver did not answer"))
    } else {
        ProbeError::Unavailable(format!("{name}: {e}"))
    }
}

fn to_record(r: &hickory_resolver::proto::rr::Record) -> Option<DnsRecord> {
    let data = match &r.data {
        RData::A(a) => RecordData::A(a.0.to_string()),
        RData::AAAA(a) => RecordData::Aaaa(a.0.to_string()),
        RData::CNAME(c) => RecordData::Cname(c.0.to_string()),
        RData::SRV(s) => RecordData::Srv(SrvTarget {
            priority: s.priority,
            weight: s.weight,
            port: s.port,
            target: s.target.to_string(),
        }),
        _ => return None,
    };
    Some(DnsRecord {
        name: r.name.to_string(),
        ttl: r.ttl,
        data,
    })
}

impl RunState {
    async fn resolve_checked(
        &mut self,
        name: String,
        record_type: RecordType,
        nameserver: Option<String>,
    ) -> Result<Vec<DnsRecord>, ProbeError> {
        let server = match &nameserver {
            Some(ns) => Some(parse_nameserver(ns).map_err(ProbeError::InvalidInput)?),
            None => None,
        };
        let shown = server.map(|s| s.to_string());
        if !self.ctx.grants.allows_dns(shown.as_deref()) {
            let detail = match &shown {
                Some(s) => format!("resolve {name} at {s}"),
                None => format!("resolve {name}"),
            };
            return Err(ProbeError::Denied(self.ctx.deny("dns", detail)));
        }
        let settings = self.ctx.services.dns.clone();
        let resolver = settings.resolver(server.as_slice())?;
        let lookup = tokio::time::timeout(
            settings.timeout() * 2,
            resolver.lookup(name.as_str(), to_hickory(record_type)),
        )
        .await
        .map_err(|_| ProbeError::Timeout(format!("{name}: the nameserver did not answer")))?
        .map_err(|e| map_error(&name, e))?;
        Ok(lookup.answers().iter().filter_map(to_record).collect())
    }
}

impl Host for RunState {
    async fn resolve(
        &mut self,
        name: String,
        record_type: RecordType,
        nameserver: Option<String>,
    ) -> wasmtime::Result<Result<Vec<DnsRecord>, ProbeError>> {
        Ok(self.resolve_checked(name, record_type, nameserver).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameserver_forms() {
        assert_eq!(
            parse_nameserver("10.0.0.10").unwrap().to_string(),
            "10.0.0.10:53"
        );
        assert_eq!(parse_nameserver("127.0.0.1:5353").unwrap().port(), 5353);
        assert_eq!(
            parse_nameserver("[::1]:53").unwrap().to_string(),
            "[::1]:53"
        );
        assert!(
            parse_nameserver("dns.local")
                .unwrap_err()
                .contains("invalid nameserver")
        );
    }
}
