//! API tokens: random, shown once, stored as SHA-256. Looking a token up by its hash means no
//! secret is ever compared byte by byte in our code.

use sqlx::PgPool;
use uuid::Uuid;

use crate::error::Result;

pub fn hash(token: &str) -> String {
    crate::digest::sha256_hex(token, 32)
}

/// A new token for `company_id`; returns (token id, the token). Only the hash is stored.
pub async fn create(pool: &PgPool, company_id: Uuid, name: &str) -> Result<(Uuid, String)> {
    create_with(pool, company_id, name, false).await
}

/// As [`create`]; an `admin` token may also read operational data such as the job history.
pub async fn create_with(pool: &PgPool, company_id: Uuid, name: &str, admin: bool) -> Result<(Uuid, String)> {
    // Two v4 UUIDs: 244 bits from the OS random source.
    let token = format!("bs_{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
    let id = sqlx::query_scalar("INSERT INTO api_tokens (company_id, token_hash, name, admin) VALUES ($1, $2, $3, $4) RETURNING id")
        .bind(company_id)
        .bind(hash(&token))
        .bind(name)
        .bind(admin)
        .fetch_one(pool)
        .await?;
    Ok((id, token))
}

/// The company a live token belongs to, and whether it is an admin token. `last_used_at`
/// is written at most once a minute, so that reads stay reads.
pub async fn authenticate(pool: &PgPool, token: &str) -> Result<Option<(Uuid, bool)>> {
    let hash = hash(token);
    let row: Option<(Uuid, Uuid, bool, bool)> = sqlx::query_as(
        "SELECT id, company_id, admin, (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')
         FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL",
    )
    .bind(&hash)
    .fetch_optional(pool)
    .await?;
    let Some((id, company, admin, stale)) = row else { return Ok(None) };
    if stale {
        sqlx::query("UPDATE api_tokens SET last_used_at = now() WHERE id = $1").bind(id).execute(pool).await?;
    }
    Ok(Some((company, admin)))
}
