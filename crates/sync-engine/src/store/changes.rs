//! The change feed: what changed in a company's books since a position, in an order in which
//! no change can be missed.
//!
//! Each statement line (and statement) carries `change_xid`, the id of the database
//! transaction that last changed it; removed lines leave a tombstone. A page lists rows by
//! (`change_xid`, kind, id) after the caller's position, and only rows whose transaction is
//! older than every transaction still running (the xmin of the reading statement's
//! snapshot). A transaction that got a lower id but commits later is therefore never
//! behind a position already handed out: its rows are held back until it has ended. A row
//! changed again moves to its new transaction's place, so each entry gives the row as it is
//! now; applying every page in order leaves a consumer with exactly the current rows.
//!
//! Positions are plain numbers from the database: they survive restarts and mean the same
//! on every replica. Tombstones older than the retention are pruned; the newest pruned
//! one's position is kept in `change_feed_horizon`, and a position before it is
//! [`Gone`](crate::SyncError::Gone).

use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

use crate::error::{Result, SyncError};
use crate::statement_lines::{self, Line};
use crate::statements::Statement;

/// Where a consumer stands: the last entry it applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    pub xid: i64,
    /// 0: line, 1: statement, 2: removed line, 3: removed statement.
    pub kind: i16,
    pub id: i64,
}

impl Position {
    /// `xid.kind.id`, as cursors carry it.
    pub fn encode(&self) -> String {
        format!("{}.{}.{}", self.xid, self.kind, self.id)
    }

    pub fn decode(s: &str) -> Option<Position> {
        let mut it = s.split('.');
        let p = Position {
            xid: it.next()?.parse().ok()?,
            kind: it.next()?.parse().ok()?,
            id: it.next()?.parse().ok()?,
        };
        it.next().is_none().then_some(p)
    }
}

/// What happened to an entry, as of now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// New since the position (never changed after it was first stored).
    Added,
    /// Changed since the position.
    Modified,
    /// Out of the books: deleted (a re-issued transaction folded into its old line) or
    /// confirmed as a duplicate.
    Removed,
}

crate::store::status::vocabulary_schema!(
    Op,
    "`added` (new since the cursor), `modified` (changed since) or `removed` (out of the",
    "books: folded into another line when the bank re-issued it, or confirmed as a",
    "duplicate). Apply `added` and `modified` alike: upsert by `id`."
);

impl Op {
    pub const ALL: [Op; 3] = [Op::Added, Op::Modified, Op::Removed];

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Added => "added",
            Op::Modified => "modified",
            Op::Removed => "removed",
        }
    }
}

#[derive(Debug, Clone)]
pub enum Entity {
    Line(Box<Line>),
    /// A line that is gone; only its id and journal are left.
    RemovedLine {
        id: i64,
        journal_id: Uuid,
    },
    Statement(Box<Statement>),
    /// A statement that is gone (its open period regrouped when the account's statement
    /// period changed).
    RemovedStatement {
        id: i64,
        journal_id: Uuid,
    },
}

#[derive(Debug, Clone)]
pub struct Change {
    pub op: Op,
    pub entity: Entity,
    pub position: Position,
}

#[derive(Debug, Clone)]
pub struct FeedPage {
    pub changes: Vec<Change>,
    /// More entries are ready after the last one.
    pub has_more: bool,
    /// Entries exist that are held back until older transactions end: ask again shortly.
    pub held_back: bool,
}

/// Up to `limit` changes of `company` (one journal, or all) after `after` (`None`: from the
/// beginning).
pub async fn page(
    pool: &PgPool,
    company: Uuid,
    journal: Option<Uuid>,
    after: Option<Position>,
    limit: i64,
) -> Result<FeedPage> {
    let pos = after.unwrap_or(Position {
        xid: -1,
        kind: -1,
        id: -1,
    });
    // One horizon for the whole page: every transaction older than `x` has ended before the
    // page is read, so its rows are visible to it; anything at or after `x` waits. The page
    // and the held-back answer must use the same `x` (two statements' snapshots may differ,
    // and an entry skipped by the first could be missed by the second).
    let h = sqlx::query!(
        r#"SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS "x!",
                  h.pruned_xid AS "pruned_xid?", h.pruned_kind AS "pruned_kind?", h.pruned_line AS "pruned_line?"
           FROM (SELECT 1) one LEFT JOIN change_feed_horizon h ON true"#
    )
    .fetch_one(pool)
    .await?;
    if after.is_some() {
        // Before the newest pruned removal's own position: a pruned one may lie after it.
        if let (Some(x), Some(k), Some(l)) = (h.pruned_xid, h.pruned_kind, h.pruned_line) {
            if (pos.xid, pos.kind, pos.id) < (x, k, l) {
                return Err(SyncError::Gone {
                    detail: "this cursor is older than the change feed keeps removals (retention.changes_days); read the lists \
                             (statement lines, statements) again from the start, then follow the feed from a fresh cursor \
                             (GET /api/v1/changes without one)"
                        .into(),
                });
            }
        }
    }
    let horizon = h.x;
    let rows = sqlx::query!(
        r#"WITH h AS (SELECT $7::bigint AS x),
         lines AS (
             SELECT l.change_xid AS xid, 0::int2 AS kind, l.id, l.journal_id,
                    (l.updated_at = l.imported_at) AS added, (l.duplicate_confirmed_at IS NOT NULL OR l.removal_confirmed_at IS NOT NULL) AS gone
             FROM statement_lines l, h
             WHERE l.company_id = $1 AND ($2::uuid IS NULL OR l.journal_id = $2) AND l.change_xid < h.x
               AND l.change_xid >= $3 AND (l.change_xid > $3 OR 0 > $4::int2 OR (0 = $4::int2 AND l.id > $5))
             ORDER BY l.change_xid, l.id LIMIT $6::bigint + 1),
         stmts AS (
             SELECT s.change_xid AS xid, 1::int2 AS kind, s.id, s.journal_id, (s.updated_at = s.created_at) AS added, false AS gone
             FROM statements s, h
             WHERE s.company_id = $1 AND ($2::uuid IS NULL OR s.journal_id = $2) AND s.change_xid < h.x
               AND s.change_xid >= $3 AND (s.change_xid > $3 OR 1 > $4::int2 OR (1 = $4::int2 AND s.id > $5))
             ORDER BY s.change_xid, s.id LIMIT $6::bigint + 1),
         removed AS (
             SELECT r.change_xid AS xid, 2::int2 AS kind, r.line_id AS id, r.journal_id, false AS added, true AS gone
             FROM removed_lines r, h
             WHERE r.company_id = $1 AND ($2::uuid IS NULL OR r.journal_id = $2) AND r.change_xid < h.x
               AND r.change_xid >= $3 AND (r.change_xid > $3 OR 2 > $4::int2 OR (2 = $4::int2 AND r.line_id > $5))
             ORDER BY r.change_xid, r.line_id LIMIT $6::bigint + 1),
         removed_stmts AS (
             SELECT r.change_xid AS xid, 3::int2 AS kind, r.statement_id AS id, r.journal_id, false AS added, true AS gone
             FROM removed_statements r, h
             WHERE r.company_id = $1 AND ($2::uuid IS NULL OR r.journal_id = $2) AND r.change_xid < h.x
               AND r.change_xid >= $3 AND (r.change_xid > $3 OR 3 > $4::int2 OR (3 = $4::int2 AND r.statement_id > $5))
             ORDER BY r.change_xid, r.statement_id LIMIT $6::bigint + 1)
         SELECT xid AS "xid!", kind AS "kind!", id AS "id!", journal_id AS "journal_id!", added AS "added!", gone AS "gone!"
         FROM (SELECT * FROM lines UNION ALL SELECT * FROM stmts UNION ALL SELECT * FROM removed
               UNION ALL SELECT * FROM removed_stmts) c
         ORDER BY xid, kind, id LIMIT $6::bigint + 1"#,
        company,
        journal,
        pos.xid,
        pos.kind,
        pos.id,
        limit,
        horizon
    )
    .fetch_all(pool)
    .await?;
    let has_more = rows.len() as i64 > limit;
    let rows = &rows[..rows.len().min(limit as usize)];
    let held_back = if has_more {
        false
    } else {
        sqlx::query_scalar!(
            r#"SELECT EXISTS (SELECT 1 FROM statement_lines WHERE company_id = $1 AND ($2::uuid IS NULL OR journal_id = $2)
                   AND change_xid >= $3)
               OR EXISTS (SELECT 1 FROM statements WHERE company_id = $1 AND ($2::uuid IS NULL OR journal_id = $2)
                   AND change_xid >= $3)
               OR EXISTS (SELECT 1 FROM removed_statements WHERE company_id = $1 AND ($2::uuid IS NULL OR journal_id = $2)
                   AND change_xid >= $3)
               OR EXISTS (SELECT 1 FROM removed_lines WHERE company_id = $1 AND ($2::uuid IS NULL OR journal_id = $2)
                   AND change_xid >= $3) AS "held!""#,
            company,
            journal,
            horizon
        )
        .fetch_one(pool)
        .await?
    };
    let line_ids: Vec<i64> = rows.iter().filter(|r| r.kind == 0).map(|r| r.id).collect();
    let mut lines: std::collections::HashMap<i64, Line> =
        statement_lines::many(pool, company, &line_ids)
            .await?
            .into_iter()
            .map(|l| (l.id, l))
            .collect();
    let statement_ids: Vec<i64> = rows.iter().filter(|r| r.kind == 1).map(|r| r.id).collect();
    let mut statements: std::collections::HashMap<i64, Statement> = if statement_ids.is_empty() {
        Default::default()
    } else {
        crate::statements::page(
            pool,
            company,
            crate::statements::Scope::Ids(&statement_ids),
            None,
            statement_ids.len() as i64,
        )
        .await?
        .into_iter()
        .map(|s| (s.id, s))
        .collect()
    };
    let mut changes = Vec::with_capacity(rows.len());
    for r in rows {
        let position = Position {
            xid: r.xid,
            kind: r.kind,
            id: r.id,
        };
        let removed = Entity::RemovedLine {
            id: r.id,
            journal_id: r.journal_id,
        };
        // (Lines and statements number their ids apart: take a line only for a line row.)
        let line = if r.kind == 0 {
            lines.remove(&r.id)
        } else {
            None
        };
        let (op, entity) = match (r.kind, line) {
            (0, Some(l)) if r.gone => (Op::Removed, Entity::Line(Box::new(l))),
            (0, Some(l)) => (
                if r.added { Op::Added } else { Op::Modified },
                Entity::Line(Box::new(l)),
            ),
            // Deleted between the two reads: its tombstone comes later in the feed.
            (0, None) => continue,
            (1, _) => match statements.remove(&r.id) {
                Some(s) => (
                    if r.added { Op::Added } else { Op::Modified },
                    Entity::Statement(Box::new(s)),
                ),
                // Regrouped away (a new statement period): gone.
                None => (
                    Op::Removed,
                    Entity::RemovedStatement {
                        id: r.id,
                        journal_id: r.journal_id,
                    },
                ),
            },
            (3, _) => (
                Op::Removed,
                Entity::RemovedStatement {
                    id: r.id,
                    journal_id: r.journal_id,
                },
            ),
            _ => (Op::Removed, removed),
        };
        changes.push(Change {
            op,
            entity,
            position,
        });
    }
    Ok(FeedPage {
        changes,
        has_more,
        held_back,
    })
}

/// Deletes tombstones (lines' and statements') removed before `before`, in batches, and
/// moves the horizon past the newest one deleted. Returns how many went.
pub async fn prune(
    pool: &PgPool,
    before: chrono::DateTime<chrono::Utc>,
    batch: i64,
    pause: Duration,
) -> Result<u64> {
    let mut total = 0;
    for kind in [2_i16, 3] {
        loop {
            let mut tx = pool.begin().await?;
            let gone: Vec<(i64, i64)> = if kind == 2 {
                sqlx::query!(
                    "DELETE FROM removed_lines WHERE line_id IN (
                         SELECT line_id FROM removed_lines WHERE removed_at < $1 ORDER BY removed_at LIMIT $2)
                     RETURNING change_xid, line_id",
                    before,
                    batch
                )
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .map(|r| (r.change_xid, r.line_id))
                .collect()
            } else {
                sqlx::query!(
                    "DELETE FROM removed_statements WHERE statement_id IN (
                         SELECT statement_id FROM removed_statements WHERE removed_at < $1 ORDER BY removed_at LIMIT $2)
                     RETURNING change_xid, statement_id",
                    before,
                    batch
                )
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .map(|r| (r.change_xid, r.statement_id))
                .collect()
            };
            if let Some((xid, id)) = gone.iter().max() {
                sqlx::query!(
                    "UPDATE change_feed_horizon SET pruned_xid = $1, pruned_kind = $2, pruned_line = $3
                     WHERE (pruned_xid, pruned_kind, pruned_line) < ($1, $2, $3)",
                    xid,
                    kind,
                    id
                )
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            total += gone.len() as u64;
            if (gone.len() as i64) < batch {
                break;
            }
            tokio::time::sleep(pause).await;
        }
    }
    Ok(total)
}
