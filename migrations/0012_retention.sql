-- Retention: pruning by age walks these indexes in small batches.
CREATE INDEX callback_inbox_processed_at ON callback_inbox (processed_at) WHERE processed_at IS NOT NULL;
CREATE INDEX jobs_finished_at ON jobs (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX sync_runs_finished_at ON sync_runs (finished_at) WHERE finished_at IS NOT NULL;
