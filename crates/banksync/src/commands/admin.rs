//! `banksync company create NAME` and `banksync token create --company ID|NAME`.

use anyhow::Context;
use sync_engine::{companies, tokens};

use crate::settings::Settings;

#[derive(clap::Args)]
pub struct CompanyArgs {
    #[command(subcommand)]
    pub cmd: CompanyCmd,
}

#[derive(clap::Subcommand)]
pub enum CompanyCmd {
    /// Create a company (a tenant) and print its id.
    Create { name: String },
    /// Allow the company's frontend origin (`https://books.example`) as a `return_to`.
    AllowOrigin {
        /// Company id or exact name.
        company: String,
        origin: String,
    },
}

#[derive(clap::Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub cmd: TokenCmd,
}

#[derive(clap::Subcommand)]
pub enum TokenCmd {
    /// Create an API token for a company; the token is printed once and stored hashed.
    Create {
        /// Company id or exact name.
        #[arg(long)]
        company: String,
        /// A label to recognise the token by.
        #[arg(long, default_value = "")]
        name: String,
        /// The token may also read operational data (job history).
        #[arg(long)]
        admin: bool,
    },
}

#[derive(clap::Args)]
pub struct JobsArgs {
    /// How many, newest first.
    #[arg(long, default_value_t = 50)]
    pub limit: i64,
    /// Only dead jobs (past their attempts cap), with their reasons.
    #[arg(long)]
    pub dead: bool,
    /// Queue a dead or failed job again, with a fresh attempts count.
    #[arg(long, value_name = "JOB_ID")]
    pub rerun: Option<i64>,
}

pub async fn jobs(a: JobsArgs) -> anyhow::Result<()> {
    let pool = crate::db::connect(&Settings::load()?).await?;
    if let Some(id) = a.rerun {
        anyhow::ensure!(
            sync_engine::jobs::rerun(&pool, id).await?,
            "job {id} is not dead or failed (or the same work is already queued): see `banksync jobs --dead`"
        );
        println!("job {id} queued again");
        return Ok(());
    }
    let list = if a.dead { sync_engine::jobs::dead(&pool, a.limit).await? } else { sync_engine::jobs::recent(&pool, a.limit).await? };
    println!("{:>8}  {:<18} {:<8} {:>3}  {:<25} {}", "id", "kind", "status", "try", "created", "last error");
    for j in list {
        println!(
            "{:>8}  {:<18} {:<8} {:>3}  {:<25} {}",
            j.id,
            j.kind,
            j.status,
            j.attempts,
            j.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
            j.last_error.unwrap_or_default()
        );
    }
    Ok(())
}

pub async fn company(a: CompanyArgs) -> anyhow::Result<()> {
    let pool = crate::db::connect(&Settings::load()?).await?;
    match a.cmd {
        CompanyCmd::Create { name } => {
            anyhow::ensure!(!name.trim().is_empty(), "give the company a name");
            let c = companies::create(&pool, name.trim()).await?;
            println!("{}", c.id);
        }
        CompanyCmd::AllowOrigin { company, origin } => {
            let url = url::Url::parse(&origin).with_context(|| format!("{origin:?} is not a URL like https://books.example"))?;
            anyhow::ensure!(matches!(url.scheme(), "http" | "https"), "an origin is http(s)://host[:port]");
            let c = companies::find_by_key(&pool, &company)
                .await?
                .with_context(|| format!("no company {company:?}: create it with `banksync company create NAME`"))?;
            let origin = url.origin().ascii_serialization();
            companies::allow_origin(&pool, c.id, &origin).await?;
            println!("{} may send users back to {origin}", c.name);
        }
    }
    Ok(())
}

pub async fn token(a: TokenArgs) -> anyhow::Result<()> {
    let pool = crate::db::connect(&Settings::load()?).await?;
    match a.cmd {
        TokenCmd::Create { company, name, admin } => {
            let c = companies::find_by_key(&pool, &company)
                .await?
                .with_context(|| format!("no company {company:?}: create it with `banksync company create NAME`"))?;
            let (_, token) = tokens::create_with(&pool, c.id, &name, admin).await?;
            eprintln!("token for company {} ({}); it is shown only now:", c.name, c.id);
            println!("{token}");
        }
    }
    Ok(())
}
