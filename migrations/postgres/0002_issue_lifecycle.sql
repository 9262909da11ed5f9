-- Issue lifecycle tables, derived from `issues` and `issue_comment` events (and from backfill).
-- Times are Unix milliseconds taken from the payloads, never arrival time; flags are 0/1.
-- The newest snapshot of an issue wins (by the payload's `updated_at`), whatever the arrival order.
CREATE TABLE issues (
    repository    TEXT    NOT NULL,
    number        BIGINT  NOT NULL,
    title         TEXT    NOT NULL,
    author        TEXT    NOT NULL,
    author_is_bot BIGINT  NOT NULL DEFAULT 0,
    labels        TEXT    NOT NULL DEFAULT '[]', -- JSON array of names
    assignees     TEXT    NOT NULL DEFAULT '[]', -- JSON array of logins
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL,
    closed_at     BIGINT,
    state         TEXT    NOT NULL,
    state_reason  TEXT,
    deleted       BIGINT  NOT NULL DEFAULT 0,
    PRIMARY KEY (repository, number)
);
CREATE INDEX issues_by_created ON issues (created_at);

-- One row per (issue, label) of the newest snapshot, for the `--label` filter.
CREATE TABLE issue_labels (
    repository TEXT    NOT NULL,
    number     BIGINT  NOT NULL,
    label      TEXT    NOT NULL,
    PRIMARY KEY (repository, number, label)
);
CREATE INDEX issue_labels_by_label ON issue_labels (label);

CREATE TABLE issue_comments (
    repository    TEXT    NOT NULL,
    comment_id    BIGINT  NOT NULL,
    issue_number  BIGINT  NOT NULL,
    author        TEXT    NOT NULL,
    author_is_bot BIGINT  NOT NULL DEFAULT 0,
    created_at    BIGINT  NOT NULL,
    deleted       BIGINT  NOT NULL DEFAULT 0,
    PRIMARY KEY (repository, comment_id)
);
-- The first-response lookup reads it in order and never touches the table (the columns after
-- created_at make it covering).
CREATE INDEX issue_comments_by_issue ON issue_comments
    (repository, issue_number, created_at, comment_id, deleted, author_is_bot, author);

-- Where `herald backfill` stopped, per repository and phase (`issues`, `comments`).
CREATE TABLE backfill_progress (
    repository TEXT    NOT NULL,
    phase      TEXT    NOT NULL,
    next_url   TEXT,
    done       BIGINT  NOT NULL DEFAULT 0,
    updated_at BIGINT  NOT NULL,
    PRIMARY KEY (repository, phase)
);
