//! The daemon's config file (YAML or TOML, by extension): the probes with
//! their schedules, configs, grants and limits; the cluster; the store; the
//! listen address; auth tokens; retention. Parsing is typed (unknown fields
//! are refused with file and line); [`DaemonConfig::validate`] then checks
//! what types cannot (cron expressions, time zones, grants, the bind rule)
//! and names the probe and field of each problem.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::schedule::CronSchedule;
use crate::grants::GrantSet;
use crate::runtime::RunLimits;

/// Problems with a config file, each naming the file and where.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{origin}: {}", problems.join("; "))]
    Invalid {
        origin: String,
        problems: Vec<String>,
    },
}

/// The whole config.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// Where the API and UI listen (default 127.0.0.1:8080).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Serve HTTPS with this certificate instead of plain HTTP.
    #[serde(default)]
    pub tls: Option<ServeTlsConfig>,
    /// The cluster the probes read.
    #[serde(default)]
    pub cluster: ClusterConfig,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub scheduler: SchedulerConfig,
    #[serde(default)]
    pub retention: RetentionConfig,
    /// The cluster's events, kept past the API server's hour.
    #[serde(default)]
    pub events: EventsConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub uploads: UploadConfig,
    /// Exemptions (the `--exemptions` file format), applied to reports and the score.
    #[serde(default)]
    pub exemptions: Option<PathBuf>,
    /// The node collectors run in this process (`mode`: auto, on, off).
    #[serde(default)]
    pub collectors: Option<crate::agent::AgentConfig>,
    /// Where new and fixed findings are sent as they are found.
    #[serde(default)]
    pub alerts: Vec<AlertConfig>,
    /// The UI's address as people reach it (`https://sonde.example.com`),
    /// for links in alerts; none: alerts carry no links.
    #[serde(default)]
    pub external_url: Option<String>,
    /// This cluster's name in what Sonde sends out (alerts) and shows (the
    /// UI's header): several clusters' Sondes can share one Alertmanager or
    /// chat channel and still be told apart.
    #[serde(default)]
    pub cluster_name: Option<String>,
    pub probes: Vec<ProbeConfig>,
}

/// One place alerts go: the findings a successful run opened (new, or back
/// after a fix) and, unless `resolved` is off, those it found fixed, at or
/// above `min_severity`, not exempted, one request per run.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AlertConfig {
    pub name: String,
    /// `http://` or `https://`; for `alertmanager`, its `/api/v2/alerts`.
    pub url: String,
    #[serde(default)]
    pub format: AlertFormat,
    /// The least severe finding sent (default high).
    #[serde(default = "default_alert_severity")]
    pub min_severity: String,
    /// Only these probes' findings; empty: every probe's.
    #[serde(default)]
    pub probes: Vec<String>,
    /// Also send the findings a run found fixed (default true).
    #[serde(default = "default_true")]
    pub resolved: bool,
    /// An environment variable holding a bearer token for `url`.
    pub token_env: Option<String>,
    /// Send the findings runs open and fix (default true; off for a
    /// destination of events only).
    #[serde(default = "default_true")]
    pub findings: bool,
    /// Also send the cluster's events as the daemon keeps them
    /// (`events.record`), those this selects.
    pub events: Option<EventAlertConfig>,
}

/// Which of the cluster's events an alert destination is sent, as the
/// daemon keeps them (each occurrence once, within `events.interval_seconds`
/// of the API server writing it). Every list given must hold the event's
/// value; an empty list holds any.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EventAlertConfig {
    /// Event types (default `[Warning]`).
    #[serde(default = "default_event_types")]
    pub types: Vec<String>,
    /// Reasons (`BackOff`, `FailedScheduling`, `Failed`, ...).
    #[serde(default)]
    pub reasons: Vec<String>,
    /// The involved object's namespace.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// The involved object's kind (`Pod`, `Node`, ...).
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Occurrences older than this when first read are kept, not sent
    /// (default 15): the hour of events a first start finds is history,
    /// not news.
    #[serde(default = "default_event_alert_age")]
    pub max_age_minutes: u64,
}

fn default_event_types() -> Vec<String> {
    vec!["Warning".into()]
}

fn default_event_alert_age() -> u64 {
    15
}

/// The daemon's own certificate: PEM files, read again when they change.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServeTlsConfig {
    /// The certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// Its private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// What an alert request's body is.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AlertFormat {
    /// Sonde's JSON: the probe, the run, the findings opened and fixed.
    #[default]
    Json,
    /// Alertmanager's `POST /api/v2/alerts`: one alert per finding, ended
    /// (`endsAt`) when it is fixed.
    Alertmanager,
    /// A Slack (or Mattermost, Rocket.Chat) incoming webhook: `{"text": ...}`.
    Slack,
}

fn default_alert_severity() -> String {
    "high".into()
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

/// Where Kubernetes reads come from: a snapshot, or a live cluster.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// A folder of manifests or a `kubectl get -o yaml` dump.
    pub snapshot: Option<PathBuf>,
    /// A kubeconfig (default: KUBECONFIG, ~/.kube/config, in-cluster).
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    /// Client-side request rate limit (default 50/s, burst 100).
    pub qps: Option<f64>,
    pub burst: Option<u32>,
    /// Nameservers (`ip[:port]`) for the probes' DNS lookups; default: the system's.
    #[serde(default)]
    pub dns_servers: Vec<String>,
    /// How probes' HTTP requests are made: extra CA files, default timeout, body cap.
    #[serde(default)]
    pub http: crate::caps::http::HttpSettings,
    /// The cluster's etcd (client URLs, CA, client certificate), for probes granted its keys.
    #[serde(default)]
    pub etcd: crate::caps::etcd::EtcdSettings,
}

/// The SQLite file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    #[serde(default = "default_store_path")]
    pub path: PathBuf,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            path: default_store_path(),
        }
    }
}

fn default_store_path() -> PathBuf {
    PathBuf::from("sonde.db")
}

/// Scheduling defaults for every probe.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SchedulerConfig {
    /// Most runs at once, all probes together (default: one per core).
    pub concurrency: Option<usize>,
    /// Default time zone of the cron expressions (IANA name, default UTC).
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// Default random delay added to each scheduled run, in seconds.
    #[serde(default)]
    pub jitter_seconds: u64,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            concurrency: None,
            timezone: default_timezone(),
            jitter_seconds: 0,
        }
    }
}

fn default_timezone() -> String {
    "UTC".into()
}

/// What the store keeps.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Delete finished runs and fixed findings older than this many days.
    #[serde(default = "default_max_age_days")]
    pub max_age_days: Option<u64>,
    /// Keep at most this many finished runs per probe.
    #[serde(default = "default_max_runs")]
    pub max_runs_per_probe: Option<u32>,
    /// How often retention runs, in minutes.
    #[serde(default = "default_retention_every")]
    pub every_minutes: u64,
    /// Keep the http collector's per-minute sums for fewer days than the
    /// rest (their hourly sums stay for `max_age_days`): the Traffic page
    /// and probes read days and weeks from the hours. Unset: as long as
    /// the rest.
    #[serde(default)]
    pub http_minutes_max_age_days: Option<u64>,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            max_age_days: default_max_age_days(),
            max_runs_per_probe: default_max_runs(),
            every_minutes: default_retention_every(),
            http_minutes_max_age_days: None,
        }
    }
}

/// The cluster's events kept past the API server's one hour (the
/// `kube-events` collector, see `crate::kube_events`), as long as
/// `retention.max_age_days` keeps collector data.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EventsConfig {
    /// Whether to keep them (default true; nothing to read without a cluster).
    #[serde(default = "default_true")]
    pub record: bool,
    /// How often the events are read, in seconds (default 30; on a live
    /// cluster from the daemon's watch of them, so a read costs no request).
    #[serde(default = "default_events_interval")]
    pub interval_seconds: u64,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            record: true,
            interval_seconds: default_events_interval(),
        }
    }
}

fn default_true() -> bool {
    true
}

fn default_events_interval() -> u64 {
    30
}

fn default_max_age_days() -> Option<u64> {
    Some(30)
}
fn default_max_runs() -> Option<u32> {
    Some(1000)
}
fn default_retention_every() -> u64 {
    60
}

/// Bearer tokens and their roles.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
}

/// One token: inline, or read from an environment variable.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds it (shown in logs, never the token).
    pub name: String,
    pub role: Role,
    pub token: Option<String>,
    pub token_env: Option<String>,
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads.
    Viewer,
    /// Reads and writes (run now, suspend, upload, reload).
    Admin,
    /// A node agent: sends its collectors' data
    /// (`POST /api/v1/collectors/batches`) and nothing else, so that the
    /// token every node holds reads nothing.
    Agent,
    /// The API server's audit webhook: sends audit records
    /// (`POST /api/v1/audit`) and nothing else.
    Audit,
}

/// Component uploads through the API.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UploadConfig {
    /// Largest component accepted, in bytes (default 32 MiB).
    #[serde(default = "default_upload_max")]
    pub max_bytes: usize,
    /// Where uploaded components are kept (default: `probes/` beside the store).
    pub dir: Option<PathBuf>,
}

impl Default for UploadConfig {
    fn default() -> Self {
        UploadConfig {
            max_bytes: default_upload_max(),
            dir: None,
        }
    }
}

fn default_upload_max() -> usize {
    32 << 20
}

/// One probe.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    /// The probe's name in the store, the API and reports: a built-in
    /// probe's name selects it unless `component` is given.
    pub name: String,
    /// A component file, for probes that are not built in.
    pub component: Option<PathBuf>,
    /// A cron expression: 6 fields with seconds (`0 */5 * * * *`), 7 with
    /// years, or 5 (seconds taken as 0). None: on demand only.
    pub schedule: Option<String>,
    /// IANA time zone of the schedule (default: the scheduler's).
    pub timezone: Option<String>,
    /// Random delay added to each scheduled run, in seconds (default: the scheduler's).
    pub jitter_seconds: Option<u64>,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The probe's own config (any YAML/TOML value, given to it as JSON).
    #[serde(default)]
    pub config: Option<serde_json::Value>,
    /// Grant specs (`kube:get,list:Pod`, `dns`, ...); absent: what the probe asks for.
    pub grants: Option<Vec<String>>,
    #[serde(default)]
    pub limits: LimitsConfig,
    /// For the `rego` probe: folders of KubeEye OPA rules (`*.rego`), read at
    /// start and at each reload.
    #[serde(default)]
    pub rego: Vec<PathBuf>,
    /// For the `schema-checks` probe: KubeEye/Polaris `rule.yaml` files.
    #[serde(default)]
    pub checks: Vec<PathBuf>,
}

fn yes() -> bool {
    true
}

/// Per-run limits; absent fields keep the defaults.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    pub timeout_seconds: Option<u64>,
    pub memory_mib: Option<u64>,
    pub max_findings: Option<usize>,
    pub max_output_bytes: Option<usize>,
    pub max_log_lines: Option<usize>,
}

impl LimitsConfig {
    /// The defaults with these overrides.
    pub fn to_limits(&self) -> RunLimits {
        let mut l = RunLimits::default();
        if let Some(s) = self.timeout_seconds {
            l.timeout_ms = s.saturating_mul(1000);
        }
        if let Some(m) = self.memory_mib {
            l.memory_bytes = m << 20;
        }
        if let Some(n) = self.max_findings {
            l.max_findings = n;
        }
        if let Some(n) = self.max_output_bytes {
            l.max_output_bytes = n;
        }
        if let Some(n) = self.max_log_lines {
            l.max_log_lines = n;
        }
        l
    }
}

/// A probe's config checked: its schedule parsed, its grants parsed.
#[derive(Debug, Clone)]
pub struct CheckedProbe {
    pub config: ProbeConfig,
    pub schedule: Option<CronSchedule>,
    pub jitter: Duration,
    /// None: grant what the probe asks for.
    pub grants: Option<GrantSet>,
    pub limits: RunLimits,
}

/// An alert destination with its token resolved.
#[derive(Clone, PartialEq)]
pub struct CheckedAlert {
    pub config: AlertConfig,
    pub min_severity: crate::bindings::Severity,
    pub token: Option<String>,
}

impl std::fmt::Debug for CheckedAlert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckedAlert")
            .field("name", &self.config.name)
            .field("url", &self.config.url)
            .finish_non_exhaustive()
    }
}

/// A token with its secret resolved.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    pub name: String,
    pub role: Role,
    pub secret: String,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// The config with everything checked.
#[derive(Debug, Clone)]
pub struct Checked {
    pub config: DaemonConfig,
    pub probes: Vec<CheckedProbe>,
    pub tokens: Vec<Token>,
    pub alerts: Vec<CheckedAlert>,
    /// Where relative paths in the file are resolved from.
    pub base: PathBuf,
}

impl DaemonConfig {
    /// Reads a config file: TOML when it ends in `.toml`, else YAML.
    pub fn load(path: &Path) -> Result<DaemonConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses config text; `path` names it in errors and picks the format.
    pub fn parse(text: &str, path: &Path) -> Result<DaemonConfig, ConfigError> {
        let parse_err = |message: String| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        };
        if path.extension().is_some_and(|e| e == "toml") {
            toml::from_str(text).map_err(|e| parse_err(e.to_string().trim_end().to_string()))
        } else {
            serde_yaml::from_str(text).map_err(|e| parse_err(e.to_string()))
        }
    }

    /// Checks what the types cannot, resolving relative paths against
    /// `base` (the config file's folder). Every problem is reported at once.
    pub fn validate(
        mut self,
        origin: &str,
        base: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Checked, ConfigError> {
        let mut problems = Vec::new();
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        if let Some(p) = &mut self.cluster.snapshot {
            resolve(p);
        }
        if let Some(p) = &mut self.cluster.kubeconfig {
            resolve(p);
        }
        if self.cluster.snapshot.is_some()
            && (self.cluster.kubeconfig.is_some() || self.cluster.context.is_some())
        {
            problems.push("cluster: give either snapshot or kubeconfig/context, not both".into());
        }
        if self.cluster.qps.is_some_and(|q| !q.is_finite() || q <= 0.0)
            || self.cluster.burst == Some(0)
        {
            problems.push("cluster: qps and burst must be greater than 0".into());
        }
        for ns in &self.cluster.dns_servers {
            if let Err(e) = crate::caps::dns::parse_nameserver(ns) {
                problems.push(format!("cluster.dns_servers: {e}"));
            }
        }
        for p in &mut self.cluster.http.ca_files {
            resolve(p);
        }
        if let Err(e) = self.cluster.http.check() {
            problems.push(format!("cluster.{e}"));
        }
        let etcd = &mut self.cluster.etcd;
        for p in [&mut etcd.ca_file, &mut etcd.cert_file, &mut etcd.key_file]
            .into_iter()
            .flatten()
        {
            resolve(p);
        }
        if let Err(e) = self.cluster.etcd.check() {
            problems.push(format!("cluster.{e}"));
        }
        resolve(&mut self.store.path);
        if let Some(tls) = &mut self.tls {
            resolve(&mut tls.cert_file);
            resolve(&mut tls.key_file);
            if let Err(e) = super::tls::load(&tls.cert_file, &tls.key_file) {
                problems.push(format!("tls.{e}"));
            }
        }
        if let Some(p) = &mut self.exemptions {
            resolve(p);
        }
        if let Some(p) = &mut self.uploads.dir {
            resolve(p);
        }
        if self.scheduler.concurrency == Some(0) {
            problems.push("scheduler.concurrency must be at least 1".into());
        }
        if let Err(e) = super::schedule::parse_timezone(&self.scheduler.timezone) {
            problems.push(format!("scheduler.timezone: {e}"));
        }
        if self.events.interval_seconds == 0 {
            problems.push("events.interval_seconds must be at least 1".into());
        }
        if self.retention.every_minutes == 0 {
            problems.push("retention.every_minutes must be at least 1".into());
        }
        match (
            self.retention.http_minutes_max_age_days,
            self.retention.max_age_days,
        ) {
            (Some(0), _) => {
                problems.push("retention.http_minutes_max_age_days must be at least 1".into());
            }
            (Some(minutes), Some(all)) if minutes > all => problems.push(format!(
                "retention.http_minutes_max_age_days ({minutes}) is longer than \
                 retention.max_age_days ({all}), which deletes the minutes first"
            )),
            _ => {}
        }
        if let Some(c) = &self.collectors {
            problems.extend(c.problems("collectors."));
        }

        let mut tokens = Vec::new();
        let mut secrets = BTreeSet::new();
        for (i, t) in self.auth.tokens.iter().enumerate() {
            let at = format!("auth.tokens[{i}] ({})", t.name);
            let secret = match (&t.token, &t.token_env) {
                (Some(s), None) => Some(s.clone()),
                (None, Some(var)) => match env(var) {
                    Some(s) => Some(s),
                    None => {
                        problems.push(format!("{at}: the environment variable {var} is not set"));
                        None
                    }
                },
                _ => {
                    problems.push(format!("{at}: give exactly one of token and token_env"));
                    None
                }
            };
            if let Some(secret) = secret {
                if secret.len() < 16 {
                    problems.push(format!("{at}: a token must be at least 16 characters"));
                } else if !secrets.insert(secret.clone()) {
                    problems.push(format!("{at}: the same token is given twice"));
                } else {
                    tokens.push(Token {
                        name: t.name.clone(),
                        role: t.role,
                        secret,
                    });
                }
            }
        }
        if !self.listen.ip().is_loopback() && self.auth.tokens.is_empty() {
            problems.push(format!(
                "listen: {} is not a loopback address and no auth tokens are configured; \
                 add auth.tokens or listen on 127.0.0.1",
                self.listen
            ));
        }

        let mut alerts = Vec::new();
        let mut alert_names = BTreeSet::new();
        for (i, a) in self.alerts.iter().enumerate() {
            let at = format!("alerts[{i}] ({})", a.name);
            if a.name.is_empty() || !alert_names.insert(a.name.clone()) {
                problems.push(format!("{at}: each alert needs a name of its own"));
            }
            let url_ok = reqwest::Url::parse(&a.url)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
            if !url_ok {
                problems.push(format!("{at}: url {:?} is not an http(s) URL", a.url));
            }
            let min_severity = match a.min_severity.parse::<crate::bindings::Severity>() {
                Ok(s) => Some(s),
                Err(e) => {
                    problems.push(format!("{at}: min_severity: {e}"));
                    None
                }
            };
            let token = match &a.token_env {
                None => Some(None),
                Some(var) => match env(var) {
                    Some(t) => Some(Some(t)),
                    None => {
                        problems.push(format!("{at}: the environment variable {var} is not set"));
                        None
                    }
                },
            };
            if !a.findings && a.events.is_none() {
                problems.push(format!(
                    "{at}: sends nothing: findings is false and no events are chosen"
                ));
            }
            if a.events.is_some() && !self.events.record {
                problems.push(format!(
                    "{at}: events: the daemon does not keep the cluster's events (events.record is false)"
                ));
            }
            if let (Some(min_severity), Some(token), true) = (min_severity, token, url_ok) {
                alerts.push(CheckedAlert {
                    config: a.clone(),
                    min_severity,
                    token,
                });
            }
        }
        if let Some(u) = &self.external_url
            && !reqwest::Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
        {
            problems.push(format!("external_url: {u:?} is not an http(s) URL"));
        }
        if let Some(n) = &self.cluster_name
            && (n.is_empty() || n.len() > 63 || n.chars().any(|c| c.is_control()))
        {
            problems.push(format!(
                "cluster_name: {n:?} is not a name (1 to 63 characters, no control characters)"
            ));
        }

        let mut names = BTreeSet::new();
        let mut probes = Vec::new();
        for (i, p) in self.probes.iter_mut().enumerate() {
            let at = format!("probes[{i}] ({})", p.name);
            if !valid_name(&p.name) {
                problems.push(format!(
                    "{at}: a probe name is 1-63 letters, digits, '-', '_' or '.'"
                ));
            }
            if !names.insert(p.name.clone()) {
                problems.push(format!("{at}: another probe has this name"));
            }
            for path in p.rego.iter_mut().chain(p.checks.iter_mut()) {
                resolve(path);
            }
            if !p.rego.is_empty() && (p.component.is_some() || p.name != "rego") {
                problems.push(format!(
                    "{at}: rego folders are for the built-in rego probe"
                ));
            }
            if !p.checks.is_empty() && (p.component.is_some() || p.name != "schema-checks") {
                problems.push(format!(
                    "{at}: checks files are for the built-in schema-checks probe"
                ));
            }
            if (!p.rego.is_empty() || !p.checks.is_empty()) && p.config.is_some() {
                problems.push(format!(
                    "{at}: give rules as rego/checks or as config, not both"
                ));
            }
            match &mut p.component {
                Some(c) => resolve(c),
                None if crate::builtin::find(&p.name).is_none() => problems.push(format!(
                    "{at}: not a built-in probe ({}); give `component: PATH` for a component",
                    crate::builtin::names().join(", ")
                )),
                None => {}
            }
            let timezone = p.timezone.as_deref().unwrap_or(&self.scheduler.timezone);
            let schedule = match &p.schedule {
                Some(expr) => match CronSchedule::parse(expr, timezone) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        problems.push(format!("{at}: schedule: {e}"));
                        None
                    }
                },
                None => None,
            };
            let grants = match &p.grants {
                None => None,
                Some(specs) => {
                    let mut set = GrantSet::default();
                    for spec in specs {
                        match GrantSet::parse_spec(spec) {
                            Ok(g) => set.extend(g),
                            Err(e) => problems.push(format!("{at}: grants: {e}")),
                        }
                    }
                    Some(set)
                }
            };
            let limits = p.limits.to_limits();
            if let Err(e) = limits.validate(u64::MAX) {
                problems.push(format!("{at}: limits: {e}"));
            }
            probes.push(CheckedProbe {
                config: p.clone(),
                schedule,
                jitter: Duration::from_secs(
                    p.jitter_seconds.unwrap_or(self.scheduler.jitter_seconds),
                ),
                grants,
                limits,
            });
        }
        if !problems.is_empty() {
            return Err(ConfigError::Invalid {
                origin: origin.to_string(),
                problems,
            });
        }
        Ok(Checked {
            config: self,
            probes,
            tokens,
            alerts,
            base: base.to_path_buf(),
        })
    }
}

impl Checked {
    /// Reads and checks a config file (relative paths against its folder).
    pub fn load(path: &Path) -> Result<Checked, ConfigError> {
        let config = DaemonConfig::load(path)?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        config.validate(&path.display().to_string(), base, &|v| {
            std::env::var(v).ok()
        })
    }

    /// The folder uploaded components are kept in.
    pub fn upload_dir(&self) -> PathBuf {
        self.config.uploads.dir.clone().unwrap_or_else(|| {
            self.config
                .store
                .path
                .parent()
                .unwrap_or(Path::new("."))
                .join("probes")
        })
    }
}

/// Probe names end up in URLs, file names and metric labels.
pub fn valid_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, file: &str) -> Result<Checked, ConfigError> {
        let path = Path::new(file);
        DaemonConfig::parse(text, path)?.validate(file, Path::new("/etc/sonde"), &|v| {
            (v == "VIEWER").then(|| "viewer-token-0123456789".to_string())
        })
    }

    #[test]
    fn a_full_yaml_config_is_read_with_paths_resolved() {
        let c = check(
            r#"
listen: 127.0.0.1:9000
cluster: {snapshot: cluster.yaml}
store: {path: data/sonde.db}
scheduler: {concurrency: 3, timezone: Europe/Berlin, jitter_seconds: 5}
auth:
  tokens:
    - {name: ops, role: admin, token: "admin-token-0123456789"}
    - {name: dash, role: viewer, token_env: VIEWER}
probes:
  - name: workload-audit
    schedule: "0 */5 * * * *"
  - name: mine
    component: probes/mine.wasm
    schedule: "*/10 * * * *"
    timezone: UTC
    jitter_seconds: 0
    config: {mode: ok}
    grants: ["kube:get,list:Pod"]
    limits: {timeout_seconds: 5, memory_mib: 64}
"#,
            "sonde.yaml",
        )
        .unwrap();
        assert_eq!(
            c.config.cluster.snapshot.as_deref(),
            Some(Path::new("/etc/sonde/cluster.yaml"))
        );
        assert_eq!(c.config.store.path, Path::new("/etc/sonde/data/sonde.db"));
        assert_eq!(c.upload_dir(), Path::new("/etc/sonde/data/probes"));
        assert_eq!(c.tokens.len(), 2);
        assert_eq!(c.tokens[1].secret, "viewer-token-0123456789");
        assert_eq!(c.probes[0].jitter, Duration::from_secs(5));
        assert_eq!(
            c.probes[0].schedule.as_ref().unwrap().timezone(),
            "Europe/Berlin"
        );
        assert_eq!(c.probes[1].jitter, Duration::ZERO);
        assert_eq!(c.probes[1].limits.timeout_ms, 5000);
        assert_eq!(c.probes[1].limits.memory_bytes, 64 << 20);
        assert!(c.probes[1].grants.is_some());
        assert_eq!(
            c.probes[1].config.component.as_deref(),
            Some(Path::new("/etc/sonde/probes/mine.wasm"))
        );
        assert!(
            !format!("{:?}", c.tokens).contains("0123456789"),
            "secrets stay out of logs"
        );
    }

    #[test]
    fn the_example_config_in_the_repository_is_valid() {
        let path = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/sonde.example.yaml"
        ));
        let c = Checked::load(path).unwrap();
        assert_eq!(c.probes.len(), crate::builtin::names().len());
        assert!(c.config.cluster.snapshot.as_ref().unwrap().exists());
        assert!(c.probes.iter().all(|p| p.schedule.is_some()));
        assert!(
            c.probes
                .iter()
                .all(|p| p.config.rego.iter().all(|d| d.exists()))
        );
    }

    #[test]
    fn toml_is_read_too() {
        let c = check(
            "[[probes]]\nname = \"rbac-audit\"\nschedule = \"0 0 * * * *\"\n",
            "sonde.toml",
        )
        .unwrap();
        assert_eq!(c.probes[0].config.name, "rbac-audit");
        assert_eq!(c.config.listen, default_listen());
    }

    #[test]
    fn unknown_fields_are_refused_with_the_line() {
        let err = check("probes:\n  - name: rbac-audit\n    shedule: x\n", "s.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("s.yaml") && err.contains("shedule") && err.contains("line 3"),
            "{err}"
        );
        let err = check("[[probes]]\nname = \"x\"\nsched = 1\n", "s.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("s.toml") && err.contains("sched") && err.contains("line 3"),
            "{err}"
        );
    }

    #[test]
    fn every_problem_is_named_with_its_probe() {
        let err = check(
            r#"
listen: 0.0.0.0:8080
scheduler: {timezone: Mars/Olympus}
retention: {max_age_days: 7, http_minutes_max_age_days: 10}
cluster:
  http: {ca_files: [/no/such/ca.pem]}
  etcd: {endpoints: ["10.0.0.1:2379"]}
auth: {tokens: [{name: short, role: admin, token: abc}]}
probes:
  - {name: workload-audit, schedule: "0 61 * * * *", timezone: UTC}
  - {name: workload-audit}
  - {name: nope}
  - {name: rbac-audit, grants: ["kube:fly:Pod"]}
"#,
            "bad.yaml",
        )
        .unwrap_err()
        .to_string();
        for needle in [
            "bad.yaml",
            "scheduler.timezone",
            "Mars/Olympus",
            "auth.tokens[0] (short): a token must be at least 16 characters",
            "probes[0] (workload-audit): schedule",
            "minutes",
            "probes[1] (workload-audit): another probe has this name",
            "probes[2] (nope): not a built-in probe",
            "probes[3] (rbac-audit): grants",
            "cluster.http CA file /no/such/ca.pem",
            "cluster.etcd.endpoints: \"10.0.0.1:2379\" is not a URL",
            "retention.http_minutes_max_age_days (10) is longer than retention.max_age_days (7)",
        ] {
            assert!(err.contains(needle), "{needle:?} not in {err}");
        }
        // 0.0.0.0 with a token that was refused: still counts as configured,
        // the token problem is the one reported.
        let err = check("listen: 0.0.0.0:8080\nprobes: []\n", "open.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("0.0.0.0:8080 is not a loopback address and no auth tokens"),
            "{err}"
        );
    }

    #[test]
    fn a_token_env_that_is_not_set_is_named() {
        let err = check(
            "auth: {tokens: [{name: ci, role: viewer, token_env: NOPE}]}\nprobes: []\n",
            "s.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("NOPE is not set"), "{err}");
    }

    #[test]
    fn names_that_cannot_be_urls_or_files_are_refused() {
        assert!(valid_name("rbac-audit") && valid_name("my_probe.v2"));
        for bad in ["", ".hidden", "a/b", "a b", "<x>", &"x".repeat(64)] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }
}
