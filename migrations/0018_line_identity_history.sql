-- Identity that survives the bank, and lines that explain themselves.
--
-- * `fingerprint` is now fixed when a line is first stored (its content identity: booking
--   date, amount, currency, normalised description, counterparty); `occurrence` numbers
--   the lines of an account with the same fingerprint in the order they were first stored
--   (three identical coffees on one day are occurrences 0, 1, 2). The pair is unique per
--   account. Salt Edge ids may change (re-issued, relinked); line ids and this identity do
--   not.
-- * `bank_transaction_id`: the bank's own id (`extra.id`) where the provider gives one: the
--   first key a transaction with an unknown Salt Edge id is matched on.
-- * `created_run_id`: the sync run that first stored the line.
-- * `line_events`: how each line changed after it was first stored.
ALTER TABLE statement_lines
    ADD COLUMN occurrence integer NOT NULL DEFAULT 0,
    ADD COLUMN bank_transaction_id text,
    ADD COLUMN created_run_id uuid;
UPDATE statement_lines l SET occurrence = o.n, created_run_id = l.sync_run_id
    FROM (SELECT id, row_number() OVER (PARTITION BY bank_account_id, fingerprint ORDER BY id) - 1 AS n
          FROM statement_lines) o
    WHERE o.id = l.id;
UPDATE statement_lines SET bank_transaction_id = nullif(btrim(extra->>'id'), '')
    WHERE extra ? 'id' AND jsonb_typeof(extra->'id') IN ('string', 'number');
DROP INDEX statement_lines_fingerprint;
CREATE UNIQUE INDEX statement_lines_identity ON statement_lines (bank_account_id, fingerprint, occurrence);
CREATE INDEX statement_lines_bank_id ON statement_lines (bank_account_id, bank_transaction_id)
    WHERE bank_transaction_id IS NOT NULL;

CREATE TABLE line_events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    company_id   uuid NOT NULL,
    line_id      bigint NOT NULL,
    sync_run_id  uuid,
    -- updated | rekeyed | posted_from_pending | flagged | duplicate_confirmed |
    -- duplicate_dismissed | review_undone
    kind         text NOT NULL CHECK (kind IN ('updated', 'rekeyed', 'posted_from_pending', 'flagged',
                     'duplicate_confirmed', 'duplicate_dismissed', 'review_undone')),
    detail       jsonb NOT NULL DEFAULT '{}',
    at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX line_events_line ON line_events (line_id, id);
