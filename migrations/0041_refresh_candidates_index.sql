-- The scheduler's refresh candidates (issue 31): at 200,000 connections, reading every
-- daily-refresh connection to find the few Salt Edge has not fetched in the last 20 hours
-- took 0.45–0.6 s of each tick though none qualified. Indexed by country, then Salt Edge's
-- last success (NULL as -infinity), a tick reads only the connections of the countries
-- whose night it is that Salt Edge has not fetched since (one range per country). The
-- expression matches the query's text (crates/sync-engine/src/schedule/mod.rs). 0014's
-- index on `next_refresh_possible_at` (NULL for most connections, so never selective)
-- goes.
DROP INDEX connections_refresh_due;
CREATE INDEX connections_refresh_candidates
    ON connections (country_code, coalesce(saltedge_last_success_at, '-infinity'::timestamptz))
    WHERE daily_refresh AND status = 'active';
