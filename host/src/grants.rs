//! What the operator allows a probe to do, and the one place that answers
//! "may this probe make this call?". Every capability module asks here; the
//! pre-run check compares a probe's `describe()` needs with its grant.

use serde::{Deserialize, Serialize};

use crate::bindings::{Capabilities, KubeAccess, KubeVerb};

/// Everything one probe is granted. Absent sections grant nothing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantSet {
    /// Kubernetes API access rules; a call is allowed when one rule allows it.
    #[serde(default)]
    pub kube: Vec<KubeGrant>,
    /// Name resolution; `None` denies every lookup.
    #[serde(default)]
    pub dns: Option<DnsGrant>,
    /// `host:port` patterns (`*` matches any run of characters).
    #[serde(default)]
    pub http: Vec<String>,
    /// etcd key prefixes.
    #[serde(default)]
    pub etcd: Vec<String>,
    /// Collector names (`*` for all).
    #[serde(default)]
    pub collectors: Vec<String>,
}

/// One Kubernetes access rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubeGrant {
    /// `Kind` for the core group, `group/Kind` otherwise; `*` and `group/*` wildcards.
    pub resources: Vec<String>,
    /// Verbs (`get`, `list`, `watch`, `create`, `patch`, `delete`, `logs`) or `*`.
    pub verbs: Vec<String>,
    /// Namespaces the rule covers; `*` (the default) for all and for cluster-scoped objects.
    #[serde(default = "all")]
    pub namespaces: Vec<String>,
}

/// Name resolution grant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsGrant {
    /// Nameservers (`ip:port` patterns) a probe may name explicitly; empty: only the host's resolver.
    #[serde(default)]
    pub nameservers: Vec<String>,
}

fn all() -> Vec<String> {
    vec!["*".to_string()]
}

/// A need of the probe that its grant does not cover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingGrant(pub String);

impl std::fmt::Display for MissingGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `*` matches any run of characters; everything else literally.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// `group/Kind` for a group, plain `Kind` for the core group.
pub fn qualified_kind(group: &str, kind: &str) -> String {
    if group.is_empty() {
        kind.to_string()
    } else {
        format!("{group}/{kind}")
    }
}

/// The API group of an `apiVersion` (`apps/v1` -> `apps`, `v1` -> ``).
pub fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("")
}

impl KubeGrant {
    fn covers_resource(&self, group: &str, kind: &str) -> bool {
        self.resources.iter().any(|r| {
            let (rg, rk) = match r.rsplit_once('/') {
                Some((g, k)) => (g, k),
                None if r == "*" => ("*", "*"),
                None => ("", r.as_str()),
            };
            (rg == "*" || rg == group) && (rk == "*" || rk == kind)
        })
    }

    fn covers_verb(&self, verb: KubeVerb) -> bool {
        self.verbs.iter().any(|v| v == "*" || v == verb.as_str())
    }

    fn covers_namespace(&self, namespace: Option<&str>) -> bool {
        self.namespaces.iter().any(|n| match namespace {
            Some(ns) => glob_match(n, ns),
            None => n == "*",
        })
    }
}

impl GrantSet {
    /// Whether a Kubernetes call is allowed. `namespace` is `None` for
    /// cluster-scoped objects and for lists across all namespaces.
    pub fn allows_kube(
        &self,
        group: &str,
        kind: &str,
        verb: KubeVerb,
        namespace: Option<&str>,
    ) -> bool {
        self.kube.iter().any(|g| {
            g.covers_resource(group, kind) && g.covers_verb(verb) && g.covers_namespace(namespace)
        })
    }

    /// Whether some rule allows the call in at least one namespace; used to
    /// serve an all-namespaces list restricted to the granted namespaces.
    pub fn allows_kube_somewhere(&self, group: &str, kind: &str, verb: KubeVerb) -> bool {
        self.kube
            .iter()
            .any(|g| g.covers_resource(group, kind) && g.covers_verb(verb))
    }

    /// Whether an object in `namespace` may be seen through a list of that kind.
    pub fn allows_kube_object(&self, group: &str, kind: &str, namespace: Option<&str>) -> bool {
        self.allows_kube(group, kind, KubeVerb::List, namespace)
    }

    /// Whether a lookup, optionally against an explicit nameserver, is allowed.
    pub fn allows_dns(&self, nameserver: Option<&str>) -> bool {
        match (&self.dns, nameserver) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(g), Some(ns)) => g.nameservers.iter().any(|p| glob_match(p, ns)),
        }
    }

    /// Whether an HTTP request to `host:port` is allowed.
    pub fn allows_http(&self, host_port: &str) -> bool {
        self.http.iter().any(|p| glob_match(p, host_port))
    }

    /// Whether an etcd key is inside a granted prefix.
    pub fn allows_etcd(&self, key: &[u8]) -> bool {
        self.etcd.iter().any(|p| key.starts_with(p.as_bytes()))
    }

    /// Whether a collector may be queried.
    pub fn allows_collector(&self, name: &str) -> bool {
        self.collectors.iter().any(|p| glob_match(p, name))
    }

    /// Every need in `caps` that this grant does not cover, named so the
    /// operator knows what to add.
    pub fn missing(&self, caps: &Capabilities) -> Vec<MissingGrant> {
        let mut missing = Vec::new();
        for access in &caps.kube {
            for verb in &access.verbs {
                if !self.allows_kube_somewhere(&access.group, &access.kind, *verb) {
                    missing.push(MissingGrant(format!(
                        "kube: {} on {}",
                        verb.as_str(),
                        qualified_kind(&access.group, &access.kind)
                    )));
                }
            }
        }
        if caps.dns && self.dns.is_none() {
            missing.push(MissingGrant("dns".into()));
        }
        for host in &caps.http {
            if !self.http.iter().any(|p| glob_match(p, host)) {
                missing.push(MissingGrant(format!("http: {host}")));
            }
        }
        for prefix in &caps.etcd {
            if !self.allows_etcd(prefix.as_bytes()) {
                missing.push(MissingGrant(format!("etcd: prefix {prefix}")));
            }
        }
        for name in &caps.collectors {
            if !self.allows_collector(name) {
                missing.push(MissingGrant(format!("collectors: {name}")));
            }
        }
        missing
    }

    /// Exactly what a probe asks for: the grant the CLI gives built-in probes
    /// and `sonde run --grant-requested` gives a probe under development.
    pub fn from_requested(caps: &Capabilities) -> GrantSet {
        GrantSet {
            kube: caps
                .kube
                .iter()
                .map(|KubeAccess { group, kind, verbs }| KubeGrant {
                    resources: vec![qualified_kind(group, kind)],
                    verbs: verbs.iter().map(|v| v.as_str().to_string()).collect(),
                    namespaces: all(),
                })
                .collect(),
            dns: caps.dns.then(DnsGrant::default),
            http: caps.http.clone(),
            etcd: caps.etcd.clone(),
            collectors: caps.collectors.clone(),
        }
    }

    /// Adds the rules of `other` to this grant.
    pub fn extend(&mut self, other: GrantSet) {
        self.kube.extend(other.kube);
        if let Some(dns) = other.dns {
            let mine = self.dns.get_or_insert_with(DnsGrant::default);
            mine.nameservers.extend(dns.nameservers);
        }
        self.http.extend(other.http);
        self.etcd.extend(other.etcd);
        self.collectors.extend(other.collectors);
    }

    /// Parses one `--grant` argument:
    /// `kube:VERBS:RESOURCES[:NAMESPACES]`, `dns[:NAMESERVERS]`, `http:HOST:PORT`,
    /// `etcd:PREFIX`, `collectors:NAMES` (lists are comma-separated).
    pub fn parse_spec(spec: &str) -> Result<GrantSet, String> {
        let (section, rest) = spec.split_once(':').unwrap_or((spec, ""));
        let list = |s: &str| -> Vec<String> {
            s.split(',')
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect()
        };
        let mut grant = GrantSet::default();
        match section {
            "kube" => {
                let mut parts = rest.splitn(3, ':');
                let verbs = list(parts.next().unwrap_or(""));
                let resources = list(parts.next().unwrap_or(""));
                let namespaces = parts.next().map(list).unwrap_or_else(all);
                if verbs.is_empty() || resources.is_empty() {
                    return Err(format!(
                        "grant {spec:?}: expected kube:VERBS:RESOURCES[:NAMESPACES], e.g. kube:get,list:Pod,apps/Deployment"
                    ));
                }
                for v in &verbs {
                    if v != "*" {
                        v.parse::<KubeVerb>()
                            .map_err(|e| format!("grant {spec:?}: {e}"))?;
                    }
                }
                grant.kube.push(KubeGrant {
                    resources,
                    verbs,
                    namespaces,
                });
            }
            "dns" => {
                grant.dns = Some(DnsGrant {
                    nameservers: list(rest),
                })
            }
            "http" if !rest.is_empty() => grant.http.push(rest.to_string()),
            "etcd" if !rest.is_empty() => grant.etcd.push(rest.to_string()),
            "collectors" if !rest.is_empty() => grant.collectors = list(rest),
            _ => {
                return Err(format!(
                    "grant {spec:?}: expected kube:VERBS:RESOURCES[:NAMESPACES], dns[:NAMESERVERS], http:HOST:PORT, etcd:PREFIX or collectors:NAMES"
                ));
            }
        }
        Ok(grant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps() -> Capabilities {
        Capabilities {
            kube: vec![KubeAccess {
                group: "apps".into(),
                kind: "Deployment".into(),
                verbs: vec![KubeVerb::Get, KubeVerb::List],
            }],
            dns: true,
            http: vec!["api.example:443".into()],
            etcd: vec!["/sonde/".into()],
            collectors: vec!["oom".into()],
        }
    }

    #[test]
    fn glob() {
        assert!(glob_match("*", "anything"));
        assert!(glob_match("*.svc:443", "web.shop.svc:443"));
        assert!(!glob_match("*.svc:443", "web.shop.svc:80"));
        assert!(glob_match("a*b*c", "a-x-b-y-c"));
        assert!(!glob_match("a*b*c", "a-x-c"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exactly"));
        assert!(!glob_match("ab*ba", "aba"));
    }

    #[test]
    fn requested_grant_covers_exactly_the_request() {
        let g = GrantSet::from_requested(&caps());
        assert!(g.missing(&caps()).is_empty());
        assert!(g.allows_kube("apps", "Deployment", KubeVerb::List, Some("shop")));
        assert!(!g.allows_kube("apps", "Deployment", KubeVerb::Delete, Some("shop")));
        assert!(!g.allows_kube("", "Secret", KubeVerb::Get, Some("shop")));
        assert!(g.allows_dns(None));
        assert!(!g.allows_dns(Some("10.0.0.10:53")));
        assert!(g.allows_etcd(b"/sonde/x"));
        assert!(!g.allows_etcd(b"/registry/secrets"));
    }

    #[test]
    fn missing_names_each_uncovered_need() {
        let g = GrantSet::parse_spec("kube:get:apps/Deployment").unwrap();
        let missing: Vec<String> = g.missing(&caps()).iter().map(|m| m.0.clone()).collect();
        assert_eq!(
            missing,
            vec![
                "kube: list on apps/Deployment",
                "dns",
                "http: api.example:443",
                "etcd: prefix /sonde/",
                "collectors: oom"
            ]
        );
    }

    #[test]
    fn wildcards_and_namespaces() {
        let g = GrantSet::parse_spec("kube:*:apps/*:shop,team-*").unwrap();
        assert!(g.allows_kube("apps", "StatefulSet", KubeVerb::Delete, Some("shop")));
        assert!(g.allows_kube("apps", "StatefulSet", KubeVerb::Get, Some("team-a")));
        assert!(!g.allows_kube("apps", "StatefulSet", KubeVerb::Get, Some("kube-system")));
        assert!(!g.allows_kube("apps", "StatefulSet", KubeVerb::List, None));
        assert!(g.allows_kube_somewhere("apps", "StatefulSet", KubeVerb::List));
        assert!(!g.allows_kube("", "Pod", KubeVerb::Get, Some("shop")));
        let core = GrantSet::parse_spec("kube:get:Pod").unwrap();
        assert!(core.allows_kube("", "Pod", KubeVerb::Get, None));
        assert!(!core.allows_kube("apps", "Pod", KubeVerb::Get, None));
    }

    #[test]
    fn bad_specs_are_explained() {
        assert!(
            GrantSet::parse_spec("kube:fly:Pod")
                .unwrap_err()
                .contains("unknown verb")
        );
        assert!(
            GrantSet::parse_spec("kube")
                .unwrap_err()
                .contains("expected kube:VERBS")
        );
        assert!(
            GrantSet::parse_spec("smtp:x")
                .unwrap_err()
                .contains("expected")
        );
        let dns = GrantSet::parse_spec("dns:127.0.0.1:*").unwrap();
        assert!(dns.allows_dns(Some("127.0.0.1:5353")));
    }

    #[test]
    fn grant_file_rejects_unknown_fields() {
        let err = serde_yaml::from_str::<GrantSet>("kube: []\nsmtp: [x]\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `smtp`"), "{err}");
    }
}
