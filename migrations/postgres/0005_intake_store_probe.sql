-- Readiness probes: while commits fail (a full disk, a lost server), `/readyz` and the event
-- writer check that a write transaction can commit again by inserting a row here and deleting it
-- in the same transaction. The table stays empty.
CREATE TABLE store_probe (
    id         BIGSERIAL PRIMARY KEY,
    written_at BIGINT NOT NULL,
    filler     BYTEA  NOT NULL
);
