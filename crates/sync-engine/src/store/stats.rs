//! What operations endpoints read from the database: a ping for `/readyz` and a few
//! grouped counts for `/metrics` (no table scan: lines come from the planner's estimate).

use sqlx::PgPool;

use crate::error::Result;

/// Postgres answers.
pub async fn ping(pool: &PgPool) -> Result<()> {
    sqlx::query_scalar!(r#"SELECT 1 AS "one!""#)
        .fetch_one(pool)
        .await?;
    Ok(())
}

#[derive(Debug, Clone, Default)]
pub struct Gauges {
    /// Sync runs by status.
    pub sync_runs: Vec<(String, i64)>,
    /// Statement lines, the planner's estimate.
    pub statement_lines: i64,
    /// Jobs by status.
    pub jobs: Vec<(String, i64)>,
}

pub async fn gauges(pool: &PgPool) -> Result<Gauges> {
    let sync_runs = sqlx::query!(
        r#"SELECT status, count(*) AS "n!" FROM sync_runs GROUP BY status ORDER BY status"#
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|r| (r.status, r.n))
    .collect();
    let lines = sqlx::query_scalar!(
        r#"SELECT greatest(reltuples, 0)::float8 AS "estimate!" FROM pg_class WHERE relname = 'statement_lines'"#
    )
    .fetch_optional(pool)
    .await?;
    let jobs = sqlx::query!(
        r#"SELECT status, count(*) AS "n!" FROM jobs GROUP BY status ORDER BY status"#
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|r| (r.status, r.n))
    .collect();
    Ok(Gauges {
        sync_runs,
        statement_lines: lines.unwrap_or(0.0) as i64,
        jobs,
    })
}
