//! A company's webhook endpoints (register, change, rotate the secret, remove) and their
//! delivery log (with redelivery).

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::target::{check_url, TargetPolicy};
use super::{new_secret, KINDS};
use crate::error::{Result, SyncError};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Endpoint {
    pub id: Uuid,
    pub company_id: Uuid,
    pub url: String,
    pub description: String,
    pub events: Vec<String>,
    pub enabled: bool,
    pub disabled_at: Option<DateTime<Utc>>,
    pub disabled_reason: Option<String>,
    pub failing_since: Option<DateTime<Utc>>,
    /// While set, the previous secret still signs too (after a rotation).
    pub previous_secret_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Why an endpoint paused through the API is off (`enabled: false` in a change).
pub const PAUSED_REASON: &str = "disabled through the API";

impl Endpoint {
    /// `enabled`; `paused` through the API; or `disabled` by banksync (failing for days).
    pub fn state(&self) -> crate::store::status::EndpointState {
        use crate::store::status::EndpointState;
        match (self.enabled, self.disabled_reason.as_deref()) {
            (true, _) => EndpointState::Enabled,
            (false, Some(PAUSED_REASON)) => EndpointState::Paused,
            (false, _) => EndpointState::Disabled,
        }
    }
}

/// An endpoint as registered or rotated, with its secret (shown this once).
#[derive(Debug, Clone)]
pub struct WithSecret {
    pub endpoint: Endpoint,
    pub secret: String,
}

/// What a registration or a change asks for.
#[derive(Debug, Clone, Default)]
pub struct Change {
    pub url: Option<String>,
    pub description: Option<String>,
    pub events: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

fn check_events(events: &[String]) -> Result<()> {
    if let Some(bad) = events.iter().find(|e| !KINDS.contains(&e.as_str())) {
        return Err(SyncError::invalid(
            "invalid_event",
            format!("unknown event `{bad}`; events are {}", KINDS.join(", ")),
        ));
    }
    Ok(())
}

fn check_description(d: &str) -> Result<()> {
    if d.chars().count() > 500 {
        return Err(SyncError::invalid(
            "invalid_description",
            "description is longer than 500 characters",
        ));
    }
    Ok(())
}

/// What every company's endpoints obey: which URLs may be registered, how many endpoints a
/// company may have (0: no cap), and the key their secrets are sealed with at rest.
#[derive(Debug, Clone)]
pub struct Rules {
    pub policy: TargetPolicy,
    pub max_endpoints: u32,
    pub key: super::SecretKey,
}

/// Registers an endpoint; its secret is returned once (and stored sealed).
pub async fn create(
    pool: &PgPool,
    company: Uuid,
    url: &str,
    description: &str,
    events: &[String],
    rules: &Rules,
) -> Result<WithSecret> {
    let (policy, max_endpoints) = (rules.policy, rules.max_endpoints);
    let url = check_url(url, policy)?;
    check_events(events)?;
    check_description(description)?;
    let secret = new_secret();
    // Endpoints per company are capped: each is a queue the deliverers serve. Counted and
    // inserted under the company's lock, so that concurrent creates cannot pass the cap.
    let mut tx = pool.begin().await?;
    sqlx::query!(
        "SELECT pg_advisory_xact_lock(hashtextextended('webhook-endpoints:' || $1::uuid::text, 0))",
        company
    )
    .execute(&mut *tx)
    .await?;
    let have: i64 = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM webhook_endpoints WHERE company_id = $1"#,
        company
    )
    .fetch_one(&mut *tx)
    .await?;
    if max_endpoints > 0 && have >= i64::from(max_endpoints) {
        return Err(SyncError::conflict(
            "webhook_endpoint_limit",
            format!(
                "this company has {have} webhook endpoints, the most allowed; delete one first"
            ),
        ));
    }
    let endpoint = sqlx::query_as!(
        Endpoint,
        r#"INSERT INTO webhook_endpoints (company_id, url, description, events, secret)
           VALUES ($1, $2, $3, $4, $5)
           RETURNING id, company_id, url, description, events, enabled, disabled_at, disabled_reason,
                     failing_since, previous_secret_until, created_at, updated_at"#,
        company,
        url.as_str(),
        description,
        events,
        rules.key.seal(company, &secret)
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(WithSecret { endpoint, secret })
}

/// The company's endpoints, oldest first.
pub async fn list(pool: &PgPool, company: Uuid) -> Result<Vec<Endpoint>> {
    Ok(sqlx::query_as!(
        Endpoint,
        r#"SELECT id, company_id, url, description, events, enabled, disabled_at, disabled_reason,
                  failing_since, previous_secret_until, created_at, updated_at
           FROM webhook_endpoints WHERE company_id = $1 ORDER BY created_at, id"#,
        company
    )
    .fetch_all(pool)
    .await?)
}

/// One of the company's endpoints.
pub async fn get(pool: &PgPool, company: Uuid, id: Uuid) -> Result<Endpoint> {
    sqlx::query_as!(
        Endpoint,
        r#"SELECT id, company_id, url, description, events, enabled, disabled_at, disabled_reason,
                  failing_since, previous_secret_until, created_at, updated_at
           FROM webhook_endpoints WHERE company_id = $1 AND id = $2"#,
        company,
        id
    )
    .fetch_optional(pool)
    .await?
    .ok_or(SyncError::not_found("webhook endpoint"))
}

/// Changes an endpoint. Enabling it again clears why it was disabled and starts its
/// failure clock afresh; its pending deliveries go out again.
pub async fn update(
    pool: &PgPool,
    company: Uuid,
    id: Uuid,
    change: &Change,
    policy: TargetPolicy,
) -> Result<Endpoint> {
    let url = change
        .url
        .as_deref()
        .map(|u| check_url(u, policy))
        .transpose()?;
    if let Some(e) = &change.events {
        check_events(e)?;
    }
    if let Some(d) = &change.description {
        check_description(d)?;
    }
    sqlx::query_as!(
        Endpoint,
        r#"UPDATE webhook_endpoints SET
             url = coalesce($3, url), description = coalesce($4, description), events = coalesce($5, events),
             enabled = coalesce($6, enabled),
             disabled_at = CASE WHEN $6 IS NULL THEN disabled_at WHEN $6 THEN NULL ELSE coalesce(disabled_at, now()) END,
             disabled_reason = CASE WHEN $6 IS NULL THEN disabled_reason WHEN $6 THEN NULL ELSE coalesce(disabled_reason, $7) END,
             failing_since = CASE WHEN $6 THEN NULL ELSE failing_since END,
             updated_at = now()
           WHERE company_id = $1 AND id = $2
           RETURNING id, company_id, url, description, events, enabled, disabled_at, disabled_reason,
                     failing_since, previous_secret_until, created_at, updated_at"#,
        company,
        id,
        url.as_ref().map(|u| u.as_str()),
        change.description,
        change.events.as_deref(),
        change.enabled,
        PAUSED_REASON
    )
    .fetch_optional(pool)
    .await?
    .ok_or(SyncError::not_found("webhook endpoint"))
}

/// Removes an endpoint with its undelivered deliveries (the events stay for the others).
pub async fn delete(pool: &PgPool, company: Uuid, id: Uuid) -> Result<()> {
    let n = sqlx::query!(
        "DELETE FROM webhook_endpoints WHERE company_id = $1 AND id = $2",
        company,
        id
    )
    .execute(pool)
    .await?
    .rows_affected();
    if n == 0 {
        return Err(SyncError::not_found("webhook endpoint"));
    }
    Ok(())
}

/// A new secret (returned once); the previous one keeps signing alongside for `grace`, so
/// a receiver can switch without losing a delivery.
pub async fn rotate(
    pool: &PgPool,
    company: Uuid,
    id: Uuid,
    grace: std::time::Duration,
    key: &super::SecretKey,
) -> Result<WithSecret> {
    let secret = new_secret();
    let endpoint = sqlx::query_as!(
        Endpoint,
        r#"UPDATE webhook_endpoints SET previous_secret = secret, secret = $3,
             previous_secret_until = now() + make_interval(secs => $4), updated_at = now()
           WHERE company_id = $1 AND id = $2
           RETURNING id, company_id, url, description, events, enabled, disabled_at, disabled_reason,
                     failing_since, previous_secret_until, created_at, updated_at"#,
        company,
        id,
        key.seal(company, &secret),
        grace.as_secs_f64()
    )
    .fetch_optional(pool)
    .await?
    .ok_or(SyncError::not_found("webhook endpoint"))?;
    Ok(WithSecret { endpoint, secret })
}

/// One delivery of an event to an endpoint, as the log shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Delivery {
    pub id: i64,
    pub endpoint_id: Uuid,
    pub event_id: i64,
    /// The `webhook-id` header it is sent with (the same on every attempt).
    pub message_id: String,
    pub kind: String,
    pub connection_id: Option<Uuid>,
    pub payload: serde_json::Value,
    /// `pending` (waiting or being retried) or `delivered`.
    pub state: crate::store::status::DeliveryState,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// An endpoint's deliveries, newest first, before `before` (the last id of the previous
/// page).
pub async fn deliveries(
    pool: &PgPool,
    company: Uuid,
    endpoint: Uuid,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Delivery>> {
    get(pool, company, endpoint).await?;
    Ok(sqlx::query_as!(
        Delivery,
        r#"SELECT d.id, d.endpoint_id, d.event_id, 'evt_' || d.event_id AS "message_id!", ev.kind, ev.connection_id,
                  ev.payload, d.state AS "state: crate::store::status::DeliveryState", d.attempts,
                  CASE WHEN d.state = 'pending' THEN d.next_attempt_at END AS next_attempt_at,
                  d.last_attempt_at, d.last_status, d.last_error, d.delivered_at, ev.created_at
           FROM webhook_deliveries d JOIN webhook_events ev ON ev.id = d.event_id
           WHERE d.company_id = $1 AND d.endpoint_id = $2 AND ($3::bigint IS NULL OR d.id < $3)
           ORDER BY d.id DESC LIMIT $4"#,
        company,
        endpoint,
        before,
        limit
    )
    .fetch_all(pool)
    .await?)
}

/// Sends a delivery again (delivered or not): it goes back to the endpoint's queue at its
/// own place, so order per connection holds. It respects the endpoint's backoff: a pending
/// delivery keeps its time, and one sent again waits for the endpoint's latest retry time
/// (redelivering cannot hammer a failing receiver); one in flight is left alone.
pub async fn redeliver(pool: &PgPool, company: Uuid, delivery: i64) -> Result<()> {
    let n = sqlx::query!(
        "UPDATE webhook_deliveries d SET state = 'pending',
             next_attempt_at = CASE WHEN d.state = 'pending' THEN d.next_attempt_at
                 ELSE greatest(now(), coalesce((SELECT max(p.next_attempt_at) FROM webhook_deliveries p
                                                WHERE p.endpoint_id = d.endpoint_id AND p.state = 'pending'), now())) END,
             leased_until = CASE WHEN d.leased_until > now() THEN d.leased_until END
         WHERE d.company_id = $1 AND d.id = $2",
        company,
        delivery
    )
    .execute(pool)
    .await?
    .rows_affected();
    if n == 0 {
        return Err(SyncError::not_found("webhook delivery"));
    }
    Ok(())
}
