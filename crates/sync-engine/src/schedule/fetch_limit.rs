//! The access terms' "up to two fetches of new data per second", shared by every replica.
//! Each scope (`global`, or a provider code) keeps the times of its latest slots in a row of
//! `fetch_slots`; a new slot comes when the sliding window holds fewer than `per_second` of
//! them (Salt Edge's rule: two at once are fine, a third within the second is not). The
//! window is 20 % wider than a second (1.2 s): up to 200 ms of network and scheduling
//! jitter between replicas cannot squeeze three requests into one second at Salt Edge's
//! end (with a 2 % margin, three replicas' connect sessions arrived at a stand-in within
//! 0.963 s). The row lock is the queue; the logic is `take_fetch_slot` (migration 0040).
//!
//! Waits are bounded: a slot further away than `max_wait` is not taken, and the caller is
//! told when to come back (`Busy`: an API answers 429 with `Retry-After`, a job is queued
//! again for that time) instead of sleeping behind everyone else's backlog. A slot whose
//! request never left — the connection failed, or the caller was cancelled while waiting —
//! goes back when it is still the last one handed out (a slot in the middle of the queue
//! cannot be taken back without moving the others; it costs one window at most).
//!
//! Priorities: an interactive fetch (a bookkeeper waiting on a link) may queue for a slot;
//! a yielding one — background refreshes and listings, and the connect sessions of a
//! company that has used its quota lately — takes only a slot free now that leaves
//! [`RESERVE`] slot of the window free, and never reserves ahead. So a company looping
//! links or syncs cannot make another company's first link wait behind it: the last slot
//! of each window is kept for whoever has not fetched lately. The cost: with the budget to
//! themselves, background fetches get `per_second - 1` slots of each window.
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
use saltedge_client::{FetchPriority, FetchSlot};
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::{Result, SyncError};

/// The default bound on a fetch slot's wait.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(5);

/// The sliding window a budget of `per_second` is counted over: a second and 20 %.
const WINDOW_SECS: f64 = 1.2;

/// Slots of each window that yielding fetches leave to interactive ones (at most
/// `per_second - 1`: a budget of one a second is shared first come, first served).
pub const RESERVE: i32 = 1;

/// A slot taken: when it comes (`wait` from now), as recorded in the scope's row.
struct Taken {
    wait: f64,
    at: DateTime<Utc>,
}

/// Takes a slot of `scope` (see the module's doc); otherwise takes nothing and returns how
/// long until one might be had (`Err`).
async fn take(
    pool: &PgPool,
    scope: &str,
    per_second: u32,
    max_wait: Duration,
    priority: FetchPriority,
) -> Result<std::result::Result<Taken, Duration>> {
    let r = sqlx::query!(
        r#"SELECT taken, away AS "away!" FROM take_fetch_slot($1, $2, $3, $4, $5, $6)"#,
        scope,
        per_second as i32,
        WINDOW_SECS,
        max_wait.as_secs_f64(),
        priority == FetchPriority::Yielding,
        RESERVE
    )
    .fetch_one(pool)
    .await?;
    Ok(match r.taken {
        Some(at) => Ok(Taken { wait: r.away, at }),
        None => Err(Duration::from_secs_f64(r.away.max(0.01))),
    })
}

/// Gives a slot back when it is still the last one handed out in `scope` (nobody queued
/// behind it) and the row keeps a full window of history without it.
async fn give_back(pool: &PgPool, scope: &str, per_second: u32, at: DateTime<Utc>) -> Result<()> {
    sqlx::query!(
        "UPDATE fetch_slots SET recent = recent[1:cardinality(recent) - 1],
                next_slot = fetch_slot_free_at(recent[1:cardinality(recent) - 1], $2, $3)
         WHERE scope = $1 AND recent[cardinality(recent)] = $4 AND cardinality(recent) > $2",
        scope,
        per_second as i32,
        WINDOW_SECS,
        at
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// A taken slot that goes back when dropped unused (see [`give_back`]).
fn returnable(pool: &PgPool, scope: &str, per_second: u32, at: DateTime<Utc>) -> FetchSlot {
    let (pool, scope) = (pool.clone(), scope.to_string());
    FetchSlot::returnable(move || async move {
        if let Err(e) = give_back(&pool, &scope, per_second, at).await {
            tracing::warn!(error = %e, "could not give a fetch slot back");
        }
    })
}

/// Takes a slot of `scope` and waits for it, at most `max_wait`; a slot further away (or,
/// yielding, none free now) is [`SyncError::Busy`]. The returned slot goes back if dropped
/// unused.
pub async fn wait_for_slot(
    pool: &PgPool,
    scope: &str,
    per_second: u32,
    max_wait: Duration,
    priority: FetchPriority,
) -> Result<FetchSlot> {
    if per_second == 0 {
        return Ok(FetchSlot::kept());
    }
    match take(pool, scope, per_second, max_wait, priority).await? {
        Ok(t) => {
            // Taken before the wait: a caller cancelled while waiting gives it back.
            let slot = returnable(pool, scope, per_second, t.at);
            if t.wait > 0.0 {
                tokio::time::sleep(Duration::from_secs_f64(t.wait)).await;
            }
            Ok(slot)
        }
        Err(retry_after) => Err(SyncError::busy("fetches from Salt Edge", retry_after)),
    }
}

/// The scope's row, created free on first use.
async fn ensure_scope(pool: &PgPool, scope: &str) -> Result<()> {
    sqlx::query!("INSERT INTO fetch_slots (scope, next_slot) VALUES ($1, '-infinity') ON CONFLICT (scope) DO NOTHING", scope)
        .execute(pool)
        .await?;
    Ok(())
}

/// A company's quota of connect sessions inside the global budget: `burst` at once, then
/// one per `60 / per_minute` seconds (a generic cell rate: the row's time runs ahead by one
/// interval per session and may be at most `burst` intervals ahead of now). Never waits:
/// over the quota is [`SyncError::Busy`] with the time the next session is allowed.
///
/// The session's priority in the shared budget comes with it: interactive when the company
/// had its whole quota (it has not started a session for an interval), yielding when it
/// is spending its burst — a company looping links yields to one linking its first bank.
pub async fn take_company_quota(
    pool: &PgPool,
    company: Uuid,
    per_minute: u32,
    burst: u32,
) -> Result<FetchPriority> {
    if per_minute == 0 {
        return Ok(FetchPriority::Interactive);
    }
    let scope = format!("connect:{company}");
    let interval = 60.0 / per_minute as f64;
    let window = interval * burst.max(1) as f64;
    ensure_scope(pool, &scope).await?;
    let r = sqlx::query!(
        r#"WITH t AS (
             UPDATE fetch_slots SET next_slot = greatest(next_slot, clock_timestamp()) + make_interval(secs => $2)
             WHERE scope = $1
               AND greatest(next_slot, clock_timestamp()) + make_interval(secs => $2) <= clock_timestamp() + make_interval(secs => $3)
             RETURNING extract(epoch FROM next_slot - clock_timestamp())::float8 AS ahead)
           SELECT (SELECT ahead FROM t) AS ahead,
                  (SELECT extract(epoch FROM (greatest(s.next_slot, clock_timestamp()) + make_interval(secs => $2)
                                              - clock_timestamp() - make_interval(secs => $3)))::float8
                   FROM fetch_slots s WHERE s.scope = $1 AND NOT EXISTS (SELECT 1 FROM t)) AS over"#,
        scope,
        interval,
        window
    )
    .fetch_one(pool)
    .await?;
    match (r.ahead, r.over) {
        // One interval ahead of now: the quota was whole (a few ms of clock allowed).
        (Some(ahead), _) if ahead <= interval + 0.05 => Ok(FetchPriority::Interactive),
        (Some(_), _) => Ok(FetchPriority::Yielding),
        (None, over) => Err(SyncError::busy(
            "this company's connect sessions",
            Duration::from_secs_f64(over.unwrap_or(interval).max(1.0)),
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
        priority: FetchPriority,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = std::result::Result<FetchSlot, Duration>> + Send + '_>,
    > {
        Box::pin(async move {
            match wait_for_slot(
                &self.pool,
                &self.scope,
                self.per_second,
                self.max_wait,
                priority,
            )
            .await
            {
                Ok(slot) => Ok(slot),
                Err(SyncError::Busy { retry_after, .. }) => Err(retry_after),
                Err(e) => {
                    // The database is away: hold to the limit within this process at least.
                    tracing::warn!(error = %e, "shared fetch limit unavailable; spacing this fetch locally");
                    if self.per_second > 0 {
                        tokio::time::sleep(Duration::from_secs_f64(
                            WINDOW_SECS / self.per_second as f64,
                        ))
                        .await;
                    }
                    Ok(FetchSlot::kept())
                }
            }
        })
    }
}
