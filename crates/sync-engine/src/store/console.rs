//! The console's records: sign-in sessions and one-time sign-in links (migration 0026), and
//! the operator's cross-company views (queue by state, connections needing attention,
//! recent sync runs, webhook deliveries). The console's other pages read what the REST API
//! reads.
//!
//! A session is opened with an API token (or a one-time link made for one) and lasts until
//! it expires, is signed out, or its token is revoked or expires: every request checks the
//! token again. Only SHA-256 of a session's secret and of a link's code is stored.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::Result;
use crate::store::status::{ConnectionStatus, JobStatus, RunStatus, TokenKind};
use crate::store::tokens::{self, Principal};

/// A live console session.
#[derive(Debug, Clone)]
pub struct Session {
    pub principal: Principal,
    /// The company's name (company sessions) for the page header.
    pub company_name: Option<String>,
    /// The company's locale (`en-GB` for operators): how dates and amounts are shown.
    pub locale: String,
    csrf: String,
    pub expires_at: DateTime<Utc>,
}

impl Session {
    /// The token each form of this session carries.
    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    /// Whether `given` is this session's CSRF token (compared in constant time).
    pub fn csrf_matches(&self, given: &str) -> bool {
        crate::digest::constant_time_eq(self.csrf.as_bytes(), given.as_bytes())
    }
}

fn secret() -> String {
    // Two v4 UUIDs: 244 bits from the OS random source.
    format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple())
}

/// Opens a session for a live token; `None` when the token is not live. Returns the
/// session's secret (the cookie) and the session.
pub async fn sign_in(
    pool: &PgPool,
    token: &str,
    ttl: chrono::Duration,
) -> Result<Option<(String, Session)>> {
    let Some(p) = tokens::authenticate(pool, token).await? else {
        return Ok(None);
    };
    open(pool, p.token_id(), ttl).await
}

/// Opens a session with a one-time link's code; `None` when the code is unknown, used or
/// expired. The code is spent either way it is answered.
pub async fn sign_in_with_link(
    pool: &PgPool,
    code: &str,
    ttl: chrono::Duration,
) -> Result<Option<(String, Session)>> {
    let token_id = sqlx::query_scalar!(
        "UPDATE console_sign_in_links SET used_at = now()
         WHERE code_hash = $1 AND used_at IS NULL AND expires_at > now() RETURNING token_id",
        tokens::hash(code)
    )
    .fetch_optional(pool)
    .await?;
    match token_id {
        Some(t) => open(pool, t, ttl).await,
        None => Ok(None),
    }
}

/// A one-time sign-in link's code for `token_id`, valid for `valid_for`.
pub async fn create_link(
    pool: &PgPool,
    token_id: Uuid,
    valid_for: chrono::Duration,
) -> Result<String> {
    let code = secret();
    sqlx::query!(
        "INSERT INTO console_sign_in_links (code_hash, token_id, expires_at)
         VALUES ($1, $2, now() + make_interval(secs => $3))",
        tokens::hash(&code),
        token_id,
        valid_for.num_seconds() as f64
    )
    .execute(pool)
    .await?;
    Ok(code)
}

async fn open(
    pool: &PgPool,
    token_id: Uuid,
    ttl: chrono::Duration,
) -> Result<Option<(String, Session)>> {
    let (s, csrf) = (secret(), secret());
    sqlx::query!(
        "INSERT INTO console_sessions (id_hash, token_id, csrf, expires_at)
         VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
        tokens::hash(&s),
        token_id,
        csrf,
        ttl.num_seconds() as f64
    )
    .execute(pool)
    .await?;
    Ok(session(pool, &s).await?.map(|session| (s, session)))
}

/// The session behind a cookie's secret, while it and its token are live.
pub async fn session(pool: &PgPool, secret: &str) -> Result<Option<Session>> {
    let row = sqlx::query!(
        r#"SELECT s.csrf, s.expires_at, t.id AS token_id, t.company_id, t.kind AS "kind: TokenKind", c.name AS "company_name?", c.locale AS "locale?"
           FROM console_sessions s JOIN api_tokens t ON t.id = s.token_id
           LEFT JOIN companies c ON c.id = t.company_id
           WHERE s.id_hash = $1 AND s.expires_at > now()
             AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now())"#,
        tokens::hash(secret)
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| Session {
        principal: match (r.kind, r.company_id) {
            (TokenKind::Company, Some(company_id)) => Principal::Company {
                token_id: r.token_id,
                company_id,
            },
            _ => Principal::Operator {
                token_id: r.token_id,
            },
        },
        company_name: r.company_name,
        locale: r.locale.unwrap_or_else(|| "en-GB".into()),
        csrf: r.csrf,
        expires_at: r.expires_at,
    }))
}

/// Ends a session (signing out).
pub async fn sign_out(pool: &PgPool, secret: &str) -> Result<()> {
    sqlx::query!(
        "DELETE FROM console_sessions WHERE id_hash = $1",
        tokens::hash(secret)
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Deletes sessions and links that have expired (the daily prune); how many.
pub async fn prune(pool: &PgPool) -> Result<u64> {
    let a = sqlx::query!("DELETE FROM console_sessions WHERE expires_at < now()")
        .execute(pool)
        .await?
        .rows_affected();
    let b = sqlx::query!("DELETE FROM console_sign_in_links WHERE expires_at < now()")
        .execute(pool)
        .await?
        .rows_affected();
    Ok(a + b)
}

/// How many jobs are in each state (every state listed, zero included).
pub async fn job_counts(pool: &PgPool) -> Result<Vec<(JobStatus, i64)>> {
    let rows = sqlx::query!(
        r#"SELECT status AS "status: JobStatus", count(*) AS "n!" FROM jobs GROUP BY status"#
    )
    .fetch_all(pool)
    .await?;
    Ok(JobStatus::ALL
        .iter()
        .map(|s| {
            let n = rows.iter().find(|r| r.status == *s).map_or(0, |r| r.n);
            (*s, n)
        })
        .collect())
}

/// A connection in trouble, as an operator sees it: which company, which bank, what is
/// wrong — no account or line data.
#[derive(Debug, Clone)]
pub struct Attention {
    pub connection_id: Uuid,
    pub company_name: String,
    pub provider_name: String,
    pub status: ConnectionStatus,
    pub error_class: Option<String>,
    pub consent_expires_at: Option<DateTime<Utc>>,
    pub last_synced_at: Option<DateTime<Utc>>,
    pub since: DateTime<Utc>,
}

/// Connections needing attention across companies: inactive or disabled, with an error,
/// a consent revoked or ending within 15 days, or waiting for the user's answer.
pub async fn needing_attention(pool: &PgPool, limit: i64) -> Result<Vec<Attention>> {
    Ok(sqlx::query_as!(
        Attention,
        r#"SELECT c.id AS connection_id, co.name AS company_name, c.provider_name,
                  c.status AS "status: ConnectionStatus", c.last_error_class AS error_class,
                  c.consent_expires_at, c.last_synced_at, c.updated_at AS since
           FROM connections c JOIN companies co ON co.id = c.company_id
           WHERE c.status <> 'removed' AND (
                 c.status IN ('inactive', 'disabled') OR c.last_error_class IS NOT NULL
              OR c.consent_revoked_at IS NOT NULL
              OR c.consent_expires_at < now() + interval '15 days'
              OR c.interactive_expires_at > now())
           ORDER BY c.updated_at DESC LIMIT $1"#,
        limit
    )
    .fetch_all(pool)
    .await?)
}

/// A sync run across companies, for operators.
#[derive(Debug, Clone)]
pub struct RunRow {
    pub id: Uuid,
    pub company_name: String,
    pub connection_id: Option<Uuid>,
    pub trigger: String,
    pub status: RunStatus,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub fetched: i32,
    pub inserted: i32,
    pub updated: i32,
    pub quarantined: i32,
    pub error_class: Option<String>,
    pub error_message: Option<String>,
}

/// The newest sync runs of every company.
pub async fn recent_runs(pool: &PgPool, limit: i64) -> Result<Vec<RunRow>> {
    Ok(sqlx::query_as!(
        RunRow,
        r#"SELECT r.id, co.name AS company_name, r.connection_id, r.trigger, r.status AS "status: RunStatus",
                  r.started_at, r.finished_at, r.fetched, r.inserted, r.updated, r.quarantined,
                  r.error_class, r.error_message
           FROM sync_runs r JOIN companies co ON co.id = r.company_id
           ORDER BY r.started_at DESC LIMIT $1"#,
        limit
    )
    .fetch_all(pool)
    .await?)
}

/// A webhook delivery across companies, for operators: where, what, how it went (no
/// payload).
#[derive(Debug, Clone)]
pub struct DeliveryRow {
    pub id: i64,
    pub company_name: String,
    pub url: String,
    pub kind: String,
    pub state: String,
    pub attempts: i32,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// The newest webhook deliveries of every company.
pub async fn recent_deliveries(pool: &PgPool, limit: i64) -> Result<Vec<DeliveryRow>> {
    Ok(sqlx::query_as!(
        DeliveryRow,
        r#"SELECT d.id, co.name AS company_name, e.url, ev.kind, d.state, d.attempts, d.last_status,
                  d.last_error, ev.created_at
           FROM webhook_deliveries d JOIN webhook_events ev ON ev.id = d.event_id
           JOIN webhook_endpoints e ON e.id = d.endpoint_id JOIN companies co ON co.id = d.company_id
           ORDER BY d.id DESC LIMIT $1"#,
        limit
    )
    .fetch_all(pool)
    .await?)
}
