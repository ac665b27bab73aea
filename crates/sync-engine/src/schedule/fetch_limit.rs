//! The access terms' "up to two fetches of new data per second", shared by every replica:
//! each fetch takes the next slot of its scope from a row in Postgres (row lock = queue), then
//! waits for it. Slots are 20 % wider than the limit (0.6 s at 2 per second): three starts
//! span 1.2 s by the database's clock, so up to 200 ms of network and scheduling jitter
//! between replicas cannot squeeze three requests into one second at Salt Edge's end (with
//! a 2 % margin, three replicas' connect sessions arrived at a stand-in within 0.963 s).
//!
//! Waits are bounded: a slot further away than `max_wait` is not taken, and the caller is
//! told when to come back (`Busy`: an API answers 429 with `Retry-After`, a job is queued
//! again for that time) instead of sleeping behind everyone else's backlog. A slot whose
//! request never left — the connection failed, or the caller was cancelled while waiting —
//! goes back when it is still the last one handed out (a slot in the middle of the queue
//! cannot be taken back without moving the others; it costs one spacing at most).
//!
//! By default the scope is one budget for the whole client (`global`): [`PgFetchGate`] is
//! installed on the Salt Edge client, so every request that starts a fetch — connect
//! sessions for link, reconnect and fetch-accounts, and refreshes — takes a slot, from any
//! replica. With `scheduler.limit_scope = "provider"`, refreshes take a per-provider slot
//! instead and connect sessions are limited within each process only.
//!
//! Inside the global budget each company has a quota of connect sessions
//! ([`take_company_quota`]): a burst, then one per interval, never waited for.

use std::time::Duration;

use chrono::{DateTime, Utc};
use saltedge_client::FetchSlot;
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::{Result, SyncError};

/// The default bound on a fetch slot's wait.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(5);

fn spacing(per_second: u32) -> f64 {
    1.2 / per_second as f64
}

/// The scope's row, created free on first use.
async fn ensure_scope(pool: &PgPool, scope: &str) -> Result<()> {
    sqlx::query!("INSERT INTO fetch_slots (scope, next_slot) VALUES ($1, '-infinity') ON CONFLICT (scope) DO NOTHING", scope)
        .execute(pool)
        .await?;
    Ok(())
}

/// A slot taken: when it comes (`wait` from now) and where the queue ended with it.
struct Taken {
    wait: f64,
    end: DateTime<Utc>,
}

/// Takes the next slot of `scope` when it is at most `max_wait` away; otherwise takes
/// nothing and returns how long until it would be (`Err`).
async fn take(
    pool: &PgPool,
    scope: &str,
    per_second: u32,
    max_wait: Duration,
) -> Result<std::result::Result<Taken, Duration>> {
    let spacing = spacing(per_second);
    ensure_scope(pool, scope).await?;
    let taken = sqlx::query!(r#"UPDATE fetch_slots SET next_slot = greatest(next_slot, clock_timestamp()) + make_interval(secs => $2)
         WHERE scope = $1 AND greatest(next_slot, clock_timestamp()) <= clock_timestamp() + make_interval(secs => $3)
         RETURNING next_slot AS "end!", extract(epoch FROM (next_slot - make_interval(secs => $2) - clock_timestamp()))::float8 AS "wait!""#,
        scope, spacing, max_wait.as_secs_f64())
    .fetch_optional(pool)
    .await?;
    if let Some(t) = taken {
        return Ok(Ok(Taken {
            wait: t.wait,
            end: t.end,
        }));
    }
    let away: f64 = sqlx::query_scalar!(
        r#"SELECT extract(epoch FROM (greatest(next_slot, clock_timestamp()) - clock_timestamp()))::float8 AS "away!"
           FROM fetch_slots WHERE scope = $1"#,
        scope
    )
    .fetch_one(pool)
    .await?;
    Ok(Err(Duration::from_secs_f64(
        (away - max_wait.as_secs_f64()).max(0.01),
    )))
}

/// Gives a slot back when it is still the last one handed out in `scope` (nobody queued
/// behind it). Never moves the queue into the past.
async fn give_back(pool: &PgPool, scope: &str, per_second: u32, end: DateTime<Utc>) -> Result<()> {
    sqlx::query!("UPDATE fetch_slots SET next_slot = greatest(next_slot - make_interval(secs => $2), clock_timestamp())
         WHERE scope = $1 AND next_slot = $3", scope, spacing(per_second), end)
    .execute(pool)
    .await?;
    Ok(())
}

/// A taken slot that goes back when dropped unused (see [`give_back`]).
fn returnable(pool: &PgPool, scope: &str, per_second: u32, end: DateTime<Utc>) -> FetchSlot {
    let (pool, scope) = (pool.clone(), scope.to_string());
    FetchSlot::returnable(move || async move {
        if let Err(e) = give_back(&pool, &scope, per_second, end).await {
            tracing::warn!(error = %e, "could not give a fetch slot back");
        }
    })
}

/// Takes a slot of `scope` and waits for it, at most `max_wait`; a slot further away is
/// [`SyncError::Busy`]. The returned slot goes back if dropped unused.
pub async fn wait_for_slot(
    pool: &PgPool,
    scope: &str,
    per_second: u32,
    max_wait: Duration,
) -> Result<FetchSlot> {
    if per_second == 0 {
        return Ok(FetchSlot::kept());
    }
    match take(pool, scope, per_second, max_wait).await? {
        Ok(t) => {
            // Taken before the wait: a caller cancelled while waiting gives it back.
            let slot = returnable(pool, scope, per_second, t.end);
            if t.wait > 0.0 {
                tokio::time::sleep(Duration::from_secs_f64(t.wait)).await;
            }
            Ok(slot)
        }
        Err(retry_after) => Err(SyncError::busy("fetches from Salt Edge", retry_after)),
    }
}

/// A company's quota of connect sessions inside the global budget: `burst` at once, then
/// one per `60 / per_minute` seconds (a generic cell rate: the row's time runs ahead by one
/// interval per session and may be at most `burst` intervals ahead of now). Never waits:
/// over the quota is [`SyncError::Busy`] with the time the next session is allowed.
pub async fn take_company_quota(
    pool: &PgPool,
    company: Uuid,
    per_minute: u32,
    burst: u32,
) -> Result<()> {
    if per_minute == 0 {
        return Ok(());
    }
    let scope = format!("connect:{company}");
    let interval = 60.0 / per_minute as f64;
    let window = interval * burst.max(1) as f64;
    ensure_scope(pool, &scope).await?;
    let over: Option<f64> = sqlx::query_scalar!(
        r#"WITH t AS (
             UPDATE fetch_slots SET next_slot = greatest(next_slot, clock_timestamp()) + make_interval(secs => $2)
             WHERE scope = $1
               AND greatest(next_slot, clock_timestamp()) + make_interval(secs => $2) <= clock_timestamp() + make_interval(secs => $3)
             RETURNING scope)
           SELECT extract(epoch FROM (greatest(s.next_slot, clock_timestamp()) + make_interval(secs => $2)
                                      - clock_timestamp() - make_interval(secs => $3)))::float8 AS "over!"
           FROM fetch_slots s WHERE s.scope = $1 AND NOT EXISTS (SELECT 1 FROM t)"#,
        scope,
        interval,
        window
    )
    .fetch_optional(pool)
    .await?;
    match over {
        None => Ok(()),
        Some(secs) => Err(SyncError::busy(
            "this company's connect sessions",
            Duration::from_secs_f64(secs.max(1.0)),
        )),
    }
}

/// The Salt Edge client's fetch gate backed by [`wait_for_slot`]: one budget across replicas,
/// waits bounded by `max_wait`.
pub struct PgFetchGate {
    pool: PgPool,
    scope: String,
    per_second: u32,
    max_wait: Duration,
}

impl PgFetchGate {
    pub fn new(pool: PgPool, scope: &str, per_second: u32) -> Self {
        PgFetchGate {
            pool,
            scope: scope.to_string(),
            per_second,
            max_wait: DEFAULT_MAX_WAIT,
        }
    }

    /// The longest a fetch waits for its slot before it is refused.
    pub fn with_max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }
}

impl saltedge_client::FetchGate for PgFetchGate {
    fn acquire(
        &self,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = std::result::Result<FetchSlot, Duration>> + Send + '_>,
    > {
        Box::pin(async move {
            match wait_for_slot(&self.pool, &self.scope, self.per_second, self.max_wait).await {
                Ok(slot) => Ok(slot),
                Err(SyncError::Busy { retry_after, .. }) => Err(retry_after),
                Err(e) => {
                    // The database is away: hold to the limit within this process at least.
                    tracing::warn!(error = %e, "shared fetch limit unavailable; spacing this fetch locally");
                    if self.per_second > 0 {
                        tokio::time::sleep(Duration::from_secs_f64(spacing(self.per_second))).await;
                    }
                    Ok(FetchSlot::kept())
                }
            }
        })
    }
}
