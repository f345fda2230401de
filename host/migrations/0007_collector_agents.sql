-- Node agents that send to the daemon's API (issue 6: agents on a cluster
-- send their batches to the daemon). Each agent process numbers the
-- requests that carry events, 1, 2, 3, ..., and sends the next only once
-- the daemon answered the one before. A request sent again because its
-- answer was lost has a number the daemon already stored: it is answered
-- and not stored twice, so an OOM kill is never counted twice. Written in
-- the same transaction as the request's rows. One row per agent process
-- (`instance`: random, new at each start), deleted with the collector data.
CREATE TABLE collector_agents (
    instance TEXT    NOT NULL PRIMARY KEY,
    node     TEXT    NOT NULL,
    sequence INTEGER NOT NULL,
    at       INTEGER NOT NULL
);
