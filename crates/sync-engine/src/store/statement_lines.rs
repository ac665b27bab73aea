//! Reading statement lines for a company: one line, or a page of its journals' lines by
//! booking date with filters (keyset pagination). Writing lines is `ingest::lines`'s.

use crate::store::status::{DuplicateReview, ReissueReview, RemovalReview};
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::{Result, SyncError};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Line {
    pub id: i64,
    pub journal_id: Uuid,
    pub bank_account_id: Uuid,
    pub booking_date: NaiveDate,
    pub value_date: Option<NaiveDate>,
    pub amount: Decimal,
    pub currency: String,
    pub description: String,
    pub payee: Option<String>,
    pub counterparty_iban: Option<String>,
    pub saltedge_transaction_id: String,
    /// The pending transaction this line posted from (`pending_transactions.id`).
    pub pending_transaction_id: Option<i64>,
    pub suspect_duplicate_of: Option<i64>,
    pub imported_at: DateTime<Utc>,
    pub extra: serde_json::Value,
    pub text_repaired: bool,
    pub rekeyed_from: Option<String>,
    pub duplicate_confirmed_at: Option<DateTime<Utc>>,
    pub duplicate_dismissed_at: Option<DateTime<Utc>>,
    pub fingerprint: String,
    pub occurrence: i32,
    pub bank_transaction_id: Option<String>,
    /// A complete listing that covers this line's transaction no longer holds it (the
    /// bank removed it) since then; cleared when it is listed again.
    pub gone_at_bank_at: Option<DateTime<Utc>>,
    /// The sync run that found it gone.
    pub gone_at_bank_run_id: Option<Uuid>,
    /// The bookkeeper confirmed the bank's removal: the line left the books.
    pub removal_confirmed_at: Option<DateTime<Utc>>,
    /// The bookkeeper kept the line the bank no longer lists.
    pub removal_kept_at: Option<DateTime<Utc>>,
    /// A possible re-issue (with changed content) of this earlier line, which the same
    /// listing found gone.
    pub reissue_of: Option<i64>,
    /// The bookkeeper dismissed the possible re-issue: both lines stay.
    pub reissue_dismissed_at: Option<DateTime<Utc>>,
}

impl Line {
    /// In the books (its journal's figures): not confirmed a duplicate nor removed.
    pub fn in_books(&self) -> bool {
        self.duplicate_confirmed_at.is_none() && self.removal_confirmed_at.is_none()
    }

    /// The review of its look-alike flag; `None` when not flagged.
    pub fn duplicate_review(&self) -> Option<DuplicateReview> {
        match (
            self.suspect_duplicate_of,
            self.duplicate_confirmed_at,
            self.duplicate_dismissed_at,
        ) {
            (_, Some(_), _) => Some(DuplicateReview::Confirmed),
            (_, None, Some(_)) => Some(DuplicateReview::Dismissed),
            (Some(_), None, None) => Some(DuplicateReview::Flagged),
            (None, None, None) => None,
        }
    }

    /// The answer to its gone-at-bank flag; `None` while the bank lists the transaction.
    pub fn removal_review(&self) -> Option<RemovalReview> {
        match (
            self.gone_at_bank_at,
            self.removal_confirmed_at,
            self.removal_kept_at,
        ) {
            (None, _, _) => None,
            (Some(_), Some(_), _) => Some(RemovalReview::Confirmed),
            (Some(_), None, Some(_)) => Some(RemovalReview::Kept),
            (Some(_), None, None) => Some(RemovalReview::Flagged),
        }
    }

    /// The review of its possible re-issue; `None` when it is not one.
    pub fn reissue_review(&self) -> Option<ReissueReview> {
        match (self.reissue_of, self.reissue_dismissed_at) {
            (None, _) => None,
            (Some(_), Some(_)) => Some(ReissueReview::Dismissed),
            (Some(_), None) => Some(ReissueReview::Flagged),
        }
    }
}

/// Which lines a page holds.
#[derive(Debug, Clone, Default)]
pub struct LineFilter {
    pub journal_id: Option<Uuid>,
    /// Booking date from (inclusive).
    pub from: Option<NaiveDate>,
    /// Booking date to (inclusive).
    pub to: Option<NaiveDate>,
}

/// One line of the company's journals.
pub async fn get(pool: &PgPool, company: Uuid, id: i64) -> Result<Line> {
    sqlx::query_as!(Line, r#"SELECT l.id, l.journal_id, l.bank_account_id, l.booking_date, l.value_date, l.amount, l.currency, l.description, l.payee, l.counterparty_iban, l.saltedge_transaction_id, l.pending_transaction_id, l.suspect_duplicate_of, l.imported_at, l.extra, l.text_repaired, l.rekeyed_from, l.duplicate_confirmed_at, l.duplicate_dismissed_at, l.fingerprint, l.occurrence, l.bank_transaction_id, l.gone_at_bank_at, l.gone_at_bank_run_id, l.removal_confirmed_at, l.removal_kept_at, l.reissue_of, l.reissue_dismissed_at FROM statement_lines l WHERE l.company_id = $1 AND l.id = $2"#, company, id)
    .fetch_optional(pool)
    .await?
    .ok_or(SyncError::not_found("statement line"))
}

/// The company's lines with these ids (those that exist), in no particular order.
pub async fn many(pool: &PgPool, company: Uuid, ids: &[i64]) -> Result<Vec<Line>> {
    if ids.is_empty() {
        return Ok(vec![]);
    }
    Ok(sqlx::query_as!(Line, r#"SELECT l.id, l.journal_id, l.bank_account_id, l.booking_date, l.value_date, l.amount, l.currency, l.description, l.payee, l.counterparty_iban, l.saltedge_transaction_id, l.pending_transaction_id, l.suspect_duplicate_of, l.imported_at, l.extra, l.text_repaired, l.rekeyed_from, l.duplicate_confirmed_at, l.duplicate_dismissed_at, l.fingerprint, l.occurrence, l.bank_transaction_id, l.gone_at_bank_at, l.gone_at_bank_run_id, l.removal_confirmed_at, l.removal_kept_at, l.reissue_of, l.reissue_dismissed_at FROM statement_lines l WHERE l.company_id = $1 AND l.id = ANY($2)"#, company, ids)
    .fetch_all(pool)
    .await?)
}

/// Up to `limit` lines of the company's journals matching `filter`, by booking date and
/// id, after `after` (the last line of the previous page).
///
/// Two statements, one per index, so that every bound is an index condition even in the
/// generic plan a prepared statement settles on (an `$n IS NULL OR …` filter is not):
/// one journal reads `statement_lines_journal_date`, all journals
/// `statement_lines_company_date`. Absent bounds become infinite dates.
pub async fn page(
    pool: &PgPool,
    company: Uuid,
    filter: &LineFilter,
    after: Option<(NaiveDate, i64)>,
    limit: i64,
) -> Result<Vec<Line>> {
    // Bounds beyond any line: booking dates outside years 1–9999 are quarantined on import.
    let (lo, hi) = (date(1, 1, 1), date(9999, 12, 31));
    let from = filter.from.unwrap_or(lo);
    let to = filter.to.unwrap_or(hi);
    let (after_date, after_id) = after.unwrap_or((lo, i64::MIN));
    Ok(match filter.journal_id {
        Some(journal) => sqlx::query_as!(Line, r#"SELECT l.id, l.journal_id, l.bank_account_id, l.booking_date, l.value_date, l.amount, l.currency, l.description, l.payee, l.counterparty_iban, l.saltedge_transaction_id, l.pending_transaction_id, l.suspect_duplicate_of, l.imported_at, l.extra, l.text_repaired, l.rekeyed_from, l.duplicate_confirmed_at, l.duplicate_dismissed_at, l.fingerprint, l.occurrence, l.bank_transaction_id, l.gone_at_bank_at, l.gone_at_bank_run_id, l.removal_confirmed_at, l.removal_kept_at, l.reissue_of, l.reissue_dismissed_at
             FROM statement_lines l
             WHERE l.journal_id = $2 AND l.company_id = $1
               AND l.booking_date >= $3 AND l.booking_date <= $4 AND (l.booking_date, l.id) > ($5, $6)
             ORDER BY l.booking_date, l.id
             LIMIT $7"#, company, journal, from, to, after_date, after_id, limit)
        .fetch_all(pool)
        .await?,
        None => sqlx::query_as!(Line, r#"SELECT l.id, l.journal_id, l.bank_account_id, l.booking_date, l.value_date, l.amount, l.currency, l.description, l.payee, l.counterparty_iban, l.saltedge_transaction_id, l.pending_transaction_id, l.suspect_duplicate_of, l.imported_at, l.extra, l.text_repaired, l.rekeyed_from, l.duplicate_confirmed_at, l.duplicate_dismissed_at, l.fingerprint, l.occurrence, l.bank_transaction_id, l.gone_at_bank_at, l.gone_at_bank_run_id, l.removal_confirmed_at, l.removal_kept_at, l.reissue_of, l.reissue_dismissed_at
             FROM statement_lines l
             WHERE l.company_id = $1
               AND l.booking_date >= $2 AND l.booking_date <= $3 AND (l.booking_date, l.id) > ($4, $5)
             ORDER BY l.booking_date, l.id
             LIMIT $6"#, company, from, to, after_date, after_id, limit)
        .fetch_all(pool)
        .await?,
    })
}

/// The company's lines waiting for the bookkeeper, newest first: possible duplicates,
/// lines the bank removed, possible re-issues, none of them decided yet.
pub async fn flagged(pool: &PgPool, company: Uuid, limit: i64) -> Result<Vec<Line>> {
    Ok(sqlx::query_as!(Line, r#"SELECT l.id, l.journal_id, l.bank_account_id, l.booking_date, l.value_date, l.amount, l.currency, l.description, l.payee, l.counterparty_iban, l.saltedge_transaction_id, l.pending_transaction_id, l.suspect_duplicate_of, l.imported_at, l.extra, l.text_repaired, l.rekeyed_from, l.duplicate_confirmed_at, l.duplicate_dismissed_at, l.fingerprint, l.occurrence, l.bank_transaction_id, l.gone_at_bank_at, l.gone_at_bank_run_id, l.removal_confirmed_at, l.removal_kept_at, l.reissue_of, l.reissue_dismissed_at
         FROM statement_lines l
         WHERE l.company_id = $1
           AND ((l.suspect_duplicate_of IS NOT NULL AND l.duplicate_confirmed_at IS NULL AND l.duplicate_dismissed_at IS NULL)
                OR (l.gone_at_bank_at IS NOT NULL AND l.removal_confirmed_at IS NULL AND l.removal_kept_at IS NULL)
                OR (l.reissue_of IS NOT NULL AND l.reissue_dismissed_at IS NULL))
         ORDER BY l.id DESC LIMIT $2"#, company, limit)
    .fetch_all(pool)
    .await?)
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("a valid calendar date")
}
