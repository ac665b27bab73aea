-- An account's open statements (a few at most) without reading its closed ones: where the
-- open statements start (statements::assign) and which of them close (the end of a sync)
-- read the whole account's statements before, 4-8 ms a night at 20,000 daily statements
-- (bench daily). The newest closed statement is read through (bank_account_id, sequence).
CREATE INDEX statements_open ON statements (bank_account_id, period_start) WHERE closed_at IS NULL;
