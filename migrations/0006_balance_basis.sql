-- How an account's bank balance can be compared with its journal (see sync-engine
-- balance.rs): the provider's balance type, and the last check's basis and reason.
ALTER TABLE bank_accounts
    ADD COLUMN balance_type text,
    ADD COLUMN balance_check text,
    ADD COLUMN balance_note text;
