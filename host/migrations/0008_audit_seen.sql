-- The API server's audit records (issue: events and audit, seed 003) are
-- stored as rows of the `kube-audit` collector in `collector_events`. The
-- webhook sends a batch again when it had no answer (a timeout, the daemon
-- restarting), so each request's stage is taken once: its id and stage are
-- kept here, as long as the record is (the collectors' retention deletes
-- both by time).
CREATE TABLE audit_seen (
    audit_id TEXT    NOT NULL,
    stage    TEXT    NOT NULL,
    ts       INTEGER NOT NULL,
    PRIMARY KEY (audit_id, stage)
);
CREATE INDEX audit_seen_by_time ON audit_seen (ts);
