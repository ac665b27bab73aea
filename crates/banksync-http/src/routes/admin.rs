//! Operational views for admin tokens.

use axum::extract::State;
use serde::Deserialize;
use sync_engine::jobs;
use utoipa::IntoParams;

use crate::dto::Job;
use crate::error::ApiResult;
use crate::extract::{Admin, Json, Query};
use crate::AppState;

#[derive(Deserialize, IntoParams)]
pub struct JobsQuery {
    /// 1 to 1000, default 100.
    pub limit: Option<i64>,
}

/// Job history, newest first (admin tokens only).
#[utoipa::path(get, path = "/api/v1/admin/jobs", tag = "operations", params(JobsQuery),
    responses((status = 200, body = Vec<Job>), (status = 403)), security(("token" = [])))]
pub async fn jobs(State(st): State<AppState>, _: Admin, Query(q): Query<JobsQuery>) -> ApiResult<Json<Vec<Job>>> {
    let list = jobs::recent(&st.pool, q.limit.unwrap_or(100).clamp(1, 1000)).await?;
    Ok(Json(list.into_iter().map(Job::from).collect()))
}
