-- The fetch budget as a sliding window (issue 31): Salt Edge allows "up to two fetches of
-- new data per second", which two requests at once satisfy as long as no third follows
-- within the second. A scope now keeps the times of its latest slots (`recent`, ascending,
-- a few more than the window holds so that a slot given back leaves enough history), and a
-- new slot comes when the window (1 s plus a 20 % margin) holds fewer than `k` of them.
-- `next_slot` stays as the time the next slot is free (for operators and older readers);
-- the per-company connect-session quotas (`connect:<company>`) keep using it alone.
ALTER TABLE fetch_slots ADD COLUMN recent timestamptz[] NOT NULL DEFAULT '{}';

-- When a scope whose latest slots are `recent` has its next slot free: when the k-th latest
-- leaves the window of `w` seconds.
CREATE FUNCTION fetch_slot_free_at(recent timestamptz[], k int, w float8) RETURNS timestamptz
LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN cardinality(recent) >= k
              THEN recent[cardinality(recent) - k + 1] + make_interval(secs => w)
              ELSE '-infinity'::timestamptz END
$$;

-- Takes a slot of `p_scope` for a budget of `k` per `w` seconds, atomically across replicas
-- (the row lock is the queue).
-- * Interactive callers (`yielding` false) take the next slot when it is at most `max_wait`
--   away: `taken` is its time (the caller waits until then).
-- * Yielding callers (background jobs, a company that has just linked) take a slot only
--   when one is free now AND `reserve` slots of the window stay free for interactive
--   callers; they never reserve ahead of anyone.
-- Refused: `taken` is NULL and `away` says in how many seconds to try again.
CREATE FUNCTION take_fetch_slot(p_scope text, k int, w float8, max_wait float8,
                                yielding boolean, reserve int,
                                OUT taken timestamptz, OUT away float8)
LANGUAGE plpgsql AS $$
DECLARE
  r timestamptz[];
  n int;
  t timestamptz;
  now_ timestamptz;
  busy int;
  excess int;
BEGIN
  INSERT INTO fetch_slots (scope, next_slot) VALUES (p_scope, '-infinity')
  ON CONFLICT (scope) DO NOTHING;
  SELECT s.recent INTO r FROM fetch_slots s WHERE s.scope = p_scope FOR UPDATE;
  now_ := clock_timestamp();
  n := cardinality(r);
  IF yielding THEN
    SELECT count(*) INTO busy FROM unnest(r) x WHERE x > now_ - make_interval(secs => w);
    excess := busy + 1 + least(reserve, k - 1) - k;
    IF excess > 0 THEN
      -- Free enough when the `excess`-th oldest slot in the window leaves it.
      taken := NULL;
      away := greatest(extract(epoch FROM r[n - busy + excess] + make_interval(secs => w) - now_)::float8, 0.01);
      RETURN;
    END IF;
    t := now_;
  ELSE
    t := greatest(now_, fetch_slot_free_at(r, k, w));
    IF t > now_ + make_interval(secs => max_wait) THEN
      taken := NULL;
      away := greatest(extract(epoch FROM t - now_)::float8 - max_wait, 0.01);
      RETURN;
    END IF;
  END IF;
  -- Kept ascending (a yielding slot taken now may come before a reservation ahead).
  r := (ARRAY(SELECT x FROM unnest(r || t) x ORDER BY x))[greatest(1, n + 2 - (k + 4)):];
  UPDATE fetch_slots SET recent = r, next_slot = fetch_slot_free_at(r, k, w) WHERE scope = p_scope;
  taken := t;
  away := extract(epoch FROM t - now_)::float8;
END
$$;
