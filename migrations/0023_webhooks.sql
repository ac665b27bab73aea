-- Outbound webhooks (Standard Webhooks): a company's endpoints, the outbox of events and
-- one delivery per (event, endpoint). An event and its deliveries are written in the same
-- transaction as the change that caused it (`webhook_emit`, called by the triggers below
-- and by the engine); deliveries go out at least once, in order per (endpoint, connection).
CREATE TABLE webhook_endpoints (
    id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id             uuid NOT NULL REFERENCES companies(id),
    url                    text NOT NULL,
    description            text NOT NULL DEFAULT '',
    -- Event kinds delivered; empty: every kind.
    events                 text[] NOT NULL DEFAULT '{}',
    -- `whsec_…`; shown once when made or rotated. The previous one keeps signing (both
    -- signatures are sent) until previous_secret_until.
    secret                 text NOT NULL,
    previous_secret        text,
    previous_secret_until  timestamptz,
    enabled                boolean NOT NULL DEFAULT true,
    disabled_at            timestamptz,
    disabled_reason        text,
    -- The first failed attempt since the last success: failing for
    -- `webhooks.disable_after_hours` disables the endpoint.
    failing_since          timestamptz,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_company ON webhook_endpoints (company_id);

CREATE TABLE webhook_events (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    company_id     uuid NOT NULL,
    connection_id  uuid,
    kind           text NOT NULL,
    -- The delivered body: {"type", "timestamp", "data"}.
    payload        jsonb NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_events_created ON webhook_events (created_at);

CREATE TABLE webhook_deliveries (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id         bigint NOT NULL REFERENCES webhook_events(id) ON DELETE CASCADE,
    endpoint_id      uuid NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    company_id       uuid NOT NULL,
    -- Deliveries with the same key go out one at a time, oldest first: the connection, or
    -- the company for company-wide events.
    order_key        uuid NOT NULL,
    state            text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    -- A replica sending it holds it until then; a replica that dies lets it go.
    leased_until     timestamptz,
    last_attempt_at  timestamptz,
    last_status      integer,
    last_error       text,
    delivered_at     timestamptz,
    UNIQUE (event_id, endpoint_id)
);
CREATE INDEX webhook_deliveries_queue ON webhook_deliveries (endpoint_id, order_key, id) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_log ON webhook_deliveries (endpoint_id, id);

-- Consent reminders already sent, so each threshold fires once per consent.
CREATE TABLE consent_reminders (
    connection_id       uuid NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    consent_expires_at  timestamptz NOT NULL,
    days                integer NOT NULL,
    PRIMARY KEY (connection_id, consent_expires_at, days)
);

-- One event, fanned out to the company's enabled endpoints that want its kind.
CREATE FUNCTION webhook_emit(p_company uuid, p_connection uuid, p_kind text, p_data jsonb)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    ev bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.company_id = p_company AND e.enabled
                   AND (e.events = '{}' OR p_kind = ANY (e.events))) THEN
        RETURN NULL;
    END IF;
    INSERT INTO webhook_events (company_id, connection_id, kind, payload)
    VALUES (p_company, p_connection, p_kind,
            jsonb_build_object('type', p_kind,
                               'timestamp', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                               'data', p_data))
    RETURNING id INTO ev;
    INSERT INTO webhook_deliveries (event_id, endpoint_id, company_id, order_key)
    SELECT ev, e.id, p_company, coalesce(p_connection, p_company)
    FROM webhook_endpoints e
    WHERE e.company_id = p_company AND e.enabled AND (e.events = '{}' OR p_kind = ANY (e.events));
    RETURN ev;
END $$;

-- Connection events, from the row's change itself (whatever code path made it).
CREATE FUNCTION webhook_connection_events() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    data jsonb := jsonb_build_object('connection_id', NEW.id, 'status', NEW.status,
                                     'provider_code', NEW.provider_code, 'provider_name', NEW.provider_name,
                                     'error_class', NEW.last_error_class,
                                     'consent_expires_at', NEW.consent_expires_at,
                                     'consent_revoked_at', NEW.consent_revoked_at);
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM webhook_emit(NEW.company_id, NEW.id, 'connection.status_changed',
                             data || jsonb_build_object('previous_status', NULL));
        RETURN NULL;
    END IF;
    IF NEW.status IS DISTINCT FROM OLD.status THEN
        PERFORM webhook_emit(NEW.company_id, NEW.id, 'connection.status_changed',
                             data || jsonb_build_object('previous_status', OLD.status));
    END IF;
    IF NEW.consent_revoked_at IS NOT NULL AND OLD.consent_revoked_at IS NULL THEN
        PERFORM webhook_emit(NEW.company_id, NEW.id, 'connection.needs_reconnect',
                             data || jsonb_build_object('reason', 'consent_revoked'));
    ELSIF NEW.last_error_class IS DISTINCT FROM OLD.last_error_class
          AND NEW.last_error_class IN ('InvalidCredentials', 'InvalidInteractiveCredentials',
                                       'AispConsentExpired', 'AispConsentRevoked', 'AispConsentNotFound') THEN
        PERFORM webhook_emit(NEW.company_id, NEW.id, 'connection.needs_reconnect',
                             data || jsonb_build_object('reason',
                                 CASE WHEN NEW.last_error_class LIKE 'Invalid%' THEN 'invalid_credentials'
                                      WHEN NEW.last_error_class = 'AispConsentExpired' THEN 'consent_expired'
                                      ELSE 'consent_revoked' END));
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER connections_webhooks AFTER INSERT OR UPDATE ON connections
    FOR EACH ROW EXECUTE FUNCTION webhook_connection_events();

-- Sync runs that end: `sync.failed`, and `lines.changed` when lines were written.
CREATE FUNCTION webhook_sync_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = OLD.status OR NEW.status NOT IN ('succeeded', 'failed') THEN
        RETURN NULL;
    END IF;
    IF NEW.status = 'failed' THEN
        PERFORM webhook_emit(NEW.company_id, NEW.connection_id, 'sync.failed',
                             jsonb_build_object('connection_id', NEW.connection_id, 'sync_run_id', NEW.id,
                                                'error_class', NEW.error_class, 'error_message', NEW.error_message));
    END IF;
    IF NEW.inserted + NEW.updated > 0 THEN
        PERFORM webhook_emit(NEW.company_id, NEW.connection_id, 'lines.changed',
                             jsonb_build_object('connection_id', NEW.connection_id, 'sync_run_id', NEW.id,
                                                'inserted', NEW.inserted, 'updated', NEW.updated,
                                                'journal_ids', (SELECT coalesce(jsonb_agg(DISTINCT a.journal_id), '[]')
                                                                FROM bank_accounts a WHERE a.connection_id = NEW.connection_id),
                                                -- The change feed from just before this run (signed when sent).
                                                'feed_position', (NEW.started_xid::text || '.9.0')));
    END IF;
    RETURN NULL;
END $$;
ALTER TABLE sync_runs ADD COLUMN started_xid bigint NOT NULL DEFAULT (pg_current_xact_id()::text::bigint);
CREATE TRIGGER sync_runs_webhooks AFTER UPDATE OF status ON sync_runs
    FOR EACH ROW EXECUTE FUNCTION webhook_sync_events();
