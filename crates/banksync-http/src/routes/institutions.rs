use axum::extract::State;
use serde::Deserialize;
use sync_engine::catalogue;
use utoipa::IntoParams;

use crate::dto::Institution;
use crate::error::ApiResult;
use crate::extract::{Company, Json, Query};
use crate::AppState;

#[derive(Deserialize, IntoParams)]
pub struct InstitutionQuery {
    /// ISO country code, e.g. DE.
    #[param(pattern = "^[^\\x00]*$", nullable = false)]
    pub country: Option<String>,
    /// Part of the name or code (`%` and `_` are plain characters).
    #[param(pattern = "^[^\\x00]*$", nullable = false)]
    pub q: Option<String>,
    /// Include Salt Edge's fake test providers.
    #[serde(default)]
    pub include_fake: bool,
    /// Page size.
    #[param(minimum = 1, maximum = 1000, default = 100, nullable = false)]
    pub limit: Option<i64>,
}

/// Searchable list of institutions, from the local catalogue of Salt Edge providers.
#[utoipa::path(get, path = "/api/v1/institutions", tag = "institutions", operation_id = "list_institutions", params(InstitutionQuery),
    responses((status = 200, body = Vec<Institution>)), security(("token" = [])))]
pub async fn list(
    State(st): State<AppState>,
    _c: Company,
    Query(q): Query<InstitutionQuery>,
) -> ApiResult<Json<Vec<Institution>>> {
    let limit = crate::paging::limit(q.limit)?;
    let rows = catalogue::search(
        &st.pool,
        q.country.as_deref(),
        q.q.as_deref().filter(|s| !s.is_empty()),
        q.include_fake,
        limit,
    )
    .await?;
    Ok(Json(
        rows.into_iter()
            .map(|r| Institution {
                code: r.code,
                name: r.name,
                country_code: r.country_code,
                mode: r.mode,
                interactive: r.interactive,
                fake: r.fake,
            })
            .collect(),
    ))
}
