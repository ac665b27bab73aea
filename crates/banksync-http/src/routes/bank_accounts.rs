//! Bank accounts: which journal each one feeds.

use axum::extract::State;
use sync_engine::mapping;
use uuid::Uuid;

use crate::dto::{BankAccount, MapAccount};
use crate::error::ApiResult;
use crate::extract::{Company, Json, Path};
use crate::AppState;

/// Sends a bank account's future lines to another journal of the same currency.
#[utoipa::path(put, path = "/api/v1/bank-accounts/{id}/journal", operation_id = "map_bank_account", tag = "bank-accounts", params(("id" = Uuid, Path)),
    request_body = MapAccount,
    responses((status = 200, body = BankAccount), (status = 409, description = "currency_mismatch: the journal holds another currency")), security(("token" = [])))]
pub async fn map_account(
    State(st): State<AppState>,
    Company(company): Company,
    Path(id): Path<Uuid>,
    Json(body): Json<MapAccount>,
) -> ApiResult<Json<BankAccount>> {
    let a = mapping::map_account(&st.pool, company, id, body.journal_id).await?;
    let j = mapping::journal(&st.pool, company, a.journal_id).await?;
    Ok(Json(BankAccount::new(a, j.name)))
}
