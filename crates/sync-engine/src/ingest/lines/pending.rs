//! Pending transactions: stored apart, linked when they post, expired when they vanish (rules 2, 3).

use std::collections::HashMap;
use std::collections::HashSet;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use sqlx::PgPool;
use sqlx::Postgres;
use uuid::Uuid;

use super::{DedupOptions, FingerprintFilter, PageOutcome, Row};
use crate::error::Result;

/// What one sync carries from page to page: the connection's open pending transactions
/// (not posted yet, still listed or expired), read once per sync (the sync holds the
/// connection's lock, so nobody else changes them) and consumed as posted transactions
/// replace them; and, for a connection that had no lines when the sync started, the
/// (account, fingerprint) pairs this sync stored, so that only rows whose fingerprint came
/// before need their identity looked up.
#[derive(Default)]
pub struct PendingLines {
    pub(super) lines: Vec<PendingLine>,
    pub(super) used: HashSet<i64>,
    pub(super) stored_fingerprints: FingerprintFilter,
    /// Pages that changed nothing (a re-sync of unchanged history) and their counts, not
    /// written yet: [`PendingLines::flush`] adds them to the run in one update.
    pub(super) deferred: (i32, PageOutcome),
    /// The Salt Edge ids this sync's pending list holds (read before the posted listing):
    /// a pending transaction the bank still lists as pending has not posted.
    pub(super) still_listed: HashSet<String>,
}

impl PendingLines {
    pub async fn load(pool: &PgPool, connection_id: Uuid) -> Result<PendingLines> {
        let lines = sqlx::query_as!(
            PendingLine,
            "SELECT p.id, p.bank_account_id, p.saltedge_transaction_id, p.booking_date, p.amount, p.currency, p.description, p.state
             FROM pending_transactions p JOIN bank_accounts a ON a.id = p.bank_account_id
             WHERE a.connection_id = $1 AND p.posted_line_id IS NULL ORDER BY p.id",
            connection_id
        )
        .fetch_all(pool)
        .await?;
        Ok(PendingLines {
            lines,
            used: HashSet::new(),
            stored_fingerprints: FingerprintFilter::default(),
            deferred: Default::default(),
            still_listed: HashSet::new(),
        })
    }

    /// This sync's pending list (rule 2: what it holds is still pending, never posted).
    pub fn set_still_listed(&mut self, ids: impl IntoIterator<Item = String>) {
        self.still_listed = ids.into_iter().collect();
    }

    pub(super) fn defer(&mut self, pages: i32, p: &PageOutcome) {
        let (n, d) = &mut self.deferred;
        *n += pages;
        d.add(p);
    }

    /// Adds the deferred pages' counts to the run (one update for all of them).
    pub async fn flush(&mut self, pool: &PgPool, run_id: Uuid) -> Result<()> {
        let (pages, d) = std::mem::take(&mut self.deferred);
        if pages > 0 {
            crate::runs::add_pages(pool, run_id, pages, &d, None).await?;
        }
        Ok(())
    }

    pub(super) fn any_left(&self) -> bool {
        self.used.len() < self.lines.len()
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct PendingLine {
    pub(super) id: i64,
    pub(super) bank_account_id: Uuid,
    pub(super) saltedge_transaction_id: String,
    pub(super) booking_date: NaiveDate,
    pub(super) amount: Decimal,
    pub(super) currency: String,
    pub(super) description: String,
    /// `pending` (open until this sync) or `expired` (Salt Edge stopped listing it before).
    pub(super) state: String,
}

/// What rule 2 makes of a new posted row and the open pending transactions.
pub(super) enum PendingMatch<'a> {
    /// The posting of this pending transaction: linked.
    Link(&'a PendingLine),
    /// Maybe its posting (same amount and currency, within the days, the only one), but
    /// nothing else says so: proposed for the bookkeeper's review, not linked.
    Propose(&'a PendingLine),
    None,
}

/// Rule 2: the pending transaction a new posted row replaces, if any. Never one that this
/// sync's pending list still holds (it has not posted); by amount only with evidence: the
/// description's words (numbers included) overlap at least `min_similarity`. The only
/// candidate without such evidence is proposed, not linked.
pub(super) fn match_pending<'a>(
    r: &Row,
    candidates: &'a [PendingLine],
    used: &HashSet<i64>,
    still_listed: &HashSet<String>,
    opts: &DedupOptions,
) -> PendingMatch<'a> {
    let same_id = candidates.iter().find(|p| {
        !used.contains(&p.id)
            && p.bank_account_id == r.bank_account_id
            && p.saltedge_transaction_id == r.saltedge_id
    });
    if let Some(p) = same_id {
        return PendingMatch::Link(p);
    }
    let mut fits: Vec<(&PendingLine, f64)> = candidates
        .iter()
        .filter(|p| !used.contains(&p.id) && !still_listed.contains(&p.saltedge_transaction_id))
        .filter(|p| {
            p.bank_account_id == r.bank_account_id
                && p.amount == r.amount
                && p.currency == r.currency
        })
        .filter(|p| (p.booking_date - r.booking_date).num_days().abs() <= opts.pending_match_days)
        .map(|p| (p, pending_similarity(&p.description, &r.description)))
        .collect();
    let only_one = fits.len() == 1;
    // The most similar; among equals, one that left the pending list in this very sync
    // before one that expired earlier; then the nearest date, then the first stored.
    fits.sort_by(|a, b| {
        b.1.total_cmp(&a.1)
            .then_with(|| (a.0.state != "pending").cmp(&(b.0.state != "pending")))
            .then_with(|| {
                (a.0.booking_date - r.booking_date)
                    .num_days()
                    .abs()
                    .cmp(&(b.0.booking_date - r.booking_date).num_days().abs())
            })
            .then_with(|| a.0.id.cmp(&b.0.id))
    });
    match fits.first() {
        Some((p, s)) if *s >= opts.min_similarity => PendingMatch::Link(p),
        Some((p, _)) if only_one => PendingMatch::Propose(p),
        _ => PendingMatch::None,
    }
}

/// Words of a description for matching a posting to its pending transaction: lower case,
/// references and long numbers dropped (they differ between the two versions: `REF1234`,
/// card numbers, dates), short numbers kept (`card 1` is not `card 2`).
pub(super) fn pending_words(s: &str) -> HashSet<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .filter(|w| {
            let digits = w.chars().filter(|c| c.is_numeric()).count();
            digits == 0 || (digits == w.chars().count() && digits <= 3)
        })
        .map(|w| w.to_lowercase())
        .collect()
}

/// Jaccard similarity of [`pending_words`], 0.0 to 1.0; 0.0 when both name numbers and
/// none is the same (`card 1`, `card 2`: the text says they are different payments).
pub(super) fn pending_similarity(a: &str, b: &str) -> f64 {
    let (wa, wb) = (pending_words(a), pending_words(b));
    if wa.is_empty() && wb.is_empty() {
        return 1.0;
    }
    let numbers = |w: &HashSet<String>| -> HashSet<String> {
        w.iter()
            .filter(|x| x.chars().all(char::is_numeric))
            .cloned()
            .collect()
    };
    let (na, nb) = (numbers(&wa), numbers(&wb));
    if !na.is_empty() && !nb.is_empty() && na.is_disjoint(&nb) {
        return 0.0;
    }
    wa.intersection(&wb).count() as f64 / wa.union(&wb).count() as f64
}

/// Rule 2, applied: each new posted row that replaces an open pending transaction records
/// its id, to be linked once the row is a line.
pub(super) fn match_pending_rows(
    rows: &mut [Row],
    known: &HashMap<String, String>,
    pending: &mut PendingLines,
    opts: &DedupOptions,
) {
    for r in rows.iter_mut() {
        if known.contains_key(&r.saltedge_id) {
            continue;
        }
        match match_pending(
            r,
            &pending.lines,
            &pending.used,
            &pending.still_listed,
            opts,
        ) {
            PendingMatch::Link(p) => {
                r.pending_id = Some(p.id);
                pending.used.insert(p.id);
            }
            PendingMatch::Propose(p) => r.pending_proposal = Some(p.id),
            PendingMatch::None => {}
        }
    }
}

/// Rule 2, recorded: the pending transactions matched by inserted lines become `posted`.
/// Guarded: one still open is consumed by at most one line, whatever two syncs do (a lost
/// lock); a line whose pending transaction was taken meanwhile keeps no link.
pub(super) async fn link_posted_pending(
    db: &mut sqlx::Transaction<'_, Postgres>,
    rows: &[Row],
    inserted: &HashMap<String, i64>,
    run_id: Uuid,
) -> Result<()> {
    let (mut pids, mut lids) = (vec![], vec![]);
    for r in rows {
        if let (Some(p), Some(&l)) = (r.pending_id, inserted.get(&r.saltedge_id)) {
            pids.push(p);
            lids.push(l);
        }
    }
    link_pending(db, pids, lids, run_id).await?;
    let (mut pids, mut lids) = (vec![], vec![]);
    for r in rows {
        if let (Some(p), Some(&l)) = (r.pending_proposal, inserted.get(&r.saltedge_id)) {
            pids.push(p);
            lids.push(l);
        }
    }
    propose_pending(db, pids, lids).await
}

/// Rule 2 on weak evidence: each pending transaction `pids[i]` is proposed as posted by the
/// new line `lids[i]`, for the bookkeeper to link or dismiss; it stays open meanwhile.
pub(super) async fn propose_pending(
    db: &mut sqlx::Transaction<'_, Postgres>,
    pids: Vec<i64>,
    lids: Vec<i64>,
) -> Result<()> {
    if pids.is_empty() {
        return Ok(());
    }
    sqlx::query!(
        "UPDATE pending_transactions p SET proposed_line_id = u.line, updated_at = now()
         FROM UNNEST($1::bigint[], $2::bigint[]) AS u(pid, line)
         WHERE p.id = u.pid AND p.posted_line_id IS NULL",
        &pids,
        &lids
    )
    .execute(&mut **db)
    .await?;
    Ok(())
}

/// [`link_posted_pending`] for pending transactions `pids` and the new lines `lids` that
/// replace them, pair by pair.
pub(super) async fn link_pending(
    db: &mut sqlx::Transaction<'_, Postgres>,
    pids: Vec<i64>,
    lids: Vec<i64>,
    run_id: Uuid,
) -> Result<()> {
    if pids.is_empty() {
        return Ok(());
    }
    let linked: HashSet<i64> = sqlx::query!(
        r#"WITH linked AS (
             UPDATE pending_transactions p SET state = 'posted', posted_line_id = u.line, resolved_at = now(), updated_at = now()
             FROM UNNEST($1::bigint[], $2::bigint[]) AS u(pid, line)
             WHERE p.id = u.pid AND p.posted_line_id IS NULL
             RETURNING p.id, p.company_id, p.posted_line_id, p.saltedge_transaction_id),
           events AS (
             INSERT INTO line_events (company_id, line_id, sync_run_id, kind, detail)
             SELECT company_id, posted_line_id, $3, 'posted_from_pending',
                    jsonb_build_object('pending_transaction_id', id, 'pending_saltedge_id', saltedge_transaction_id)
             FROM linked)
         SELECT posted_line_id AS "line!" FROM linked"#,
        &pids,
        &lids,
        run_id
    )
    .fetch_all(&mut **db)
    .await?
    .into_iter()
    .map(|r| r.line)
    .collect();
    let unlinked: Vec<i64> = lids.into_iter().filter(|l| !linked.contains(l)).collect();
    if !unlinked.is_empty() {
        tracing::warn!(lines = ?unlinked, "pending transaction already consumed; the posted line stands alone");
        sqlx::query!(
            "UPDATE statement_lines SET pending_transaction_id = NULL WHERE id = ANY($1)",
            &unlinked
        )
        .execute(&mut **db)
        .await?;
    }
    Ok(())
}

/// Writes a page of Salt Edge's pending list to `pending_transactions`: new ones are added,
/// changed ones updated, an expired one listed again is open again. Returns how many
/// records it wrote.
pub(super) async fn write_pending(
    db: &mut sqlx::Transaction<'_, Postgres>,
    rows: &[Row],
    run_id: Uuid,
) -> Result<i32> {
    if rows.is_empty() {
        return Ok(0);
    }
    let journal: Vec<Uuid> = rows.iter().map(|r| r.journal_id).collect();
    let account: Vec<Uuid> = rows.iter().map(|r| r.bank_account_id).collect();
    let se_id: Vec<&str> = rows.iter().map(|r| r.saltedge_id.as_str()).collect();
    let booking: Vec<NaiveDate> = rows.iter().map(|r| r.booking_date).collect();
    let value: Vec<Option<NaiveDate>> = rows.iter().map(|r| r.value_date).collect();
    let amount: Vec<Decimal> = rows.iter().map(|r| r.amount).collect();
    let currency: Vec<&str> = rows.iter().map(|r| r.currency.as_str()).collect();
    let description: Vec<&str> = rows.iter().map(|r| r.description.as_str()).collect();
    let payee: Vec<Option<&str>> = rows.iter().map(|r| r.payee.as_deref()).collect();
    let extra: Vec<&str> = rows.iter().map(|r| &*r.extra).collect();
    let hash: Vec<&str> = rows.iter().map(|r| r.content_hash.as_str()).collect();
    let repaired: Vec<bool> = rows.iter().map(|r| r.text_repaired).collect();
    Ok(sqlx::query!(
        "INSERT INTO pending_transactions AS p (company_id, journal_id, bank_account_id, saltedge_transaction_id, booking_date,
             value_date, amount, currency, description, payee, extra, content_hash, text_repaired, sync_run_id)
         SELECT (SELECT r.company_id FROM sync_runs r WHERE r.id = $13), u.journal_id, u.bank_account_id,
                u.saltedge_transaction_id, u.booking_date, u.value_date, u.amount, u.currency, u.description, u.payee,
                u.extra::jsonb, u.content_hash, u.text_repaired, $13
         FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::date[], $5::date[], $6::numeric[], $7::text[], $8::text[],
                     $9::text[], $10::text[], $11::text[], $12::bool[])
              AS u(journal_id, bank_account_id, saltedge_transaction_id, booking_date, value_date, amount, currency,
                   description, payee, extra, content_hash, text_repaired)
         ON CONFLICT (bank_account_id, saltedge_transaction_id) DO UPDATE SET
             booking_date = EXCLUDED.booking_date, value_date = EXCLUDED.value_date, amount = EXCLUDED.amount,
             currency = EXCLUDED.currency, description = EXCLUDED.description, payee = EXCLUDED.payee,
             extra = EXCLUDED.extra, content_hash = EXCLUDED.content_hash, text_repaired = EXCLUDED.text_repaired,
             sync_run_id = EXCLUDED.sync_run_id, state = 'pending', resolved_at = NULL, updated_at = now()
         WHERE p.posted_line_id IS NULL
           AND (p.content_hash IS DISTINCT FROM EXCLUDED.content_hash OR p.state = 'expired')",
        &journal,
        &account,
        &se_id as &[&str],
        &booking,
        &value as &[Option<NaiveDate>],
        &amount,
        &currency as &[&str],
        &description as &[&str],
        &payee as &[Option<&str>],
        &extra as &[&str],
        &hash as &[&str],
        &repaired,
        run_id
    )
    .execute(&mut **db)
    .await?
    .rows_affected() as i32)
}

/// Rule 3: the connection's pending transactions that Salt Edge no longer lists expire.
/// Returns how many did.
pub async fn expire_vanished_pending(
    pool: &PgPool,
    connection_id: Uuid,
    still_pending: &[String],
) -> Result<i32> {
    Ok(sqlx::query!(
        "UPDATE pending_transactions p SET state = 'expired', resolved_at = now(), updated_at = now()
         FROM bank_accounts a
         WHERE p.bank_account_id = a.id AND a.connection_id = $1 AND p.state = 'pending'
           AND NOT (p.saltedge_transaction_id = ANY($2))",
        connection_id,
        still_pending
    )
    .execute(pool)
    .await?
    .rows_affected() as i32)
}
