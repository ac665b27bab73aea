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
    },
}

pub async fn company(a: CompanyArgs) -> anyhow::Result<()> {
    let pool = crate::db::connect(&Settings::load()?).await?;
    match a.cmd {
        CompanyCmd::Create { name } => {
            anyhow::ensure!(!name.trim().is_empty(), "give the company a name");
            let c = companies::create(&pool, name.trim()).await?;
            println!("{}", c.id);
        }
    }
    Ok(())
}

pub async fn token(a: TokenArgs) -> anyhow::Result<()> {
    let pool = crate::db::connect(&Settings::load()?).await?;
    match a.cmd {
        TokenCmd::Create { company, name } => {
            let c = companies::find_by_key(&pool, &company)
                .await?
                .with_context(|| format!("no company {company:?}: create it with `banksync company create NAME`"))?;
            let (_, token) = tokens::create(&pool, c.id, &name).await?;
            eprintln!("token for company {} ({}); it is shown only now:", c.name, c.id);
            println!("{token}");
        }
    }
    Ok(())
}
