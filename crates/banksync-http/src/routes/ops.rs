//! Health, readiness, metrics and the OpenAPI document.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use serde_json::json;

use crate::error::ApiError;
use crate::AppState;

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", operation_id = "check_health", tag = "operations", responses((status = 200, description = "`{\"status\":\"ok\"}`", content_type = "application/json")))]
pub async fn healthz() -> impl IntoResponse {
    axum::Json(json!({ "status": "ok" }))
}

/// Readiness: Postgres answers.
#[utoipa::path(get, path = "/readyz", operation_id = "check_readiness", tag = "operations", responses((status = 200, description = "ready", content_type = "application/json"), (status = 503, description = "not_ready: Postgres does not answer")))]
pub async fn readyz(State(st): State<AppState>) -> axum::response::Response {
    match sync_engine::stats::ping(&st.pool).await {
        Ok(()) => axum::Json(json!({ "status": "ready", "database": "ok" })).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            let mut r = ApiError::from(e).into_response();
            *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            r
        }
    }
}

/// Prometheus metrics. No database work per scrape; with `server.metrics_token` set, the
/// scraper sends `Authorization: Bearer <token>`.
#[utoipa::path(get, path = "/metrics", operation_id = "show_metrics", tag = "operations", responses((status = 200, description = "Prometheus text format", content_type = "text/plain"), (status = 401, description = "unauthorized: `server.metrics_token` is set and was not sent")))]
pub async fn metrics(
    State(st): State<AppState>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    if let Some(want) = &st.metrics_token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        // Digests compared, not the secrets: equal length, nothing to learn from timing.
        if sync_engine::tokens::hash(given) != sync_engine::tokens::hash(want) {
            return ApiError::Unauthorized.into_response();
        }
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        st.metrics.render(st.worker_health.as_deref()),
    )
        .into_response()
}

/// Liveness of the work, for an orchestrator: 503 when a job loop is dead or silent for
/// longer than allowed (the process should be restarted); `/readyz` says whether the API
/// can serve.
#[utoipa::path(get, path = "/livez", operation_id = "check_liveness", tag = "operations", responses((status = 200, description = "live", content_type = "application/json"), (status = 503, description = "not_live: a job loop is dead or silent")))]
pub async fn livez(State(st): State<AppState>) -> axum::response::Response {
    let problems = st
        .worker_health
        .as_ref()
        .map(|h| h.problems(st.livez_stale))
        .unwrap_or_default();
    if problems.is_empty() {
        return axum::Json(json!({ "status": "live" })).into_response();
    }
    tracing::error!(?problems, "not live");
    let body = json!({
        "type": "https://banksync.dev/problems/not_live", "title": "Not live", "status": 503,
        "code": "not_live", "detail": problems.join("; "),
    });
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}
