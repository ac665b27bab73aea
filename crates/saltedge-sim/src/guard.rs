//! What every API request passes before its handler, in Salt Edge's order: it is logged,
//! injected faults fire, `App-id`/`Secret` are checked, then the request signature
//! (`Expires-at|METHOD|full URL|body`, see [`crate::sigs`]) is verified against the client's public key.

use std::sync::Arc;

use crate::errors::ErrorClass;
use crate::sigs;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api::error_response;
use crate::faults::{self, FaultAction};
use crate::{ClientStatus, RequestRecord, SimState};

const MAX_BODY: usize = 8 * 1024 * 1024;

pub async fn guard(State(state): State<Arc<SimState>>, req: Request, next: Next) -> Response {
    let method = req.method().as_str().to_string();
    let path = req
        .extensions()
        .get::<axum::extract::OriginalUri>()
        .map(|o| o.0.path().to_string())
        .unwrap_or_else(|| req.uri().path().to_string());
    let signed = req.headers().contains_key("signature");
    state.requests.lock().unwrap().push(RequestRecord {
        method: method.clone(),
        path: path.clone(),
        at_ms: state.started.elapsed().as_secs_f64() * 1000.0,
        signed,
        customer_secret: req.headers().contains_key("customer-secret"),
        connection_secret: req.headers().contains_key("connection-secret"),
    });

    let actions = {
        let mut f = state.faults.lock().unwrap();
        let (rules, rng) = &mut *f;
        faults::pick(rules, &method, &path, rng)
    };
    let mut drop_after = false;
    for a in actions {
        match a {
            FaultAction::Delay(ms) => {
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await
            }
            FaultAction::ErrorClass(class) => {
                let class = ErrorClass::parse(&class);
                return error_response(&class, &format!("Injected {class}"));
            }
            FaultAction::Status(status) => {
                let class = match status {
                    429 => ErrorClass::TooManyRequests,
                    _ => ErrorClass::InternalServerError,
                };
                let mut r = error_response(&class, "Injected failure");
                *r.status_mut() = axum::http::StatusCode::from_u16(status)
                    .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
                return r;
            }
            FaultAction::Drop => drop_after = true,
        }
    }

    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => return error_response(&ErrorClass::WrongRequestFormat, "Request body too large"),
    };
    if let Err((class, msg)) = check_auth(&state, &parts, &bytes) {
        return error_response(&class, &msg);
    }
    let mut response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let rewrites = state.body_rewrites.lock().unwrap().clone();
    if !rewrites.is_empty() {
        response = rewrite(response, &rewrites).await;
    }
    if drop_after {
        return dropped(response);
    }
    response
}

async fn rewrite(response: Response, rules: &[(String, String)]) -> Response {
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    for (from, to) in rules {
        text = text.replace(from.as_str(), to);
    }
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(text))
}

/// Keeps the status and headers, sends the first bytes, then fails the body: the client
/// sees the connection die mid-answer.
fn dropped(response: Response) -> Response {
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(Bytes::from_static(b"{\"data\":[")),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "injected drop",
        )),
    ];
    Response::from_parts(parts, Body::from_stream(futures::stream::iter(chunks))).into_response()
}

fn check_auth(
    state: &SimState,
    parts: &axum::http::request::Parts,
    body: &Bytes,
) -> Result<(), (ErrorClass, String)> {
    let h = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let app_id = h("app-id").ok_or((
        ErrorClass::AppIdNotProvided,
        "App-id header is missing".to_string(),
    ))?;
    let secret = h("secret").ok_or((
        ErrorClass::SecretNotProvided,
        "Secret header is missing".to_string(),
    ))?;
    if app_id != state.cfg.app_id || secret != state.cfg.secret {
        return Err((
            ErrorClass::ApiKeyNotFound,
            "API key with provided App-id and Secret was not found.".into(),
        ));
    }
    let signature = h("signature");
    let Some(signature) = signature else {
        if state.cfg.client_status == ClientStatus::Live {
            return Err((
                ErrorClass::MissingSignature,
                "Signature header is missing".into(),
            ));
        }
        return Ok(());
    };
    let expires = h("expires-at").ok_or((
        ErrorClass::MissingExpiresAt,
        "Expires-at header is missing".to_string(),
    ))?;
    let expires: i64 = expires.trim().parse().map_err(|_| {
        (
            ErrorClass::ExpiresAtInvalid,
            "Expires-at is not a UNIX timestamp".to_string(),
        )
    })?;
    let now = chrono::Utc::now().timestamp();
    if expires > now + 3600 {
        return Err((
            ErrorClass::ExpiresAtInvalid,
            "Expires-at is more than 1 hour in the future".into(),
        ));
    }
    if expires < now {
        return Err((ErrorClass::RequestExpired, "Request has expired".into()));
    }
    let key = state.client_key.as_ref().ok_or((
        ErrorClass::PublicKeyNotProvided,
        "Client public key is not provided".to_string(),
    ))?;
    let host = h("host").unwrap_or_default();
    // Nesting strips `/api/v5` from `uri`; the signature covers the URL as sent.
    let uri = parts
        .extensions
        .get::<axum::extract::OriginalUri>()
        .map(|o| &o.0)
        .unwrap_or(&parts.uri);
    let path_q = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let url = format!("{}://{host}{path_q}", state.public_base.scheme());
    let body = std::str::from_utf8(body).map_err(|_| {
        (
            ErrorClass::WrongRequestFormat,
            "body is not UTF-8".to_string(),
        )
    })?;
    let signed = sigs::request_string(
        &expires.to_string(),
        parts.method.as_str(),
        &url,
        body,
        None,
    );
    if key.verifies(&signed, &signature) {
        Ok(())
    } else {
        Err((
            ErrorClass::SignatureNotMatch,
            "Signature does not match".to_string(),
        ))
    }
}
