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
    /// How the console shows the company's dates and amounts (`en-GB`, `en-US`, `de-DE`…).
    SetLocale {
        /// Company id or exact name.
        company: String,
        locale: String,
    },
}

#[derive(clap::Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub cmd: TokenCmd,
}

#[derive(clap::Subcommand)]
pub enum TokenCmd {
    /// Create an API token; it is printed once and stored hashed. A company token acts for
    /// one company; an operator token (`--operator`) reads jobs, tokens and the audit log
    /// and never a company's data.
    Create {
        /// Company id or exact name (company tokens).
        #[arg(
            long,
            required_unless_present = "operator",
            conflicts_with = "operator"
        )]
        company: Option<String>,
        /// An operator token instead of a company token.
        #[arg(long, alias = "admin")]
        operator: bool,
        /// A label to recognise the token by.
        #[arg(long, default_value = "")]
        name: String,
        /// The token stops working after this many days.
        #[arg(long)]
        expires_days: Option<i64>,
    },
    /// List tokens (never the tokens themselves) with their last use.
    List {
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Revoke a token at once.
    Revoke { id: uuid::Uuid },
}

/// The CLI user, for the audit log.
fn cli_actor() -> String {
    format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into())
    )
}

async fn audit(
    pool: &sqlx::PgPool,
    action: &str,
    company_id: Option<uuid::Uuid>,
    detail: Option<&str>,
) -> anyhow::Result<()> {
    let actor = cli_actor();
    sync_engine::audit::record(
        pool,
        &sync_engine::audit::Entry {
            token_id: None,
            company_id,
            actor: &actor,
            action,
            status: Some(0),
            detail,
        },
    )
    .await?;
    Ok(())
}

#[derive(clap::Args)]
pub struct AuditArgs {
    /// How many, newest first.
    #[arg(long, default_value_t = 50)]
    pub limit: i64,
}

/// `banksync audit`: state-changing API calls and admin commands, newest first.
pub async fn audit_log(a: AuditArgs) -> anyhow::Result<()> {
    let pool = crate::db::connect(&Settings::load()?).await?;
    println!(
        "{:>8}  {:<25} {:<50} {:<45} {:>6}",
        "id", "at", "actor", "action", "result"
    );
    for r in sync_engine::audit::recent(&pool, None, a.limit).await? {
        println!(
            "{:>8}  {:<25} {:<50} {:<45} {:>6}",
            r.id,
            r.at.format("%Y-%m-%d %H:%M:%S UTC"),
            r.actor,
            r.action,
            r.status.map(|s| s.to_string()).unwrap_or_default()
        );
    }
    Ok(())
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
        audit(&pool, "cli jobs rerun", None, Some(&id.to_string())).await?;
        println!("job {id} queued again");
        return Ok(());
    }
    let list = if a.dead {
        sync_engine::jobs::dead(&pool, None, a.limit).await?
    } else {
        sync_engine::jobs::recent(&pool, None, a.limit).await?
    };
    println!(
        "{:>8}  {:<18} {:<8} {:>3}  {:<25} last error",
        "id", "kind", "status", "try", "created"
    );
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
            audit(&pool, "cli company create", Some(c.id), Some(&c.name)).await?;
            println!("{}", c.id);
        }
        CompanyCmd::AllowOrigin { company, origin } => {
            let url = url::Url::parse(&origin)
                .with_context(|| format!("{origin:?} is not a URL like https://books.example"))?;
            anyhow::ensure!(
                matches!(url.scheme(), "http" | "https"),
                "an origin is http(s)://host[:port]"
            );
            let c = companies::find_by_key(&pool, &company)
                .await?
                .with_context(|| {
                    format!("no company {company:?}: create it with `banksync company create NAME`")
                })?;
            let origin = url.origin().ascii_serialization();
            companies::allow_origin(&pool, c.id, &origin).await?;
            audit(&pool, "cli company allow-origin", Some(c.id), Some(&origin)).await?;
            println!("{} may send users back to {origin}", c.name);
        }
        CompanyCmd::SetLocale { company, locale } => {
            let c = companies::find_by_key(&pool, &company)
                .await?
                .with_context(|| {
                    format!("no company {company:?}: create it with `banksync company create NAME`")
                })?;
            companies::set_locale(&pool, c.id, &locale).await?;
            audit(&pool, "cli company set-locale", Some(c.id), Some(&locale)).await?;
            println!("{} is shown in {locale}", c.name);
        }
    }
    Ok(())
}

pub async fn token(a: TokenArgs) -> anyhow::Result<()> {
    let pool = crate::db::connect(&Settings::load()?).await?;
    match a.cmd {
        TokenCmd::Create {
            company,
            operator,
            name,
            expires_days,
        } => {
            anyhow::ensure!(
                expires_days.is_none_or(|d| d >= 1),
                "--expires-days is at least 1"
            );
            let valid_for = expires_days.map(chrono::Duration::days);
            let company = match (company, operator) {
                (Some(key), false) => Some(
                    companies::find_by_key(&pool, &key)
                        .await?
                        .with_context(|| {
                            format!(
                                "no company {key:?}: create it with `banksync company create NAME`"
                            )
                        })?,
                ),
                _ => None,
            };
            let (id, token) =
                tokens::insert(&pool, company.as_ref().map(|c| c.id), &name, valid_for).await?;
            match &company {
                Some(c) => eprintln!(
                    "token {id} for company {} ({}); it is shown only now:",
                    c.name, c.id
                ),
                None => eprintln!("operator token {id}; it is shown only now:"),
            }
            audit(
                &pool,
                "cli token create",
                company.map(|c| c.id),
                Some(&id.to_string()),
            )
            .await?;
            println!("{token}");
        }
        TokenCmd::List { limit } => {
            println!(
                "{:<36}  {:<8} {:<36}  {:<16} {:<20} {:<20} revoked",
                "id", "kind", "company", "name", "last used", "expires"
            );
            let when = |t: Option<chrono::DateTime<chrono::Utc>>| {
                t.map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                    .unwrap_or_else(|| "-".into())
            };
            for t in tokens::list(&pool, limit).await? {
                println!(
                    "{:<36}  {:<8} {:<36}  {:<16} {:<20} {:<20} {}",
                    t.id,
                    t.kind,
                    t.company_id
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| "-".into()),
                    t.name,
                    when(t.last_used_at),
                    when(t.expires_at),
                    when(t.revoked_at)
                );
            }
        }
        TokenCmd::Revoke { id } => {
            anyhow::ensure!(
                tokens::revoke(&pool, id).await?,
                "no live token {id}: see `banksync token list`"
            );
            audit(&pool, "cli token revoke", None, Some(&id.to_string())).await?;
            println!("token {id} revoked");
        }
    }
    Ok(())
}
