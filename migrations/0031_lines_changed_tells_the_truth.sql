-- `lines.changed` is sent only when a line was inserted, changed or re-keyed (a sync that
-- only stored a pending transaction changed no line: pending ones are not counted in
-- `updated` any more). Same function as 0023 otherwise.
CREATE OR REPLACE FUNCTION webhook_sync_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = OLD.status OR NEW.status NOT IN ('succeeded', 'failed') THEN
        RETURN NULL;
    END IF;
    IF NEW.status = 'failed' THEN
        PERFORM webhook_emit(NEW.company_id, NEW.connection_id, 'sync.failed',
                             jsonb_build_object('connection_id', NEW.connection_id, 'sync_run_id', NEW.id,
                                                'error_class', NEW.error_class, 'error_message', NEW.error_message));
    END IF;
    IF NEW.inserted + NEW.updated + NEW.rekeyed > 0 THEN
        PERFORM webhook_emit(NEW.company_id, NEW.connection_id, 'lines.changed',
                             jsonb_build_object('connection_id', NEW.connection_id, 'sync_run_id', NEW.id,
                                                'inserted', NEW.inserted, 'updated', NEW.updated,
                                                'rekeyed', NEW.rekeyed,
                                                'journal_ids', (SELECT coalesce(jsonb_agg(DISTINCT a.journal_id), '[]')
                                                                FROM bank_accounts a WHERE a.connection_id = NEW.connection_id),
                                                -- The change feed from just before this run (signed when sent).
                                                'feed_position', (NEW.started_xid::text || '.9.0')));
    END IF;
    RETURN NULL;
END $$;
