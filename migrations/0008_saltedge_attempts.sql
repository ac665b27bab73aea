-- Salt Edge's own last nightly (automatic) fetch of each connection: it counts against the
-- one-fetch-per-night allowance, and a failed one allows the two retries. Kept when a later
-- attempt (ours, or the user's) replaces Salt Edge's `last_attempt`.
ALTER TABLE connections
    ADD COLUMN saltedge_auto_fetch_at timestamptz,
    ADD COLUMN saltedge_auto_fetch_failed boolean NOT NULL DEFAULT false;
