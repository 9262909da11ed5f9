-- herald: time to first response, as `herald report` computes it.
-- Issues created in [since, until) (the query parameters); the first comment by someone other than the issue's author
-- and not a bot, minus the issue's created_at. Issues without one are counted as unanswered.
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
  SELECT repository, number, author, created_at
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
-- Comments on issues, each once; deleted ones and bots' never count.
comments AS (
  SELECT
    JSON_VALUE(payload, '$.repository.full_name') AS repository,
    CAST(JSON_VALUE(payload, '$.issue.number') AS INT64) AS number,
    CAST(JSON_VALUE(payload, '$.comment.id') AS INT64) AS comment_id,
    MIN(COALESCE(JSON_VALUE(payload, '$.comment.user.login'), 'ghost')) AS author,
    MIN(TIMESTAMP(JSON_VALUE(payload, '$.comment.created_at'))) AS created_at,
    LOGICAL_OR(action = 'deleted') AS deleted,
    LOGICAL_OR(JSON_VALUE(payload, '$.comment.user.type') = 'Bot'
               OR ENDS_WITH(COALESCE(JSON_VALUE(payload, '$.comment.user.login'), ''), '[bot]'))
      AS by_bot
  FROM deliveries
  WHERE event = 'issue_comment'
    AND JSON_QUERY(payload, '$.issue.pull_request') IS NULL
  GROUP BY repository, number, comment_id
),
responses AS (
  SELECT i.repository, i.number, i.created_at, MIN(c.created_at) AS first_response_at
  FROM issues AS i
  LEFT JOIN comments AS c
    ON c.repository = i.repository AND c.number = i.number
   AND NOT c.deleted AND NOT c.by_bot AND c.author <> i.author
  GROUP BY i.repository, i.number, i.created_at
),
durations AS (
  SELECT TIMESTAMP_DIFF(first_response_at, created_at, MILLISECOND) / 1000 AS seconds
  FROM responses
  WHERE first_response_at IS NOT NULL
)
SELECT
  (SELECT COUNT(*) FROM durations) AS count,
  (SELECT COUNT(*) FROM responses) - (SELECT COUNT(*) FROM durations) AS unanswered,
  (SELECT AVG(seconds) FROM durations) AS mean_seconds,
  -- PERCENTILE_CONT interpolates linearly between the closest ranks, as numpy does by default.
  (SELECT ANY_VALUE(median) FROM (
     SELECT PERCENTILE_CONT(seconds, 0.5) OVER () AS median FROM durations)) AS median_seconds,
  (SELECT ANY_VALUE(p90) FROM (
     SELECT PERCENTILE_CONT(seconds, 0.9) OVER () AS p90 FROM durations)) AS p90_seconds
