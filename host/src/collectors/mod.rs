//! The node collectors as probes see them: which collectors exist, their
//! fields, and the query engine behind `sonde:probe/collectors` (see
//! [`query`]). The data comes from the store, written by `sonde agent`
//! (`crate::agent`), in this process or on other nodes.

pub mod query;

use crate::bindings::sonde::probe::collectors::FieldType;

/// One field of a collector.
#[derive(Debug, Clone, Copy)]
pub struct FieldSpec {
    pub name: &'static str,
    pub ty: FieldType,
    pub description: &'static str,
}

/// A collector and its fields.
#[derive(Debug, Clone, Copy)]
pub struct CollectorSpec {
    pub name: &'static str,
    pub description: &'static str,
    /// Fields every row has, then the collector's own.
    pub fields: &'static [FieldSpec],
    /// Aggregated per minute (the http collector) rather than one row per event.
    pub aggregated: bool,
}

impl CollectorSpec {
    pub fn field(&self, name: &str) -> Option<&'static FieldSpec> {
        self.fields.iter().find(|f| f.name == name)
    }
}

const fn f(name: &'static str, ty: FieldType, description: &'static str) -> FieldSpec {
    FieldSpec {
        name,
        ty,
        description,
    }
}

use FieldType::{Boolean, Float, Integer, Text, Timestamp};

macro_rules! event_fields {
    ($($extra:expr),* $(,)?) => {
        &[
            f("ts", Timestamp, "when it happened"),
            f("node", Text, "the node's name"),
            f("kind", Text, "what happened"),
            f("namespace", Text, "the pod's namespace (null when not a pod's)"),
            f("pod", Text, "the pod's name"),
            f("container", Text, "the container's name"),
            f("pod_uid", Text, "the pod's uid, from its cgroup"),
            f("container_id", Text, "the container runtime's id, from its cgroup"),
            f("cgroup", Text, "the cgroup path the event's cgroup resolved to"),
            f("pid", Integer, "process id (root pid namespace)"),
            f("comm", Text, "the task's command name"),
            $($extra),*
        ]
    };
}

/// Every collector, available or not.
pub const COLLECTORS: &[CollectorSpec] = &[
    CollectorSpec {
        name: "oom",
        description: "OOM kills (oom:mark_victim): the victim, its memory and its pod, read in the \
                      kernel when it was chosen",
        fields: event_fields![
            f(
                "trigger_pid",
                Integer,
                "the task whose allocation ran into the limit"
            ),
            f("uid", Integer, "the victim's user id"),
            f("total_vm_kb", Integer, "virtual memory, KiB"),
            f("anon_rss_kb", Integer, "anonymous resident memory, KiB"),
            f("file_rss_kb", Integer, "file-backed resident memory, KiB"),
            f("shmem_rss_kb", Integer, "shared resident memory, KiB"),
            f("pgtables_kb", Integer, "page tables, KiB"),
            f("oom_score_adj", Integer, "the victim's oom_score_adj"),
        ],
        aggregated: false,
    },
    CollectorSpec {
        name: "exec",
        description: "Process execs (sched:sched_process_exec)",
        fields: event_fields![
            f("ppid", Integer, "parent process id"),
            f("filename", Text, "the executed file"),
        ],
        aggregated: false,
    },
    CollectorSpec {
        name: "tcp",
        description: "TCP trouble and connection lifecycle: retransmits, resets sent and \
                      received, state changes (kind: retransmit, reset_sent, reset_received, state)",
        fields: event_fields![
            f("family", Text, "inet or inet6"),
            f("saddr", Text, "source address"),
            f("sport", Integer, "source port"),
            f("daddr", Text, "destination address"),
            f("dport", Integer, "destination port"),
            f(
                "state",
                Text,
                "the socket's state (new state for kind=state)"
            ),
            f("oldstate", Text, "the previous state (kind=state)"),
            f(
                "owner",
                Text,
                "how the pod was found: socket (owner recorded at connect/listen), \
                              sock_cgroup (the socket's cgroup v2), current (the task on the CPU)"
            ),
        ],
        aggregated: false,
    },
    CollectorSpec {
        name: "listen",
        description: "Listen queues (iter/tcp samples, kind=queue) and the ListenOverflows / \
                      ListenDrops counters of /proc/net/netstat (kind=overflow, per sample \
                      interval), in every network namespace on the node: the node's own and \
                      each pod's",
        fields: event_fields![
            f("port", Integer, "listening port"),
            f("addr", Text, "listening address"),
            f("netns", Integer, "network namespace inode"),
            f("backlog", Integer, "connections waiting to be accepted"),
            f("max_backlog", Integer, "the accept queue's limit"),
            f("full", Boolean, "whether the accept queue was full"),
            f(
                "overflows",
                Integer,
                "ListenOverflows since the previous sample (kind=overflow)"
            ),
            f(
                "drops",
                Integer,
                "ListenDrops since the previous sample (kind=overflow)"
            ),
            f(
                "owner",
                Text,
                "how the pod was found: socket (owner recorded at listen), sock_cgroup (the \
                 socket's cgroup v2), process (the socket's holder in /proc), netns (a \
                 process in the namespace: the pod, no container)"
            ),
            f(
                "host_netns",
                Boolean,
                "whether the namespace is the agent's own, the node's (kind=overflow)"
            ),
        ],
        aggregated: false,
    },
    CollectorSpec {
        name: "http",
        description: "HTTP/1.x RED per minute, server and route, from a socket filter: one row \
                      per minute; count = requests, and duration_ms aggregates (avg, max, \
                      p50, p90, p99) are over requests",
        fields: &[
            f("ts", Timestamp, "start of the minute"),
            f("node", Text, "the node's name"),
            f(
                "namespace",
                Text,
                "the serving pod's namespace ('' when not a known pod)",
            ),
            f("pod", Text, "the serving pod"),
            f("server", Text, "server address, ip:port"),
            f("method", Text, "request method"),
            f(
                "route",
                Text,
                "request path, query cut, ids replaced by :id",
            ),
            f("requests", Integer, "requests answered"),
            f("errors", Integer, "responses 500-599"),
            f("client_errors", Integer, "responses 400-499"),
            f(
                "duration_ms",
                Float,
                "request duration (first request byte to status line)",
            ),
        ],
        aggregated: true,
    },
    CollectorSpec {
        name: crate::agent::kmsg::COLLECTOR,
        description: "Kernel problems in the node's kernel log (/dev/kmsg), named as \
                      node-problem-detector's kernel monitor names them (kind: OOMKilling, \
                      TaskHung, KernelOops, Ext4Error, ...)",
        fields: event_fields![
            f("message", Text, "the kernel's message"),
            f(
                "condition",
                Text,
                "the Node condition a permanent problem sets (KernelDeadlock, \
                 ReadonlyFilesystem, XfsShutdown); null for a temporary one",
            ),
            f(
                "level",
                Integer,
                "the record's log level (0 emergency .. 7 debug)"
            ),
            f(
                "seq",
                Integer,
                "the record's sequence number in the kernel's log"
            ),
        ],
        aggregated: false,
    },
    CollectorSpec {
        name: crate::kube_events::COLLECTOR,
        description: "The cluster's events, kept past the API server's hour: one row per \
                      occurrence (an event counted again is a new row; kind: the reason)",
        fields: &[
            f(
                "ts",
                Timestamp,
                "when it happened (its last time, at that count)",
            ),
            f(
                "node",
                Text,
                "the node it came from (source.host) or is about; 'cluster' otherwise",
            ),
            f(
                "kind",
                Text,
                "the reason: BackOff, FailedScheduling, OOMKilling, ...",
            ),
            f("namespace", Text, "the object's namespace"),
            f("pod", Text, "the object's name, when it is a pod"),
            f("pod_uid", Text, "the pod's uid, when it is a pod"),
            f("type", Text, "Normal or Warning"),
            f("reason", Text, "the reason (as kind)"),
            f("message", Text, "what it says"),
            f(
                "count",
                Integer,
                "the occurrence's number (the event's count then)",
            ),
            f(
                "object_kind",
                Text,
                "the object's kind (Pod, Node, Deployment, ...)",
            ),
            f("object_name", Text, "the object's name"),
            f("object_uid", Text, "the object's uid"),
            f("field_path", Text, "the part of the object (a container)"),
            f("source", Text, "the component that reported it"),
            f("event", Text, "the Event object's name"),
            f("first_seen", Timestamp, "the event's first occurrence"),
        ],
        aggregated: false,
    },
    CollectorSpec {
        name: crate::kube_audit::COLLECTOR,
        description: "The API server's audit records, as its audit webhook sends them \
                      (POST /api/v1/audit): one row per request and stage (kind: the verb)",
        fields: &[
            f("ts", Timestamp, "when the stage happened (stageTimestamp)"),
            f("node", Text, "where the record came from: kube-apiserver"),
            f(
                "kind",
                Text,
                "the verb: get, list, watch, create, update, patch, delete, ...",
            ),
            f("namespace", Text, "the object's namespace"),
            f("pod", Text, "the object's name, when it is a pod"),
            f("audit_id", Text, "the request's id (its stages share it)"),
            f(
                "stage",
                Text,
                "ResponseStarted, ResponseComplete, Panic, RequestReceived",
            ),
            f("level", Text, "Metadata, Request, RequestResponse"),
            f("user", Text, "the authenticated user (null when none was)"),
            f("groups", Text, "the user's groups, comma-separated"),
            f("impersonated_user", Text, "the user the request acted as"),
            f(
                "source_ip",
                Text,
                "the client's address (the first of sourceIPs)",
            ),
            f("user_agent", Text, "the client's user agent"),
            f("request_uri", Text, "the request's path and query"),
            f("resource", Text, "the resource (pods, secrets, ...)"),
            f(
                "subresource",
                Text,
                "the subresource (exec, log, status, ...)",
            ),
            f("api_group", Text, "the resource's API group ('' is core)"),
            f("name", Text, "the object's name"),
            f("code", Integer, "the answer's HTTP status"),
            f(
                "decision",
                Text,
                "the authorizer's decision: allow or forbid",
            ),
            f("reason", Text, "the authorizer's reason"),
            f(
                "latency_ms",
                Float,
                "from the request's receipt to this stage",
            ),
            f(
                "role_ref",
                Text,
                "a (Cluster)RoleBinding's role, Kind/name (Request level and above)",
            ),
            f(
                "subjects",
                Text,
                "a (Cluster)RoleBinding's subjects, Kind:name, comma-separated",
            ),
        ],
        aggregated: false,
    },
];

/// The collector named `name`.
pub fn spec(name: &str) -> Option<&'static CollectorSpec> {
    COLLECTORS.iter().find(|c| c.name == name)
}

/// Upper bounds (microseconds) of the HTTP duration histogram's buckets;
/// a last, unbounded bucket follows. 10% apart from 10 us to about 100 s,
/// so a percentile read from it is within 10% of the true value.
pub fn duration_buckets_us() -> &'static [u64] {
    static BUCKETS: std::sync::OnceLock<Vec<u64>> = std::sync::OnceLock::new();
    BUCKETS.get_or_init(|| {
        let mut v = Vec::new();
        let mut b = 10.0f64;
        while b < 100_000_000.0 {
            v.push(b.round() as u64);
            b *= 1.1;
        }
        v.dedup();
        v
    })
}

/// The bucket a duration falls in.
pub fn bucket_of(duration_us: u64) -> usize {
    duration_buckets_us().partition_point(|&b| b < duration_us)
}
