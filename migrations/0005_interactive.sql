-- The bank's pending question on an interactive stage (from the interactive callback):
-- shown to the user by the frontend as data (the HTML is the bank's, never rendered by us),
-- answered through the API. Cleared when the attempt moves on.
ALTER TABLE connections
    ADD COLUMN interactive_html text,
    ADD COLUMN interactive_fields_names jsonb,
    ADD COLUMN interactive_fields_options jsonb,
    ADD COLUMN interactive_expires_at timestamptz;
