//! List paging, one rule for every list: `limit` from 1 to 1000 (default 100), anything
//! else is 422 `invalid_limit`; cursors are opaque and made only by this service.
//!
//! A cursor is the last row's position plus an HMAC-SHA256 over the position, the
//! calling company and the query's filters, keyed by a secret every replica shares
//! (`service_secrets`, migration 0015). A cursor made up by a caller, taken from another
//! company or from a query with other filters is refused with 422 `invalid_cursor`.

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

async fn key(st: &AppState) -> ApiResult<&[u8]> {
    Ok(st
        .cursor_key
        .get_or_try_init(|| async {
            sync_engine::tokens::service_secret(&st.pool, "cursor")
                .await
                .map_err(ApiError::from)
        })
        .await?
        .as_slice())
}

/// `scope` names what the cursor is valid for (company, list, filters); `position` is
/// what the list query resumes after.
pub async fn encode(st: &AppState, scope: &str, position: &str) -> ApiResult<String> {
    Ok(sync_engine::cursor::sign(key(st).await?, scope, position))
}

/// The position of a cursor this service made for the same scope.
pub async fn decode(st: &AppState, scope: &str, cursor: &str) -> ApiResult<String> {
    sync_engine::cursor::verify(key(st).await?, scope, cursor).ok_or_else(|| {
        ApiError::invalid(
            "invalid_cursor",
            "cursor is not one this API gave out for this list and these filters",
        )
    })
}

/// A list's position in a cursor: what its query resumes after, written and read back
/// exactly.
pub trait Position: Sized {
    fn write(&self) -> String;
    fn read(s: &str) -> Option<Self>;
}

/// Statement lines: (booking date, line id).
impl Position for (chrono::NaiveDate, i64) {
    fn write(&self) -> String {
        format!("{}|{}", self.0, self.1)
    }

    fn read(s: &str) -> Option<Self> {
        let (d, i) = s.split_once('|')?;
        Some((d.parse().ok()?, i.parse().ok()?))
    }
}

/// Sync runs: (started at, run id), to the microsecond Postgres keeps.
impl Position for (chrono::DateTime<chrono::Utc>, uuid::Uuid) {
    fn write(&self) -> String {
        format!(
            "{}|{}",
            self.0.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            self.1
        )
    }

    fn read(s: &str) -> Option<Self> {
        let (t, i) = s.split_once('|')?;
        Some((
            chrono::DateTime::parse_from_rfc3339(t).ok()?.to_utc(),
            i.parse().ok()?,
        ))
    }
}

/// The change feed: (transaction id, kind, id), see `sync_engine::changes`.
impl Position for sync_engine::changes::Position {
    fn write(&self) -> String {
        self.encode()
    }

    fn read(s: &str) -> Option<Self> {
        Self::decode(s)
    }
}

/// The position a cursor of `scope` holds (none without a cursor).
pub async fn after<P: Position>(
    st: &AppState,
    scope: &str,
    cursor: Option<&str>,
) -> ApiResult<Option<P>> {
    let Some(c) = cursor else { return Ok(None) };
    let pos = decode(st, scope, c).await?;
    P::read(&pos)
        .map(Some)
        .ok_or_else(|| ApiError::invalid("invalid_cursor", "cursor is not one this API gave out"))
}

/// One page of `rows` (fetched with `limit + 1`) and the cursor to the next, if any.
pub async fn page<T, P: Position>(
    st: &AppState,
    scope: &str,
    mut rows: Vec<T>,
    limit: i64,
    position: impl Fn(&T) -> P,
) -> ApiResult<(Vec<T>, Option<String>)> {
    if rows.len() as i64 <= limit {
        return Ok((rows, None));
    }
    rows.truncate(limit as usize);
    let next = match rows.last() {
        Some(last) => Some(encode(st, scope, &position(last).write()).await?),
        None => None,
    };
    Ok((rows, next))
}

/// Lists ordered by one id (webhook deliveries, newest first).
impl Position for i64 {
    fn write(&self) -> String {
        self.to_string()
    }

    fn read(s: &str) -> Option<Self> {
        s.parse().ok()
    }
}
