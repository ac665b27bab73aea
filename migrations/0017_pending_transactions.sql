-- Pending out of the books: journals hold booked transactions only. Pending transactions
-- live in their own table; one that posts is linked to the booked line
-- (statement_lines.pending_transaction_id → pending_transactions.id), one that Salt Edge
-- stops listing expires. Existing pending lines move here; posted lines that started as a
-- pending line get a pending record rebuilt from what the line remembers (its pending
-- Salt Edge id), marked posted.
CREATE TABLE pending_transactions (
    id                       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    company_id               uuid NOT NULL,
    journal_id               uuid NOT NULL,
    bank_account_id          uuid NOT NULL,
    saltedge_transaction_id  text NOT NULL,
    booking_date             date NOT NULL,
    value_date               date,
    amount                   numeric(38, 10) NOT NULL,
    currency                 text NOT NULL,
    description              text NOT NULL DEFAULT '',
    payee                    text,
    extra                    jsonb NOT NULL DEFAULT '{}',
    content_hash             text NOT NULL,
    text_repaired            boolean NOT NULL DEFAULT false,
    state                    text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'posted', 'expired')),
    -- The booked line it became (state = 'posted').
    posted_line_id           bigint,
    first_seen_at            timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now(),
    -- When it posted or expired.
    resolved_at              timestamptz,
    sync_run_id              uuid,
    UNIQUE (bank_account_id, saltedge_transaction_id)
);
CREATE INDEX pending_transactions_open ON pending_transactions (bank_account_id) WHERE posted_line_id IS NULL;
CREATE INDEX pending_transactions_company ON pending_transactions (company_id, booking_date, id);

INSERT INTO pending_transactions (company_id, journal_id, bank_account_id, saltedge_transaction_id, booking_date,
        value_date, amount, currency, description, payee, extra, content_hash, text_repaired, first_seen_at, updated_at, sync_run_id)
    SELECT company_id, journal_id, bank_account_id, saltedge_transaction_id, booking_date, value_date, amount, currency,
           description, payee, extra, content_hash, text_repaired, imported_at, updated_at, sync_run_id
    FROM statement_lines WHERE status = 'pending';

INSERT INTO pending_transactions (company_id, journal_id, bank_account_id, saltedge_transaction_id, booking_date,
        value_date, amount, currency, description, payee, content_hash, state, posted_line_id, first_seen_at, resolved_at)
    SELECT company_id, journal_id, bank_account_id, pending_transaction_id, booking_date, value_date, amount, currency,
           description, payee, 'migrated', 'posted', id, imported_at, updated_at
    FROM statement_lines WHERE status = 'posted' AND pending_transaction_id IS NOT NULL
    ON CONFLICT (bank_account_id, saltedge_transaction_id) DO NOTHING;

DELETE FROM statement_lines WHERE status = 'pending';
ALTER TABLE statement_lines RENAME COLUMN pending_transaction_id TO pending_saltedge_id;
ALTER TABLE statement_lines ADD COLUMN pending_transaction_id bigint;
UPDATE statement_lines l SET pending_transaction_id = p.id
    FROM pending_transactions p WHERE p.posted_line_id = l.id;
ALTER TABLE statement_lines DROP COLUMN pending_saltedge_id;
DROP INDEX IF EXISTS statement_lines_pending;
ALTER TABLE statement_lines DROP COLUMN status;
