//! The one place where errors become HTTP: RFC 9457 problem JSON with a stable `code`.

use axum::extract::rejection::PathRejection;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use saltedge_client::ErrorClass;
use serde_json::{json, Map, Value};
use sync_engine::error::Category;
use sync_engine::{guidance, SyncError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or invalid API token")]
    Unauthorized,
    #[error("this needs an operator token")]
    Forbidden,
    #[error("operator tokens cannot read or change a company's data; use a company token")]
    OperatorOnCompanyData,
    #[error("too many requests for this token; retry after {retry_after} s")]
    RateLimited { retry_after: u64 },
    #[error("callback signature rejected: {0}")]
    BadSignature(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{detail}")]
    BadRequest { code: &'static str, detail: String },
    #[error("{detail}")]
    Invalid { code: &'static str, detail: String },
    #[error("{detail}")]
    Conflict {
        code: &'static str,
        detail: String,
        extra: Map<String, Value>,
    },
    #[error("request body too large")]
    TooLarge,
    /// A body sent with another content type than `application/json`.
    #[error("send the body as JSON with Content-Type: application/json")]
    UnsupportedMediaType,
    #[error(transparent)]
    SaltEdge(#[from] saltedge_client::Error),
    #[error(transparent)]
    Sync(#[from] SyncError),
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::Sync(SyncError::Db(e))
    }
}

impl ApiError {
    pub fn invalid(code: &'static str, detail: impl Into<String>) -> Self {
        ApiError::Invalid {
            code,
            detail: detail.into(),
        }
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        ApiError::Conflict {
            code,
            detail: detail.into(),
            extra: Map::new(),
        }
    }

    /// (status, code, title, extra members)
    fn parts(&self) -> (StatusCode, &'static str, &'static str, Map<String, Value>) {
        let none = Map::new;
        match self {
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Missing or invalid API token",
                none(),
            ),
            ApiError::Forbidden => (
                StatusCode::FORBIDDEN,
                "forbidden",
                "Operator token required",
                none(),
            ),
            ApiError::OperatorOnCompanyData => (
                StatusCode::FORBIDDEN,
                "company_token_required",
                "Company token required",
                none(),
            ),
            ApiError::RateLimited { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "Too many requests",
                none(),
            ),
            ApiError::BadSignature(code) => (
                StatusCode::UNAUTHORIZED,
                code,
                "Callback signature rejected",
                none(),
            ),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found", "Not found", none()),
            ApiError::BadRequest { code, .. } => {
                (StatusCode::BAD_REQUEST, code, "Bad request", none())
            }
            ApiError::Invalid { code, .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                code,
                "Invalid input",
                none(),
            ),
            ApiError::Conflict { code, extra, .. } => {
                (StatusCode::CONFLICT, code, "Conflict", extra.clone())
            }
            ApiError::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "Request body too large",
                none(),
            ),
            ApiError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Unsupported media type",
                none(),
            ),
            ApiError::SaltEdge(e) => saltedge_parts(e),
            ApiError::Sync(SyncError::SaltEdge(e)) => saltedge_parts(e),
            ApiError::Sync(e) => sync_parts(e),
        }
    }
}

/// The engine's errors by category; a few variants carry their own code.
fn sync_parts(e: &SyncError) -> (StatusCode, &'static str, &'static str, Map<String, Value>) {
    let none = Map::new;
    match e {
        SyncError::SaltEdge(e) => saltedge_parts(e),
        SyncError::Busy { .. } => busy_parts(),
        // Not an outage: Postgres refused the caller's text.
        SyncError::Db(db) if text_refused(db) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_text",
            "Text that cannot be stored",
            none(),
        ),
        // The journal's currency is its state: mapping into it conflicts with it.
        SyncError::CurrencyMismatch { .. } => (
            StatusCode::CONFLICT,
            "currency_mismatch",
            "Currencies differ",
            none(),
        ),
        SyncError::Invalid { code, .. } => (
            StatusCode::UNPROCESSABLE_ENTITY,
            code,
            "Invalid input",
            none(),
        ),
        SyncError::NotAllowed { code, .. } => (StatusCode::FORBIDDEN, code, "Not allowed", none()),
        SyncError::Gone { .. } => (StatusCode::GONE, "cursor_expired", "Cursor expired", none()),
        SyncError::Conflict { code, .. } => (StatusCode::CONFLICT, code, "Conflict", none()),
        SyncError::AlreadySynchronized { connection_id } => {
            let mut extra = Map::new();
            extra.insert("guidance".into(), json!(guidance::ALREADY_SYNCHRONIZED));
            extra.insert("connection_id".into(), json!(connection_id));
            (
                StatusCode::CONFLICT,
                "already_synchronized",
                "Already synchronized",
                extra,
            )
        }
        SyncError::StillHeld { saltedge_class } => {
            let mut extra = Map::new();
            extra.insert("guidance".into(), json!(guidance::DELETE_KEPT));
            if let Some(c) = saltedge_class {
                extra.insert("saltedge_error_class".into(), json!(c));
            }
            (
                StatusCode::CONFLICT,
                "still_held_by_saltedge",
                "Still held by Salt Edge",
                extra,
            )
        }
        SyncError::State { code, guidance, .. } => {
            let mut extra = Map::new();
            extra.insert("guidance".into(), json!(guidance));
            (
                StatusCode::CONFLICT,
                code,
                "Not possible in the connection's state",
                extra,
            )
        }
        other => match other.category() {
            Category::Caller => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                "Invalid input",
                none(),
            ),
            Category::NotFound => (StatusCode::NOT_FOUND, "not_found", "Not found", none()),
            Category::Conflict => (StatusCode::CONFLICT, "conflict", "Conflict", none()),
            Category::Busy => busy_parts(),
            Category::Upstream => (
                StatusCode::BAD_GATEWAY,
                "saltedge_error",
                "Salt Edge refused the request",
                none(),
            ),
            Category::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
                none(),
            ),
        },
    }
}

/// Postgres refused the text of the request (a NUL character: SQLSTATE 22021 / 22P05):
/// the caller's input, not our failure; the statement changed nothing.
fn text_refused(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| c == "22021" || c == "22P05")
}

fn saltedge_parts(
    e: &saltedge_client::Error,
) -> (StatusCode, &'static str, &'static str, Map<String, Value>) {
    let mut extra = Map::new();
    match e {
        saltedge_client::Error::Busy { .. } => busy_parts(),
        saltedge_client::Error::Api { class, .. } => {
            extra.insert("saltedge_error_class".into(), json!(class.as_str()));
            if let Some(g) = guidance::for_class(class.as_str()) {
                extra.insert("guidance".into(), json!(g));
            }
            if *class == ErrorClass::ConnectionDuplicated {
                return (
                    StatusCode::CONFLICT,
                    "already_synchronized",
                    "Already synchronized",
                    extra,
                );
            }
            (
                StatusCode::BAD_GATEWAY,
                "saltedge_error",
                "Salt Edge refused the request",
                extra,
            )
        }
        saltedge_client::Error::Timeout | saltedge_client::Error::Transport(_) => (
            StatusCode::BAD_GATEWAY,
            "saltedge_unreachable",
            "Salt Edge could not be reached",
            extra,
        ),
        _ => (
            StatusCode::BAD_GATEWAY,
            "saltedge_error",
            "Unexpected answer from Salt Edge",
            extra,
        ),
    }
}

/// What a caller is told of a Salt Edge failure: Salt Edge's own error class and message,
/// or what went wrong in our words — never the URL we called (it names our Salt Edge
/// account's endpoints) nor an upstream page's body (a proxy's or load balancer's text);
/// those go to the log.
fn upstream_detail(e: &saltedge_client::Error) -> String {
    use saltedge_client::Error as E;
    match e {
        E::Api { .. } | E::Busy { .. } | E::Timeout => e.to_string(),
        E::UnexpectedStatus { status, .. } => {
            tracing::warn!(error = %e, "unexpected answer from Salt Edge");
            format!("Salt Edge answered HTTP {status} without its error JSON")
        }
        E::Transport(_) => {
            tracing::warn!(error = %e, "Salt Edge could not be reached");
            "Salt Edge could not be reached (the connection failed or was dropped)".to_string()
        }
        E::Decode(_) => {
            tracing::warn!(error = %e, "Salt Edge's answer could not be decoded");
            "Salt Edge's answer did not have the documented shape".to_string()
        }
        E::Config(_) => {
            tracing::error!(error = %e, "Salt Edge client configuration");
            "An internal error occurred.".to_string()
        }
    }
}

/// A shared budget or quota spent for now (the fetch budget, a company's connect sessions):
/// 429 with `Retry-After`, nothing done.
fn busy_parts() -> (StatusCode, &'static str, &'static str, Map<String, Value>) {
    (
        StatusCode::TOO_MANY_REQUESTS,
        "busy",
        "Too many requests for now",
        Map::new(),
    )
}

/// An error as a person or a program is told it: the same words for the API's problem
/// JSON and the console's pages.
pub struct Explained {
    pub status: StatusCode,
    pub code: &'static str,
    pub title: &'static str,
    pub detail: String,
    /// Members beside `detail` (`guidance`: what the user does instead).
    pub extra: Map<String, Value>,
}

impl Explained {
    /// The guidance to show beside the detail, when there is some.
    pub fn guidance(&self) -> Option<&str> {
        self.extra.get("guidance").and_then(Value::as_str)
    }
}

impl ApiError {
    /// Whole seconds until the same request may succeed, for `Retry-After`.
    pub fn retry_after(&self) -> Option<u64> {
        let wait = match self {
            ApiError::RateLimited { retry_after } => return Some(*retry_after),
            ApiError::SaltEdge(saltedge_client::Error::Busy { retry_after }) => *retry_after,
            ApiError::Sync(e) => e.retry_after()?,
            _ => return None,
        };
        Some(wait.as_secs_f64().ceil().max(1.0) as u64)
    }

    /// Status, code and words for this error. Internal details stay in the logs; secrets
    /// never reach either.
    pub fn explain(&self) -> Explained {
        let (status, code, title, extra) = self.parts();
        let detail = match self {
            ApiError::Sync(SyncError::Db(e)) if text_refused(e) => {
                "text must not contain the NUL character (U+0000)".to_string()
            }
            ApiError::Sync(e) if e.category() == Category::Internal => {
                tracing::error!(error = %e, "internal error");
                "An internal error occurred.".to_string()
            }
            ApiError::SaltEdge(e) | ApiError::Sync(SyncError::SaltEdge(e)) => upstream_detail(e),
            other => other.to_string(),
        };
        Explained {
            status,
            code,
            title,
            detail,
            extra,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let Explained {
            status,
            code,
            title,
            detail,
            extra,
        } = self.explain();
        let mut resp = problem(status, code, title, &detail, extra);
        if let Some(retry_after) = self.retry_after() {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(retry_after));
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

impl From<PathRejection> for ApiError {
    fn from(_: PathRejection) -> Self {
        ApiError::NotFound("resource")
    }
}

/// The problem JSON for a status that left the router without one (405 from the method
/// router, 408 from the timeout layer, 413 from a body limit, 414): every error answer of
/// the service has the same shape.
pub fn bare_status_problem(status: StatusCode) -> Response {
    let (code, detail) = match status {
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "this path does not answer this method; see the Allow header",
        ),
        StatusCode::REQUEST_TIMEOUT => (
            "request_timeout",
            "the request took too long and was stopped; nothing was committed unless it said so",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "request body too large"),
        StatusCode::URI_TOO_LONG => ("uri_too_long", "the request URI is too long"),
        StatusCode::NOT_FOUND => ("not_found", "route not found"),
        s if s.is_server_error() => ("internal", "An internal error occurred."),
        _ => ("bad_request", "the request was refused"),
    };
    problem(
        status,
        code,
        status.canonical_reason().unwrap_or("Error"),
        detail,
        Map::new(),
    )
}

/// An RFC 9457 problem document.
pub fn problem(
    status: StatusCode,
    code: &str,
    title: &str,
    detail: &str,
    extra: Map<String, Value>,
) -> Response {
    let mut body = json!({
        "type": format!("https://banksync.dev/problems/{code}"),
        "title": title,
        "status": status.as_u16(),
        "code": code,
        "detail": detail,
    });
    if let Value::Object(m) = &mut body {
        m.extend(extra);
    }
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

pub type ApiResult<T> = Result<T, ApiError>;
