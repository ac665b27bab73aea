-- banksync schema. Money is NUMERIC with its currency, never float.
-- Salt Edge ids are kept as text (18-digit decimal strings, never parsed to floats).

CREATE TABLE companies (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- One Salt Edge customer per company ("your Salt Edge account" in the user doc).
CREATE TABLE saltedge_customers (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id   uuid NOT NULL UNIQUE REFERENCES companies(id),
    saltedge_id  text NOT NULL UNIQUE,
    identifier   text NOT NULL UNIQUE,
    email        text,
    phone        text,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE connections (
    id                        uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id                uuid NOT NULL REFERENCES companies(id),
    customer_id               uuid REFERENCES saltedge_customers(id),
    saltedge_id               text NOT NULL UNIQUE,
    provider_code             text NOT NULL,
    provider_name             text NOT NULL DEFAULT '',
    country_code              text NOT NULL DEFAULT '',
    -- active | inactive | disabled (Salt Edge's) | removed (gone at Salt Edge, record kept)
    status                    text NOT NULL DEFAULT 'inactive'
                              CHECK (status IN ('active', 'inactive', 'disabled', 'removed')),
    stage                     text,
    daily_refresh             boolean NOT NULL DEFAULT false,
    consent_id                text,
    consent_expires_at        timestamptz,
    consent_revoked_at        timestamptz,
    saltedge_last_success_at  timestamptz,
    last_synced_at            timestamptz,
    next_refresh_possible_at  timestamptz,
    last_error_class          text,
    last_error_message        text,
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX connections_company ON connections (company_id);

CREATE TABLE journals (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id       uuid NOT NULL REFERENCES companies(id),
    name             text NOT NULL,
    currency         text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    -- Lines booked before this date are not imported.
    sync_start_date  date,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX journals_company ON journals (company_id);

-- A bank account keeps its journal and history even when it disappears from the bank or
-- its connection record is deleted.
CREATE TABLE bank_accounts (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id            uuid NOT NULL REFERENCES companies(id),
    connection_id         uuid REFERENCES connections(id) ON DELETE SET NULL,
    journal_id            uuid NOT NULL REFERENCES journals(id),
    saltedge_id           text NOT NULL UNIQUE,
    name                  text NOT NULL DEFAULT '',
    nature                text NOT NULL DEFAULT '',
    iban                  text,
    account_number        text,
    currency              text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    bank_balance          numeric(38, 10),
    bank_balance_at       timestamptz,
    -- Set at the end of the first complete sync: bank balance minus the posted lines then.
    opening_balance       numeric(38, 10),
    balance_mismatch      numeric(38, 10),
    disappeared_at        timestamptz,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bank_accounts_connection ON bank_accounts (connection_id);
CREATE INDEX bank_accounts_journal ON bank_accounts (journal_id);

CREATE TABLE sync_runs (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id          uuid NOT NULL REFERENCES companies(id),
    connection_id       uuid REFERENCES connections(id) ON DELETE SET NULL,
    trigger             text NOT NULL DEFAULT 'manual',
    status              text NOT NULL DEFAULT 'running'
                        CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    started_at          timestamptz NOT NULL DEFAULT now(),
    finished_at         timestamptz,
    from_id             text,
    pages               integer NOT NULL DEFAULT 0,
    fetched             integer NOT NULL DEFAULT 0,
    inserted            integer NOT NULL DEFAULT 0,
    updated             integer NOT NULL DEFAULT 0,
    skipped_duplicate   integer NOT NULL DEFAULT 0,
    flagged_duplicated  integer NOT NULL DEFAULT 0,
    skipped_before_start integer NOT NULL DEFAULT 0,
    pending_removed     integer NOT NULL DEFAULT 0,
    suspects            integer NOT NULL DEFAULT 0,
    balance_mismatches  jsonb NOT NULL DEFAULT '[]',
    error_class         text,
    error_message       text
);
CREATE INDEX sync_runs_connection ON sync_runs (connection_id, started_at DESC);

-- Lines point at their journal and bank account without per-row foreign keys: those checks
-- cost about a third of import throughput. Integrity holds instead because journals and bank
-- accounts can never be deleted (triggers below) and lines are written only by the sync
-- engine, from ids it has just read.
CREATE TABLE statement_lines (
    id                       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    journal_id               uuid NOT NULL,
    bank_account_id          uuid NOT NULL,
    booking_date             date NOT NULL,
    value_date               date,
    amount                   numeric(38, 10) NOT NULL,
    currency                 text NOT NULL,
    description              text NOT NULL DEFAULT '',
    payee                    text,
    counterparty_iban        text,
    saltedge_transaction_id  text NOT NULL,
    -- The pending transaction this line started as, when it posted under a new id.
    pending_transaction_id   text,
    status                   text NOT NULL CHECK (status IN ('pending', 'posted')),
    fingerprint              text NOT NULL,
    -- Hash of everything stored from Salt Edge: a re-fetch with the same hash changes nothing.
    content_hash             text NOT NULL,
    -- A line with another id but the same fingerprint: flagged for review, not dropped.
    suspect_duplicate_of     bigint,
    extra                    jsonb NOT NULL DEFAULT '{}',
    imported_at              timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now(),
    -- The run that last wrote the line. No foreign key on purpose: it is an audit pointer,
    -- runs may be pruned, and a per-row key check costs ~15% of import throughput.
    sync_run_id              uuid,
    UNIQUE (bank_account_id, saltedge_transaction_id)
);
CREATE INDEX statement_lines_journal_date ON statement_lines (journal_id, booking_date, id);
CREATE INDEX statement_lines_fingerprint ON statement_lines (bank_account_id, fingerprint);
CREATE INDEX statement_lines_pending ON statement_lines (bank_account_id) WHERE status = 'pending';

-- Accounting history is never deleted: journals and bank accounts stay, with their lines.
CREATE FUNCTION banksync_forbid_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows are never deleted (accounting history)', TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END $$;
CREATE TRIGGER journals_never_deleted BEFORE DELETE ON journals
    FOR EACH ROW EXECUTE FUNCTION banksync_forbid_delete();
CREATE TRIGGER bank_accounts_never_deleted BEFORE DELETE ON bank_accounts
    FOR EACH ROW EXECUTE FUNCTION banksync_forbid_delete();
