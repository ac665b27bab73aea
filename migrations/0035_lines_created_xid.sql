-- The transaction that first stored a line, never changed afterwards (`change_xid` moves on
-- every update). With it the balance check's kept sums (`line_sums`) are extended by the
-- lines stored since they were counted instead of summing every line of the account again
-- whenever a sync brought new ones: a night's sync of 50 new lines over 1,000,000 lines of
-- history summed 1,000,000 (1.2–1.9 s). Lines stored before this migration have none and
-- count as older than any kept sum. Set as a default after the column exists: no rewrite.
ALTER TABLE statement_lines ADD COLUMN created_xid bigint;
ALTER TABLE statement_lines ALTER COLUMN created_xid SET DEFAULT (pg_current_xact_id()::text::bigint);
