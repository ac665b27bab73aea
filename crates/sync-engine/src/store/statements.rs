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

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Datelike, Days, NaiveDate, Utc};
use rust_decimal::Decimal;
use sqlx::{PgPool, Postgres};
use uuid::Uuid;

use crate::error::{Result, SyncError};

/// How a bank account's lines are grouped into statements: `daily`, `weekly` (Monday to
/// Sunday) or `monthly`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
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

/// Where a new line of an account goes: the period start of its statement.
#[derive(Debug, Clone)]
struct AccountPlan {
    period: Period,
    /// The last day of the account's newest closed statement.
    closed_through: Option<NaiveDate>,
    /// The start of the account's newest open statement.
    open_from: Option<NaiveDate>,
}

impl AccountPlan {
    /// Never a period that overlaps a closed statement: after a change of period the first
    /// new statement starts the day after the last closed one (a short first week or month).
    fn target(&self, booking: NaiveDate, today: NaiveDate) -> NaiveDate {
        match self.closed_through {
            Some(c) if booking <= c => {
                let d = today.max(c + Days::new(1));
                self.period.start(d).max(c + Days::new(1))
            }
            Some(c) => self.period.start(booking).max(c + Days::new(1)),
            None => self.period.start(booking),
        }
    }
}

/// Assigns each (account, booking date) its statement, creating the statements that do not
/// exist yet, and marks the account's open statements from there on as changed (their
/// balances moved). Returns the statement id for each input, in order.
pub async fn assign(
    db: &mut sqlx::Transaction<'_, Postgres>,
    lines: &[(Uuid, NaiveDate)],
) -> Result<Vec<i64>> {
    if lines.is_empty() {
        return Ok(vec![]);
    }
    let (plans, targets, distinct) = plan(db, lines).await?;
    let ids = insert(db, &plans, &distinct).await?;
    // Later open statements' opening balances moved with these: they changed too. (A first
    // import goes forward in time: usually there are none, and no query.)
    let later: Vec<(Uuid, NaiveDate)> = distinct
        .iter()
        .filter(|(a, start)| {
            plans
                .get(a)
                .and_then(|p| p.open_from)
                .is_some_and(|o| o > *start)
        })
        .copied()
        .collect();
    if !later.is_empty() {
        touch_later(db, &distinct).await?;
    }
    by_target(&targets, &ids)
}

/// What [`assign_ahead`] leaves to do once the sync's earlier writes have committed: the
/// statements it found among them (changed again: they get lines) and, where lines went
/// into an earlier period than some open statement's, those later statements.
#[derive(Debug, Default)]
pub struct Touch {
    ids: Vec<i64>,
    later_from: Vec<(Uuid, NaiveDate)>,
}

/// [`assign`] for a write that runs while the sync's previous write may still be open:
/// statements this sync created or touched before (`known`: (account, period start) → id)
/// are not written now — that would wait for the previous write to commit —, and the
/// returned [`Touch`] marks them changed once it has ([`touch`]). `known` learns the
/// statements created here.
pub async fn assign_ahead(
    db: &mut sqlx::Transaction<'_, Postgres>,
    lines: &[(Uuid, NaiveDate)],
    known: &mut HashMap<(Uuid, NaiveDate), i64>,
) -> Result<(Vec<i64>, Touch)> {
    if lines.is_empty() {
        return Ok((vec![], Touch::default()));
    }
    let (plans, targets, distinct) = plan(db, lines).await?;
    let (seen, new): (Vec<Target>, Vec<Target>) =
        distinct.iter().partition(|t| known.contains_key(t));
    let mut newest: HashMap<Uuid, NaiveDate> = HashMap::new();
    for (a, start) in known.keys() {
        let n = newest.entry(*a).or_insert(*start);
        *n = (*n).max(*start);
    }
    let later = distinct.iter().any(|(a, start)| {
        let open = plans.get(a).and_then(|p| p.open_from);
        open.is_some_and(|o| o > *start) || newest.get(a).is_some_and(|n| n > start)
    });
    let created = insert(db, &plans, &new).await?;
    let touch = Touch {
        ids: seen.iter().filter_map(|t| known.get(t).copied()).collect(),
        later_from: if later { distinct.clone() } else { vec![] },
    };
    known.extend(created);
    Ok((by_target(&targets, known)?, touch))
}

/// Marks what [`assign_ahead`] left as changed.
pub async fn touch(db: &mut sqlx::Transaction<'_, Postgres>, t: &Touch) -> Result<()> {
    if !t.ids.is_empty() {
        sqlx::query!(
            "UPDATE statements SET updated_at = now() WHERE id = ANY($1)",
            &t.ids
        )
        .execute(&mut **db)
        .await?;
    }
    if !t.later_from.is_empty() {
        touch_later(db, &t.later_from).await?;
    }
    Ok(())
}

/// Where a line goes: its account and its statement's period start.
type Target = (Uuid, NaiveDate);

/// The accounts' plans, each line's target (account, period start), and the distinct ones.
async fn plan(
    db: &mut sqlx::Transaction<'_, Postgres>,
    lines: &[(Uuid, NaiveDate)],
) -> Result<(HashMap<Uuid, AccountPlan>, Vec<Target>, Vec<Target>)> {
    let accounts: Vec<Uuid> = lines
        .iter()
        .map(|l| l.0)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let plans: HashMap<Uuid, AccountPlan> = sqlx::query!(
        "SELECT a.id, a.statement_period,
                (SELECT max(s.period_end) FROM statements s WHERE s.bank_account_id = a.id AND s.closed_at IS NOT NULL) AS closed_through,
                (SELECT max(s.period_start) FROM statements s WHERE s.bank_account_id = a.id AND s.closed_at IS NULL) AS open_from
         FROM bank_accounts a WHERE a.id = ANY($1)",
        &accounts
    )
    .fetch_all(&mut **db)
    .await?
    .into_iter()
    .map(|r| {
        (
            r.id,
            AccountPlan {
                period: Period::parse(&r.statement_period).unwrap_or(Period::Daily),
                closed_through: r.closed_through,
                open_from: r.open_from,
            },
        )
    })
    .collect();
    let today = Utc::now().date_naive();
    let targets: Vec<(Uuid, NaiveDate)> = lines
        .iter()
        .map(|(a, d)| {
            let plan = plans.get(a).cloned().unwrap_or(AccountPlan {
                period: Period::Daily,
                closed_through: None,
                open_from: None,
            });
            (*a, plan.target(*d, today))
        })
        .collect();
    let distinct: Vec<(Uuid, NaiveDate)> = targets
        .iter()
        .copied()
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    Ok((plans, targets, distinct))
}

/// Creates the statements `distinct` names that do not exist yet (and marks the others as
/// changed); returns every one's id.
async fn insert(
    db: &mut sqlx::Transaction<'_, Postgres>,
    plans: &HashMap<Uuid, AccountPlan>,
    distinct: &[(Uuid, NaiveDate)],
) -> Result<HashMap<(Uuid, NaiveDate), i64>> {
    if distinct.is_empty() {
        return Ok(HashMap::new());
    }
    let acc: Vec<Uuid> = distinct.iter().map(|t| t.0).collect();
    let start: Vec<NaiveDate> = distinct.iter().map(|t| t.1).collect();
    let period: Vec<&str> = distinct
        .iter()
        .map(|t| plans.get(&t.0).map_or("daily", |p| p.period.as_str()))
        .collect();
    let end: Vec<NaiveDate> = distinct
        .iter()
        .map(|t| plans.get(&t.0).map_or(Period::Daily, |p| p.period).end(t.1))
        .collect();
    Ok(sqlx::query!(
        "INSERT INTO statements (company_id, bank_account_id, journal_id, period, period_start, period_end)
         SELECT a.company_id, a.id, a.journal_id, u.period, u.period_start, u.period_end
         FROM UNNEST($1::uuid[], $2::date[], $3::text[], $4::date[]) AS u(account, period_start, period, period_end)
         JOIN bank_accounts a ON a.id = u.account
         ON CONFLICT (bank_account_id, period_start) DO UPDATE SET updated_at = now()
         RETURNING id, bank_account_id, period_start",
        &acc,
        &start,
        &period as &[&str],
        &end
    )
    .fetch_all(&mut **db)
    .await?
    .into_iter()
    .map(|r| ((r.bank_account_id, r.period_start), r.id))
    .collect())
}

/// Marks each account's open statements after the earliest of `from` (account, period
/// start) as changed: their opening balances moved.
async fn touch_later(
    db: &mut sqlx::Transaction<'_, Postgres>,
    from: &[(Uuid, NaiveDate)],
) -> Result<()> {
    let acc: Vec<Uuid> = from.iter().map(|t| t.0).collect();
    let start: Vec<NaiveDate> = from.iter().map(|t| t.1).collect();
    sqlx::query!(
        "UPDATE statements s SET updated_at = now()
         FROM (SELECT u.account, min(u.period_start) AS from_start
               FROM UNNEST($1::uuid[], $2::date[]) AS u(account, period_start) GROUP BY u.account) f
         WHERE s.bank_account_id = f.account AND s.closed_at IS NULL AND s.period_start > f.from_start",
        &acc,
        &start
    )
    .execute(&mut **db)
    .await?;
    Ok(())
}

/// Each target's statement id.
fn by_target(
    targets: &[(Uuid, NaiveDate)],
    ids: &HashMap<(Uuid, NaiveDate), i64>,
) -> Result<Vec<i64>> {
    targets
        .iter()
        .map(|t| {
            ids.get(t).copied().ok_or_else(|| {
                SyncError::Corrupt(format!("no statement for account {} from {}", t.0, t.1))
            })
        })
        .collect()
}

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
    statements: HashMap<i64, Sums>,
    accounts: HashMap<Uuid, Sums>,
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
    fn new(lines: i64, total: Decimal, negative: Decimal) -> Sums {
        Sums {
            lines,
            total,
            negative,
        }
    }

    fn add(&mut self, o: &Sums) {
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

    fn statement(&self, id: i64) -> Sums {
        self.statements.get(&id).copied().unwrap_or_default()
    }
}

/// A statement whose period ended, locked for closing.
#[derive(Debug)]
pub struct Due {
    id: i64,
    bank_account_id: Uuid,
    corrections: Decimal,
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

/// A statement as the API shows it. Open statements' figures are computed from their lines
/// now; closed ones' are fixed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Statement {
    pub id: i64,
    pub bank_account_id: Uuid,
    pub journal_id: Uuid,
    pub currency: String,
    pub period: String,
    pub period_start: NaiveDate,
    pub period_end: NaiveDate,
    pub sequence: Option<i32>,
    pub closed_at: Option<DateTime<Utc>>,
    pub line_count: i64,
    pub opening_balance: Decimal,
    pub closing_balance: Decimal,
    pub corrections: Decimal,
    pub bank_balance: Option<Decimal>,
    pub bank_balance_at: Option<DateTime<Utc>>,
    pub balance_basis: Option<String>,
    pub balance_difference: Option<Decimal>,
}

impl Statement {
    /// `closed` once numbered and fixed, `open` before.
    pub fn state(&self) -> crate::store::status::StatementState {
        match self.closed_at {
            Some(_) => crate::store::status::StatementState::Closed,
            None => crate::store::status::StatementState::Open,
        }
    }
}

/// Which statements a page holds: one account's, one journal's, or some by id.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    Account(Uuid),
    Journal(Uuid),
    Ids(&'a [i64]),
}

/// Up to `limit` statements of `company` in `scope`, by period and id after `after`.
pub async fn page(
    pool: &PgPool,
    company: Uuid,
    scope: Scope<'_>,
    after: Option<(NaiveDate, i64)>,
    limit: i64,
) -> Result<Vec<Statement>> {
    let (account, journal, ids) = match scope {
        Scope::Account(a) => (Some(a), None, None),
        Scope::Journal(j) => (None, Some(j), None),
        Scope::Ids(i) => (None, None, Some(i)),
    };
    // Open statements: the account's last closing (or its opening basis) plus the movement
    // of every open statement up to this one.
    Ok(sqlx::query_as!(
        Statement,
        r#"WITH base AS (
             SELECT s.*, a.currency,
                    coalesce(t.n, 0) AS live_n, coalesce(t.total, 0) + s.corrections AS live_movement,
                    CASE WHEN a.balance_check = 'booked' THEN coalesce(a.opening_balance, 0) ELSE 0 END AS account_opening
             FROM statements s JOIN bank_accounts a ON a.id = s.bank_account_id
             LEFT JOIN LATERAL (SELECT count(*) AS n, sum(l.amount) FILTER (WHERE l.duplicate_confirmed_at IS NULL AND l.removal_confirmed_at IS NULL) AS total
                                FROM statement_lines l WHERE l.statement_id = s.id AND s.closed_at IS NULL) t ON true
             WHERE s.company_id = $1
               AND s.bank_account_id IN (SELECT x.bank_account_id FROM statements x WHERE x.company_id = $1
                    AND ($2::uuid IS NULL OR x.bank_account_id = $2) AND ($3::uuid IS NULL OR x.journal_id = $3)
                    AND ($4::bigint[] IS NULL OR x.id = ANY($4)))),
           chained AS (
             SELECT b.*,
                    coalesce((SELECT c.closing_balance FROM statements c WHERE c.bank_account_id = b.bank_account_id
                                AND c.closed_at IS NOT NULL ORDER BY c.sequence DESC LIMIT 1), b.account_opening)
                    + sum(CASE WHEN b.closed_at IS NULL THEN b.live_movement ELSE 0 END)
                        OVER (PARTITION BY b.bank_account_id ORDER BY b.period_start) AS open_closing
             FROM base b)
         SELECT id AS "id!", bank_account_id AS "bank_account_id!", journal_id AS "journal_id!", currency AS "currency!",
                period AS "period!", period_start AS "period_start!", period_end AS "period_end!", sequence, closed_at,
                coalesce(line_count::bigint, live_n) AS "line_count!",
                coalesce(opening_balance, open_closing - live_movement) AS "opening_balance!",
                coalesce(closing_balance, open_closing) AS "closing_balance!",
                corrections AS "corrections!", bank_balance, bank_balance_at, balance_basis, balance_difference
         FROM chained
         WHERE ($2::uuid IS NULL OR bank_account_id = $2) AND ($3::uuid IS NULL OR journal_id = $3)
           AND ($4::bigint[] IS NULL OR id = ANY($4))
           AND ($5::date IS NULL OR (period_start, id) > ($5, $6))
         ORDER BY period_start, id
         LIMIT $7"#,
        company,
        account,
        journal,
        ids,
        after.map(|a| a.0),
        after.map(|a| a.1).unwrap_or(0),
        limit
    )
    .fetch_all(pool)
    .await?)
}

/// One statement of `company`.
pub async fn get(pool: &PgPool, company: Uuid, id: i64) -> Result<Statement> {
    page(pool, company, Scope::Ids(&[id]), None, 1)
        .await?
        .pop()
        .ok_or(SyncError::not_found("statement"))
}

/// The lines of statement `id`, by booking date.
pub async fn line_ids(pool: &PgPool, company: Uuid, id: i64) -> Result<Vec<i64>> {
    Ok(sqlx::query_scalar!(
        "SELECT id FROM statement_lines WHERE company_id = $1 AND statement_id = $2 ORDER BY booking_date, id",
        company,
        id
    )
    .fetch_all(pool)
    .await?)
}

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
