//! `POST` to each registered callback URL: verify, store once, answer.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use saltedge_client::models::CallbackBody;
use serde_json::json;
use sync_engine::inbox::{self, Stored};

use crate::callbacks::verify;
use crate::error::{ApiError, ApiResult};
use crate::extract::Json;
use crate::AppState;

/// Receives a Salt Edge callback. Authenticated by its signature only. Each kind answers at
/// the URL registered for it at Salt Edge (`server.callback_urls`); by default
/// `{public_base_url}callbacks/saltedge/{kind}`.
#[utoipa::path(post, path = "/callbacks/saltedge/{kind}", tag = "callbacks",
    params(("kind" = String, Path, description = "success, fail, notify, interactive, destroy or service")),
    request_body(content = String, description = "Salt Edge's callback JSON, signed in the Signature header", content_type = "application/json"),
    responses((status = 200, description = "stored (or a redelivery, ignored)"), (status = 401, description = "bad or missing signature"),
              (status = 400, description = "signed but malformed")))]
pub async fn receive(State(st): State<AppState>, kind: &'static str, headers: HeaderMap, body: Bytes) -> ApiResult<Json<serde_json::Value>> {
    let registered = st.callbacks.url(kind).ok_or(ApiError::NotFound("callback kind"))?;
    if let Err(e) = verify::verify(&st.verifier, registered, &headers, &body) {
        if let ApiError::BadSignature(code) = &e {
            st.metrics.callback(kind, code);
        }
        tracing::warn!(kind, error = %e, "callback rejected");
        return Err(e);
    }
    let text = std::str::from_utf8(&body).map_err(|_| ApiError::BadRequest { code: "malformed_callback", detail: "body is not UTF-8".into() })?;
    let parsed: CallbackBody = serde_json::from_str(text).map_err(|e| {
        st.metrics.callback(kind, "malformed");
        ApiError::BadRequest { code: "malformed_callback", detail: e.to_string() }
    })?;
    if parsed.meta.time < chrono::Utc::now() - st.callback_max_age {
        st.metrics.callback(kind, "stale");
        return Err(ApiError::BadSignature("stale_callback"));
    }
    let stored = inbox::store(&st.pool, &kind, text, Some(&parsed.data.connection_id), Some(parsed.meta.time)).await?;
    st.metrics.callback(kind, match stored {
        Stored::Accepted => "accepted",
        Stored::Duplicate => "duplicate",
    });
    tracing::info!(kind, connection = %parsed.data.connection_id, ?stored, "callback stored");
    Ok(Json(json!({ "status": stored })))
}
