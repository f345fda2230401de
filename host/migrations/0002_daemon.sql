-- The daemon's scheduling state and what started each run.

-- Suspended by an operator (API or UI), whatever the config says; survives restarts.
ALTER TABLE probes ADD COLUMN suspended INTEGER NOT NULL DEFAULT 0;
-- The last schedule tick (ms since the epoch) a run was started for: after a
-- restart, a tick missed since then runs once.
ALTER TABLE probes ADD COLUMN last_tick INTEGER;

-- What started a run: 'schedule', 'manual', 'startup' or 'catch-up'.
ALTER TABLE runs ADD COLUMN trigger TEXT NOT NULL DEFAULT 'schedule';
