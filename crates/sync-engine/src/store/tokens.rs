//! API tokens: random, shown once, stored as SHA-256. Looking a token up by its hash means no
//! secret is ever compared byte by byte in our code.
//!
//! A *company* token acts for one company, on that company's data only. An *operator* token
//! reads operational data (jobs, tokens, the audit log) and can re-run jobs; it can never
//! read a company's data through the company endpoints. Either may expire and be revoked;
//! `last_used_at` is kept (written at most once a minute, so that reads stay reads).

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::Result;
use crate::store::status::TokenKind;

pub fn hash(token: &str) -> String {
    crate::digest::sha256_hex(token, 32)
}

/// Who a live token speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal {
    Company { token_id: Uuid, company_id: Uuid },
    Operator { token_id: Uuid },
}

impl Principal {
    pub fn token_id(&self) -> Uuid {
        match self {
            Principal::Company { token_id, .. } | Principal::Operator { token_id } => *token_id,
        }
    }
}

/// A new company token; returns (token id, the token). Only the hash is stored.
pub async fn create(pool: &PgPool, company_id: Uuid, name: &str) -> Result<(Uuid, String)> {
    insert(pool, Some(company_id), name, None).await
}

/// A new token: for `company_id`, or an operator token when `None`; it expires after
/// `valid_for` when given.
pub async fn insert(
    pool: &PgPool,
    company_id: Option<Uuid>,
    name: &str,
    valid_for: Option<chrono::Duration>,
) -> Result<(Uuid, String)> {
    // Two v4 UUIDs: 244 bits from the OS random source.
    let token = format!("bs_{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
    let id = sqlx::query_scalar!("INSERT INTO api_tokens (company_id, token_hash, name, kind, admin, expires_at)
         VALUES ($1, $2, $3, CASE WHEN $1::uuid IS NULL THEN 'operator' ELSE 'company' END, $1::uuid IS NULL,
                 now() + make_interval(secs => $4)) RETURNING id", company_id, hash(&token), name, valid_for.map(|d| d.num_seconds() as f64))
    .fetch_one(pool)
    .await?;
    Ok((id, token))
}

/// The principal of a live token: not revoked, not expired.
pub async fn authenticate(pool: &PgPool, token: &str) -> Result<Option<Principal>> {
    let hash = hash(token);
    let row = sqlx::query!(
        r#"SELECT id, company_id, kind AS "kind: TokenKind", (last_used_at IS NULL OR last_used_at < now() - interval '1 minute') AS "stale!"
         FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())"#,
        hash
    )
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let (id, company, kind, stale) = (row.id, row.company_id, row.kind, row.stale);
    if stale {
        sqlx::query!(
            "UPDATE api_tokens SET last_used_at = now() WHERE id = $1",
            id
        )
        .execute(pool)
        .await?;
    }
    // Each kind by name: a row that is neither (a company token without its company, an
    // operator token with one) grants nothing, never an operator's rights.
    match (kind, company) {
        (TokenKind::Company, Some(company_id)) => Ok(Some(Principal::Company {
            token_id: id,
            company_id,
        })),
        (TokenKind::Operator, None) => Ok(Some(Principal::Operator { token_id: id })),
        (kind, company) => {
            tracing::error!(token = %id, ?kind, ?company, "token row contradicts its kind; refused");
            Ok(None)
        }
    }
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct TokenInfo {
    pub id: Uuid,
    pub kind: TokenKind,
    pub company_id: Option<Uuid>,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Tokens, newest first (never the token itself: it is not stored).
pub async fn list(pool: &PgPool, limit: i64) -> Result<Vec<TokenInfo>> {
    Ok(sqlx::query_as!(TokenInfo, r#"SELECT id, kind AS "kind: TokenKind", company_id, name, created_at, expires_at, last_used_at, revoked_at FROM api_tokens
         ORDER BY created_at DESC LIMIT $1"#, limit)
    .fetch_all(pool)
    .await?)
}

/// Revokes a token at once; false when there is no such live token.
pub async fn revoke(pool: &PgPool, id: Uuid) -> Result<bool> {
    Ok(sqlx::query!(
        "UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
        id
    )
    .execute(pool)
    .await?
    .rows_affected()
        == 1)
}

/// A secret the service keeps for itself (migration 0015), shared by every replica.
pub async fn service_secret(pool: &PgPool, name: &str) -> Result<Vec<u8>> {
    Ok(
        sqlx::query_scalar!("SELECT secret FROM service_secrets WHERE name = $1", name)
            .fetch_one(pool)
            .await?,
    )
}
