-- The scheduler's catch-up looks for connections whose Salt Edge success is at or after the
-- second our last sync started. A partial index holds exactly those, so that a tick reads
-- the few behind instead of every connection (at 200,000 connections the full scan made
-- the tick's median 261 ms). The predicate is written in UTC (immutable) and matches the
-- query's text (crates/sync-engine/src/schedule/mod.rs). It replaces 0014's index of the
-- same name, which held every active connection with a success.
DROP INDEX connections_behind;
CREATE INDEX connections_behind ON connections (id)
    WHERE status = 'active'
      AND (saltedge_last_success_at AT TIME ZONE 'UTC')
          >= date_trunc('second', coalesce(last_sync_started_at, last_synced_at, '-infinity'::timestamptz) AT TIME ZONE 'UTC');
