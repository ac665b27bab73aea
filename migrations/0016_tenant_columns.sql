-- Every tenant table carries company_id, and every query of a company's data filters by it
-- (ready for row-level security or distributing by company). statement_lines and
-- quarantined_records reached their company through a journal or a sync run; they now
-- carry it themselves.
ALTER TABLE statement_lines ADD COLUMN company_id uuid;
UPDATE statement_lines l SET company_id = j.company_id FROM journals j WHERE j.id = l.journal_id;
ALTER TABLE statement_lines ALTER COLUMN company_id SET NOT NULL;
-- The company-wide list (no journal filter) reads this index in order.
CREATE INDEX statement_lines_company_date ON statement_lines (company_id, booking_date, id);

ALTER TABLE quarantined_records ADD COLUMN company_id uuid;
UPDATE quarantined_records q SET company_id = r.company_id FROM sync_runs r WHERE r.id = q.sync_run_id;
ALTER TABLE quarantined_records ALTER COLUMN company_id SET NOT NULL;
