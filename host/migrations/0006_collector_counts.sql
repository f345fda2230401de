-- Per-minute counts of the event collectors' events per node, kind and pod
-- (issue 6: "aggregates (per-minute RED, per-pod counters) so queries stay
-- fast"). Written by the store in the same transaction as the events they
-- count, from those events, so the two always agree; a count-only query
-- over whole minutes reads these rows instead of every event. '' stands for
-- "no pod" (a primary key column is never NULL).
CREATE TABLE collector_counts (
    collector TEXT    NOT NULL,
    minute    INTEGER NOT NULL,
    node      TEXT    NOT NULL,
    kind      TEXT    NOT NULL,
    namespace TEXT    NOT NULL DEFAULT '',
    pod       TEXT    NOT NULL DEFAULT '',
    pod_uid   TEXT    NOT NULL DEFAULT '',
    count     INTEGER NOT NULL,
    PRIMARY KEY (collector, minute, node, kind, namespace, pod, pod_uid)
);

-- Events stored before this migration are counted once, here.
INSERT INTO collector_counts (collector, minute, node, kind, namespace, pod, pod_uid, count)
SELECT collector, (ts / 60000) * 60000, node, kind, COALESCE(namespace, ''), COALESCE(pod, ''),
    COALESCE(pod_uid, ''), COUNT(*)
FROM collector_events
GROUP BY collector, (ts / 60000) * 60000, node, kind, COALESCE(namespace, ''), COALESCE(pod, ''),
    COALESCE(pod_uid, '');
