-- A finding that a run reports again unchanged is not written (issue 5,
-- ingest): most findings of most runs persist, and rewriting each of their
-- rows only to move its last-seen time was most of a run's ingest.
--
-- - `probes.seen_at` / `probes.seen_run`: the probe's last successful run
--   (when it finished, its id). Every open finding of a probe was reported by
--   that run (a successful run resolves the open findings it did not report,
--   in the same transaction), so an open finding's last-seen time and run are
--   these. The finding's own `last_seen` / `last_run` hold them from when it
--   was resolved (the run that last reported it); while it is open they are
--   what was written when it was last changed, and are not read. NULL until
--   the probe's first run after this migration: until then the findings' own
--   values are the current ones, as before.
-- - `findings.content`: 16 bytes of the hash of what a report says beyond
--   its identity (severity, uid, message, remedy, labels). A report whose
--   content equals the open finding's is the same claim again: nothing to
--   write. NULL for findings stored before: their next report rewrites them.

ALTER TABLE probes ADD COLUMN seen_at INTEGER;
ALTER TABLE probes ADD COLUMN seen_run TEXT;
ALTER TABLE findings ADD COLUMN content BLOB;

-- A run reads its probe's open findings (identity and content) from the
-- probe index alone: with `resolved_at`, `identity` and `content` in it, no
-- finding row is visited (a row per finding cost more than the rest of a
-- run's ingest). The index keeps its page order for the API's probe filter,
-- which can now also tell open from fixed, and check the rule filter, without
-- the row (`rule` last: it only widens the entries, where a (probe, rule, ...)
-- index would cost every new finding one more insert).
DROP INDEX findings_by_probe;
CREATE INDEX findings_by_probe ON findings (probe, severity DESC, id DESC, resolved_at, identity,
    content, rule);
