-- One bad record never blocks a connection: a transaction or account that cannot be parsed
-- or stored is kept here with its raw JSON (as text: it may hold what jsonb refuses) and
-- the reason; every other record of the connection imports.
CREATE TABLE quarantined_records (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sync_run_id  uuid NOT NULL REFERENCES sync_runs(id) ON DELETE CASCADE,
    kind         text NOT NULL CHECK (kind IN ('transaction', 'account')),
    saltedge_id  text,
    raw          text NOT NULL,
    reason       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX quarantined_records_run ON quarantined_records (sync_run_id);
ALTER TABLE sync_runs ADD COLUMN quarantined integer NOT NULL DEFAULT 0;

-- Currency codes outside ISO 4217 (crypto, four letters) are stored as given.
ALTER TABLE journals DROP CONSTRAINT journals_currency_check;
ALTER TABLE journals ADD CONSTRAINT journals_currency_check CHECK (currency ~ '^[A-Z0-9]{2,12}$');
ALTER TABLE bank_accounts DROP CONSTRAINT bank_accounts_currency_check;
ALTER TABLE bank_accounts ADD CONSTRAINT bank_accounts_currency_check CHECK (currency ~ '^[A-Z0-9]{2,12}$');
