//! A durable job queue in Postgres. Jobs are claimed with `FOR UPDATE SKIP LOCKED` under a
//! lease; a job whose worker died is claimed again once its lease expires. Failed jobs are
//! retried with exponential backoff up to `max_attempts`. The cap holds for every claim: a
//! job whose lease expired after its last allowed attempt (its worker died, hung or
//! panicked each time) is not claimed again but declared *dead*, kept with its reason for
//! operators, who can re-run it ([`rerun`]).

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use crate::error::Result;

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub payload: serde_json::Value,
    pub dedupe_key: Option<String>,
    pub status: crate::store::status::JobStatus,
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_after: DateTime<Utc>,
    pub lease_until: Option<DateTime<Utc>>,
    pub locked_by: Option<String>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// Queues a job; with a `dedupe_key` that already has a queued job, nothing is added and
/// `None` is returned.
pub async fn enqueue<'e>(
    db: impl PgExecutor<'e>,
    kind: &str,
    payload: serde_json::Value,
    dedupe_key: Option<&str>,
) -> Result<Option<i64>> {
    enqueue_at(db, kind, payload, dedupe_key, Duration::ZERO).await
}

/// Like [`enqueue`], to run `delay` from now.
pub async fn enqueue_at<'e>(
    db: impl PgExecutor<'e>,
    kind: &str,
    payload: serde_json::Value,
    dedupe_key: Option<&str>,
    delay: Duration,
) -> Result<Option<i64>> {
    enqueue_owned(db, kind, payload, dedupe_key, delay, super::Owner::Service).await
}

/// Like [`enqueue_at`], recording whose work it is (fair claims across companies).
pub async fn enqueue_owned<'e>(
    db: impl PgExecutor<'e>,
    kind: &str,
    payload: serde_json::Value,
    dedupe_key: Option<&str>,
    delay: Duration,
    owner: super::Owner<'_>,
) -> Result<Option<i64>> {
    use super::Owner;
    let (company, connection, customer) = match owner {
        Owner::Service => (None, None, None),
        Owner::Company(c) => (Some(c), None, None),
        Owner::Connection(c) => (None, Some(c), None),
        Owner::Customer(c) => (None, None, Some(c)),
    };
    Ok(sqlx::query_scalar!("INSERT INTO jobs (kind, payload, dedupe_key, run_after, company_id)
         VALUES ($1, $2, $3, now() + make_interval(secs => $4),
                 coalesce($5, (SELECT company_id FROM connections WHERE id = $6),
                          (SELECT company_id FROM saltedge_customers WHERE saltedge_id = $7)))
         ON CONFLICT (dedupe_key) WHERE dedupe_key IS NOT NULL AND status = 'queued' DO NOTHING RETURNING id",
        kind, payload, dedupe_key, delay.as_secs_f64(), company, connection, customer)
    .fetch_optional(db)
    .await?)
}

/// Jobs of one kind to queue together ([`enqueue_batch`]), column by column.
#[derive(Default)]
pub struct Batch {
    payloads: Vec<serde_json::Value>,
    dedupe_keys: Vec<Option<String>>,
    companies: Vec<Option<Uuid>>,
    connections: Vec<Option<Uuid>>,
    customers: Vec<Option<String>>,
}

impl Batch {
    pub fn push(
        &mut self,
        payload: serde_json::Value,
        dedupe_key: Option<String>,
        owner: super::Owner<'_>,
    ) {
        use super::Owner;
        let (company, connection, customer) = match owner {
            Owner::Service => (None, None, None),
            Owner::Company(c) => (Some(c), None, None),
            Owner::Connection(c) => (None, Some(c), None),
            Owner::Customer(c) => (None, None, Some(c.to_string())),
        };
        self.payloads.push(payload);
        self.dedupe_keys.push(dedupe_key);
        self.companies.push(company);
        self.connections.push(connection);
        self.customers.push(customer);
    }
}

/// [`enqueue_owned`] for many jobs of one kind, to run now: one statement; how many were
/// queued.
pub async fn enqueue_batch<'e>(db: impl PgExecutor<'e>, kind: &str, b: Batch) -> Result<u64> {
    if b.payloads.is_empty() {
        return Ok(0);
    }
    Ok(sqlx::query!(
        "INSERT INTO jobs (kind, payload, dedupe_key, run_after, company_id)
         SELECT $1, u.payload, u.dedupe_key, now(),
                coalesce(u.company, (SELECT company_id FROM connections WHERE id = u.connection),
                         (SELECT company_id FROM saltedge_customers WHERE saltedge_id = u.customer))
         FROM UNNEST($2::jsonb[], $3::text[], $4::uuid[], $5::uuid[], $6::text[])
              AS u(payload, dedupe_key, company, connection, customer)
         ON CONFLICT (dedupe_key) WHERE dedupe_key IS NOT NULL AND status = 'queued' DO NOTHING",
        kind,
        &b.payloads,
        &b.dedupe_keys as &[Option<String>],
        &b.companies as &[Option<Uuid>],
        &b.connections as &[Option<Uuid>],
        &b.customers as &[Option<String>]
    )
    .execute(db)
    .await?
    .rows_affected())
}

/// At start-up: the queued scheduler tick runs now and then re-queues itself with this
/// process's interval, so a changed `tick_secs` applies from the first tick on (a tick queued
/// by the previous process would otherwise keep its old time).
pub async fn start_schedule(pool: &PgPool) -> Result<()> {
    sqlx::query!("UPDATE jobs SET run_after = now() WHERE kind = $1 AND status = 'queued' AND run_after > now()", <super::Schedule as super::BackgroundJob>::KIND)
        .execute(pool)
        .await?;
    super::queue(pool, &super::Schedule {}).await?;
    Ok(())
}

/// Takes a ready job (queued, or running with an expired lease): the oldest of a company
/// with nothing running, else the oldest.
pub async fn claim(pool: &PgPool, worker: &str, lease: Duration) -> Result<Option<Job>> {
    // Expired leases past the cap are dead, not claimed again (first in line, forever).
    sqlx::query!("UPDATE jobs SET status = 'dead', finished_at = now(), lease_until = NULL,
             last_error = 'lease expired after attempt ' || attempts || ' of ' || max_attempts
                          || ' (the worker died, hung or panicked)' || coalesce('; before: ' || last_error, '')
         WHERE status = 'running' AND lease_until < now() AND attempts >= max_attempts")
    .execute(pool)
    .await?;
    // Fair across companies: the oldest ready job of a company with no job running comes
    // first (the service's own jobs always qualify); only when every ready job's company
    // is busy does a company run a second job at once.
    let fair = sqlx::query_as!(Job, r#"UPDATE jobs SET status = 'running', attempts = attempts + 1, locked_by = $1,
             lease_until = now() + make_interval(secs => $2)
         WHERE id = (SELECT j.id FROM jobs j
                     WHERE ((j.status = 'queued' AND j.run_after <= now()) OR (j.status = 'running' AND j.lease_until < now()))
                       AND NOT EXISTS (SELECT 1 FROM jobs r WHERE r.status = 'running' AND r.company_id = j.company_id
                                         AND r.lease_until >= now() AND r.id <> j.id)
                     ORDER BY j.run_after, j.id LIMIT 1 FOR UPDATE OF j SKIP LOCKED)
         RETURNING id, kind, payload, dedupe_key, status AS "status: crate::store::status::JobStatus", attempts, max_attempts, run_after, lease_until, locked_by, last_error, created_at, finished_at"#, worker, lease.as_secs_f64())
    .fetch_optional(pool)
    .await?;
    if fair.is_some() {
        return Ok(fair);
    }
    Ok(sqlx::query_as!(Job, r#"UPDATE jobs SET status = 'running', attempts = attempts + 1, locked_by = $1,
             lease_until = now() + make_interval(secs => $2)
         WHERE id = (SELECT id FROM jobs
                     WHERE (status = 'queued' AND run_after <= now()) OR (status = 'running' AND lease_until < now())
                     ORDER BY run_after, id LIMIT 1 FOR UPDATE SKIP LOCKED)
         RETURNING id, kind, payload, dedupe_key, status AS "status: crate::store::status::JobStatus", attempts, max_attempts, run_after, lease_until, locked_by, last_error, created_at, finished_at"#, worker, lease.as_secs_f64())
    .fetch_optional(pool)
    .await?)
}

/// Keeps a long job's lease alive. False when the lease was lost (another worker took it).
pub async fn heartbeat(pool: &PgPool, id: i64, worker: &str, lease: Duration) -> Result<bool> {
    Ok(sqlx::query!("UPDATE jobs SET lease_until = now() + make_interval(secs => $3) WHERE id = $1 AND locked_by = $2 AND status = 'running'", id, worker, lease.as_secs_f64())
        .execute(pool)
        .await?
        .rows_affected()
        == 1)
}

pub async fn complete(pool: &PgPool, id: i64, worker: &str) -> Result<()> {
    sqlx::query!("UPDATE jobs SET status = 'done', finished_at = now(), lease_until = NULL WHERE id = $1 AND locked_by = $2", id, worker)
        .execute(pool)
        .await?;
    Ok(())
}

/// Records a failure: retried after a backoff unless `permanent` (then `failed`) or out of
/// attempts (then `dead`). A job whose dedupe key already has a queued successor is not
/// retried: the successor does the same work.
pub async fn fail(
    pool: &PgPool,
    job: &Job,
    worker: &str,
    error: &str,
    permanent: bool,
) -> Result<()> {
    let retry = !permanent && job.attempts < job.max_attempts;
    let backoff = 5.0 * 2f64.powi(job.attempts.clamp(0, 10)); // 10 s, 20 s, 40 s…
    sqlx::query!("WITH me AS (
             SELECT $3 AND NOT EXISTS (SELECT 1 FROM jobs o, jobs j WHERE j.id = $1 AND o.dedupe_key = j.dedupe_key
                                         AND o.status = 'queued' AND o.id <> j.id) AS retry)
         UPDATE jobs SET status = CASE WHEN me.retry THEN 'queued' WHEN $6 THEN 'dead' ELSE 'failed' END,
             last_error = $4, lease_until = NULL,
             run_after = now() + make_interval(secs => $5),
             finished_at = CASE WHEN me.retry THEN NULL ELSE now() END
         FROM me WHERE id = $1 AND locked_by = $2", job.id, worker, retry, error, backoff.min(3600.0), !permanent && job.attempts >= job.max_attempts)
    .execute(pool)
    .await?;
    Ok(())
}

/// Queues a claimed job again for `after` from now without spending an attempt: it waited
/// for a shared budget (a fetch slot), and holding a worker while it waited would stall
/// everyone's jobs. A queued successor with the same dedupe key makes this one done.
pub async fn defer(
    pool: &PgPool,
    job: &Job,
    worker: &str,
    after: Duration,
    why: &str,
) -> Result<()> {
    sqlx::query!("WITH me AS (
             SELECT EXISTS (SELECT 1 FROM jobs o, jobs j WHERE j.id = $1 AND o.dedupe_key = j.dedupe_key
                              AND o.status = 'queued' AND o.id <> j.id) AS succeeded)
         UPDATE jobs SET status = CASE WHEN me.succeeded THEN 'done' ELSE 'queued' END,
             attempts = greatest(attempts - 1, 0), last_error = $3, lease_until = NULL, locked_by = NULL,
             run_after = now() + make_interval(secs => $4),
             finished_at = CASE WHEN me.succeeded THEN now() END
         FROM me WHERE id = $1 AND locked_by = $2", job.id, worker, why, after.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(())
}

/// Puts a claimed job back untouched (graceful shutdown).
pub async fn release(pool: &PgPool, id: i64, worker: &str) -> Result<()> {
    sqlx::query!("UPDATE jobs SET status = 'queued', attempts = greatest(attempts - 1, 0), lease_until = NULL, locked_by = NULL WHERE id = $1 AND locked_by = $2", id, worker)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn recent(pool: &PgPool, before: Option<i64>, limit: i64) -> Result<Vec<Job>> {
    Ok(sqlx::query_as!(Job, r#"SELECT id, kind, payload, dedupe_key, status AS "status: crate::store::status::JobStatus", attempts, max_attempts, run_after, lease_until, locked_by, last_error, created_at, finished_at FROM jobs
         WHERE ($2::bigint IS NULL OR id < $2) ORDER BY id DESC LIMIT $1"#, limit, before)
    .fetch_all(pool)
    .await?)
}

/// Dead jobs, newest first.
pub async fn dead(pool: &PgPool, before: Option<i64>, limit: i64) -> Result<Vec<Job>> {
    Ok(sqlx::query_as!(Job, r#"SELECT id, kind, payload, dedupe_key, status AS "status: crate::store::status::JobStatus", attempts, max_attempts, run_after, lease_until, locked_by, last_error, created_at, finished_at FROM jobs
         WHERE status = 'dead' AND ($2::bigint IS NULL OR id < $2) ORDER BY id DESC LIMIT $1"#, limit, before)
    .fetch_all(pool)
    .await?)
}

/// Queues a dead (or failed) job again with a fresh attempts count. Its last error is kept
/// until the next run replaces it. Returns false when there is no such finished job.
pub async fn rerun(pool: &PgPool, id: i64) -> Result<bool> {
    Ok(sqlx::query!("UPDATE jobs SET status = 'queued', attempts = 0, run_after = now(), finished_at = NULL, locked_by = NULL, lease_until = NULL
         WHERE id = $1 AND status IN ('dead', 'failed')
           AND NOT EXISTS (SELECT 1 FROM jobs o WHERE o.dedupe_key = jobs.dedupe_key AND o.status = 'queued')", id)
    .execute(pool)
    .await?
    .rows_affected()
        == 1)
}
