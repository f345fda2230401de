-- The http collector's minutes added up per hour, so that a day, a week or
-- the whole retention of traffic is read in a few rows per server and route
-- rather than sixty. The store writes them from `http_red`: each batch of
-- minutes marks its hours stale, and an hour that is over and stale is
-- added up again from its minutes (a minute can come late: an agent resends
-- what the daemon did not take). Readers take a stale hour from its minutes.
-- An hour keeps the pod its minutes named: an address that served two pods
-- in one hour has a row for each.
CREATE TABLE http_red_hours (
    hour            INTEGER NOT NULL,
    node            TEXT    NOT NULL,
    namespace       TEXT    NOT NULL,
    pod             TEXT    NOT NULL,
    server          TEXT    NOT NULL,
    method          TEXT    NOT NULL,
    route           TEXT    NOT NULL,
    requests        INTEGER NOT NULL,
    errors          INTEGER NOT NULL,
    client_errors   INTEGER NOT NULL,
    duration_sum_us INTEGER NOT NULL,
    duration_max_us INTEGER NOT NULL,
    buckets         TEXT    NOT NULL,
    PRIMARY KEY (hour, node, server, method, route, namespace, pod)
);

-- Hours (their start, ms since the epoch) with minutes written since they
-- were last added up.
CREATE TABLE http_red_stale_hours (
    hour INTEGER NOT NULL PRIMARY KEY
);

-- Minutes before this time (ms, the start of an hour) are not kept: a
-- retention shorter for minutes than for hours deleted them, whole hours at
-- a time, once those hours were added up, and a minute that comes for them
-- later is not taken (adding up its hour again would lose the rest).
CREATE TABLE http_red_minutes_kept (
    id    INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    since INTEGER NOT NULL
);
INSERT INTO http_red_minutes_kept (id, since) VALUES (1, 0);

-- The minutes stored before this migration.
INSERT INTO http_red_stale_hours (hour)
    SELECT DISTINCT minute - minute % 3600000 FROM http_red;
