-- Duplicates as Salt Edge defines them. A line re-keyed to the id under which the bank
-- re-issued its transaction remembers the old id; a bookkeeper's decision on a flagged
-- look-alike is recorded (confirmed: marked `duplicated` at Salt Edge and out of the
-- journal; dismissed: the flag stands down). Either can be undone.
ALTER TABLE statement_lines
    ADD COLUMN rekeyed_from text,
    ADD COLUMN rekeyed_at timestamptz,
    ADD COLUMN duplicate_confirmed_at timestamptz,
    ADD COLUMN duplicate_dismissed_at timestamptz;
ALTER TABLE sync_runs ADD COLUMN rekeyed integer NOT NULL DEFAULT 0;
