//! Pending transactions: out of the books, in their own records. Written by
//! `ingest::lines` (rules 2 and 3); read here for a company, by journal and state.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::Result;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PendingTransaction {
    pub id: i64,
    pub journal_id: Uuid,
    pub bank_account_id: Uuid,
    pub saltedge_transaction_id: String,
    pub booking_date: NaiveDate,
    pub value_date: Option<NaiveDate>,
    pub amount: Decimal,
    pub currency: String,
    pub description: String,
    pub payee: Option<String>,
    pub extra: serde_json::Value,
    pub text_repaired: bool,
    /// `pending` (listed by Salt Edge now), `posted` (became `posted_line_id`) or `expired`
    /// (Salt Edge stopped listing it without it posting).
    pub state: String,
    pub posted_line_id: Option<i64>,
    /// A line that may be this transaction's posting, on weak evidence (same amount, the
    /// only candidate, no shared words): proposed for review, not linked.
    pub proposed_line_id: Option<i64>,
    pub first_seen_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
}

/// Which pending transactions a page holds.
#[derive(Debug, Clone, Default)]
pub struct PendingFilter {
    pub journal_id: Option<Uuid>,
    /// `pending`, `posted` or `expired`; `None`: all.
    pub state: Option<&'static str>,
}

/// Up to `limit` of the company's pending transactions matching `filter`, by booking date
/// and id, after `after`.
pub async fn page(
    pool: &PgPool,
    company: Uuid,
    filter: &PendingFilter,
    after: Option<(NaiveDate, i64)>,
    limit: i64,
) -> Result<Vec<PendingTransaction>> {
    Ok(sqlx::query_as!(PendingTransaction, r#"SELECT id, journal_id, bank_account_id, saltedge_transaction_id, booking_date, value_date, amount,
                currency, description, payee, extra, text_repaired, state, posted_line_id, proposed_line_id, first_seen_at, resolved_at
         FROM pending_transactions
         WHERE company_id = $1
           AND ($2::uuid IS NULL OR journal_id = $2)
           AND ($3::text IS NULL OR state = $3)
           AND ($4::date IS NULL OR (booking_date, id) > ($4, $5))
         ORDER BY booking_date, id
         LIMIT $6"#, company, filter.journal_id, filter.state, after.map(|a| a.0), after.map(|a| a.1).unwrap_or(0), limit)
    .fetch_all(pool)
    .await?)
}
