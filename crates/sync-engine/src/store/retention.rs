//! Retention: processed callbacks, finished jobs, old sync runs and the change feed's
//! removals are deleted by age, in
//! small batches (each its own short statement), so pruning never holds long locks. Dead
//! jobs are kept as long as finished ones, for operators. A connection's newest sync run is
//! always kept (it is what the API shows as `last_sync`).

use std::time::Duration;

use sqlx::PgPool;

use crate::error::Result;

#[derive(Debug, Clone)]
pub struct Retention {
    pub callback_inbox: chrono::Duration,
    pub jobs: chrono::Duration,
    pub sync_runs: chrono::Duration,
    /// Removals in the change feed (tombstones); a cursor from before the newest pruned
    /// one is answered 410 Gone.
    pub changes: chrono::Duration,
    /// Webhook events whose every delivery was delivered (with their delivery log).
    pub webhook_events: chrono::Duration,
    /// Rows per delete statement.
    pub batch: i64,
    /// Pause between batches, to leave room for other work.
    pub pause: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            callback_inbox: chrono::Duration::days(30),
            jobs: chrono::Duration::days(14),
            sync_runs: chrono::Duration::days(180),
            changes: chrono::Duration::days(30),
            webhook_events: chrono::Duration::days(30),
            batch: 1000,
            pause: Duration::from_millis(50),
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Pruned {
    pub callbacks: u64,
    pub jobs: u64,
    pub sync_runs: u64,
    pub removed_lines: u64,
    pub webhook_events: u64,
    pub console_sessions: u64,
}

/// Runs a checked `DELETE … LIMIT $2` of rows older than `$1` until a batch deletes fewer
/// than `r.batch` rows, pausing between batches; the total deleted.
macro_rules! in_batches {
    ($pool:expr, $r:expr, $before:expr, $sql:literal) => {{
        let mut total: u64 = 0;
        loop {
            let n = sqlx::query!($sql, $before, $r.batch)
                .execute($pool)
                .await?
                .rows_affected();
            total += n;
            if n < $r.batch as u64 {
                break total;
            }
            tokio::time::sleep($r.pause).await;
        }
    }};
}

/// Deletes what is older than the retention, batch by batch.
pub async fn prune(pool: &PgPool, r: &Retention) -> Result<Pruned> {
    let now = chrono::Utc::now();
    let callbacks = in_batches!(
        pool,
        r,
        now - r.callback_inbox,
        "DELETE FROM callback_inbox WHERE id IN (
             SELECT id FROM callback_inbox WHERE processed_at < $1 ORDER BY processed_at LIMIT $2)"
    );
    let jobs = in_batches!(
        pool,
        r,
        now - r.jobs,
        "DELETE FROM jobs WHERE id IN (
             SELECT id FROM jobs WHERE finished_at < $1 AND status IN ('done', 'failed', 'dead') ORDER BY finished_at LIMIT $2)"
    );
    let sync_runs = in_batches!(
        pool,
        r,
        now - r.sync_runs,
        "DELETE FROM sync_runs WHERE id IN (
             SELECT s.id FROM sync_runs s WHERE s.finished_at < $1
               AND EXISTS (SELECT 1 FROM sync_runs n WHERE n.connection_id = s.connection_id AND n.started_at > s.started_at)
             ORDER BY s.finished_at LIMIT $2)"
    );
    let removed_lines = crate::changes::prune(pool, now - r.changes, r.batch, r.pause).await?;
    // Undelivered events stay, however old: they are still owed.
    let webhook_events = in_batches!(
        pool,
        r,
        now - r.webhook_events,
        "DELETE FROM webhook_events WHERE id IN (
             SELECT e.id FROM webhook_events e WHERE e.created_at < $1
               AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.id AND d.state = 'pending')
             ORDER BY e.created_at LIMIT $2)"
    );
    // Expired console sessions and sign-in links: no longer usable, nothing to keep.
    let console_sessions = crate::console::prune(pool).await?;
    let out = Pruned {
        console_sessions,
        callbacks,
        jobs,
        sync_runs,
        removed_lines,
        webhook_events,
    };
    if out != Pruned::default() {
        tracing::info!(?out, "retention: pruned");
    }
    Ok(out)
}
