//! Closing at the end of a sync: ended periods close in order, numbered, with balances that chain.

use std::collections::HashMap;

use chrono::DateTime;
use chrono::Utc;
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::error::Result;

/// The sums of the connection's lines, once for the balance check and the closing of
/// statements at the end of a sync: per account, and per statement for those that close.
///
/// An account's sums are kept from one sync to the next (table `line_sums`, with the
/// snapshot they were counted in) and reused while none of its lines changed; otherwise the
/// lines are summed per (account, statement) in one pass (a per-statement look-up took 100
/// ms of a first import of 100,000; the pass 65 ms, which a re-sync of unchanged history
/// now skips).
#[derive(Debug, Default)]
pub struct LineSums {
    pub(super) statements: HashMap<i64, Sums>,
    pub(super) accounts: HashMap<Uuid, Sums>,
    /// Whether the accounts' sums were the kept ones (extended by lines stored since).
    pub reused: bool,
    /// Lines stored since the kept sums were counted, added to them.
    pub added: i64,
}

/// Lines counted, and the amounts of those not confirmed as duplicates: all, negative.
#[derive(Debug, Default, Clone, Copy)]
pub struct Sums {
    pub lines: i64,
    pub total: Decimal,
    pub negative: Decimal,
}

impl Sums {
    pub(super) fn new(lines: i64, total: Decimal, negative: Decimal) -> Sums {
        Sums {
            lines,
            total,
            negative,
        }
    }

    pub(super) fn add(&mut self, o: &Sums) {
        self.lines += o.lines;
        self.total += o.total;
        self.negative += o.negative;
    }
}

impl LineSums {
    /// Sums the connection's lines, or reuses the sums kept by the previous check, and keeps
    /// them for the next. `due` (from [`lock_ended`], taken first) are the statements whose
    /// sums the close needs.
    ///
    /// Why reuse is exact: the kept sums counted the lines visible in snapshot `as_of`. A
    /// line inserted or changed since carries, in `change_xid`, a transaction invisible in
    /// `as_of` (every insert sets it, every update that changes anything bumps it); a line
    /// removed since leaves a tombstone with such a transaction, unless the tombstone was
    /// pruned, which the change feed's horizon tells. A line whose first store
    /// (`created_xid`) is invisible in `as_of` was not counted: its amount is added as it
    /// is now. Any other line changed since (it was counted, with amounts no longer known),
    /// a tombstone or a pruning since: the account's lines are summed anew. The snapshot
    /// kept is the one this check read in (or, when it sums anew, the one before the sum: a
    /// change that commits in between is then seen as a change next time, never missed).
    /// Lines never move between accounts. A night's new lines thus cost what they are, not
    /// what the history is.
    pub async fn load(
        db: &mut sqlx::PgConnection,
        connection_id: Uuid,
        due: &[Due],
    ) -> Result<LineSums> {
        // One range of `statement_lines_changes` per account: the lines changed since the
        // kept sums were counted, split into those stored since (added to the sums) and those
        // that were counted (any of them: sum anew). (As a NOT EXISTS beside it, the planner
        // chose a scan of every line of the company: 0.5 s over 1,000,000.)
        let kept = sqlx::query!(
            r#"SELECT a.id, c.lines AS "lines?", c.total AS "total?", c.negative AS "negative?",
                      pg_current_snapshot()::text AS "now!",
                      (c.bank_account_id IS NOT NULL
                       AND pg_snapshot_xmin(c.as_of)::text::bigint > (SELECT pruned_xid FROM change_feed_horizon)
                       AND coalesce(n.counted_changed, 0) = 0
                       AND NOT EXISTS (SELECT 1 FROM removed_lines r
                            WHERE r.company_id = a.company_id
                              AND r.change_xid >= pg_snapshot_xmin(c.as_of)::text::bigint
                              AND NOT pg_visible_in_snapshot(r.change_xid::text::xid8, c.as_of))) AS "extendable!",
                      coalesce(n.lines, 0) AS "added_lines!", coalesce(n.total, 0) AS "added_total!",
                      coalesce(n.negative, 0) AS "added_negative!"
               FROM bank_accounts a LEFT JOIN line_sums c ON c.bank_account_id = a.id
               LEFT JOIN LATERAL (
                   SELECT count(*) FILTER (WHERE ch.new) AS lines,
                          count(*) FILTER (WHERE NOT ch.new) AS counted_changed,
                          sum(ch.amount) FILTER (WHERE ch.new AND ch.in_books) AS total,
                          sum(ch.amount) FILTER (WHERE ch.new AND ch.in_books AND ch.amount < 0) AS negative
                   FROM (SELECT l.amount,
                                l.duplicate_confirmed_at IS NULL AND l.removal_confirmed_at IS NULL AS in_books,
                                (l.created_xid IS NOT NULL
                                 AND NOT pg_visible_in_snapshot(l.created_xid::text::xid8, c.as_of)) AS new
                         FROM statement_lines l
                         WHERE l.company_id = a.company_id AND l.bank_account_id = a.id
                           AND l.change_xid >= pg_snapshot_xmin(c.as_of)::text::bigint
                           AND NOT pg_visible_in_snapshot(l.change_xid::text::xid8, c.as_of)) ch
               ) n ON c.bank_account_id IS NOT NULL
               WHERE a.connection_id = $1"#,
            connection_id
        )
        .fetch_all(&mut *db)
        .await?;
        let Some(now) = kept.first().map(|k| k.now.clone()) else {
            return Ok(LineSums::default());
        };
        let mut out = LineSums::default();
        if kept.iter().all(|k| k.extendable) {
            out.reused = true;
            for k in &kept {
                let mut sums = Sums::new(
                    k.lines.unwrap_or_default(),
                    k.total.unwrap_or_default(),
                    k.negative.unwrap_or_default(),
                );
                sums.add(&Sums::new(k.added_lines, k.added_total, k.added_negative));
                out.added += k.added_lines;
                out.accounts.insert(k.id, sums);
            }
            if !due.is_empty() {
                let ids: Vec<i64> = due.iter().map(|d| d.id).collect();
                let rows = sqlx::query!(
                    r#"SELECT l.statement_id AS "statement!", count(*) AS "lines!",
                              coalesce(sum(l.amount) FILTER (WHERE l.duplicate_confirmed_at IS NULL AND l.removal_confirmed_at IS NULL), 0) AS "total!",
                              coalesce(sum(l.amount) FILTER (WHERE l.duplicate_confirmed_at IS NULL AND l.removal_confirmed_at IS NULL AND l.amount < 0), 0) AS "negative!"
                       FROM statement_lines l WHERE l.statement_id = ANY($1)
                       GROUP BY l.statement_id"#,
                    &ids
                )
                .fetch_all(&mut *db)
                .await?;
                for r in rows {
                    let sums = Sums::new(r.lines, r.total, r.negative);
                    out.statements.insert(r.statement, sums);
                }
            }
        } else {
            // No join in the query: on a freshly filled table the planner's estimates are
            // far off, and a join of the sums with the statements was planned as a nested
            // loop.
            let rows = sqlx::query!(
                r#"SELECT l.bank_account_id AS "account!", l.statement_id, count(*) AS "lines!",
                          coalesce(sum(l.amount) FILTER (WHERE l.duplicate_confirmed_at IS NULL AND l.removal_confirmed_at IS NULL), 0) AS "total!",
                          coalesce(sum(l.amount) FILTER (WHERE l.duplicate_confirmed_at IS NULL AND l.removal_confirmed_at IS NULL AND l.amount < 0), 0) AS "negative!"
                   FROM statement_lines l
                   WHERE l.bank_account_id = ANY(ARRAY(SELECT id FROM bank_accounts WHERE connection_id = $1))
                   GROUP BY l.bank_account_id, l.statement_id"#,
                connection_id
            )
            .fetch_all(&mut *db)
            .await?;
            for r in rows {
                let sums = Sums::new(r.lines, r.total, r.negative);
                out.accounts.entry(r.account).or_default().add(&sums);
                if let Some(id) = r.statement_id {
                    out.statements.entry(id).or_default().add(&sums);
                }
            }
        }
        let ids: Vec<Uuid> = kept.iter().map(|k| k.id).collect();
        let sums: Vec<Sums> = ids.iter().map(|id| out.account(*id)).collect();
        sqlx::query!(
            "INSERT INTO line_sums (bank_account_id, as_of, lines, total, negative)
             SELECT u.id, $2::text::pg_snapshot, u.lines, u.total, u.negative
             FROM UNNEST($1::uuid[], $3::int8[], $4::numeric[], $5::numeric[]) AS u(id, lines, total, negative)
             ON CONFLICT (bank_account_id) DO UPDATE
                 SET as_of = EXCLUDED.as_of, lines = EXCLUDED.lines, total = EXCLUDED.total, negative = EXCLUDED.negative",
            &ids,
            now,
            &sums.iter().map(|s| s.lines).collect::<Vec<_>>(),
            &sums.iter().map(|s| s.total).collect::<Vec<_>>(),
            &sums.iter().map(|s| s.negative).collect::<Vec<_>>()
        )
        .execute(&mut *db)
        .await?;
        Ok(out)
    }

    pub fn account(&self, id: Uuid) -> Sums {
        self.accounts.get(&id).copied().unwrap_or_default()
    }

    pub(super) fn statement(&self, id: i64) -> Sums {
        self.statements.get(&id).copied().unwrap_or_default()
    }
}

/// A statement whose period ended, locked for closing.
#[derive(Debug)]
pub struct Due {
    pub(super) id: i64,
    pub(super) bank_account_id: Uuid,
    pub(super) corrections: Decimal,
}

/// Locks the connection's open statements whose period ended before `sync_started` (the sync
/// that just completed saw all of it), before their lines are summed: a line changed by
/// another transaction meanwhile is either in the sums (that transaction committed first)
/// or, once they are closed, carried as a correction (`carry_correction` waits for this
/// lock).
pub async fn lock_ended(
    db: &mut sqlx::PgConnection,
    connection_id: Uuid,
    sync_started: DateTime<Utc>,
) -> Result<Vec<Due>> {
    Ok(sqlx::query_as!(
        Due,
        "SELECT s.id, s.bank_account_id, s.corrections FROM statements s
         WHERE s.bank_account_id = ANY(ARRAY(SELECT id FROM bank_accounts WHERE connection_id = $1))
           AND s.closed_at IS NULL AND s.period_end < $2::date
         ORDER BY s.bank_account_id, s.period_start
         FOR UPDATE",
        connection_id,
        sync_started.date_naive()
    )
    .fetch_all(&mut *db)
    .await?)
}

/// Closes the statements [`lock_ended`] locked, in period order per account; each gets the
/// next number, its line count and balances are fixed (opening = the previous closing; the
/// first opening is the account's opening balance where its basis is `booked`, else zero);
/// and records the balance check (made by [`crate::balance::check`] just before, in the same
/// transaction) on each account's newest statement.
pub async fn close_ended(
    db: &mut sqlx::PgConnection,
    connection_id: Uuid,
    sync_started: DateTime<Utc>,
    due: Vec<Due>,
    sums: &LineSums,
) -> Result<()> {
    let accounts = sqlx::query!(
        "SELECT a.id, a.opening_balance, a.balance_check, a.balance_mismatch, a.bank_balance, a.bank_balance_at,
                p.sequence AS \"last_sequence?\", p.closing_balance AS \"last_closing?\"
         FROM bank_accounts a
         LEFT JOIN LATERAL (SELECT s.sequence, s.closing_balance FROM statements s
                            WHERE s.bank_account_id = a.id AND s.closed_at IS NOT NULL AND s.sequence IS NOT NULL
                            ORDER BY s.sequence DESC LIMIT 1) p ON true
         WHERE a.connection_id = $1",
        connection_id
    )
    .fetch_all(&mut *db)
    .await?;
    let mut last: HashMap<Uuid, (i32, Decimal)> = HashMap::new();
    for a in &accounts {
        let base = match a.balance_check.as_deref() {
            Some("booked") => a.opening_balance.unwrap_or_default(),
            _ => Decimal::ZERO,
        };
        last.insert(
            a.id,
            (a.last_sequence.unwrap_or(0), a.last_closing.unwrap_or(base)),
        );
    }
    // `due` is in period order per account: each statement continues the one before.
    let (mut ids, mut seqs, mut counts, mut openings, mut closings) =
        (vec![], vec![], vec![], vec![], vec![]);
    for d in due {
        let Some((seq, closing)) = last.get_mut(&d.bank_account_id) else {
            continue;
        };
        let lines = sums.statement(d.id);
        let opening = *closing;
        *seq += 1;
        *closing = opening + lines.total + d.corrections;
        ids.push(d.id);
        seqs.push(*seq);
        counts.push(lines.lines);
        openings.push(opening);
        closings.push(*closing);
    }
    if !ids.is_empty() {
        sqlx::query!(
            "UPDATE statements s SET closed_at = now(), sequence = u.seq, line_count = u.n,
                    opening_balance = u.opening, closing_balance = u.closing, updated_at = now()
             FROM UNNEST($1::int8[], $2::int4[], $3::int8[], $4::numeric[], $5::numeric[]) AS u(id, seq, n, opening, closing)
             WHERE s.id = u.id",
            &ids,
            &seqs,
            &counts,
            &openings,
            &closings
        )
        .execute(&mut *db)
        .await?;
    }
    for a in accounts {
        // The check, on the newest statement: its closing balance holds every line known. A
        // statement closed before this sync is never written again.
        let compared = matches!(
            a.balance_check.as_deref(),
            Some("booked" | "credit_card_spend")
        ) && a.bank_balance.is_some();
        let difference = compared.then(|| a.balance_mismatch.unwrap_or_default());
        let newest: Option<i64> = sqlx::query_scalar!(
            "SELECT id FROM statements WHERE bank_account_id = $1 ORDER BY period_start DESC LIMIT 1",
            a.id
        )
        .fetch_optional(&mut *db)
        .await?;
        if let Some(id) = newest {
            sqlx::query!(
                "UPDATE statements SET bank_balance = $2, bank_balance_at = $3, balance_basis = $4, balance_difference = $5
                 WHERE id = $1 AND (closed_at IS NULL OR closed_at >= $6)",
                id,
                a.bank_balance,
                a.bank_balance_at,
                a.balance_check,
                difference,
                sync_started
            )
            .execute(&mut *db)
            .await?;
        }
    }
    Ok(())
}
