//! The change feed: lines added, modified and removed since a cursor, in an order in which
//! nothing can be missed (see `sync_engine::changes`).

use axum::extract::State;
use serde::Deserialize;
use sync_engine::changes;
use sync_engine::status::ChangeEntity;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::dto::{ChangeEntry, ChangesPage};
use crate::error::ApiResult;
use crate::extract::{Company, Json, Query};
use crate::paging::{self, Position};
use crate::AppState;

#[derive(Deserialize, IntoParams)]
pub struct ChangesQuery {
    /// `next_cursor` of the previous answer, with the same `journal_id`; none: from the
    /// beginning.
    #[param(nullable = false, pattern = "^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]{43}$")]
    pub cursor: Option<String>,
    /// Only this journal's changes.
    #[param(nullable = false)]
    pub journal_id: Option<Uuid>,
    /// Page size.
    #[param(minimum = 1, maximum = 1000, default = 100, nullable = false)]
    pub limit: Option<i64>,
}

/// Changes to the company's statement lines and statements since `cursor`, oldest first. A
/// consumer that starts without a cursor and applies every page (upsert `added` and
/// `modified` by entity and id, delete `removed`) holds exactly the current lines and
/// statements. A cursor older than the feed's retention is 410 `cursor_expired`: read the
/// lists again, then follow the feed from the beginning.
#[utoipa::path(get, path = "/api/v1/changes", tag = "statement-lines", operation_id = "list_changes", params(ChangesQuery),
    responses((status = 200, body = ChangesPage), (status = 410, description = "cursor_expired: the cursor is older than the change feed keeps removals; resynchronise from the lists")),
    security(("token" = [])))]
pub async fn list(
    State(st): State<AppState>,
    Company(company): Company,
    Query(q): Query<ChangesQuery>,
) -> ApiResult<Json<ChangesPage>> {
    let limit = paging::limit(q.limit)?;
    let scope = sync_engine::cursor::changes_scope(company, q.journal_id);
    let after: Option<changes::Position> = paging::after(&st, &scope, q.cursor.as_deref()).await?;
    let page = changes::page(&st.pool, company, q.journal_id, after, limit).await?;
    let last = page
        .changes
        .last()
        .map(|c| c.position)
        .or(after)
        .unwrap_or(changes::Position {
            xid: -1,
            kind: -1,
            id: -1,
        });
    let next_cursor = paging::encode(&st, &scope, &last.write()).await?;
    let entries = page
        .changes
        .into_iter()
        .map(|c| {
            let (entity, id, journal_id, line, statement) = match c.entity {
                changes::Entity::Line(l) => (
                    ChangeEntity::Line,
                    l.id,
                    l.journal_id,
                    Some(super::statement_lines::line_dto(*l)),
                    None,
                ),
                changes::Entity::RemovedLine { id, journal_id } => {
                    (ChangeEntity::Line, id, journal_id, None, None)
                }
                changes::Entity::Statement(s) => (
                    ChangeEntity::Statement,
                    s.id,
                    s.journal_id,
                    None,
                    Some(super::statements::statement_dto(*s)),
                ),
                changes::Entity::RemovedStatement { id, journal_id } => {
                    (ChangeEntity::Statement, id, journal_id, None, None)
                }
            };
            ChangeEntry {
                op: c.op,
                entity,
                id,
                journal_id,
                line,
                statement,
            }
        })
        .collect();
    Ok(Json(ChangesPage {
        changes: entries,
        next_cursor,
        has_more: page.has_more,
        caught_up: !page.has_more && !page.held_back,
    }))
}
