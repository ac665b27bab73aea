//! Statement lines: the company's journals' lines by booking date (filters, signed cursor),
//! and the review of flagged lines (possible duplicates, removals, re-issues).

use axum::extract::State;
use chrono::NaiveDate;
use serde::Deserialize;
use sync_engine::review::Decision;
use sync_engine::statement_lines;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::dto::{LineEvent, LineHistory, LinesPage, StatementLine};
use crate::error::ApiResult;
use crate::extract::{Company, Json, Path, Query};
use crate::paging;
use crate::AppState;

#[derive(Deserialize, IntoParams)]
pub struct LinesQuery {
    #[param(nullable = false)]
    pub journal_id: Option<Uuid>,
    /// Booking date from (inclusive), YYYY-MM-DD.
    #[param(nullable = false)]
    pub from: Option<NaiveDate>,
    /// Booking date to (inclusive).
    #[param(nullable = false)]
    pub to: Option<NaiveDate>,
    /// Every line is booked: `posted` is the only status. Pending transactions moved to
    /// `GET /api/v1/pending-transactions`; `status=pending` is refused with 422
    /// `pending_moved`, which says so.
    #[param(nullable = false, pattern = "^posted$")]
    pub status: Option<String>,
    /// `next_cursor` of the previous page, with the same filters.
    #[param(nullable = false, pattern = "^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]{43}$")]
    pub cursor: Option<String>,
    /// Page size.
    #[param(minimum = 1, maximum = 1000, default = 100, nullable = false)]
    pub limit: Option<i64>,
}

pub(crate) fn line_dto(r: statement_lines::Line) -> StatementLine {
    let (duplicate_review, removal_review, reissue_review) =
        (r.duplicate_review(), r.removal_review(), r.reissue_review());
    let in_journal = r.in_books();
    StatementLine {
        id: r.id,
        journal_id: r.journal_id,
        bank_account_id: r.bank_account_id,
        booking_date: r.booking_date,
        value_date: r.value_date,
        amount: crate::dto::money(r.amount, &r.currency),
        currency: r.currency,
        description: r.description,
        payee: r.payee,
        counterparty_iban: r.counterparty_iban,
        saltedge_transaction_id: r.saltedge_transaction_id,
        pending_transaction_id: r.pending_transaction_id,
        suspect_duplicate_of: r.suspect_duplicate_of,
        duplicate_review,
        in_journal,
        rekeyed_from: r.rekeyed_from,
        gone_at_bank_at: r.gone_at_bank_at,
        gone_at_bank_run_id: r.gone_at_bank_run_id,
        removal_review,
        reissue_of: r.reissue_of,
        reissue_review,
        fingerprint: r.fingerprint,
        occurrence: r.occurrence,
        bank_transaction_id: r.bank_transaction_id,
        imported_at: r.imported_at,
        extra: r.extra,
        text_repaired: r.text_repaired,
    }
}

async fn review(
    st: AppState,
    company: Uuid,
    id: i64,
    decision: Decision,
) -> ApiResult<Json<StatementLine>> {
    sync_engine::review::decide(&st.pool, &st.client, company, id, decision).await?;
    Ok(Json(line_dto(
        statement_lines::get(&st.pool, company, id).await?,
    )))
}

/// Confirms a flagged look-alike as a duplicate: banksync marks the transaction `duplicated`
/// at Salt Edge and the line leaves the journal (`in_journal: false`, out of the balance).
#[utoipa::path(post, path = "/api/v1/statement-lines/{id}/confirm-duplicate", operation_id = "confirm_duplicate_line", tag = "statement-lines", params(("id" = i64, Path)),
    responses((status = 200, body = StatementLine), (status = 409, description = "not flagged, already reviewed, or pending"), (status = 502, description = "saltedge_error or saltedge_unreachable: Salt Edge refused or could not be reached")),
    security(("token" = [])))]
pub async fn confirm_duplicate(
    State(st): State<AppState>,
    Company(company): Company,
    Path(id): Path<i64>,
) -> ApiResult<Json<StatementLine>> {
    review(st, company, id, Decision::ConfirmDuplicate).await
}

/// Dismisses the look-alike flag: the line is a genuine transaction of its own.
#[utoipa::path(post, path = "/api/v1/statement-lines/{id}/dismiss-duplicate", operation_id = "dismiss_duplicate_line", tag = "statement-lines", params(("id" = i64, Path)),
    responses((status = 200, body = StatementLine), (status = 409, description = "not flagged or already reviewed")), security(("token" = [])))]
pub async fn dismiss_duplicate(
    State(st): State<AppState>,
    Company(company): Company,
    Path(id): Path<i64>,
) -> ApiResult<Json<StatementLine>> {
    review(st, company, id, Decision::DismissDuplicate).await
}

/// Undoes the line's latest review decision: a confirmed duplicate (the transaction is
/// `unduplicate`d at Salt Edge and the line returns to the journal), a dismissal (the flag
/// stands again), a confirmed or kept removal, a dismissed re-issue. A merge is final.
#[utoipa::path(post, path = "/api/v1/statement-lines/{id}/undo-review", operation_id = "undo_line_review", tag = "statement-lines", params(("id" = i64, Path)),
    responses((status = 200, body = StatementLine), (status = 409, description = "nothing to undo"), (status = 502, description = "saltedge_error or saltedge_unreachable: Salt Edge refused or could not be reached")), security(("token" = [])))]
pub async fn undo_review(
    State(st): State<AppState>,
    Company(company): Company,
    Path(id): Path<i64>,
) -> ApiResult<Json<StatementLine>> {
    review(st, company, id, Decision::Undo).await
}

/// Confirms the bank's removal of a line flagged `gone_at_bank`: the line leaves the
/// journal (`in_journal: false`; a correction on the current statement when its own is
/// closed). Undone by `undo-review`; cleared by itself if the bank lists it again.
#[utoipa::path(post, path = "/api/v1/statement-lines/{id}/confirm-removal", operation_id = "confirm_line_removal", tag = "statement-lines", params(("id" = i64, Path)),
    responses((status = 200, body = StatementLine), (status = 409, description = "not gone at the bank, or already answered")),
    security(("token" = [])))]
pub async fn confirm_removal(
    State(st): State<AppState>,
    Company(company): Company,
    Path(id): Path<i64>,
) -> ApiResult<Json<StatementLine>> {
    review(st, company, id, Decision::ConfirmRemoval).await
}

/// Keeps a line flagged `gone_at_bank` in the journal (the bookkeeper knows better, e.g. a
/// bank's display glitch). Undone by `undo-review`.
#[utoipa::path(post, path = "/api/v1/statement-lines/{id}/keep-removed", operation_id = "keep_removed_line", tag = "statement-lines", params(("id" = i64, Path)),
    responses((status = 200, body = StatementLine), (status = 409, description = "not gone at the bank, or already answered")),
    security(("token" = [])))]
pub async fn keep_removed(
    State(st): State<AppState>,
    Company(company): Company,
    Path(id): Path<i64>,
) -> ApiResult<Json<StatementLine>> {
    review(st, company, id, Decision::KeepRemoved).await
}

/// Merges a possible re-issue (this line, `reissue_of` set) into the earlier line: that line
/// keeps its id and takes this line's content and Salt Edge id (its history records the
/// merge and what it held); this line goes (`removed` in the change feed). Final. Answers
/// the earlier line.
#[utoipa::path(post, path = "/api/v1/statement-lines/{id}/merge-reissue", operation_id = "merge_reissued_line", tag = "statement-lines", params(("id" = i64, Path)),
    responses((status = 200, body = StatementLine, description = "the earlier line, merged"),
              (status = 409, description = "not flagged as a possible re-issue, already dismissed, or sync_running (try again)")),
    security(("token" = [])))]
pub async fn merge_reissue(
    State(st): State<AppState>,
    Company(company): Company,
    Path(id): Path<i64>,
) -> ApiResult<Json<StatementLine>> {
    let into = statement_lines::get(&st.pool, company, id)
        .await?
        .reissue_of;
    sync_engine::review::decide(&st.pool, &st.client, company, id, Decision::MergeReissue).await?;
    let merged = into.ok_or(sync_engine::SyncError::not_found("statement line"))?;
    Ok(Json(line_dto(
        statement_lines::get(&st.pool, company, merged).await?,
    )))
}

/// Dismisses a possible re-issue: both lines stay. Undone by `undo-review`.
#[utoipa::path(post, path = "/api/v1/statement-lines/{id}/dismiss-reissue", operation_id = "dismiss_reissued_line", tag = "statement-lines", params(("id" = i64, Path)),
    responses((status = 200, body = StatementLine), (status = 409, description = "not flagged as a possible re-issue, or already dismissed")),
    security(("token" = [])))]
pub async fn dismiss_reissue(
    State(st): State<AppState>,
    Company(company): Company,
    Path(id): Path<i64>,
) -> ApiResult<Json<StatementLine>> {
    review(st, company, id, Decision::DismissReissue).await
}

/// What a statement-lines cursor is valid for: this company and these filters.
fn lines_scope(company: Uuid, q: &LinesQuery) -> String {
    format!(
        "statement-lines|{company}|{:?}|{:?}|{:?}",
        q.journal_id, q.from, q.to
    )
}

/// Statement lines of the company's journals, by booking date; cursor pagination.
#[utoipa::path(get, path = "/api/v1/statement-lines", operation_id = "list_statement_lines", tag = "statement-lines", params(LinesQuery),
    responses((status = 200, body = LinesPage)), security(("token" = [])))]
pub async fn lines(
    State(st): State<AppState>,
    Company(company): Company,
    Query(q): Query<LinesQuery>,
) -> ApiResult<Json<LinesPage>> {
    match q.status.as_deref() {
        None | Some("posted") => {}
        Some("pending") => {
            return Err(crate::error::ApiError::invalid(
                "pending_moved",
                "statement lines are booked transactions only; pending transactions are at GET /api/v1/pending-transactions",
            ))
        }
        Some(_) => {
            return Err(crate::error::ApiError::invalid(
                "invalid_status",
                "status can only be posted: every statement line is booked",
            ))
        }
    }
    let limit = paging::limit(q.limit)?;
    let scope = lines_scope(company, &q);
    let after = paging::after(&st, &scope, q.cursor.as_deref()).await?;
    let filter = statement_lines::LineFilter {
        journal_id: q.journal_id,
        from: q.from,
        to: q.to,
    };
    let rows = statement_lines::page(&st.pool, company, &filter, after, limit + 1).await?;
    let (rows, next_cursor) =
        paging::page(&st, &scope, rows, limit, |r| (r.booking_date, r.id)).await?;
    let items = rows.into_iter().map(line_dto).collect();
    Ok(Json(LinesPage { items, next_cursor }))
}

/// How a line came to be and changed: created (by which sync run, under which Salt Edge
/// id), updated by Salt Edge (which fields, and what they held), re-keyed (from which id,
/// and why), posted from a pending transaction, flagged as a look-alike, reviewed.
#[utoipa::path(get, path = "/api/v1/statement-lines/{id}/history", tag = "statement-lines", operation_id = "list_line_history", params(("id" = i64, Path)),
    responses((status = 200, body = LineHistory)), security(("token" = [])))]
pub async fn history(
    State(st): State<AppState>,
    Company(company): Company,
    Path(id): Path<i64>,
) -> ApiResult<Json<LineHistory>> {
    let events = sync_engine::history::of_line(&st.pool, company, id).await?;
    Ok(Json(LineHistory {
        line_id: id,
        events: events
            .into_iter()
            .map(|e| LineEvent {
                kind: e.kind,
                at: e.at,
                sync_run_id: e.sync_run_id,
                detail: e.detail,
            })
            .collect(),
    }))
}
