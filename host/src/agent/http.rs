//! HTTP/1.x RED from the kernel's HTTP programs (the cgroup pair on the
//! servers' sockets, or the socket filter on an interface). The kernel
//! pairs each request with the next status line on its connection
//! (pipelined requests in order, as HTTP/1.1 answers them) and sums them
//! per minute, route, server and server cgroup in the `HTTP_RED` map; it reports each route once, by hash, with the
//! request line it was first seen in. Here the routes get their names
//! (method, path without its query, ids as `:id`: [`route_of`]) and the
//! kernel's sums become per-minute figures per server, method and route:
//! requests, 5xx errors, 4xx client errors, durations (sum, maximum,
//! histogram).
//!
//! The kernel folds ids exactly as [`route_of`] does (all-digit segments,
//! and 16+ hex digits and dashes with a digit), so every hash names one
//! route; several hashes may name the same route (an absolute-form target
//! and its path), and their sums are added.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use sonde_ebpf_common::{HttpRecord, HttpRedKey, HttpRedValue};

use crate::collectors::duration_buckets_us;

/// One side of a connection.
pub type Endpoint = (IpAddr, u16);

/// An address as the kernel's HTTP programs keep it (IPv6, IPv4 mapped into
/// it) as the address it is: `::ffff:10.0.0.1` is `10.0.0.1`.
pub fn ip_of(bytes: sonde_ebpf_common::IpBytes) -> IpAddr {
    Ipv6Addr::from(bytes).to_canonical()
}

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
    // The line ends where the kernel's route hash stops reading: CR, LF or NUL.
    let end = payload
        .iter()
        .position(|&b| b == b'\r' || b == b'\n' || b == 0)
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

impl Minute {
    fn add(&mut self, v: &Sums) {
        self.requests += v.0.requests;
        self.errors += v.0.errors;
        self.client_errors += v.0.client_errors;
        self.sum_us += v.0.sum_us;
        self.max_us = self.max_us.max(v.0.max_us);
        for (b, n) in self.buckets.iter_mut().zip(v.0.buckets.iter()) {
            *b += n;
        }
    }
}

/// One kernel entry's sums over its CPUs (the map is per CPU).
#[derive(Debug, Clone, PartialEq)]
pub struct Sums(pub Minute);

impl Sums {
    pub fn of_cpus<'a>(cpus: impl IntoIterator<Item = &'a HttpRedValue>) -> Self {
        let mut m = Minute::default();
        for v in cpus {
            m.requests += v.requests as i64;
            m.errors += v.errors as i64;
            m.client_errors += v.client_errors as i64;
            m.sum_us += v.sum_us as i64;
            m.max_us = m.max_us.max(v.max_us as i64);
            for (b, n) in m.buckets.iter_mut().zip(v.buckets.iter()) {
                *b += u64::from(*n);
            }
        }
        Sums(m)
    }
}

/// (minute start ms, server, the server socket's cgroup v2 id (0: not
/// known), method, route)
pub type MinuteKey = (i64, Endpoint, u64, Arc<str>, Arc<str>);

/// The name of a route hash: method and route, or `None` for a line that
/// is not an HTTP request after all (its requests are not counted).
type RouteName = Option<(Arc<str>, Arc<str>)>;

/// At most this many route names are kept; past it they are forgotten
/// (but for the ones in use) and the kernel reports routes again.
pub const MAX_ROUTES: usize = 100_000;

/// Names the kernel's sums and turns them into per-minute figures.
#[derive(Debug, Default)]
pub struct Red {
    routes: HashMap<u64, RouteName, foldhash::fast::RandomState>,
    /// Sums of kernel entries already removed (their minute was over).
    retired: HashMap<MinuteKey, Minute, foldhash::fast::RandomState>,
    /// Each minute's figures as last handed over.
    sent: HashMap<MinuteKey, Minute, foldhash::fast::RandomState>,
    /// The minute each live kernel entry was first counted under: an entry
    /// keeps it (a name learned later does not move its counts).
    assigned: HashMap<HttpRedKey, Option<MinuteKey>, foldhash::fast::RandomState>,
}

/// Where requests whose route has no name count (the kernel's report of
/// the route was not read): counted, not lost.
pub const UNNAMED_ROUTE: &str = "(unnamed)";

/// What one look at the kernel's sums gives.
#[derive(Debug, Default)]
pub struct Folded {
    /// The minutes whose figures changed, with their totals, in key order.
    pub changed: Vec<(MinuteKey, Minute)>,
    /// Requests counted since the previous look.
    pub new_requests: u64,
    /// Kernel entries of minutes that are over: remove them, then `retire`.
    pub done: Vec<(HttpRedKey, MinuteKey)>,
}

impl Red {
    /// A route the kernel reported: names its hash.
    pub fn learn(&mut self, r: &HttpRecord) {
        let len = (r.payload_len as usize).min(r.payload.len());
        let name = match parse_line(&r.payload[..len]) {
            Some(Line::Request { method, route }) => Some((Arc::from(method), Arc::from(route))),
            _ => None,
        };
        self.routes.insert(r.route, name);
    }

    /// Names known.
    pub fn routes(&self) -> usize {
        self.routes.len()
    }

    /// Forgets the route names but those of `in_use` (when past
    /// `MAX_ROUTES`; the kernel's record of reported routes is cleared
    /// with them, so each is reported again when next requested).
    pub fn forget_routes(&mut self, in_use: &[HttpRedKey]) {
        let keep: std::collections::HashSet<u64> = in_use.iter().map(|k| k.route).collect();
        self.routes.retain(|h, _| keep.contains(h));
    }

    /// Folds the kernel's current entries: every minute's totals are its
    /// retired sums plus its live entries. Entries of minutes that ended
    /// before `current_minute - 1` (minutes since the epoch) are `done`.
    pub fn fold(&mut self, live: &[(HttpRedKey, Sums)], current_minute: u64) -> Folded {
        let mut totals = self.retired.clone();
        let mut done = Vec::new();
        for (k, v) in live {
            let Some(mk) = self.minute_key(k) else {
                continue;
            };
            totals.entry(mk.clone()).or_default().add(v);
            if k.minute + 2 <= current_minute {
                done.push((*k, mk));
            }
        }
        let mut out = Folded {
            done,
            ..Default::default()
        };
        for (mk, m) in totals {
            let before = self.sent.get(&mk);
            if before == Some(&m) {
                continue;
            }
            let old = before.map_or(0, |b| b.requests);
            out.new_requests += (m.requests - old).max(0) as u64;
            self.sent.insert(mk.clone(), m.clone());
            out.changed.push((mk, m));
        }
        out.changed.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// A `done` entry was removed from the kernel's map: its sums stay
    /// counted here.
    pub fn retire(&mut self, k: &HttpRedKey, mk: MinuteKey, v: &Sums) {
        self.assigned.remove(k);
        self.retired.entry(mk).or_default().add(v);
    }

    /// Forgets minutes before `keep_from_ms`.
    pub fn expire(&mut self, keep_from_ms: i64) {
        self.retired.retain(|k, _| k.0 >= keep_from_ms);
        self.sent.retain(|k, _| k.0 >= keep_from_ms);
        let keep_from = (keep_from_ms / 60_000) as u64;
        self.assigned.retain(|k, _| k.minute >= keep_from);
    }

    fn minute_key(&mut self, k: &HttpRedKey) -> Option<MinuteKey> {
        if let Some(mk) = self.assigned.get(k) {
            return mk.clone();
        }
        let server = (ip_of(k.server_addr), k.server_port);
        let mk = match self.routes.get(&k.route) {
            Some(Some((m, r))) => Some((m.clone(), r.clone())),
            // Not an HTTP request line after all: not counted.
            Some(None) => None,
            None => Some((Arc::from(""), Arc::from(UNNAMED_ROUTE))),
        }
        .map(|(method, route)| {
            let minute_ms = (k.minute * 60_000) as i64;
            (minute_ms, server, k.cgroup, method, route)
        });
        self.assigned.insert(*k, mk.clone());
        mk
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sonde_ebpf_common::{HTTP_PAYLOAD_LEN, HttpConnKey, HttpPending, ipv4_mapped};

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

    /// The kernel's one address form reads back as the address it is.
    #[test]
    fn kernel_addresses_read_back_as_ipv4_or_ipv6() {
        use std::net::Ipv4Addr;
        assert_eq!(
            ip_of(ipv4_mapped([10, 1, 2, 3])),
            IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3))
        );
        let v6: Ipv6Addr = "fd00::1:2".parse().unwrap();
        assert_eq!(ip_of(v6.octets()), IpAddr::V6(v6));
        assert_eq!(
            ip_of(Ipv6Addr::LOCALHOST.octets()),
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        );
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

    fn route_record(route: u64, line: &str) -> HttpRecord {
        let mut payload = [0u8; HTTP_PAYLOAD_LEN];
        payload[..line.len()].copy_from_slice(line.as_bytes());
        HttpRecord {
            mono_ns: 0,
            route,
            saddr: ipv4_mapped([127, 0, 0, 1]),
            daddr: ipv4_mapped([127, 0, 0, 1]),
            sport: 50000,
            dport: 8080,
            payload_len: line.len() as u32,
            payload,
        }
    }

    fn key(minute: u64, route: u64) -> HttpRedKey {
        HttpRedKey {
            minute,
            route,
            server_addr: ipv4_mapped([127, 0, 0, 1]),
            server_port: 8080,
            _pad: [0; 6],
            cgroup: 0,
        }
    }

    /// Sums as two CPUs' values: `requests` split between them, the
    /// maximum on the second.
    fn value(requests: u64, errors: u64, sum_us: u64, max_us: u64) -> Sums {
        let cpu = |requests: u64, errors: u64, sum_us: u64, max_us: u64| {
            let mut buckets = [0u32; sonde_ebpf_common::HTTP_BOUNDS_LEN + 1];
            buckets[crate::collectors::bucket_of(max_us)] = requests as u32;
            HttpRedValue {
                requests,
                errors,
                client_errors: 0,
                sum_us,
                max_us,
                buckets,
                _pad: 0,
            }
        };
        let first = requests / 2;
        Sums::of_cpus(&[
            cpu(first, errors, sum_us / 2, max_us / 2),
            cpu(requests - first, 0, sum_us - sum_us / 2, max_us),
        ])
    }

    /// A retransmitted segment is not after the last one counted, in TCP's
    /// wrapping sequence arithmetic; a first segment is always new.
    #[test]
    fn retransmitted_segments_are_told_from_new_ones_across_the_wrap() {
        use sonde_ebpf_common::seq_is_new;
        assert!(seq_is_new(7, 0, false));
        assert!(seq_is_new(1000, 900, true));
        assert!(!seq_is_new(900, 900, true), "the same segment again");
        assert!(!seq_is_new(800, 900, true), "an earlier one");
        assert!(seq_is_new(5, u32::MAX - 10, true), "after the wrap");
        assert!(!seq_is_new(u32::MAX - 10, 5, true), "before the wrap");
    }

    #[test]
    fn the_filter_sorts_durations_into_the_queries_buckets() {
        assert_eq!(
            duration_buckets_us().len(),
            sonde_ebpf_common::HTTP_BOUNDS_LEN
        );
        assert_eq!(
            Minute::default().buckets.len(),
            sonde_ebpf_common::HTTP_BOUNDS_LEN + 1
        );
    }

    #[test]
    fn kernel_sums_are_named_added_per_route_and_retired_when_their_minute_is_over() {
        let mut red = Red::default();
        // Two hashes of one route (origin and absolute form), one of a line
        // that is not a request after all.
        red.learn(&route_record(1, "GET /items/42 HTTP/1.1\r\nHost: a\r\n"));
        red.learn(&route_record(2, "GET http://a/items/7 HTTP/1.1\r\n"));
        red.learn(&route_record(3, "GETX / HTTP/1.1\r\n"));
        red.learn(&route_record(4, "POST /upload HTTP/1.1\r\n"));
        let minute = 29_000_000u64;
        let live = vec![
            (key(minute, 1), value(10, 1, 10_000, 3_000)),
            (key(minute, 2), value(5, 0, 2_500, 600)),
            (key(minute, 3), value(7, 0, 700, 100)),
            (key(minute + 1, 4), value(2, 2, 40_000, 30_000)),
        ];
        let f = red.fold(&live, minute + 1);
        assert_eq!(f.new_requests, 17);
        assert!(f.done.is_empty(), "no minute is over yet");
        let items = &f.changed[0];
        assert_eq!(items.0.0, (minute * 60_000) as i64);
        assert_eq!((&*items.0.3, &*items.0.4), ("GET", "/items/:id"));
        assert_eq!(
            (
                items.1.requests,
                items.1.errors,
                items.1.sum_us,
                items.1.max_us
            ),
            (15, 1, 12_500, 3_000)
        );
        assert_eq!(items.1.buckets.iter().sum::<u64>(), 15);
        let upload = &f.changed[1];
        assert_eq!((&*upload.0.4, upload.1.errors), ("/upload", 2));
        assert_eq!(f.changed.len(), 2);

        // Nothing new: nothing handed over.
        let f = red.fold(&live, minute + 1);
        assert!(f.changed.is_empty() && f.new_requests == 0);

        // More requests in the first minute, which is then over: its
        // entries are done, and once retired still count.
        let mut live = live;
        live[0].1 = value(12, 1, 12_000, 3_000);
        let f = red.fold(&live, minute + 2);
        assert_eq!(f.new_requests, 2);
        assert_eq!(f.changed.len(), 1);
        assert_eq!(f.changed[0].1.requests, 17);
        let done: Vec<HttpRedKey> = f.done.iter().map(|(k, _)| *k).collect();
        assert_eq!(done, vec![key(minute, 1), key(minute, 2)]);
        for (k, mk) in f.done {
            let v = live.iter().find(|(l, _)| *l == k).unwrap().1.clone();
            red.retire(&k, mk, &v);
        }
        live.retain(|(k, _)| !done.contains(k) && k.route != 3);
        let f = red.fold(&live, minute + 2);
        assert!(f.changed.is_empty(), "{:?}", f.changed);

        // A hash with no name counts under UNNAMED_ROUTE and stays there.
        live.push((key(minute + 1, 9), value(1, 0, 100, 100)));
        let f = red.fold(&live, minute + 2);
        assert_eq!(&*f.changed[0].0.4, UNNAMED_ROUTE);
        red.learn(&route_record(9, "GET /late HTTP/1.1\r\n"));
        live.last_mut().unwrap().1 = value(2, 0, 200, 100);
        let f = red.fold(&live, minute + 2);
        assert_eq!(
            (&*f.changed[0].0.4, f.changed[0].1.requests),
            (UNNAMED_ROUTE, 2)
        );

        // Forgetting names keeps those in use.
        red.forget_routes(&[key(minute + 1, 4)]);
        assert_eq!(red.routes(), 1);
        red.expire(((minute + 2) * 60_000) as i64);
        assert!(red.fold(&[], minute + 3).changed.is_empty());
    }

    /// BPF_PROG_TEST_RUN's attributes (linux/bpf.h, `test` of `union bpf_attr`).
    #[repr(C)]
    #[derive(Default)]
    struct TestRun {
        prog_fd: u32,
        retval: u32,
        data_size_in: u32,
        data_size_out: u32,
        data_in: u64,
        data_out: u64,
        repeat: u32,
        duration: u32,
        ctx_size_in: u32,
        ctx_size_out: u32,
        ctx_in: u64,
        ctx_out: u64,
        flags: u32,
        cpu: u32,
        batch_size: u32,
        _pad: u32,
    }

    /// A TCP segment from `client_port` to port 8080 with `payload`, as the
    /// filter sees it on a packet socket: IPv4 from 127.0.0.1 to itself, or
    /// IPv6 from ::1 to itself (`v6`). BPF_PROG_TEST_RUN strips one Ethernet
    /// header before a socket filter runs, so the frame has two.
    fn segment(client_port: u16, payload: &[u8], v6: bool) -> Vec<u8> {
        let mut p = Vec::new();
        for _ in 0..2 {
            p.extend_from_slice(&[0; 12]);
            p.extend_from_slice(if v6 { &[0x86, 0xdd] } else { &[0x08, 0x00] });
        }
        let tcp_len = 20 + payload.len();
        if v6 {
            let plen = (tcp_len as u16).to_be_bytes();
            p.extend_from_slice(&[0x60, 0, 0, 0, plen[0], plen[1], 6, 64]);
            for _ in 0..2 {
                p.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
            }
        } else {
            let total = ((20 + tcp_len) as u16).to_be_bytes();
            p.extend_from_slice(&[0x45, 0, total[0], total[1], 0, 0, 0x40, 0, 64, 6, 0, 0]);
            p.extend_from_slice(&[127, 0, 0, 1, 127, 0, 0, 1]);
        }
        p.extend_from_slice(&client_port.to_be_bytes());
        p.extend_from_slice(&8080u16.to_be_bytes());
        p.extend_from_slice(&[0; 8]);
        p.extend_from_slice(&[0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
        p.extend_from_slice(payload);
        p
    }

    /// The kernel's route hashes group request targets exactly as
    /// `route_of` names them (and the method apart): the filter itself runs
    /// on crafted segments. Needs root and the eBPF object.
    #[test]
    fn the_filters_route_hash_groups_targets_as_route_of_does() {
        use std::os::fd::{AsFd, AsRawFd};
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: loading the HTTP filter needs root");
            return;
        }
        if let Some(why) = sonde_ebpf_artifacts::MISSING {
            eprintln!("skipped: {why}");
            return;
        }
        let mut ebpf = aya::EbpfLoader::new()
            .load(sonde_ebpf_artifacts::OBJECT)
            .expect("the eBPF object loads");
        let prog: &mut aya::programs::SocketFilter = ebpf
            .program_mut("http_lines")
            .expect("http_lines")
            .try_into()
            .expect("a socket filter");
        prog.load().expect("the verifier accepts the filter");
        let fd = prog.fd().expect("loaded").as_fd().as_raw_fd();
        let origin = [
            "/",
            "/items/1",
            "/items/22",
            "/items/1?x=2",
            "/items/1#top",
            "/items/abc",
            "/items/1/parts",
            "/items/22/parts",
            "/users/123/orders",
            "/users/abc/orders",
            "/p/0f3c8a1e-2b4d-4c6e-8f9a-1b2c3d4e5f60",
            "/p/4b825dc642cb6eb9a060e54bf8d69288",
            "/p/deadbeefdeadbeef",
            "/p/deadbeefdeadbee1",
            "/p/abc-def",
            "/a//b",
            "/a/b/",
            "/a/b",
            "/static/app.js",
        ];
        let mut lines: Vec<(&str, String)> = Vec::new();
        for method in ["GET", "POST"] {
            for t in origin {
                lines.push((method, t.to_string()));
            }
        }
        // Targets longer than the filter's first copy of the packet.
        let long = "x".repeat(70);
        for t in [
            format!("/assets/{long}/1"),
            format!("/assets/{long}/22"),
            format!("/assets/{long}/y"),
        ] {
            lines.push(("GET", t));
        }
        let absolute = ["http://example.com/items/7", "http://example.com/a/b"];
        let mut hashes = Vec::new();
        let open: aya::maps::HashMap<_, HttpConnKey, HttpPending> =
            aya::maps::HashMap::try_from(ebpf.map("HTTP_OPEN").expect("HTTP_OPEN"))
                .expect("a hash map");
        let all: Vec<(&str, String)> = lines
            .iter()
            .cloned()
            .chain(absolute.iter().map(|t| ("GET", t.to_string())))
            .collect();
        // Each target over IPv4 and over IPv6: the same hash either way.
        let run = |port: u16, line: &str, v6: bool| -> u64 {
            let data = segment(port, line.as_bytes(), v6);
            let mut out = vec![0u8; 512];
            let mut attr = TestRun {
                prog_fd: fd as u32,
                data_size_in: data.len() as u32,
                data_in: data.as_ptr() as u64,
                data_size_out: out.len() as u32,
                data_out: out.as_mut_ptr() as u64,
                repeat: 1,
                ..Default::default()
            };
            // SAFETY: BPF_PROG_TEST_RUN (10) with attributes that outlive the call.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_bpf,
                    10,
                    &mut attr as *mut TestRun,
                    std::mem::size_of::<TestRun>(),
                )
            };
            assert_eq!(rc, 0, "test run: {}", std::io::Error::last_os_error());
            let localhost = match v6 {
                true => std::net::Ipv6Addr::LOCALHOST.octets(),
                false => ipv4_mapped([127, 0, 0, 1]),
            };
            let key = HttpConnKey {
                client_addr: localhost,
                server_addr: localhost,
                client_port: port,
                server_port: 8080,
            };
            let pending = open
                .get(&key, 0)
                .unwrap_or_else(|_| panic!("the request is open on its connection: {line:?}"));
            assert_eq!((pending.head, pending.tail), (0, 1));
            pending.open[0].route
        };
        for (i, (method, target)) in all.iter().enumerate() {
            let port = 40_000 + i as u16;
            let line = format!("{method} {target} HTTP/1.1\r\nHost: a\r\n\r\n");
            let v4 = run(port, &line, false);
            assert_eq!(run(port, &line, true), v4, "{line:?} over IPv6");
            hashes.push(v4);
        }
        let name = |(method, target): &(&str, String)| (method.to_string(), route_of(target));
        for (a, ha) in all.iter().zip(&hashes) {
            for (b, hb) in all.iter().zip(&hashes) {
                if ha == hb {
                    assert_eq!(name(a), name(b), "one hash, two routes: {a:?} {b:?}");
                }
            }
        }
        // Origin-form targets: one hash per route, no more.
        for (a, ha) in lines.iter().zip(&hashes) {
            for (b, hb) in lines.iter().zip(&hashes) {
                if name(a) == name(b) {
                    assert_eq!(ha, hb, "one route, two hashes: {a:?} {b:?}");
                }
            }
        }
        let distinct: std::collections::HashSet<_> = lines.iter().map(name).collect();
        assert!(distinct.len() >= 20, "{distinct:?}");
    }
}
