//! The company's bank journals.

use axum::extract::State;
use sync_engine::mapping;

use crate::dto::Journal;
use crate::error::ApiResult;
use crate::extract::{Company, Json};
use crate::AppState;

/// The company's bank journals.
#[utoipa::path(get, path = "/api/v1/journals", tag = "journals", operation_id = "list_journals", responses((status = 200, body = Vec<Journal>)), security(("token" = [])))]
pub async fn list(
    State(st): State<AppState>,
    Company(company): Company,
) -> ApiResult<Json<Vec<Journal>>> {
    let js = mapping::journals(&st.pool, company).await?;
    Ok(Json(
        js.into_iter()
            .map(|j| Journal {
                id: j.id,
                name: j.name,
                currency: j.currency,
                sync_start_date: j.sync_start_date,
            })
            .collect(),
    ))
}
