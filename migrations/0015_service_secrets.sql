-- Secrets the service keeps for itself, shared by every replica: `cursor` keys the MAC of
-- the page cursors the API hands out, so a cursor it did not make is refused.
-- gen_random_uuid() draws from Postgres's strong random source (pg_strong_random): two of
-- them give 244 random bits.
CREATE TABLE service_secrets (
    name       text PRIMARY KEY,
    secret     bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO service_secrets (name, secret)
VALUES ('cursor', convert_to(gen_random_uuid()::text || gen_random_uuid()::text, 'UTF8'));
