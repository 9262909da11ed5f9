-- herald: time to close, as `herald report` computes it.
-- Issues created in [since, until) (the query parameters) and closed now: closed_at minus
-- created_at (for a reopened issue the last close counts; one reopened and still open is open),
-- with the closes counted by GitHub's state_reason.
-- Replace PROJECT.DATASET.TABLE with your table. See README.md in this folder.
WITH
-- Each delivery once: BigQuery's insertId dedupe is best effort, and retried inserts repeat rows.
-- Every event about an issue created after `since` happened after it, so older partitions are
-- never read.
deliveries AS (
  SELECT delivery_id, event, action, received_at, payload
  FROM (
    SELECT delivery_id, event, action, received_at, payload,
      ROW_NUMBER() OVER (PARTITION BY delivery_id ORDER BY received_at) AS copy
    FROM `PROJECT.DATASET.TABLE`
    WHERE occurred_at >= @since AND event IN ('issues', 'issue_comment')
  )
  WHERE copy = 1
),
-- Issue snapshots from both kinds of events; pull requests are not issues.
snapshots AS (
  SELECT
    JSON_VALUE(payload, '$.repository.full_name') AS repository,
    CAST(JSON_VALUE(payload, '$.issue.number') AS INT64) AS number,
    COALESCE(JSON_VALUE(payload, '$.issue.user.login'), 'ghost') AS author,
    TIMESTAMP(JSON_VALUE(payload, '$.issue.created_at')) AS created_at,
    COALESCE(TIMESTAMP(JSON_VALUE(payload, '$.issue.updated_at')),
             TIMESTAMP(JSON_VALUE(payload, '$.issue.created_at'))) AS updated_at,
    TIMESTAMP(JSON_VALUE(payload, '$.issue.closed_at')) AS closed_at,
    COALESCE(JSON_VALUE(payload, '$.issue.state'), 'open') AS state,
    JSON_VALUE(payload, '$.issue.state_reason') AS state_reason,
    event = 'issues' AND action IN ('deleted', 'transferred') AS deletes,
    received_at
  FROM deliveries
  WHERE JSON_QUERY(payload, '$.issue.pull_request') IS NULL
    AND JSON_VALUE(payload, '$.issue.created_at') IS NOT NULL
    AND JSON_VALUE(payload, '$.repository.full_name') IS NOT NULL
),
-- The newest snapshot of each issue (by the payload's updated_at, then arrival); a deletion or
-- transfer removes the issue for good.
issues AS (
  SELECT repository, number, author, created_at, updated_at, closed_at, state, state_reason
  FROM (
    SELECT *,
      ROW_NUMBER() OVER (PARTITION BY repository, number
                         ORDER BY updated_at DESC, received_at DESC) AS newest,
      LOGICAL_OR(deletes) OVER (PARTITION BY repository, number) AS deleted
    FROM snapshots
  )
  WHERE newest = 1 AND NOT deleted
    AND created_at >= @since AND created_at < @until
),
closed AS (
  SELECT
    -- GitHub gives closed_at on every closed issue; the last update stands in otherwise.
    TIMESTAMP_DIFF(COALESCE(closed_at, updated_at), created_at, MILLISECOND) / 1000 AS seconds,
    state_reason
  FROM issues
  WHERE state = 'closed'
)
SELECT
  (SELECT COUNT(*) FROM closed) AS count,
  (SELECT AVG(seconds) FROM closed) AS mean_seconds,
  -- PERCENTILE_CONT interpolates linearly between the closest ranks, as numpy does by default.
  (SELECT ANY_VALUE(median) FROM (
     SELECT PERCENTILE_CONT(seconds, 0.5) OVER () AS median FROM closed)) AS median_seconds,
  (SELECT ANY_VALUE(p90) FROM (
     SELECT PERCENTILE_CONT(seconds, 0.9) OVER () AS p90 FROM closed)) AS p90_seconds,
  (SELECT COUNTIF(state_reason = 'completed') FROM closed) AS completed,
  (SELECT COUNTIF(state_reason = 'not_planned') FROM closed) AS not_planned,
  -- Closes GitHub gave no reason for (herald's "unknown"), and any other reason.
  (SELECT COUNTIF(state_reason IS NULL) FROM closed) AS unknown_reason,
  (SELECT COUNTIF(state_reason NOT IN ('completed', 'not_planned')) FROM closed) AS other_reason
