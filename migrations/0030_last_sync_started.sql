-- Catch-up at Salt Edge's precision. Salt Edge's `last_success_at` has whole seconds; our
-- end of sync has fractions, so a fetch that ended in the second our sync ended looked
-- older than the sync and was never caught up. A connection is now behind when Salt Edge's
-- `last_success_at` is at or after the whole second in which our last successful sync
-- started (when it read the connection): never missed; at most one extra sync when both
-- fall in one second.
ALTER TABLE connections ADD COLUMN last_sync_started_at timestamptz;
