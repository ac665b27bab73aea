//! Applies a stored Salt Edge callback to our records. Only events at least as new as the
//! last one applied change a connection's stage or error, so late or out-of-order deliveries
//! never move it backwards; `destroy` is final.

use chrono::{DateTime, Utc};
use saltedge_client::models::CallbackBody;
use saltedge_client::{Client, ErrorClass};
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::{Result, SyncError};
use crate::{connections, jobs};

#[derive(sqlx::FromRow)]
struct InboxRow {
    kind: String,
    body: String,
    event_time: Option<DateTime<Utc>>,
    received_at: DateTime<Utc>,
}

/// How far a callback's own time (`meta.time`) may run ahead of when we received it. A
/// callback dated further ahead is applied by when we received it and does not become the
/// connection's last event time: otherwise every later callback of the connection would
/// look older and be ignored.
const EVENT_TIME_SKEW: chrono::Duration = chrono::Duration::minutes(5);

/// Processes inbox row `id`. Idempotent: processing twice gives the same state.
pub async fn process(pool: &PgPool, client: &Client, id: i64) -> Result<()> {
    let row: InboxRow = sqlx::query_as!(
        InboxRow,
        "SELECT kind, body, event_time, received_at FROM callback_inbox WHERE id = $1",
        id
    )
    .fetch_optional(pool)
    .await?
    .ok_or(SyncError::not_found("callback"))?;
    let outcome = apply(pool, client, &row).await;
    let note = match &outcome {
        Ok(note) => note.clone(),
        Err(e) => Some(e.to_string()),
    };
    if outcome.is_ok() {
        sqlx::query!(
            "UPDATE callback_inbox SET processed_at = now(), error = $2 WHERE id = $1",
            id,
            note
        )
        .execute(pool)
        .await?;
    }
    outcome.map(|_| ())
}

async fn apply(pool: &PgPool, client: &Client, row: &InboxRow) -> Result<Option<String>> {
    let body: CallbackBody = serde_json::from_str(&row.body)
        .map_err(|e| SyncError::Corrupt(format!("callback body: {e}")))?;
    let data = &body.data;
    let claimed = row.event_time.unwrap_or(body.meta.time);
    let trusted = claimed <= row.received_at + EVENT_TIME_SKEW;
    let event_time = if trusted { claimed } else { row.received_at };
    let mut conn = connections::find_by_saltedge_id(pool, &data.connection_id).await?;
    // Set when Salt Edge's view was just read, so it is not read twice.
    let mut fresh = false;

    if row.kind == "provider_changes" {
        // v6: a provider's status or fields changed: read the catalogue again.
        jobs::queue(pool, &jobs::RefreshCatalogue {}).await?;
        return Ok(None);
    }
    if data.connection_id.is_empty() {
        return Ok(Some("callback without a connection; ignored".into()));
    }
    if row.kind == "destroy" {
        if let Some(c) = &conn {
            connections::mark_removed(pool, c.id).await?;
        }
        return Ok(None);
    }
    if conn.is_none() {
        // First news of a connection made through the Connect page: adopt it for the company
        // that owns the customer.
        let Some(company) = company_for(pool, &data.customer_id).await? else {
            return Ok(Some(
                "callback for a customer we do not know; ignored".into(),
            ));
        };
        match client.show_connection(&data.connection_id).await {
            Ok(se) => {
                conn = Some(connections::upsert_from_saltedge(pool, company, &se).await?);
                fresh = true;
            }
            Err(e) if e.class() == Some(&ErrorClass::ConnectionNotFound) => {
                return Ok(Some("connection no longer at Salt Edge".into()))
            }
            Err(e) => return Err(e.into()),
        }
    }
    let conn = conn.expect("set above");
    if conn.status == crate::store::status::ConnectionStatus::Removed {
        return Ok(Some("connection removed; ignored".into()));
    }
    let newer = conn.last_event_at.is_none_or(|t| event_time >= t);
    if !newer {
        return Ok(Some("older than the last event applied; ignored".into()));
    }
    match row.kind.as_str() {
        "success" => {
            if !fresh {
                if let Ok(se) = client.show_connection(&conn.saltedge_id).await {
                    connections::upsert_from_saltedge(pool, conn.company_id, &se).await?;
                }
            }
            // A success callback says data is ready, not that the attempt succeeded: the
            // outcome (and any error) was read from `last_attempt` by the upsert above. A fetch
            // may send several; the queued sync is shared.
            connections::clear_interactive(pool, conn.id).await?;
            jobs::queue_sync(pool, conn.company_id, conn.id, "callback").await?;
        }
        "fail" => {
            // Salt Edge's view of the attempt (was it its nightly fetch?) counts for the
            // scheduler's allowance.
            if !fresh {
                if let Ok(se) = client.show_connection(&conn.saltedge_id).await {
                    connections::upsert_from_saltedge(pool, conn.company_id, &se).await?;
                }
            }
            let class = data.error_class.clone().unwrap_or_else(|| "Unknown".into());
            let status = if class == "InvalidCredentials" {
                Some("inactive")
            } else {
                None
            };
            sqlx::query!("UPDATE connections SET last_error_class = $2, last_error_message = $3, stage = 'finish',
                     status = COALESCE($4, status), updated_at = now() WHERE id = $1", conn.id, &class, data.error_message.clone().unwrap_or_default(), status)
            .execute(pool)
            .await?;
            connections::clear_interactive(pool, conn.id).await?;
            crate::schedule::attempt_failed(pool, conn.id, &class).await?;
        }
        "interactive" => connections::set_interactive(pool, conn.id, data).await?,
        "consent_changes" => {
            // v6: the consent was given, revoked or expired at Salt Edge: read it again.
            if let Ok(se) = client.show_connection(&conn.saltedge_id).await {
                let conn = connections::upsert_from_saltedge(pool, conn.company_id, &se).await?;
                connections::read_consent(pool, client, &conn, &se).await?;
            }
        }
        "notify" => {
            sqlx::query!("UPDATE connections SET stage = COALESCE($2, stage), updated_at = now() WHERE id = $1", conn.id, data.stage.as_deref())
                .execute(pool)
                .await?;
            if data.stage.as_deref() != Some("interactive") {
                connections::clear_interactive(pool, conn.id).await?;
            }
        }
        _ => return Ok(Some(format!("callback kind {} needs no action", row.kind))),
    }
    if trusted {
        sqlx::query!("UPDATE connections SET last_event_at = greatest(coalesce(last_event_at, $2), $2) WHERE id = $1", conn.id, event_time)
            .execute(pool)
            .await?;
    }
    Ok(None)
}

/// The company that owns Salt Edge customer `customer_id`: only a customer recorded for a
/// company (link records it before the Connect session; adoption checks it at Salt Edge).
/// `custom_fields` are never trusted on their own: anyone who can open a Connect session
/// for our app could write them.
async fn company_for(pool: &PgPool, customer_id: &str) -> Result<Option<Uuid>> {
    Ok(sqlx::query_scalar!(
        "SELECT company_id FROM saltedge_customers WHERE saltedge_id = $1",
        customer_id
    )
    .fetch_optional(pool)
    .await?)
}
