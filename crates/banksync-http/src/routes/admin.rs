//! Operational views for admin tokens.

use axum::extract::State;
use serde::Deserialize;
use sync_engine::jobs;
use utoipa::IntoParams;

use crate::dto::{AuditPage, AuditRecord, Job, JobsPage, PageQuery};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Admin, Json, Path, Query};
use crate::paging;
use crate::AppState;

#[derive(Deserialize, IntoParams)]
pub struct JobsQuery {
    /// `next_cursor` of the previous page.
    #[param(nullable = false, pattern = "^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]{43}$")]
    pub cursor: Option<String>,
    /// Page size.
    #[param(minimum = 1, maximum = 1000, default = 100, nullable = false)]
    pub limit: Option<i64>,
    /// `dead`: only jobs past their attempts cap.
    #[param(inline, nullable = false)]
    pub status: Option<JobFilter>,
}

#[derive(Deserialize, Clone, Copy, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobFilter {
    Dead,
}

/// Job history, newest first, a page at a time (admin tokens only).
#[utoipa::path(get, path = "/api/v1/admin/jobs", operation_id = "list_jobs", tag = "operations", params(JobsQuery),
    responses((status = 200, body = JobsPage)), security(("token" = [])))]
pub async fn jobs(
    State(st): State<AppState>,
    _: Admin,
    Query(q): Query<JobsQuery>,
) -> ApiResult<Json<JobsPage>> {
    let limit = paging::limit(q.limit)?;
    let scope = match q.status {
        None => "admin-jobs",
        Some(JobFilter::Dead) => "admin-jobs|dead",
    };
    let before: Option<i64> = paging::after(&st, scope, q.cursor.as_deref()).await?;
    let rows = match q.status {
        None => jobs::recent(&st.pool, before, limit + 1).await?,
        Some(JobFilter::Dead) => jobs::dead(&st.pool, before, limit + 1).await?,
    };
    let (rows, next_cursor) = paging::page(&st, scope, rows, limit, |j| j.id).await?;
    Ok(Json(JobsPage {
        items: rows.into_iter().map(Job::from).collect(),
        next_cursor,
    }))
}

/// Queues a dead or failed job again with a fresh attempts count (admin tokens only).
#[utoipa::path(post, path = "/api/v1/admin/jobs/{id}/rerun", operation_id = "rerun_job", tag = "operations", params(("id" = i64, Path)),
    responses((status = 202, description = "queued again"), (status = 409, description = "not_rerunnable: not dead or failed, or the same work is queued")),
    security(("token" = [])))]
pub async fn rerun(
    State(st): State<AppState>,
    _: Admin,
    Path(id): Path<i64>,
) -> ApiResult<axum::http::StatusCode> {
    if jobs::rerun(&st.pool, id).await? {
        tracing::info!(job = id, "job queued again by an operator");
        Ok(axum::http::StatusCode::ACCEPTED)
    } else {
        Err(ApiError::conflict(
            "not_rerunnable",
            "the job is not dead or failed, or the same work is already queued",
        ))
    }
}

/// API tokens (never the tokens themselves) with last use, expiry and revocation (operator
/// tokens only).
#[utoipa::path(get, path = "/api/v1/admin/tokens", operation_id = "list_tokens", tag = "operations",
    responses((status = 200, body = Vec<crate::dto::Token>)), security(("token" = [])))]
pub async fn tokens(
    State(st): State<AppState>,
    _: Admin,
) -> ApiResult<Json<Vec<crate::dto::Token>>> {
    let list = sync_engine::tokens::list(&st.pool, 1000).await?;
    Ok(Json(
        list.into_iter().map(crate::dto::Token::from).collect(),
    ))
}

/// Revokes a token at once (operator tokens only).
#[utoipa::path(delete, path = "/api/v1/admin/tokens/{id}", operation_id = "revoke_token", tag = "operations", params(("id" = uuid::Uuid, Path)),
    responses((status = 204, description = "revoked")), security(("token" = [])))]
pub async fn revoke_token(
    State(st): State<AppState>,
    _: Admin,
    Path(id): Path<uuid::Uuid>,
) -> ApiResult<axum::http::StatusCode> {
    if sync_engine::tokens::revoke(&st.pool, id).await? {
        Ok(axum::http::StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("token"))
    }
}

/// The audit log, newest first, a page at a time (operator tokens only).
#[utoipa::path(get, path = "/api/v1/admin/audit", operation_id = "list_audit_records", tag = "operations", params(PageQuery),
    responses((status = 200, body = AuditPage)), security(("token" = [])))]
pub async fn audit(
    State(st): State<AppState>,
    _: Admin,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<AuditPage>> {
    let limit = paging::limit(q.limit)?;
    let before: Option<i64> = paging::after(&st, "admin-audit", q.cursor.as_deref()).await?;
    let rows = sync_engine::audit::recent(&st.pool, before, limit + 1).await?;
    let (rows, next_cursor) = paging::page(&st, "admin-audit", rows, limit, |r| r.id).await?;
    Ok(Json(AuditPage {
        items: rows.into_iter().map(AuditRecord::from).collect(),
        next_cursor,
    }))
}
