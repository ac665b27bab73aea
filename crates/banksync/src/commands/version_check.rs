//! `banksync version-check`: before moving an installation to another Salt Edge API version
//! (v5 → v6), asks Salt Edge — through the client as configured, so run it with the new
//! `saltedge.base_url` — whether each connection carries over. Prints one JSON object per
//! connection and a summary; exits 1 when some could not be checked.

use crate::settings::Settings;

#[derive(clap::Args)]
pub struct Args {}

pub async fn run(_a: Args) -> anyhow::Result<()> {
    let settings = Settings::load()?;
    let pool = crate::db::connect(&settings).await?;
    let client = settings.client(&pool)?;
    let rows = sync_engine::connections::version_check(&pool, &client).await?;
    let (mut over, mut again, mut unknown) = (0, 0, 0);
    for r in &rows {
        match r.carries {
            sync_engine::connections::Carries::Over => over += 1,
            sync_engine::connections::Carries::LinkAgain { .. } => again += 1,
            sync_engine::connections::Carries::Unknown { .. } => unknown += 1,
        }
        println!("{}", serde_json::to_string(r)?);
    }
    eprintln!(
        "Salt Edge API v{}: {over} connection(s) carry over, {again} must be linked again (journals and history are kept), {unknown} could not be checked",
        client.version().number()
    );
    if unknown > 0 {
        anyhow::bail!("{unknown} connection(s) could not be checked: run it again");
    }
    Ok(())
}
