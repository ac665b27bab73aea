//! Background jobs: the durable queue in Postgres ([`queue`]), the worker that runs it
//! ([`worker`]), and one typed struct per kind of job — what it carries, its dedupe rule
//! and its `run` — registered once in [`registry`]. Payloads are the structs serialized;
//! nothing parses a payload by hand.

mod context;
mod kinds;
pub mod queue;
pub mod worker;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

pub use context::JobContext;
pub use kinds::{
    ListCustomer, ProcessCallback, Prune, RefreshCatalogue, RefreshConnection, Schedule,
    SyncConnection,
};
pub use queue::*;

use crate::error::{Result, SyncError};

/// One kind of background job.
pub trait BackgroundJob: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The `kind` column: stable, stored with queued jobs.
    const KIND: &'static str;
    /// False when a failure must never be retried (a scheduler tick has already queued
    /// its successor); otherwise the error decides ([`SyncError::is_retryable`]).
    const RETRIES: bool = true;

    /// While a job with this key is queued, the same work is not queued again.
    fn dedupe_key(&self) -> Option<String> {
        None
    }

    /// Whose work it is, for fair claims across companies (default: the service's own).
    fn owner(&self) -> Owner<'_> {
        Owner::Service
    }

    fn run(self, ctx: JobContext) -> impl Future<Output = Result<()>> + Send;
}

/// Whose work a job is: the company is looked up when it is queued.
#[derive(Debug, Clone, Copy)]
pub enum Owner<'a> {
    Service,
    Company(Uuid),
    Connection(Uuid),
    Customer(&'a str),
}

/// Queues `job` to run now; `None` when the same work (its dedupe key) is already queued.
pub async fn queue<'e, J: BackgroundJob>(db: impl PgExecutor<'e>, job: &J) -> Result<Option<i64>> {
    queue_in(db, job, Duration::ZERO).await
}

/// Queues many jobs of one kind to run now, in one statement; how many were queued (the
/// others' work was queued already).
pub async fn queue_all<'e, J: BackgroundJob>(db: impl PgExecutor<'e>, jobs: &[J]) -> Result<u64> {
    let mut batch = queue::Batch::default();
    for job in jobs {
        let payload = serde_json::to_value(job)
            .map_err(|e| SyncError::Corrupt(format!("{} payload: {e}", J::KIND)))?;
        batch.push(payload, job.dedupe_key(), job.owner());
    }
    queue::enqueue_batch(db, J::KIND, batch).await
}

/// Queues `job` to run `delay` from now.
pub async fn queue_in<'e, J: BackgroundJob>(
    db: impl PgExecutor<'e>,
    job: &J,
    delay: Duration,
) -> Result<Option<i64>> {
    let payload = serde_json::to_value(job)
        .map_err(|e| SyncError::Corrupt(format!("{} payload: {e}", J::KIND)))?;
    queue::enqueue_owned(
        db,
        J::KIND,
        payload,
        job.dedupe_key().as_deref(),
        delay,
        job.owner(),
    )
    .await
}

/// Queues a sync of a connection, unless one is already queued; returns the queued run's id.
pub async fn queue_sync(
    pool: &PgPool,
    company_id: Uuid,
    connection_id: Uuid,
    trigger: &str,
) -> Result<Uuid> {
    let key = format!("sync:{connection_id}");
    for _ in 0..3 {
        if let Some(Some(run)) = sqlx::query_scalar!(
            "SELECT payload->>'run_id' FROM jobs WHERE dedupe_key = $1 AND status = 'queued'",
            &key
        )
        .fetch_optional(pool)
        .await?
        {
            if let Ok(id) = run.parse() {
                return Ok(id);
            }
        }
        let mut tx = pool.begin().await?;
        let run_id: Uuid = sqlx::query_scalar!("INSERT INTO sync_runs (company_id, connection_id, trigger, status) VALUES ($1, $2, $3, 'queued') RETURNING id", company_id, connection_id, trigger)
        .fetch_one(&mut *tx)
        .await?;
        let job = SyncConnection {
            connection_id,
            run_id: Some(run_id),
        };
        if queue(&mut *tx, &job).await?.is_some() {
            tx.commit().await?;
            return Ok(run_id);
        }
        // Someone queued one meanwhile: drop ours and return theirs.
        tx.rollback().await?;
    }
    Err(SyncError::conflict(
        "conflict",
        "could not queue a sync: another was queued and finished meanwhile, twice; try again",
    ))
}

/// [`queue_sync`] for many connections (company, connection) at once: in one transaction,
/// their runs and their jobs in one statement each; a connection with a sync already queued
/// keeps that one (the run made for it here is dropped). How many were queued.
pub async fn queue_syncs(
    pool: &PgPool,
    connections: &[(Uuid, Uuid)],
    trigger: &str,
) -> Result<u64> {
    if connections.is_empty() {
        return Ok(0);
    }
    let runs: Vec<Uuid> = connections.iter().map(|_| Uuid::new_v4()).collect();
    let (companies, conns): (Vec<Uuid>, Vec<Uuid>) = connections.iter().copied().unzip();
    let mut batch = queue::Batch::default();
    for (&connection_id, &run) in conns.iter().zip(&runs) {
        let job = SyncConnection {
            connection_id,
            run_id: Some(run),
        };
        let payload = serde_json::to_value(&job)
            .map_err(|e| SyncError::Corrupt(format!("{} payload: {e}", SyncConnection::KIND)))?;
        batch.push(payload, job.dedupe_key(), job.owner());
    }
    let mut tx = pool.begin().await?;
    sqlx::query!("INSERT INTO sync_runs (id, company_id, connection_id, trigger, status)
         SELECT u.id, u.company, u.conn, $4, 'queued' FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[]) AS u(id, company, conn)",
        &runs, &companies, &conns, trigger)
    .execute(&mut *tx)
    .await?;
    let queued = queue::enqueue_batch(&mut *tx, SyncConnection::KIND, batch).await?;
    if queued < runs.len() as u64 {
        sqlx::query!("DELETE FROM sync_runs r WHERE r.id = ANY($1) AND NOT EXISTS (
               SELECT 1 FROM jobs j WHERE j.dedupe_key = 'sync:' || r.connection_id AND j.status = 'queued'
                 AND j.payload->>'run_id' = r.id::text)", &runs)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(queued)
}

type Run = fn(JobContext, serde_json::Value) -> Pin<Box<dyn Future<Output = Result<()>> + Send>>;

/// A registered kind: how to run its payload, and whether it retries.
#[derive(Clone, Copy)]
pub struct Registered {
    pub kind: &'static str,
    pub retries: bool,
    run: Run,
}

impl Registered {
    pub fn run(
        &self,
        ctx: JobContext,
        payload: serde_json::Value,
    ) -> Pin<Box<dyn Future<Output = Result<()>> + Send>> {
        (self.run)(ctx, payload)
    }
}

fn register<J: BackgroundJob>() -> Registered {
    fn run<J: BackgroundJob>(
        ctx: JobContext,
        payload: serde_json::Value,
    ) -> Pin<Box<dyn Future<Output = Result<()>> + Send>> {
        Box::pin(async move {
            let job: J = serde_json::from_value(payload)
                .map_err(|e| SyncError::Corrupt(format!("{} payload: {e}", J::KIND)))?;
            job.run(ctx).await
        })
    }
    Registered {
        kind: J::KIND,
        retries: J::RETRIES,
        run: run::<J>,
    }
}

/// Every kind of job banksync runs, registered once.
pub fn registry() -> Vec<Registered> {
    vec![
        register::<SyncConnection>(),
        register::<ProcessCallback>(),
        register::<RefreshCatalogue>(),
        register::<RefreshConnection>(),
        register::<ListCustomer>(),
        register::<Prune>(),
        register::<Schedule>(),
    ]
}
