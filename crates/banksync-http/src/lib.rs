//! The HTTP surface of banksync.
//!
//! * [`routes`]: the REST API under `/api/v1` (one file per area) and operations endpoints;
//! * [`callbacks`]: Salt Edge callback receivers ([`callbacks::verify`] is where signatures
//!   are checked);
//! * [`error`]: the one mapping from errors to problem JSON;
//! * [`extract`]: token authentication and extractors that reject with problem JSON;
//! * [`openapi`]: the generated OpenAPI 3.1 document; [`metrics`]: Prometheus;
//! * [`serve`]: plain HTTP or HTTPS (rustls) with graceful shutdown.

pub mod callbacks;
pub mod console;
pub mod dto;
pub mod error;
pub mod extract;
pub mod guard;
/// Request fields as the schema states them (the engine's domain types check them).
pub use sync_engine::flows::input;
pub mod metrics;
pub mod openapi;
pub mod paging;
pub mod routes;
pub mod serve;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use saltedge_client::{Client, Verifier};
use sqlx::PgPool;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::error::ApiError;
use crate::routes::ops;

/// What every handler and middleware shares, behind one `Arc`: axum clones the state for
/// each extractor of each request, and a clone is now one atomic increment (it was each
/// field in turn, the callback keys' bytes included: ~2.5 % of the callback bench's CPU).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// [`AppState`]'s fields.
pub struct Shared {
    pub pool: PgPool,
    pub client: Client,
    /// Salt Edge's public key, for callbacks.
    pub verifier: Verifier,
    /// The callback URLs as registered at Salt Edge, one per kind.
    pub callbacks: Arc<callbacks::urls::CallbackUrls>,
    /// Older callbacks are refused (a replay of a stale event).
    pub callback_max_age: chrono::Duration,
    /// Origins (`https://books.example`) every company may send users back to after
    /// Connect (each company may add its own), and each company's quota of sessions.
    pub connect: Arc<sync_engine::flows::ConnectPolicy>,
    pub metrics: Arc<metrics::Metrics>,
    /// Requests per token per minute (this replica's count).
    pub rate: Arc<guard::RateLimiter>,
    /// Failed authentications per client address per minute (this replica's count).
    pub auth_failures: Arc<guard::AuthFailures>,
    /// The client address is the last `X-Forwarded-For` entry (a trusted proxy in front).
    pub trust_forwarded_for: bool,
    /// This process's job loops, for `/livez` (none when it runs no worker).
    pub worker_health: Option<Arc<sync_engine::worker::Health>>,
    /// A job loop silent for longer than this is stuck.
    pub livez_stale: Duration,
    /// `/metrics` requires `Authorization: Bearer <this>` when set.
    pub metrics_token: Option<Arc<String>>,
    /// `/metrics` is served on its own listener ([`metrics_router`]), not with the API.
    pub metrics_separate: bool,
    /// The OpenAPI document as this server serves it, made with the router.
    pub openapi: Arc<std::sync::OnceLock<Arc<serde_json::Value>>>,
    /// The page cursors' MAC key, read once from the database ([`paging`]).
    pub cursor_key: Arc<tokio::sync::OnceCell<Vec<u8>>>,
    /// Salt Edge's v6 callback key, when configured.
    pub verifier_v6: Option<Verifier>,
    /// Which webhook URLs may be registered, how many per company, the secrets' key.
    pub webhook_rules: Arc<sync_engine::webhooks::Rules>,
    /// How long a rotated-out webhook secret keeps signing alongside the new one.
    pub webhook_rotation_grace: Duration,
    /// Stores verified callbacks in groups (one commit per group).
    pub inbox: sync_engine::inbox::InboxWriter,
    /// The service's public URL (`server.public_base_url`): the console sends Salt Edge
    /// Connect's users back under it. Without it the console cannot link banks.
    pub console_base: Option<Arc<url::Url>>,
    /// Console cookies are `Secure` (the public URL is https).
    pub console_secure_cookies: bool,
    /// How long a console session lasts.
    pub console_session_ttl: chrono::Duration,
}

impl Shared {
    /// The state with [`HttpConfig`]'s defaults ([`Application::build`] applies a
    /// configuration).
    fn new(
        pool: PgPool,
        client: Client,
        verifier: Verifier,
        callbacks: callbacks::urls::CallbackUrls,
    ) -> Self {
        Shared {
            // One group commits at a time, up to four when commits are slow; each holds a
            // connection only while it commits.
            inbox: sync_engine::inbox::InboxWriter::start(pool.clone(), 4),
            pool,
            client,
            verifier,
            callbacks: Arc::new(callbacks),
            callback_max_age: chrono::Duration::hours(72),
            connect: Default::default(),
            metrics: Arc::new(Default::default()),
            rate: Arc::new(guard::RateLimiter::new(0)),
            auth_failures: Arc::new(guard::AuthFailures::new(0)),
            trust_forwarded_for: false,
            worker_health: None,
            livez_stale: Duration::from_secs(300),
            metrics_token: None,
            metrics_separate: false,
            cursor_key: Default::default(),
            openapi: Default::default(),
            verifier_v6: None,
            webhook_rules: Arc::new(sync_engine::webhooks::Rules {
                policy: Default::default(),
                max_endpoints: 0,
                key: sync_engine::webhooks::SecretKey::development(),
            }),
            webhook_rotation_grace: Duration::from_secs(24 * 3600),
            console_base: None,
            console_secure_cookies: false,
            console_session_ttl: chrono::Duration::hours(8),
        }
    }
}

/// What the HTTP service is configured with, besides its connections. `Default` is what a
/// test or the demo wants: callbacks up to 72 hours old, no service-wide `return_to`
/// origins, no per-token rate limit, open `/metrics`.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    pub callback_max_age: chrono::Duration,
    pub return_to_origins: Vec<String>,
    /// Connect sessions (link, update credentials, fetch accounts) a company may start per
    /// minute inside the shared fetch budget (0: no quota), and at once.
    pub connect_sessions_per_minute: u32,
    pub connect_session_burst: u32,
    /// API requests per token per minute, per replica (0: no limit).
    pub rate_limit_per_minute: u32,
    /// Failed authentications per client address per minute, per replica (0: no limit);
    /// over it, the address is refused with 429 until its minute ends.
    pub auth_failures_per_minute: u32,
    /// Take the client address from `X-Forwarded-For` (a trusted proxy in front).
    pub trust_forwarded_for: bool,
    pub livez_stale: Duration,
    pub metrics_token: Option<String>,
    /// `/metrics` is served on its own listener ([`metrics_router`]).
    pub metrics_separate: bool,
    pub limits: HttpLimits,
    /// Salt Edge's v6 callback key (v6 callbacks are refused without it).
    pub callback_verifier_v6: Option<Verifier>,
    /// Which webhook URLs may be registered (the default, for tests and the demo, allows
    /// http and loopback; `serve` takes `[webhooks]` from the configuration).
    pub webhook_policy: sync_engine::webhooks::TargetPolicy,
    /// Webhook endpoints a company may have (0: no cap).
    pub webhook_max_endpoints: u32,
    /// The key webhook secrets are sealed with at rest (the default is the public
    /// development key; `serve` takes `webhooks.secret_key`).
    pub webhook_key: sync_engine::webhooks::SecretKey,
    pub webhook_rotation_grace: Duration,
    /// The service's public URL (the console's links and Connect's way back).
    pub public_base_url: Option<url::Url>,
    /// How long a console session lasts.
    pub console_session_ttl: chrono::Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            callback_max_age: chrono::Duration::hours(72),
            return_to_origins: vec![],
            connect_sessions_per_minute: 0,
            connect_session_burst: 0,
            rate_limit_per_minute: 0,
            auth_failures_per_minute: 0,
            trust_forwarded_for: false,
            livez_stale: Duration::from_secs(300),
            metrics_token: None,
            metrics_separate: false,
            limits: HttpLimits::default(),
            callback_verifier_v6: None,
            webhook_policy: sync_engine::webhooks::TargetPolicy {
                allow_http: true,
                allow_private_targets: true,
            },
            webhook_max_endpoints: 0,
            webhook_key: sync_engine::webhooks::SecretKey::development(),
            webhook_rotation_grace: Duration::from_secs(24 * 3600),
            public_base_url: None,
            console_session_ttl: chrono::Duration::hours(8),
        }
    }
}

/// The HTTP service, built in one place for `serve`, the demo, the load bench and the
/// tests: its state (for what runs beside it) and its router.
pub struct Application {
    pub state: AppState,
    pub router: Router,
}

impl Application {
    /// `worker_health`: this process's job loops, reported by `/livez` (none when the
    /// process runs no worker). Call it within a Tokio runtime: it starts the callback
    /// inbox's writer tasks.
    pub fn build(
        pool: PgPool,
        client: Client,
        verifier: Verifier,
        callbacks: callbacks::urls::CallbackUrls,
        config: &HttpConfig,
        worker_health: Option<Arc<sync_engine::worker::Health>>,
    ) -> Self {
        let mut state = Shared::new(pool, client, verifier, callbacks);
        state.callback_max_age = config.callback_max_age;
        state.connect = Arc::new(sync_engine::flows::ConnectPolicy {
            return_to_origins: config.return_to_origins.clone(),
            sessions_per_minute: config.connect_sessions_per_minute,
            session_burst: config.connect_session_burst,
        });
        state.rate = Arc::new(guard::RateLimiter::new(config.rate_limit_per_minute));
        state.auth_failures = Arc::new(guard::AuthFailures::new(config.auth_failures_per_minute));
        state.trust_forwarded_for = config.trust_forwarded_for;
        state.livez_stale = config.livez_stale;
        state.metrics_token = config.metrics_token.clone().map(Arc::new);
        state.metrics_separate = config.metrics_separate;
        state.worker_health = worker_health;
        state.webhook_rules = Arc::new(sync_engine::webhooks::Rules {
            policy: config.webhook_policy,
            max_endpoints: config.webhook_max_endpoints,
            key: config.webhook_key.clone(),
        });
        state.verifier_v6 = config.callback_verifier_v6.clone();
        state.webhook_rotation_grace = config.webhook_rotation_grace;
        state.console_base = config.public_base_url.clone().map(|mut u| {
            if !u.path().ends_with('/') {
                u.set_path(&format!("{}/", u.path()));
            }
            Arc::new(u)
        });
        state.console_secure_cookies = config
            .public_base_url
            .as_ref()
            .is_some_and(|u| u.scheme() == "https");
        state.console_session_ttl = config.console_session_ttl;
        let state = AppState(Arc::new(state));
        let router = router(state.clone(), &config.limits);
        Application { state, router }
    }
}

/// Refreshes the metrics' database gauges every `every` while the process runs.
pub fn spawn_metrics_refresher(state: &AppState, every: Duration) {
    let (metrics, pool) = (state.metrics.clone(), state.pool.clone());
    tokio::spawn(async move {
        loop {
            metrics.refresh(&pool).await;
            tokio::time::sleep(every).await;
        }
    });
}

/// `/metrics` alone, for `server.metrics_bind`.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(ops::metrics))
        .with_state(state)
}

#[derive(Clone, Debug)]
pub struct HttpLimits {
    pub body_limit_bytes: usize,
    pub request_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            body_limit_bytes: 256 * 1024,
            request_timeout: Duration::from_secs(30),
        }
    }
}

fn router(state: AppState, limits: &HttpLimits) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    // Each operation is registered once, for the router and the document alike.
    let (app, doc) = openapi::api_routes(&state).split_for_parts();
    let doc = openapi::complete(doc, &state.callbacks);
    let _ = state.openapi.set(Arc::new(doc));
    let mut app: Router<AppState> = app;
    for c in state.callbacks.all() {
        let kind = c.kind;
        app = app.route(
            &c.path,
            post(
                move |st: State<AppState>,
                      headers: axum::http::HeaderMap,
                      extract::RawBody(body): extract::RawBody| {
                    callbacks::receive::receive(st, kind, headers, body)
                },
            ),
        );
    }
    app = app.merge(console::router(&state));
    app.route_layer(axum::middleware::from_fn_with_state(state.clone(), count_requests))
        .fallback(|| async { ApiError::NotFound("route") })
        .layer(DefaultBodyLimit::max(limits.body_limit_bytes))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, limits.request_timeout))
        .layer(axum::middleware::from_fn(problems_for_bare_errors))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
            // A console sign-in link's code is a secret: not logged.
            let path = req.uri().path();
            let path = if path.starts_with("/console/sign-in/") { "/console/sign-in/…" } else { path };
            tracing::info_span!("http", method = %req.method(), path = %path, request_id = %id, company = tracing::field::Empty)
        }))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}

/// Records every state-changing API call (method, path, result, token, client address) in
/// the audit log, and any other request whose handler put an [`guard::AuditNote`] on its
/// response (a console sign-in by link).
pub(crate) async fn audit(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let changes = !matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    );
    let slot = extract::AuditSlot::default();
    req.extensions_mut().insert(slot.clone());
    let client = guard::client_addr(req.headers(), req.extensions(), st.trust_forwarded_for);
    let path = req
        .extensions()
        .get::<axum::extract::OriginalUri>()
        .map(|u| u.0.path().to_string())
        .unwrap_or_else(|| req.uri().path().to_string());
    // A console sign-in link's code is a secret: not recorded.
    let path = if path.starts_with("/console/sign-in/") {
        "/console/sign-in/…".to_string()
    } else {
        path
    };
    let action = format!("{} {path}", req.method());
    let resp = next.run(req).await;
    if !changes && resp.extensions().get::<guard::AuditNote>().is_none() {
        return resp;
    }
    let who = *slot.0.lock().unwrap();
    let (token_id, company_id, actor) = match who {
        Some(sync_engine::tokens::Principal::Company {
            token_id,
            company_id,
        }) => (
            Some(token_id),
            Some(company_id),
            format!("token:{token_id}"),
        ),
        Some(sync_engine::tokens::Principal::Operator { token_id }) => {
            (Some(token_id), None, format!("operator:{token_id}"))
        }
        // A refused credential was recorded where it was refused (guard::Caller).
        None if resp.status() == StatusCode::UNAUTHORIZED
            || resp.extensions().get::<guard::Recorded>().is_some() =>
        {
            return resp
        }
        None => (None, None, "anonymous".to_string()),
    };
    let detail = match resp.extensions().get::<guard::AuditNote>() {
        Some(note) => format!("{}; {}", note.0, guard::describe(client)),
        None => guard::describe(client),
    };
    let entry = sync_engine::audit::Entry {
        token_id,
        company_id,
        actor: &actor,
        action: &action,
        status: Some(resp.status().as_u16() as i32),
        detail: Some(&detail),
    };
    if let Err(e) = sync_engine::audit::record(&st.pool, &entry).await {
        tracing::error!(error = %e, %action, "audit log write failed");
    }
    resp
}

/// Longer request URIs are refused with 414 (hyper's own limit is far higher and answers
/// without a body).
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// Every error answer is problem JSON: a 4xx/5xx without a body type (axum's 405, the
/// timeout's 408, a body limit's 413) is given one, keeping `Allow` and `Retry-After`.
async fn problems_for_bare_errors(req: Request, next: Next) -> Response {
    let uri_len = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().len())
        .unwrap_or(0);
    if uri_len > MAX_URI_BYTES {
        return error::bare_status_problem(StatusCode::URI_TOO_LONG);
    }
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error())
        || resp
            .headers()
            .contains_key(axum::http::header::CONTENT_TYPE)
    {
        return resp;
    }
    let mut problem = error::bare_status_problem(status);
    for h in [
        axum::http::header::ALLOW,
        axum::http::header::RETRY_AFTER,
        axum::http::header::WWW_AUTHENTICATE,
    ] {
        if let Some(v) = resp.headers().get(&h) {
            problem.headers_mut().insert(h, v.clone());
        }
    }
    problem
}

async fn count_requests(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().as_str().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let resp = next.run(req).await;
    st.metrics.request(&method, &route, resp.status().as_u16());
    resp.into_response()
}
