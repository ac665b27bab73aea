//! Bank accounts → journals. A new bank account gets its own journal (named after the bank
//! and account, in the account's currency) unless it is mapped to an existing journal of the
//! same company and currency. Accounts that disappear from the bank are only marked: their
//! journal and lines stay.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use saltedge_client::models::Account as SeAccount;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::error::{Result, SyncError};

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct Journal {
    pub id: Uuid,
    pub company_id: Uuid,
    pub name: String,
    pub currency: String,
    pub sync_start_date: Option<NaiveDate>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct BankAccount {
    pub id: Uuid,
    pub company_id: Uuid,
    pub connection_id: Option<Uuid>,
    pub journal_id: Uuid,
    pub saltedge_id: String,
    pub name: String,
    pub nature: String,
    pub iban: Option<String>,
    pub account_number: Option<String>,
    pub currency: String,
    pub bank_balance: Option<Decimal>,
    pub bank_balance_at: Option<DateTime<Utc>>,
    pub opening_balance: Option<Decimal>,
    pub balance_mismatch: Option<Decimal>,
    pub disappeared_at: Option<DateTime<Utc>>,
    /// `booked`, `credit_card_spend` or `not_comparable` (see [`crate::balance`]).
    pub balance_check: Option<String>,
    pub balance_note: Option<String>,
    /// How its lines are grouped into statements: `daily`, `weekly` or `monthly`.
    pub statement_period: String,
}

/// ISO 4217 and beyond (crypto, four letters): stored as given.
fn valid_currency(c: &str) -> bool {
    crate::quarantine::storable_currency(c)
}

pub async fn create_journal(
    pool: &PgPool,
    company_id: Uuid,
    name: &str,
    currency: &str,
    sync_start_date: Option<NaiveDate>,
) -> Result<Journal> {
    if !valid_currency(currency) {
        return Err(SyncError::invalid(
            "invalid",
            format!("{currency:?} is not an ISO 4217 currency code"),
        ));
    }
    if name.trim().is_empty() {
        return Err(SyncError::invalid("invalid", "a journal needs a name"));
    }
    Ok(sqlx::query_as!(Journal, r#"INSERT INTO journals (company_id, name, currency, sync_start_date) VALUES ($1, $2, $3, $4) RETURNING id, company_id, name, currency, sync_start_date, created_at"#, company_id, name.trim(), currency, sync_start_date)
    .fetch_one(pool)
    .await?)
}

pub async fn journals(pool: &PgPool, company_id: Uuid) -> Result<Vec<Journal>> {
    Ok(sqlx::query_as!(Journal, r#"SELECT id, company_id, name, currency, sync_start_date, created_at FROM journals WHERE company_id = $1 ORDER BY created_at, id"#, company_id)
    .fetch_all(pool)
    .await?)
}

pub async fn journal(pool: &PgPool, company_id: Uuid, id: Uuid) -> Result<Journal> {
    sqlx::query_as!(Journal, r#"SELECT id, company_id, name, currency, sync_start_date, created_at FROM journals WHERE id = $1 AND company_id = $2"#, id, company_id)
    .fetch_optional(pool)
    .await?
    .ok_or(SyncError::not_found("journal"))
}

pub async fn accounts_of_connection(
    pool: &PgPool,
    connection_id: Uuid,
) -> Result<Vec<BankAccount>> {
    Ok(sqlx::query_as!(BankAccount, r#"SELECT id, company_id, connection_id, journal_id, saltedge_id, name, nature, iban, account_number, currency, bank_balance, bank_balance_at, opening_balance, balance_mismatch, disappeared_at, balance_check, balance_note, statement_period FROM bank_accounts WHERE connection_id = $1 ORDER BY created_at, saltedge_id"#, connection_id)
        .fetch_all(pool)
        .await?)
}

pub async fn accounts_of_company(pool: &PgPool, company_id: Uuid) -> Result<Vec<BankAccount>> {
    Ok(sqlx::query_as!(BankAccount, r#"SELECT id, company_id, connection_id, journal_id, saltedge_id, name, nature, iban, account_number, currency, bank_balance, bank_balance_at, opening_balance, balance_mismatch, disappeared_at, balance_check, balance_note, statement_period FROM bank_accounts WHERE company_id = $1 ORDER BY created_at, saltedge_id"#, company_id)
        .fetch_all(pool)
        .await?)
}

/// One bank account of the company.
pub async fn account(pool: &PgPool, company_id: Uuid, id: Uuid) -> Result<BankAccount> {
    sqlx::query_as!(BankAccount, r#"SELECT id, company_id, connection_id, journal_id, saltedge_id, name, nature, iban, account_number, currency, bank_balance, bank_balance_at, opening_balance, balance_mismatch, disappeared_at, balance_check, balance_note, statement_period FROM bank_accounts WHERE id = $1 AND company_id = $2"#, id, company_id)
    .fetch_optional(pool)
    .await?
    .ok_or(SyncError::not_found("bank account"))
}

/// Moves a bank account's future lines to another journal of the same company and currency.
/// Lines already imported stay where they are.
pub async fn map_account(
    pool: &PgPool,
    company_id: Uuid,
    account_id: Uuid,
    journal_id: Uuid,
) -> Result<BankAccount> {
    let journal = journal(pool, company_id, journal_id).await?;
    let account: BankAccount = sqlx::query_as!(BankAccount, r#"SELECT id, company_id, connection_id, journal_id, saltedge_id, name, nature, iban, account_number, currency, bank_balance, bank_balance_at, opening_balance, balance_mismatch, disappeared_at, balance_check, balance_note, statement_period FROM bank_accounts WHERE id = $1 AND company_id = $2"#, account_id, company_id)
    .fetch_optional(pool)
    .await?
    .ok_or(SyncError::not_found("bank account"))?;
    if journal.currency != account.currency {
        return Err(SyncError::CurrencyMismatch {
            journal: journal.currency,
            account: account.currency,
        });
    }
    Ok(sqlx::query_as!(BankAccount, r#"UPDATE bank_accounts SET journal_id = $2, updated_at = now() WHERE id = $1 RETURNING id, company_id, connection_id, journal_id, saltedge_id, name, nature, iban, account_number, currency, bank_balance, bank_balance_at, opening_balance, balance_mismatch, disappeared_at, balance_check, balance_note, statement_period"#, account_id, journal_id)
        .fetch_one(pool)
        .await?)
}

/// What [`sync_accounts`] changed.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct AccountsOutcome {
    pub new_accounts: Vec<Uuid>,
    pub disappeared: usize,
    /// Accounts that cannot be stored (their transactions then count as unknown-account).
    pub quarantined: Vec<crate::quarantine::Quarantined>,
}

/// Upserts the connection's accounts as Salt Edge lists them, creating a journal for each new
/// one, and marks the ones no longer listed as disappeared. One transaction.
pub async fn sync_accounts(
    pool: &PgPool,
    company_id: Uuid,
    connection_id: Uuid,
    provider_name: &str,
    accounts: &[SeAccount],
) -> Result<AccountsOutcome> {
    let mut tx = pool.begin().await?;
    let mut out = AccountsOutcome::default();
    let mut seen = Vec::with_capacity(accounts.len());
    for a in accounts {
        seen.push(a.id.clone());
        if upsert_existing(&mut tx, connection_id, a).await? {
            continue;
        }
        if !valid_currency(&a.currency_code) {
            let reason = format!("currency code {:?} is not a currency code", a.currency_code);
            out.quarantined
                .push(crate::quarantine::Quarantined::unstorable(
                    crate::quarantine::RecordKind::Account,
                    &a.id,
                    a,
                    reason,
                ));
            continue;
        }
        let journal_name = format!("{provider_name} · {}", a.name);
        let journal_id: Uuid = sqlx::query_scalar!(
            "INSERT INTO journals (company_id, name, currency) VALUES ($1, $2, $3) RETURNING id",
            company_id,
            journal_name.trim(),
            &a.currency_code
        )
        .fetch_one(&mut *tx)
        .await?;
        let extra = a.extra_typed().unwrap_or_default();
        let id: Uuid = sqlx::query_scalar!("INSERT INTO bank_accounts (company_id, connection_id, journal_id, saltedge_id, name, nature, iban, account_number,
                 currency, bank_balance, bank_balance_at, balance_type)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now(), $11) RETURNING id", company_id, connection_id, journal_id, &a.id, &a.name, &a.nature, extra.iban, extra.account_number, &a.currency_code, a.balance, extra.balance_type)
        .fetch_one(&mut *tx)
        .await?;
        out.new_accounts.push(id);
    }
    out.disappeared = sqlx::query!(
        "UPDATE bank_accounts SET disappeared_at = now(), updated_at = now()
         WHERE connection_id = $1 AND disappeared_at IS NULL AND NOT (saltedge_id = ANY($2))",
        connection_id,
        &seen
    )
    .execute(&mut *tx)
    .await?
    .rows_affected() as usize;
    tx.commit().await?;
    Ok(out)
}

/// Refreshes an account we already know; false when it is new.
async fn upsert_existing(
    tx: &mut Transaction<'_, Postgres>,
    connection_id: Uuid,
    a: &SeAccount,
) -> Result<bool> {
    let extra = a.extra_typed().unwrap_or_default();
    let n = sqlx::query!("UPDATE bank_accounts SET name = $3, nature = $4, iban = COALESCE($5, iban), account_number = COALESCE($6, account_number),
             bank_balance = $7, bank_balance_at = now(), disappeared_at = NULL, connection_id = $2, balance_type = $8,
             updated_at = now()
         WHERE saltedge_id = $1", &a.id, connection_id, &a.name, &a.nature, extra.iban, extra.account_number, a.balance, extra.balance_type)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(n > 0)
}
