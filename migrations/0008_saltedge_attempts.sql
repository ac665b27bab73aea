-- Salt Edge's own last attempt on each connection (its nightly automatic fetch counts
-- against the one-fetch-per-night allowance; a failed one allows retries).
ALTER TABLE connections
    ADD COLUMN saltedge_last_attempt_at timestamptz,
    ADD COLUMN saltedge_last_attempt_automatic boolean NOT NULL DEFAULT false,
    ADD COLUMN saltedge_last_attempt_failed boolean NOT NULL DEFAULT false;
