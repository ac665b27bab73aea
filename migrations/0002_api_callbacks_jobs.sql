-- API tokens, the provider catalogue, the callback inbox and the job queue.

-- Tokens are stored as SHA-256 hashes; the token itself is shown once, at creation.
CREATE TABLE api_tokens (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id    uuid NOT NULL REFERENCES companies(id),
    token_hash    text NOT NULL UNIQUE,
    name          text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);

-- Local copy of Salt Edge's providers, refreshed daily; the institutions list reads it.
CREATE TABLE providers (
    code                text PRIMARY KEY,
    name                text NOT NULL,
    country_code        text NOT NULL,
    mode                text NOT NULL DEFAULT '',
    status              text NOT NULL DEFAULT 'active',
    interactive         boolean NOT NULL DEFAULT false,
    automatic_fetch     boolean NOT NULL DEFAULT false,
    refresh_timeout     integer NOT NULL DEFAULT 60,
    max_consent_days    integer,
    fake                boolean NOT NULL DEFAULT false,
    refreshed_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX providers_country ON providers (country_code, name);

CREATE TABLE countries (
    code                text PRIMARY KEY,
    name                text NOT NULL,
    refresh_start_time  integer
);

-- Every verified callback, stored before anything else happens. `identity` (a hash of kind
-- and raw body) makes a redelivery a no-op.
CREATE TABLE callback_inbox (
    id                      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    identity                text NOT NULL UNIQUE,
    kind                    text NOT NULL,
    connection_saltedge_id  text,
    event_time              timestamptz,
    body                    text NOT NULL,
    received_at             timestamptz NOT NULL DEFAULT now(),
    processed_at            timestamptz,
    error                   text
);
CREATE INDEX callback_inbox_unprocessed ON callback_inbox (id) WHERE processed_at IS NULL;

-- The newest callback applied to a connection: older ones arriving late do not move it back.
ALTER TABLE connections ADD COLUMN last_event_at timestamptz;

-- Durable jobs, claimed with FOR UPDATE SKIP LOCKED under a lease.
CREATE TABLE jobs (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind           text NOT NULL,
    payload        jsonb NOT NULL DEFAULT '{}',
    -- At most one unfinished job per key (e.g. one pending sync per connection).
    dedupe_key     text,
    status         text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'done', 'failed')),
    attempts       integer NOT NULL DEFAULT 0,
    max_attempts   integer NOT NULL DEFAULT 5,
    run_after      timestamptz NOT NULL DEFAULT now(),
    lease_until    timestamptz,
    locked_by      text,
    last_error     text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz
);
CREATE INDEX jobs_ready ON jobs (run_after, id) WHERE status IN ('queued', 'running');
-- At most one *queued* job per key: a sync asked for while one runs still happens after it.
CREATE UNIQUE INDEX jobs_dedupe ON jobs (dedupe_key) WHERE dedupe_key IS NOT NULL AND status = 'queued';
