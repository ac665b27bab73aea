-- Rule 2 on weak evidence: a new posted line that may be the posting of an open pending
-- transaction (same amount and currency within the days, the only candidate, but no shared
-- words) is proposed for review instead of linked. The pending transaction stays open.
ALTER TABLE pending_transactions ADD COLUMN proposed_line_id bigint;

-- A bookkeeper can undo a link to a pending transaction; the line's history records it.
ALTER TABLE line_events DROP CONSTRAINT line_events_kind_check;
ALTER TABLE line_events ADD CONSTRAINT line_events_kind_check CHECK (kind IN ('updated', 'rekeyed',
    'posted_from_pending', 'flagged', 'duplicate_confirmed', 'duplicate_dismissed', 'review_undone',
    'pending_unlinked', 'gone_at_bank', 'back_at_bank'));
