//! `banksync sync --connection ID`: one sync, printed.

use anyhow::Context;
use sync_engine::{companies, connections, SyncOptions};

use crate::settings::Settings;

#[derive(clap::Args)]
pub struct Args {
    /// Local connection id (UUID) or Salt Edge connection id.
    #[arg(long)]
    pub connection: String,
    /// Adopt a Salt Edge connection not yet known locally for this company (id or name).
    #[arg(long)]
    pub company: Option<String>,
    /// Fetch the whole history instead of from the incremental cursor.
    #[arg(long)]
    pub full: bool,
}

pub async fn run(a: Args) -> anyhow::Result<()> {
    let settings = Settings::load()?;
    let pool = crate::db::connect(&settings).await?;
    let client = settings.client(&pool)?;
    let conn = match connections::find_by_key(&pool, &a.connection).await? {
        Some(c) => c,
        None => {
            let company = a.company.as_deref().context(
                "unknown connection: link it through the API first, or pass --company to adopt an existing Salt Edge connection",
            )?;
            let company = companies::find_by_key(&pool, company)
                .await?
                .with_context(|| format!("no company {company:?}"))?;
            match connections::adopt(&pool, &client, company.id, &a.connection).await {
                Ok(c) => c,
                Err(e)
                    if e.saltedge_class()
                        == Some(&saltedge_client::ErrorClass::ConnectionNotFound) =>
                {
                    anyhow::bail!("Salt Edge does not know connection {}", a.connection)
                }
                // Anything else (a refused signature, an outage) is reported as what it is.
                Err(e) => {
                    return Err(anyhow::Error::new(e).context(format!(
                        "could not adopt connection {} from Salt Edge",
                        a.connection
                    )))
                }
            }
        }
    };
    let opts = SyncOptions {
        full: a.full,
        trigger: "cli".into(),
        ..Default::default()
    };
    let report = sync_engine::sync_connection(&pool, &client, conn.id, &opts).await?;
    let r = &report.run;
    println!(
        "sync run {} of connection {} ({}): {}",
        r.id, conn.id, conn.provider_name, r.status
    );
    println!(
        "  from id:            {}",
        r.from_id.as_deref().unwrap_or("(whole history)")
    );
    println!("  pages:              {}", r.pages);
    println!("  fetched:            {}", r.fetched);
    println!("  inserted:           {}", r.inserted);
    println!("  updated:            {}", r.updated);
    println!("  already present:    {}", r.skipped_duplicate);
    println!("  flagged duplicated: {}", r.flagged_duplicated);
    println!("  before start date:  {}", r.skipped_before_start);
    println!("  pending removed:    {}", r.pending_removed);
    println!("  look-alikes:        {}", r.suspects);
    println!("  new accounts:       {}", report.new_accounts.len());
    let mismatches = r.balance_mismatches.as_array().map(Vec::len).unwrap_or(0);
    println!("  balance mismatches: {mismatches}");
    Ok(())
}
