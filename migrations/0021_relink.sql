-- The same bank linked again. A Salt Edge account we do not know is matched to an existing
-- bank account of the company that no live connection lists — by IBAN, else by account
-- number (same currency) — and takes it over: its journal mapping and history stay
-- (`relinked_at`; lines imported before are claimed by the new transactions, see
-- ingest::lines). A match only by provider, currency and name (users rename accounts) is
-- a proposal the bookkeeper confirms or rejects through the API; until then the account's
-- transactions wait.
ALTER TABLE bank_accounts
    ADD COLUMN provider_code text,
    ADD COLUMN relinked_at timestamptz,
    ADD COLUMN previous_saltedge_id text;
UPDATE bank_accounts a SET provider_code = c.provider_code FROM connections c WHERE c.id = a.connection_id;

CREATE TABLE account_match_proposals (
    id                     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    company_id             uuid NOT NULL,
    connection_id          uuid NOT NULL,
    saltedge_account_id    text NOT NULL,
    -- The Salt Edge account as listed (name, nature, currency, extra).
    account                jsonb NOT NULL,
    candidate_account_id   uuid NOT NULL,
    status                 text NOT NULL DEFAULT 'proposed' CHECK (status IN ('proposed', 'confirmed', 'rejected')),
    created_at             timestamptz NOT NULL DEFAULT now(),
    decided_at             timestamptz,
    UNIQUE (connection_id, saltedge_account_id)
);
CREATE INDEX account_match_proposals_company ON account_match_proposals (company_id, status, id);
