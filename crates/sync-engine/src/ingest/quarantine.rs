//! Records that cannot be parsed or stored — an unknown field shape, a missing field, an
//! absurd date, a currency code that is no code at all — are quarantined: kept on the sync
//! run with their raw JSON and the reason, visible through the API, while every other record
//! of the connection imports.

use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use crate::error::Result;
pub use crate::store::status::RecordKind;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Quarantined {
    /// `transaction` or `account`.
    pub kind: RecordKind,
    pub saltedge_id: Option<String>,
    pub raw: String,
    pub reason: String,
}

impl Quarantined {
    /// A record the client could not parse.
    pub fn rejected(kind: RecordKind, r: &saltedge_client::models::Rejected) -> Self {
        Quarantined {
            kind,
            saltedge_id: r.id.clone(),
            raw: r.raw.clone(),
            reason: r.reason.clone(),
        }
    }

    /// A parsed record that cannot be stored.
    pub fn unstorable<T: serde::Serialize>(
        kind: RecordKind,
        id: &str,
        record: &T,
        reason: String,
    ) -> Self {
        Quarantined {
            kind,
            saltedge_id: Some(id.to_string()),
            raw: serde_json::to_string(record).unwrap_or_default(),
            reason,
        }
    }
}

/// Stores `records` for run `run_id` and counts them on the run.
pub async fn record<'e>(
    db: impl PgExecutor<'e>,
    run_id: Uuid,
    records: &[Quarantined],
) -> Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    for r in records {
        tracing::warn!(run = %run_id, kind = r.kind.as_str(), id = ?r.saltedge_id, reason = %r.reason, "record quarantined");
    }
    let kinds: Vec<&str> = records.iter().map(|r| r.kind.as_str()).collect();
    let ids: Vec<Option<&str>> = records.iter().map(|r| r.saltedge_id.as_deref()).collect();
    // Postgres text cannot hold U+0000; the raw JSON keeps its escapes, so only a raw NUL
    // (never valid JSON) would be replaced.
    let raws: Vec<String> = records
        .iter()
        .map(|r| r.raw.replace('\0', "\u{FFFD}"))
        .collect();
    let reasons: Vec<String> = records
        .iter()
        .map(|r| r.reason.replace('\0', "\u{FFFD}"))
        .collect();
    sqlx::query!("WITH ins AS (
             INSERT INTO quarantined_records (company_id, sync_run_id, kind, saltedge_id, raw, reason)
             SELECT (SELECT r.company_id FROM sync_runs r WHERE r.id = $1), $1, u.*
             FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[]) AS u RETURNING 1)
         UPDATE sync_runs SET quarantined = quarantined + (SELECT count(*) FROM ins) WHERE id = $1", run_id, &kinds as &[&str], &ids as &[Option<&str>], &raws, &reasons)
    .execute(db)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct QuarantinedRecord {
    pub id: i64,
    pub sync_run_id: Uuid,
    pub kind: RecordKind,
    pub saltedge_id: Option<String>,
    pub raw: String,
    pub reason: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// The connection's quarantined records, newest first.
pub async fn for_connection(
    pool: &PgPool,
    company_id: Uuid,
    connection_id: Uuid,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<QuarantinedRecord>> {
    Ok(sqlx::query_as!(
        QuarantinedRecord,
        r#"SELECT q.id, q.sync_run_id, q.kind AS "kind: RecordKind", q.saltedge_id, q.raw, q.reason, q.created_at
         FROM quarantined_records q JOIN sync_runs r ON r.id = q.sync_run_id
         WHERE q.company_id = $1 AND r.connection_id = $2 AND ($4::bigint IS NULL OR q.id < $4)
         ORDER BY q.id DESC LIMIT $3"#,
        company_id,
        connection_id,
        limit,
        before
    )
    .fetch_all(pool)
    .await?)
}

/// A currency code as banksync stores it: ISO 4217 and beyond (crypto, four letters), as
/// given, but letters and digits only.
pub fn storable_currency(c: &str) -> bool {
    (2..=12).contains(&c.len())
        && c.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// A date Postgres and an accountant can both take.
pub fn plausible_date(d: chrono::NaiveDate) -> bool {
    (1900..=2200).contains(&chrono::Datelike::year(&d))
}
