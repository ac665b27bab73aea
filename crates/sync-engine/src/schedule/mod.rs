//! Daily automatic refresh inside Salt Edge's access terms.
//!
//! A connection is refreshed by us only when every rule holds ([`decide`]):
//! daily refresh on; status active (`InvalidCredentials` makes it inactive until the user
//! updates credentials); provider not in `file` mode; its last attempt finished; the
//! provider's refresh timeout (`next_refresh_possible_at`) passed; local time in the
//! provider country's capital inside the window (02:00–06:00 by default); no successful
//! fetch for this end user (company) in the last 20 hours (one per night); at most two
//! retries after failures in that time; and after `ProviderUnavailable`, a backoff that
//! doubles per failure. Every fetch also takes a slot from the shared limiter
//! ([`crate::schedule::fetch_limit`]) so that all replicas together stay under 2 per second.
//!
//! Salt Edge refreshes qualifying connections itself at night and posts callbacks; the
//! scheduler's tick also lists each customer's connections and queues a catch-up sync where
//! Salt Edge's last success is newer than our last sync (a callback was missed).

use chrono::{DateTime, Duration, Timelike, Utc};
use chrono_tz::Tz;
use saltedge_client::models::{AttemptOutcome, AttemptRequest};
use saltedge_client::{Client, ErrorClass, FetchPriority};
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::Result;
use crate::{connections, jobs};

pub mod fetch_limit;

#[derive(Debug, Clone)]
pub struct ScheduleConfig {
    pub window_start_hour: u32,
    pub window_end_hour: u32,
    pub max_retries_per_day: i64,
    /// First wait after `ProviderUnavailable`; doubles with each failure.
    pub unavailable_backoff: Duration,
    /// Fetches of new data per second across all replicas.
    pub fetches_per_second: u32,
    /// The limit's scope: one budget for everything (default: the client's shared fetch gate,
    /// [`crate::schedule::fetch_limit::PgFetchGate`], spaces refreshes and connect sessions alike), or
    /// one per provider, taken here for refreshes.
    pub limit_per_provider: bool,
    /// How often the tick runs.
    pub tick: std::time::Duration,
    /// The longest a fetch waits for its slot; a slot further away re-queues the job for
    /// that time instead of holding a worker.
    pub fetch_wait_max: std::time::Duration,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            window_start_hour: 2,
            window_end_hour: 6,
            max_retries_per_day: 2,
            unavailable_backoff: Duration::minutes(30),
            fetches_per_second: 2,
            limit_per_provider: false,
            tick: std::time::Duration::from_secs(300),
            fetch_wait_max: fetch_limit::DEFAULT_MAX_WAIT,
        }
    }
}

/// What the scheduler knows about one connection.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Candidate {
    pub connection_id: Uuid,
    pub company_id: Uuid,
    pub provider_code: String,
    pub country_code: String,
    pub status: crate::store::status::ConnectionStatus,
    pub daily_refresh: bool,
    pub provider_mode: Option<String>,
    pub stage: Option<String>,
    pub next_refresh_possible_at: Option<DateTime<Utc>>,
    pub last_error_class: Option<String>,
    /// Refreshes Salt Edge accepted for this company in the last 20 hours (not failed).
    pub company_fetches: i64,
    /// Salt Edge fetched this connection itself (or any fetch succeeded) in the last 20 hours.
    pub saltedge_fetched: bool,
    /// Failed or refused refreshes of this connection in the last 20 hours.
    pub failures: i64,
    pub last_failure_at: Option<DateTime<Utc>>,
    pub last_failure_class: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Due,
    DailyRefreshOff,
    Inactive,
    CredentialsInvalid,
    FileProvider,
    AttemptRunning,
    RefreshTimeout,
    OutsideWindow,
    FetchedToday,
    RetriesUsed,
    BackingOff,
}

/// The IANA zone of a country's capital; unknown countries use UTC (the guide: "in certain
/// cases the automatic fetching time is from 2AM to 6AM UTC").
/// Countries with a known capital zone (others use UTC).
const KNOWN_COUNTRIES: &[&str] = &[
    "DE", "GB", "FR", "ES", "IT", "NL", "BE", "AT", "PL", "RO", "MD", "UA", "PT", "IE", "CZ", "US",
    "CA", "JP", "AU",
];

/// (known countries inside the refresh window at `now`, whether UTC is inside it): lets the
/// due query read only connections whose capital is in its night.
fn countries_in_window(now: DateTime<Utc>, cfg: &ScheduleConfig) -> (Vec<String>, bool) {
    let inside = |tz: Tz| {
        let h = now.with_timezone(&tz).hour();
        h >= cfg.window_start_hour && h < cfg.window_end_hour
    };
    let known = KNOWN_COUNTRIES
        .iter()
        .filter(|c| inside(capital_zone(c)))
        .map(|c| c.to_string())
        .collect();
    (known, inside(chrono_tz::UTC))
}

pub fn capital_zone(country: &str) -> Tz {
    use chrono_tz::*;
    match country {
        "DE" => Europe::Berlin,
        "GB" => Europe::London,
        "FR" => Europe::Paris,
        "ES" => Europe::Madrid,
        "IT" => Europe::Rome,
        "NL" => Europe::Amsterdam,
        "BE" => Europe::Brussels,
        "AT" => Europe::Vienna,
        "PL" => Europe::Warsaw,
        "RO" => Europe::Bucharest,
        "MD" => Europe::Chisinau,
        "UA" => Europe::Kyiv,
        "PT" => Europe::Lisbon,
        "IE" => Europe::Dublin,
        "CZ" => Europe::Prague,
        "US" => America::New_York,
        "CA" => America::Toronto,
        "JP" => Asia::Tokyo,
        "AU" => Australia::Sydney,
        _ => UTC,
    }
}

pub fn decide(c: &Candidate, now: DateTime<Utc>, cfg: &ScheduleConfig) -> Verdict {
    if !c.daily_refresh {
        return Verdict::DailyRefreshOff;
    }
    if c.status != crate::store::status::ConnectionStatus::Active {
        return if c.last_error_class.as_deref() == Some("InvalidCredentials") {
            Verdict::CredentialsInvalid
        } else {
            Verdict::Inactive
        };
    }
    if c.provider_mode.as_deref() == Some("file") {
        return Verdict::FileProvider;
    }
    if c.stage.as_deref().is_some_and(|s| s != "finish") {
        return Verdict::AttemptRunning;
    }
    if c.next_refresh_possible_at.is_some_and(|t| t > now) {
        return Verdict::RefreshTimeout;
    }
    let local_hour = now.with_timezone(&capital_zone(&c.country_code)).hour();
    if local_hour < cfg.window_start_hour || local_hour >= cfg.window_end_hour {
        return Verdict::OutsideWindow;
    }
    if c.company_fetches >= 1 || c.saltedge_fetched {
        return Verdict::FetchedToday;
    }
    if c.failures > cfg.max_retries_per_day {
        return Verdict::RetriesUsed;
    }
    if c.last_failure_class.as_deref() == Some("ProviderUnavailable") {
        let wait = cfg.unavailable_backoff * 2i32.pow(c.failures.clamp(1, 8) as u32 - 1);
        if c.last_failure_at.is_some_and(|t| t + wait > now) {
            return Verdict::BackingOff;
        }
    }
    Verdict::Due
}

pub async fn candidates(pool: &PgPool) -> Result<Vec<Candidate>> {
    candidates_where(pool, None, Utc::now(), None).await
}

/// All connections, or just `only`, as of `now`. A day is the 20 hours before `now`. With
/// `due_under`, only connections that can be due under that schedule are read: daily
/// refresh on, active, past their refresh timeout, not fetched by Salt Edge in the last 20
/// hours, and in a country whose capital is inside the window now (the
/// `connections_refresh_candidates` index, migration 0041: one range per such country).
async fn candidates_where<'e>(
    db: impl sqlx::PgExecutor<'e>,
    only: Option<Uuid>,
    now: DateTime<Utc>,
    due_under: Option<&ScheduleConfig>,
) -> Result<Vec<Candidate>> {
    let maybe_due = due_under.is_some();
    let (in_window, utc_inside) = due_under
        .map(|cfg| countries_in_window(now, cfg))
        .unwrap_or_default();
    let known: Vec<String> = KNOWN_COUNTRIES.iter().map(|c| c.to_string()).collect();
    Ok(sqlx::query_as!(
        Candidate,
        r#"SELECT c.id AS connection_id, c.company_id, c.provider_code, c.country_code, c.status AS "status: crate::store::status::ConnectionStatus", c.daily_refresh,
                p.mode AS "provider_mode?", c.stage, c.next_refresh_possible_at, c.last_error_class,
                (SELECT count(*) FROM refresh_attempts r WHERE r.company_id = c.company_id AND r.outcome = 'requested'
                    AND r.requested_at > $2::timestamptz - interval '20 hours') AS "company_fetches!",
                (coalesce(c.saltedge_last_success_at > $2::timestamptz - interval '20 hours', false)
                 OR (NOT c.saltedge_auto_fetch_failed
                     AND coalesce(c.saltedge_auto_fetch_at > $2::timestamptz - interval '20 hours', false))) AS "saltedge_fetched!",
                (SELECT count(*) FROM refresh_attempts r WHERE r.connection_id = c.id AND r.outcome <> 'requested'
                    AND r.requested_at > $2::timestamptz - interval '20 hours')
                  + CASE WHEN c.saltedge_auto_fetch_failed
                          AND c.saltedge_auto_fetch_at > $2::timestamptz - interval '20 hours' THEN 1 ELSE 0 END AS "failures!",
                f.requested_at AS "last_failure_at?", f.error_class AS "last_failure_class?"
         FROM connections c
         LEFT JOIN providers p ON p.code = c.provider_code
         LEFT JOIN LATERAL (SELECT requested_at, error_class FROM refresh_attempts r
                            WHERE r.connection_id = c.id AND r.outcome <> 'requested'
                            ORDER BY requested_at DESC LIMIT 1) f ON true
         WHERE c.status <> 'removed' AND ($1::uuid IS NULL OR c.id = $1)
           AND (NOT $3 OR (c.daily_refresh AND c.status = 'active'
                           AND (c.next_refresh_possible_at IS NULL OR c.next_refresh_possible_at <= $2)
                           AND coalesce(c.saltedge_last_success_at, '-infinity'::timestamptz) <= $2::timestamptz - interval '20 hours'
                           AND (c.country_code = ANY($4) OR ($5 AND NOT c.country_code = ANY($6)))))"#,
        only,
        now,
        maybe_due,
        &in_window,
        utc_inside,
        &known
    )
    .fetch_all(db)
    .await?)
}

/// The advisory lock key that lets one scheduler tick run at a time across replicas.
const TICK_LOCK: i64 = 0x6261_6e6b_7379_6e63; // "banksync"

/// One scheduler pass: queue due refreshes, catch-up listings and syncs, retention and the
/// daily catalogue refresh. One tick runs at a time across replicas (a tick that finds
/// another running returns `Ok(None)` at once). Returns how many refreshes it queued.
pub async fn tick(
    pool: &PgPool,
    client: &Client,
    cfg: &ScheduleConfig,
    now: DateTime<Utc>,
) -> Result<usize> {
    Ok(tick_once(pool, client, cfg, now).await?.unwrap_or(0))
}

/// [`tick`], saying whether it ran (`None`: another replica's tick holds the lock).
pub async fn tick_once(
    pool: &PgPool,
    _client: &Client,
    cfg: &ScheduleConfig,
    now: DateTime<Utc>,
) -> Result<Option<usize>> {
    let mut lock_conn = pool.acquire().await?;
    let got: bool = sqlx::query_scalar!(r#"SELECT pg_try_advisory_lock($1) AS "got!""#, TICK_LOCK)
        .fetch_one(&mut *lock_conn)
        .await?;
    if !got {
        return Ok(None);
    }
    let result = tick_locked(pool, cfg, now).await;
    let _ = sqlx::query_scalar!("SELECT pg_advisory_unlock($1)", TICK_LOCK)
        .fetch_one(&mut *lock_conn)
        .await;
    result.map(Some)
}

/// How many customers a tick lists so that each is listed once a day.
fn listings_per_tick(customers: i64, tick: std::time::Duration) -> i64 {
    let ticks_per_day = (86_400.0 / tick.as_secs_f64().max(1.0)).max(1.0);
    ((customers as f64 / ticks_per_day).ceil() as i64).max(1)
}

/// Catch-up syncs one tick queues at most (the rest the next ticks).
const CATCH_UP_PER_TICK: i64 = 5000;

/// Connections behind one tick reads at most, queued syncs or not: a tick's cost stays
/// bounded when a restore or an outage leaves every connection behind (200,000 took
/// 0.5 s). The first ones (by id) leave the set as their syncs run, so the rest come up.
const CATCH_UP_SCAN: i64 = 20_000;

/// A tick stops queueing catch-up batches once it has run this long (the rest the next
/// ticks): a tick's length stays bounded whatever the machine and however many are behind.
const CATCH_UP_BUDGET: std::time::Duration = std::time::Duration::from_millis(400);

/// A tick slower than this logs how long each of its parts took.
const SLOW_TICK: std::time::Duration = std::time::Duration::from_millis(500);

async fn tick_locked(pool: &PgPool, cfg: &ScheduleConfig, now: DateTime<Utc>) -> Result<usize> {
    let started = std::time::Instant::now();
    // Salt Edge's own view, for lost callbacks: each customer's connections are listed at
    // most once a day, a slice per tick, by jobs that take fetch-limit slots.
    let customers: i64 = sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM saltedge_customers"#)
        .fetch_one(pool)
        .await?;
    let due: Vec<String> = sqlx::query_scalar!("SELECT saltedge_id FROM saltedge_customers WHERE listed_at IS NULL OR listed_at <= $1::timestamptz - interval '1 day'
         ORDER BY listed_at NULLS FIRST LIMIT $2", now, listings_per_tick(customers, cfg.tick))
    .fetch_all(pool)
    .await?;
    // One statement for the slice's jobs and one for their marks, whatever its size.
    let listings: Vec<jobs::ListCustomer> = due
        .iter()
        .map(|c| jobs::ListCustomer {
            customer_id: c.clone(),
        })
        .collect();
    jobs::queue_all(pool, &listings).await?;
    sqlx::query!(
        "UPDATE saltedge_customers SET listed_at = $2 WHERE saltedge_id = ANY($1)",
        &due,
        now
    )
    .execute(pool)
    .await?;
    let listed = started.elapsed();
    // Connections behind Salt Edge with no sync queued. The queued syncs are subtracted as
    // a set (a hashed EXCEPT), not probed per connection: after Salt Edge's nightly run
    // every connection is behind until its sync runs, and a per-row probe planned on stale
    // statistics took 13.6 s at 20,000 connections. Their syncs are queued in batches (a
    // statement per batch, not three per connection), at most `CATCH_UP_PER_TICK` a tick and
    // no more batches once the tick has run `CATCH_UP_BUDGET` (the others the next ticks; no
    // sort: every one is taken within a few ticks).
    // At most `CATCH_UP_SCAN` connections behind are read a tick.
    // Both sides read partial indexes: `connections_behind` (migration 0039, the same
    // predicate) and `jobs_dedupe` (queued jobs with a key), never whole tables.
    let behind: Vec<(Uuid, Uuid)> = sqlx::query!(
        r#"SELECT c.company_id, c.id FROM connections c WHERE c.id IN (
             SELECT id FROM (SELECT id FROM connections WHERE status = 'active'
               AND (saltedge_last_success_at AT TIME ZONE 'UTC')
                   >= date_trunc('second', coalesce(last_sync_started_at, last_synced_at, '-infinity'::timestamptz) AT TIME ZONE 'UTC')
               LIMIT $2) first_behind
             EXCEPT
             SELECT substr(dedupe_key, 6)::uuid FROM jobs
             WHERE dedupe_key IS NOT NULL AND status = 'queued' AND starts_with(dedupe_key, 'sync:'))
           LIMIT $1"#,
        CATCH_UP_PER_TICK,
        CATCH_UP_SCAN
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|r| (r.company_id, r.id))
    .collect();
    let found_behind = started.elapsed();
    let mut catch_ups = 0;
    for chunk in behind.chunks(500) {
        // At least one batch a tick, however slow the tick's start was.
        if catch_ups > 0 && started.elapsed() > CATCH_UP_BUDGET {
            break;
        }
        jobs::queue_syncs(pool, chunk, "catch_up").await?;
        catch_ups += chunk.len();
    }
    let caught_up = started.elapsed();

    let mut queued = 0;
    let candidates = candidates_where(pool, None, now, Some(cfg)).await?;
    let found_candidates = (started.elapsed(), candidates.len());
    for c in candidates {
        if decide(&c, now, cfg) == Verdict::Due
            && jobs::queue(
                pool,
                &jobs::RefreshConnection {
                    connection_id: c.connection_id,
                },
            )
            .await?
            .is_some()
        {
            queued += 1;
        }
    }

    // Retention once a day (the job's own dedupe key keeps one queued).
    jobs::queue(pool, &jobs::Prune {}).await?;
    sqlx::query!("UPDATE jobs SET run_after = greatest(run_after, coalesce((SELECT max(finished_at) FROM jobs WHERE kind = 'prune' AND status = 'done'), '-infinity') + interval '1 day')
         WHERE kind = 'prune' AND status = 'queued'")
    .execute(pool)
    .await?;
    let stale: bool = sqlx::query_scalar!(r#"SELECT coalesce(max(refreshed_at) < now() - interval '1 day', true) AS "stale!" FROM providers"#)
    .fetch_one(pool)
    .await?;
    if stale {
        jobs::queue(pool, &jobs::RefreshCatalogue {}).await?;
    }
    if started.elapsed() > SLOW_TICK {
        // Cumulative milliseconds at the end of each part.
        let ms = |d: std::time::Duration| d.as_millis() as u64;
        tracing::warn!(
            total_ms = ms(started.elapsed()),
            listings = due.len(),
            listings_ms = ms(listed),
            behind = behind.len(),
            catch_ups_queued = catch_ups,
            behind_found_ms = ms(found_behind),
            catch_up_queued_ms = ms(caught_up),
            candidates = found_candidates.1,
            candidates_found_ms = ms(found_candidates.0),
            refreshes_queued = queued,
            "slow scheduler tick"
        );
    }
    Ok(queued)
}

/// The lost-callback catch-up for one Salt Edge customer: lists its connections (inside the
/// fetch limit), refreshes our records from them and queues a sync wherever Salt Edge's last
/// success is newer than our last sync.
pub async fn list_customer(
    pool: &PgPool,
    client: &Client,
    cfg: &ScheduleConfig,
    customer: &str,
) -> Result<()> {
    let company: Option<Uuid> = sqlx::query_scalar!(
        "SELECT company_id FROM saltedge_customers WHERE saltedge_id = $1",
        customer
    )
    .fetch_optional(pool)
    .await?;
    let Some(company) = company else {
        return Ok(());
    };
    // Spent as soon as it comes (a listing that fails still reached Salt Edge); a wait
    // past the bound re-queues this job.
    fetch_limit::wait_for_slot(
        pool,
        "global",
        cfg.fetches_per_second,
        cfg.fetch_wait_max,
        FetchPriority::Yielding,
    )
    .await?
    .used();
    for se in client.list_connections(customer).await? {
        let Some(local) = connections::find_by_saltedge_id(pool, &se.id).await? else {
            continue;
        };
        if local.company_id != company {
            continue;
        }
        let local = connections::upsert_from_saltedge(pool, company, &se).await?;
        // Our refresh failed at the bank and the fail callback was lost.
        if let (
            Some(a),
            AttemptOutcome::Failed {
                at: Some(at),
                class,
                ..
            },
        ) = (&se.last_attempt, se.last_outcome())
        {
            if !a.automatic_fetch {
                attempt_failed_by(pool, local.id, &class, at).await?;
            }
        }
        if local.status == crate::store::status::ConnectionStatus::Active
            && connections::behind_saltedge(pool, local.id).await?
        {
            jobs::queue_sync(pool, company, local.id, "catch_up").await?;
        }
    }
    Ok(())
}

/// Asks Salt Edge to refresh one connection, if it still qualifies, inside the fetch limit.
/// Checking the allowance and recording the attempt are one step across replicas: the
/// company's rows are serialised by a transaction-scoped advisory lock, and the attempt is
/// recorded as `requested` before Salt Edge is asked (then corrected if Salt Edge refuses).
pub async fn refresh(
    pool: &PgPool,
    client: &Client,
    cfg: &ScheduleConfig,
    connection_id: Uuid,
    now: DateTime<Utc>,
) -> Result<()> {
    let conn = connections::get(pool, connection_id).await?;
    // The provider's slot before the attempt is recorded: a slot too far away re-queues the
    // job and reserves nothing of the day's allowance.
    let slot = if cfg.limit_per_provider {
        Some(
            fetch_limit::wait_for_slot(
                pool,
                &conn.provider_code,
                cfg.fetches_per_second,
                cfg.fetch_wait_max,
                FetchPriority::Yielding,
            )
            .await?,
        )
    } else {
        None
    };
    let mut tx = pool.begin().await?;
    sqlx::query_scalar!(
        "SELECT pg_advisory_xact_lock(hashtextextended('refresh:' || $1::uuid::text, 0))",
        conn.company_id
    )
    .fetch_one(&mut *tx)
    .await?;
    let Some(c) = candidates_where(&mut *tx, Some(connection_id), now, None)
        .await?
        .pop()
    else {
        return Ok(());
    };
    if decide(&c, now, cfg) != Verdict::Due {
        return Ok(());
    }
    let attempt_id: i64 = sqlx::query_scalar!("INSERT INTO refresh_attempts (connection_id, company_id, outcome, requested_at) VALUES ($1, $2, 'requested', $3) RETURNING id", conn.id, conn.company_id, now)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;

    if let Some(s) = slot {
        s.used();
    }
    let attempt = AttemptRequest {
        fetch_scopes: vec!["accounts".into(), "transactions".into()],
        ..Default::default()
    };
    let (outcome, class) = match client
        .with_priority(FetchPriority::Yielding)
        .refresh_connection(&conn.saltedge_id, &attempt)
        .await
    {
        Ok(se) => {
            connections::upsert_from_saltedge(pool, conn.company_id, &se).await?;
            // Salt Edge may answer with an attempt that already failed.
            match se.last_outcome() {
                AttemptOutcome::Failed { class, .. } => ("failed", Some(class)),
                _ => ("requested", None),
            }
        }
        // Our own budget was spent: nothing reached Salt Edge, the reservation goes.
        Err(e @ saltedge_client::Error::Busy { .. }) => {
            sqlx::query!("DELETE FROM refresh_attempts WHERE id = $1", attempt_id)
                .execute(pool)
                .await?;
            return Err(e.into());
        }
        Err(e) => match e.class().cloned() {
            Some(ErrorClass::ConnectionCannotBeRefreshed) => (
                "refused",
                Some(ErrorClass::ConnectionCannotBeRefreshed.to_string()),
            ),
            Some(class) => {
                if class == ErrorClass::InvalidCredentials {
                    sqlx::query!("UPDATE connections SET status = 'inactive', last_error_class = $2, last_error_message = $3 WHERE id = $1", conn.id, class.as_str(), e.to_string())
                        .execute(pool)
                        .await?;
                }
                ("failed", Some(class.to_string()))
            }
            None => {
                // Not known to have reached the bank; the reservation stands as a failure.
                sqlx::query!("UPDATE refresh_attempts SET outcome = 'failed', error_class = 'Transport' WHERE id = $1", attempt_id)
                    .execute(pool)
                    .await?;
                return Err(e.into());
            }
        },
    };
    if outcome != "requested" {
        sqlx::query!(
            "UPDATE refresh_attempts SET outcome = $2, error_class = $3 WHERE id = $1",
            attempt_id,
            outcome,
            class
        )
        .execute(pool)
        .await?;
    }
    Ok(())
}

/// Our latest refresh of the connection requested before `at` failed with `class`.
async fn attempt_failed_by(
    pool: &PgPool,
    connection_id: Uuid,
    class: &str,
    at: DateTime<Utc>,
) -> Result<()> {
    sqlx::query!("UPDATE refresh_attempts SET outcome = 'failed', error_class = $2
         WHERE id = (SELECT id FROM refresh_attempts WHERE connection_id = $1 AND outcome = 'requested'
                       AND requested_at <= $3 AND requested_at > $3 - interval '20 hours' ORDER BY requested_at DESC LIMIT 1)", connection_id, class, at)
    .execute(pool)
    .await?;
    Ok(())
}

/// A fail callback for a connection we asked to refresh turns that attempt into a failure,
/// which is what the retry rules count.
pub async fn attempt_failed(pool: &PgPool, connection_id: Uuid, class: &str) -> Result<()> {
    attempt_failed_by(pool, connection_id, class, Utc::now()).await
}
