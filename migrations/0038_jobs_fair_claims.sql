-- Jobs are claimed fairly across companies: a job carries its company (from its connection
-- or its Salt Edge customer when queued; NULL for the service's own work), and a claim
-- takes the oldest ready job of a company with no job running before any other (one
-- company's thousand queued jobs do not run before another's one).
ALTER TABLE jobs ADD COLUMN company_id uuid;
UPDATE jobs j SET company_id = c.company_id FROM connections c
 WHERE j.status = 'queued' AND c.id::text = j.payload->>'connection_id';
CREATE INDEX jobs_running_company ON jobs (company_id) WHERE status = 'running';
