-- Rows the daemon takes from sources that may send them again: the API
-- server's audit webhook sends a batch again when it had no answer (a
-- timeout, the daemon restarting), and the cluster's events are read again
-- and again while etcd keeps them. Each is kept once: its collector and a
-- key naming it (an audit record's id and stage, an event's uid and count)
-- are kept here as long as the row is (the collectors' retention deletes
-- both by time). The rows themselves are `collector_events` (`kube-audit`,
-- `kube-events`).
CREATE TABLE collector_seen (
    collector TEXT    NOT NULL,
    key       TEXT    NOT NULL,
    ts        INTEGER NOT NULL,
    PRIMARY KEY (collector, key)
);
CREATE INDEX collector_seen_by_time ON collector_seen (ts);
