-- Scheduler at scale: each Salt Edge customer's connections are listed (the lost-callback
-- catch-up) at most once a day, spread over the day; due connections are found by index.
ALTER TABLE saltedge_customers ADD COLUMN listed_at timestamptz;
CREATE INDEX saltedge_customers_listed_at ON saltedge_customers (listed_at NULLS FIRST);
CREATE INDEX connections_refresh_due ON connections (next_refresh_possible_at) WHERE daily_refresh AND status = 'active';
CREATE INDEX connections_behind ON connections (id) WHERE status = 'active' AND saltedge_last_success_at IS NOT NULL;
