//! List paging, one rule for every list: `limit` from 1 to 1000 (default 100), anything
//! else is 422 `invalid_limit`; cursors are opaque and made only by this service.
//!
//! A cursor is the last row's position plus an HMAC-SHA256 over the position, the
//! calling company and the query's filters, keyed by a secret every replica shares
//! (`service_secrets`, migration 0015). A cursor made up by a caller, taken from another
//! company or from a query with other filters is refused with 422 `invalid_cursor`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ring::hmac;

use crate::error::{ApiError, ApiResult};
use crate::AppState;

pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 1000;

/// The page size asked for, checked.
pub fn limit(asked: Option<i64>) -> ApiResult<i64> {
    match asked {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::invalid(
            "invalid_limit",
            format!("limit must be between 1 and {MAX_LIMIT}"),
        )),
    }
}

async fn key(st: &AppState) -> ApiResult<&hmac::Key> {
    st.cursor_key
        .get_or_try_init(|| async {
            let secret = sync_engine::tokens::service_secret(&st.pool, "cursor").await?;
            Ok::<_, ApiError>(hmac::Key::new(hmac::HMAC_SHA256, &secret))
        })
        .await
}

/// `scope` names what the cursor is valid for (company, list, filters); `position` is
/// what the list query resumes after.
pub async fn encode(st: &AppState, scope: &str, position: &str) -> ApiResult<String> {
    let tag = hmac::sign(key(st).await?, format!("{scope}\n{position}").as_bytes());
    Ok(format!(
        "{}.{}",
        B64.encode(position),
        B64.encode(tag.as_ref())
    ))
}

/// The position of a cursor this service made for the same scope.
pub async fn decode(st: &AppState, scope: &str, cursor: &str) -> ApiResult<String> {
    let refused = || {
        ApiError::invalid(
            "invalid_cursor",
            "cursor is not one this API gave out for this list and these filters",
        )
    };
    let (pos, tag) = cursor.split_once('.').ok_or_else(refused)?;
    let pos = String::from_utf8(B64.decode(pos).map_err(|_| refused())?).map_err(|_| refused())?;
    let tag = B64.decode(tag).map_err(|_| refused())?;
    // ring compares the tags in constant time.
    hmac::verify(key(st).await?, format!("{scope}\n{pos}").as_bytes(), &tag)
        .map_err(|_| refused())?;
    Ok(pos)
}
