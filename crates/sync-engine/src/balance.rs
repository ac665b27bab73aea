//! Balance check: after a sync, each account's running balance (opening balance + posted
//! lines) is compared with the balance the bank reports. A difference is recorded on the
//! sync run and the account, never "fixed". The opening balance is fixed once, at the end of
//! the account's first complete sync (bank balance minus the lines imported then).

use rust_decimal::Decimal;
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::Result;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Mismatch {
    pub bank_account_id: Uuid,
    pub currency: String,
    #[serde(with = "rust_decimal::serde::str")]
    pub bank_balance: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub journal_balance: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub difference: Decimal,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    currency: String,
    bank_balance: Option<Decimal>,
    opening_balance: Option<Decimal>,
    posted: Option<Decimal>,
}

pub async fn check(pool: &PgPool, connection_id: Uuid) -> Result<Vec<Mismatch>> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT a.id, a.currency, a.bank_balance, a.opening_balance,
                (SELECT sum(l.amount) FROM statement_lines l WHERE l.bank_account_id = a.id AND l.status = 'posted') AS posted
         FROM bank_accounts a WHERE a.connection_id = $1 AND a.disappeared_at IS NULL",
    )
    .bind(connection_id)
    .fetch_all(pool)
    .await?;
    let mut out = vec![];
    for r in rows {
        let Some(bank) = r.bank_balance else { continue };
        let posted = r.posted.unwrap_or_default();
        match r.opening_balance {
            None => {
                sqlx::query("UPDATE bank_accounts SET opening_balance = $2, balance_mismatch = NULL WHERE id = $1")
                    .bind(r.id)
                    .bind(bank - posted)
                    .execute(pool)
                    .await?;
            }
            Some(opening) => {
                let journal = opening + posted;
                let diff = bank - journal;
                let mismatch = (!diff.is_zero()).then_some(diff);
                sqlx::query("UPDATE bank_accounts SET balance_mismatch = $2 WHERE id = $1").bind(r.id).bind(mismatch).execute(pool).await?;
                if let Some(difference) = mismatch {
                    out.push(Mismatch { bank_account_id: r.id, currency: r.currency, bank_balance: bank, journal_balance: journal, difference });
                }
            }
        }
    }
    Ok(out)
}
