-- Issue-flow insights: identities by GitHub's numeric user id (a rename changes nothing), the
-- reason a row left the metrics (deleted or transferred), what each backfill pass saw (so a
-- complete pass can reconcile deletions), and the weekly digests already posted.

-- NULL where the id is not known yet (rows backfilled before this migration, until the next
-- backfill refreshes them): the login is compared instead.
ALTER TABLE issues ADD COLUMN author_id INTEGER;
ALTER TABLE issues ADD COLUMN assignee_ids TEXT NOT NULL DEFAULT '[]'; -- JSON array of ids
ALTER TABLE issues ADD COLUMN html_url TEXT;
-- 'deleted' or 'transferred' once `deleted` is 1.
ALTER TABLE issues ADD COLUMN deleted_reason TEXT;
-- The backfill pass (its start, Unix ms) that last saw the row.
ALTER TABLE issues ADD COLUMN backfill_pass INTEGER;
ALTER TABLE issue_comments ADD COLUMN author_id INTEGER;
ALTER TABLE issue_comments ADD COLUMN backfill_pass INTEGER;
-- When the pass this progress belongs to started; NULL for passes begun before this migration.
ALTER TABLE backfill_progress ADD COLUMN pass_started_at INTEGER;

UPDATE issues SET deleted_reason = 'deleted' WHERE deleted = 1;

-- Ids from the stored payloads. An issue's author never changes, so any of its events will do;
-- assignees come from the newest event that carried the issue.
UPDATE issues SET author_id = (
    SELECT json_extract(e.payload, '$.issue.user.id') FROM events e
    WHERE e.repository = issues.repository AND e.issue_number = issues.number
      AND e.event IN ('issues', 'issue_comment') AND json_valid(e.payload)
      AND json_type(e.payload, '$.issue.user.id') = 'integer'
    ORDER BY e.id DESC LIMIT 1)
WHERE author_id IS NULL;

UPDATE issues SET assignee_ids = COALESCE((
    SELECT (SELECT json_group_array(json_extract(a.value, '$.id'))
            FROM json_each(e.payload, '$.issue.assignees') a
            WHERE json_type(a.value, '$.id') = 'integer')
    FROM events e
    WHERE e.repository = issues.repository AND e.issue_number = issues.number
      AND e.event IN ('issues', 'issue_comment') AND json_valid(e.payload)
      AND json_type(e.payload, '$.issue.assignees') = 'array'
    ORDER BY e.id DESC LIMIT 1), '[]');

UPDATE issues SET html_url = (
    SELECT json_extract(e.payload, '$.issue.html_url') FROM events e
    WHERE e.repository = issues.repository AND e.issue_number = issues.number
      AND e.event IN ('issues', 'issue_comment') AND json_valid(e.payload)
      AND json_type(e.payload, '$.issue.html_url') = 'text'
    ORDER BY e.id DESC LIMIT 1)
WHERE html_url IS NULL;

UPDATE issue_comments SET author_id = (
    SELECT json_extract(e.payload, '$.comment.user.id') FROM events e
    WHERE e.repository = issue_comments.repository AND e.issue_number = issue_comments.issue_number
      AND e.event = 'issue_comment' AND json_valid(e.payload)
      AND json_extract(e.payload, '$.comment.id') = issue_comments.comment_id
      AND json_type(e.payload, '$.comment.user.id') = 'integer'
    LIMIT 1)
WHERE author_id IS NULL;

-- The first-response lookup compares ids now: keep it index-only.
DROP INDEX issue_comments_by_issue;
CREATE INDEX issue_comments_by_issue ON issue_comments
    (repository, issue_number, created_at, comment_id, deleted, author_is_bot, author, author_id);
-- Closes per week and the backlog over time.
CREATE INDEX issues_by_closed ON issues (closed_at);
-- The oldest unanswered issues: open ones only, oldest first.
CREATE INDEX issues_open_by_created ON issues (created_at, repository, number) WHERE deleted = 0 AND state <> 'closed';

-- Every login each user id was seen with, and when (payload time): the newest names a group,
-- and `ignore_users` given by login also catches the account after a rename.
CREATE TABLE github_logins (
    user_id INTEGER NOT NULL,
    login   TEXT    NOT NULL,
    seen_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, login)
);
CREATE INDEX github_logins_by_login ON github_logins (LOWER(login));

INSERT INTO github_logins (user_id, login, seen_at)
    SELECT author_id, author, MAX(updated_at) FROM issues WHERE author_id IS NOT NULL
    GROUP BY author_id, author
    ON CONFLICT DO NOTHING;
INSERT INTO github_logins (user_id, login, seen_at)
    SELECT author_id, author, MAX(created_at) FROM issue_comments WHERE author_id IS NOT NULL
    GROUP BY author_id, author
    ON CONFLICT (user_id, login) DO UPDATE SET seen_at = excluded.seen_at
    WHERE excluded.seen_at > github_logins.seen_at;

-- The weekly digest: one row per destination and week, inserted before posting, so one
-- instance posts it once.
CREATE TABLE digests (
    destination TEXT    NOT NULL,
    week        TEXT    NOT NULL,
    claimed_at  INTEGER NOT NULL,
    posted_at   INTEGER,
    PRIMARY KEY (destination, week)
);
