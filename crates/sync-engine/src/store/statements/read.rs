//! The API's reads: statements as shown, by account, journal or id, a page at a time.

use chrono::DateTime;
use chrono::NaiveDate;
use chrono::Utc;
use rust_decimal::Decimal;
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::Result;
use crate::error::SyncError;

/// A statement as the API shows it. Open statements' figures are computed from their lines
/// now; closed ones' are fixed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Statement {
    pub id: i64,
    pub bank_account_id: Uuid,
    pub journal_id: Uuid,
    pub currency: String,
    pub period: String,
    pub period_start: NaiveDate,
    pub period_end: NaiveDate,
    pub sequence: Option<i32>,
    pub closed_at: Option<DateTime<Utc>>,
    pub line_count: i64,
    pub opening_balance: Decimal,
    pub closing_balance: Decimal,
    pub corrections: Decimal,
    pub bank_balance: Option<Decimal>,
    pub bank_balance_at: Option<DateTime<Utc>>,
    pub balance_basis: Option<String>,
    pub balance_difference: Option<Decimal>,
}

impl Statement {
    /// `closed` once numbered and fixed, `open` before.
    pub fn state(&self) -> crate::store::status::StatementState {
        match self.closed_at {
            Some(_) => crate::store::status::StatementState::Closed,
            None => crate::store::status::StatementState::Open,
        }
    }
}

/// Which statements a page holds: one account's, one journal's, or some by id.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    Account(Uuid),
    Journal(Uuid),
    Ids(&'a [i64]),
}

/// Up to `limit` statements of `company` in `scope`, by period and id after `after`.
pub async fn page(
    pool: &PgPool,
    company: Uuid,
    scope: Scope<'_>,
    after: Option<(NaiveDate, i64)>,
    limit: i64,
) -> Result<Vec<Statement>> {
    let (account, journal, ids) = match scope {
        Scope::Account(a) => (Some(a), None, None),
        Scope::Journal(j) => (None, Some(j), None),
        Scope::Ids(i) => (None, None, Some(i)),
    };
    // Open statements: the account's last closing (or its opening basis) plus the movement
    // of every open statement up to this one.
    Ok(sqlx::query_as!(
        Statement,
        r#"WITH base AS (
             SELECT s.*, a.currency,
                    coalesce(t.n, 0) AS live_n, coalesce(t.total, 0) + s.corrections AS live_movement,
                    CASE WHEN a.balance_check = 'booked' THEN coalesce(a.opening_balance, 0) ELSE 0 END AS account_opening
             FROM statements s JOIN bank_accounts a ON a.id = s.bank_account_id
             LEFT JOIN LATERAL (SELECT count(*) AS n, sum(l.amount) FILTER (WHERE l.duplicate_confirmed_at IS NULL AND l.removal_confirmed_at IS NULL) AS total
                                FROM statement_lines l WHERE l.statement_id = s.id AND s.closed_at IS NULL) t ON true
             WHERE s.company_id = $1
               AND s.bank_account_id IN (SELECT x.bank_account_id FROM statements x WHERE x.company_id = $1
                    AND ($2::uuid IS NULL OR x.bank_account_id = $2) AND ($3::uuid IS NULL OR x.journal_id = $3)
                    AND ($4::bigint[] IS NULL OR x.id = ANY($4)))),
           chained AS (
             SELECT b.*,
                    coalesce((SELECT c.closing_balance FROM statements c WHERE c.bank_account_id = b.bank_account_id
                                AND c.closed_at IS NOT NULL ORDER BY c.sequence DESC LIMIT 1), b.account_opening)
                    + sum(CASE WHEN b.closed_at IS NULL THEN b.live_movement ELSE 0 END)
                        OVER (PARTITION BY b.bank_account_id ORDER BY b.period_start) AS open_closing
             FROM base b)
         SELECT id AS "id!", bank_account_id AS "bank_account_id!", journal_id AS "journal_id!", currency AS "currency!",
                period AS "period!", period_start AS "period_start!", period_end AS "period_end!", sequence, closed_at,
                coalesce(line_count::bigint, live_n) AS "line_count!",
                coalesce(opening_balance, open_closing - live_movement) AS "opening_balance!",
                coalesce(closing_balance, open_closing) AS "closing_balance!",
                corrections AS "corrections!", bank_balance, bank_balance_at, balance_basis, balance_difference
         FROM chained
         WHERE ($2::uuid IS NULL OR bank_account_id = $2) AND ($3::uuid IS NULL OR journal_id = $3)
           AND ($4::bigint[] IS NULL OR id = ANY($4))
           AND ($5::date IS NULL OR (period_start, id) > ($5, $6))
         ORDER BY period_start, id
         LIMIT $7"#,
        company,
        account,
        journal,
        ids,
        after.map(|a| a.0),
        after.map(|a| a.1).unwrap_or(0),
        limit
    )
    .fetch_all(pool)
    .await?)
}

/// One statement of `company`.
pub async fn get(pool: &PgPool, company: Uuid, id: i64) -> Result<Statement> {
    page(pool, company, Scope::Ids(&[id]), None, 1)
        .await?
        .pop()
        .ok_or(SyncError::not_found("statement"))
}

/// The lines of statement `id`, by booking date.
pub async fn line_ids(pool: &PgPool, company: Uuid, id: i64) -> Result<Vec<i64>> {
    Ok(sqlx::query_scalar!(
        "SELECT id FROM statement_lines WHERE company_id = $1 AND statement_id = $2 ORDER BY booking_date, id",
        company,
        id
    )
    .fetch_all(pool)
    .await?)
}
