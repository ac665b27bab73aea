//! The audit log: every state-changing API call and admin command, with who (token or CLI
//! user), what, when and the result. Read through the operator API and `banksync audit`.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::Result;

pub struct Entry<'a> {
    pub token_id: Option<Uuid>,
    pub company_id: Option<Uuid>,
    /// `token:<id>`, `cli:<user>` or `anonymous`.
    pub actor: &'a str,
    /// `POST /api/v1/connections`, `cli token revoke`…
    pub action: &'a str,
    pub status: Option<i32>,
    pub detail: Option<&'a str>,
}

pub async fn record(pool: &PgPool, e: &Entry<'_>) -> Result<()> {
    sqlx::query!("INSERT INTO audit_log (token_id, company_id, actor, action, status, detail) VALUES ($1, $2, $3, $4, $5, $6)", e.token_id, e.company_id, e.actor, e.action, e.status, e.detail)
        .execute(pool)
        .await?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct Record {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub token_id: Option<Uuid>,
    pub company_id: Option<Uuid>,
    pub actor: String,
    pub action: String,
    pub status: Option<i32>,
    pub detail: Option<String>,
}

/// Newest first.
pub async fn recent(pool: &PgPool, before: Option<i64>, limit: i64) -> Result<Vec<Record>> {
    Ok(sqlx::query_as!(
        Record,
        "SELECT id, at, token_id, company_id, actor, action, status, detail FROM audit_log
         WHERE ($2::bigint IS NULL OR id < $2) ORDER BY id DESC LIMIT $1",
        limit,
        before
    )
    .fetch_all(pool)
    .await?)
}
