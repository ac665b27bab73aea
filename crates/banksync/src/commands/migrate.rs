use anyhow::Context;

use crate::settings::Settings;

#[derive(clap::Args)]
pub struct Args {}

pub async fn run(_: Args) -> anyhow::Result<()> {
    let s = Settings::load()?;
    let pool = sqlx::PgPool::connect(s.database.url.expose())
        .await
        .context("cannot reach Postgres: check database.url / DATABASE_URL (scripts/pg.sh prints a working one)")?;
    sync_engine::MIGRATOR.run(&pool).await.context("migrations failed")?;
    let n = sync_engine::MIGRATOR.iter().count();
    println!("database is at the latest schema ({n} migrations)");
    Ok(())
}
