-- Where an account's closed statements end: each page of an import asks (statements::assign),
-- and without an index the answer read every statement of the account.
CREATE INDEX statements_closed_end ON statements (bank_account_id, period_end) WHERE closed_at IS NOT NULL;
