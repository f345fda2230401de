-- Sonde's store, first schema (SQLite). Applied by `sqlx::migrate!()` when
-- the store opens; never edit a migration that has shipped, add a new file.
--
-- Conventions, kept portable so a PostgreSQL copy of this file differs only
-- in `INTEGER PRIMARY KEY` (BIGSERIAL / identity) and `INTEGER` booleans:
-- times are milliseconds since the Unix epoch (UTC) in INTEGER columns, JSON
-- is stored as TEXT, and an absent resource part is '' rather than NULL so
-- that it can take part in equality filters.

-- The probes the daemon knows, from its config (or first seen in a run).
CREATE TABLE probes (
    name        TEXT    NOT NULL PRIMARY KEY,
    -- 'builtin', the component's path, or 'unknown' when a run created it.
    origin      TEXT    NOT NULL,
    version     TEXT    NOT NULL DEFAULT '',
    enabled     INTEGER NOT NULL DEFAULT 1,
    -- Cron expression; NULL for probes that only run on demand.
    schedule    TEXT,
    -- The probe's config as JSON.
    config      TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

-- One row per run, written when it is queued or starts and completed when it
-- ends, together with its findings, in one transaction.
CREATE TABLE runs (
    id             TEXT    NOT NULL PRIMARY KEY,
    probe          TEXT    NOT NULL REFERENCES probes (name) ON DELETE CASCADE,
    status         TEXT    NOT NULL
        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'interrupted')),
    -- Why it failed or was interrupted, as a sentence, and as JSON (`FailureReason`).
    reason         TEXT,
    reason_detail  TEXT,
    created_at     INTEGER NOT NULL,
    started_at     INTEGER,
    finished_at    INTEGER,
    duration_ms    INTEGER,
    -- Distinct findings the run reported (0 unless it succeeded).
    findings_count INTEGER NOT NULL DEFAULT 0,
    logs           TEXT    NOT NULL DEFAULT '[]',
    denials        TEXT    NOT NULL DEFAULT '[]'
);
CREATE INDEX runs_by_probe ON runs (probe, created_at DESC, id DESC);
CREATE INDEX runs_by_time ON runs (created_at DESC, id DESC);
CREATE INDEX runs_unfinished ON runs (status) WHERE status IN ('queued', 'running');

-- A finding that persists across runs is one row. `identity` is a hash of
-- probe, rule, resource (apiVersion, kind, namespace, name) and `fingerprint`
-- (a hash of the finding's identifying labels), computed by the host.
-- first_run / last_run are run ids but not foreign keys: retention deletes old
-- runs while the findings they first reported live on.
CREATE TABLE findings (
    id           INTEGER NOT NULL PRIMARY KEY,
    identity     TEXT    NOT NULL UNIQUE,
    probe        TEXT    NOT NULL REFERENCES probes (name) ON DELETE CASCADE,
    rule         TEXT    NOT NULL,
    -- 0 info, 1 low, 2 medium, 3 high, 4 critical: sorts and filters as a number.
    severity     INTEGER NOT NULL,
    api_version  TEXT    NOT NULL DEFAULT '',
    kind         TEXT    NOT NULL DEFAULT '',
    namespace    TEXT    NOT NULL DEFAULT '',
    name         TEXT    NOT NULL DEFAULT '',
    uid          TEXT,
    fingerprint  TEXT    NOT NULL,
    message      TEXT    NOT NULL,
    remedy       TEXT,
    -- All the labels of the latest report, as a JSON list of [key, value].
    labels       TEXT    NOT NULL DEFAULT '[]',
    first_seen   INTEGER NOT NULL,
    -- When it last became open: first_seen, or when it came back after a fix.
    opened_at    INTEGER NOT NULL,
    last_seen    INTEGER NOT NULL,
    first_run    TEXT    NOT NULL,
    last_run     TEXT    NOT NULL,
    -- Set when a later successful run of the probe no longer reports it.
    resolved_at  INTEGER
);
CREATE INDEX findings_by_probe ON findings (probe, resolved_at);
CREATE INDEX findings_by_resource ON findings (namespace, kind, name);
CREATE INDEX findings_by_severity ON findings (severity DESC, id DESC);
CREATE INDEX findings_by_first_run ON findings (first_run);

-- Events from the node collectors (a later issue writes them).
CREATE TABLE collector_events (
    id         INTEGER NOT NULL PRIMARY KEY,
    ts         INTEGER NOT NULL,
    node       TEXT    NOT NULL,
    collector  TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    namespace  TEXT,
    pod        TEXT,
    container  TEXT,
    fields     TEXT    NOT NULL DEFAULT '{}'
);
CREATE INDEX collector_events_by_time ON collector_events (ts);
CREATE INDEX collector_events_by_collector ON collector_events (collector, kind, ts);
CREATE INDEX collector_events_by_pod ON collector_events (namespace, pod, ts);
