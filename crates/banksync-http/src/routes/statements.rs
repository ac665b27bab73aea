//! Bank statements: a bank account's, a journal's (its accounts' together), one with its
//! lines; and how an account's lines are grouped.

use axum::extract::State;
use chrono::NaiveDate;
use serde::Deserialize;
use sync_engine::{mapping, statement_lines, statements};
use utoipa::IntoParams;
use uuid::Uuid;

use crate::dto::{self, BankAccount, StatementPeriod, StatementWithLines, StatementsPage};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Company, Json, Path, Query};
use crate::paging;
use crate::AppState;

#[derive(Deserialize, IntoParams)]
pub struct StatementsQuery {
    /// `next_cursor` of the previous page.
    #[param(nullable = false, pattern = "^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]{43}$")]
    pub cursor: Option<String>,
    /// Page size.
    #[param(minimum = 1, maximum = 1000, default = 100, nullable = false)]
    pub limit: Option<i64>,
}

pub(crate) fn statement_dto(s: statements::Statement) -> dto::Statement {
    let m = |d: rust_decimal::Decimal| dto::money(d, &s.currency);
    dto::Statement {
        id: s.id,
        bank_account_id: s.bank_account_id,
        journal_id: s.journal_id,
        period: s.period.clone(),
        period_start: s.period_start,
        period_end: s.period_end,
        status: s.state(),
        sequence: s.sequence,
        closed_at: s.closed_at,
        line_count: s.line_count,
        opening_balance: m(s.opening_balance),
        closing_balance: m(s.closing_balance),
        corrections: m(s.corrections),
        bank_balance: s.bank_balance.map(m),
        bank_balance_at: s.bank_balance_at,
        balance_basis: s.balance_basis.clone(),
        balance_difference: s.balance_difference.map(m),
        currency: s.currency,
    }
}

async fn list(
    st: &AppState,
    company: Uuid,
    scope: statements::Scope<'_>,
    name: String,
    q: &StatementsQuery,
) -> ApiResult<Json<StatementsPage>> {
    let limit = paging::limit(q.limit)?;
    let after: Option<(NaiveDate, i64)> = paging::after(st, &name, q.cursor.as_deref()).await?;
    let rows = statements::page(&st.pool, company, scope, after, limit + 1).await?;
    let (rows, next_cursor) =
        paging::page(st, &name, rows, limit, |s| (s.period_start, s.id)).await?;
    Ok(Json(StatementsPage {
        items: rows.into_iter().map(statement_dto).collect(),
        next_cursor,
    }))
}

/// A bank account's statements by period, oldest first.
#[utoipa::path(get, path = "/api/v1/bank-accounts/{id}/statements", tag = "statements", operation_id = "list_account_statements",
    params(("id" = Uuid, Path), StatementsQuery), responses((status = 200, body = StatementsPage)), security(("token" = [])))]
pub async fn of_account(
    State(st): State<AppState>,
    Company(company): Company,
    Path(id): Path<Uuid>,
    Query(q): Query<StatementsQuery>,
) -> ApiResult<Json<StatementsPage>> {
    mapping::account(&st.pool, company, id).await?;
    let scope = format!("statements|{company}|account|{id}");
    list(&st, company, statements::Scope::Account(id), scope, &q).await
}

/// A journal's statements (its accounts' together) by period, oldest first.
#[utoipa::path(get, path = "/api/v1/journals/{id}/statements", tag = "statements", operation_id = "list_journal_statements",
    params(("id" = Uuid, Path), StatementsQuery), responses((status = 200, body = StatementsPage)), security(("token" = [])))]
pub async fn of_journal(
    State(st): State<AppState>,
    Company(company): Company,
    Path(id): Path<Uuid>,
    Query(q): Query<StatementsQuery>,
) -> ApiResult<Json<StatementsPage>> {
    mapping::journal(&st.pool, company, id).await?;
    let scope = format!("statements|{company}|journal|{id}");
    list(&st, company, statements::Scope::Journal(id), scope, &q).await
}

/// One statement with its lines.
#[utoipa::path(get, path = "/api/v1/statements/{id}", tag = "statements", operation_id = "show_statement",
    params(("id" = i64, Path)), responses((status = 200, body = StatementWithLines)), security(("token" = [])))]
pub async fn show(
    State(st): State<AppState>,
    Company(company): Company,
    Path(id): Path<i64>,
) -> ApiResult<Json<StatementWithLines>> {
    let s = statements::get(&st.pool, company, id).await?;
    let ids = statements::line_ids(&st.pool, company, id).await?;
    let mut lines = statement_lines::many(&st.pool, company, &ids).await?;
    lines.sort_by_key(|l| (l.booking_date, l.id));
    Ok(Json(StatementWithLines {
        statement: statement_dto(s),
        lines: lines
            .into_iter()
            .map(super::statement_lines::line_dto)
            .collect(),
    }))
}

/// Sets how the account's lines are grouped into statements from now on; the lines of its
/// open statements are regrouped, closed statements stay as they are.
#[utoipa::path(put, path = "/api/v1/bank-accounts/{id}/statement-period", tag = "statements", operation_id = "set_statement_period",
    params(("id" = Uuid, Path)), request_body = StatementPeriod,
    responses((status = 200, body = BankAccount)), security(("token" = [])))]
pub async fn set_period(
    State(st): State<AppState>,
    Company(company): Company,
    Path(id): Path<Uuid>,
    Json(body): Json<StatementPeriod>,
) -> ApiResult<Json<BankAccount>> {
    let period = statements::Period::parse(&body.period).ok_or_else(|| {
        ApiError::invalid("invalid_body", "period must be daily, weekly or monthly")
    })?;
    statements::set_period(&st.pool, company, id, period).await?;
    let a = mapping::account(&st.pool, company, id).await?;
    let j = mapping::journal(&st.pool, company, a.journal_id).await?;
    Ok(Json(BankAccount::new(a, j.name)))
}
