-- The bookkeeper answers the bank's removals and possible re-issues.
--
-- A line flagged `gone_at_bank` is confirmed removed (it leaves the books: out of its
-- statement's figures, carried as a correction when that statement is closed, like a
-- confirmed duplicate) or kept; either can be undone, and a line whose transaction comes
-- back returns to the books by itself.
--
-- A new line without bank id that a listing brought where a line of the same account
-- vanished, a few days and a small amount apart, is flagged as a possible re-issue of that
-- line (`reissue_of`): merging keeps the old line's id with the new content, dismissing
-- keeps both.
--
-- Plain columns (no generated "in the books" column): adding them rewrites nothing.
ALTER TABLE statement_lines ADD COLUMN removal_confirmed_at timestamptz,
                            ADD COLUMN removal_kept_at timestamptz,
                            ADD COLUMN reissue_of bigint,
                            ADD COLUMN reissue_dismissed_at timestamptz;
CREATE INDEX statement_lines_reissue_of ON statement_lines (reissue_of) WHERE reissue_of IS NOT NULL;
ALTER TABLE sync_runs ADD COLUMN possible_reissues integer NOT NULL DEFAULT 0;

ALTER TABLE line_events DROP CONSTRAINT line_events_kind_check;
ALTER TABLE line_events ADD CONSTRAINT line_events_kind_check CHECK (kind IN ('updated', 'rekeyed',
    'posted_from_pending', 'flagged', 'duplicate_confirmed', 'duplicate_dismissed', 'review_undone',
    'pending_unlinked', 'gone_at_bank', 'back_at_bank', 'removal_confirmed', 'removal_kept',
    'possible_reissue', 'reissue_merged', 'reissue_dismissed'));

-- A line is in the books unless confirmed a duplicate or confirmed removed.
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
    old_effect := CASE WHEN OLD.duplicate_confirmed_at IS NULL AND OLD.removal_confirmed_at IS NULL
                       THEN OLD.amount ELSE 0 END;
    IF TG_OP = 'UPDATE' THEN
        new_effect := CASE WHEN NEW.duplicate_confirmed_at IS NULL AND NEW.removal_confirmed_at IS NULL
                           THEN NEW.amount ELSE 0 END;
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
DROP TRIGGER statement_lines_correction ON statement_lines;
CREATE TRIGGER statement_lines_correction
    AFTER UPDATE OF amount, duplicate_confirmed_at, removal_confirmed_at OR DELETE ON statement_lines
    FOR EACH ROW EXECUTE FUNCTION carry_correction();
