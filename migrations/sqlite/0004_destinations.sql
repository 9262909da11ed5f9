-- Delivery by named destination (a configured target such as `triage` of kind slack-bot), not by
-- sink kind: one outbox row per (event, destination), each sending one message. Existing rows keep
-- their names: `slack` and `analytics` are also the destinations today's settings configure.
ALTER TABLE outbox RENAME COLUMN sink TO destination;

-- Lanes claim per destination, oldest due first.
DROP INDEX outbox_due;
CREATE INDEX outbox_due ON outbox (destination, next_attempt_at, id) WHERE status = 'pending';

-- Attempts that did not deliver (failures, rate limits, ambiguous answers), for
-- `herald deliveries show`; a delivering attempt is the row's own final state.
CREATE TABLE attempts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    outbox_id   INTEGER NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER NOT NULL,
    outcome     TEXT    NOT NULL,
    error       TEXT
);
CREATE INDEX attempts_by_row ON attempts (outbox_id, id);

-- Per destination state shared by every instance: the rate limiter's next free slot (GCRA
-- theoretical arrival time) and a pause asked for by the destination (Retry-After).
CREATE TABLE destination_state (
    destination  TEXT    PRIMARY KEY,
    next_slot_at INTEGER NOT NULL DEFAULT 0,
    paused_until INTEGER NOT NULL DEFAULT 0,
    pause_reason TEXT
);
