//! Identity that survives the bank: re-keying by bank id, claiming a relinked account's lines (rules 9, 10).

use std::collections::HashMap;
use std::collections::HashSet;

use sqlx::Postgres;
use uuid::Uuid;

use super::Row;
use crate::error::Result;

/// Per (account, fingerprint): the account's first line with that fingerprint and the
/// highest occurrence so far.
pub(super) type Identities = HashMap<(Uuid, String), (i64, i32)>;

/// Line `line` (Salt Edge id `old_id`) becomes row `r`'s transaction: re-keyed to its Salt
/// Edge id with its content; line id, fingerprint and occurrence stay; the history says
/// why (`reason`).
pub(super) async fn rekey_line(
    db: &mut sqlx::Transaction<'_, Postgres>,
    line: i64,
    old_id: &str,
    r: &Row,
    run_id: Uuid,
    reason: &str,
) -> Result<()> {
    sqlx::query!("UPDATE statement_lines SET saltedge_transaction_id = $2, booking_date = $3, value_date = $4, amount = $5,
             description = $6, payee = $7, counterparty_iban = $8, extra = $9::text::jsonb, content_hash = $10, text_repaired = $11,
             sync_run_id = $12, bank_transaction_id = coalesce($13, bank_transaction_id),
             rekeyed_from = saltedge_transaction_id, rekeyed_at = now(), updated_at = now()
         WHERE id = $1", line, &r.saltedge_id, r.booking_date, r.value_date, r.amount, &r.description, r.payee.as_deref(),
         r.counterparty_iban.as_deref(), &*r.extra, &r.content_hash, r.text_repaired, run_id, r.bank_id.as_deref())
    .execute(&mut **db)
    .await?;
    crate::history::record(
        &mut **db,
        line,
        Some(run_id),
        crate::history::EventKind::Rekeyed,
        serde_json::json!({ "from": old_id, "to": r.saltedge_id, "reason": reason }),
    )
    .await
}

/// Identity, first key: a transaction with a Salt Edge id we do not hold whose bank id
/// (`extra.id`) is a line's of the same account is that line under a new Salt Edge id. The
/// line is re-keyed (its id, fingerprint and occurrence stay; `rekeyed_from` remembers the
/// old Salt Edge id) and takes the new content; the row is not inserted. Returns how many
/// lines were re-keyed.
pub(super) async fn rekey_by_bank_id(
    db: &mut sqlx::Transaction<'_, Postgres>,
    rows: &mut Vec<Row>,
    known: &HashMap<String, String>,
    run_id: Uuid,
) -> Result<i32> {
    let candidates: Vec<&Row> = rows
        .iter()
        .filter(|r| r.bank_id.is_some() && !known.contains_key(&r.saltedge_id))
        .collect();
    if candidates.is_empty() {
        return Ok(0);
    }
    let accounts: Vec<Uuid> = candidates.iter().map(|r| r.bank_account_id).collect();
    let bank_ids: Vec<&str> = candidates
        .iter()
        .filter_map(|r| r.bank_id.as_deref())
        .collect();
    let held: HashMap<(Uuid, String), (i64, String)> = sqlx::query!(
        r#"SELECT id, bank_account_id, bank_transaction_id AS "bank_id!", saltedge_transaction_id FROM statement_lines
         WHERE bank_account_id = ANY($1) AND bank_transaction_id = ANY($2)"#,
        &accounts,
        &bank_ids as &[&str]
    )
    .fetch_all(&mut **db)
    .await?
    .into_iter()
    .map(|r| ((r.bank_account_id, r.bank_id), (r.id, r.saltedge_transaction_id)))
    .collect();
    if held.is_empty() {
        return Ok(0);
    }
    let mut rekeyed = 0;
    let mut keep = Vec::with_capacity(rows.len());
    for r in rows.drain(..) {
        let hit = r
            .bank_id
            .as_ref()
            .filter(|_| !known.contains_key(&r.saltedge_id))
            .and_then(|b| held.get(&(r.bank_account_id, b.clone())));
        let Some((line, old_id)) = hit else {
            keep.push(r);
            continue;
        };
        rekey_line(db, *line, old_id, &r, run_id, "bank_transaction_id").await?;
        tracing::info!(line, from = %old_id, to = %r.saltedge_id, "re-keyed by the bank's transaction id");
        rekeyed += 1;
    }
    *rows = keep;
    Ok(rekeyed)
}

/// Rule 10: in an account taken over by a new connection (the same bank linked again), a
/// transaction with an unknown Salt Edge id claims the earliest unclaimed line imported
/// before the takeover with the same fingerprint (occurrence order): the line is re-keyed
/// to the new id, never imported again. Returns how many lines were claimed.
pub(super) async fn claim_relinked(
    db: &mut sqlx::Transaction<'_, Postgres>,
    rows: &mut Vec<Row>,
    known: &HashMap<String, String>,
    run_id: Uuid,
) -> Result<i32> {
    let wanted: Vec<(Uuid, &str)> = rows
        .iter()
        .filter(|r| r.relinked && !known.contains_key(&r.saltedge_id))
        .map(|r| (r.bank_account_id, r.fingerprint.as_str()))
        .collect();
    if wanted.is_empty() {
        return Ok(0);
    }
    let accounts: Vec<Uuid> = wanted.iter().map(|w| w.0).collect();
    let fps: Vec<&str> = wanted.iter().map(|w| w.1).collect();
    let mut waiting: HashMap<(Uuid, String), std::collections::VecDeque<(i64, String)>> =
        HashMap::new();
    for r in sqlx::query!(
        "SELECT l.id, l.bank_account_id, l.fingerprint, l.saltedge_transaction_id
         FROM statement_lines l JOIN bank_accounts a ON a.id = l.bank_account_id
         JOIN (SELECT DISTINCT * FROM UNNEST($1::uuid[], $2::text[])) AS w(account, fp)
              ON l.bank_account_id = w.account AND l.fingerprint = w.fp
         WHERE a.relinked_at IS NOT NULL AND l.imported_at < a.relinked_at
           AND (l.rekeyed_at IS NULL OR l.rekeyed_at < a.relinked_at)
         ORDER BY l.occurrence",
        &accounts,
        &fps as &[&str]
    )
    .fetch_all(&mut **db)
    .await?
    {
        waiting
            .entry((r.bank_account_id, r.fingerprint))
            .or_default()
            .push_back((r.id, r.saltedge_transaction_id));
    }
    if waiting.is_empty() {
        return Ok(0);
    }
    let mut claimed = 0;
    let mut keep = Vec::with_capacity(rows.len());
    for r in rows.drain(..) {
        let line = (r.relinked && !known.contains_key(&r.saltedge_id))
            .then(|| waiting.get_mut(&(r.bank_account_id, r.fingerprint.clone())))
            .flatten()
            .and_then(|q| q.pop_front());
        let Some((line, old_id)) = line else {
            keep.push(r);
            continue;
        };
        rekey_line(db, line, &old_id, &r, run_id, "relinked").await?;
        claimed += 1;
    }
    *rows = keep;
    if claimed > 0 {
        tracing::info!(
            claimed,
            "lines of a relinked account claimed by their new Salt Edge ids"
        );
    }
    Ok(claimed)
}

/// The identities (first line, highest occurrence) of the new rows' fingerprints in their
/// accounts, from the unique identity index: one query per page.
pub(super) async fn identities_of(
    db: &mut sqlx::Transaction<'_, Postgres>,
    rows: &[&Row],
) -> Result<Identities> {
    let keys: HashSet<(Uuid, &str)> = rows
        .iter()
        .map(|r| (r.bank_account_id, r.fingerprint.as_str()))
        .collect();
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let (accounts, fps): (Vec<Uuid>, Vec<&str>) = keys.into_iter().unzip();
    Ok(sqlx::query!(
        r#"SELECT l.bank_account_id, l.fingerprint, min(l.id) AS "first!", max(l.occurrence) AS "top!"
           FROM statement_lines l JOIN UNNEST($1::uuid[], $2::text[]) AS k(account, fp)
                ON l.bank_account_id = k.account AND l.fingerprint = k.fp
           GROUP BY l.bank_account_id, l.fingerprint"#,
        &accounts,
        &fps as &[&str]
    )
    .fetch_all(&mut **db)
    .await?
    .into_iter()
    .map(|r| ((r.bank_account_id, r.fingerprint), (r.first, r.top)))
    .collect())
}
