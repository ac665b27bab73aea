//! The access terms' "up to two fetches of new data per second", shared by every replica:
//! each fetch takes the next slot of its scope from a row in Postgres (row lock = queue), then
//! waits for it. Slots are 2% wider than the limit so that network jitter cannot squeeze
//! three requests into one second at Salt Edge's end.

use std::time::Duration;

use sqlx::PgPool;

use crate::error::Result;

pub async fn wait_for_slot(pool: &PgPool, scope: &str, per_second: u32) -> Result<()> {
    if per_second == 0 {
        return Ok(());
    }
    let spacing = 1.02 / per_second as f64;
    sqlx::query("INSERT INTO fetch_slots (scope, next_slot) VALUES ($1, '-infinity') ON CONFLICT (scope) DO NOTHING")
        .bind(scope)
        .execute(pool)
        .await?;
    let wait: f64 = sqlx::query_scalar(
        "UPDATE fetch_slots SET next_slot = greatest(next_slot, clock_timestamp()) + make_interval(secs => $2)
         WHERE scope = $1
         RETURNING extract(epoch FROM (next_slot - make_interval(secs => $2) - clock_timestamp()))::float8",
    )
    .bind(scope)
    .bind(spacing)
    .fetch_one(pool)
    .await?;
    if wait > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(wait)).await;
    }
    Ok(())
}
