-- The node collectors' data (eBPF, written by `sonde agent`, in-process or
-- one per node): their events attributed to pods, per-minute HTTP RED
-- aggregates, and each collector's state on each node.

-- Attribution kept beside the names: the uid outlives a pod's name reuse,
-- the container id names the container before the pod is known.
ALTER TABLE collector_events ADD COLUMN pod_uid TEXT;
ALTER TABLE collector_events ADD COLUMN container_id TEXT;
-- The cgroup path the event's cgroup identity resolved to.
ALTER TABLE collector_events ADD COLUMN cgroup TEXT;
ALTER TABLE collector_events ADD COLUMN pid INTEGER;
ALTER TABLE collector_events ADD COLUMN comm TEXT;
CREATE INDEX collector_events_by_node ON collector_events (node, collector, ts);

-- One row per minute, node, server and route: counts are exact; durations
-- are kept as a sum, a maximum and a histogram (JSON list of counts over
-- the fixed bucket bounds of the agent) for percentiles.
CREATE TABLE http_red (
    minute          INTEGER NOT NULL,
    node            TEXT    NOT NULL,
    -- The pod serving the requests ('' when the server is not a known pod).
    namespace       TEXT    NOT NULL DEFAULT '',
    pod             TEXT    NOT NULL DEFAULT '',
    -- Server address as ip:port.
    server          TEXT    NOT NULL,
    method          TEXT    NOT NULL,
    route           TEXT    NOT NULL,
    requests        INTEGER NOT NULL,
    -- Responses with status 500-599, and 400-499.
    errors          INTEGER NOT NULL,
    client_errors   INTEGER NOT NULL,
    duration_sum_us INTEGER NOT NULL,
    duration_max_us INTEGER NOT NULL,
    buckets         TEXT    NOT NULL,
    PRIMARY KEY (minute, node, server, method, route)
);
CREATE INDEX http_red_by_pod ON http_red (namespace, pod, minute);

-- Whether each collector runs on each node, why not, and how many records
-- it lost to a full ring buffer since its agent started.
CREATE TABLE collector_status (
    node        TEXT    NOT NULL,
    collector   TEXT    NOT NULL,
    available   INTEGER NOT NULL,
    reason      TEXT,
    events      INTEGER NOT NULL DEFAULT 0,
    dropped     INTEGER NOT NULL DEFAULT 0,
    started_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (node, collector)
);
