//! A scratch database for the benchmarks, beside the configured one.

use std::str::FromStr;

use anyhow::Context;
use sqlx::postgres::PgConnectOptions;
use sqlx::ConnectOptions;

use crate::settings::Settings;

/// Runs `f` against a fresh database on the configured server, dropped afterwards unless
/// `keep`.
pub async fn with_scratch_db<F, Fut, T>(prefix: &str, keep: bool, f: F) -> anyhow::Result<T>
where
    F: FnOnce(PgConnectOptions) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let settings = Settings::load()?;
    let admin_opts = PgConnectOptions::from_str(settings.database.url.expose())
        .context("database.url is not a Postgres URL")?;
    let db_name = format!("{prefix}_{}", std::process::id());
    let mut admin = admin_opts
        .connect()
        .await
        .context("cannot reach Postgres (DATABASE_URL)")?;
    // DDL with an identifier (a name made here, never input): not a checked query, as
    // identifiers cannot be bound.
    sqlx::query(&format!("CREATE DATABASE {db_name}"))
        .execute(&mut admin)
        .await?;
    let result = f(admin_opts.clone().database(&db_name)).await;
    if !keep {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"))
            .execute(&mut admin)
            .await;
    }
    result
}
