-- Every delivery GitHub made, as received, and one outbox row per sink that must see it.
-- Times are Unix milliseconds.
CREATE TABLE events (
    id           BIGSERIAL PRIMARY KEY,
    hook_id      TEXT    NOT NULL,
    delivery_id  TEXT    NOT NULL,
    event        TEXT    NOT NULL,
    action       TEXT,
    repository   TEXT,
    issue_number BIGINT,
    actor        TEXT,
    received_at  BIGINT  NOT NULL,
    payload      TEXT    NOT NULL,
    UNIQUE (hook_id, delivery_id)
);
CREATE INDEX events_by_issue ON events (repository, issue_number);
CREATE INDEX events_by_received ON events (received_at);

CREATE TABLE outbox (
    id                 BIGSERIAL PRIMARY KEY,
    event_id           BIGINT  NOT NULL REFERENCES events (id),
    sink               TEXT    NOT NULL,
    status             TEXT    NOT NULL DEFAULT 'pending'
                               CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts           BIGINT  NOT NULL DEFAULT 0,
    next_attempt_at    BIGINT  NOT NULL,
    lease_owner        TEXT,
    lease_until        BIGINT,
    attempt_started_at BIGINT,
    last_error         TEXT,
    created_at         BIGINT  NOT NULL,
    updated_at         BIGINT  NOT NULL,
    UNIQUE (event_id, sink)
);
CREATE INDEX outbox_due ON outbox (next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX outbox_by_status ON outbox (status, id);
