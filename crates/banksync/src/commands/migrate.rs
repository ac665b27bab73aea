use anyhow::Context;

use crate::settings::Settings;

#[derive(clap::Args)]
pub struct Args {}

pub async fn run(_: Args) -> anyhow::Result<()> {
    let pool = crate::db::connect(&Settings::load()?).await?;
    sync_engine::MIGRATOR
        .run(&pool)
        .await
        .context("migrations failed")?;
    let n = sync_engine::MIGRATOR.iter().count();
    println!("database is at the latest schema ({n} migrations)");
    Ok(())
}
