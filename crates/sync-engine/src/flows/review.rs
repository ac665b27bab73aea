//! A bookkeeper's review of a flagged look-alike line (rule 7): confirm it as a duplicate
//! (banksync marks the transaction `duplicated` at Salt Edge, which then leaves
//! `/transactions`, and the line leaves the journal and its balance, recorded with the
//! time), or dismiss the flag. Either decision can be undone; undoing a confirmation marks
//! the transaction `unduplicated` at Salt Edge.

use saltedge_client::models::DuplicateRequest;
use saltedge_client::Client;
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::{Result, SyncError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    ConfirmDuplicate,
    Dismiss,
    Undo,
}

#[derive(sqlx::FromRow)]
struct LineFacts {
    company_id: Uuid,
    connection_id: Option<Uuid>,
    saltedge_transaction_id: String,
    suspect_duplicate_of: Option<i64>,
    duplicate_confirmed_at: Option<chrono::DateTime<chrono::Utc>>,
    duplicate_dismissed_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Applies `decision` to line `line_id` of `company_id`.
pub async fn decide(
    pool: &PgPool,
    client: &Client,
    company_id: Uuid,
    line_id: i64,
    decision: Decision,
) -> Result<()> {
    let facts = sqlx::query_as!(
        LineFacts,
        r#"SELECT a.company_id, a.connection_id, l.saltedge_transaction_id,
                l.suspect_duplicate_of, l.duplicate_confirmed_at, l.duplicate_dismissed_at
         FROM statement_lines l JOIN bank_accounts a ON a.id = l.bank_account_id WHERE l.id = $1 AND l.company_id = $2"#,
        line_id,
        company_id
    )
    .fetch_optional(pool)
    .await?
    .filter(|f: &LineFacts| f.company_id == company_id)
    .ok_or(SyncError::not_found("statement line"))?;
    let decided = facts.duplicate_confirmed_at.is_some() || facts.duplicate_dismissed_at.is_some();
    match decision {
        Decision::ConfirmDuplicate | Decision::Dismiss if decided => {
            return Err(SyncError::conflict(
                "conflict",
                "this line was already reviewed; undo that decision first",
            ))
        }
        Decision::ConfirmDuplicate | Decision::Dismiss if facts.suspect_duplicate_of.is_none() => {
            return Err(SyncError::conflict(
                "conflict",
                "this line is not flagged as a possible duplicate",
            ))
        }
        Decision::Undo if !decided => {
            return Err(SyncError::conflict(
                "conflict",
                "there is no decision on this line to undo",
            ))
        }
        _ => {}
    }
    let at_saltedge = match decision {
        Decision::ConfirmDuplicate => Some(true),
        Decision::Undo if facts.duplicate_confirmed_at.is_some() => Some(false),
        _ => None,
    };
    if let Some(duplicated) = at_saltedge {
        let connection_id = facts.connection_id.ok_or(SyncError::conflict(
            "conflict",
            "the line's connection is gone",
        ))?;
        // The recorded customer; Salt Edge is asked only when none is recorded.
        let recorded: Option<String> = sqlx::query_scalar!("SELECT s.saltedge_id FROM connections c JOIN saltedge_customers s ON s.id = c.customer_id WHERE c.id = $1", connection_id)
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
            transaction_ids: vec![facts.saltedge_transaction_id.clone()],
        };
        if duplicated {
            client.mark_duplicated(&req).await?;
        } else {
            client.mark_unduplicated(&req).await?;
        }
    }
    let done = match decision {
        Decision::ConfirmDuplicate => sqlx::query!(
            "UPDATE statement_lines SET duplicate_confirmed_at = now(), updated_at = now() WHERE id = $1",
            line_id
        ),
        Decision::Dismiss => sqlx::query!(
            "UPDATE statement_lines SET duplicate_dismissed_at = now(), updated_at = now() WHERE id = $1",
            line_id
        ),
        Decision::Undo => sqlx::query!(
            "UPDATE statement_lines SET duplicate_confirmed_at = NULL, duplicate_dismissed_at = NULL, updated_at = now() WHERE id = $1",
            line_id
        ),
    };
    let mut tx = pool.begin().await?;
    done.execute(&mut *tx).await?;
    let kind = match decision {
        Decision::ConfirmDuplicate => crate::history::EventKind::DuplicateConfirmed,
        Decision::Dismiss => crate::history::EventKind::DuplicateDismissed,
        Decision::Undo => crate::history::EventKind::ReviewUndone,
    };
    let detail = match decision {
        Decision::Undo if facts.duplicate_confirmed_at.is_some() => {
            serde_json::json!({ "undone": "duplicate_confirmed" })
        }
        Decision::Undo => serde_json::json!({ "undone": "duplicate_dismissed" }),
        _ => serde_json::json!({ "look_alike_of": facts.suspect_duplicate_of }),
    };
    crate::history::record(&mut *tx, line_id, None, kind, detail).await?;
    tx.commit().await?;
    tracing::info!(line = line_id, ?decision, "duplicate review");
    Ok(())
}
