-- What `herald redeliver` asked GitHub to redeliver: one row per request, so a second run asks
-- for nothing new, and a delivery that keeps failing is asked for a bounded number of times.
-- Times are Unix milliseconds.
CREATE TABLE redelivery_requests (
    hook         TEXT    NOT NULL, -- `repos/OWNER/NAME/hooks/ID` or `orgs/ORG/hooks/ID`, lower-cased
    guid         TEXT    NOT NULL, -- the delivery (`X-GitHub-Delivery`), shared by all its attempts
    delivery_id  INTEGER NOT NULL, -- the failed attempt herald asked GitHub to redeliver
    delivered_at INTEGER NOT NULL, -- when GitHub made that attempt (GitHub's clock)
    requested_at INTEGER NOT NULL, -- when herald asked (herald's clock)
    -- `asking` while the request is on its way (left behind only by a crash), `asked` once
    -- GitHub accepted it, `refused` when GitHub answered that it will not (e.g. 422: too old).
    state        TEXT    NOT NULL CHECK (state IN ('asking', 'asked', 'refused')),
    detail       TEXT,             -- GitHub's reason, when refused
    PRIMARY KEY (hook, delivery_id)
);
CREATE INDEX redelivery_requests_by_guid ON redelivery_requests (hook, guid);
