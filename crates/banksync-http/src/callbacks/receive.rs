//! `POST` to each registered callback URL: verify, store once, answer.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use saltedge_client::models::CallbackBody;
use sync_engine::inbox::Stored;
use sync_engine::status::CallbackOutcome;

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
    responses((status = 200, description = "stored (or a redelivery, ignored)", body = crate::dto::CallbackAck),
              (status = 401, description = "missing_signature, signature_not_match, stale_callback…: not from Salt Edge, or too old"),
              (status = 400, description = "malformed_callback: signed but not a callback"),
              (status = 413, description = "payload_too_large")))]
pub async fn receive(
    State(st): State<AppState>,
    kind: &'static str,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<crate::dto::CallbackAck>> {
    let registered = st
        .callbacks
        .url(kind)
        .ok_or(ApiError::NotFound("callback kind"))?;
    if let Err(e) = verify::verify(
        &st.verifier,
        st.verifier_v6.as_ref(),
        registered,
        &headers,
        &body,
    ) {
        if let ApiError::BadSignature(code) = &e {
            st.metrics.callback(kind, code);
        }
        tracing::warn!(kind, error = %e, "callback rejected");
        return Err(e);
    }
    // Verified as sent; stored and read with the client's one text rule (U+0000 and lone
    // surrogates in a bank's or Salt Edge's text become U+FFFD), as API responses are.
    let repaired = saltedge_client::text::storable_json(&body);
    let text = std::str::from_utf8(&repaired).map_err(|_| ApiError::BadRequest {
        code: "malformed_callback",
        detail: "body is not UTF-8".into(),
    })?;
    let parsed: CallbackBody = serde_json::from_str(text).map_err(|e| {
        st.metrics.callback(kind, "malformed");
        tracing::warn!(kind, error = %e, "signed callback does not parse");
        ApiError::BadRequest {
            code: "malformed_callback",
            detail: format!(
                "the body is not a Salt Edge callback (line {}, column {})",
                e.line(),
                e.column()
            ),
        }
    })?;
    if parsed.meta.time < chrono::Utc::now() - st.callback_max_age {
        st.metrics.callback(kind, "stale");
        return Err(ApiError::BadSignature("stale_callback"));
    }
    let stored = st
        .inbox
        .store(
            kind,
            text,
            Some(parsed.data.connection_id.as_str()).filter(|c| !c.is_empty()),
            Some(parsed.meta.time),
        )
        .await?;
    st.metrics.callback(
        kind,
        match stored {
            Stored::Accepted => "accepted",
            Stored::Duplicate => "duplicate",
        },
    );
    tracing::info!(kind, connection = %parsed.data.connection_id, ?stored, "callback stored");
    let status = match stored {
        Stored::Accepted => CallbackOutcome::Accepted,
        Stored::Duplicate => CallbackOutcome::Duplicate,
    };
    Ok(Json(crate::dto::CallbackAck { status }))
}
