//! A connection as the bookkeeper sees it: the record, its accounts with their journals,
//! and its last sync run.

use sqlx::PgPool;
use uuid::Uuid;

use crate::connections::{self, Connection};
use crate::error::Result;
use crate::mapping::{self, BankAccount};
use crate::runs::{self, SyncRun};

#[derive(Debug, Clone)]
pub struct ConnectionView {
    pub connection: Connection,
    /// Each account with the name of the journal it feeds.
    pub accounts: Vec<(BankAccount, String)>,
    pub last_run: Option<SyncRun>,
}

pub async fn connection_view(pool: &PgPool, c: Connection) -> Result<ConnectionView> {
    let journals = mapping::journals(pool, c.company_id).await?;
    view_with(pool, c, &journals).await
}

/// Every connection of the company, oldest first (the company's journals read once).
pub async fn connection_views(pool: &PgPool, company: Uuid) -> Result<Vec<ConnectionView>> {
    let journals = mapping::journals(pool, company).await?;
    let mut out = vec![];
    for c in connections::of_company(pool, company).await? {
        out.push(view_with(pool, c, &journals).await?);
    }
    Ok(out)
}

async fn view_with(
    pool: &PgPool,
    c: Connection,
    journals: &[mapping::Journal],
) -> Result<ConnectionView> {
    let accounts = mapping::accounts_of_connection(pool, c.id)
        .await?
        .into_iter()
        .map(|a| {
            let name = journals
                .iter()
                .find(|j| j.id == a.journal_id)
                .map(|j| j.name.clone())
                .unwrap_or_default();
            (a, name)
        })
        .collect();
    let last_run = runs::for_connection(pool, c.id, 1)
        .await?
        .into_iter()
        .next();
    Ok(ConnectionView {
        connection: c,
        accounts,
        last_run,
    })
}
