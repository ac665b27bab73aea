//! Balance check: after a sync, each account's bank balance is compared with its journal the
//! way the account's nature and the provider's balance type call for. A difference is
//! recorded on the sync run and the account, never "fixed"; an account whose reported
//! balance cannot be derived from its lines is recorded as `not_comparable`, with the
//! reason, so that no false mismatch is ever reported.
//!
//! * `booked` (current accounts, cards, savings, credit lines): bank balance against the
//!   opening balance plus every posted line.
//! * `credit_card_spend`: Salt Edge's account model gives a `credit_card` balance as the sum
//!   of its negative transactions (payments to the card do not count), so the journal side
//!   is the opening balance plus the negative posted lines only.
//! * `not_comparable`: the provider reports an available rather than a booked balance
//!   (`extra.balance_type = "available"`: credit limit and blocked amounts are in it, as on
//!   the corpus card with `available_amount`, `blocked_amount`, `credit_limit`), or the
//!   nature's value moves without transactions (investment, insurance, bonus points, loans
//!   and mortgages accruing interest).
//!
//! The opening balance is fixed once, at the end of the account's first complete sync
//! (bank balance minus the lines counted then).

use rust_decimal::Decimal;
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

/// How an account's bank balance relates to its lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    Booked,
    CreditCardSpend,
    NotComparable(&'static str),
}

impl Basis {
    pub fn of(nature: &str, balance_type: Option<&str>) -> Basis {
        if balance_type.is_some_and(|t| t.eq_ignore_ascii_case("available")) {
            return Basis::NotComparable(
                "the bank reports an available balance (credit limit and blocked amounts included), not a booked one",
            );
        }
        match nature {
            "credit_card" => Basis::CreditCardSpend,
            "investment" | "insurance" | "bonus" => {
                Basis::NotComparable("the value of this kind of account moves without transactions")
            }
            "loan" | "mortgage" => Basis::NotComparable(
                "interest accrues on this kind of account without transactions",
            ),
            _ => Basis::Booked,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Basis::Booked => "booked",
            Basis::CreditCardSpend => "credit_card_spend",
            Basis::NotComparable(_) => "not_comparable",
        }
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    currency: String,
    nature: String,
    balance_type: Option<String>,
    bank_balance: Option<Decimal>,
    opening_balance: Option<Decimal>,
}

/// Compares each of the connection's accounts with its lines, summed once for the check and
/// the closing of statements ([`crate::statements::LineSums`]), in the transaction that
/// closes them.
pub async fn check(
    db: &mut sqlx::PgConnection,
    connection_id: Uuid,
    sums: &crate::statements::LineSums,
) -> Result<Vec<Mismatch>> {
    let rows: Vec<Row> = sqlx::query_as!(
        Row,
        "SELECT a.id, a.currency, a.nature, a.balance_type, a.bank_balance, a.opening_balance
         FROM bank_accounts a
         WHERE a.connection_id = $1 AND a.disappeared_at IS NULL",
        connection_id
    )
    .fetch_all(&mut *db)
    .await?;
    let mut out = vec![];
    for r in rows {
        let basis = Basis::of(&r.nature, r.balance_type.as_deref());
        let lines = sums.account(r.id);
        let counted = match basis {
            Basis::Booked => lines.total,
            Basis::CreditCardSpend => lines.negative,
            Basis::NotComparable(reason) => {
                sqlx::query!("UPDATE bank_accounts SET balance_check = $2, balance_note = $3, balance_mismatch = NULL WHERE id = $1", r.id, basis.as_str(), reason)
                    .execute(&mut *db)
                    .await?;
                continue;
            }
        };
        let Some(bank) = r.bank_balance else { continue };
        match r.opening_balance {
            None => {
                sqlx::query!("UPDATE bank_accounts SET opening_balance = $2, balance_mismatch = NULL, balance_check = $3, balance_note = NULL
                     WHERE id = $1", r.id, bank - counted, basis.as_str())
                .execute(&mut *db)
                .await?;
            }
            Some(opening) => {
                let journal = opening + counted;
                let diff = bank - journal;
                let mismatch = (!diff.is_zero()).then_some(diff);
                sqlx::query!("UPDATE bank_accounts SET balance_mismatch = $2, balance_check = $3, balance_note = NULL WHERE id = $1", r.id, mismatch, basis.as_str())
                    .execute(&mut *db)
                    .await?;
                if let Some(difference) = mismatch {
                    out.push(Mismatch {
                        bank_account_id: r.id,
                        currency: r.currency,
                        bank_balance: bank,
                        journal_balance: journal,
                        difference,
                    });
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basis_by_nature_and_balance_type() {
        // The corpus card (`accounts-list.1.json`): nature credit_card, no balance_type.
        assert_eq!(Basis::of("credit_card", None), Basis::CreditCardSpend);
        assert_eq!(Basis::of("account", None), Basis::Booked);
        assert_eq!(Basis::of("credit", None), Basis::Booked);
        assert!(matches!(
            Basis::of("account", Some("available")),
            Basis::NotComparable(_)
        ));
        assert!(matches!(
            Basis::of("credit_card", Some("Available")),
            Basis::NotComparable(_)
        ));
        assert!(matches!(
            Basis::of("investment", None),
            Basis::NotComparable(_)
        ));
    }
}
