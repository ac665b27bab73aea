//! Re-issued and removed transactions: re-keying, `gone_at_bank`, possible re-issues (rule 8).

use std::collections::HashSet;

use sqlx::PgPool;
use sqlx::Postgres;
use uuid::Uuid;

use super::{canonical_number, SeenIds};
use crate::error::Result;

/// Rule 8: after a complete posted listing that started at `from_id` (`None`: the whole
/// history) and held the ids in `seen`, every posted line of the connection whose id the
/// listing covered but did not hold is gone at Salt Edge. Where a line flagged as its
/// look-alike came in that listing, the bank re-issued the transaction: the old line takes
/// the new id and content (its line id stays), the new line is removed. Returns how many
/// lines were re-keyed. Lines a bookkeeper confirmed as duplicates are not "gone": Salt Edge
/// lists them under `/transactions/duplicates`.
pub async fn rekey_reissued(
    pool: &PgPool,
    run_id: Uuid,
    connection_id: Uuid,
    from_id: Option<&str>,
    seen: &SeenIds,
) -> Result<i32> {
    let covered_from: Option<u64> = match from_id {
        Some(f) => match canonical_number(f) {
            Some(v) => Some(v),
            None => return Ok(0),
        },
        None => None,
    };
    // Flagged look-alikes the listing covers (a re-issue is in the listing, so at or above
    // its `from_id`: an incremental listing's few recent ones) and the earlier lines they
    // resemble. For each gone line the newest look-alike is
    // taken: a re-issue gets a newer id than a genuine twin seen before it (and any of them
    // carries the same date, amount, text and payee). With each pair: both bank ids, when
    // the old line's transaction was last listed, and when the new one was first stored.
    let pairs = sqlx::query!(
        r#"WITH n AS MATERIALIZED (
             SELECT n.id, n.bank_account_id, n.fingerprint, n.suspect_duplicate_of, n.saltedge_transaction_id,
                    n.bank_transaction_id, n.imported_at
             FROM statement_lines n JOIN bank_accounts a ON a.id = n.bank_account_id
             WHERE a.connection_id = $1 AND n.suspect_duplicate_of IS NOT NULL AND n.duplicate_confirmed_at IS NULL
               AND (length(n.saltedge_transaction_id), n.saltedge_transaction_id) >= (length($2), $2))
         SELECT l.id AS "old_line!", l.saltedge_transaction_id AS "old_id!", l.bank_transaction_id AS old_bank_id,
                ll.listed_at AS "old_listed_at?",
                n.id AS "new_line!", n.saltedge_transaction_id AS "new_id!", n.bank_transaction_id AS new_bank_id,
                n.imported_at AS new_imported_at
         FROM n CROSS JOIN LATERAL (
             SELECT o.id, o.saltedge_transaction_id, o.bank_transaction_id FROM statement_lines o
             WHERE o.bank_account_id = n.bank_account_id AND o.fingerprint = n.fingerprint AND o.id < n.id
               AND o.duplicate_confirmed_at IS NULL AND o.gone_at_bank_at IS NULL
             UNION
             SELECT o.id, o.saltedge_transaction_id, o.bank_transaction_id FROM statement_lines o
             WHERE o.id = n.suspect_duplicate_of AND o.id < n.id AND o.duplicate_confirmed_at IS NULL
               AND o.gone_at_bank_at IS NULL) l
         LEFT JOIN line_listings ll ON ll.line_id = l.id
         ORDER BY l.id, n.id DESC"#,
        connection_id,
        from_id.unwrap_or("")
    )
    .fetch_all(pool)
    .await?;
    // Covered: the listing started at or below the old id (a non-numeric id cannot be placed).
    let covered = |id: &str| match (covered_from, id.parse::<u64>()) {
        (None, _) => true,
        (Some(from), Ok(id)) => id >= from,
        (Some(_), Err(_)) => false,
    };
    // This complete listing, recorded for every line of these groups that it holds: a
    // fact the next listings decide by ("listed together").
    let mut listed: Vec<i64> = pairs
        .iter()
        .flat_map(|p| {
            [
                (p.old_line, p.old_id.as_str()),
                (p.new_line, p.new_id.as_str()),
            ]
        })
        .filter(|(_, id)| seen.contains(id))
        .map(|(line, _)| line)
        .collect();
    listed.sort_unstable();
    listed.dedup();
    record_listing(pool, run_id, &listed).await?;
    let mut used: HashSet<i64> = HashSet::new();
    let mut rekeyed = 0;
    for p in pairs {
        let (old_line, old_id, new_line, new_id) = (p.old_line, p.old_id, p.new_line, p.new_id);
        if used.contains(&old_line)
            || used.contains(&new_line)
            || seen.contains(&old_id)
            || !seen.contains(&new_id)
            || !covered(&old_id)
        {
            continue;
        }
        // Two transactions the bank tells apart by its own ids are two transactions.
        if let (Some(a), Some(b)) = (&p.old_bank_id, &p.new_bank_id) {
            if a != b {
                continue;
            }
        }
        // Listed together after the new one was first stored: genuine twins, whatever
        // happens to one of them later.
        if p.old_listed_at.is_some_and(|t| t >= p.new_imported_at) {
            continue;
        }
        used.insert(old_line);
        used.insert(new_line);
        let mut tx = pool.begin().await?;
        // The re-issue was taken for a pending transaction's posting when it arrived (rule 2
        // runs first): it is the old line's transaction, so that pending one did not post.
        sqlx::query!(
            "UPDATE pending_transactions SET state = 'expired', posted_line_id = NULL, updated_at = now()
             WHERE posted_line_id = $1",
            new_line
        )
        .execute(&mut *tx)
        .await?;
        let new = sqlx::query!(
            "DELETE FROM statement_lines WHERE id = $1
             RETURNING saltedge_transaction_id, booking_date, value_date, amount, description, payee, counterparty_iban,
                       extra, content_hash, text_repaired, bank_transaction_id",
            new_line
        )
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query!("UPDATE statement_lines SET saltedge_transaction_id = $2, booking_date = $3, value_date = $4, amount = $5,
                 description = $6, payee = $7, counterparty_iban = $8, bank_transaction_id = coalesce($9, bank_transaction_id),
                 extra = $10, content_hash = $11, text_repaired = $12, sync_run_id = $13, rekeyed_from = saltedge_transaction_id,
                 rekeyed_at = now(), updated_at = now()
             WHERE id = $1", old_line, new.saltedge_transaction_id, new.booking_date, new.value_date, new.amount, new.description,
             new.payee, new.counterparty_iban, new.bank_transaction_id, new.extra, new.content_hash, new.text_repaired, run_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "UPDATE statement_lines SET suspect_duplicate_of = $1 WHERE suspect_duplicate_of = $2",
            old_line,
            new_line
        )
        .execute(&mut *tx)
        .await?;
        crate::history::record(
            &mut *tx,
            old_line,
            Some(run_id),
            crate::history::EventKind::Rekeyed,
            serde_json::json!({ "from": old_id, "to": new_id, "reason": "reissued", "replaced_line": new_line }),
        )
        .await?;
        tx.commit().await?;
        tracing::info!(line = old_line, from = %old_id, to = %new_id, "re-keyed a re-issued transaction");
        rekeyed += 1;
    }
    Ok(rekeyed)
}

/// The bank's removals, after a complete listing (and after [`rekey_reissued`], so that a
/// re-issue is never taken for a removal): each line of the connection whose Salt Edge id
/// the listing covers (at or above its `from_id`) but does not hold is flagged
/// `gone_at_bank` (time, sync run; its history records it); a flagged line whose
/// transaction is listed again is cleared, recorded. Confirmed duplicates are not "gone".
/// Reads the lines the listing covers only: an incremental listing's few recent ones.
/// Returns how many lines were flagged.
pub async fn flag_gone_at_bank(
    pool: &PgPool,
    run_id: Uuid,
    connection_id: Uuid,
    from_id: Option<&str>,
    seen: &SeenIds,
) -> Result<i32> {
    let from = match from_id {
        Some(f) => match canonical_number(f) {
            Some(_) => Some(f),
            None => return Ok(0),
        },
        None => None,
    };
    let accounts: Vec<Uuid> = sqlx::query_scalar!(
        "SELECT id FROM bank_accounts WHERE connection_id = $1",
        connection_id
    )
    .fetch_all(pool)
    .await?;
    // Salt Edge ids are decimal numbers: in (length, text) order they are in number order.
    // Written as "same length and not smaller, or longer", each half is an index range
    // whose size the planner estimates from statistics (the unique key's for the first,
    // `statement_lines_numeric_id` for the second); as one row comparison it was estimated
    // at the whole account and scanned it (0.4 s a night over 1,000,000 lines). Two
    // statements, so that full and incremental listings keep plans of their own.
    let covered: Vec<Covered> = match from {
        Some(from) => sqlx::query_as!(
            Covered,
            r#"SELECT l.id AS "id!", l.saltedge_transaction_id AS "saltedge_transaction_id!", l.gone_at_bank_at IS NOT NULL AS "flagged!"
               FROM statement_lines l
               WHERE l.bank_account_id = ANY($1) AND l.duplicate_confirmed_at IS NULL
                 AND ((length(l.saltedge_transaction_id) = length($2) AND l.saltedge_transaction_id >= $2)
                      OR length(l.saltedge_transaction_id) > length($2))
               UNION
               SELECT l.id, l.saltedge_transaction_id, true
               FROM statement_lines l
               WHERE l.bank_account_id = ANY($1) AND l.gone_at_bank_at IS NOT NULL"#,
            &accounts,
            from
        )
        .fetch_all(pool)
        .await?,
        None => sqlx::query_as!(
            Covered,
            r#"SELECT l.id AS "id!", l.saltedge_transaction_id AS "saltedge_transaction_id!",
                      l.gone_at_bank_at IS NOT NULL AS "flagged!"
               FROM statement_lines l
               WHERE l.bank_account_id = ANY($1)
                 AND (l.duplicate_confirmed_at IS NULL OR l.gone_at_bank_at IS NOT NULL)"#,
            &accounts
        )
        .fetch_all(pool)
        .await?,
    };
    let covers = |id: &str| match (from.and_then(canonical_number), canonical_number(id)) {
        (None, _) => true,
        (Some(f), Some(n)) => n >= f,
        (Some(_), None) => false,
    };
    let (mut gone, mut back) = (vec![], vec![]);
    for l in covered {
        let listed = seen.contains(&l.saltedge_transaction_id);
        if !l.flagged && !listed && covers(&l.saltedge_transaction_id) {
            gone.push(l.id);
        } else if l.flagged && listed {
            back.push(l.id);
        }
    }
    if gone.is_empty() && back.is_empty() {
        return Ok(0);
    }
    let mut tx = pool.begin().await?;
    // One update and one history entry per line, gone or back.
    // The history entry first: a line that comes back records the bookkeeper's answer it
    // drops (a confirmed removal returns the line to the books).
    sqlx::query!(
        "INSERT INTO line_events (company_id, line_id, sync_run_id, kind, detail)
         SELECT company_id, id, $3, CASE WHEN id = ANY($1) THEN 'gone_at_bank' ELSE 'back_at_bank' END,
                jsonb_strip_nulls(jsonb_build_object('saltedge_transaction_id', saltedge_transaction_id,
                    'answer_dropped', CASE WHEN removal_confirmed_at IS NOT NULL THEN 'removal_confirmed'
                                           WHEN removal_kept_at IS NOT NULL THEN 'removal_kept' END))
         FROM statement_lines WHERE id = ANY($1) OR id = ANY($2)",
        &gone,
        &back,
        run_id
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "UPDATE statement_lines
         SET gone_at_bank_at = CASE WHEN id = ANY($1) THEN now() END,
             gone_at_bank_run_id = CASE WHEN id = ANY($1) THEN $3::uuid END,
             removal_confirmed_at = NULL, removal_kept_at = NULL
         WHERE id = ANY($1) OR id = ANY($2)",
        &gone,
        &back,
        run_id
    )
    .execute(&mut *tx)
    .await?;
    // A line that is back was no one's re-issue: undecided proposals against it stand down.
    sqlx::query!(
        "UPDATE statement_lines SET reissue_of = NULL, updated_at = now()
         WHERE reissue_of = ANY($1) AND reissue_dismissed_at IS NULL",
        &back
    )
    .execute(&mut *tx)
    .await?;
    let proposed = propose_reissues(&mut tx, run_id, &gone).await?;
    let company: Option<Uuid> = sqlx::query_scalar!(
        "SELECT company_id FROM connections WHERE id = $1",
        connection_id
    )
    .fetch_optional(&mut *tx)
    .await?;
    if let (Some(company), false) = (company, gone.is_empty()) {
        crate::webhooks::emit(
            &mut tx,
            company,
            Some(connection_id),
            "lines.flagged",
            &serde_json::json!({ "connection_id": connection_id, "sync_run_id": run_id,
                                 "reason": "gone_at_bank", "line_ids": gone }),
        )
        .await?;
    }
    if let (Some(company), false) = (company, proposed.is_empty()) {
        crate::webhooks::emit(
            &mut tx,
            company,
            Some(connection_id),
            "lines.flagged",
            &serde_json::json!({ "connection_id": connection_id, "sync_run_id": run_id,
                                 "reason": "possible_reissue", "line_ids": proposed }),
        )
        .await?;
    }
    sqlx::query!(
        "UPDATE sync_runs SET gone_at_bank = gone_at_bank + $2, possible_reissues = possible_reissues + $3 WHERE id = $1",
        run_id,
        gone.len() as i32,
        proposed.len() as i32
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(gone.len() as i32)
}

/// Days apart, at most, of a line that vanished and a possible re-issue of it.
pub(super) const REISSUE_DAYS: i32 = 3;

/// Possible re-issues with changed content (rule 8's other half): for each line this
/// listing found gone, a line of the same account and currency that the same run stored
/// new, without bank id, booked at most [`REISSUE_DAYS`] apart, with an amount of the same
/// sign that differs by at most 1.00 or 2 % of the old one (whichever is more), not a
/// look-alike (those are rule 8's), is flagged `reissue_of` the gone line — the closest in
/// amount, then date, each new line at most once. Nothing merges until the bookkeeper
/// says so. Returns the flagged lines.
pub(super) async fn propose_reissues(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    run_id: Uuid,
    gone: &[i64],
) -> Result<Vec<i64>> {
    if gone.is_empty() {
        return Ok(vec![]);
    }
    let pairs = sqlx::query!(
        r#"SELECT o.id AS "old!", n.id AS "new!"
           FROM statement_lines o
           JOIN statement_lines n ON n.bank_account_id = o.bank_account_id AND n.currency = o.currency
           WHERE o.id = ANY($1) AND n.sync_run_id = $2
             AND n.imported_at >= (SELECT started_at FROM sync_runs WHERE id = $2)
             AND n.id > o.id AND n.bank_transaction_id IS NULL AND n.reissue_of IS NULL
             AND n.suspect_duplicate_of IS NULL AND n.rekeyed_from IS NULL
             AND n.duplicate_confirmed_at IS NULL AND n.gone_at_bank_at IS NULL
             AND abs(n.booking_date - o.booking_date) <= $3
             AND sign(n.amount) = sign(o.amount)
             AND abs(n.amount - o.amount) <= greatest(1.00, abs(o.amount) * 0.02)
           ORDER BY abs(n.amount - o.amount), abs(n.booking_date - o.booking_date), o.id, n.id"#,
        gone,
        run_id,
        REISSUE_DAYS
    )
    .fetch_all(&mut **tx)
    .await?;
    let (mut olds, mut news) = (HashSet::new(), vec![]);
    let mut pick = vec![];
    for p in pairs {
        if olds.contains(&p.old) || news.contains(&p.new) {
            continue;
        }
        olds.insert(p.old);
        news.push(p.new);
        pick.push((p.new, p.old));
    }
    let (new, old): (Vec<i64>, Vec<i64>) = pick.into_iter().unzip();
    sqlx::query!(
        "UPDATE statement_lines l SET reissue_of = p.old, updated_at = now()
         FROM unnest($1::bigint[], $2::bigint[]) AS p(new, old) WHERE l.id = p.new",
        &new,
        &old
    )
    .execute(&mut **tx)
    .await?;
    sqlx::query!(
        "INSERT INTO line_events (company_id, line_id, sync_run_id, kind, detail)
         SELECT l.company_id, l.id, $3, 'possible_reissue', jsonb_build_object('reissue_of', p.old)
         FROM unnest($1::bigint[], $2::bigint[]) AS p(new, old) JOIN statement_lines l ON l.id = p.new",
        &new,
        &old,
        run_id
    )
    .execute(&mut **tx)
    .await?;
    Ok(new)
}

/// A line a complete listing covers, and whether it is flagged gone already.
pub(super) struct Covered {
    pub(super) id: i64,
    pub(super) saltedge_transaction_id: String,
    pub(super) flagged: bool,
}

/// Records that the complete listing of `run_id` held the transactions of `lines` (rule 8's
/// "listed together"): one row per line, in a table of its own so that no line changes.
pub(super) async fn record_listing(pool: &PgPool, run_id: Uuid, lines: &[i64]) -> Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    sqlx::query!(
        "INSERT INTO line_listings (line_id, company_id, sync_run_id, listed_at)
         SELECT l.id, l.company_id, $2, now() FROM statement_lines l WHERE l.id = ANY($1)
         ON CONFLICT (line_id) DO UPDATE SET sync_run_id = EXCLUDED.sync_run_id, listed_at = EXCLUDED.listed_at",
        lines,
        run_id
    )
    .execute(pool)
    .await?;
    Ok(())
}
