-- Slack bot destinations: one thread per issue, the memory of what was announced, reminders, and
-- bursts coalesced into one message. Times are Unix milliseconds.

-- The thread of an issue (or pull request) in a destination: the first message about it is the
-- parent. Several instances agree on one parent by inserting this row (the unique key) before
-- posting; the others wait until `parent_ts` is known, or take the slot over once
-- `claimed_until` has passed without a parent (its poster died or gave up).
CREATE TABLE slack_threads (
    destination     TEXT    NOT NULL,
    repository      TEXT    NOT NULL, -- lower-cased
    issue_number    BIGINT NOT NULL,
    channel         TEXT    NOT NULL,
    parent_ts       TEXT,             -- NULL while the parent is being posted
    parent_row      BIGINT NOT NULL, -- the outbox row whose message is (or will be) the parent
    claimed_until   BIGINT NOT NULL,
    threaded        BIGINT NOT NULL DEFAULT 1, -- later events go into the thread, the parent is kept current
    card            TEXT,             -- JSON: the state the parent shows (title, state, labels, assignees)
    card_updated_at BIGINT NOT NULL DEFAULT 0, -- the payload's `updated_at` of that state; newer wins
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (destination, repository, issue_number)
);

-- Issues announced to a destination that has no threads (incoming webhooks), so a label added
-- later announces an issue once.
CREATE TABLE slack_announced (
    destination  TEXT    NOT NULL,
    repository   TEXT    NOT NULL, -- lower-cased
    issue_number BIGINT NOT NULL,
    first_row    BIGINT NOT NULL,
    announced_at BIGINT NOT NULL,
    PRIMARY KEY (destination, repository, issue_number)
);

-- One reminder per (destination, issue) when an open issue waits too long for a response.
CREATE TABLE slack_reminders (
    destination   TEXT    NOT NULL,
    repository    TEXT    NOT NULL, -- lower-cased
    issue_number  BIGINT NOT NULL,
    repository_name TEXT  NOT NULL, -- as GitHub spells it, for the message
    title         TEXT    NOT NULL,
    url           TEXT    NOT NULL,
    author        TEXT    NOT NULL,
    opened_at     BIGINT NOT NULL, -- the issue's created_at (or reopen time)
    remind_after_ms BIGINT NOT NULL,
    business_hours TEXT,            -- JSON of the route's business hours, NULL for wall-clock time
    mention       TEXT,
    due_at        BIGINT NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('waiting', 'sent', 'cancelled')),
    reason        TEXT,             -- why it was cancelled
    attempts      BIGINT NOT NULL DEFAULT 0,
    claimed_by    TEXT,
    claimed_until BIGINT,
    sent_ts       TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (destination, repository, issue_number)
);
CREATE INDEX slack_reminders_due ON slack_reminders (due_at) WHERE status = 'waiting';

-- Rows whose event was told in the message of another row (a burst about one issue coalesced).
CREATE TABLE slack_coalesced (
    destination TEXT    NOT NULL,
    row_id      BIGINT NOT NULL, -- the row that sends nothing of its own
    leader_row  BIGINT NOT NULL, -- the row whose message tells it
    PRIMARY KEY (destination, row_id)
);
