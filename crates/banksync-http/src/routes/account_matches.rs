//! Proposed account matches: a new Salt Edge account that looks like an earlier bank
//! account only by provider, currency and name waits for the bookkeeper's decision.

use axum::extract::State;
use serde::Deserialize;
use sync_engine::mapping;
use utoipa::IntoParams;

use crate::dto::{AccountMatch, SyncQueued};
use crate::error::ApiResult;
use crate::extract::{Company, Json, Path, Query};
use crate::AppState;

#[derive(Deserialize, IntoParams)]
pub struct MatchesQuery {
    /// Also the decided ones (default: only those waiting).
    #[param(nullable = false)]
    pub all: Option<bool>,
}

fn dto(p: mapping::Proposal) -> AccountMatch {
    AccountMatch {
        id: p.id,
        connection_id: p.connection_id,
        saltedge_account_id: p.saltedge_account_id,
        name: p.name,
        currency: p.currency,
        candidate_account_id: p.candidate_account_id,
        candidate_name: p.candidate_name,
        status: p.status,
        created_at: p.created_at,
        decided_at: p.decided_at,
    }
}

/// Proposed matches waiting for a decision (or all, with `all=true`).
#[utoipa::path(get, path = "/api/v1/account-matches", tag = "bank-accounts", operation_id = "list_account_matches",
    params(MatchesQuery), responses((status = 200, body = Vec<AccountMatch>)), security(("token" = [])))]
pub async fn list(
    State(st): State<AppState>,
    Company(company): Company,
    Query(q): Query<MatchesQuery>,
) -> ApiResult<Json<Vec<AccountMatch>>> {
    let rows = mapping::proposals(&st.pool, company, !q.all.unwrap_or(false)).await?;
    Ok(Json(rows.into_iter().map(dto).collect()))
}

/// Confirms a match: the earlier bank account (its journal and history) takes the new Salt
/// Edge account over; a sync is queued.
#[utoipa::path(post, path = "/api/v1/account-matches/{id}/confirm", tag = "bank-accounts", operation_id = "confirm_account_match",
    params(("id" = i64, Path)),
    responses((status = 202, body = SyncQueued), (status = 409, description = "already_decided, or account_taken: another connection uses the earlier account now")),
    security(("token" = [])))]
pub async fn confirm(
    State(st): State<AppState>,
    Company(company): Company,
    Path(id): Path<i64>,
) -> ApiResult<(axum::http::StatusCode, Json<SyncQueued>)> {
    let run = sync_engine::flows::decide_account_match(&st.pool, company, id, true).await?;
    Ok((
        axum::http::StatusCode::ACCEPTED,
        Json(SyncQueued { sync_run_id: run }),
    ))
}

/// Rejects a match: the new account gets a journal of its own; a sync is queued.
#[utoipa::path(post, path = "/api/v1/account-matches/{id}/reject", tag = "bank-accounts", operation_id = "reject_account_match",
    params(("id" = i64, Path)),
    responses((status = 202, body = SyncQueued), (status = 409, description = "already_decided")),
    security(("token" = [])))]
pub async fn reject(
    State(st): State<AppState>,
    Company(company): Company,
    Path(id): Path<i64>,
) -> ApiResult<(axum::http::StatusCode, Json<SyncQueued>)> {
    let run = sync_engine::flows::decide_account_match(&st.pool, company, id, false).await?;
    Ok((
        axum::http::StatusCode::ACCEPTED,
        Json(SyncQueued { sync_run_id: run }),
    ))
}
