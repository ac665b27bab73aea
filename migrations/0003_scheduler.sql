-- Daily automatic refresh: every refresh we ask Salt Edge for, and a shared fetch-rate slot.

CREATE TABLE refresh_attempts (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    connection_id  uuid NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    company_id     uuid NOT NULL REFERENCES companies(id),
    requested_at   timestamptz NOT NULL DEFAULT now(),
    -- requested (Salt Edge accepted), refused (406 "not now"), failed (any other error)
    outcome        text NOT NULL CHECK (outcome IN ('requested', 'refused', 'failed')),
    error_class    text
);
CREATE INDEX refresh_attempts_company_time ON refresh_attempts (company_id, requested_at);
CREATE INDEX refresh_attempts_connection_time ON refresh_attempts (connection_id, requested_at);

-- Access terms: at most N fetches of new data per second, shared by every replica. Each
-- fetch takes the next slot of its scope (a provider code, or 'global').
CREATE TABLE fetch_slots (
    scope      text PRIMARY KEY,
    next_slot  timestamptz NOT NULL
);


-- Admin tokens may also read operational data (job history).
ALTER TABLE api_tokens ADD COLUMN admin boolean NOT NULL DEFAULT false;
