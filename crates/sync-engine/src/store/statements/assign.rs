//! Assignment, the sync's write path: each new line into its account's statement for its period (or the current one when that period has closed), set-based per page.

use std::collections::HashMap;
use std::collections::HashSet;

use chrono::Days;
use chrono::NaiveDate;
use chrono::Utc;
use sqlx::Postgres;
use uuid::Uuid;

use super::{Period, Target};
use crate::error::Result;
use crate::error::SyncError;

/// Where a new line of an account goes: the period start of its statement.
#[derive(Debug, Clone)]
pub(super) struct AccountPlan {
    pub(super) period: Period,
    /// The last day of the account's newest closed statement.
    pub(super) closed_through: Option<NaiveDate>,
    /// The start of the account's newest open statement.
    pub(super) open_from: Option<NaiveDate>,
}

impl AccountPlan {
    /// Never a period that overlaps a closed statement: after a change of period the first
    /// new statement starts the day after the last closed one (a short first week or month).
    pub(super) fn target(&self, booking: NaiveDate, today: NaiveDate) -> NaiveDate {
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
    pub(super) ids: Vec<i64>,
    pub(super) later_from: Vec<(Uuid, NaiveDate)>,
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

/// The accounts' plans, each line's target (account, period start), and the distinct ones.
pub(super) async fn plan(
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
pub(super) async fn insert(
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
pub(super) async fn touch_later(
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
pub(super) fn by_target(
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
