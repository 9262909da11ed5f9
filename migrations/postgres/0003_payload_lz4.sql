-- Webhook payloads (often 10-30 KB of JSON) are compressed with lz4 rather than pglz: pglz cost
-- ~40 ms per group commit of 32 payloads in bench/intake.sh, lz4 a fraction of it. Servers built
-- without lz4 keep the default.
DO $$
BEGIN
    ALTER TABLE events ALTER COLUMN payload SET COMPRESSION lz4;
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'lz4 unavailable; event payloads keep the default TOAST compression';
END $$;
