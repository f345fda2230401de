//! HTTP/1.x RED from the socket filter's request and status lines: a
//! request opens on its connection, the next status line on the same
//! connection (the other direction) answers it; per minute, server, method
//! and route: requests, 5xx errors, 4xx client errors and durations (sum,
//! maximum, histogram). Pipelined requests queue in order, as HTTP/1.1
//! answers them.

use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;

use sonde_ebpf_common::HttpRecord;

use crate::collectors::{bucket_of, duration_buckets_us};

/// One side of a connection.
pub type Endpoint = (Ipv4Addr, u16);

/// What a payload starts with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Request { method: String, route: String },
    Status(u16),
}

/// Reads a request line (`GET /path?q HTTP/1.1`) or a status line
/// (`HTTP/1.1 404 Not Found`); anything else is `None`. Byte-wise: this
/// runs for every line the filter copies.
pub fn parse_line(payload: &[u8]) -> Option<Line> {
    let end = payload
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(payload.len());
    let line = &payload[..end];
    std::str::from_utf8(line).ok()?;
    let mut parts = line.split(|&b| b == b' ');
    let first = parts.next()?;
    if first.starts_with(b"HTTP/1.") {
        let code = parts.next()?;
        if code.is_empty() || code.len() > 5 || !code.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let code = code.iter().fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'));
        return (100..=599)
            .contains(&code)
            .then_some(Line::Status(code as u16));
    }
    const METHODS: [&[u8]; 9] = [
        b"GET", b"POST", b"PUT", b"HEAD", b"DELETE", b"PATCH", b"OPTIONS", b"CONNECT", b"TRACE",
    ];
    let method = METHODS.iter().find(|m| **m == first)?;
    let target = parts.next()?;
    // The version may be past the bytes copied for a long target: not required.
    if let Some(v) = parts.next()
        && !v.starts_with(b"HTTP/")
    {
        return None;
    }
    // Valid UTF-8: the whole line was checked above.
    let target = std::str::from_utf8(target).ok()?;
    Some(Line::Request {
        method: std::str::from_utf8(method).unwrap_or_default().to_string(),
        route: route_of(target),
    })
}

/// The route a request target counts under: the path without its query,
/// ids (numbers, UUIDs, long hex) replaced by `:id`, at most 128 bytes.
pub fn route_of(target: &str) -> String {
    let path = target.split(['?', '#']).next().unwrap_or_default();
    let path = match path.starts_with('/') {
        // Origin form, the usual one.
        true => path,
        // Absolute form (proxies): drop scheme and authority.
        false => match path.find("://") {
            Some(i) => {
                let rest = &path[i + 3..];
                rest.find('/').map_or("/", |j| &rest[j..])
            }
            None => path,
        },
    };
    let mut out = String::with_capacity(path.len().min(128) + 4);
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        if is_id(seg) {
            out.push_str(":id");
        } else {
            out.push_str(seg);
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    if out.len() > 128 {
        let mut cut = 128;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

fn is_id(seg: &str) -> bool {
    if seg.is_empty() {
        return false;
    }
    let digits = seg.bytes().all(|b| b.is_ascii_digit());
    let hexish = seg.len() >= 16
        && seg.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
        && seg.bytes().any(|b| b.is_ascii_digit());
    digits || hexish
}

/// A minute's figures for one server and route.
#[derive(Debug, Clone, PartialEq)]
pub struct Minute {
    pub requests: i64,
    pub errors: i64,
    pub client_errors: i64,
    pub sum_us: i64,
    pub max_us: i64,
    pub buckets: Vec<u64>,
}

impl Default for Minute {
    fn default() -> Self {
        Self {
            requests: 0,
            errors: 0,
            client_errors: 0,
            sum_us: 0,
            max_us: 0,
            buckets: vec![0; duration_buckets_us().len() + 1],
        }
    }
}

/// (minute start ms, server, method, route)
pub type MinuteKey = (i64, Endpoint, String, String);

#[derive(Debug)]
struct Pending {
    boot_ns: u64,
    method: String,
    route: String,
}

/// Pairs requests with responses and sums them per minute.
#[derive(Debug, Default)]
pub struct Tracker {
    /// Open requests by (client, server).
    pending: HashMap<(Endpoint, Endpoint), VecDeque<Pending>, foldhash::fast::RandomState>,
    /// Each minute with whether it changed since the last `take_changed`.
    minutes: HashMap<MinuteKey, (Minute, bool), foldhash::fast::RandomState>,
    /// Status lines with no open request (the request was before the
    /// agent started, or was lost).
    pub unmatched: u64,
}

/// Requests open longer than this are forgotten.
const PENDING_TTL_NS: u64 = 300 * 1_000_000_000;
/// At most this many open requests per connection.
const PENDING_PER_CONN: usize = 64;

impl Tracker {
    /// Takes one record; `to_epoch_ms` maps boot time to wall-clock time.
    pub fn observe(&mut self, r: &HttpRecord, to_epoch_ms: impl Fn(u64) -> i64) {
        let len = (r.payload_len as usize).min(r.payload.len());
        let Some(line) = parse_line(&r.payload[..len]) else {
            return;
        };
        let src = (Ipv4Addr::from(u32::from_be(r.saddr)), r.sport);
        let dst = (Ipv4Addr::from(u32::from_be(r.daddr)), r.dport);
        match line {
            Line::Request { method, route } => {
                let q = self.pending.entry((src, dst)).or_default();
                if q.len() >= PENDING_PER_CONN {
                    q.pop_front();
                }
                q.push_back(Pending {
                    boot_ns: r.boot_ns,
                    method,
                    route,
                });
            }
            Line::Status(code) => {
                // A response goes server -> client: its connection key is reversed.
                let key = (dst, src);
                let Some(req) = self.pending.get_mut(&key).and_then(VecDeque::pop_front) else {
                    self.unmatched += 1;
                    return;
                };
                // An emptied queue stays for the connection's next request;
                // `expire` removes it.
                let dur_us = r.boot_ns.saturating_sub(req.boot_ns) / 1_000;
                let ms = to_epoch_ms(r.boot_ns);
                let minute = ms - ms.rem_euclid(60_000);
                let mk: MinuteKey = (minute, src, req.method, req.route);
                let (m, changed) = self.minutes.entry(mk).or_default();
                *changed = true;
                m.requests += 1;
                if (500..=599).contains(&code) {
                    m.errors += 1;
                } else if (400..=499).contains(&code) {
                    m.client_errors += 1;
                }
                m.sum_us += dur_us as i64;
                m.max_us = m.max_us.max(dur_us as i64);
                m.buckets[bucket_of(dur_us)] += 1;
            }
        }
    }

    /// Forgets requests open too long and minutes older than `keep_from_ms`.
    pub fn expire(&mut self, now_boot_ns: u64, keep_from_ms: i64) {
        self.pending.retain(|_, q| {
            q.retain(|p| now_boot_ns.saturating_sub(p.boot_ns) < PENDING_TTL_NS);
            !q.is_empty()
        });
        self.minutes.retain(|k, _| k.0 >= keep_from_ms);
    }

    /// The minutes changed since the last call, with their running totals,
    /// in key order.
    pub fn take_changed(&mut self) -> Vec<(MinuteKey, Minute)> {
        let mut out: Vec<(MinuteKey, Minute)> = self
            .minutes
            .iter_mut()
            .filter(|(_, (_, changed))| *changed)
            .map(|(k, (m, changed))| {
                *changed = false;
                (k.clone(), m.clone())
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Requests waiting for their response.
    pub fn open_requests(&self) -> usize {
        self.pending.values().map(VecDeque::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sonde_ebpf_common::HTTP_PAYLOAD_LEN;

    #[test]
    fn request_and_status_lines() {
        assert_eq!(
            parse_line(b"GET /items/42?x=1 HTTP/1.1\r\nHost: a\r\n"),
            Some(Line::Request {
                method: "GET".into(),
                route: "/items/:id".into()
            })
        );
        assert_eq!(
            parse_line(b"HTTP/1.1 404 Not Found\r\n"),
            Some(Line::Status(404))
        );
        assert_eq!(parse_line(b"HTTP/1.0 200 OK"), Some(Line::Status(200)));
        assert_eq!(parse_line(b"HTTP/1.1 999 Nope\r\n"), None);
        assert_eq!(parse_line(b"GETX / HTTP/1.1\r\n"), None);
        assert_eq!(parse_line(b"GET / SPDY/3\r\n"), None);
        assert_eq!(parse_line(b"\x16\x03\x01 tls"), None);
        // A long target cut before the version still counts.
        assert!(matches!(
            parse_line(b"POST /upload/aaaa"),
            Some(Line::Request { .. })
        ));
    }

    #[test]
    fn routes_lose_queries_and_ids() {
        assert_eq!(route_of("/"), "/");
        assert_eq!(route_of(""), "/");
        assert_eq!(route_of("/users/123/orders"), "/users/:id/orders");
        assert_eq!(
            route_of("/p/0f3c8a1e-2b4d-4c6e-8f9a-1b2c3d4e5f60?x"),
            "/p/:id"
        );
        assert_eq!(
            route_of("/blob/4b825dc642cb6eb9a060e54bf8d6928"),
            "/blob/:id"
        );
        assert_eq!(route_of("/static/app.js"), "/static/app.js");
        assert_eq!(route_of("http://example.com/a/7"), "/a/:id");
        // An origin-form path that contains "://" is still a path.
        assert_eq!(route_of("/redirect/http://x/1"), "/redirect/http://x/:id");
        assert_eq!(route_of(&format!("/{}", "x".repeat(300))).len(), 128);
    }

    fn record(boot_ns: u64, from: Endpoint, to: Endpoint, line: &str) -> HttpRecord {
        let mut payload = [0u8; HTTP_PAYLOAD_LEN];
        payload[..line.len()].copy_from_slice(line.as_bytes());
        HttpRecord {
            boot_ns,
            saddr: u32::from(from.0).to_be(),
            daddr: u32::from(to.0).to_be(),
            sport: from.1,
            dport: to.1,
            payload_len: line.len() as u32,
            payload,
        }
    }

    #[test]
    fn pairs_per_connection_in_order_and_counts_exactly() {
        let client = (Ipv4Addr::LOCALHOST, 50000);
        let client2 = (Ipv4Addr::LOCALHOST, 50001);
        let server = (Ipv4Addr::LOCALHOST, 8080);
        let mut t = Tracker::default();
        let epoch = |ns: u64| (ns / 1_000_000) as i64;
        // Pipelined: two requests, then two answers in order.
        t.observe(
            &record(1_000_000, client, server, "GET /a HTTP/1.1\r\n"),
            epoch,
        );
        t.observe(
            &record(2_000_000, client, server, "GET /b HTTP/1.1\r\n"),
            epoch,
        );
        t.observe(
            &record(1_500_000, client2, server, "POST /a HTTP/1.1\r\n"),
            epoch,
        );
        t.observe(
            &record(4_000_000, server, client, "HTTP/1.1 200 OK\r\n"),
            epoch,
        );
        t.observe(
            &record(7_000_000, server, client, "HTTP/1.1 500 Oops\r\n"),
            epoch,
        );
        t.observe(
            &record(9_500_000, server, client2, "HTTP/1.1 404 No\r\n"),
            epoch,
        );
        t.observe(
            &record(9_600_000, server, client2, "HTTP/1.1 200 Stray\r\n"),
            epoch,
        );
        assert_eq!(t.unmatched, 1);
        assert_eq!(t.open_requests(), 0);
        let changed = t.take_changed();
        let get = |method: &str, route: &str| {
            changed
                .iter()
                .find(|(k, _)| k.2 == method && k.3 == route)
                .map(|(_, m)| m.clone())
                .unwrap()
        };
        let a = get("GET", "/a");
        assert_eq!((a.requests, a.errors, a.sum_us), (1, 0, 3_000));
        let b = get("GET", "/b");
        assert_eq!(
            (b.requests, b.errors, b.sum_us, b.max_us),
            (1, 1, 5_000, 5_000)
        );
        let p = get("POST", "/a");
        assert_eq!((p.requests, p.client_errors, p.sum_us), (1, 1, 8_000));
        assert!(t.take_changed().is_empty());
    }
}
