-- A line whose bank text held characters Postgres cannot store (U+0000, lone UTF-16
-- surrogates) has them replaced by U+FFFD; this marks every line whose text holds U+FFFD.
ALTER TABLE statement_lines ADD COLUMN text_repaired boolean NOT NULL DEFAULT false;
