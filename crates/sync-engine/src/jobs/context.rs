//! What a job runs with: the connections and this process's settings.

use saltedge_client::Client;
use sqlx::PgPool;

/// What every job's `run` gets.
#[derive(Clone)]
pub struct JobContext {
    pub pool: PgPool,
    pub client: Client,
    pub sync: crate::SyncOptions,
    pub schedule: crate::schedule::ScheduleConfig,
    pub retention: crate::retention::Retention,
}
