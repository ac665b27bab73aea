//! How each statement line came to be and changed: its history. The first entry, `created`,
//! is the line itself (first stored by `created_run_id` at `imported_at`); every later
//! change is a row of `line_events`, written in the same database transaction as the
//! change: updated by Salt Edge (which fields, and what they held), re-keyed (from which
//! Salt Edge id, and why), posted from a pending transaction, flagged as a look-alike, and
//! the bookkeeper's review.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use sqlx::{PgExecutor, PgPool, Postgres};
use uuid::Uuid;

use crate::error::{Result, SyncError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Updated,
    Rekeyed,
    PostedFromPending,
    Flagged,
    DuplicateConfirmed,
    DuplicateDismissed,
    ReviewUndone,
    /// The bookkeeper undid the link to the pending transaction the line posted from.
    PendingUnlinked,
    /// A complete listing that covers the line's transaction no longer holds it.
    GoneAtBank,
    /// The transaction of a line flagged gone is listed again: the flag cleared.
    BackAtBank,
    /// The bookkeeper confirmed the bank's removal: the line left the books.
    RemovalConfirmed,
    /// The bookkeeper kept a line the bank no longer lists.
    RemovalKept,
    /// The line may be a re-issue, with changed content, of an earlier line that vanished.
    PossibleReissue,
    /// A possible re-issue was merged into this (earlier) line.
    ReissueMerged,
    /// The bookkeeper dismissed the possible re-issue: both lines stay.
    ReissueDismissed,
}

impl EventKind {
    pub const ALL: [EventKind; 15] = [
        EventKind::Updated,
        EventKind::Rekeyed,
        EventKind::PostedFromPending,
        EventKind::Flagged,
        EventKind::DuplicateConfirmed,
        EventKind::DuplicateDismissed,
        EventKind::ReviewUndone,
        EventKind::PendingUnlinked,
        EventKind::GoneAtBank,
        EventKind::BackAtBank,
        EventKind::RemovalConfirmed,
        EventKind::RemovalKept,
        EventKind::PossibleReissue,
        EventKind::ReissueMerged,
        EventKind::ReissueDismissed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Updated => "updated",
            EventKind::Rekeyed => "rekeyed",
            EventKind::PostedFromPending => "posted_from_pending",
            EventKind::Flagged => "flagged",
            EventKind::DuplicateConfirmed => "duplicate_confirmed",
            EventKind::DuplicateDismissed => "duplicate_dismissed",
            EventKind::ReviewUndone => "review_undone",
            EventKind::PendingUnlinked => "pending_unlinked",
            EventKind::GoneAtBank => "gone_at_bank",
            EventKind::BackAtBank => "back_at_bank",
            EventKind::RemovalConfirmed => "removal_confirmed",
            EventKind::RemovalKept => "removal_kept",
            EventKind::PossibleReissue => "possible_reissue",
            EventKind::ReissueMerged => "reissue_merged",
            EventKind::ReissueDismissed => "reissue_dismissed",
        }
    }
}

/// One entry of a line's history.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Event {
    /// `created`, or one of [`EventKind`].
    pub kind: String,
    pub at: DateTime<Utc>,
    pub sync_run_id: Option<Uuid>,
    pub detail: serde_json::Value,
}

/// Records one event of line `line_id` (its company is the line's).
pub async fn record(
    db: impl PgExecutor<'_>,
    line_id: i64,
    run_id: Option<Uuid>,
    kind: EventKind,
    detail: serde_json::Value,
) -> Result<()> {
    sqlx::query!(
        "INSERT INTO line_events (company_id, line_id, sync_run_id, kind, detail)
         SELECT company_id, id, $2, $3, $4 FROM statement_lines WHERE id = $1",
        line_id,
        run_id,
        kind.as_str(),
        detail
    )
    .execute(db)
    .await?;
    Ok(())
}

/// What a line shows, compared before and after Salt Edge changes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Content {
    pub booking_date: NaiveDate,
    pub value_date: Option<NaiveDate>,
    pub amount: Decimal,
    pub currency: String,
    pub description: String,
    pub payee: Option<String>,
    pub counterparty_iban: Option<String>,
}

impl Content {
    /// The fields that differ, each with the value `self` (the older) held.
    fn changed_from(&self, new: &Content) -> serde_json::Map<String, serde_json::Value> {
        use serde_json::json;
        let mut m = serde_json::Map::new();
        if self.booking_date != new.booking_date {
            m.insert("booking_date".into(), json!(self.booking_date));
        }
        if self.value_date != new.value_date {
            m.insert("value_date".into(), json!(self.value_date));
        }
        if self.amount != new.amount {
            m.insert("amount".into(), json!(self.amount.normalize().to_string()));
        }
        if self.currency != new.currency {
            m.insert("currency".into(), json!(self.currency));
        }
        if self.description != new.description {
            m.insert("description".into(), json!(self.description));
        }
        if self.payee != new.payee {
            m.insert("payee".into(), json!(self.payee));
        }
        if self.counterparty_iban != new.counterparty_iban {
            m.insert("counterparty_iban".into(), json!(self.counterparty_iban));
        }
        m
    }
}

/// Salt Edge id → the content of the lines with these (account, Salt Edge id) keys.
pub async fn content_before(
    db: &mut sqlx::Transaction<'_, Postgres>,
    keys: &[(Uuid, String)],
) -> Result<HashMap<String, Content>> {
    let accounts: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
    let ids: Vec<&str> = keys.iter().map(|k| k.1.as_str()).collect();
    Ok(sqlx::query!(
        "SELECT l.saltedge_transaction_id, l.booking_date, l.value_date, l.amount, l.currency, l.description, l.payee,
                l.counterparty_iban
         FROM statement_lines l JOIN UNNEST($1::uuid[], $2::text[]) AS k(account, id)
              ON l.bank_account_id = k.account AND l.saltedge_transaction_id = k.id",
        &accounts,
        &ids as &[&str]
    )
    .fetch_all(&mut **db)
    .await?
    .into_iter()
    .map(|r| {
        (
            r.saltedge_transaction_id,
            Content {
                booking_date: r.booking_date,
                value_date: r.value_date,
                amount: r.amount,
                currency: r.currency,
                description: r.description,
                payee: r.payee,
                counterparty_iban: r.counterparty_iban,
            },
        )
    })
    .collect())
}

/// `updated` events for the lines Salt Edge changed (Salt Edge id → line id), naming the
/// fields that changed and what they held. A change only to fields a line does not show
/// (`extra`, Salt Edge's `updated_at`) is recorded with `fields: []`.
pub async fn record_updates(
    db: &mut sqlx::Transaction<'_, Postgres>,
    run_id: Uuid,
    now: &HashMap<&str, Content>,
    updated: &HashMap<String, i64>,
    before: &HashMap<String, Content>,
) -> Result<()> {
    if updated.is_empty() {
        return Ok(());
    }
    let (mut lines, mut details) = (vec![], vec![]);
    for (se_id, line) in updated {
        let changed = match (before.get(se_id), now.get(se_id.as_str())) {
            (Some(b), Some(n)) => b.changed_from(n),
            _ => Default::default(),
        };
        let fields: Vec<&String> = changed.keys().collect();
        details.push(serde_json::json!({ "fields": fields, "before": changed }));
        lines.push(*line);
    }
    sqlx::query!(
        "INSERT INTO line_events (company_id, line_id, sync_run_id, kind, detail)
         SELECT l.company_id, l.id, $3, 'updated', u.detail
         FROM UNNEST($1::bigint[], $2::jsonb[]) AS u(line, detail) JOIN statement_lines l ON l.id = u.line",
        &lines,
        &details,
        run_id
    )
    .execute(&mut **db)
    .await?;
    Ok(())
}

/// `flagged` events for lines just flagged as look-alikes, naming the line each resembles.
pub async fn record_flagged(
    db: &mut sqlx::Transaction<'_, Postgres>,
    run_id: Uuid,
    lines: &[i64],
) -> Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    sqlx::query!(
        "INSERT INTO line_events (company_id, line_id, sync_run_id, kind, detail)
         SELECT company_id, id, $2, 'flagged', jsonb_build_object('look_alike_of', suspect_duplicate_of)
         FROM statement_lines WHERE id = ANY($1) AND suspect_duplicate_of IS NOT NULL",
        lines,
        run_id
    )
    .execute(&mut **db)
    .await?;
    Ok(())
}

/// The history of line `line_id` of `company`, oldest first, starting with `created`.
pub async fn of_line(pool: &PgPool, company: Uuid, line_id: i64) -> Result<Vec<Event>> {
    let line = sqlx::query!(
        "SELECT imported_at, created_run_id, saltedge_transaction_id, rekeyed_from, occurrence, fingerprint
         FROM statement_lines WHERE id = $1 AND company_id = $2",
        line_id,
        company
    )
    .fetch_optional(pool)
    .await?
    .ok_or(SyncError::not_found("statement line"))?;
    let events = sqlx::query!(
        "SELECT kind, at, sync_run_id, detail FROM line_events WHERE line_id = $1 AND company_id = $2 ORDER BY id",
        line_id,
        company
    )
    .fetch_all(pool)
    .await?;
    // The Salt Edge id the line was first stored under: before its first re-key, if any.
    let first_id = events
        .iter()
        .find(|e| e.kind == "rekeyed")
        .and_then(|e| {
            e.detail
                .get("from")
                .and_then(|v| v.as_str())
                .map(str::to_string)
        })
        // Re-keyed before histories were kept: `rekeyed_from` is all there is.
        .or(line.rekeyed_from)
        .unwrap_or(line.saltedge_transaction_id);
    let mut out = vec![Event {
        kind: "created".into(),
        at: line.imported_at,
        sync_run_id: line.created_run_id,
        detail: serde_json::json!({
            "saltedge_transaction_id": first_id,
            "fingerprint": line.fingerprint,
            "occurrence": line.occurrence,
        }),
    }];
    out.extend(events.into_iter().map(|e| Event {
        kind: e.kind,
        at: e.at,
        sync_run_id: e.sync_run_id,
        detail: e.detail,
    }));
    Ok(out)
}
