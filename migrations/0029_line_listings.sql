-- Rule 8 (re-issued transactions): twins are never merged. For each line of a look-alike
-- group (a flagged line and the lines it resembles, the only lines rule 8 pairs), the last
-- complete listing that held its transaction. Two lines whose transactions were listed
-- together are two transactions: one going never makes the other a re-issue of it.
-- A table of its own, so that recording a listing changes no line (no change-feed entry,
-- kept line sums stay valid) and costs nothing for the lines outside such groups.
CREATE TABLE line_listings (
    line_id     bigint PRIMARY KEY REFERENCES statement_lines (id) ON DELETE CASCADE,
    company_id  uuid NOT NULL,
    sync_run_id uuid NOT NULL,
    listed_at   timestamptz NOT NULL
);
