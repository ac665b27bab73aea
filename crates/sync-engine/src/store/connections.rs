//! Local connection records, kept in step with Salt Edge's view of each connection.

use chrono::{DateTime, Utc};
use saltedge_client::models::{AttemptOutcome, Connection as SeConnection};
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::{Result, SyncError};
use crate::store::status::ConnectionStatus;

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct Connection {
    pub id: Uuid,
    pub company_id: Uuid,
    pub saltedge_id: String,
    pub provider_code: String,
    pub provider_name: String,
    pub country_code: String,
    pub status: ConnectionStatus,
    pub stage: Option<String>,
    pub daily_refresh: bool,
    pub consent_id: Option<String>,
    pub consent_expires_at: Option<DateTime<Utc>>,
    pub consent_revoked_at: Option<DateTime<Utc>>,
    pub saltedge_last_success_at: Option<DateTime<Utc>>,
    pub last_synced_at: Option<DateTime<Utc>>,
    pub next_refresh_possible_at: Option<DateTime<Utc>>,
    pub last_error_class: Option<String>,
    pub last_error_message: Option<String>,
    pub last_event_at: Option<DateTime<Utc>>,
    /// The bank's question while an attempt waits for interactive input.
    pub interactive_html: Option<String>,
    pub interactive_fields_names: Option<serde_json::Value>,
    pub interactive_fields_options: Option<serde_json::Value>,
    pub interactive_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<Connection> {
    sqlx::query_as!(Connection, r#"SELECT id, company_id, saltedge_id, provider_code, provider_name, country_code, status AS "status: ConnectionStatus", stage, daily_refresh, consent_id, consent_expires_at, consent_revoked_at, saltedge_last_success_at, last_synced_at, next_refresh_possible_at, last_error_class, last_error_message, last_event_at, interactive_html, interactive_fields_names, interactive_fields_options, interactive_expires_at, created_at, updated_at FROM connections WHERE id = $1"#, id)
        .fetch_optional(pool)
        .await?
        .ok_or(SyncError::not_found("connection"))
}

pub async fn find_by_saltedge_id(pool: &PgPool, saltedge_id: &str) -> Result<Option<Connection>> {
    Ok(sqlx::query_as!(Connection, r#"SELECT id, company_id, saltedge_id, provider_code, provider_name, country_code, status AS "status: ConnectionStatus", stage, daily_refresh, consent_id, consent_expires_at, consent_revoked_at, saltedge_last_success_at, last_synced_at, next_refresh_possible_at, last_error_class, last_error_message, last_event_at, interactive_html, interactive_fields_names, interactive_fields_options, interactive_expires_at, created_at, updated_at FROM connections WHERE saltedge_id = $1"#, saltedge_id)
    .fetch_optional(pool)
    .await?)
}

/// A connection by local id or Salt Edge id.
pub async fn find_by_key(pool: &PgPool, key: &str) -> Result<Option<Connection>> {
    match key.parse::<Uuid>() {
        Ok(id) => match get(pool, id).await {
            Ok(c) => Ok(Some(c)),
            Err(SyncError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        },
        Err(_) => find_by_saltedge_id(pool, key).await,
    }
}

/// Creates or refreshes the local record from Salt Edge's connection object. A record
/// marked `removed` stays removed.
pub async fn upsert_from_saltedge(
    pool: &PgPool,
    company_id: Uuid,
    c: &SeConnection,
) -> Result<Connection> {
    let customer_id: Option<Uuid> = sqlx::query_scalar!(
        "SELECT id FROM saltedge_customers WHERE saltedge_id = $1",
        &c.customer_id
    )
    .fetch_optional(pool)
    .await?;
    // The outcome comes from `last_attempt.success_at` / `fail_at` / `fail_error_class`, never
    // from the stage: a real connection ends at stage `finish` with ProviderAccessNotGranted.
    let (error_class, error_message) = match c.last_outcome() {
        AttemptOutcome::Failed { class, message, .. } => (Some(class), message),
        _ => (None, None),
    };
    sqlx::query_as!(Connection, r#"INSERT INTO connections (company_id, customer_id, saltedge_id, provider_code, provider_name, country_code,
             status, daily_refresh, consent_id, saltedge_last_success_at, next_refresh_possible_at,
             last_error_class, last_error_message, stage, saltedge_auto_fetch_at, saltedge_auto_fetch_failed)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, coalesce($16, false))
         ON CONFLICT (saltedge_id) DO UPDATE SET
             provider_code = EXCLUDED.provider_code,
             provider_name = EXCLUDED.provider_name,
             country_code = EXCLUDED.country_code,
             status = CASE WHEN connections.status = 'removed' THEN 'removed' ELSE EXCLUDED.status END,
             daily_refresh = EXCLUDED.daily_refresh,
             consent_id = COALESCE(EXCLUDED.consent_id, connections.consent_id),
             consent_revoked_at = CASE WHEN EXCLUDED.consent_id IS DISTINCT FROM connections.consent_id
                                       THEN NULL ELSE connections.consent_revoked_at END,
             saltedge_last_success_at = EXCLUDED.saltedge_last_success_at,
             next_refresh_possible_at = EXCLUDED.next_refresh_possible_at,
             last_error_class = EXCLUDED.last_error_class,
             last_error_message = EXCLUDED.last_error_message,
             stage = COALESCE(EXCLUDED.stage, connections.stage),
             saltedge_auto_fetch_at = COALESCE(EXCLUDED.saltedge_auto_fetch_at, connections.saltedge_auto_fetch_at),
             saltedge_auto_fetch_failed = CASE WHEN EXCLUDED.saltedge_auto_fetch_at IS NULL
                                               THEN connections.saltedge_auto_fetch_failed
                                               ELSE EXCLUDED.saltedge_auto_fetch_failed END,
             updated_at = now()
         WHERE connections.company_id = EXCLUDED.company_id
         RETURNING id, company_id, saltedge_id, provider_code, provider_name, country_code, status AS "status: ConnectionStatus", stage, daily_refresh, consent_id, consent_expires_at, consent_revoked_at, saltedge_last_success_at, last_synced_at, next_refresh_possible_at, last_error_class, last_error_message, last_event_at, interactive_html, interactive_fields_names, interactive_fields_options, interactive_expires_at, created_at, updated_at"#, company_id, customer_id, &c.id, &c.provider_code, &c.provider_name, &c.country_code, c.status.as_str(), c.daily_refresh, c.last_consent_id.as_deref(), c.last_success_at, c.next_refresh_possible_at, error_class, error_message, c.last_attempt.as_ref().and_then(|a| a.last_stage.as_ref()).map(|s| s.name.clone()),
        // Salt Edge's own nightly fetch, when that is what `last_attempt` shows.
        c.last_attempt.as_ref().filter(|a| a.automatic_fetch).and_then(|a| a.success_at.or(a.fail_at).or(a.created_at)),
        c.last_attempt.as_ref().filter(|a| a.automatic_fetch).map(|_| matches!(c.last_outcome(), AttemptOutcome::Failed { .. })))
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| SyncError::conflict("conflict", "the connection belongs to another company"))
}

/// Records the bank's interactive question (from an interactive callback).
pub async fn set_interactive(
    pool: &PgPool,
    id: Uuid,
    data: &saltedge_client::models::CallbackData,
) -> Result<()> {
    sqlx::query!("UPDATE connections SET stage = 'interactive', interactive_html = $2, interactive_fields_names = $3,
             interactive_fields_options = $4, interactive_expires_at = $5, updated_at = now() WHERE id = $1", id, data.html.as_deref(), data.interactive_fields_names.as_ref().map(|n| serde_json::json!(n)), data.interactive_fields_options.as_ref(), data.session_expires_at)
    .execute(pool)
    .await?;
    Ok(())
}

/// The attempt moved on: the bank's question no longer stands.
pub async fn clear_interactive(pool: &PgPool, id: Uuid) -> Result<()> {
    sqlx::query!("UPDATE connections SET interactive_html = NULL, interactive_fields_names = NULL, interactive_fields_options = NULL,
             interactive_expires_at = NULL
         WHERE id = $1 AND (interactive_html IS NOT NULL OR interactive_fields_names IS NOT NULL OR interactive_fields_options IS NOT NULL)", id)
    .execute(pool)
    .await?;
    Ok(())
}

/// Adopts a Salt Edge connection made outside banksync for `company_id`, recording its Salt
/// Edge customer for the company (so the lost-callback catch-up lists it, as it lists linked
/// ones). A Salt Edge customer belongs to exactly one company: one recorded for another
/// company, or a company that already has a different customer, is a conflict.
pub async fn adopt(
    pool: &PgPool,
    client: &saltedge_client::Client,
    company_id: Uuid,
    se_connection_id: &str,
) -> Result<Connection> {
    let se = client.show_connection(se_connection_id).await?;
    let owner: Option<Uuid> = sqlx::query_scalar!(
        "SELECT company_id FROM saltedge_customers WHERE saltedge_id = $1",
        &se.customer_id
    )
    .fetch_optional(pool)
    .await?;
    match owner {
        Some(c) if c == company_id => {}
        Some(_) => {
            return Err(SyncError::conflict(
                "conflict",
                "this connection's Salt Edge customer belongs to another company",
            ))
        }
        None => {
            if let Some(mine) = crate::companies::customer_of(pool, company_id).await? {
                return Err(SyncError::conflict("conflict", format!(
                    "the company already has Salt Edge customer {}; this connection belongs to customer {}",
                    mine.saltedge_id, se.customer_id
                )));
            }
            let customer = client.show_customer(&se.customer_id).await?;
            crate::companies::save_customer(
                pool,
                company_id,
                &customer.id,
                &customer.identifier,
                None,
                None,
            )
            .await?;
        }
    }
    upsert_from_saltedge(pool, company_id, &se).await
}

pub async fn set_error(pool: &PgPool, id: Uuid, class: &str, message: &str) -> Result<()> {
    sqlx::query!("UPDATE connections SET last_error_class = $2, last_error_message = $3, updated_at = now() WHERE id = $1", id, class, message)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn mark_removed(pool: &PgPool, id: Uuid) -> Result<()> {
    sqlx::query!(
        "UPDATE connections SET status = 'removed', updated_at = now() WHERE id = $1",
        id
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Refused: the connection no longer exists at Salt Edge.
pub const REMOVED: SyncError = SyncError::State {
    code: "connection_removed",
    detail: "the connection no longer exists at Salt Edge",
    guidance: crate::guidance::CONNECTION_REMOVED,
};

/// A connection gone from Salt Edge or disabled there is of no further use: only a new
/// link helps.
pub fn usable(c: &Connection) -> Result<()> {
    match c.status {
        ConnectionStatus::Removed => Err(REMOVED),
        ConnectionStatus::Disabled => Err(SyncError::State {
            code: "connection_disabled",
            detail: "the connection is disabled at Salt Edge",
            guidance: crate::guidance::CONNECTION_DISABLED,
        }),
        _ => Ok(()),
    }
}

/// Reading the bank again on request (sync now, fetch new accounts) needs a usable, active
/// connection with a live consent; otherwise the request would only fail at Salt Edge.
/// Update credentials (a reconnect with a new consent) is the way out of a revoked or
/// expired consent and of an inactive connection, so it needs only [`usable`].
pub fn readable(c: &Connection) -> Result<()> {
    usable(c)?;
    if c.consent_revoked_at.is_some() {
        return Err(SyncError::State {
            code: "consent_revoked",
            detail: "the consent to read this bank's data was revoked",
            guidance: crate::guidance::CONSENT_REVOKED,
        });
    }
    if c.consent_expires_at
        .is_some_and(|t| t <= chrono::Utc::now())
    {
        return Err(SyncError::State {
            code: "consent_expired",
            detail: "the consent to read this bank's data has expired",
            guidance: crate::guidance::CONSENT_EXPIRED,
        });
    }
    if c.status == crate::store::status::ConnectionStatus::Inactive {
        return Err(SyncError::State {
            code: "connection_inactive",
            detail: "the connection is inactive at Salt Edge",
            guidance: crate::guidance::CONNECTION_INACTIVE,
        });
    }
    Ok(())
}

/// The company's connections, oldest first.
pub async fn of_company(pool: &PgPool, company_id: Uuid) -> Result<Vec<Connection>> {
    Ok(sqlx::query_as!(Connection, r#"SELECT id, company_id, saltedge_id, provider_code, provider_name, country_code, status AS "status: ConnectionStatus", stage, daily_refresh, consent_id, consent_expires_at, consent_revoked_at, saltedge_last_success_at, last_synced_at, next_refresh_possible_at, last_error_class, last_error_message, last_event_at, interactive_html, interactive_fields_names, interactive_fields_options, interactive_expires_at, created_at, updated_at FROM connections WHERE company_id = $1 ORDER BY created_at, id"#, company_id)
    .fetch_all(pool)
    .await?)
}

/// The company's oldest connection to `provider_code` that still exists at Salt Edge.
pub async fn live_for_provider(
    pool: &PgPool,
    company_id: Uuid,
    provider_code: &str,
) -> Result<Option<Uuid>> {
    Ok(sqlx::query_scalar!("SELECT id FROM connections WHERE company_id = $1 AND provider_code = $2 AND status <> 'removed' ORDER BY created_at LIMIT 1", company_id, provider_code)
    .fetch_optional(pool)
    .await?)
}

/// Records that the consent was revoked (the first time only).
pub async fn mark_revoked(pool: &PgPool, id: Uuid) -> Result<()> {
    sqlx::query!("UPDATE connections SET consent_revoked_at = coalesce(consent_revoked_at, now()), updated_at = now() WHERE id = $1", id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Deletes the record (Salt Edge no longer holds the connection); journals and lines stay.
pub async fn delete(pool: &PgPool, id: Uuid) -> Result<()> {
    sqlx::query!("DELETE FROM connections WHERE id = $1", id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Where a connection's consent stands, for the user: `none` (Salt Edge gave no expiry),
/// `valid`, `expiring` (15 days or fewer left: time to ask for a reconnect link, which
/// Update credentials gives ahead of expiry), `expired` or `revoked`.
pub fn consent_status(
    c: &Connection,
    now: chrono::DateTime<chrono::Utc>,
) -> crate::store::status::ConsentStatus {
    use crate::store::status::ConsentStatus;
    if c.consent_revoked_at.is_some() {
        return ConsentStatus::Revoked;
    }
    match consent_days_left(c, now) {
        None => ConsentStatus::None,
        Some(0) => ConsentStatus::Expired,
        Some(n) if n <= CONSENT_EXPIRING_DAYS => ConsentStatus::Expiring,
        Some(_) => ConsentStatus::Valid,
    }
}

/// A consent with this many days left or fewer is `expiring`.
pub const CONSENT_EXPIRING_DAYS: i64 = 15;

/// Whole days until the consent expires, counting a started day as a day ("expires in 1
/// day" until the moment it expires), 0 once expired; `None` without an expiry date.
pub fn consent_days_left(c: &Connection, now: chrono::DateTime<chrono::Utc>) -> Option<i64> {
    c.consent_expires_at.map(|t| {
        let secs = (t - now).num_seconds();
        if secs <= 0 {
            0
        } else {
            (secs + 86_399) / 86_400
        }
    })
}

/// Whether a connection carries over to the Salt Edge API version `client` speaks (moving
/// an installation from v5 to v6: public sources do not say whether ids carry over, so
/// each connection is asked).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Carries {
    /// Salt Edge knows it under the same id, for the same customer: nothing to do.
    Over,
    /// Salt Edge does not know it (or knows it for another customer): link the bank again;
    /// relinking keeps the journals and history, with no line imported twice.
    LinkAgain { why: String },
    /// Could not tell (Salt Edge unreachable, a refused signature): run the check again.
    Unknown { error: String },
}

/// One row of [`version_check`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct VersionCheck {
    pub connection_id: Uuid,
    pub company_id: Uuid,
    pub saltedge_id: String,
    pub provider_name: String,
    #[serde(flatten)]
    pub carries: Carries,
}

/// Asks Salt Edge, through `client` (configured for the version being moved to), about
/// every connection not removed.
pub async fn version_check(
    pool: &PgPool,
    client: &saltedge_client::Client,
) -> Result<Vec<VersionCheck>> {
    let rows = sqlx::query!(
        r#"SELECT c.id, c.company_id, c.saltedge_id, c.provider_name, s.saltedge_id AS "customer?"
           FROM connections c LEFT JOIN saltedge_customers s ON s.id = c.customer_id
           WHERE c.status <> 'removed' ORDER BY c.created_at, c.id"#
    )
    .fetch_all(pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let carries = match client.show_connection(&r.saltedge_id).await {
            Ok(se) if r.customer.as_deref().is_none_or(|c| c == se.customer_id) => Carries::Over,
            Ok(se) => Carries::LinkAgain {
                why: format!(
                    "Salt Edge lists it for customer {}, not ours",
                    se.customer_id
                ),
            },
            Err(e)
                if matches!(
                    e.class(),
                    Some(
                        saltedge_client::ErrorClass::ConnectionNotFound
                            | saltedge_client::ErrorClass::CustomerNotFound
                    )
                ) =>
            {
                Carries::LinkAgain {
                    why: format!("Salt Edge does not know it ({e})"),
                }
            }
            Err(e) => Carries::Unknown {
                error: e.to_string(),
            },
        };
        out.push(VersionCheck {
            connection_id: r.id,
            company_id: r.company_id,
            saltedge_id: r.saltedge_id,
            provider_name: r.provider_name,
            carries,
        });
    }
    Ok(out)
}

/// Reads the connection's current consent at Salt Edge (`se` is the connection as Salt Edge
/// just showed it) and records its expiry and revocation. Our own revocation time stands;
/// Salt Edge's only fills it in.
pub async fn read_consent(
    pool: &PgPool,
    client: &saltedge_client::Client,
    conn: &Connection,
    se: &saltedge_client::models::Connection,
) -> Result<()> {
    let Some(consent_id) = &se.last_consent_id else {
        return Ok(());
    };
    let consents = client.list_consents(&conn.saltedge_id).await?;
    if let Some(c) = consents.iter().find(|c| &c.id == consent_id) {
        sqlx::query!("UPDATE connections SET consent_expires_at = $2, consent_revoked_at = coalesce(consent_revoked_at, $3) WHERE id = $1", conn.id, c.expires_at, c.revoked_at)
            .execute(pool)
            .await?;
    }
    Ok(())
}

/// Salt Edge fetched data our last successful sync may not have read: its `last_success_at`
/// (whole seconds) is at or after the second in which that sync started and read the
/// connection. A fetch that ended in that very second is caught up (one sync too many at
/// worst, never one too few).
pub async fn behind_saltedge(pool: &PgPool, connection_id: Uuid) -> Result<bool> {
    Ok(sqlx::query_scalar!(
        r#"SELECT coalesce(c.saltedge_last_success_at >= date_trunc('second', coalesce(c.last_sync_started_at, c.last_synced_at, '-infinity'::timestamptz)), false) AS "behind!"
           FROM connections c WHERE c.id = $1"#,
        connection_id
    )
    .fetch_optional(pool)
    .await?
    .unwrap_or(false))
}
