use axum::extract::State;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Deserialize;
use sync_engine::mapping;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::dto::{BankAccount, Journal, LinesPage, MapAccount, StatementLine};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Company, Json, Path, Query};
use crate::paging;
use crate::AppState;

/// The company's bank journals.
#[utoipa::path(get, path = "/api/v1/journals", tag = "journals", operation_id = "list_journals", responses((status = 200, body = Vec<Journal>)), security(("token" = [])))]
pub async fn list(
    State(st): State<AppState>,
    Company(company): Company,
) -> ApiResult<Json<Vec<Journal>>> {
    let js = mapping::journals(&st.pool, company).await?;
    Ok(Json(
        js.into_iter()
            .map(|j| Journal {
                id: j.id,
                name: j.name,
                currency: j.currency,
                sync_start_date: j.sync_start_date,
            })
            .collect(),
    ))
}

/// Sends a bank account's future lines to another journal of the same currency.
#[utoipa::path(put, path = "/api/v1/bank-accounts/{id}/journal", tag = "journals", params(("id" = Uuid, Path)),
    request_body = MapAccount,
    responses((status = 200, body = BankAccount), (status = 409, description = "currency_mismatch: the journal holds another currency")), security(("token" = [])))]
pub async fn map_account(
    State(st): State<AppState>,
    Company(company): Company,
    Path(id): Path<Uuid>,
    Json(body): Json<MapAccount>,
) -> ApiResult<Json<BankAccount>> {
    let a = mapping::map_account(&st.pool, company, id, body.journal_id).await?;
    let j = mapping::journal(&st.pool, company, a.journal_id).await?;
    Ok(Json(BankAccount::new(a, j.name)))
}

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
    #[param(inline, nullable = false)]
    pub status: Option<LineStatus>,
    /// `next_cursor` of the previous page, with the same filters.
    #[param(nullable = false, pattern = "^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]{43}$")]
    pub cursor: Option<String>,
    /// Page size.
    #[param(minimum = 1, maximum = 1000, default = 100, nullable = false)]
    pub limit: Option<i64>,
}

#[derive(Deserialize, Clone, Copy, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LineStatus {
    Pending,
    Posted,
}

impl LineStatus {
    fn as_str(self) -> &'static str {
        match self {
            LineStatus::Pending => "pending",
            LineStatus::Posted => "posted",
        }
    }
}

#[derive(sqlx::FromRow)]
struct LineRow {
    id: i64,
    journal_id: Uuid,
    bank_account_id: Uuid,
    booking_date: NaiveDate,
    value_date: Option<NaiveDate>,
    amount: Decimal,
    currency: String,
    description: String,
    payee: Option<String>,
    counterparty_iban: Option<String>,
    saltedge_transaction_id: String,
    pending_transaction_id: Option<String>,
    status: String,
    suspect_duplicate_of: Option<i64>,
    imported_at: chrono::DateTime<chrono::Utc>,
    extra: serde_json::Value,
    text_repaired: bool,
    rekeyed_from: Option<String>,
    duplicate_confirmed_at: Option<chrono::DateTime<chrono::Utc>>,
    duplicate_dismissed_at: Option<chrono::DateTime<chrono::Utc>>,
}

const LINE_COLUMNS: &str = "l.id, l.journal_id, l.bank_account_id, l.booking_date, l.value_date, l.amount, l.currency, l.description,
    l.payee, l.counterparty_iban, l.saltedge_transaction_id, l.pending_transaction_id, l.status,
    l.suspect_duplicate_of, l.imported_at, l.extra, l.text_repaired, l.rekeyed_from, l.duplicate_confirmed_at,
    l.duplicate_dismissed_at";

fn line_dto(r: LineRow) -> StatementLine {
    let duplicate_review = match (
        r.suspect_duplicate_of,
        r.duplicate_confirmed_at,
        r.duplicate_dismissed_at,
    ) {
        (_, Some(_), _) => Some("confirmed"),
        (_, None, Some(_)) => Some("dismissed"),
        (Some(_), None, None) => Some("flagged"),
        (None, None, None) => None,
    };
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
        status: r.status,
        suspect_duplicate_of: r.suspect_duplicate_of,
        duplicate_review: duplicate_review.map(str::to_string),
        in_journal: r.duplicate_confirmed_at.is_none(),
        rekeyed_from: r.rekeyed_from,
        imported_at: r.imported_at,
        extra: r.extra,
        text_repaired: r.text_repaired,
    }
}

/// One line of the company's journals.
pub async fn line(st: &AppState, company: Uuid, id: i64) -> ApiResult<StatementLine> {
    let row: Option<LineRow> = sqlx::query_as(&format!(
        "SELECT {LINE_COLUMNS} FROM statement_lines l JOIN journals j ON j.id = l.journal_id WHERE j.company_id = $1 AND l.id = $2"
    ))
    .bind(company)
    .bind(id)
    .fetch_optional(&st.pool)
    .await?;
    row.map(line_dto)
        .ok_or(ApiError::NotFound("statement line"))
}

async fn review(
    st: AppState,
    company: Uuid,
    id: i64,
    decision: sync_engine::review::Decision,
) -> ApiResult<Json<StatementLine>> {
    sync_engine::review::decide(&st.pool, &st.client, company, id, decision).await?;
    Ok(Json(line(&st, company, id).await?))
}

/// Confirms a flagged look-alike as a duplicate: banksync marks the transaction `duplicated`
/// at Salt Edge and the line leaves the journal (`in_journal: false`, out of the balance).
#[utoipa::path(post, path = "/api/v1/statement-lines/{id}/confirm-duplicate", tag = "journals", params(("id" = i64, Path)),
    responses((status = 200, body = StatementLine), (status = 409, description = "not flagged, already reviewed, or pending"), (status = 502, description = "saltedge_error or saltedge_unreachable: Salt Edge refused or could not be reached")),
    security(("token" = [])))]
pub async fn confirm_duplicate(
    State(st): State<AppState>,
    Company(company): Company,
    Path(id): Path<i64>,
) -> ApiResult<Json<StatementLine>> {
    review(
        st,
        company,
        id,
        sync_engine::review::Decision::ConfirmDuplicate,
    )
    .await
}

/// Dismisses the look-alike flag: the line is a genuine transaction of its own.
#[utoipa::path(post, path = "/api/v1/statement-lines/{id}/dismiss-duplicate", tag = "journals", params(("id" = i64, Path)),
    responses((status = 200, body = StatementLine), (status = 409, description = "not flagged or already reviewed")), security(("token" = [])))]
pub async fn dismiss_duplicate(
    State(st): State<AppState>,
    Company(company): Company,
    Path(id): Path<i64>,
) -> ApiResult<Json<StatementLine>> {
    review(st, company, id, sync_engine::review::Decision::Dismiss).await
}

/// Undoes a confirmation (the transaction is `unduplicate`d at Salt Edge and the line returns
/// to the journal) or a dismissal (the flag stands again).
#[utoipa::path(post, path = "/api/v1/statement-lines/{id}/undo-review", tag = "journals", params(("id" = i64, Path)),
    responses((status = 200, body = StatementLine), (status = 409, description = "nothing to undo"), (status = 502, description = "saltedge_error or saltedge_unreachable: Salt Edge refused or could not be reached")), security(("token" = [])))]
pub async fn undo_review(
    State(st): State<AppState>,
    Company(company): Company,
    Path(id): Path<i64>,
) -> ApiResult<Json<StatementLine>> {
    review(st, company, id, sync_engine::review::Decision::Undo).await
}

/// What a statement-lines cursor is valid for: this company and these filters.
fn lines_scope(company: Uuid, q: &LinesQuery) -> String {
    format!(
        "statement-lines|{company}|{:?}|{:?}|{:?}|{:?}",
        q.journal_id,
        q.from,
        q.to,
        q.status.map(LineStatus::as_str)
    )
}

/// Statement lines of the company's journals, by booking date; cursor pagination.
#[utoipa::path(get, path = "/api/v1/statement-lines", tag = "journals", params(LinesQuery),
    responses((status = 200, body = LinesPage)), security(("token" = [])))]
pub async fn lines(
    State(st): State<AppState>,
    Company(company): Company,
    Query(q): Query<LinesQuery>,
) -> ApiResult<Json<LinesPage>> {
    let limit = paging::limit(q.limit)?;
    let scope = lines_scope(company, &q);
    let after: Option<(NaiveDate, i64)> = match &q.cursor {
        Some(c) => {
            let pos = paging::decode(&st, &scope, c).await?;
            let parsed = pos
                .split_once('|')
                .and_then(|(d, i)| Some((d.parse().ok()?, i.parse().ok()?)));
            Some(parsed.ok_or_else(|| {
                ApiError::invalid("invalid_cursor", "cursor is not one this API gave out")
            })?)
        }
        None => None,
    };
    let mut rows: Vec<LineRow> = sqlx::query_as(&format!(
        "SELECT {LINE_COLUMNS}
         FROM statement_lines l JOIN journals j ON j.id = l.journal_id
         WHERE j.company_id = $1
           AND ($2::uuid IS NULL OR l.journal_id = $2)
           AND ($3::date IS NULL OR l.booking_date >= $3)
           AND ($4::date IS NULL OR l.booking_date <= $4)
           AND ($5::text IS NULL OR l.status = $5)
           AND ($6::date IS NULL OR (l.booking_date, l.id) > ($6, $7))
         ORDER BY l.booking_date, l.id
         LIMIT $8"
    ))
    .bind(company)
    .bind(q.journal_id)
    .bind(q.from)
    .bind(q.to)
    .bind(q.status.map(LineStatus::as_str))
    .bind(after.map(|a| a.0))
    .bind(after.map(|a| a.1).unwrap_or(0))
    .bind(limit + 1)
    .fetch_all(&st.pool)
    .await?;
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        match rows.last() {
            Some(r) => {
                Some(paging::encode(&st, &scope, &format!("{}|{}", r.booking_date, r.id)).await?)
            }
            None => None,
        }
    } else {
        None
    };
    let items = rows.into_iter().map(line_dto).collect();
    Ok(Json(LinesPage { items, next_cursor }))
}
