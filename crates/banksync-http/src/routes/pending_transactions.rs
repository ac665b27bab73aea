//! Pending transactions: what the bank has not booked yet, out of the journals, by journal
//! and state (signed cursor).

use axum::extract::State;
use serde::Deserialize;
use sync_engine::pending;
use utoipa::IntoParams;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::dto::{PendingPage, PendingTransaction};
use crate::error::ApiResult;
use crate::extract::{Company, Json, Path, Query};
use crate::paging;
use crate::AppState;

#[derive(Deserialize, IntoParams)]
pub struct PendingQuery {
    #[param(nullable = false)]
    pub journal_id: Option<Uuid>,
    /// `pending` (the default: what Salt Edge lists as pending now), `posted`, `expired`
    /// or `all`.
    #[param(inline, nullable = false)]
    pub state: Option<PendingState>,
    /// `next_cursor` of the previous page, with the same filters.
    #[param(nullable = false, pattern = "^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]{43}$")]
    pub cursor: Option<String>,
    /// Page size.
    #[param(minimum = 1, maximum = 1000, default = 100, nullable = false)]
    pub limit: Option<i64>,
}

#[derive(Deserialize, Clone, Copy, Debug, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PendingState {
    Pending,
    Posted,
    Expired,
    All,
}

impl PendingState {
    fn filter(self) -> Option<&'static str> {
        match self {
            PendingState::Pending => Some("pending"),
            PendingState::Posted => Some("posted"),
            PendingState::Expired => Some("expired"),
            PendingState::All => None,
        }
    }
}

pub(crate) fn dto(p: pending::PendingTransaction) -> PendingTransaction {
    PendingTransaction {
        id: p.id,
        journal_id: p.journal_id,
        bank_account_id: p.bank_account_id,
        saltedge_transaction_id: p.saltedge_transaction_id,
        booking_date: p.booking_date,
        value_date: p.value_date,
        amount: crate::dto::money(p.amount, &p.currency),
        currency: p.currency,
        description: p.description,
        payee: p.payee,
        state: p.state,
        posted_line_id: p.posted_line_id,
        proposed_line_id: p.proposed_line_id,
        first_seen_at: p.first_seen_at,
        resolved_at: p.resolved_at,
        extra: p.extra,
        text_repaired: p.text_repaired,
    }
}

/// Pending transactions of the company's journals, by booking date; cursor pagination.
/// They are not statement lines: one that posts becomes a line that names it
/// (`pending_transaction_id`), one Salt Edge stops listing expires.
#[utoipa::path(get, path = "/api/v1/pending-transactions", tag = "statement-lines", operation_id = "list_pending_transactions", params(PendingQuery),
    responses((status = 200, body = PendingPage)), security(("token" = [])))]
pub async fn list(
    State(st): State<AppState>,
    Company(company): Company,
    Query(q): Query<PendingQuery>,
) -> ApiResult<Json<PendingPage>> {
    let limit = paging::limit(q.limit)?;
    let state = q.state.unwrap_or(PendingState::Pending);
    let scope = format!("pending|{company}|{:?}|{state:?}", q.journal_id);
    let after = paging::after(&st, &scope, q.cursor.as_deref()).await?;
    let filter = pending::PendingFilter {
        journal_id: q.journal_id,
        state: state.filter(),
    };
    let rows = pending::page(&st.pool, company, &filter, after, limit + 1).await?;
    let (rows, next_cursor) =
        paging::page(&st, &scope, rows, limit, |r| (r.booking_date, r.id)).await?;
    Ok(Json(PendingPage {
        items: rows.into_iter().map(dto).collect(),
        next_cursor,
    }))
}

/// Which statement line is the posting of a pending transaction.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkPending {
    /// A statement line of the same bank account that names no pending transaction yet
    /// (e.g. the transaction's `proposed_line_id`).
    #[serde(deserialize_with = "whole_number")]
    pub line_id: i64,
}

/// An id in JSON: an integer, written as such or with a zero fraction (`12.0`), as JSON
/// Schema's `integer` allows.
fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    if let Some(i) = n.as_i64() {
        return Ok(i);
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && (-9.2e18..=9.2e18).contains(&f) => Ok(f as i64),
        _ => Err(serde::de::Error::custom("not a whole number")),
    }
}

/// Links an open pending transaction to the statement line that is its posting: a
/// proposal (`proposed_line_id`) confirmed, or a link banksync did not make. The
/// transaction becomes `posted`; the line names it and its history records the link.
#[utoipa::path(post, path = "/api/v1/pending-transactions/{id}/link", tag = "statement-lines", operation_id = "link_pending_transaction",
    params(("id" = i64, Path)), request_body = LinkPending,
    responses((status = 200, body = PendingTransaction), (status = 404, description = "no such pending transaction or line"),
              (status = 409, description = "already linked, another bank account, or the line names a pending transaction")),
    security(("token" = [])))]
pub async fn link(
    State(st): State<AppState>,
    Company(company): Company,
    Path(id): Path<i64>,
    Json(body): Json<LinkPending>,
) -> ApiResult<Json<PendingTransaction>> {
    pending::link(&st.pool, company, id, body.line_id).await?;
    Ok(Json(dto(pending::get(&st.pool, company, id).await?)))
}

/// Undoes the link between a pending transaction and its line (a wrong link, banksync's or
/// a bookkeeper's): the line no longer names it, the transaction is open again (`expired`
/// until a sync finds it in Salt Edge's pending list); the line's history records it.
#[utoipa::path(post, path = "/api/v1/pending-transactions/{id}/unlink", tag = "statement-lines", operation_id = "unlink_pending_transaction",
    params(("id" = i64, Path)),
    responses((status = 200, body = PendingTransaction), (status = 404, description = "no such pending transaction"),
              (status = 409, description = "not linked")),
    security(("token" = [])))]
pub async fn unlink(
    State(st): State<AppState>,
    Company(company): Company,
    Path(id): Path<i64>,
) -> ApiResult<Json<PendingTransaction>> {
    pending::unlink(&st.pool, company, id).await?;
    Ok(Json(dto(pending::get(&st.pool, company, id).await?)))
}
