//! Extractors whose rejections are problem JSON, and the company behind an API token.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::error::ApiError;
use crate::AppState;

/// A JSON request body. Every request body of this API is a JSON object sent as
/// `application/json` (or a `+json` type): another content type is 415, a body that is
/// not JSON 400, and JSON of the wrong shape (an array, a missing field, a wrong type)
/// 422 with the field named — never the parser's own message, which can echo input and
/// name internal types.
pub struct Json<T>(pub T);

impl<T: serde::Serialize> axum::response::IntoResponse for Json<T> {
    fn into_response(self) -> axum::response::Response {
        axum::Json(self.0).into_response()
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let RawBody(bytes) = RawBody::from_request(req, state).await?;
        parse_object(&bytes).map(Json)
    }
}

fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(ct) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Parses a JSON object into `T`: 400 for text that is not JSON, 422 for JSON that is not
/// an object or does not fit `T`.
pub fn parse_object<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
        return Err(ApiError::BadRequest {
            code: "malformed_json",
            detail: format!(
                "the body is not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            ),
        });
    }
    // serde would take an array for a struct (its fields in order): refused.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::invalid(
            "invalid_body",
            "the body must be a JSON object",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        ApiError::invalid("invalid_body", describe(&path, &e.into_inner().to_string()))
    })
}

/// Says what is wrong with a field in our words, from the kind of serde's message (its
/// fixed prefix) and the field's path; the rest of serde's message is not repeated.
fn describe(path: &str, message: &str) -> String {
    let named = |parent: &str| {
        let name = message.split('`').nth(1).unwrap_or("?");
        if parent == "." || parent.is_empty() {
            name.to_string()
        } else {
            format!("{parent}.{name}")
        }
    };
    let field = if path == "." || path.is_empty() {
        "the body".to_string()
    } else {
        format!("`{path}`")
    };
    if message.starts_with("missing field") {
        format!("`{}` is required", named(path))
    } else if message.starts_with("unknown field") {
        format!("`{}` is not a field of this request", named(path))
    } else if message.starts_with("invalid type") {
        format!("{field} has the wrong type; see the schema")
    } else {
        format!("{field} has an invalid value; see the schema")
    }
}

/// The query string, parsed into `T`; a value of the wrong form is 422 naming the parameter.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(url::form_urlencoded::parse(q.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(Query)
            .map_err(|e| {
                let path = e.path().to_string();
                let message = e.into_inner().to_string();
                let detail = if message.starts_with("missing field") {
                    format!(
                        "query parameter `{}` is required",
                        message.split('`').nth(1).unwrap_or("?")
                    )
                } else {
                    format!(
                        "query parameter `{path}` has an invalid value; see the parameter's schema"
                    )
                };
                ApiError::invalid("invalid_query", detail)
            })
    }
}

/// Path parameters; one that does not parse (not a UUID, not a number) names nothing that
/// exists: 404.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// The raw body within the body limit (413 problem JSON beyond it).
pub struct RawBody(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::body::Bytes::from_request(req, state).await {
            Ok(b) => Ok(RawBody(b)),
            Err(r) if r.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::TooLarge)
            }
            Err(_) => Err(ApiError::BadRequest {
                code: "unreadable_body",
                detail: "the request body could not be read".into(),
            }),
        }
    }
}

/// Where the audit middleware learns who made a request (the extractor fills it).
#[derive(Clone, Default)]
pub struct AuditSlot(pub std::sync::Arc<std::sync::Mutex<Option<sync_engine::tokens::Principal>>>);

/// The live token's principal, rate-limited per token; recorded for the audit log.
async fn principal(
    parts: &mut Parts,
    state: &AppState,
) -> Result<sync_engine::tokens::Principal, ApiError> {
    let caller = crate::guard::Caller::admit(parts, state)
        .map_err(|retry_after| ApiError::RateLimited { retry_after })?;
    let token = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split_once(' ')
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, t)| t)
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(ApiError::Unauthorized)?;
    let Some(p) = sync_engine::tokens::authenticate(&state.pool, token).await? else {
        let what = format!("{} {}", parts.method, parts.uri.path());
        caller.refused(state, &what).await;
        return Err(ApiError::Unauthorized);
    };
    if let Some(slot) = parts.extensions.get::<AuditSlot>() {
        *slot.0.lock().unwrap() = Some(p);
    }
    if let Err(retry_after) = state.rate.count(p.token_id()) {
        return Err(ApiError::RateLimited { retry_after });
    }
    Ok(p)
}

/// The calling company, from a company token (`Authorization: Bearer <token>`).
#[derive(Debug, Clone, Copy)]
pub struct Company(pub Uuid);

impl FromRequestParts<AppState> for Company {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match principal(parts, state).await? {
            sync_engine::tokens::Principal::Company { company_id, .. } => {
                tracing::Span::current().record("company", tracing::field::display(company_id));
                Ok(Company(company_id))
            }
            sync_engine::tokens::Principal::Operator { .. } => Err(ApiError::OperatorOnCompanyData),
        }
    }
}

/// A caller with an operator token (`banksync token create --operator`).
#[derive(Debug, Clone, Copy)]
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match principal(parts, state).await? {
            sync_engine::tokens::Principal::Operator { .. } => Ok(Admin),
            sync_engine::tokens::Principal::Company { .. } => Err(ApiError::Forbidden),
        }
    }
}
