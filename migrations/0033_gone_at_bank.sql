-- The bank's removals are surfaced: a line whose transaction a complete listing that covers
-- it no longer holds (and no re-issue explains) is flagged `gone_at_bank` with the time and
-- the sync run; the flag clears by itself when the transaction is listed again. Lines never
-- vanish (closed statements never change); the flag tells the bookkeeper which line the
-- bank no longer has. Few rows carry it: a partial index finds them.
ALTER TABLE statement_lines ADD COLUMN gone_at_bank_at timestamptz,
                            ADD COLUMN gone_at_bank_run_id uuid;
CREATE INDEX statement_lines_gone_at_bank ON statement_lines (bank_account_id) WHERE gone_at_bank_at IS NOT NULL;
ALTER TABLE sync_runs ADD COLUMN gone_at_bank integer NOT NULL DEFAULT 0;
