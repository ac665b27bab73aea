-- Rule 2 on weak evidence: a new posted line that may be the posting of an open pending
-- transaction (same amount and currency within the days, the only candidate, but no shared
-- words) is proposed for review instead of linked. The pending transaction stays open.
ALTER TABLE pending_transactions ADD COLUMN proposed_line_id bigint;
