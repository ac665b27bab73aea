-- Flagged look-alikes are few; rule 8 (re-issued transactions) reads them on every sync.
-- This index finds them without reading the connection's whole history.
CREATE INDEX statement_lines_flagged ON statement_lines (bank_account_id) WHERE suspect_duplicate_of IS NOT NULL;
