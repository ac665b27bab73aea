-- The change feed. Every statement line carries the id of the transaction that last
-- changed it (`change_xid`, set on insert by default and on update by a trigger); a removed
-- line leaves a tombstone. The feed lists rows by (change_xid, id), and only those whose
-- transaction is older than every transaction still running (the snapshot's xmin): a
-- transaction that started earlier but commits later can never land behind a cursor
-- already handed out. Tombstones are pruned after the retention period; the newest pruned
-- one's position is remembered, and a cursor from before it is answered 410 Gone.
ALTER TABLE statement_lines
    ADD COLUMN change_xid bigint NOT NULL DEFAULT (pg_current_xact_id()::text::bigint);
CREATE INDEX statement_lines_changes ON statement_lines (company_id, change_xid, id);

CREATE FUNCTION bump_change_xid() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW IS DISTINCT FROM OLD THEN
        NEW.change_xid := pg_current_xact_id()::text::bigint;
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER statement_lines_change_xid BEFORE UPDATE ON statement_lines
    FOR EACH ROW EXECUTE FUNCTION bump_change_xid();

CREATE TABLE removed_lines (
    line_id      bigint PRIMARY KEY,
    company_id   uuid NOT NULL,
    journal_id   uuid NOT NULL,
    change_xid   bigint NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    removed_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX removed_lines_changes ON removed_lines (company_id, change_xid, line_id);

CREATE FUNCTION tombstone_line() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO removed_lines (line_id, company_id, journal_id) VALUES (OLD.id, OLD.company_id, OLD.journal_id)
        ON CONFLICT (line_id) DO UPDATE SET change_xid = EXCLUDED.change_xid, removed_at = EXCLUDED.removed_at;
    RETURN OLD;
END $$;
CREATE TRIGGER statement_lines_tombstone AFTER DELETE ON statement_lines
    FOR EACH ROW EXECUTE FUNCTION tombstone_line();

-- One row: the feed position of the newest pruned removal; a cursor before it may have
-- missed a pruned one.
CREATE TABLE change_feed_horizon (
    id              boolean PRIMARY KEY DEFAULT true CHECK (id),
    pruned_xid      bigint NOT NULL DEFAULT -1,
    pruned_line     bigint NOT NULL DEFAULT -1
);
INSERT INTO change_feed_horizon DEFAULT VALUES;
