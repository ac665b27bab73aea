//! Bank statements: each bank account's lines grouped by period (daily by default, weekly or
//! monthly per account), numbered in sequence when they close, with opening and closing
//! balances that chain (see `migrations/0020_statements.sql` for the rules).
//!
//! * **Assignment** ([`assign`], per page, set-based): a new line goes into its account's
//!   statement for the period of its booking date, unless that period is already closed:
//!   then into the statement of the current period (it keeps its own date), as a bank's
//!   own statements do.
//! * **Closing** ([`close_ended`], at the end of a sync): statements whose period ended
//!   before the sync started close in period order; each gets the next number, its line
//!   count and balances are fixed (opening = the previous closing; the first opening is
//!   the account's opening balance where its basis is `booked`, else zero). Changes to
//!   lines of closed statements are carried as `corrections` on the open statement of the
//!   current period (a database trigger).
//! * **Balance check**: the bank's balance at the attempt is recorded on the account's
//!   newest statement with the difference to its closing balance, never adjusted.
//!
//! The sync's write path is `assign.rs` and `close.rs`; the API's reads are `read.rs`;
//! here: periods and an account's choice of period.

use chrono::{Datelike, Days, NaiveDate, Utc};
use rust_decimal::Decimal;
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::{Result, SyncError};

mod assign;
mod close;
mod read;

pub use assign::{assign, assign_ahead, touch, Touch};
pub use close::{close_ended, lock_ended, Due, LineSums, Sums};
pub use read::{get, line_ids, page, Scope, Statement};

/// How a bank account's lines are grouped into statements: `daily`, `weekly` (Monday to
/// Sunday) or `monthly`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Daily,
    Weekly,
    Monthly,
}

crate::store::status::vocabulary_schema!(
    Period,
    "How a bank account's lines are grouped into statements: `daily`, `weekly` (Monday to",
    "Sunday) or `monthly`."
);

impl Period {
    pub const ALL: [Period; 3] = [Period::Daily, Period::Weekly, Period::Monthly];

    pub fn as_str(self) -> &'static str {
        match self {
            Period::Daily => "daily",
            Period::Weekly => "weekly",
            Period::Monthly => "monthly",
        }
    }

    pub fn parse(s: &str) -> Option<Period> {
        Period::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// The first day of the period holding `d` (weeks start on Monday, ISO 8601).
    pub fn start(self, d: NaiveDate) -> NaiveDate {
        match self {
            Period::Daily => d,
            Period::Weekly => d - Days::new(d.weekday().num_days_from_monday() as u64),
            Period::Monthly => d.with_day(1).unwrap_or(d),
        }
    }

    /// The last day of the period holding `d`.
    pub fn end(self, d: NaiveDate) -> NaiveDate {
        match self {
            Period::Daily => d,
            Period::Weekly => self.start(d) + Days::new(6),
            Period::Monthly => {
                let first = self.start(d);
                let next = first
                    .checked_add_months(chrono::Months::new(1))
                    .unwrap_or(first);
                next.pred_opt().unwrap_or(first)
            }
        }
    }
}

/// Where a line goes: its account and its statement's period start.
type Target = (Uuid, NaiveDate);

/// Sets how an account's statements are grouped from now on. The lines of its open
/// statements are regrouped by the new period in the same transaction; closed statements
/// stay as they are.
pub async fn set_period(pool: &PgPool, company: Uuid, account: Uuid, period: Period) -> Result<()> {
    let mut tx = pool.begin().await?;
    let n = sqlx::query!(
        "UPDATE bank_accounts SET statement_period = $3, updated_at = now() WHERE id = $1 AND company_id = $2",
        account,
        company,
        period.as_str()
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n == 0 {
        return Err(SyncError::not_found("bank account"));
    }
    let lines = sqlx::query!(
        "SELECT l.id, l.booking_date FROM statement_lines l JOIN statements s ON s.id = l.statement_id
         WHERE s.bank_account_id = $1 AND s.closed_at IS NULL ORDER BY l.id",
        account
    )
    .fetch_all(&mut *tx)
    .await?;
    let old: Vec<i64> = sqlx::query_scalar!(
        "SELECT id FROM statements WHERE bank_account_id = $1 AND closed_at IS NULL",
        account
    )
    .fetch_all(&mut *tx)
    .await?;
    // The open statements go (their corrections move to the new current one).
    let carried: Decimal = sqlx::query_scalar!(
        r#"SELECT coalesce(sum(corrections), 0) AS "c!" FROM statements WHERE id = ANY($1)"#,
        &old
    )
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query!(
        "UPDATE statement_lines SET statement_id = NULL WHERE statement_id = ANY($1)",
        &old
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!("DELETE FROM statements WHERE id = ANY($1)", &old)
        .execute(&mut *tx)
        .await?;
    let keys: Vec<(Uuid, NaiveDate)> = lines.iter().map(|l| (account, l.booking_date)).collect();
    let ids = assign(&mut tx, &keys).await?;
    let line_ids: Vec<i64> = lines.iter().map(|l| l.id).collect();
    sqlx::query!(
        "UPDATE statement_lines l SET statement_id = u.s FROM UNNEST($1::bigint[], $2::bigint[]) AS u(id, s) WHERE l.id = u.id",
        &line_ids,
        &ids
    )
    .execute(&mut *tx)
    .await?;
    if !carried.is_zero() {
        let today = assign(&mut tx, &[(account, Utc::now().date_naive())]).await?;
        sqlx::query!(
            "UPDATE statements SET corrections = corrections + $2 WHERE id = $1",
            today[0],
            carried
        )
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::assign::AccountPlan;
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn periods_start_and_end() {
        // 2026-11-26 is a Thursday.
        assert_eq!(Period::Daily.start(d("2026-11-26")), d("2026-11-26"));
        assert_eq!(Period::Weekly.start(d("2026-11-26")), d("2026-11-23"));
        assert_eq!(Period::Weekly.end(d("2026-11-26")), d("2026-11-29"));
        assert_eq!(Period::Monthly.start(d("2026-11-26")), d("2026-11-01"));
        assert_eq!(Period::Monthly.end(d("2026-11-26")), d("2026-11-30"));
        assert_eq!(Period::Monthly.end(d("2028-02-10")), d("2028-02-29"));
        assert_eq!(Period::Monthly.end(d("2026-12-31")), d("2026-12-31"));
    }

    #[test]
    fn late_lines_go_to_the_open_period() {
        let plan = AccountPlan {
            period: Period::Daily,
            open_from: None,
            closed_through: Some(d("2026-11-20")),
        };
        let today = d("2026-11-26");
        assert_eq!(plan.target(d("2026-11-21"), today), d("2026-11-21"));
        assert_eq!(
            plan.target(d("2026-11-03"), today),
            today,
            "closed: today's statement"
        );
        let monthly = AccountPlan {
            period: Period::Monthly,
            open_from: None,
            closed_through: Some(d("2026-10-31")),
        };
        assert_eq!(monthly.target(d("2026-10-30"), today), d("2026-11-01"));
        // Weekly after daily statements closed through a Wednesday: a short first week.
        let weekly = AccountPlan {
            period: Period::Weekly,
            open_from: None,
            closed_through: Some(d("2026-11-25")),
        };
        assert_eq!(weekly.target(d("2026-11-27"), today), d("2026-11-26"));
        assert_eq!(weekly.target(d("2026-12-01"), today), d("2026-11-30"));
    }
}
