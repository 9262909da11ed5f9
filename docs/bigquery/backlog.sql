-- herald: issues opened in [since, until) (the query parameters), how many are closed and open
-- now, and the backlog: the open ones by age now (under a day, 1-7 days, 7-30 days, 30 days or
-- more), as `herald report` computes them.
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
open_now AS (
  SELECT TIMESTAMP_DIFF(CURRENT_TIMESTAMP(), created_at, MILLISECOND) AS age_ms
  FROM issues
  WHERE state <> 'closed'
)
SELECT
  (SELECT COUNT(*) FROM issues) AS opened,
  (SELECT COUNTIF(state = 'closed') FROM issues) AS closed,
  (SELECT COUNT(*) FROM open_now) AS open_now,
  (SELECT COUNTIF(age_ms < 86400000) FROM open_now) AS age_under_1d,
  (SELECT COUNTIF(age_ms >= 86400000 AND age_ms < 604800000) FROM open_now) AS age_1d_to_7d,
  (SELECT COUNTIF(age_ms >= 604800000 AND age_ms < 2592000000) FROM open_now)
    AS age_7d_to_30d,
  (SELECT COUNTIF(age_ms >= 2592000000) FROM open_now) AS age_over_30d
