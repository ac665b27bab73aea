//! The job worker: claims jobs from the queue and runs them, keeping each lease alive while
//! it works. On shutdown it stops claiming, lets running jobs finish within a grace period and
//! puts the rest back.

use std::sync::Arc;
use std::time::Duration;

use saltedge_client::Client;
use sqlx::PgPool;
use tokio::sync::watch;
use uuid::Uuid;

use crate::error::SyncError;
use crate::jobs::{self, Job, JobContext};
use crate::SyncOptions;

/// The job loops' vital signs, shared with the HTTP server's `/livez`: each loop beats
/// while it polls and while its job runs. A loop that ended is restarted by the worker; a
/// loop whose last beat is too old is stuck.
#[derive(Debug, Default)]
pub struct Health {
    beats: std::sync::Mutex<Vec<Option<std::time::Instant>>>,
    pub restarts: std::sync::atomic::AtomicU64,
}

impl Health {
    fn beat(&self, slot: usize) {
        let mut b = self.beats.lock().unwrap();
        if b.len() <= slot {
            b.resize(slot + 1, None);
        }
        b[slot] = Some(std::time::Instant::now());
    }

    fn ended(&self, slot: usize) {
        if let Some(b) = self.beats.lock().unwrap().get_mut(slot) {
            *b = None;
        }
    }

    /// Loops that are dead or have not beaten for `stale`; empty when all is well.
    pub fn problems(&self, stale: Duration) -> Vec<String> {
        let now = std::time::Instant::now();
        self.beats
            .lock()
            .unwrap()
            .iter()
            .enumerate()
            .filter_map(|(i, b)| match b {
                None => Some(format!("job loop {i} is not running")),
                Some(t) if now.duration_since(*t) > stale => Some(format!(
                    "job loop {i} silent for {} s",
                    now.duration_since(*t).as_secs()
                )),
                _ => None,
            })
            .collect()
    }
}

/// A handler for a job kind the engine does not know itself (see [`Worker::register`]).
pub type Handler = Arc<
    dyn Fn(
            serde_json::Value,
        )
            -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), SyncError>> + Send>>
        + Send
        + Sync,
>;

#[derive(Clone)]
pub struct Worker {
    pub pool: PgPool,
    pub client: Client,
    pub id: String,
    pub lease: Duration,
    pub poll: Duration,
    pub sync: SyncOptions,
    pub schedule: crate::schedule::ScheduleConfig,
    pub retention: crate::retention::Retention,
    pub health: Arc<Health>,
    /// Extra job kinds, by name.
    pub handlers: std::collections::HashMap<String, Handler>,
    /// banksync's own job kinds ([`jobs::registry`]).
    registry: Vec<jobs::Registered>,
}

impl Worker {
    pub fn new(pool: PgPool, client: Client) -> Self {
        Worker {
            pool,
            client,
            id: format!(
                "{}-{}",
                std::process::id(),
                &Uuid::new_v4().simple().to_string()[..8]
            ),
            lease: Duration::from_secs(60),
            poll: Duration::from_millis(200),
            sync: SyncOptions::default(),
            schedule: Default::default(),
            handlers: Default::default(),
            registry: jobs::registry(),
            retention: Default::default(),
            health: Default::default(),
        }
    }

    /// Runs jobs of `kind` with `handler` (an extension point for embedders and tests).
    pub fn register(&mut self, kind: &str, handler: Handler) {
        self.handlers.insert(kind.to_string(), handler);
    }

    /// Runs `concurrency` job loops until `shutdown` turns true; in-flight jobs then get
    /// `grace` to finish before they are released for another worker.
    /// A loop that ends before shutdown (a panic outside a job) is restarted.
    pub async fn run(self, concurrency: usize, shutdown: watch::Receiver<bool>, grace: Duration) {
        let me = Arc::new(self);
        let mut loops = tokio::task::JoinSet::new();
        let mut slots: std::collections::HashMap<tokio::task::Id, usize> =
            std::collections::HashMap::new();
        let spawn = |loops: &mut tokio::task::JoinSet<()>, slot: usize| {
            let me = me.clone();
            let stop = shutdown.clone();
            me.health.beat(slot);
            loops
                .spawn(async move { me.job_loop(slot, stop, grace).await })
                .id()
        };
        for slot in 0..concurrency.max(1) {
            slots.insert(spawn(&mut loops, slot), slot);
        }
        while let Some(ended) = loops.join_next_with_id().await {
            let (id, why) = match &ended {
                Ok((id, ())) => (*id, "it returned".to_string()),
                Err(e) => (e.id(), e.to_string()),
            };
            let Some(slot) = slots.remove(&id) else {
                continue;
            };
            if *shutdown.borrow() {
                continue;
            }
            tracing::error!(slot, why, "job loop ended; restarting it");
            me.health
                .restarts
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            slots.insert(spawn(&mut loops, slot), slot);
        }
    }

    async fn job_loop(&self, slot: usize, mut stop: watch::Receiver<bool>, grace: Duration) {
        let _ended = LoopEnd(self.health.clone(), slot);
        loop {
            self.health.beat(slot);
            if *stop.borrow() {
                return;
            }
            let job = match jobs::claim(&self.pool, &self.id, self.lease).await {
                Ok(Some(j)) => j,
                Ok(None) => {
                    tokio::select! {
                        _ = tokio::time::sleep(self.poll) => {}
                        _ = stop.changed() => {}
                    }
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot claim jobs");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let work = self.run_isolated(&job, slot);
            tokio::pin!(work);
            let result = tokio::select! {
                r = &mut work => Some(r),
                _ = wait_stop_then(&mut stop, grace) => None,
            };
            match result {
                Some(Ok(())) => {
                    let _ = jobs::complete(&self.pool, job.id, &self.id).await;
                }
                Some(Err(e)) if e.retry_after().is_some() => {
                    let after = e.retry_after().unwrap_or_default();
                    tracing::info!(job = job.id, kind = %job.kind, ?after, "job waits for a fetch slot: queued again");
                    let _ = jobs::defer(&self.pool, &job, &self.id, after, &e.to_string()).await;
                }
                Some(Err(e)) => {
                    // A scheduler tick has already queued its successor: never retry it.
                    let retries = self
                        .registry
                        .iter()
                        .find(|r| r.kind == job.kind)
                        .is_none_or(|r| r.retries);
                    let permanent = !e.is_retryable() || !retries;
                    tracing::warn!(job = job.id, kind = %job.kind, error = %e, permanent, "job failed");
                    let _ = jobs::fail(&self.pool, &job, &self.id, &e.to_string(), permanent).await;
                }
                None => {
                    tracing::info!(job = job.id, "shutting down: job released");
                    let _ = jobs::release(&self.pool, job.id, &self.id).await;
                    return;
                }
            }
        }
    }

    /// Runs one job on its own task, so that a panic fails that job alone (recorded with its
    /// message) and this loop goes on.
    async fn run_isolated(&self, job: &Job, slot: usize) -> Result<(), SyncError> {
        let me = self.clone();
        let owned = job.clone();
        let handle = tokio::spawn(async move { me.run_job(&owned, slot).await });
        let abort = handle.abort_handle();
        // Dropped (shutdown after the grace period): the spawned work is stopped too.
        let _guard = AbortOnDrop(abort);
        match handle.await {
            Ok(r) => r,
            Err(e) if e.is_panic() => {
                let payload = e.into_panic();
                let msg = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "(no message)".into());
                tracing::error!(job = job.id, kind = %job.kind, panic = %msg, "job panicked");
                Err(SyncError::Panicked(msg))
            }
            Err(e) => Err(SyncError::Panicked(format!("job task ended: {e}"))),
        }
    }

    /// Runs one job while renewing its lease.
    async fn run_job(&self, job: &Job, slot: usize) -> Result<(), SyncError> {
        let work = self.execute(job);
        tokio::pin!(work);
        let mut beat = tokio::time::interval(self.lease / 3);
        beat.tick().await;
        loop {
            tokio::select! {
                r = &mut work => return r,
                _ = beat.tick() => {
                    self.health.beat(slot);
                    let _ = jobs::heartbeat(&self.pool, job.id, &self.id, self.lease).await;
                }
            }
        }
    }

    fn context(&self) -> JobContext {
        JobContext {
            pool: self.pool.clone(),
            client: self.client.clone(),
            sync: self.sync.clone(),
            schedule: self.schedule.clone(),
            retention: self.retention.clone(),
        }
    }

    async fn execute(&self, job: &Job) -> Result<(), SyncError> {
        if let Some(r) = self.registry.iter().find(|r| r.kind == job.kind) {
            return r.run(self.context(), job.payload.clone()).await;
        }
        match self.handlers.get(&job.kind) {
            Some(h) => h(job.payload.clone()).await,
            None => Err(SyncError::Corrupt(format!("unknown job kind {}", job.kind))),
        }
    }
}

/// Marks the loop's slot as not running when the loop ends, however it ends.
struct LoopEnd(Arc<Health>, usize);

impl Drop for LoopEnd {
    fn drop(&mut self) {
        self.0.ended(self.1);
    }
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn wait_stop_then(stop: &mut watch::Receiver<bool>, grace: Duration) {
    let _ = stop.wait_for(|s| *s).await;
    tokio::time::sleep(grace).await;
}
