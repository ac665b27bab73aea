//! The Postgres pool, configured from settings.

use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

use crate::settings::Settings;

pub async fn connect(s: &Settings) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(s.database.max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect(s.database.url.expose())
        .await
        .context("cannot reach Postgres: check database.url / DATABASE_URL (scripts/pg.sh prints a working one)")
}
