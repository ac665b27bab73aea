-- Tokens: company tokens act for one company; operator tokens read operational data and
-- never a company's. Both may expire; both can be revoked.
ALTER TABLE api_tokens ADD COLUMN kind text NOT NULL DEFAULT 'company' CHECK (kind IN ('company', 'operator'));
ALTER TABLE api_tokens ADD COLUMN expires_at timestamptz;
ALTER TABLE api_tokens ALTER COLUMN company_id DROP NOT NULL;
UPDATE api_tokens SET kind = 'operator', company_id = NULL WHERE admin;
ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_kind_company CHECK ((kind = 'company') = (company_id IS NOT NULL));

-- Every state-changing API call and admin command: who, what, when, result.
CREATE TABLE audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    token_id    uuid,
    company_id  uuid,
    actor       text NOT NULL,
    action      text NOT NULL,
    status      integer,
    detail      text
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_company ON audit_log (company_id, at);
