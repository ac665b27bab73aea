//! The Postgres pool, configured from settings.

use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

use crate::settings::Settings;

/// The pool's rules (`sync_engine::store::pool`), idle connections pinged after
/// [`sync_engine::store::pool::PING_IDLE`].
pub fn pool_options() -> PgPoolOptions {
    sync_engine::store::pool::options(sync_engine::store::pool::PING_IDLE)
}

pub async fn connect(s: &Settings) -> anyhow::Result<PgPool> {
    pool_options()
        .max_connections(s.database.max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect(s.database.url.expose())
        .await
        .context("cannot reach Postgres: check database.url / DATABASE_URL (scripts/pg.sh prints a working one)")
}
