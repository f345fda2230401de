//! Sonde's built-in audit-activity probe: who did what in the API server
//! over a look-back window, from its audit records (the `kube-audit`
//! collector, fed by the API server's audit webhook). It reports
//! cluster-admin bound to someone, commands run in pods (exec, attach,
//! port-forward), secrets read by people, impersonation, requests the
//! anonymous user was allowed, and users refused again and again. Each
//! finding names the user, the object, how often and when last. Without
//! audit records the probe says so in its run log and reports nothing.

use std::collections::{BTreeMap, BTreeSet};

use sonde_sdk::collectors::{self, AggregateOp, FilterOp, Row, Value};
use sonde_sdk::time::utc;
use sonde_sdk::{Finding, Probe, ProbeError, ProbeInfo, ResourceRef, Rule, Severity, log};

/// The collector the records come from.
pub const COLLECTOR: &str = "kube-audit";

/// The category of every rule here.
const CATEGORY: &str = "audit";

pub const CLUSTER_ADMIN_BOUND: Rule = Rule::new(
    "AuditClusterAdminBound",
    "cluster-admin granted",
    CATEGORY,
    Severity::High,
    "A user created or changed a RoleBinding or ClusterRoleBinding to the cluster-admin ClusterRole: its subjects can do anything in the cluster (or the namespace).",
    "Confirm the grant was intended; bind a role with only the verbs and resources needed, and remove the binding otherwise.",
);
pub const POD_EXEC: Rule = Rule::new(
    "AuditPodExec",
    "Commands run in a pod",
    CATEGORY,
    Severity::Medium,
    "A user opened an exec, attach or port-forward session into a pod: commands ran inside a workload outside its image and deployment.",
    "Check with the user named; restrict pods/exec, pods/attach and pods/portforward to break-glass roles.",
);
pub const SECRETS_READ: Rule = Rule::new(
    "AuditSecretsRead",
    "Secrets read by a user",
    CATEGORY,
    Severity::Low,
    "A person (not a service account or a system component) read Secrets: their values left the cluster through that user's client.",
    "Confirm the need; rotate the secrets read if the access was not expected, and narrow who may get, list or watch secrets.",
);
pub const IMPERSONATION: Rule = Rule::new(
    "AuditImpersonation",
    "Requests made as another user",
    CATEGORY,
    Severity::Medium,
    "A user sent requests impersonating another user (Impersonate-User): the API server acted with the other user's rights.",
    "Check that the impersonating user is a support or test identity expected to do this, and who may impersonate whom.",
);
pub const ANONYMOUS_ALLOWED: Rule = Rule::new(
    "AuditAnonymousAllowed",
    "Anonymous requests allowed",
    CATEGORY,
    Severity::High,
    "The API server answered requests from system:anonymous (no credentials) with success on paths beyond the public health and discovery ones.",
    "Find the RoleBinding or ClusterRoleBinding granting system:anonymous or system:unauthenticated and remove it, or run the API server with --anonymous-auth=false.",
);
pub const FORBIDDEN_BURST: Rule = Rule::new(
    "AuditForbiddenBurst",
    "Many requests refused",
    CATEGORY,
    Severity::Medium,
    "A user was refused (403) more often than the threshold in the window: a client missing a permission, or someone probing what their credentials allow.",
    "Look at the refused verbs and resources in the message: grant what a legitimate client needs, or revoke the credentials.",
);

pub const RULES: &[Rule] = &[
    CLUSTER_ADMIN_BOUND,
    POD_EXEC,
    SECRETS_READ,
    IMPERSONATION,
    ANONYMOUS_ALLOWED,
    FORBIDDEN_BURST,
];

/// Probe config; every field has a default.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// How far back to look.
    pub window_minutes: u32,
    /// Refusals (403) per user in the window above which it is reported.
    pub forbidden_threshold: i64,
    /// Users whose activity is expected (a CI identity, a backup tool): not reported.
    pub ignore_users: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            window_minutes: 60,
            forbidden_threshold: 20,
            ignore_users: Vec::new(),
        }
    }
}

/// The probe.
pub struct AuditActivity;

impl Probe for AuditActivity {
    type Config = Config;

    fn describe() -> ProbeInfo {
        sonde_sdk::describe(
            "audit-activity",
            env!("CARGO_PKG_VERSION"),
            "Who did what in the API server, from its audit records: cluster-admin granted, exec into pods, secrets read, impersonation, anonymous access, repeated refusals",
        )
        .rules(RULES)
        .collector(COLLECTOR)
        .build()
    }

    fn run(config: Config) -> Result<Vec<Finding>, ProbeError> {
        if config.window_minutes == 0 {
            return Err(ProbeError::InvalidInput(
                "config: window_minutes must be at least 1".into(),
            ));
        }
        if config.forbidden_threshold < 1 {
            return Err(ProbeError::InvalidInput(
                "config: forbidden_threshold must be at least 1".into(),
            ));
        }
        if let Err(why) = collectors::available(COLLECTOR) {
            log::info(&format!(
                "audit checks skipped: no audit records ({why}); point the API server's audit \
                 webhook at the daemon's /api/v1/audit (deploy/audit/)"
            ));
            return Ok(Vec::new());
        }
        let ignored: BTreeSet<&str> = config.ignore_users.iter().map(String::as_str).collect();
        let mut out = Vec::new();
        type Check = fn(&Config, &BTreeSet<&str>) -> Result<Vec<Finding>, ProbeError>;
        let checks: [Check; 6] = [
            cluster_admin,
            pod_exec,
            secrets_read,
            impersonation,
            anonymous,
            forbidden,
        ];
        for check in checks {
            out.extend(check(&config, &ignored)?);
        }
        Ok(out)
    }
}

sonde_sdk::export_probe!(AuditActivity);

/// Whether a request was answered with success (2xx, or 101 for an
/// upgraded exec/attach/port-forward stream).
const ALLOWED_BELOW: i64 = 400;

fn times(n: i64) -> String {
    if n == 1 {
        "once".into()
    } else {
        format!("{n} times")
    }
}

fn namespace_ref(ns: &str) -> ResourceRef {
    ResourceRef {
        api_version: "v1".into(),
        kind: "Namespace".into(),
        namespace: None,
        name: ns.into(),
        uid: None,
    }
}

/// Whether `user` is a person (or another client with its own
/// credentials) rather than a service account or a system component.
fn is_person(user: &str) -> bool {
    !user.starts_with("system:")
}

fn user_of<'r>(row: &'r Row, ignored: &BTreeSet<&str>) -> Option<&'r str> {
    row.text("user").filter(|u| !ignored.contains(u))
}

fn cluster_admin(c: &Config, ignored: &BTreeSet<&str>) -> Result<Vec<Finding>, ProbeError> {
    let table = collectors::query(COLLECTOR, c.window_minutes)
        .filter(
            "role_ref",
            FilterOp::Eq,
            Value::Text("ClusterRole/cluster-admin".into()),
        )
        .filter("code", FilterOp::Lt, Value::Integer(ALLOWED_BELOW))
        // The API server's own bootstrap bindings (system:masters).
        .filter("user", FilterOp::Ne, Value::Text("system:apiserver".into()))
        .group_by(&["user", "kind", "resource", "namespace", "name", "subjects"])
        .aggregate(AggregateOp::Count, None)
        .aggregate(AggregateOp::Max, Some("ts"))
        .run()?;
    let mut out = Vec::new();
    for row in table.rows() {
        let Some(user) = user_of(&row, ignored) else {
            continue;
        };
        let name = row.text("name").unwrap_or("?");
        let namespace = row.text("namespace").filter(|n| !n.is_empty());
        let kind = if row.text("resource") == Some("rolebindings") {
            "RoleBinding"
        } else {
            "ClusterRoleBinding"
        };
        let subjects = row.text("subjects").unwrap_or("no subjects");
        let verb = match row.text("kind") {
            Some("create") => "created",
            Some("update") => "updated",
            Some("patch") => "patched",
            _ => "wrote",
        };
        let scope = match namespace {
            Some(ns) => format!("in namespace {ns}"),
            None => "cluster-wide".into(),
        };
        let last = utc(row.integer("max(ts)").unwrap_or(0));
        out.push(
            CLUSTER_ADMIN_BOUND
                .finding(
                    ResourceRef {
                        api_version: "rbac.authorization.k8s.io/v1".into(),
                        kind: kind.into(),
                        namespace: namespace.map(String::from),
                        name: name.into(),
                        uid: None,
                    },
                    format!(
                        "{user} {verb} {kind} {name} binding cluster-admin {scope} to {subjects} (last at {last})"
                    ),
                )
                .label("user", user)
                .into(),
        );
    }
    Ok(out)
}

fn pod_exec(c: &Config, ignored: &BTreeSet<&str>) -> Result<Vec<Finding>, ProbeError> {
    let table = collectors::query(COLLECTOR, c.window_minutes)
        .filter("resource", FilterOp::Eq, Value::Text("pods".into()))
        .filter("code", FilterOp::Lt, Value::Integer(ALLOWED_BELOW))
        .filter("stage", FilterOp::Ne, Value::Text("ResponseStarted".into()))
        .group_by(&["user", "namespace", "pod", "subresource"])
        .aggregate(AggregateOp::Count, None)
        .aggregate(AggregateOp::Max, Some("ts"))
        .run()?;
    let mut out = Vec::new();
    for row in table.rows() {
        let Some(session) = row
            .text("subresource")
            .filter(|s| matches!(*s, "exec" | "attach" | "portforward"))
        else {
            continue;
        };
        let (Some(user), Some(ns), Some(pod)) = (
            user_of(&row, ignored),
            row.text("namespace"),
            row.text("pod"),
        ) else {
            continue;
        };
        let n = row.integer("count").unwrap_or(0);
        let last = utc(row.integer("max(ts)").unwrap_or(0));
        out.push(
            POD_EXEC
                .finding(
                    ResourceRef {
                        api_version: "v1".into(),
                        kind: "Pod".into(),
                        namespace: Some(ns.into()),
                        name: pod.into(),
                        uid: None,
                    },
                    format!(
                        "{user} opened {session} into the pod {} in the last {} minutes (last at {last})",
                        times(n),
                        c.window_minutes
                    ),
                )
                .label("user", user)
                .label("session", session)
                .into(),
        );
    }
    Ok(out)
}

fn secrets_read(c: &Config, ignored: &BTreeSet<&str>) -> Result<Vec<Finding>, ProbeError> {
    let table = collectors::query(COLLECTOR, c.window_minutes)
        .filter("resource", FilterOp::Eq, Value::Text("secrets".into()))
        .filter("code", FilterOp::Lt, Value::Integer(ALLOWED_BELOW))
        .filter(
            "stage",
            FilterOp::Eq,
            Value::Text("ResponseComplete".into()),
        )
        .group_by(&["user", "namespace", "kind", "name"])
        .aggregate(AggregateOp::Count, None)
        .aggregate(AggregateOp::Max, Some("ts"))
        .run()?;
    // (user, namespace or "" for all) -> reads ("get db", "list"), count, last.
    let mut per: BTreeMap<(String, String), (BTreeSet<String>, i64, i64)> = BTreeMap::new();
    for row in table.rows() {
        let Some(user) = user_of(&row, ignored).filter(|u| is_person(u)) else {
            continue;
        };
        let verb = row.text("kind").unwrap_or("?");
        if !matches!(verb, "get" | "list" | "watch") {
            continue;
        }
        let ns = row.text("namespace").unwrap_or_default();
        let what = match row.text("name") {
            Some(name) => format!("{verb} {name}"),
            None => verb.to_string(),
        };
        let e = per
            .entry((user.to_string(), ns.to_string()))
            .or_insert_with(|| (BTreeSet::new(), 0, 0));
        e.0.insert(what);
        e.1 += row.integer("count").unwrap_or(0);
        e.2 = e.2.max(row.integer("max(ts)").unwrap_or(0));
    }
    let mut out = Vec::new();
    for ((user, ns), (reads, n, last)) in per {
        let reads: Vec<String> = reads.into_iter().collect();
        let (resource, scope) = if ns.is_empty() {
            (None, "in every namespace".to_string())
        } else {
            (Some(namespace_ref(&ns)), format!("in namespace {ns}"))
        };
        let message = format!(
            "{user} read secrets {scope} {} in the last {} minutes ({}; last at {})",
            times(n),
            c.window_minutes,
            reads.join(", "),
            utc(last)
        );
        let f = match resource {
            Some(r) => SECRETS_READ.finding(r, message),
            None => SECRETS_READ.cluster_finding(message),
        };
        out.push(f.label("user", &user).into());
    }
    Ok(out)
}

fn impersonation(c: &Config, ignored: &BTreeSet<&str>) -> Result<Vec<Finding>, ProbeError> {
    let table = collectors::query(COLLECTOR, c.window_minutes)
        .filter("impersonated_user", FilterOp::Ne, Value::Null)
        .filter("stage", FilterOp::Ne, Value::Text("ResponseStarted".into()))
        .group_by(&["user", "impersonated_user", "decision"])
        .aggregate(AggregateOp::Count, None)
        .aggregate(AggregateOp::Max, Some("ts"))
        .run()?;
    // (user, as) -> (allowed, refused, last)
    let mut per: BTreeMap<(String, String), (i64, i64, i64)> = BTreeMap::new();
    for row in table.rows() {
        let (Some(user), Some(target)) = (user_of(&row, ignored), row.text("impersonated_user"))
        else {
            continue;
        };
        let e = per
            .entry((user.to_string(), target.to_string()))
            .or_default();
        let n = row.integer("count").unwrap_or(0);
        if row.text("decision") == Some("allow") {
            e.0 += n;
        } else {
            e.1 += n;
        }
        e.2 = e.2.max(row.integer("max(ts)").unwrap_or(0));
    }
    Ok(per
        .into_iter()
        .map(|((user, target), (allowed, refused, last))| {
            IMPERSONATION
                .cluster_finding(format!(
                    "{user} sent {} requests as {target} in the last {} minutes ({allowed} allowed, {refused} refused; last at {})",
                    allowed + refused,
                    c.window_minutes,
                    utc(last)
                ))
                .label("user", &user)
                .label("impersonated", &target)
                .into()
        })
        .collect())
}

/// Paths the API server serves to anyone by design
/// (`system:public-info-viewer`, service-account issuer discovery).
fn public_path(uri: &str) -> bool {
    let path = uri.split('?').next().unwrap_or(uri);
    matches!(
        path,
        "/healthz"
            | "/livez"
            | "/readyz"
            | "/version"
            | "/.well-known/openid-configuration"
            | "/openid/v1/jwks"
    ) || ["/healthz/", "/livez/", "/readyz/"]
        .iter()
        .any(|p| path.starts_with(p))
}

fn anonymous(c: &Config, _: &BTreeSet<&str>) -> Result<Vec<Finding>, ProbeError> {
    let table = collectors::query(COLLECTOR, c.window_minutes)
        .filter("user", FilterOp::Eq, Value::Text("system:anonymous".into()))
        .filter("code", FilterOp::Lt, Value::Integer(ALLOWED_BELOW))
        .group_by(&["kind", "request_uri"])
        .aggregate(AggregateOp::Count, None)
        .aggregate(AggregateOp::Max, Some("ts"))
        .run()?;
    let mut requests = Vec::new();
    let (mut n, mut last) = (0, 0);
    for row in table.rows() {
        let uri = row.text("request_uri").unwrap_or("?");
        if public_path(uri) {
            continue;
        }
        n += row.integer("count").unwrap_or(0);
        last = last.max(row.integer("max(ts)").unwrap_or(0));
        requests.push(format!("{} {uri}", row.text("kind").unwrap_or("?")));
    }
    if n == 0 {
        return Ok(Vec::new());
    }
    requests.sort();
    let shown: Vec<&str> = requests.iter().take(5).map(String::as_str).collect();
    let more = requests.len().saturating_sub(shown.len());
    let mut message = format!(
        "the API server allowed {} from system:anonymous in the last {} minutes: {}",
        times(n)
            .replace("once", "1 request")
            .replace("times", "requests"),
        c.window_minutes,
        shown.join(", ")
    );
    if more > 0 {
        message.push_str(&format!(" and {more} more"));
    }
    message.push_str(&format!(" (last at {})", utc(last)));
    Ok(vec![ANONYMOUS_ALLOWED.cluster_finding(message).into()])
}

fn forbidden(c: &Config, ignored: &BTreeSet<&str>) -> Result<Vec<Finding>, ProbeError> {
    let table = collectors::query(COLLECTOR, c.window_minutes)
        .filter("code", FilterOp::Eq, Value::Integer(403))
        .group_by(&["user", "kind", "resource"])
        .aggregate(AggregateOp::Count, None)
        .aggregate(AggregateOp::Max, Some("ts"))
        .run()?;
    // user -> (refusals, "verb resource" -> count, last)
    let mut per: BTreeMap<String, (i64, BTreeMap<String, i64>, i64)> = BTreeMap::new();
    for row in table.rows() {
        let Some(user) = user_of(&row, ignored) else {
            continue;
        };
        let n = row.integer("count").unwrap_or(0);
        let what = format!(
            "{} {}",
            row.text("kind").unwrap_or("?"),
            row.text("resource").unwrap_or("(non-resource)")
        );
        let e = per.entry(user.to_string()).or_default();
        e.0 += n;
        *e.1.entry(what).or_default() += n;
        e.2 = e.2.max(row.integer("max(ts)").unwrap_or(0));
    }
    let mut out = Vec::new();
    for (user, (n, what, last)) in per {
        if n <= c.forbidden_threshold {
            continue;
        }
        let mut what: Vec<(String, i64)> = what.into_iter().collect();
        what.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let top: Vec<String> = what
            .iter()
            .take(5)
            .map(|(w, k)| format!("{w} ({k})"))
            .collect();
        out.push(
            FORBIDDEN_BURST
                .cluster_finding(format!(
                    "{user} was refused {n} times in the last {} minutes (threshold {}): {} (last at {})",
                    c.window_minutes,
                    c.forbidden_threshold,
                    top.join(", "),
                    utc(last)
                ))
                .label("user", &user)
                .into(),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_paths_are_those_anyone_may_read() {
        assert!(public_path("/healthz"));
        assert!(public_path("/readyz?verbose"));
        assert!(public_path("/livez/ping"));
        assert!(public_path("/version?timeout=32s"));
        assert!(!public_path("/api/v1/namespaces/shop/secrets"));
        assert!(!public_path("/healthzz"));
        assert!(!public_path("/apis"));
    }

    #[test]
    fn people_are_told_from_system_identities() {
        assert!(is_person("alice@example.com"));
        assert!(is_person("realkube-admin"));
        assert!(!is_person("system:serviceaccount:shop:deployer"));
        assert!(!is_person("system:kube-controller-manager"));
    }
}
