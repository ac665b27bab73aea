-- A line remembers the digest of the transaction's JSON as Salt Edge sent it (SHA-256,
-- first 16 bytes). A re-sync that receives the same bytes again knows the line is
-- unchanged without parsing the item; NULL (lines stored before this column) means "parse
-- and compare the content hash", as before.
ALTER TABLE statement_lines ADD COLUMN raw_digest bytea;
