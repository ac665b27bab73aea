//! Bank accounts → journals. A new bank account gets its own journal (named after the bank
//! and account, in the account's currency) unless it is mapped to an existing journal of the
//! same company and currency. Accounts that disappear from the bank are only marked: their
//! journal and lines stay.
//!
//! **The same bank linked again** (a new connection after a delete, or a reconnect that
//! yields new account ids): a Salt Edge account we do not know is matched to an existing
//! bank account of the company that no live connection lists — by IBAN, else by account
//! number, in the same currency — and takes it over ([`adopt`]): the journal mapping stays,
//! and the lines imported before are claimed by the new transactions instead of being
//! imported again (`ingest::lines`, rule 10). A match only by provider, currency and name is
//! a proposal ([`proposals`], [`decide`]); until it is decided, the account's transactions
//! wait.

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
    /// Existing bank accounts taken over by a new Salt Edge account (same IBAN or number).
    pub relinked: Vec<Uuid>,
    /// New Salt Edge accounts waiting for a bookkeeper's decision on a proposed match.
    pub proposed: usize,
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
    provider: (&str, &str),
    accounts: &[SeAccount],
) -> Result<AccountsOutcome> {
    let (provider_code, provider_name) = provider;
    let mut tx = pool.begin().await?;
    let mut out = AccountsOutcome::default();
    let seen: Vec<String> = accounts.iter().map(|a| a.id.clone()).collect();
    for a in accounts {
        match upsert_existing(&mut tx, connection_id, a).await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(SyncError::Conflict { detail, .. }) => {
                out.quarantined.push(unstorable(a, detail));
                continue;
            }
            Err(e) => return Err(e),
        }
        if !valid_currency(&a.currency_code) {
            let reason = format!("currency code {:?} is not a currency code", a.currency_code);
            out.quarantined.push(unstorable(a, reason));
            continue;
        }
        let decided: Option<String> = sqlx::query_scalar!(
            "SELECT status FROM account_match_proposals WHERE connection_id = $1 AND saltedge_account_id = $2",
            connection_id,
            &a.id
        )
        .fetch_optional(&mut *tx)
        .await?;
        match decided.as_deref() {
            Some("proposed") => {
                out.proposed += 1;
                continue;
            }
            // Rejected: a bank account of its own. (Confirmed ones were adopted above.)
            Some(_) => {}
            None => match find_match(&mut tx, company_id, connection_id, provider_code, a, &seen)
                .await?
            {
                Some(Match::Same(id)) => {
                    adopt(&mut tx, id, connection_id, provider_code, a).await?;
                    out.relinked.push(id);
                    continue;
                }
                Some(Match::Proposed(candidate)) => {
                    sqlx::query!(
                        "INSERT INTO account_match_proposals (company_id, connection_id, saltedge_account_id, account, candidate_account_id)
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                        company_id,
                        connection_id,
                        &a.id,
                        serde_json::to_value(a).unwrap_or_default(),
                        candidate
                    )
                    .execute(&mut *tx)
                    .await?;
                    tracing::info!(account = %a.id, %candidate, "a new account looks like an earlier one by name: proposed, waiting for a decision");
                    out.proposed += 1;
                    continue;
                }
                None => {}
            },
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
                 currency, bank_balance, bank_balance_at, balance_type, provider_code)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now(), $11, $12) RETURNING id", company_id, connection_id, journal_id, &a.id, &a.name, &a.nature, extra.iban, extra.account_number, &a.currency_code, a.balance, extra.balance_type, provider_code)
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

enum Match {
    /// The same account (IBAN, else account number): taken over.
    Same(Uuid),
    /// Only the provider, currency and name agree: proposed.
    Proposed(Uuid),
}

/// An existing bank account of the company that Salt Edge account `a` may be: one no live
/// connection lists (its connection is gone or removed, or it is this connection's and no
/// longer listed), in the same currency.
async fn find_match(
    tx: &mut Transaction<'_, Postgres>,
    company_id: Uuid,
    connection_id: Uuid,
    provider_code: &str,
    a: &SeAccount,
    listed: &[String],
) -> Result<Option<Match>> {
    let extra = a.extra_typed().unwrap_or_default();
    let iban = extra
        .iban
        .as_deref()
        .map(normalise_iban)
        .filter(|i| !i.is_empty());
    let number = extra
        .account_number
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty());
    let candidates = sqlx::query!(
        r#"SELECT a.id, a.name, a.provider_code,
                  (upper(replace(a.iban, ' ', '')) = $5) AS "same_iban",
                  ((a.iban IS NULL OR $5::text IS NULL) AND btrim(a.account_number) = $6) AS "same_number",
                  (a.iban IS NOT NULL AND $5::text IS NOT NULL AND upper(replace(a.iban, ' ', '')) <> $5) AS "other_iban"
           FROM bank_accounts a LEFT JOIN connections c ON c.id = a.connection_id
           WHERE a.company_id = $1 AND a.currency = $2 AND NOT (a.saltedge_id = ANY($3))
             AND (a.connection_id IS NULL OR a.connection_id = $4 OR c.status = 'removed')
           ORDER BY a.created_at, a.id"#,
        company_id,
        &a.currency_code,
        listed,
        connection_id,
        iban,
        number
    )
    .fetch_all(&mut **tx)
    .await?;
    if let Some(c) = candidates.iter().find(|c| c.same_iban == Some(true)) {
        return Ok(Some(Match::Same(c.id)));
    }
    if let Some(c) = candidates.iter().find(|c| c.same_number == Some(true)) {
        return Ok(Some(Match::Same(c.id)));
    }
    Ok(candidates
        .iter()
        .find(|c| {
            c.other_iban != Some(true)
                && c.provider_code.as_deref() == Some(provider_code)
                && c.name.trim().to_lowercase() == a.name.trim().to_lowercase()
        })
        .map(|c| Match::Proposed(c.id)))
}

fn normalise_iban(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_uppercase)
        .collect()
}

/// Existing bank account `id` becomes Salt Edge account `a` of `connection_id`: its journal
/// and lines stay; the lines imported before wait to be claimed (`relinked_at`).
async fn adopt(
    tx: &mut Transaction<'_, Postgres>,
    id: Uuid,
    connection_id: Uuid,
    provider_code: &str,
    a: &SeAccount,
) -> Result<()> {
    let extra = a.extra_typed().unwrap_or_default();
    sqlx::query!("UPDATE bank_accounts SET previous_saltedge_id = saltedge_id, saltedge_id = $2, connection_id = $3, name = $4, nature = $5,
             iban = coalesce($6, iban), account_number = coalesce($7, account_number), bank_balance = $8, bank_balance_at = now(),
             balance_type = $9, provider_code = $10, disappeared_at = NULL, relinked_at = now(), updated_at = now()
         WHERE id = $1", id, &a.id, connection_id, &a.name, &a.nature, extra.iban, extra.account_number, a.balance, extra.balance_type, provider_code)
    .execute(&mut **tx)
    .await?;
    tracing::info!(account = %id, saltedge_id = %a.id, "the same bank account linked again: taken over, journal and history kept");
    Ok(())
}

/// A proposed match of a new Salt Edge account with an earlier bank account.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Proposal {
    pub id: i64,
    pub connection_id: Uuid,
    pub saltedge_account_id: String,
    pub name: String,
    pub currency: String,
    pub candidate_account_id: Uuid,
    pub candidate_name: String,
    pub status: crate::store::status::MatchStatus,
    pub created_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
}

/// The company's proposed matches (`proposed` only, or all).
pub async fn proposals(pool: &PgPool, company_id: Uuid, open_only: bool) -> Result<Vec<Proposal>> {
    Ok(sqlx::query_as!(
        Proposal,
        r#"SELECT p.id, p.connection_id, p.saltedge_account_id, coalesce(p.account->>'name', '') AS "name!",
                  coalesce(p.account->>'currency_code', '') AS "currency!", p.candidate_account_id, a.name AS candidate_name,
                  p.status AS "status: crate::store::status::MatchStatus", p.created_at, p.decided_at
           FROM account_match_proposals p JOIN bank_accounts a ON a.id = p.candidate_account_id
           WHERE p.company_id = $1 AND (NOT $2 OR p.status = 'proposed') ORDER BY p.id"#,
        company_id,
        open_only
    )
    .fetch_all(pool)
    .await?)
}

/// Decides a proposal: confirmed, the earlier bank account takes the new Salt Edge account
/// over (journal and history kept); rejected, the new account gets its own journal at the
/// next sync. Returns the connection to sync.
pub async fn decide(pool: &PgPool, company_id: Uuid, proposal: i64, confirm: bool) -> Result<Uuid> {
    let mut tx = pool.begin().await?;
    let p = sqlx::query!(
        "SELECT connection_id, saltedge_account_id, account, candidate_account_id, status FROM account_match_proposals
         WHERE id = $1 AND company_id = $2 FOR UPDATE",
        proposal,
        company_id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(SyncError::not_found("account match"))?;
    if p.status != "proposed" {
        return Err(SyncError::conflict(
            "already_decided",
            format!("this match was already {}", p.status),
        ));
    }
    if confirm {
        let account: SeAccount = serde_json::from_value(p.account)
            .map_err(|e| SyncError::Corrupt(format!("proposal {proposal}: {e}")))?;
        let provider: String = sqlx::query_scalar!(
            "SELECT provider_code FROM connections WHERE id = $1",
            p.connection_id
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(SyncError::not_found("connection"))?;
        // Still free: no live connection took the earlier account meanwhile.
        let free: bool = sqlx::query_scalar!(
            r#"SELECT (a.connection_id IS NULL OR a.connection_id = $2 OR c.status = 'removed') AS "free!"
               FROM bank_accounts a LEFT JOIN connections c ON c.id = a.connection_id WHERE a.id = $1"#,
            p.candidate_account_id,
            p.connection_id
        )
        .fetch_one(&mut *tx)
        .await?;
        if !free {
            return Err(SyncError::conflict(
                "account_taken",
                "the earlier bank account is in use by another connection now; reject this match",
            ));
        }
        adopt(
            &mut tx,
            p.candidate_account_id,
            p.connection_id,
            &provider,
            &account,
        )
        .await?;
    }
    sqlx::query!(
        "UPDATE account_match_proposals SET status = $2, decided_at = now() WHERE id = $1",
        proposal,
        if confirm { "confirmed" } else { "rejected" }
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(p.connection_id)
}

/// An account that cannot be stored, with why.
fn unstorable(a: &SeAccount, reason: String) -> crate::quarantine::Quarantined {
    crate::quarantine::Quarantined::unstorable(
        crate::quarantine::RecordKind::Account,
        &a.id,
        a,
        reason,
    )
}

/// Refreshes an account we already know — of this connection's company only; false when
/// it is new. An account id another company holds is refused: a listing never moves an
/// account (its journal, its lines) to another company.
async fn upsert_existing(
    tx: &mut Transaction<'_, Postgres>,
    connection_id: Uuid,
    a: &SeAccount,
) -> Result<bool> {
    let extra = a.extra_typed().unwrap_or_default();
    let n = sqlx::query!("UPDATE bank_accounts SET name = $3, nature = $4, iban = COALESCE($5, iban), account_number = COALESCE($6, account_number),
             bank_balance = $7, bank_balance_at = now(), disappeared_at = NULL, connection_id = $2, balance_type = $8,
             updated_at = now()
         WHERE saltedge_id = $1 AND company_id = (SELECT company_id FROM connections WHERE id = $2)",
         &a.id, connection_id, &a.name, &a.nature, extra.iban, extra.account_number, a.balance, extra.balance_type)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if n == 0 {
        let elsewhere: bool = sqlx::query_scalar!(
            r#"SELECT EXISTS (SELECT 1 FROM bank_accounts WHERE saltedge_id = $1) AS "x!""#,
            &a.id
        )
        .fetch_one(&mut **tx)
        .await?;
        if elsewhere {
            return Err(SyncError::conflict(
                "account_of_another_company",
                format!(
                    "Salt Edge account {} belongs to another company's connection; not taken over",
                    a.id
                ),
            ));
        }
    }
    Ok(n > 0)
}
