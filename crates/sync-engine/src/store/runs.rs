//! Sync runs: one row per sync of a connection, with what it did. Counters are added in the
//! same transaction as the page they describe, so they never disagree with the lines.

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres};
use uuid::Uuid;

use crate::error::{Result, SyncError};
use crate::store::status::RunStatus;

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct SyncRun {
    pub id: Uuid,
    pub company_id: Uuid,
    pub connection_id: Option<Uuid>,
    pub trigger: String,
    pub status: RunStatus,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub from_id: Option<String>,
    pub pages: i32,
    pub fetched: i32,
    pub inserted: i32,
    pub updated: i32,
    pub skipped_duplicate: i32,
    pub flagged_duplicated: i32,
    pub skipped_before_start: i32,
    pub pending_removed: i32,
    pub suspects: i32,
    /// Lines moved to the id under which the bank re-issued their transaction.
    pub rekeyed: i32,
    /// Lines whose transaction the bank no longer lists (flagged `gone_at_bank`).
    pub gone_at_bank: i32,
    /// New lines flagged as possible re-issues (changed content) of lines that vanished.
    pub possible_reissues: i32,
    /// Records that could not be parsed or stored (see [`crate::quarantine`]).
    pub quarantined: i32,
    pub balance_mismatches: serde_json::Value,
    pub error_class: Option<String>,
    pub error_message: Option<String>,
}

/// A queued run, to be picked up by a worker (the API's "sync now").
pub async fn enqueue(
    pool: &PgPool,
    company_id: Uuid,
    connection_id: Uuid,
    trigger: &str,
) -> Result<Uuid> {
    Ok(sqlx::query_scalar!("INSERT INTO sync_runs (company_id, connection_id, trigger, status) VALUES ($1, $2, $3, 'queued') RETURNING id", company_id, connection_id, trigger)
        .fetch_one(pool)
        .await?)
}

/// Starts a run while holding the connection's lock: runs left `running` by a dead process
/// are closed as failed first.
pub async fn start(
    pool: &PgPool,
    company_id: Uuid,
    connection_id: Uuid,
    trigger: &str,
    queued: Option<Uuid>,
) -> Result<Uuid> {
    sqlx::query!("UPDATE sync_runs SET status = 'failed', finished_at = now(), error_message = 'interrupted (the process stopped mid-sync)'
         WHERE connection_id = $1 AND status = 'running'", connection_id)
    .execute(pool)
    .await?;
    if let Some(id) = queued {
        let n = sqlx::query!("UPDATE sync_runs SET status = 'running', started_at = now() WHERE id = $1 AND status = 'queued'", id)
            .execute(pool)
            .await?
            .rows_affected();
        if n == 1 {
            return Ok(id);
        }
    }
    Ok(sqlx::query_scalar!("INSERT INTO sync_runs (company_id, connection_id, trigger) VALUES ($1, $2, $3) RETURNING id", company_id, connection_id, trigger)
        .fetch_one(pool)
        .await?)
}

pub async fn set_from_id(pool: &PgPool, id: Uuid, from_id: Option<&str>) -> Result<()> {
    sqlx::query!(
        "UPDATE sync_runs SET from_id = $2 WHERE id = $1",
        id,
        from_id
    )
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn add_page(
    db: &mut sqlx::Transaction<'_, Postgres>,
    id: Uuid,
    p: &PageOutcome,
) -> Result<()> {
    add_pages(&mut **db, id, 1, p, None).await
}

/// Adds `pages` pages' counts `p` to the run. With `lock`, only while the connection's lock
/// is held (checked in the caller's transaction, which must then roll back): otherwise
/// [`SyncError::LockLost`], as another sync may be writing.
pub async fn add_pages<'e>(
    db: impl sqlx::PgExecutor<'e>,
    id: Uuid,
    pages: i32,
    p: &PageOutcome,
    lock: Option<crate::ingest::lock::LockHolder>,
) -> Result<()> {
    let n = sqlx::query!("UPDATE sync_runs SET pages = pages + $9, fetched = fetched + $2, inserted = inserted + $3, updated = updated + $4,
             skipped_duplicate = skipped_duplicate + $5, flagged_duplicated = flagged_duplicated + $6,
             skipped_before_start = skipped_before_start + $7, suspects = suspects + $8
         WHERE id = $1
           AND ($10::int4 IS NULL OR EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted
                                             AND pid = $10 AND classid::int8 = $11 AND objid::int8 = $12 AND objsubid = 1))",
        id, p.fetched, p.inserted, p.updated, p.skipped_duplicate, p.flagged_duplicated, p.skipped_before_start, p.suspects, pages,
        lock.map(|l| l.pid), lock.map(|l| l.classid), lock.map(|l| l.objid))
    .execute(db)
    .await?
    .rows_affected();
    if n == 0 && lock.is_some() {
        return Err(SyncError::LockLost);
    }
    Ok(())
}

pub async fn add_counts(
    pool: &PgPool,
    id: Uuid,
    pending_removed: i32,
    flagged_duplicated: i32,
    rekeyed: i32,
) -> Result<()> {
    sqlx::query!("UPDATE sync_runs SET pending_removed = pending_removed + $2, flagged_duplicated = flagged_duplicated + $3,
             rekeyed = rekeyed + $4 WHERE id = $1", id, pending_removed, flagged_duplicated, rekeyed)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn succeed(pool: &PgPool, id: Uuid, mismatches: &serde_json::Value) -> Result<SyncRun> {
    Ok(sqlx::query_as!(SyncRun, r#"UPDATE sync_runs SET status = 'succeeded', finished_at = now(), balance_mismatches = $2 WHERE id = $1 RETURNING id, company_id, connection_id, trigger, status AS "status: RunStatus", started_at, finished_at, from_id, pages, fetched, inserted, updated, skipped_duplicate, flagged_duplicated, skipped_before_start, pending_removed, suspects, rekeyed, gone_at_bank, possible_reissues, quarantined, balance_mismatches, error_class, error_message"#, id, mismatches)
    .fetch_one(pool)
    .await?)
}

pub async fn fail(pool: &PgPool, id: Uuid, class: Option<&str>, message: &str) -> Result<()> {
    sqlx::query!("UPDATE sync_runs SET status = 'failed', finished_at = now(), error_class = $2, error_message = $3 WHERE id = $1", id, class, message)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<SyncRun> {
    sqlx::query_as!(SyncRun, r#"SELECT id, company_id, connection_id, trigger, status AS "status: RunStatus", started_at, finished_at, from_id, pages, fetched, inserted, updated, skipped_duplicate, flagged_duplicated, skipped_before_start, pending_removed, suspects, rekeyed, gone_at_bank, possible_reissues, quarantined, balance_mismatches, error_class, error_message FROM sync_runs WHERE id = $1"#, id)
        .fetch_optional(pool)
        .await?
        .ok_or(SyncError::not_found("sync run"))
}

/// A connection's runs, newest first, after `after` (the last row of the previous page:
/// started_at, id).
pub async fn page(
    pool: &PgPool,
    connection_id: Uuid,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<SyncRun>> {
    Ok(sqlx::query_as!(SyncRun, r#"SELECT id, company_id, connection_id, trigger, status AS "status: RunStatus", started_at, finished_at, from_id, pages, fetched, inserted, updated, skipped_duplicate, flagged_duplicated, skipped_before_start, pending_removed, suspects, rekeyed, gone_at_bank, possible_reissues, quarantined, balance_mismatches, error_class, error_message FROM sync_runs
         WHERE connection_id = $1 AND ($2::timestamptz IS NULL OR (started_at, id) < ($2, $3))
         ORDER BY started_at DESC, id DESC LIMIT $4"#, connection_id, after.map(|a| a.0), after.map(|a| a.1).unwrap_or_default(), limit)
    .fetch_all(pool)
    .await?)
}

pub async fn for_connection(
    pool: &PgPool,
    connection_id: Uuid,
    limit: i64,
) -> Result<Vec<SyncRun>> {
    Ok(sqlx::query_as!(SyncRun, r#"SELECT id, company_id, connection_id, trigger, status AS "status: RunStatus", started_at, finished_at, from_id, pages, fetched, inserted, updated, skipped_duplicate, flagged_duplicated, skipped_before_start, pending_removed, suspects, rekeyed, gone_at_bank, possible_reissues, quarantined, balance_mismatches, error_class, error_message FROM sync_runs WHERE connection_id = $1 ORDER BY started_at DESC, id DESC LIMIT $2"#, connection_id, limit)
        .fetch_all(pool)
        .await?)
}

/// What one page did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PageOutcome {
    pub fetched: i32,
    pub inserted: i32,
    pub updated: i32,
    pub skipped_duplicate: i32,
    pub flagged_duplicated: i32,
    pub skipped_before_start: i32,
    pub suspects: i32,
    pub unknown_account: i32,
}

impl PageOutcome {
    /// Adds another page's counts to these.
    pub fn add(&mut self, p: &PageOutcome) {
        self.fetched += p.fetched;
        self.inserted += p.inserted;
        self.updated += p.updated;
        self.skipped_duplicate += p.skipped_duplicate;
        self.flagged_duplicated += p.flagged_duplicated;
        self.skipped_before_start += p.skipped_before_start;
        self.suspects += p.suspects;
        self.unknown_account += p.unknown_account;
    }
}
