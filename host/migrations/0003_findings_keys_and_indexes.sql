-- Findings, rebuilt for ingest speed and for the API's filters (issue 5).
--
-- - `identity` and `fingerprint` become the 16 bytes they are the hex of
--   (a BLOB; BYTEA in PostgreSQL): the unique index on identity, which every
--   ingested finding looks up, holds half the bytes.
-- - The indexes are the ones the findings page walks in its order (most
--   severe first, newest first) for its common filters; each also serves
--   ingest: `findings_by_probe` finds the open findings a run no longer
--   reports, as `(probe, resolved_at)` did. Narrow on purpose: every index
--   costs every new finding an insert (a rule column in it cost 20% of
--   ingest; the rule filter walks the probe's findings in page order).
-- - `findings_by_first_run` is gone: a run's new findings are those with an
--   id above the largest one when its transaction began.
-- - `findings_by_resource (namespace, kind, name)` is gone: the namespace
--   filter uses `findings_by_namespace`, in page order.
-- - `findings_text` indexes the messages by trigram (FTS5) for the text
--   filter, which was a scan of every message: it finds the candidates and
--   the store still checks them with the same LIKE, so what matches is
--   unchanged. The ingest indexes the findings it inserts (one statement per
--   run); the triggers keep it in step when a message changes or a finding
--   is deleted. (PostgreSQL would use pg_trgm.)
--
-- Ids, times and every other value are kept as they were.

CREATE TABLE findings_v3 (
    id           INTEGER NOT NULL PRIMARY KEY,
    identity     BLOB    NOT NULL UNIQUE,
    probe        TEXT    NOT NULL REFERENCES probes (name) ON DELETE CASCADE,
    rule         TEXT    NOT NULL,
    severity     INTEGER NOT NULL,
    api_version  TEXT    NOT NULL DEFAULT '',
    kind         TEXT    NOT NULL DEFAULT '',
    namespace    TEXT    NOT NULL DEFAULT '',
    name         TEXT    NOT NULL DEFAULT '',
    uid          TEXT,
    fingerprint  BLOB    NOT NULL,
    message      TEXT    NOT NULL,
    remedy       TEXT,
    labels       TEXT    NOT NULL DEFAULT '[]',
    first_seen   INTEGER NOT NULL,
    opened_at    INTEGER NOT NULL,
    last_seen    INTEGER NOT NULL,
    first_run    TEXT    NOT NULL,
    last_run     TEXT    NOT NULL,
    resolved_at  INTEGER
);

INSERT INTO findings_v3 (id, identity, probe, rule, severity, api_version, kind, namespace,
    name, uid, fingerprint, message, remedy, labels, first_seen, opened_at, last_seen,
    first_run, last_run, resolved_at)
SELECT id, unhex(identity), probe, rule, severity, api_version, kind, namespace,
    name, uid, unhex(fingerprint), message, remedy, labels, first_seen, opened_at, last_seen,
    first_run, last_run, resolved_at
FROM findings ORDER BY id;

DROP TABLE findings;
ALTER TABLE findings_v3 RENAME TO findings;

CREATE INDEX findings_by_probe ON findings (probe, severity DESC, id DESC);
CREATE INDEX findings_by_namespace ON findings (namespace, severity DESC, id DESC);
CREATE INDEX findings_by_severity ON findings (severity DESC, id DESC);

-- Contentless (the messages stay in `findings`), rows deleted by rowid, and
-- no positions (detail=none): the store asks for every trigram of the
-- needle, not a phrase, and checks candidates against the message itself.
CREATE VIRTUAL TABLE findings_text USING fts5 (
    message, content = '', contentless_delete = 1, tokenize = 'trigram', detail = none
);
-- A run's new findings are indexed in one go: keep them in memory until the
-- transaction commits rather than flushing a segment per megabyte.
INSERT INTO findings_text (findings_text, rank) VALUES ('hashsize', 67108864);
INSERT INTO findings_text (rowid, message) SELECT id, message FROM findings;

CREATE TRIGGER findings_text_message AFTER UPDATE OF message ON findings
    WHEN old.message IS NOT new.message
BEGIN
    DELETE FROM findings_text WHERE rowid = old.id;
    INSERT INTO findings_text (rowid, message) VALUES (new.id, new.message);
END;

CREATE TRIGGER findings_text_delete AFTER DELETE ON findings
BEGIN
    DELETE FROM findings_text WHERE rowid = old.id;
END;
