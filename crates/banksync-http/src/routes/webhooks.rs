//! Webhook endpoints (register, change, rotate the secret, remove), their delivery log and
//! redelivery. Delivery itself is `sync_engine::webhooks::Deliverer`'s.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use sync_engine::webhooks::endpoints;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::dto::{
    NewWebhookEndpoint, WebhookDeliveriesPage, WebhookDelivery, WebhookEndpoint,
    WebhookEndpointChange, WebhookEndpointWithSecret,
};
use crate::error::ApiResult;
use crate::extract::{Company, Json, Path, Query};
use crate::paging;
use crate::AppState;

fn dto(e: endpoints::Endpoint) -> WebhookEndpoint {
    let status = e.state();
    WebhookEndpoint {
        id: e.id,
        url: e.url,
        description: e.description,
        events: e.events,
        status,
        disabled_at: e.disabled_at,
        disabled_reason: e.disabled_reason,
        failing_since: e.failing_since,
        previous_secret_until: e.previous_secret_until,
        created_at: e.created_at,
        updated_at: e.updated_at,
    }
}

fn with_secret(w: endpoints::WithSecret) -> WebhookEndpointWithSecret {
    WebhookEndpointWithSecret {
        endpoint: dto(w.endpoint),
        secret: w.secret,
    }
}

fn kinds(k: Option<Vec<crate::dto::WebhookEventKind>>) -> Option<Vec<String>> {
    k.map(|v| v.into_iter().map(|k| k.as_str().to_string()).collect())
}

/// Registers an endpoint; the answer holds its signing secret, shown this once.
#[utoipa::path(post, path = "/api/v1/webhook-endpoints", tag = "webhooks", operation_id = "create_webhook_endpoint",
    request_body = NewWebhookEndpoint,
    responses((status = 201, body = WebhookEndpointWithSecret), (status = 409, description = "webhook_endpoint_limit: the company has as many endpoints as allowed (webhooks.max_endpoints_per_company)"), (status = 422, description = "invalid_webhook_url or invalid events")), security(("token" = [])))]
pub async fn create(
    State(st): State<AppState>,
    Company(company): Company,
    Json(b): Json<NewWebhookEndpoint>,
) -> ApiResult<(StatusCode, Json<WebhookEndpointWithSecret>)> {
    let w = endpoints::create(
        &st.pool,
        company,
        &b.url,
        b.description.as_deref().unwrap_or(""),
        &kinds(b.events).unwrap_or_default(),
        &st.webhook_rules,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(with_secret(w))))
}

/// The company's endpoints (without their secrets).
#[utoipa::path(get, path = "/api/v1/webhook-endpoints", tag = "webhooks", operation_id = "list_webhook_endpoints",
    responses((status = 200, body = Vec<WebhookEndpoint>)), security(("token" = [])))]
pub async fn list(
    State(st): State<AppState>,
    Company(company): Company,
) -> ApiResult<Json<Vec<WebhookEndpoint>>> {
    let rows = endpoints::list(&st.pool, company).await?;
    Ok(Json(rows.into_iter().map(dto).collect()))
}

/// One endpoint.
#[utoipa::path(get, path = "/api/v1/webhook-endpoints/{id}", tag = "webhooks", operation_id = "show_webhook_endpoint",
    params(("id" = Uuid, Path)), responses((status = 200, body = WebhookEndpoint)), security(("token" = [])))]
pub async fn show(
    State(st): State<AppState>,
    Company(company): Company,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<WebhookEndpoint>> {
    Ok(Json(dto(endpoints::get(&st.pool, company, id).await?)))
}

/// Changes an endpoint: its URL, description, events; pauses or resumes it (resuming also
/// re-enables one disabled for failing).
#[utoipa::path(patch, path = "/api/v1/webhook-endpoints/{id}", tag = "webhooks", operation_id = "update_webhook_endpoint",
    params(("id" = Uuid, Path)), request_body = WebhookEndpointChange,
    responses((status = 200, body = WebhookEndpoint)), security(("token" = [])))]
pub async fn update(
    State(st): State<AppState>,
    Company(company): Company,
    Path(id): Path<Uuid>,
    Json(b): Json<WebhookEndpointChange>,
) -> ApiResult<Json<WebhookEndpoint>> {
    let change = endpoints::Change {
        url: b.url,
        description: b.description,
        events: kinds(b.events),
        enabled: b.enabled,
    };
    Ok(Json(dto(endpoints::update(
        &st.pool,
        company,
        id,
        &change,
        st.webhook_rules.policy,
    )
    .await?)))
}

/// Removes an endpoint and its undelivered deliveries.
#[utoipa::path(delete, path = "/api/v1/webhook-endpoints/{id}", tag = "webhooks", operation_id = "delete_webhook_endpoint",
    params(("id" = Uuid, Path)), responses((status = 204, description = "removed")), security(("token" = [])))]
pub async fn delete(
    State(st): State<AppState>,
    Company(company): Company,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    endpoints::delete(&st.pool, company, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new signing secret, shown this once; the previous one keeps signing alongside
/// (`webhooks.rotation_grace_hours`), so the receiver can switch without a gap.
#[utoipa::path(post, path = "/api/v1/webhook-endpoints/{id}/rotate-secret", tag = "webhooks", operation_id = "rotate_webhook_secret",
    params(("id" = Uuid, Path)), responses((status = 200, body = WebhookEndpointWithSecret)), security(("token" = [])))]
pub async fn rotate(
    State(st): State<AppState>,
    Company(company): Company,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<WebhookEndpointWithSecret>> {
    let w = endpoints::rotate(
        &st.pool,
        company,
        id,
        st.webhook_rotation_grace,
        &st.webhook_rules.key,
    )
    .await?;
    Ok(Json(with_secret(w)))
}

#[derive(Deserialize, IntoParams)]
pub struct DeliveriesQuery {
    /// `next_cursor` of the previous page.
    #[param(nullable = false, pattern = "^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]{43}$")]
    pub cursor: Option<String>,
    /// Page size.
    #[param(minimum = 1, maximum = 1000, default = 100, nullable = false)]
    pub limit: Option<i64>,
}

/// An endpoint's deliveries, newest first: state, attempts, the last answer or error.
#[utoipa::path(get, path = "/api/v1/webhook-endpoints/{id}/deliveries", tag = "webhooks", operation_id = "list_webhook_deliveries",
    params(("id" = Uuid, Path), DeliveriesQuery), responses((status = 200, body = WebhookDeliveriesPage)), security(("token" = [])))]
pub async fn deliveries(
    State(st): State<AppState>,
    Company(company): Company,
    Path(id): Path<Uuid>,
    Query(q): Query<DeliveriesQuery>,
) -> ApiResult<Json<WebhookDeliveriesPage>> {
    let limit = paging::limit(q.limit)?;
    let scope = format!("webhook-deliveries|{company}|{id}");
    let before: Option<i64> = paging::after(&st, &scope, q.cursor.as_deref()).await?;
    let rows = endpoints::deliveries(&st.pool, company, id, before, limit + 1).await?;
    let (rows, next_cursor) = paging::page(&st, &scope, rows, limit, |d| d.id).await?;
    Ok(Json(WebhookDeliveriesPage {
        items: rows
            .into_iter()
            .map(|d| WebhookDelivery {
                id: d.id,
                endpoint_id: d.endpoint_id,
                message_id: d.message_id,
                kind: d.kind,
                connection_id: d.connection_id,
                state: d.state,
                attempts: d.attempts,
                next_attempt_at: d.next_attempt_at,
                last_attempt_at: d.last_attempt_at,
                last_status: d.last_status,
                last_error: d.last_error,
                delivered_at: d.delivered_at,
                created_at: d.created_at,
                payload: d.payload,
            })
            .collect(),
        next_cursor,
    }))
}

/// Sends a delivery again (with the same `webhook-id`), at its place in its connection's
/// order.
#[utoipa::path(post, path = "/api/v1/webhook-deliveries/{id}/redeliver", tag = "webhooks", operation_id = "redeliver_webhook_delivery",
    params(("id" = i64, Path)), responses((status = 202, description = "queued again")), security(("token" = [])))]
pub async fn redeliver(
    State(st): State<AppState>,
    Company(company): Company,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    endpoints::redeliver(&st.pool, company, id).await?;
    Ok(StatusCode::ACCEPTED)
}
