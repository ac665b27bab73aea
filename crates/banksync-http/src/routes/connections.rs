//! Connections: the bookkeeper's flows (link, update credentials, fetch new accounts, sync
//! now, answer the bank, revoke, delete), each a call to [`sync_engine::flows`], and the
//! connection's views (list, show, sync history, quarantine).

use axum::extract::State;
use axum::http::StatusCode;
use sync_engine::flows::{self, Email, Phone, ProviderCode, ReturnUrl};
use sync_engine::runs;
use uuid::Uuid;

use crate::dto::{self, ConnectUrl, Connection, LinkRequest, ReturnTo, SyncQueued, SyncRun};
use crate::error::ApiResult;
use crate::extract::{Company, Json, Path, Query};
use crate::paging;
use crate::AppState;

async fn shown(
    st: &AppState,
    c: sync_engine::connections::Connection,
) -> ApiResult<Json<Connection>> {
    Ok(Json(flows::connection_view(&st.pool, c).await?.into()))
}

/// Answers the bank's interactive question (SMS code, chosen accounts…); Salt Edge carries
/// on with the fetch and calls back as usual.
#[utoipa::path(post, path = "/api/v1/connections/{id}/interactive", operation_id = "answer_interactive_question", tag = "connections", params(("id" = Uuid, Path)),
    request_body = dto::InteractiveAnswer,
    responses((status = 202, body = Connection), (status = 409, description = "not_waiting_for_input, connection_removed or connection_disabled"), (status = 422, description = "invalid_credentials: not a field the bank asked for"), (status = 502, description = "saltedge_error or saltedge_unreachable: Salt Edge refused or could not be reached")),
    security(("token" = [])))]
pub async fn answer_interactive(
    State(st): State<AppState>,
    Company(company): Company,
    Path(id): Path<Uuid>,
    Json(req): Json<dto::InteractiveAnswer>,
) -> ApiResult<(StatusCode, Json<Connection>)> {
    let c = flows::answer_interactive(&st.pool, &st.client, company, id, &req.credentials).await?;
    Ok((StatusCode::ACCEPTED, shown(&st, c).await?))
}

/// Link a bank: returns the Salt Edge Connect URL to send the user to.
#[utoipa::path(post, path = "/api/v1/connections", operation_id = "link_bank", tag = "connections", request_body = LinkRequest,
    responses((status = 201, body = ConnectUrl), (status = 403, description = "return_to_not_allowed: return_to's origin is not on the allow-list"), (status = 404, description = "not_found: no active institution with this code"), (status = 409, description = "already_synchronized (with guidance and connection_id)"), (status = 429, description = "busy: the company's quota of connect sessions or the shared fetch budget is spent for now; Retry-After says when to try again"), (status = 502, description = "saltedge_error or saltedge_unreachable: Salt Edge refused or could not be reached"),
              (status = 422, description = "invalid_email, invalid_phone, unknown_institution, invalid_return_to")),
    security(("token" = [])))]
pub async fn link(
    State(st): State<AppState>,
    Company(company): Company,
    Json(req): Json<LinkRequest>,
) -> ApiResult<(StatusCode, Json<ConnectUrl>)> {
    let req = flows::LinkRequest {
        email: Email::parse(&req.email)?,
        phone: Phone::parse(&req.phone)?,
        provider_code: ProviderCode::parse(&req.provider_code)?,
        return_to: ReturnUrl::parse(&req.return_to)?,
        allow_second_connection: req.allow_second_connection,
    };
    let link = flows::link(&st.pool, &st.client, &st.connect, company, &req).await?;
    Ok((StatusCode::CREATED, Json(link.into())))
}

/// The company's connections with accounts, journals, last sync and errors.
#[utoipa::path(get, path = "/api/v1/connections", tag = "connections", operation_id = "list_connections", responses((status = 200, body = Vec<Connection>)), security(("token" = [])))]
pub async fn list(
    State(st): State<AppState>,
    Company(company): Company,
) -> ApiResult<Json<Vec<Connection>>> {
    let views = flows::connection_views(&st.pool, company).await?;
    Ok(Json(views.into_iter().map(Connection::from).collect()))
}

#[utoipa::path(get, path = "/api/v1/connections/{id}", operation_id = "show_connection", tag = "connections", params(("id" = Uuid, Path)),
    responses((status = 200, body = Connection)), security(("token" = [])))]
pub async fn show(
    State(st): State<AppState>,
    Company(company): Company,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Connection>> {
    shown(&st, flows::load(&st.pool, company, id).await?).await
}

/// Update credentials (reconnect): returns a Connect URL. Remind the user to tick the consent box.
#[utoipa::path(post, path = "/api/v1/connections/{id}/update-credentials", operation_id = "update_connection_credentials", tag = "connections", params(("id" = Uuid, Path)),
    request_body = ReturnTo, responses((status = 200, body = ConnectUrl), (status = 403, description = "return_to_not_allowed"), (status = 409, description = "connection_removed or connection_disabled, with guidance"), (status = 429, description = "busy: the company's quota of connect sessions or the shared fetch budget is spent for now; Retry-After says when to try again"), (status = 502, description = "saltedge_error or saltedge_unreachable: Salt Edge refused or could not be reached")), security(("token" = [])))]
pub async fn update_credentials(
    State(st): State<AppState>,
    Company(company): Company,
    Path(id): Path<Uuid>,
    Json(req): Json<ReturnTo>,
) -> ApiResult<Json<ConnectUrl>> {
    let return_to = ReturnUrl::parse(&req.return_to)?;
    let link =
        flows::update_credentials(&st.pool, &st.client, &st.connect, company, id, &return_to)
            .await?;
    Ok(Json(link.into()))
}

/// Fetch new accounts (refresh through Connect): returns a Connect URL.
#[utoipa::path(post, path = "/api/v1/connections/{id}/fetch-accounts", operation_id = "fetch_new_accounts", tag = "connections", params(("id" = Uuid, Path)),
    request_body = ReturnTo, responses((status = 200, body = ConnectUrl), (status = 403, description = "return_to_not_allowed"), (status = 409, description = "connection_removed, connection_disabled, consent_revoked, consent_expired or connection_inactive, with `guidance`: what the user does instead"), (status = 429, description = "busy: the company's quota of connect sessions or the shared fetch budget is spent for now; Retry-After says when to try again"), (status = 502, description = "saltedge_error or saltedge_unreachable: Salt Edge refused or could not be reached")), security(("token" = [])))]
pub async fn fetch_accounts(
    State(st): State<AppState>,
    Company(company): Company,
    Path(id): Path<Uuid>,
    Json(req): Json<ReturnTo>,
) -> ApiResult<Json<ConnectUrl>> {
    let return_to = ReturnUrl::parse(&req.return_to)?;
    let link =
        flows::fetch_accounts(&st.pool, &st.client, &st.connect, company, id, &return_to).await?;
    Ok(Json(link.into()))
}

/// Sync now: queues a sync (or returns the one already queued).
#[utoipa::path(post, path = "/api/v1/connections/{id}/sync", operation_id = "sync_connection", tag = "connections", params(("id" = Uuid, Path)),
    responses((status = 202, body = SyncQueued), (status = 409, description = "connection_removed, connection_disabled, consent_revoked, consent_expired or connection_inactive, with `guidance`: what the user does instead")), security(("token" = [])))]
pub async fn sync_now(
    State(st): State<AppState>,
    Company(company): Company,
    Path(id): Path<Uuid>,
) -> ApiResult<(StatusCode, Json<SyncQueued>)> {
    let run = flows::sync_now(&st.pool, company, id).await?;
    Ok((StatusCode::ACCEPTED, Json(SyncQueued { sync_run_id: run })))
}

/// Sync history, newest first, a page at a time.
#[utoipa::path(get, path = "/api/v1/connections/{id}/sync-runs", tag = "connections", operation_id = "list_sync_runs",
    params(("id" = Uuid, Path), dto::PageQuery),
    responses((status = 200, body = dto::SyncRunsPage)), security(("token" = [])))]
pub async fn sync_runs(
    State(st): State<AppState>,
    Company(company): Company,
    Path(id): Path<Uuid>,
    Query(q): Query<dto::PageQuery>,
) -> ApiResult<Json<dto::SyncRunsPage>> {
    let limit = paging::limit(q.limit)?;
    let c = flows::load(&st.pool, company, id).await?;
    let scope = format!("sync-runs|{company}|{}", c.id);
    let after = paging::after(&st, &scope, q.cursor.as_deref()).await?;
    let rows = runs::page(&st.pool, c.id, after, limit + 1).await?;
    let (items, next_cursor) =
        paging::page(&st, &scope, rows, limit, |r| (r.started_at, r.id)).await?;
    Ok(Json(dto::SyncRunsPage {
        items: items.into_iter().map(SyncRun::from).collect(),
        next_cursor,
    }))
}

/// Records of the connection that could not be parsed or stored, newest first, a page at
/// a time, with the raw JSON and the reason; the rest of the connection imported.
#[utoipa::path(get, path = "/api/v1/connections/{id}/quarantine", operation_id = "list_quarantined_items", tag = "connections",
    params(("id" = Uuid, Path), dto::PageQuery),
    responses((status = 200, body = dto::QuarantinePage)), security(("token" = [])))]
pub async fn quarantine(
    State(st): State<AppState>,
    Company(company): Company,
    Path(id): Path<Uuid>,
    Query(q): Query<dto::PageQuery>,
) -> ApiResult<Json<dto::QuarantinePage>> {
    let limit = paging::limit(q.limit)?;
    let c = flows::load(&st.pool, company, id).await?;
    let scope = format!("quarantine|{company}|{}", c.id);
    let before: Option<i64> = paging::after(&st, &scope, q.cursor.as_deref()).await?;
    let rows =
        sync_engine::quarantine::for_connection(&st.pool, company, c.id, before, limit + 1).await?;
    let (rows, next_cursor) = paging::page(&st, &scope, rows, limit, |r| r.id).await?;
    Ok(Json(dto::QuarantinePage {
        items: rows.into_iter().map(dto::QuarantinedRecord::from).collect(),
        next_cursor,
    }))
}

/// Revoke consent: the bank data is no longer accessed. Idempotent.
#[utoipa::path(post, path = "/api/v1/connections/{id}/revoke", operation_id = "revoke_consent", tag = "connections", params(("id" = Uuid, Path)),
    responses((status = 200, body = Connection), (status = 409, description = "connection_removed"), (status = 502, description = "saltedge_error or saltedge_unreachable: Salt Edge refused or could not be reached")), security(("token" = [])))]
pub async fn revoke(
    State(st): State<AppState>,
    Company(company): Company,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Connection>> {
    let c = flows::revoke(&st.pool, &st.client, company, id).await?;
    shown(&st, c).await
}

/// Delete: revoke, remove at Salt Edge, and delete the record only once Salt Edge no longer
/// holds the connection; otherwise 409 with the FAQ's explanation and the record kept.
/// Journals and their lines are never deleted.
#[utoipa::path(delete, path = "/api/v1/connections/{id}", operation_id = "delete_connection", tag = "connections", params(("id" = Uuid, Path)),
    responses((status = 204, description = "deleted"), (status = 409, description = "still_held_by_saltedge: consent revoked, record kept (with guidance)"), (status = 502, description = "saltedge_error or saltedge_unreachable: Salt Edge refused or could not be reached")),
    security(("token" = [])))]
pub async fn delete(
    State(st): State<AppState>,
    Company(company): Company,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    flows::delete(&st.pool, &st.client, company, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
