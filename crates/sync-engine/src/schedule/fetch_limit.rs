//! The access terms' "up to two fetches of new data per second", shared by every replica:
//! each fetch takes the next slot of its scope from a row in Postgres (row lock = queue), then
//! waits for it. Slots are 2% wider than the limit so that network jitter cannot squeeze
//! three requests into one second at Salt Edge's end.
//!
//! By default the scope is one budget for the whole client (`global`): [`PgFetchGate`] is
//! installed on the Salt Edge client, so every request that starts a fetch — connect
//! sessions for link, reconnect and fetch-accounts, and refreshes — takes a slot, from any
//! replica. With `scheduler.limit_scope = "provider"`, refreshes take a per-provider slot
//! instead and connect sessions are limited within each process only.

use std::time::Duration;

use sqlx::PgPool;

use crate::error::Result;

pub async fn wait_for_slot(pool: &PgPool, scope: &str, per_second: u32) -> Result<()> {
    if per_second == 0 {
        return Ok(());
    }
    let spacing = 1.02 / per_second as f64;
    sqlx::query!("INSERT INTO fetch_slots (scope, next_slot) VALUES ($1, '-infinity') ON CONFLICT (scope) DO NOTHING", scope)
        .execute(pool)
        .await?;
    let wait: f64 = sqlx::query_scalar!(r#"UPDATE fetch_slots SET next_slot = greatest(next_slot, clock_timestamp()) + make_interval(secs => $2)
         WHERE scope = $1
         RETURNING extract(epoch FROM (next_slot - make_interval(secs => $2) - clock_timestamp()))::float8 AS "wait!""#, scope, spacing)
    .fetch_one(pool)
    .await?;
    if wait > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(wait)).await;
    }
    Ok(())
}

/// Returns the last slot handed out in `scope` when its request was never sent (the
/// connection failed): the next caller may take it. Never moves the queue into the past.
pub async fn give_back(pool: &PgPool, scope: &str, per_second: u32) -> Result<()> {
    if per_second == 0 {
        return Ok(());
    }
    let spacing = 1.02 / per_second as f64;
    sqlx::query!("UPDATE fetch_slots SET next_slot = greatest(next_slot - make_interval(secs => $2), clock_timestamp())
         WHERE scope = $1", scope, spacing)
    .execute(pool)
    .await?;
    Ok(())
}

/// The Salt Edge client's fetch gate backed by [`wait_for_slot`]: one budget across replicas.
pub struct PgFetchGate {
    pool: PgPool,
    scope: String,
    per_second: u32,
}

impl PgFetchGate {
    pub fn new(pool: PgPool, scope: &str, per_second: u32) -> Self {
        PgFetchGate {
            pool,
            scope: scope.to_string(),
            per_second,
        }
    }
}

impl saltedge_client::FetchGate for PgFetchGate {
    fn give_back(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            if let Err(e) = give_back(&self.pool, &self.scope, self.per_second).await {
                tracing::warn!(error = %e, "could not give a fetch slot back");
            }
        })
    }

    fn acquire(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            if let Err(e) = wait_for_slot(&self.pool, &self.scope, self.per_second).await {
                // The database is away: hold to the limit within this process at least.
                tracing::warn!(error = %e, "shared fetch limit unavailable; spacing this fetch locally");
                if self.per_second > 0 {
                    tokio::time::sleep(Duration::from_secs_f64(1.02 / self.per_second as f64))
                        .await;
                }
            }
        })
    }
}
