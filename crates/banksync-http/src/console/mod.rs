//! The console under `/console`: server-rendered pages (maud) for a company's bookkeeper
//! and for operators, over the same engine functions as the REST API — every action here
//! is a call to [`sync_engine::flows`] (or the jobs queue, for operators) that the API
//! makes too.
//!
//! * Sign-in: a company or operator API token (or a one-time link, which `banksync demo`
//!   prints) opens a session ([`sync_engine::console`]); the cookie is `HttpOnly`,
//!   `SameSite=Lax` (so that Salt Edge Connect's redirect back arrives signed in) and
//!   `Secure` when the public URL is https. A session ends when it expires, on sign-out,
//!   or when its token is revoked or expires.
//! * Every form that changes something is a POST carrying the session's CSRF token, checked
//!   by [`Posted`] before the handler runs; the login form has its own double-submit token.
//! * Pages send a strict Content-Security-Policy (scripts and styles from `/console/assets`
//!   only), `frame-ancestors 'none'` and `Referrer-Policy: no-referrer`.
//! * htmx 2 ([`assets`]), vendored from the npm registry, refreshes a running sync's
//!   progress; every page works without it.

mod assets;
mod bookkeeper;
pub mod format;
mod layout;
mod operator;

use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::de::DeserializeOwned;
use sync_engine::console::{self as store, Session};
use sync_engine::tokens::Principal;
use uuid::Uuid;

use crate::error::ApiError;
use crate::guard::{AuditNote, Caller, Recorded};
use crate::AppState;

pub const SESSION_COOKIE: &str = "banksync_session";
const LOGIN_COOKIE: &str = "banksync_login";
const FLASH_COOKIE: &str = "banksync_flash";

/// The console's routes (state: the application's).
pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/console", get(home))
        .route("/console/", get(home))
        .route("/console/login", get(login_form).post(login))
        .route("/console/sign-in/{code}", get(sign_in_link))
        .route("/console/logout", post(logout))
        .route("/console/assets/{name}", get(assets::serve))
        .merge(bookkeeper::routes())
        .merge(operator::routes())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::audit,
        ))
        .layer(axum::middleware::from_fn(security_headers))
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'self' http: https:; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // The sign-in link's code never leaves in a Referer.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// A cookie's value from the request's `Cookie` headers.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty())
}

/// `Set-Cookie` for a console cookie (`max_age` 0 deletes it).
fn set_cookie(st: &AppState, name: &str, value: &str, max_age: i64) -> HeaderValue {
    let secure = if st.console_secure_cookies {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/console; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    ))
    .expect("cookie values are URL-safe")
}

/// A message shown once on the next page (after a redirect).
#[derive(Debug, Clone)]
pub struct Flash {
    pub error: bool,
    pub text: String,
}

fn read_flash(headers: &HeaderMap) -> Option<Flash> {
    let raw = cookie(headers, FLASH_COOKIE)?;
    let mut error = None;
    let mut text = None;
    for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
        match &*k {
            "k" => error = Some(v == "error"),
            "m" => text = Some(v.into_owned()),
            _ => {}
        }
    }
    Some(Flash {
        error: error?,
        text: text?,
    })
}

/// 303 to `to` (a console path) with a message for the next page.
fn redirect_with(st: &AppState, to: &str, flash: Option<Flash>) -> Response {
    let mut resp = (
        StatusCode::SEE_OTHER,
        [(
            header::LOCATION,
            HeaderValue::from_str(to).expect("console paths are ASCII"),
        )],
    )
        .into_response();
    if let Some(f) = flash {
        let value = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("k", if f.error { "error" } else { "notice" })
            .append_pair("m", &f.text)
            .finish();
        resp.headers_mut()
            .append(header::SET_COOKIE, set_cookie(st, FLASH_COOKIE, &value, 60));
    }
    resp
}

fn notice(st: &AppState, to: &str, text: impl Into<String>) -> Response {
    redirect_with(
        st,
        to,
        Some(Flash {
            error: false,
            text: text.into(),
        }),
    )
}

/// Back to `to` with the error as the API words it: its detail and the guide's guidance.
fn failed(st: &AppState, to: &str, e: ApiError) -> Response {
    let ex = e.explain();
    let text = match ex.guidance() {
        Some(g) => format!("{} {g}", ex.detail),
        None => ex.detail.clone(),
    };
    redirect_with(st, to, Some(Flash { error: true, text }))
}

/// The signed-in user of a console page: a live session, its cookie's secret, and the
/// message left by the previous action.
pub struct User {
    pub session: Session,
    secret: String,
    pub flash: Option<Flash>,
}

impl User {
    pub fn locale(&self) -> &str {
        &self.session.locale
    }
}

/// Not signed in (or the session ended): to the login page, remembering a GET's page.
fn to_login(st: &AppState, parts: &Parts, ended: bool) -> Response {
    let next = if parts.method == axum::http::Method::GET {
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/console")
    } else {
        "/console"
    };
    let to = format!(
        "/console/login?{}",
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("next", next)
            .finish()
    );
    let flash = ended.then(|| Flash {
        error: true,
        text: "Your session has ended. Sign in again.".into(),
    });
    let mut resp = redirect_with(st, &to, flash);
    if ended {
        resp.headers_mut()
            .append(header::SET_COOKIE, set_cookie(st, SESSION_COOKIE, "", 0));
    }
    resp
}

impl FromRequestParts<AppState> for User {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Response> {
        let Some(secret) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(to_login(st, parts, false));
        };
        let session = match store::session(&st.pool, &secret).await {
            Ok(Some(s)) => s,
            Ok(None) => return Err(to_login(st, parts, true)),
            Err(e) => return Err(layout::error_page(ApiError::from(e))),
        };
        if let Some(slot) = parts.extensions.get::<crate::extract::AuditSlot>() {
            *slot.0.lock().unwrap() = Some(session.principal);
        }
        if let Err(retry_after) = st.rate.count(session.principal.token_id()) {
            return Err(layout::error_page(ApiError::RateLimited { retry_after }));
        }
        Ok(User {
            session,
            secret,
            flash: read_flash(&parts.headers),
        })
    }
}

/// A company's bookkeeper (a session opened with a company token).
pub struct Book {
    pub user: User,
    pub company: Uuid,
}

impl FromRequestParts<AppState> for Book {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Response> {
        let user = User::from_request_parts(parts, st).await?;
        match user.session.principal {
            Principal::Company { company_id, .. } => Ok(Book {
                user,
                company: company_id,
            }),
            Principal::Operator { .. } => Err(layout::error_page(ApiError::OperatorOnCompanyData)),
        }
    }
}

/// An operator (a session opened with an operator token).
pub struct Ops {
    pub user: User,
}

impl FromRequestParts<AppState> for Ops {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Response> {
        let user = User::from_request_parts(parts, st).await?;
        match user.session.principal {
            Principal::Operator { .. } => Ok(Ops { user }),
            Principal::Company { .. } => Err(layout::error_page(ApiError::Forbidden)),
        }
    }
}

impl AsRef<User> for Book {
    fn as_ref(&self) -> &User {
        &self.user
    }
}

impl AsRef<User> for Ops {
    fn as_ref(&self) -> &User {
        &self.user
    }
}

impl AsRef<User> for User {
    fn as_ref(&self) -> &User {
        self
    }
}

/// A form POSTed by a signed-in user (`U`: [`User`], [`Book`] or [`Ops`]) whose `csrf` field
/// is the session's token; the other fields are `T`. Checked before the handler runs, so no
/// console action exists without the check.
pub struct Posted<U, T>(pub U, pub T);

impl<U, T> FromRequest<AppState> for Posted<U, T>
where
    U: FromRequestParts<AppState, Rejection = Response> + AsRef<User> + Send,
    T: DeserializeOwned,
{
    type Rejection = Response;

    async fn from_request(req: Request, st: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let user = U::from_request_parts(&mut parts, st).await?;
        let req = Request::from_parts(parts, body);
        let crate::extract::RawBody(bytes) = crate::extract::RawBody::from_request(req, st)
            .await
            .map_err(layout::error_page)?;
        let given = url::form_urlencoded::parse(&bytes)
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        if !user.as_ref().session.csrf_matches(&given) {
            return Err(layout::csrf_refused());
        }
        let form: T = serde_urlencoded::from_bytes(&bytes).map_err(|_| {
            layout::error_page(ApiError::invalid(
                "invalid_form",
                "the form's fields are incomplete or malformed; reload the page and try again",
            ))
        })?;
        Ok(Posted(user, form))
    }
}

/// An error on a console page: shown as a page with the API's words and status.
pub struct PageError(ApiError);

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        PageError(e)
    }
}

impl From<sync_engine::SyncError> for PageError {
    fn from(e: sync_engine::SyncError) -> Self {
        PageError(e.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        layout::error_page(self.0)
    }
}

impl From<axum::extract::rejection::PathRejection> for PageError {
    fn from(_: axum::extract::rejection::PathRejection) -> Self {
        PageError(ApiError::NotFound("page"))
    }
}

/// Path parameters; one that does not parse (not a UUID, not a number) names no page: 404.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(PageError))]
pub struct Path<T>(pub T);

/// The query string; a parameter of the wrong form is a 422 page naming it.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, st: &S) -> Result<Self, PageError> {
        crate::extract::Query::<T>::from_request_parts(parts, st)
            .await
            .map(|q| Query(q.0))
            .map_err(PageError)
    }
}

/// A form with nothing but its CSRF token.
#[derive(serde::Deserialize)]
pub struct Empty {}

/// A session's first page: a company's connections, or the operator's job queue.
fn landing(s: &Session) -> &'static str {
    match s.principal {
        Principal::Company { .. } => "/console/connections",
        Principal::Operator { .. } => "/console/ops/jobs",
    }
}

async fn home(State(st): State<AppState>, headers: HeaderMap) -> Response {
    let to = match cookie(&headers, SESSION_COOKIE) {
        Some(secret) => match store::session(&st.pool, &secret).await {
            Ok(Some(s)) => landing(&s),
            _ => "/console/login",
        },
        None => "/console/login",
    };
    redirect_with(&st, to, None)
}

#[derive(serde::Deserialize)]
struct NextQuery {
    next: Option<String>,
}

/// Only a console path is a place to go after signing in (no open redirect).
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with("/console")
                && !n.starts_with("//")
                && !n.contains('\\')
                && n.chars().all(|c| c.is_ascii_graphic()) =>
        {
            n
        }
        _ => "/console",
    }
}

async fn login_form(
    State(st): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> Response {
    // The login form's own CSRF token: a cookie the form must repeat (double submit).
    let token = Uuid::new_v4().simple().to_string();
    let mut resp = layout::login_page(
        &token,
        safe_next(q.next.as_deref()),
        read_flash(&headers).as_ref(),
    );
    let h = resp.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(&st, LOGIN_COOKIE, &token, 3600),
    );
    h.append(header::SET_COOKIE, set_cookie(&st, FLASH_COOKIE, "", 0));
    resp
}

#[derive(serde::Deserialize)]
struct LoginForm {
    token: String,
    csrf: String,
    next: Option<String>,
}

async fn login(
    State(st): State<AppState>,
    parts: Parts,
    axum::extract::Form(f): axum::extract::Form<LoginForm>,
) -> Response {
    let expected = cookie(&parts.headers, LOGIN_COOKIE).unwrap_or_default();
    let same = sync_engine::digest::constant_time_eq(expected.as_bytes(), f.csrf.as_bytes());
    if expected.is_empty() || !same {
        return layout::csrf_refused();
    }
    let caller = match Caller::admit(&parts, &st) {
        Ok(c) => c,
        Err(retry_after) => return too_many_failures(retry_after),
    };
    let next = safe_next(f.next.as_deref()).to_string();
    match store::sign_in(&st.pool, f.token.trim(), st.console_session_ttl).await {
        Ok(Some((secret, s))) => signed_in(&st, &parts, &secret, &s, &next),
        Ok(None) => {
            caller.refused(&st, "console sign-in").await;
            let to = format!(
                "/console/login?{}",
                url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("next", &next)
                    .finish()
            );
            let mut resp = redirect_with(
                &st,
                &to,
                Some(Flash {
                    error: true,
                    text: "That token is not valid (unknown, revoked or expired).".into(),
                }),
            );
            resp.extensions_mut().insert(Recorded);
            resp
        }
        Err(e) => layout::error_page(ApiError::from(e)),
    }
}

/// Over the failed sign-ins allowed from one address: the login page says when to retry.
fn too_many_failures(retry_after: u64) -> Response {
    layout::error_page(ApiError::RateLimited { retry_after })
}

/// A session opened: attributed to its token in the audit log (the middleware writes the
/// entry, with the client address) and its cookie set.
fn signed_in(st: &AppState, parts: &Parts, secret: &str, s: &Session, next: &str) -> Response {
    if let Some(slot) = parts.extensions.get::<crate::extract::AuditSlot>() {
        *slot.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(s.principal);
    }
    let to = if next == "/console" { landing(s) } else { next };
    let mut resp = redirect_with(st, to, None);
    resp.extensions_mut().insert(AuditNote("console sign-in"));
    let h = resp.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(
            st,
            SESSION_COOKIE,
            secret,
            st.console_session_ttl.num_seconds(),
        ),
    );
    h.append(header::SET_COOKIE, set_cookie(st, LOGIN_COOKIE, "", 0));
    resp
}

/// A one-time link (`banksync demo` prints one): opens a session and forgets the code.
async fn sign_in_link(
    State(st): State<AppState>,
    parts: Parts,
    Path(code): Path<String>,
) -> Response {
    let caller = match Caller::admit(&parts, &st) {
        Ok(c) => c,
        Err(retry_after) => return too_many_failures(retry_after),
    };
    match store::sign_in_with_link(&st.pool, &code, st.console_session_ttl).await {
        Ok(Some((secret, s))) => signed_in(&st, &parts, &secret, &s, "/console"),
        Ok(None) => {
            caller.refused(&st, "console sign-in link").await;
            redirect_with(
                &st,
                "/console/login",
                Some(Flash {
                    error: true,
                    text:
                        "That sign-in link was used already or has expired. Sign in with a token."
                            .into(),
                }),
            )
        }
        Err(e) => layout::error_page(ApiError::from(e)),
    }
}

async fn logout(State(st): State<AppState>, Posted(user, _): Posted<User, Empty>) -> Response {
    if let Err(e) = store::sign_out(&st.pool, &user.secret).await {
        return layout::error_page(ApiError::from(e));
    }
    let mut resp = notice(&st, "/console/login", "Signed out.");
    resp.extensions_mut().insert(AuditNote("console sign-out"));
    resp.headers_mut()
        .append(header::SET_COOKIE, set_cookie(&st, SESSION_COOKIE, "", 0));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_console_paths_are_followed_after_sign_in() {
        assert_eq!(safe_next(Some("/console/journals")), "/console/journals");
        for bad in [
            "https://evil.example/",
            "//evil.example/console",
            "/console\\..\\x",
            "/api/v1/connections",
            "/console/a b",
        ] {
            assert_eq!(safe_next(Some(bad)), "/console", "{bad}");
        }
        assert_eq!(safe_next(None), "/console");
    }

    #[test]
    fn cookies_are_read_by_exact_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("xbanksync_session=no; banksync_session=yes; other=1"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("yes"));
        assert_eq!(cookie(&h, "missing"), None);
    }
}
