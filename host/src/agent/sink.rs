//! Where an agent's batches go: into a store (the daemon's own when the
//! agent runs inside `sonde serve`, or a file of its own), or to a daemon's
//! API, `POST /api/v1/collectors/batches` with an agent token: one agent
//! per node of a cluster, one daemon, no shared file.
//!
//! A write takes the batch by `&mut` and takes out of it what it stored or
//! holds for sending; on an error the rest stays in it for the next write.
//! To a daemon, the events go first, in requests of at most
//! [`REQUEST_BYTES`] of JSON, in order, each numbered (`Sonde-Agent-Instance`,
//! a random name of this process, and `Sonde-Agent-Sequence`, 1, 2, ...).
//! A request is sent until the daemon answers it, the same body under the
//! same number, before any later one: when an answer is lost after the
//! daemon stored the request, the daemon knows the number and does not store
//! it twice (migration 0007), so events are stored exactly once. Then the
//! HTTP sums and the collectors' state, in one request without a number:
//! they replace what they update. A request the daemon refuses for its
//! content (400, 413, 415) would be refused again: its rows are dropped and
//! the error says how many.

use std::time::Duration;

use bytes::Bytes;

use crate::store::{CollectorBatch, Store, StoreError};

/// The most JSON one request to the daemon carries (the daemon takes up to
/// 16 MiB).
pub const REQUEST_BYTES: usize = 4 << 20;

/// How long one request to the daemon may take, connection included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The daemon's route for batches.
const BATCHES_PATH: &str = "/api/v1/collectors/batches";

/// Why a batch (or part of it) was not stored.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{url} is not a daemon address: {why}")]
    BadUrl { url: String, why: &'static str },
    #[error("the daemon's CA {path}: {why}")]
    Ca {
        path: std::path::PathBuf,
        why: String,
    },
    #[error("cannot encode collector data as JSON")]
    Encode(#[source] serde_json::Error),
    #[error("cannot send collector data to {endpoint}")]
    Send {
        endpoint: String,
        #[source]
        source: Box<ureq::Error>,
    },
    #[error("{endpoint} answered {status}: {message}")]
    Refused {
        endpoint: String,
        status: u16,
        message: String,
        /// Rows dropped because the daemon will not take them.
        dropped: usize,
    },
}

/// A daemon's batch route, the token to send with each request, and this
/// process's numbering of its event requests.
#[derive(Clone)]
pub struct DaemonSink {
    http: ureq::Agent,
    endpoint: String,
    token: Option<String>,
    /// This process's name to the daemon (random).
    instance: String,
    numbering: std::sync::Arc<std::sync::Mutex<Numbering>>,
}

/// The event requests: the next number, and the request sent but not
/// answered yet (sent again, unchanged, before anything else).
#[derive(Default)]
struct Numbering {
    next: i64,
    unanswered: Option<EventRequest>,
}

/// One numbered request of events, as it was first sent.
struct EventRequest {
    sequence: i64,
    body: Bytes,
    events: usize,
}

impl std::fmt::Debug for DaemonSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("DaemonSink")
            .field("endpoint", &self.endpoint)
            .field("instance", &self.instance)
            .field("token", &self.token.as_ref().map(|_| "…"))
            .finish()
    }
}

impl DaemonSink {
    /// The daemon at `url` (`http://host:port`, its listen address or
    /// service), sending `token` (an agent token) when there is one.
    pub fn new(url: &str, token: Option<String>) -> Result<DaemonSink, SinkError> {
        Self::with_ca(url, token, None)
    }

    /// The same, and for an `https://` daemon (its `tls:`), the CA its
    /// certificate is checked against (PEM; default: the public web roots).
    pub fn with_ca(
        url: &str,
        token: Option<String>,
        ca_file: Option<&std::path::Path>,
    ) -> Result<DaemonSink, SinkError> {
        let bad = |why| SinkError::BadUrl {
            url: url.to_string(),
            why,
        };
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))
            .ok_or_else(|| bad("it must start with http:// or https://"))?;
        let host = rest.split('/').next().unwrap_or_default();
        if host.is_empty() {
            return Err(bad("no host"));
        }
        if rest.contains(['?', '#']) {
            return Err(bad("no query or fragment"));
        }
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(REQUEST_TIMEOUT));
        if let Some(path) = ca_file {
            let ca = |why: String| SinkError::Ca {
                path: path.into(),
                why,
            };
            let certs: Vec<ureq::tls::Certificate<'static>> =
                ureq::tls::parse_pem(&std::fs::read(path).map_err(|e| ca(e.to_string()))?)
                    .filter_map(|item| match item {
                        Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
                        Ok(_) => None,
                        Err(e) => Some(Err(ca(e.to_string()))),
                    })
                    .collect::<Result<_, _>>()?;
            if certs.is_empty() {
                return Err(ca("no CERTIFICATE in it".into()));
            }
            config = config.tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(certs)))
                    .build(),
            );
        }
        let http: ureq::Agent = config.build().into();
        Ok(DaemonSink {
            http,
            endpoint: format!("{}{BATCHES_PATH}", url.trim_end_matches('/')),
            token: token.filter(|t| !t.is_empty()),
            instance: format!("{:032x}", fastrand::u128(..)),
            numbering: std::sync::Arc::new(std::sync::Mutex::new(Numbering {
                next: 1,
                unanswered: None,
            })),
        })
    }

    /// Where batches go.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Whether the daemon takes this agent's data: an empty batch sent (it
    /// stores nothing), answered 200 when the daemon is there and the
    /// token is one it accepts.
    pub async fn check(&self) -> Result<(), SinkError> {
        self.post(
            Bytes::from_static(b"{\"events\":[],\"http\":[],\"status\":[]}"),
            None,
        )
        .await
    }

    /// Events not yet answered by the daemon, held for sending again.
    pub fn unanswered_events(&self) -> usize {
        self.numbering().unanswered.as_ref().map_or(0, |r| r.events)
    }

    fn numbering(&self) -> std::sync::MutexGuard<'_, Numbering> {
        self.numbering
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sends `batch`; see the module's doc.
    async fn send(&self, batch: &mut CollectorBatch) -> Result<(), SinkError> {
        loop {
            let request = {
                let mut n = self.numbering();
                match n.unanswered.take() {
                    Some(r) => r,
                    None if !batch.events.is_empty() => {
                        let (body, events) = events_body(batch, REQUEST_BYTES)?;
                        batch.events.drain(..events);
                        let sequence = n.next;
                        n.next += 1;
                        EventRequest {
                            sequence,
                            body,
                            events,
                        }
                    }
                    None => break,
                }
            };
            match self
                .post(request.body.clone(), Some(request.sequence))
                .await
            {
                Ok(()) => {}
                Err(e) if e.is_permanent() => return Err(e.dropping(request.events)),
                Err(e) => {
                    self.numbering().unanswered = Some(request);
                    return Err(e);
                }
            }
        }
        if batch.http.is_empty() && batch.status.is_empty() {
            return Ok(());
        }
        let rows = batch.http.len() + batch.status.len();
        let sent = self.post(tail_body(batch)?, None).await;
        if sent.as_ref().is_err_and(|e| !e.is_permanent()) {
            return sent;
        }
        batch.http.clear();
        batch.status.clear();
        sent.map_err(|e| e.dropping(rows))
    }

    /// One request (numbered when `sequence` is given); an answer other
    /// than 2xx is `Refused` with the daemon's message.
    async fn post(&self, body: Bytes, sequence: Option<i64>) -> Result<(), SinkError> {
        let this = self.clone();
        let answer = tokio::task::spawn_blocking(move || {
            let mut req = this
                .http
                .post(&this.endpoint)
                .header("Content-Type", "application/json");
            if let Some(t) = &this.token {
                req = req.header("Authorization", &format!("Bearer {t}"));
            }
            if let Some(n) = sequence {
                req = req
                    .header("Sonde-Agent-Instance", &this.instance)
                    .header("Sonde-Agent-Sequence", &n.to_string());
            }
            let mut resp = req.send(&body[..])?;
            let status = resp.status().as_u16();
            let text = if (200..300).contains(&status) {
                String::new()
            } else {
                resp.body_mut()
                    .with_config()
                    .limit(64 << 10)
                    .read_to_string()
                    .unwrap_or_default()
            };
            Ok::<_, ureq::Error>((status, text))
        })
        .await
        .unwrap_or_else(|e| Err(ureq::Error::Io(std::io::Error::other(e))));
        let (status, text) = answer.map_err(|e| SinkError::Send {
            endpoint: self.endpoint.clone(),
            source: Box::new(e),
        })?;
        if (200..300).contains(&status) {
            return Ok(());
        }
        Err(SinkError::Refused {
            endpoint: self.endpoint.clone(),
            status,
            message: error_message(&text),
            dropped: 0,
        })
    }
}

impl SinkError {
    /// Whether the daemon refused the request for its content (400, 413,
    /// 415): sent again, it would be refused again.
    fn is_permanent(&self) -> bool {
        matches!(
            self,
            SinkError::Refused {
                status: 400 | 413 | 415,
                ..
            }
        )
    }

    /// This refusal, saying that `rows` were dropped for it.
    fn dropping(self, rows: usize) -> SinkError {
        match self {
            SinkError::Refused {
                endpoint,
                status,
                message,
                ..
            } => SinkError::Refused {
                endpoint,
                status,
                message,
                dropped: rows,
            },
            other => other,
        }
    }
}

/// The daemon's error message (`{"error": {"message": ...}}`), else the
/// start of what it said.
fn error_message(text: &str) -> String {
    let message = serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| text.trim().to_string());
    let mut m: String = message.chars().take(300).collect();
    if m.len() < message.len() {
        m.push('…');
    }
    m
}

/// The JSON of the next event request for `batch`: its first events, as
/// many as fit in `limit` bytes (at least one); with how many it holds.
fn events_body(batch: &CollectorBatch, limit: usize) -> Result<(Bytes, usize), SinkError> {
    let mut out = Vec::with_capacity(limit.min(1 << 20));
    out.extend_from_slice(b"{\"events\":[");
    let mut row = Vec::new();
    let mut events = 0;
    for e in &batch.events {
        row.clear();
        serde_json::to_writer(&mut row, e).map_err(SinkError::Encode)?;
        if events > 0 && out.len() + row.len() + 2 > limit {
            break;
        }
        if events > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&row);
        events += 1;
    }
    out.extend_from_slice(b"],\"http\":[],\"status\":[]}");
    Ok((out.into(), events))
}

/// The JSON of the request with `batch`'s HTTP sums and state.
fn tail_body(batch: &CollectorBatch) -> Result<Bytes, SinkError> {
    let tail = CollectorBatch {
        events: Vec::new(),
        http: batch.http.clone(),
        status: batch.status.clone(),
    };
    serde_json::to_vec(&tail)
        .map(Bytes::from)
        .map_err(SinkError::Encode)
}

/// Where an agent writes.
#[derive(Clone, Debug)]
pub enum Sink {
    /// A store it opened (or the daemon's, in-process).
    Store(Store),
    /// A daemon's API.
    Daemon(DaemonSink),
}

impl Sink {
    /// Stores `batch`, taking out of it what was stored or is held for
    /// sending again (all of it, or nothing, for a store); what is left is
    /// for the next write, which also sends again what a daemon did not
    /// answer.
    pub async fn write(&self, batch: &mut CollectorBatch) -> Result<(), SinkError> {
        match self {
            Sink::Store(_) if batch.is_empty() => Ok(()),
            Sink::Store(store) => {
                store.write_collector_batch(batch).await?;
                *batch = CollectorBatch::default();
                Ok(())
            }
            Sink::Daemon(daemon) => daemon.send(batch).await,
        }
    }

    /// Where the data goes, for people.
    pub fn describe(&self) -> String {
        match self {
            Sink::Store(store) => store.path().display().to_string(),
            Sink::Daemon(daemon) => daemon.endpoint().to_string(),
        }
    }

    /// The store the agent keeps its own retention in (none when it sends
    /// to a daemon, whose retention applies).
    pub fn store(&self) -> Option<&Store> {
        match self {
            Sink::Store(store) => Some(store),
            Sink::Daemon(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{CollectorEventRow, CollectorStatusRow};

    fn event(i: usize, filename_len: usize) -> CollectorEventRow {
        let mut fields = serde_json::Map::new();
        fields.insert("filename".into(), "x".repeat(filename_len).into());
        CollectorEventRow {
            ts_ms: i as i64,
            node: "node-a".into(),
            collector: "exec".into(),
            kind: "exec".into(),
            namespace: None,
            pod: None,
            container: None,
            pod_uid: None,
            container_id: None,
            cgroup: None,
            pid: Some(i as i64),
            comm: None,
            fields,
        }
    }

    fn status() -> CollectorStatusRow {
        CollectorStatusRow {
            node: "node-a".into(),
            collector: "exec".into(),
            available: true,
            reason: None,
            events: 3,
            dropped: 0,
            started_at_ms: 1,
            updated_at_ms: 2,
        }
    }

    #[test]
    fn event_requests_split_the_events_in_order_and_the_state_goes_apart() {
        let batch = CollectorBatch {
            events: (0..10).map(|i| event(i, 300)).collect(),
            http: Vec::new(),
            status: vec![status()],
        };
        let one = serde_json::to_vec(&batch.events[0]).unwrap().len();
        // Room for three events a request.
        let limit = 40 + 3 * (one + 1);
        let mut rest = batch.clone();
        let mut got = Vec::new();
        let mut requests = 0;
        while !rest.events.is_empty() {
            let (body, n) = events_body(&rest, limit).unwrap();
            assert!(body.len() <= limit, "{} > {limit}", body.len());
            let part: CollectorBatch = serde_json::from_slice(&body).unwrap();
            assert_eq!(part.events.len(), n);
            assert!(part.status.is_empty() && part.http.is_empty());
            got.extend(part.events);
            rest.events.drain(..n);
            requests += 1;
        }
        assert_eq!(requests, 4);
        assert_eq!(got, batch.events);
        let tail: CollectorBatch = serde_json::from_slice(&tail_body(&rest).unwrap()).unwrap();
        assert_eq!(tail.status, batch.status);
        assert!(tail.events.is_empty());
        // An event larger than a request still goes, alone.
        let big = CollectorBatch {
            events: vec![event(0, 1000), event(1, 10)],
            ..Default::default()
        };
        assert_eq!(events_body(&big, 100).unwrap().1, 1);
    }

    #[test]
    fn only_plain_http_daemon_addresses_are_taken() {
        let ok = DaemonSink::new("http://sonde.sonde.svc:8080/", Some(String::new())).unwrap();
        assert_eq!(
            ok.endpoint(),
            "http://sonde.sonde.svc:8080/api/v1/collectors/batches"
        );
        assert!(ok.token.is_none(), "an empty token is none");
        let https = DaemonSink::new("https://sonde:8443", None).unwrap();
        assert_eq!(
            https.endpoint(),
            "https://sonde:8443/api/v1/collectors/batches"
        );
        let missing = DaemonSink::with_ca(
            "https://sonde:8443",
            None,
            Some(std::path::Path::new("/nonexistent/ca.pem")),
        )
        .unwrap_err()
        .to_string();
        assert!(
            missing.starts_with("the daemon's CA /nonexistent/ca.pem: "),
            "{missing}"
        );
        for bad in ["sonde:8080", "http://", "http://h/?x=1", "ftp://h"] {
            let e = DaemonSink::new(bad, None).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("{bad} is not a daemon address")),
                "{e}"
            );
        }
    }

    #[test]
    fn the_daemons_message_is_read_and_capped() {
        assert_eq!(
            error_message(r#"{"error":{"status":403,"message":"no"}}"#),
            "no"
        );
        assert_eq!(error_message(" plain text \n"), "plain text");
        let long = error_message(&"y".repeat(1000));
        assert_eq!(long.chars().count(), 301);
    }
}
