-- Bank statements: a bank account's lines grouped by period (daily by default, weekly or
-- monthly per account). A statement is open until its period has ended and a sync after
-- that has completed; then it closes, gets the next number in the account's sequence, and
-- its line count, opening and closing balances are fixed (opening = the previous
-- statement's closing). A line arriving later with a date in a closed period goes into the
-- open statement of the current period (keeping its own date); a change to a line of a
-- closed statement (amount edited by Salt Edge, confirmed as a duplicate, removed) is
-- carried as a correction on the current open statement, so closed statements never
-- change and the balance chain stays true.
ALTER TABLE bank_accounts ADD COLUMN statement_period text NOT NULL DEFAULT 'daily'
    CHECK (statement_period IN ('daily', 'weekly', 'monthly'));

CREATE TABLE statements (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    company_id         uuid NOT NULL,
    bank_account_id    uuid NOT NULL,
    journal_id         uuid NOT NULL,
    period             text NOT NULL CHECK (period IN ('daily', 'weekly', 'monthly')),
    period_start       date NOT NULL,
    period_end         date NOT NULL,
    -- Numbered in the account's sequence when closed.
    sequence           integer,
    closed_at          timestamptz,
    -- Fixed at close (open statements' figures are computed from their lines).
    line_count         integer,
    opening_balance    numeric(38, 10),
    closing_balance    numeric(38, 10),
    -- Changes to lines of closed statements, carried here (see above).
    corrections        numeric(38, 10) NOT NULL DEFAULT 0,
    -- The balance check: the bank's balance at the attempt (the only balance whose point in
    -- time Salt Edge documents) against this statement's closing balance, recorded on the
    -- account's newest statement when the sync checks it; NULL when not comparable.
    bank_balance       numeric(38, 10),
    bank_balance_at    timestamptz,
    balance_basis      text,
    balance_difference numeric(38, 10),
    change_xid         bigint NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (bank_account_id, period_start),
    UNIQUE (bank_account_id, sequence)
);
CREATE INDEX statements_changes ON statements (company_id, change_xid, id);
CREATE INDEX statements_journal ON statements (journal_id, period_start, id);
CREATE TRIGGER statements_change_xid BEFORE UPDATE ON statements
    FOR EACH ROW EXECUTE FUNCTION bump_change_xid();

ALTER TABLE statement_lines ADD COLUMN statement_id bigint;

-- Existing lines: daily statements, all open (the next sync closes the ended ones).
INSERT INTO statements (company_id, bank_account_id, journal_id, period, period_start, period_end)
    SELECT DISTINCT ON (l.bank_account_id, l.booking_date) a.company_id, l.bank_account_id, a.journal_id, 'daily',
           l.booking_date, l.booking_date
    FROM statement_lines l JOIN bank_accounts a ON a.id = l.bank_account_id;
UPDATE statement_lines l SET statement_id = s.id
    FROM statements s WHERE s.bank_account_id = l.bank_account_id AND s.period_start = l.booking_date;
CREATE INDEX statement_lines_statement ON statement_lines (statement_id);

-- A change to a line of a closed statement moves its effect to the account's open
-- statement of the current period.
CREATE FUNCTION period_start(p text, d date) RETURNS date LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE p WHEN 'weekly' THEN date_trunc('week', d)::date
                  WHEN 'monthly' THEN date_trunc('month', d)::date
                  ELSE d END
$$;
CREATE FUNCTION period_end(p text, d date) RETURNS date LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE p WHEN 'weekly' THEN (date_trunc('week', d) + interval '6 days')::date
                  WHEN 'monthly' THEN (date_trunc('month', d) + interval '1 month' - interval '1 day')::date
                  ELSE d END
$$;
CREATE FUNCTION carry_correction() RETURNS trigger LANGUAGE plpgsql AS $$
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
    SELECT s.closed_at IS NOT NULL INTO closed FROM statements s WHERE s.id = OLD.statement_id;
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
CREATE TRIGGER statement_lines_correction AFTER UPDATE OF amount, duplicate_confirmed_at OR DELETE ON statement_lines
    FOR EACH ROW EXECUTE FUNCTION carry_correction();

-- A statement regrouped away (its account's period changed while it was open) leaves a
-- tombstone for the change feed, as a removed line does.
CREATE TABLE removed_statements (
    statement_id bigint PRIMARY KEY,
    company_id   uuid NOT NULL,
    journal_id   uuid NOT NULL,
    change_xid   bigint NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    removed_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX removed_statements_changes ON removed_statements (company_id, change_xid, statement_id);
CREATE FUNCTION tombstone_statement() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO removed_statements (statement_id, company_id, journal_id) VALUES (OLD.id, OLD.company_id, OLD.journal_id)
        ON CONFLICT (statement_id) DO UPDATE SET change_xid = EXCLUDED.change_xid, removed_at = EXCLUDED.removed_at;
    RETURN OLD;
END $$;
CREATE TRIGGER statements_tombstone AFTER DELETE ON statements
    FOR EACH ROW EXECUTE FUNCTION tombstone_statement();
-- The horizon is a full feed position: statement tombstones are pruned too.
ALTER TABLE change_feed_horizon ADD COLUMN pruned_kind smallint NOT NULL DEFAULT 2;
