//! A bookkeeper's review of a flagged line. Three flags, each with its answers:
//!
//! - **A look-alike** (rule 7): confirm it as a duplicate (banksync marks the transaction
//!   `duplicated` at Salt Edge, which then leaves `/transactions`, and the line leaves the
//!   journal and its balance), or dismiss the flag.
//! - **Gone at the bank** (a complete listing that covers the line no longer holds it):
//!   confirm the removal (the line leaves the books: out of its statement's figures, or a
//!   correction on the current statement when its own is closed) or keep the line. When the
//!   transaction comes back, the flag and the answer clear by themselves
//!   ([`crate::ingest::lines::flag_gone_at_bank`]).
//! - **A possible re-issue** (a new line without bank id where a line vanished, a few days
//!   and a small amount apart): merge (the earlier line keeps its id and takes the new
//!   content and Salt Edge id; the new line goes, a `removed` entry in the change feed) or
//!   dismiss (both stay).
//!
//! Every decision is recorded in the line's history. `Undo` takes back the line's latest
//! decision (unduplicating at Salt Edge for a confirmed duplicate); a merge is final — the
//! new line is gone — and is undone by no one.

use chrono::{DateTime, Utc};
use saltedge_client::models::DuplicateRequest;
use saltedge_client::Client;
use sqlx::{PgPool, Postgres};
use uuid::Uuid;

use crate::error::{Result, SyncError};
use crate::history::EventKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    ConfirmDuplicate,
    DismissDuplicate,
    ConfirmRemoval,
    KeepRemoved,
    MergeReissue,
    DismissReissue,
    Undo,
}

#[derive(sqlx::FromRow)]
struct LineFacts {
    connection_id: Option<Uuid>,
    saltedge_transaction_id: String,
    suspect_duplicate_of: Option<i64>,
    duplicate_confirmed_at: Option<DateTime<Utc>>,
    duplicate_dismissed_at: Option<DateTime<Utc>>,
    gone_at_bank_at: Option<DateTime<Utc>>,
    removal_confirmed_at: Option<DateTime<Utc>>,
    removal_kept_at: Option<DateTime<Utc>>,
    reissue_of: Option<i64>,
    reissue_dismissed_at: Option<DateTime<Utc>>,
}

/// A decision a line holds, which `Undo` takes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Taken {
    DuplicateConfirmed,
    DuplicateDismissed,
    RemovalConfirmed,
    RemovalKept,
    ReissueDismissed,
}

impl Taken {
    fn as_str(self) -> &'static str {
        match self {
            Taken::DuplicateConfirmed => "duplicate_confirmed",
            Taken::DuplicateDismissed => "duplicate_dismissed",
            Taken::RemovalConfirmed => "removal_confirmed",
            Taken::RemovalKept => "removal_kept",
            Taken::ReissueDismissed => "reissue_dismissed",
        }
    }
}

impl LineFacts {
    /// The latest decision on the line, if any.
    fn latest(&self) -> Option<Taken> {
        [
            (self.duplicate_confirmed_at, Taken::DuplicateConfirmed),
            (self.duplicate_dismissed_at, Taken::DuplicateDismissed),
            (self.removal_confirmed_at, Taken::RemovalConfirmed),
            (self.removal_kept_at, Taken::RemovalKept),
            (self.reissue_dismissed_at, Taken::ReissueDismissed),
        ]
        .into_iter()
        .filter_map(|(at, t)| at.map(|at| (at, t)))
        .max_by_key(|(at, _)| *at)
        .map(|(_, t)| t)
    }
}

fn already(what: &str) -> SyncError {
    SyncError::conflict(
        "conflict",
        format!("this line's {what} was already reviewed; undo that decision first"),
    )
}

fn not_flagged(what: &str) -> SyncError {
    SyncError::conflict("conflict", format!("this line is not flagged as {what}"))
}

async fn facts(
    db: impl sqlx::PgExecutor<'_>,
    company_id: Uuid,
    line_id: i64,
    lock: bool,
) -> Result<LineFacts> {
    let q = if lock {
        sqlx::query_as!(
            LineFacts,
            r#"SELECT a.connection_id, l.saltedge_transaction_id, l.suspect_duplicate_of, l.duplicate_confirmed_at,
                      l.duplicate_dismissed_at, l.gone_at_bank_at, l.removal_confirmed_at, l.removal_kept_at,
                      l.reissue_of, l.reissue_dismissed_at
               FROM statement_lines l JOIN bank_accounts a ON a.id = l.bank_account_id
               WHERE l.id = $1 AND l.company_id = $2 FOR UPDATE OF l"#,
            line_id,
            company_id
        )
        .fetch_optional(db)
        .await?
    } else {
        sqlx::query_as!(
            LineFacts,
            r#"SELECT a.connection_id, l.saltedge_transaction_id, l.suspect_duplicate_of, l.duplicate_confirmed_at,
                      l.duplicate_dismissed_at, l.gone_at_bank_at, l.removal_confirmed_at, l.removal_kept_at,
                      l.reissue_of, l.reissue_dismissed_at
               FROM statement_lines l JOIN bank_accounts a ON a.id = l.bank_account_id
               WHERE l.id = $1 AND l.company_id = $2"#,
            line_id,
            company_id
        )
        .fetch_optional(db)
        .await?
    };
    q.ok_or(SyncError::not_found("statement line"))
}

/// Applies `decision` to line `line_id` of `company_id`.
pub async fn decide(
    pool: &PgPool,
    client: &Client,
    company_id: Uuid,
    line_id: i64,
    decision: Decision,
) -> Result<()> {
    let f = facts(pool, company_id, line_id, false).await?;
    let duplicate_decided =
        f.duplicate_confirmed_at.is_some() || f.duplicate_dismissed_at.is_some();
    let undoing = f.latest();
    match decision {
        Decision::ConfirmDuplicate | Decision::DismissDuplicate if duplicate_decided => {
            return Err(already("look-alike"))
        }
        Decision::ConfirmDuplicate | Decision::DismissDuplicate
            if f.suspect_duplicate_of.is_none() =>
        {
            return Err(not_flagged("a possible duplicate"))
        }
        Decision::MergeReissue => return merge_reissue(pool, company_id, line_id).await,
        Decision::Undo if undoing.is_none() => {
            return Err(SyncError::conflict(
                "conflict",
                "there is no decision on this line to undo",
            ))
        }
        _ => {}
    }
    // Salt Edge first (a confirmed duplicate is marked there, an undone one unmarked): when
    // it refuses, nothing changes here.
    let at_saltedge = match (decision, undoing) {
        (Decision::ConfirmDuplicate, _) => Some(true),
        (Decision::Undo, Some(Taken::DuplicateConfirmed)) => Some(false),
        _ => None,
    };
    if let Some(duplicated) = at_saltedge {
        mark_at_saltedge(pool, client, &f, duplicated).await?;
    }
    let mut tx = pool.begin().await?;
    // Read again under the row lock: a concurrent decision or sync is seen, not overwritten.
    let f = facts(&mut *tx, company_id, line_id, true).await?;
    let (kind, detail) = match decision {
        Decision::ConfirmDuplicate | Decision::DismissDuplicate => {
            let confirm = decision == Decision::ConfirmDuplicate;
            sqlx::query!(
                "UPDATE statement_lines
                 SET duplicate_confirmed_at = CASE WHEN $2 THEN now() END,
                     duplicate_dismissed_at = CASE WHEN $2 THEN NULL ELSE now() END, updated_at = now()
                 WHERE id = $1",
                line_id,
                confirm
            )
            .execute(&mut *tx)
            .await?;
            let kind = if confirm {
                EventKind::DuplicateConfirmed
            } else {
                EventKind::DuplicateDismissed
            };
            (
                kind,
                serde_json::json!({ "look_alike_of": f.suspect_duplicate_of }),
            )
        }
        Decision::ConfirmRemoval | Decision::KeepRemoved => {
            if f.gone_at_bank_at.is_none() {
                return Err(not_flagged("gone at the bank"));
            }
            if f.removal_confirmed_at.is_some() || f.removal_kept_at.is_some() {
                return Err(already("removal"));
            }
            let confirm = decision == Decision::ConfirmRemoval;
            sqlx::query!(
                "UPDATE statement_lines
                 SET removal_confirmed_at = CASE WHEN $2 THEN now() END,
                     removal_kept_at = CASE WHEN $2 THEN NULL ELSE now() END, updated_at = now()
                 WHERE id = $1",
                line_id,
                confirm
            )
            .execute(&mut *tx)
            .await?;
            let kind = if confirm {
                EventKind::RemovalConfirmed
            } else {
                EventKind::RemovalKept
            };
            (
                kind,
                serde_json::json!({ "gone_at_bank_at": f.gone_at_bank_at }),
            )
        }
        Decision::DismissReissue => {
            let Some(of) = f.reissue_of else {
                return Err(not_flagged("a possible re-issue"));
            };
            if f.reissue_dismissed_at.is_some() {
                return Err(already("possible re-issue"));
            }
            sqlx::query!(
                "UPDATE statement_lines SET reissue_dismissed_at = now(), updated_at = now() WHERE id = $1",
                line_id
            )
            .execute(&mut *tx)
            .await?;
            (
                EventKind::ReissueDismissed,
                serde_json::json!({ "reissue_of": of }),
            )
        }
        Decision::Undo => {
            // The decision read under the lock: the one this undo takes back.
            let Some(taken) = f.latest() else {
                return Err(SyncError::conflict(
                    "conflict",
                    "there is no decision on this line to undo",
                ));
            };
            if taken != undoing.unwrap_or(taken) {
                return Err(SyncError::conflict(
                    "conflict",
                    "the line's decisions changed meanwhile; try again",
                ));
            }
            sqlx::query!(
                "UPDATE statement_lines
                 SET duplicate_confirmed_at = CASE WHEN $2 = 'duplicate_confirmed' THEN NULL ELSE duplicate_confirmed_at END,
                     duplicate_dismissed_at = CASE WHEN $2 = 'duplicate_dismissed' THEN NULL ELSE duplicate_dismissed_at END,
                     removal_confirmed_at = CASE WHEN $2 = 'removal_confirmed' THEN NULL ELSE removal_confirmed_at END,
                     removal_kept_at = CASE WHEN $2 = 'removal_kept' THEN NULL ELSE removal_kept_at END,
                     reissue_dismissed_at = CASE WHEN $2 = 'reissue_dismissed' THEN NULL ELSE reissue_dismissed_at END,
                     updated_at = now()
                 WHERE id = $1",
                line_id,
                taken.as_str()
            )
            .execute(&mut *tx)
            .await?;
            (
                EventKind::ReviewUndone,
                serde_json::json!({ "undone": taken.as_str() }),
            )
        }
        Decision::MergeReissue => unreachable!("merged above"),
    };
    crate::history::record(&mut *tx, line_id, None, kind, detail).await?;
    tx.commit().await?;
    tracing::info!(line = line_id, ?decision, "line review");
    Ok(())
}

/// Marks (or unmarks) the line's transaction `duplicated` at Salt Edge.
async fn mark_at_saltedge(
    pool: &PgPool,
    client: &Client,
    f: &LineFacts,
    duplicated: bool,
) -> Result<()> {
    let connection_id = f.connection_id.ok_or(SyncError::conflict(
        "conflict",
        "the line's connection is gone",
    ))?;
    // The recorded customer; Salt Edge is asked only when none is recorded.
    let recorded: Option<String> = sqlx::query_scalar!(
        "SELECT s.saltedge_id FROM connections c JOIN saltedge_customers s ON s.id = c.customer_id WHERE c.id = $1",
        connection_id
    )
    .fetch_optional(pool)
    .await?;
    let customer_id = match recorded {
        Some(id) => id,
        None => {
            client
                .show_connection(
                    &crate::connections::get(pool, connection_id)
                        .await?
                        .saltedge_id,
                )
                .await?
                .customer_id
        }
    };
    let req = DuplicateRequest {
        customer_id,
        transaction_ids: vec![f.saltedge_transaction_id.clone()],
    };
    if duplicated {
        client.mark_duplicated(&req).await?;
    } else {
        client.mark_unduplicated(&req).await?;
    }
    Ok(())
}

/// Merges the possible re-issue `line_id` into the earlier line it may re-issue: that line
/// keeps its id and takes the new content and Salt Edge id (`rekeyed_from` remembers the
/// old one, its gone flag clears: its transaction is listed again); the new line goes.
/// Refused while a sync of the connection writes (try again), so the two never interleave.
async fn merge_reissue(pool: &PgPool, company_id: Uuid, line_id: i64) -> Result<()> {
    let mut tx = pool.begin().await?;
    let f = facts(&mut *tx, company_id, line_id, true).await?;
    let Some(old_line) = f.reissue_of else {
        return Err(not_flagged("a possible re-issue"));
    };
    if f.reissue_dismissed_at.is_some() {
        return Err(already("possible re-issue"));
    }
    if let Some(connection) = f.connection_id {
        let free = sqlx::query_scalar!(
            r#"SELECT pg_try_advisory_xact_lock($1) AS "free!""#,
            crate::ingest::lock::key(connection)
        )
        .fetch_one(&mut *tx)
        .await?;
        if !free {
            return Err(SyncError::conflict(
                "sync_running",
                "a sync of this connection is writing its lines; try again in a moment",
            ));
        }
    }
    let old = facts(&mut *tx, company_id, old_line, true)
        .await
        .map_err(|_| SyncError::conflict("conflict", "the earlier line is no longer there"))?;
    merge_into(&mut tx, old_line, &old.saltedge_transaction_id, line_id).await?;
    tx.commit().await?;
    tracing::info!(line = old_line, replaced = line_id, "merged a re-issue");
    Ok(())
}

/// The merge's writes: the new line's pending link is given back (it was the old line's
/// transaction, not that pending one's posting), the new line goes, the old one takes its
/// content and id, references move to the old line, and the old line's history records it.
async fn merge_into(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    old_line: i64,
    old_id: &str,
    new_line: i64,
) -> Result<()> {
    sqlx::query!(
        "UPDATE pending_transactions SET state = 'expired', posted_line_id = NULL, updated_at = now()
         WHERE posted_line_id = $1",
        new_line
    )
    .execute(&mut **tx)
    .await?;
    let new = sqlx::query!(
        "DELETE FROM statement_lines WHERE id = $1
         RETURNING saltedge_transaction_id, booking_date, value_date, amount, description, payee, counterparty_iban,
                   extra, content_hash, text_repaired, bank_transaction_id, sync_run_id",
        new_line
    )
    .fetch_one(&mut **tx)
    .await?;
    let before = sqlx::query!(
        "SELECT booking_date, amount, description FROM statement_lines WHERE id = $1",
        old_line
    )
    .fetch_one(&mut **tx)
    .await?;
    sqlx::query!("UPDATE statement_lines SET saltedge_transaction_id = $2, booking_date = $3, value_date = $4, amount = $5,
             description = $6, payee = $7, counterparty_iban = $8, bank_transaction_id = coalesce($9, bank_transaction_id),
             extra = $10, content_hash = $11, text_repaired = $12, sync_run_id = $13, rekeyed_from = saltedge_transaction_id,
             rekeyed_at = now(), gone_at_bank_at = NULL, gone_at_bank_run_id = NULL, removal_confirmed_at = NULL,
             removal_kept_at = NULL, updated_at = now()
         WHERE id = $1", old_line, new.saltedge_transaction_id, new.booking_date, new.value_date, new.amount, new.description,
         new.payee, new.counterparty_iban, new.bank_transaction_id, new.extra, new.content_hash, new.text_repaired, new.sync_run_id)
    .execute(&mut **tx)
    .await?;
    sqlx::query!(
        "UPDATE statement_lines SET suspect_duplicate_of = $1 WHERE suspect_duplicate_of = $2",
        old_line,
        new_line
    )
    .execute(&mut **tx)
    .await?;
    crate::history::record(
        &mut **tx,
        old_line,
        None,
        EventKind::ReissueMerged,
        serde_json::json!({
            "from": old_id, "to": new.saltedge_transaction_id, "replaced_line": new_line,
            "before": { "booking_date": before.booking_date, "amount": before.amount.to_string(),
                        "description": before.description },
        }),
    )
    .await
}
