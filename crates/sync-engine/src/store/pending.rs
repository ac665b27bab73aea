//! Pending transactions: out of the books, in their own records. Written by
//! `ingest::lines` (rules 2 and 3); read here for a company, by journal and state.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::{Result, SyncError};

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
    pub state: crate::store::status::PendingState,
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
                currency, description, payee, extra, text_repaired, state AS "state: crate::store::status::PendingState", posted_line_id, proposed_line_id, first_seen_at, resolved_at
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

/// One pending transaction of the company.
pub async fn get(pool: &PgPool, company: Uuid, id: i64) -> Result<PendingTransaction> {
    sqlx::query_as!(PendingTransaction, r#"SELECT id, journal_id, bank_account_id, saltedge_transaction_id, booking_date, value_date, amount,
                currency, description, payee, extra, text_repaired, state AS "state: crate::store::status::PendingState", posted_line_id, proposed_line_id, first_seen_at, resolved_at
         FROM pending_transactions WHERE id = $1 AND company_id = $2"#, id, company)
    .fetch_optional(pool)
    .await?
    .ok_or(SyncError::not_found("pending transaction"))
}

/// The bookkeeper links an open pending transaction to the statement line that is its
/// posting (a proposal confirmed, or a link banksync could not make): the transaction
/// becomes `posted`, the line names it; recorded in the line's history. The line must be of
/// the same bank account and carry no pending transaction yet.
pub async fn link(pool: &PgPool, company: Uuid, id: i64, line_id: i64) -> Result<()> {
    let mut tx = pool.begin().await?;
    let p = sqlx::query!(
        "SELECT bank_account_id, posted_line_id, proposed_line_id, saltedge_transaction_id
         FROM pending_transactions WHERE id = $1 AND company_id = $2 FOR UPDATE",
        id,
        company
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(SyncError::not_found("pending transaction"))?;
    if p.posted_line_id.is_some() {
        return Err(SyncError::conflict(
            "conflict",
            "this pending transaction is already linked to a line; unlink it first",
        ));
    }
    let line = sqlx::query!(
        "SELECT bank_account_id, pending_transaction_id FROM statement_lines
         WHERE id = $1 AND company_id = $2 FOR UPDATE",
        line_id,
        company
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(SyncError::not_found("statement line"))?;
    if line.bank_account_id != p.bank_account_id {
        return Err(SyncError::conflict(
            "conflict",
            "the line belongs to another bank account than the pending transaction",
        ));
    }
    if line.pending_transaction_id.is_some() {
        return Err(SyncError::conflict(
            "conflict",
            "the line already names a pending transaction",
        ));
    }
    sqlx::query!(
        "UPDATE pending_transactions SET state = 'posted', posted_line_id = $2, proposed_line_id = NULL,
                resolved_at = now(), updated_at = now()
         WHERE id = $1 AND company_id = $3",
        id,
        line_id,
        company
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "UPDATE statement_lines SET pending_transaction_id = $2 WHERE id = $1 AND company_id = $3",
        line_id,
        id,
        company
    )
    .execute(&mut *tx)
    .await?;
    crate::history::record(
        &mut *tx,
        line_id,
        None,
        crate::history::EventKind::PostedFromPending,
        serde_json::json!({ "pending_transaction_id": id, "pending_saltedge_id": p.saltedge_transaction_id,
                            "by": "bookkeeper", "was_proposed": p.proposed_line_id == Some(line_id) }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The bookkeeper undoes a link (banksync's or their own): the line no longer names the
/// pending transaction, which is open again as `expired` (the next sync makes it `pending`
/// again if Salt Edge still lists it, and may link it to its real posting); recorded in the
/// line's history.
pub async fn unlink(pool: &PgPool, company: Uuid, id: i64) -> Result<()> {
    let mut tx = pool.begin().await?;
    let p = sqlx::query!(
        "SELECT posted_line_id, saltedge_transaction_id FROM pending_transactions
         WHERE id = $1 AND company_id = $2 FOR UPDATE",
        id,
        company
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(SyncError::not_found("pending transaction"))?;
    let Some(line_id) = p.posted_line_id else {
        return Err(SyncError::conflict(
            "conflict",
            "this pending transaction is not linked to a line",
        ));
    };
    sqlx::query!(
        "UPDATE pending_transactions SET state = 'expired', posted_line_id = NULL, proposed_line_id = NULL,
                resolved_at = now(), updated_at = now()
         WHERE id = $1 AND company_id = $2",
        id,
        company
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "UPDATE statement_lines SET pending_transaction_id = NULL WHERE id = $1 AND company_id = $2",
        line_id,
        company
    )
    .execute(&mut *tx)
    .await?;
    crate::history::record(
        &mut *tx,
        line_id,
        None,
        crate::history::EventKind::PendingUnlinked,
        serde_json::json!({ "pending_transaction_id": id, "pending_saltedge_id": p.saltedge_transaction_id }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
