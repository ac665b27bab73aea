//! One struct per kind of job: its payload, dedupe rule and work.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{BackgroundJob, JobContext, Owner};
use crate::error::Result;

/// Sync one connection (queued by a callback, the API, or the catch-up). `run_id` is the
/// sync run shown as queued; one sync per connection is queued at a time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SyncConnection {
    pub connection_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<Uuid>,
}

impl BackgroundJob for SyncConnection {
    const KIND: &'static str = "sync_connection";

    fn owner(&self) -> Owner<'_> {
        Owner::Connection(self.connection_id)
    }

    fn dedupe_key(&self) -> Option<String> {
        Some(format!("sync:{}", self.connection_id))
    }

    async fn run(self, ctx: JobContext) -> Result<()> {
        let opts = crate::SyncOptions {
            run_id: self.run_id,
            trigger: "job".into(),
            ..ctx.sync.clone()
        };
        crate::sync_connection(&ctx.pool, &ctx.client, self.connection_id, &opts)
            .await
            .map(|_| ())
    }
}

/// Apply one stored callback (queued with it, in the same statement: `inbox::store`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessCallback {
    pub inbox_id: i64,
}

impl BackgroundJob for ProcessCallback {
    const KIND: &'static str = "process_callback";

    async fn run(self, ctx: JobContext) -> Result<()> {
        crate::events::process(&ctx.pool, &ctx.client, self.inbox_id).await
    }
}

/// Reload the institution catalogue from Salt Edge.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RefreshCatalogue {}

impl BackgroundJob for RefreshCatalogue {
    const KIND: &'static str = "refresh_catalogue";

    fn dedupe_key(&self) -> Option<String> {
        Some("catalogue".into())
    }

    async fn run(self, ctx: JobContext) -> Result<()> {
        crate::catalogue::refresh(&ctx.pool, &ctx.client)
            .await
            .map(|_| ())
    }
}

/// Ask Salt Edge to refresh one connection (the daily rules said it is due).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshConnection {
    pub connection_id: Uuid,
}

impl BackgroundJob for RefreshConnection {
    const KIND: &'static str = "refresh_connection";

    fn owner(&self) -> Owner<'_> {
        Owner::Connection(self.connection_id)
    }

    fn dedupe_key(&self) -> Option<String> {
        Some(format!("refresh:{}", self.connection_id))
    }

    async fn run(self, ctx: JobContext) -> Result<()> {
        crate::schedule::refresh(
            &ctx.pool,
            &ctx.client,
            &ctx.schedule,
            self.connection_id,
            chrono::Utc::now(),
        )
        .await
    }
}

/// The lost-callback catch-up for one Salt Edge customer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListCustomer {
    pub customer_id: String,
}

impl BackgroundJob for ListCustomer {
    const KIND: &'static str = "list_customer";

    fn owner(&self) -> Owner<'_> {
        Owner::Customer(&self.customer_id)
    }

    fn dedupe_key(&self) -> Option<String> {
        Some(format!("list:{}", self.customer_id))
    }

    async fn run(self, ctx: JobContext) -> Result<()> {
        crate::schedule::list_customer(&ctx.pool, &ctx.client, &ctx.schedule, &self.customer_id)
            .await
    }
}

/// Delete what is older than the retention (once a day).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Prune {}

impl BackgroundJob for Prune {
    const KIND: &'static str = "prune";

    fn dedupe_key(&self) -> Option<String> {
        Some("prune".into())
    }

    async fn run(self, ctx: JobContext) -> Result<()> {
        crate::retention::prune(&ctx.pool, &ctx.retention)
            .await
            .map(|_| ())
    }
}

/// One scheduler tick; it queues the next one first, so a failing tick never stops the
/// schedule, and is never retried itself.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Schedule {}

impl BackgroundJob for Schedule {
    const KIND: &'static str = "schedule";
    const RETRIES: bool = false;

    fn dedupe_key(&self) -> Option<String> {
        Some("schedule".into())
    }

    async fn run(self, ctx: JobContext) -> Result<()> {
        super::queue_in(&ctx.pool, &Schedule {}, ctx.schedule.tick).await?;
        match crate::schedule::tick_once(&ctx.pool, &ctx.client, &ctx.schedule, chrono::Utc::now())
            .await?
        {
            Some(n) => tracing::info!(refreshes = n, "scheduler tick"),
            None => tracing::info!("scheduler tick skipped: another replica's tick is running"),
        }
        Ok(())
    }
}
