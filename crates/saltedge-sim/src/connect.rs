//! The Connect page handed out as `connect_url`: a plain HTML form. Submitting it with the
//! fake credentials (`username` / `secret`, SMS `123456`) completes the connection, posts the
//! callbacks and redirects to `return_to` with `connection_id` (and `error_class` on failure).

use std::collections::HashMap;
use std::sync::Arc;

use crate::errors::ErrorClass;
use crate::wire::CallbackData;
use axum::extract::{Form, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::Utc;

use crate::api::{send_fail_callback, send_fetch_callbacks};
use crate::callbacks::CallbackKind;
use crate::catalogue::{self, AuthKind};
use crate::world::{AwaitingSms, Session, SessionKind};
use crate::SimState;

pub fn routes() -> Router<Arc<SimState>> {
    Router::new().route("/connect/{token}", get(show).post(submit))
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t} · Salt Edge Connect (simulator)</title>\
         <style>body{{font-family:sans-serif;max-width:32em;margin:3em auto}}label{{display:block;margin:.6em 0}}\
         .error{{color:#b00}}</style></head><body><h1>{t}</h1>{body}</body></html>",
        t = esc(title)
    ))
}

fn form(session: &Session, error: Option<&str>) -> Html<String> {
    let mut b = String::new();
    if let Some(e) = error {
        b.push_str(&format!("<p class=\"error\" id=\"error\">{}</p>", esc(e)));
    }
    b.push_str("<form method=\"post\">");
    if session.awaiting_sms.is_some() {
        b.push_str("<p>Enter the code we sent by SMS.</p><label>SMS code <input name=\"sms\" autocomplete=\"one-time-code\"></label>");
    } else {
        let auth = match &session.provider_code {
            Some(code) => {
                let spec = catalogue::spec(code);
                b.push_str(&format!(
                    "<p>Bank: <strong>{}</strong></p>",
                    esc(spec.map(|s| s.name).unwrap_or(code))
                ));
                spec.map(|s| s.auth)
            }
            None => {
                b.push_str("<label>Bank <select name=\"provider_code\">");
                for p in catalogue::PROVIDERS
                    .iter()
                    .filter(|p| session.include_fake_providers || !p.fake)
                {
                    b.push_str(&format!(
                        "<option value=\"{}\">{} ({})</option>",
                        p.code,
                        esc(p.name),
                        p.country
                    ));
                }
                b.push_str("</select></label>");
                Some(AuthKind::Credentials)
            }
        };
        if auth != Some(AuthKind::OAuth) {
            b.push_str("<label>Login <input name=\"login\"></label><label>Password <input name=\"password\" type=\"password\"></label>");
        }
        if !matches!(session.kind, SessionKind::Refresh(_)) {
            b.push_str("<label><input type=\"checkbox\" name=\"consent\" value=\"on\"> I give my consent to share my account details and transactions</label>");
        }
    }
    b.push_str("<button type=\"submit\">Continue</button></form>");
    page("Connect your bank", &b)
}

async fn show(State(s): State<Arc<SimState>>, Path(token): Path<String>) -> Response {
    let w = s.world.lock().unwrap();
    match w.sessions.get(&token) {
        Some(sess) if !sess.done && sess.expires_at > Utc::now() => {
            form(sess, None).into_response()
        }
        _ => (
            StatusCode::NOT_FOUND,
            page(
                "Session expired",
                "<p>This connect session is no longer valid.</p>",
            ),
        )
            .into_response(),
    }
}

/// Where the browser goes when the flow ends.
fn finish(
    return_to: Option<&str>,
    connection_id: Option<&str>,
    error: Option<&ErrorClass>,
) -> Response {
    let mut params = vec![];
    if let Some(id) = connection_id {
        params.push(format!("connection_id={id}"));
    }
    if let Some(e) = error {
        params.push(format!("error_class={e}"));
    }
    match return_to {
        Some(url) => {
            let sep = if url.contains('?') { '&' } else { '?' };
            let loc = format!("{url}{sep}{}", params.join("&"));
            (StatusCode::SEE_OTHER, [(header::LOCATION, loc)]).into_response()
        }
        None => {
            let msg = match error {
                Some(e) => format!("<p class=\"error\" id=\"error\">Connection failed: {e}</p>"),
                None => "<p id=\"done\">Connected. You can close this window.</p>".into(),
            };
            let body = format!(
                "{msg}<p>connection_id: <code id=\"connection_id\">{}</code></p>",
                connection_id.unwrap_or("")
            );
            page("Salt Edge Connect", &body).into_response()
        }
    }
}

enum After {
    Fail(String, ErrorClass, &'static str),
    Interactive(String),
    Success(String),
}

async fn submit(
    State(s): State<Arc<SimState>>,
    Path(token): Path<String>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let field = |k: &str| {
        f.get(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let (after, return_to) = {
        let mut w = s.world.lock().unwrap();
        let Some(session) = w
            .sessions
            .get(&token)
            .cloned()
            .filter(|x| !x.done && x.expires_at > Utc::now())
        else {
            return (
                StatusCode::NOT_FOUND,
                page(
                    "Session expired",
                    "<p>This connect session is no longer valid.</p>",
                ),
            )
                .into_response();
        };
        let return_to = session.return_to.clone();
        let after = if let Some(aw) = &session.awaiting_sms {
            if field("sms").as_deref() == Some(catalogue::SMS_CODE) {
                let add = matches!(session.kind, SessionKind::Refresh(_))
                    && w.data.new_account_on_refresh_session;
                match w.succeed(&aw.connection_id, session.consent.as_ref(), add, false) {
                    Ok(()) => After::Success(aw.connection_id.clone()),
                    Err(e) => {
                        return (StatusCode::BAD_REQUEST, form(&session, Some(&e.message)))
                            .into_response()
                    }
                }
            } else {
                let _ = w.fail_attempt(
                    &aw.connection_id,
                    &ErrorClass::InvalidInteractiveCredentials,
                    "Invalid SMS code.",
                );
                After::Fail(
                    aw.connection_id.clone(),
                    ErrorClass::InvalidInteractiveCredentials,
                    "Invalid SMS code.",
                )
            }
        } else {
            let Some(code) = session
                .provider_code
                .clone()
                .or_else(|| field("provider_code"))
            else {
                return (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    form(&session, Some("Choose your bank.")),
                )
                    .into_response();
            };
            let Some(spec) =
                catalogue::spec(&code).filter(|p| session.include_fake_providers || !p.fake)
            else {
                return (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    form(&session, Some("Unknown bank.")),
                )
                    .into_response();
            };
            if !matches!(session.kind, SessionKind::Refresh(_)) && field("consent").is_none() {
                return (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    form(
                        &session,
                        Some("Please give your consent by checking the consent checkbox."),
                    ),
                )
                    .into_response();
            }
            let login = match spec.auth {
                AuthKind::OAuth => None,
                _ => field("login"),
            };
            let creds_ok = spec.auth == AuthKind::OAuth
                || (login.as_deref() == Some(catalogue::LOGIN)
                    && field("password").as_deref() == Some(catalogue::PASSWORD));
            let existing = match &session.kind {
                SessionKind::Create => None,
                SessionKind::Reconnect(id) | SessionKind::Refresh(id) => Some(id.clone()),
            };
            let duplicate = existing.is_none()
                && creds_ok
                && w.duplicate_of(&session.customer_id, &code, login.as_deref())
                    .is_some();
            let conn_id = match &existing {
                Some(id) => id.clone(),
                None => match w.new_connection_shell(
                    &session.customer_id,
                    &code,
                    login.as_deref(),
                    session.daily_refresh,
                    session.custom_fields.clone(),
                ) {
                    Ok(id) => id,
                    Err(e) => {
                        return (StatusCode::BAD_REQUEST, form(&session, Some(&e.message)))
                            .into_response()
                    }
                },
            };
            if !creds_ok {
                let _ = w.fail_attempt(
                    &conn_id,
                    &ErrorClass::InvalidCredentials,
                    "Invalid login or password.",
                );
                After::Fail(
                    conn_id,
                    ErrorClass::InvalidCredentials,
                    "Invalid login or password.",
                )
            } else if duplicate {
                let msg = "You have already used these credentials to connect with this provider.";
                let _ = w.fail_attempt(&conn_id, &ErrorClass::ConnectionDuplicated, msg);
                After::Fail(conn_id, ErrorClass::ConnectionDuplicated, msg)
            } else if spec.auth == AuthKind::Interactive {
                if let Some(rec) = w.connections.get_mut(&conn_id) {
                    rec.login = login.clone();
                }
                let _ = w.set_interactive_stage(&conn_id);
                let sess = w.sessions.get_mut(&token).expect("session exists");
                sess.awaiting_sms = Some(AwaitingSms {
                    connection_id: conn_id.clone(),
                    provider_code: code.clone(),
                    login: login.unwrap_or_default(),
                });
                After::Interactive(conn_id)
            } else {
                if let Some(rec) = w.connections.get_mut(&conn_id) {
                    rec.login = login.clone();
                }
                let add = matches!(session.kind, SessionKind::Refresh(_))
                    && w.data.new_account_on_refresh_session;
                match w.succeed(&conn_id, session.consent.as_ref(), add, false) {
                    Ok(()) => After::Success(conn_id),
                    Err(e) => {
                        After::Fail(conn_id, e.class, "The connection could not be completed.")
                    }
                }
            }
        };
        if !matches!(after, After::Interactive(_)) {
            if let Some(sess) = w.sessions.get_mut(&token) {
                sess.done = true;
            }
        }
        (after, return_to)
    };
    match after {
        After::Success(id) => {
            send_fetch_callbacks(&s, &id);
            finish(return_to.as_deref(), Some(&id), None)
        }
        After::Fail(id, class, msg) => {
            send_fail_callback(&s, &id, &class, msg);
            finish(return_to.as_deref(), Some(&id), Some(&class))
        }
        After::Interactive(id) => {
            let customer_id = s
                .world
                .lock()
                .unwrap()
                .connections
                .get(&id)
                .map(|c| c.conn.customer_id.clone())
                .unwrap_or_default();
            s.callbacks.send(
                CallbackKind::Interactive,
                CallbackData {
                    connection_id: id,
                    customer_id,
                    custom_fields: serde_json::json!({}),
                    stage: Some("interactive".into()),
                    html: Some(crate::world::SMS_HTML.into()),
                    session_expires_at: Some(Utc::now() + chrono::Duration::minutes(5)),
                    interactive_fields_names: Some(vec!["sms".into()]),
                    interactive_fields_options: Some(serde_json::json!({})),
                    ..Default::default()
                },
            );
            let w = s.world.lock().unwrap();
            let sess = w.sessions.get(&token).expect("session exists");
            form(sess, None).into_response()
        }
    }
}
