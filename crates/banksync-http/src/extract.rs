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

/// The calling company, from `Authorization: Bearer <token>`.
#[derive(Debug, Clone, Copy)]
pub struct Company(pub Uuid);

impl FromRequestParts<AppState> for Company {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(ApiError::Unauthorized)?;
        let (company, admin) = sync_engine::tokens::authenticate(&state.pool, token).await?.ok_or(ApiError::Unauthorized)?;
        tracing::Span::current().record("company", tracing::field::display(company));
        parts.extensions.insert(AdminFlag(admin));
        Ok(Company(company))
    }
}

#[derive(Clone, Copy)]
struct AdminFlag(bool);

/// A caller with an admin token (`banksync token create --admin`).
#[derive(Debug, Clone, Copy)]
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Company::from_request_parts(parts, state).await?;
        match parts.extensions.get::<AdminFlag>() {
            Some(AdminFlag(true)) => Ok(Admin),
            _ => Err(ApiError::Forbidden),
        }
    }
}
