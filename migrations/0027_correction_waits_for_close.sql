-- A line changed while the sync closes its statement is never lost. The close locks the
-- statements it closes before it sums their lines (`statements::lock_ended`); the trigger
-- that carries changes to closed statements now reads the statement with FOR SHARE, so it
-- waits for a close in progress and then sees the statement closed (the change becomes a
-- correction on the current statement) — or, when it came first, the close waits for it
-- and its sums include the change. Before, a change made while the close ran was read as
-- one to an open statement, and the closed statement's figures missed it.
CREATE OR REPLACE FUNCTION carry_correction() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    old_effect numeric;
    new_effect numeric := 0;
    closed boolean;
    p text;
    today date := current_date;
BEGIN
    IF OLD.statement_id IS NULL THEN
        RETURN NULL;
    END IF;
    -- FOR SHARE: a statement being closed (locked by the sync's close) is read once the
    -- close has committed, so the change is carried as a correction rather than lost.
    SELECT s.closed_at IS NOT NULL INTO closed FROM statements s WHERE s.id = OLD.statement_id FOR SHARE;
    old_effect := CASE WHEN OLD.duplicate_confirmed_at IS NULL THEN OLD.amount ELSE 0 END;
    IF TG_OP = 'UPDATE' THEN
        new_effect := CASE WHEN NEW.duplicate_confirmed_at IS NULL THEN NEW.amount ELSE 0 END;
    END IF;
    IF new_effect = old_effect AND TG_OP = 'UPDATE' THEN
        RETURN NULL;
    END IF;
    IF NOT coalesce(closed, false) THEN
        -- An open statement's figures moved, and the openings of the open ones after it.
        UPDATE statements SET updated_at = now()
            WHERE bank_account_id = OLD.bank_account_id AND closed_at IS NULL
              AND period_start >= (SELECT period_start FROM statements WHERE id = OLD.statement_id);
        RETURN NULL;
    END IF;
    SELECT statement_period INTO p FROM bank_accounts WHERE id = OLD.bank_account_id;
    INSERT INTO statements (company_id, bank_account_id, journal_id, period, period_start, period_end, corrections)
        VALUES (OLD.company_id, OLD.bank_account_id, OLD.journal_id, p, period_start(p, today), period_end(p, today),
                new_effect - old_effect)
        ON CONFLICT (bank_account_id, period_start) DO UPDATE
            SET corrections = statements.corrections + EXCLUDED.corrections, updated_at = now();
    RETURN NULL;
END $$;
