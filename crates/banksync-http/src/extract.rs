//! Extractors whose rejections are problem JSON, and the company behind an API token.

use axum::extract::{FromRequest, FromRequestParts};
use axum::http::request::Parts;
use uuid::Uuid;

use crate::error::ApiError;
use crate::AppState;

#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl<T: serde::Serialize> axum::response::IntoResponse for Json<T> {
    fn into_response(self) -> axum::response::Response {
        axum::Json(self.0).into_response()
    }
}

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// Where the audit middleware learns who made a request (the extractor fills it).
#[derive(Clone, Default)]
pub struct AuditSlot(pub std::sync::Arc<std::sync::Mutex<Option<sync_engine::tokens::Principal>>>);

/// The live token's principal, rate-limited per token; recorded for the audit log.
async fn principal(parts: &mut Parts, state: &AppState) -> Result<sync_engine::tokens::Principal, ApiError> {
    let token = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' ').filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer")).map(|(_, t)| t))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(ApiError::Unauthorized)?;
    let p = sync_engine::tokens::authenticate(&state.pool, token).await?.ok_or(ApiError::Unauthorized)?;
    if let Some(slot) = parts.extensions.get::<AuditSlot>() {
        *slot.0.lock().unwrap() = Some(p);
    }
    if let Err(retry_after) = state.rate.check(p.token_id()) {
        return Err(ApiError::RateLimited { retry_after });
    }
    Ok(p)
}

/// The calling company, from a company token (`Authorization: Bearer <token>`).
#[derive(Debug, Clone, Copy)]
pub struct Company(pub Uuid);

impl FromRequestParts<AppState> for Company {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
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

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        match principal(parts, state).await? {
            sync_engine::tokens::Principal::Operator { .. } => Ok(Admin),
            sync_engine::tokens::Principal::Company { .. } => Err(ApiError::Forbidden),
        }
    }
}

/// Requests per token per minute, counted in this process (each replica counts its own):
/// a fixed one-minute window per token. 0 = no limit.
#[derive(Debug, Default)]
pub struct RateLimiter {
    pub per_minute: u32,
    windows: std::sync::Mutex<std::collections::HashMap<Uuid, (std::time::Instant, u32)>>,
}

impl RateLimiter {
    pub fn new(per_minute: u32) -> Self {
        RateLimiter { per_minute, windows: Default::default() }
    }

    /// Ok, or the seconds to wait.
    pub fn check(&self, token: Uuid) -> Result<(), u64> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let now = std::time::Instant::now();
        let mut w = self.windows.lock().unwrap();
        if w.len() > 100_000 {
            w.retain(|_, (start, _)| now.duration_since(*start).as_secs() < 60);
        }
        let e = w.entry(token).or_insert((now, 0));
        if now.duration_since(e.0).as_secs() >= 60 {
            *e = (now, 0);
        }
        if e.1 >= self.per_minute {
            return Err(60u64.saturating_sub(now.duration_since(e.0).as_secs()).max(1));
        }
        e.1 += 1;
        Ok(())
    }
}
