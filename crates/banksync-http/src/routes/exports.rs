//! Statement exports: a bank account's or a journal's statements as CAMT.053, MT940, OFX
//! or CSV, streamed (`sync_engine::export` writes the formats).

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use futures::TryStreamExt;
use serde::Deserialize;
use sync_engine::export::{self, ExportScope, Format};
use utoipa::IntoParams;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::extract::{Company, Path, Query};
use crate::AppState;

#[derive(Deserialize, IntoParams)]
pub struct ExportQuery {
    /// `camt053` (ISO 20022 camt.053.001.08), `mt940`, `ofx` (OFX 2.2) or `csv`.
    #[param(value_type = Format)]
    pub format: String,
    /// Statements whose period ends on or after this date.
    #[param(nullable = false)]
    pub from: Option<NaiveDate>,
    /// Statements whose period starts on or before this date.
    #[param(nullable = false)]
    pub to: Option<NaiveDate>,
}

async fn stream(
    st: &AppState,
    company: Uuid,
    scope: ExportScope,
    name: String,
    q: &ExportQuery,
) -> ApiResult<Response> {
    let format = Format::parse(&q.format).ok_or_else(|| {
        ApiError::invalid(
            "invalid_format",
            "format must be one of camt053, mt940, ofx, csv",
        )
    })?;
    let body = export::export(&st.pool, company, scope, format, q.from, q.to).await?;
    let disposition = format!("attachment; filename=\"{name}.{}\"", format.extension());
    Ok((
        [
            (header::CONTENT_TYPE, format.media_type().to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        Body::from_stream(body.map_ok(axum::body::Bytes::from)),
    )
        .into_response())
}

/// A bank account's statements with their balances and lines, as a file.
#[utoipa::path(get, path = "/api/v1/bank-accounts/{id}/export", tag = "statements", operation_id = "export_account_statements",
    params(("id" = Uuid, Path), ExportQuery),
    responses((status = 200, description = "The statements in the format asked for (see docs/api.md, Statement exports)",
        content((String = "application/xml"), (String = "text/plain"), (String = "application/x-ofx"), (String = "text/csv")))),
    security(("token" = [])))]
pub async fn of_account(
    State(st): State<AppState>,
    Company(company): Company,
    Path(id): Path<Uuid>,
    Query(q): Query<ExportQuery>,
) -> ApiResult<Response> {
    stream(
        &st,
        company,
        ExportScope::Account(id),
        format!("statements-{id}"),
        &q,
    )
    .await
}

/// A journal's statements (its bank accounts' together), as a file.
#[utoipa::path(get, path = "/api/v1/journals/{id}/export", tag = "statements", operation_id = "export_journal_statements",
    params(("id" = Uuid, Path), ExportQuery),
    responses((status = 200, description = "The statements in the format asked for (see docs/api.md, Statement exports)",
        content((String = "application/xml"), (String = "text/plain"), (String = "application/x-ofx"), (String = "text/csv")))),
    security(("token" = [])))]
pub async fn of_journal(
    State(st): State<AppState>,
    Company(company): Company,
    Path(id): Path<Uuid>,
    Query(q): Query<ExportQuery>,
) -> ApiResult<Response> {
    stream(
        &st,
        company,
        ExportScope::Journal(id),
        format!("journal-{id}"),
        &q,
    )
    .await
}
