-- The console's sign-ins (issue 17). A session belongs to the API token it was opened
-- with: revoking or expiring the token ends its sessions. Only SHA-256 of a session's
-- secret is stored, as for tokens; the CSRF token is per session.
CREATE TABLE console_sessions (
    id_hash     text PRIMARY KEY,
    token_id    uuid NOT NULL REFERENCES api_tokens(id) ON DELETE CASCADE,
    csrf        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX console_sessions_expires ON console_sessions (expires_at);

-- One-time sign-in links (`banksync demo` prints one): used once, within minutes.
CREATE TABLE console_sign_in_links (
    code_hash   text PRIMARY KEY,
    token_id    uuid NOT NULL REFERENCES api_tokens(id) ON DELETE CASCADE,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);

-- How the console shows a company's dates and amounts (`banksync company set-locale`).
ALTER TABLE companies ADD COLUMN locale text NOT NULL DEFAULT 'en-GB'
    CHECK (locale ~ '^[a-z]{2,3}(-[A-Z]{2})?$');
