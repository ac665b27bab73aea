-- A job past its attempts cap is dead: kept with its reason for operators, re-runnable.
ALTER TABLE jobs DROP CONSTRAINT jobs_status_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_status_check CHECK (status IN ('queued', 'running', 'done', 'failed', 'dead'));
CREATE INDEX jobs_dead ON jobs (id) WHERE status = 'dead';
