//! The Salt Edge v5 API routes (under `/api/v5`) and the simulator's own control routes
//! (under `/sim`, unauthenticated, for tests and the demo).
//!
//! Why one file of this size: it is the simulator's statement of the API's routes, read as
//! a table of Salt Edge's endpoints; each handler is short.

use std::collections::HashMap;
use std::sync::Arc;

use crate::errors::ErrorClass;
use crate::wire::*;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use chrono::{Duration, Utc};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use crate::callbacks::CallbackKind;
use crate::faults::FaultRule;
use crate::world::{ConnRec, Session, SessionKind, SimError, World};
use crate::{catalogue, ClientStatus, SimState};

pub(crate) type St = State<Arc<SimState>>;
pub(crate) type Q = Query<HashMap<String, String>>;
pub(crate) type ApiResult = Result<Response, SimError>;

pub fn error_response(class: &ErrorClass, message: &str) -> Response {
    let status = StatusCode::from_u16(class.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let body = json!({
        "error": {
            "class": class.as_str(),
            "message": message,
            "documentation_url": "https://docs.saltedge.com/account_information/v5/#errors",
        },
        "request": {},
    });
    (status, Json(body)).into_response()
}

impl IntoResponse for SimError {
    fn into_response(self) -> Response {
        error_response(&self.class, &self.message)
    }
}

pub(crate) fn data<T: Serialize>(v: T) -> Response {
    Json(json!({ "data": v })).into_response()
}

/// Parses `{"data": T}` the way Salt Edge does: bad JSON is `JsonParseError`, a wrong
/// shape is `WrongRequestFormat`.
pub(crate) fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, SimError> {
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| SimError::new(ErrorClass::JsonParseError, e.to_string()))?;
    let d = v
        .get("data")
        .cloned()
        .ok_or_else(|| SimError::new(ErrorClass::WrongRequestFormat, "data is missing"))?;
    serde_json::from_value(d)
        .map_err(|e| SimError::new(ErrorClass::WrongRequestFormat, e.to_string()))
}

fn param<'a>(q: &'a HashMap<String, String>, name: &str) -> Result<&'a str, SimError> {
    q.get(name)
        .map(String::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            SimError::new(
                ErrorClass::WrongRequestFormat,
                format!("{name} is required"),
            )
        })
}

/// `from_id` (inclusive) + `per_page` over id-ordered items; `meta.next_id` points at the
/// first item of the next page.
fn paginate<T: Serialize>(
    state: &SimState,
    q: &HashMap<String, String>,
    items: impl IntoIterator<Item = (u64, T)>,
) -> Result<Response, SimError> {
    let from = from_id(q)?;
    let per_page = q
        .get("per_page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(state.cfg.per_page_max)
        .clamp(1, state.cfg.per_page_max);
    let mut page: Vec<(u64, T)> = items
        .into_iter()
        .filter(|(id, _)| *id >= from)
        .take(per_page + 1)
        .collect();
    let next_id = if page.len() > per_page {
        page.pop().map(|(id, _)| id.to_string())
    } else {
        None
    };
    let next_page = next_id
        .as_ref()
        .map(|n| format!("{}?from_id={n}", state.api_base()));
    let data: Vec<T> = page.into_iter().map(|(_, t)| t).collect();
    Ok(Json(PageBody {
        data,
        meta: PageMeta { next_id, next_page },
    })
    .into_response())
}

/// Serialised straight to the response (no detour through `serde_json::Value`).
#[derive(Serialize)]
struct PageBody<T> {
    data: Vec<T>,
    meta: PageMeta,
}

/// A transaction's JSON, rendered once: pages of long histories are then mostly copying.
#[derive(Clone)]
pub struct CachedJson(std::sync::Arc<serde_json::value::RawValue>);

impl Serialize for CachedJson {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

fn cached(s: &SimState, t: &Transaction) -> CachedJson {
    let mut cache = s.tx_json.lock().unwrap();
    if let Some(c) = cache.get(&t.id) {
        return c.clone();
    }
    let raw = serde_json::value::to_raw_value(t).expect("transactions serialise");
    let c = CachedJson(std::sync::Arc::from(raw));
    cache.insert(t.id.clone(), c.clone());
    c
}

fn from_id(q: &HashMap<String, String>) -> Result<u64, SimError> {
    match q.get("from_id") {
        Some(f) => f
            .parse()
            .map_err(|_| SimError::new(ErrorClass::WrongRequestFormat, "from_id must be an id")),
        None => Ok(0),
    }
}

fn id_num(s: &str) -> u64 {
    s.parse().unwrap_or(0)
}

pub fn routes() -> Router<Arc<SimState>> {
    Router::new()
        .route("/customers", post(create_customer).get(list_customers))
        .route(
            "/customers/{id}",
            get(show_customer).delete(remove_customer),
        )
        .route("/connect_sessions/create", post(session_create))
        .route("/connect_sessions/reconnect", post(session_reconnect))
        .route("/connect_sessions/refresh", post(session_refresh))
        .route("/connections", get(list_connections))
        .route(
            "/connections/{id}",
            get(show_connection)
                .put(update_connection)
                .delete(remove_connection),
        )
        .route("/connections/{id}/refresh", put(refresh_connection))
        .route("/connections/{id}/interactive", put(interactive))
        .route("/consents", get(list_consents))
        .route("/consents/{id}/revoke", put(revoke_consent))
        .route("/accounts", get(list_accounts))
        .route("/transactions", get(list_posted))
        .route("/transactions/pending", get(list_pending))
        .route("/transactions/duplicates", get(list_duplicates))
        .route("/transactions/duplicate", put(mark_duplicate))
        .route("/transactions/unduplicate", put(mark_unduplicate))
        .route("/providers", get(list_providers))
        .route("/providers/{code}", get(show_provider))
        .route("/countries", get(|| async { data(catalogue::countries()) }))
        .route(
            "/currencies",
            get(|| async { data(catalogue::currencies()) }),
        )
}

// ----- customers -----

#[derive(serde::Deserialize)]
struct NewCustomer {
    identifier: String,
}

pub(crate) async fn create_customer(State(s): St, b: Bytes) -> ApiResult {
    let req: NewCustomer = body(&b)?;
    Ok(data(
        s.world.lock().unwrap().create_customer(&req.identifier)?,
    ))
}

pub(crate) async fn list_customers(State(s): St, Query(q): Q) -> ApiResult {
    let w = s.world.lock().unwrap();
    let items: Vec<_> = match q.get("identifier") {
        Some(i) => w.customer_by_identifier(i).into_iter().collect(),
        None => w.customers.values().collect(),
    };
    let items = items.into_iter().map(|c| (id_num(&c.id), c.clone()));
    paginate(&s, &q, items)
}

pub(crate) async fn show_customer(State(s): St, Path(id): Path<String>) -> ApiResult {
    Ok(data(s.world.lock().unwrap().customer(&id)?.clone()))
}

pub(crate) async fn remove_customer(State(s): St, Path(id): Path<String>) -> ApiResult {
    let mut w = s.world.lock().unwrap();
    w.customer(&id)?;
    w.remove_customer(&id);
    for c in w
        .connections
        .values_mut()
        .filter(|c| c.conn.customer_id == id)
    {
        c.removed = true;
    }
    Ok(data(json!({ "deleted": true, "id": id })))
}

// ----- connect sessions -----

fn check_provider(s: &SimState, code: &str, include_fake: bool) -> Result<(), SimError> {
    let spec = catalogue::spec(code).filter(|p| include_fake || !p.fake);
    let spec = spec.ok_or_else(|| {
        SimError::new(
            ErrorClass::ProviderNotFound,
            format!("Provider with code: '{code}' was not found."),
        )
    })?;
    if s.cfg.client_status == ClientStatus::Pending && !spec.fake {
        return Err(SimError::new(
            ErrorClass::ClientPending,
            "Pending clients can only use fake providers.",
        ));
    }
    Ok(())
}

fn open_session(s: &SimState, w: &mut World, session: Session) -> Response {
    let token = w.token();
    let expires_at = session.expires_at;
    w.sessions.insert(token.clone(), session);
    let url = s
        .public_base
        .join(&format!("connect/{token}"))
        .expect("valid url");
    data(ConnectSession {
        expires_at,
        connect_url: url.to_string(),
    })
}

fn check_consent(c: &ConsentRequest) -> Result<(), SimError> {
    if c.scopes.is_empty() {
        return Err(SimError::new(
            ErrorClass::WrongRequestFormat,
            "consent.scopes must not be empty",
        ));
    }
    Ok(())
}

pub(crate) async fn session_create(State(s): St, b: Bytes) -> ApiResult {
    let req: CreateConnectSession = body(&b)?;
    check_consent(&req.consent)?;
    let include_fake = req.include_fake_providers.unwrap_or(false);
    if let Some(code) = &req.provider_code {
        check_provider(&s, code, include_fake)?;
    }
    let mut w = s.world.lock().unwrap();
    w.customer(&req.customer_id)?;
    if s.cfg.client_status == ClientStatus::Pending
        && w.connections.values().filter(|c| !c.removed).count() >= 10
    {
        return Err(SimError::new(
            ErrorClass::ClientPending,
            "Pending clients are limited to 10 connections.",
        ));
    }
    let session = Session {
        kind: SessionKind::Create,
        customer_id: req.customer_id,
        provider_code: req.provider_code,
        return_to: req.attempt.return_to,
        include_fake_providers: include_fake,
        daily_refresh: req.daily_refresh.unwrap_or(false),
        consent: Some(req.consent),
        custom_fields: req.attempt.custom_fields,
        expires_at: Utc::now() + Duration::minutes(60),
        awaiting_sms: None,
        done: false,
    };
    Ok(open_session(&s, &mut w, session))
}

fn session_for(
    w: &World,
    conn_id: &str,
    kind: SessionKind,
    consent: Option<ConsentRequest>,
    attempt: AttemptRequest,
    daily_refresh: Option<bool>,
) -> Result<Session, SimError> {
    let rec = w.conn(conn_id)?;
    Ok(Session {
        kind,
        customer_id: rec.conn.customer_id.clone(),
        provider_code: Some(rec.conn.provider_code.clone()),
        return_to: attempt.return_to,
        include_fake_providers: true,
        daily_refresh: daily_refresh.unwrap_or(rec.conn.daily_refresh),
        consent,
        custom_fields: attempt.custom_fields.or_else(|| rec.custom_fields.clone()),
        expires_at: Utc::now() + Duration::minutes(60),
        awaiting_sms: None,
        done: false,
    })
}

pub(crate) async fn session_reconnect(State(s): St, b: Bytes) -> ApiResult {
    let req: ReconnectConnectSession = body(&b)?;
    check_consent(&req.consent)?;
    let mut w = s.world.lock().unwrap();
    let session = session_for(
        &w,
        &req.connection_id,
        SessionKind::Reconnect(req.connection_id.clone()),
        Some(req.consent),
        req.attempt,
        req.daily_refresh,
    )?;
    Ok(open_session(&s, &mut w, session))
}

pub(crate) async fn session_refresh(State(s): St, b: Bytes) -> ApiResult {
    let req: RefreshConnectSession = body(&b)?;
    let mut w = s.world.lock().unwrap();
    let rec = w.conn(&req.connection_id)?;
    consent_usable(&w, rec)?;
    if rec.conn.status != ConnectionStatus::Active {
        return Err(SimError::new(
            ErrorClass::ConnectionCannotBeRefreshed,
            "Connection is not active; reconnect it first.",
        ));
    }
    let session = session_for(
        &w,
        &req.connection_id,
        SessionKind::Refresh(req.connection_id.clone()),
        None,
        req.attempt,
        req.daily_refresh,
    )?;
    Ok(open_session(&s, &mut w, session))
}

// ----- connections -----

pub(crate) async fn list_connections(State(s): St, Query(q): Q) -> ApiResult {
    let w = s.world.lock().unwrap();
    let customer = param(&q, "customer_id")?;
    w.customer(customer)?;
    let items = w
        .connections_of(customer)
        .filter(|c| !c.removed)
        .map(|c| (id_num(&c.conn.id), c.conn.clone()))
        .collect::<Vec<_>>();
    paginate(&s, &q, items)
}

pub(crate) async fn show_connection(State(s): St, Path(id): Path<String>) -> ApiResult {
    Ok(data(s.world.lock().unwrap().conn(&id)?.conn.clone()))
}

async fn update_connection(State(s): St, Path(id): Path<String>, b: Bytes) -> ApiResult {
    let req: ConnectionUpdate = body(&b)?;
    let mut w = s.world.lock().unwrap();
    let rec = w.conn_mut(&id)?;
    if let Some(st) = req.status {
        if st != "inactive" {
            return Err(SimError::new(
                ErrorClass::WrongRequestFormat,
                "status can only be set to inactive",
            ));
        }
        rec.conn.status = ConnectionStatus::Inactive;
    }
    if let Some(d) = req.daily_refresh {
        rec.conn.daily_refresh = d;
    }
    if let Some(sc) = req.store_credentials {
        rec.conn.store_credentials = sc;
    }
    rec.conn.updated_at = Utc::now();
    Ok(data(rec.conn.clone()))
}

pub(crate) async fn remove_connection(State(s): St, Path(id): Path<String>) -> ApiResult {
    let customer_id = {
        let mut w = s.world.lock().unwrap();
        let rec = w.conn_mut(&id)?;
        rec.removed = true;
        rec.conn.customer_id.clone()
    };
    s.callbacks.send(
        CallbackKind::Destroy,
        CallbackData {
            connection_id: id.clone(),
            customer_id,
            ..Default::default()
        },
    );
    Ok(data(RemovedConnection { id, removed: true }))
}

/// A background fetch: Salt Edge refreshes the connection and posts callbacks. When the bank
/// fails (see [`World::failing_fetches`]) the attempt fails with ProviderUnavailable and a
/// fail callback goes out instead; the answer still carries the connection, as Salt Edge
/// answers once the attempt has started.
pub fn background_fetch(s: &SimState, id: &str, automatic: bool) -> Result<Connection, SimError> {
    let (conn, answered) = {
        let mut w = s.world.lock().unwrap();
        w.conn(id)?;
        let answered = w.bank_answers(id, automatic);
        if answered {
            w.succeed(id, None, false, automatic)?;
        } else {
            w.fail_attempt_as(id, &ErrorClass::ProviderUnavailable, UNAVAILABLE, automatic)?;
        }
        (w.conn(id)?.conn.clone(), answered)
    };
    if answered {
        send_fetch_callbacks(s, id);
    } else {
        send_fail_callback(s, id, &ErrorClass::ProviderUnavailable, UNAVAILABLE);
    }
    Ok(conn)
}

const UNAVAILABLE: &str = "Provider unavailable, try again later.";

/// Salt Edge's nightly automatic fetch at `now` (the simulator's clock is set to it): every
/// connection that qualifies ([`World::nightly_due`]) is fetched once that local night, and
/// the callbacks go out. Returns the connections fetched.
pub fn run_nightly(s: &SimState, now: chrono::DateTime<Utc>) -> Vec<String> {
    let due = {
        let mut w = s.world.lock().unwrap();
        w.clock = Some(now);
        let due = w.nightly_due(now);
        for id in &due {
            if let Some(rec) = w.connections.get_mut(id) {
                rec.last_automatic_on = Some(
                    now.with_timezone(&catalogue::capital(&rec.conn.country_code))
                        .date_naive(),
                );
            }
        }
        due
    };
    for id in &due {
        let _ = background_fetch(s, id, true);
    }
    due
}

pub(crate) async fn refresh_connection(
    State(s): St,
    Path(id): Path<String>,
    b: Bytes,
) -> ApiResult {
    if !b.is_empty() {
        let _: Value = body(&b)?;
    }
    {
        let w = s.world.lock().unwrap();
        let rec = w.conn(&id)?;
        consent_usable(&w, rec)?;
        if rec.conn.status != ConnectionStatus::Active {
            return Err(SimError::new(
                ErrorClass::ConnectionCannotBeRefreshed,
                "Connection is inactive.",
            ));
        }
        if rec
            .conn
            .next_refresh_possible_at
            .is_some_and(|t| t > w.now())
        {
            return Err(SimError::new(
                ErrorClass::ConnectionCannotBeRefreshed,
                "Connection cannot be refreshed yet; see next_refresh_possible_at.",
            ));
        }
    }
    Ok(data(background_fetch(&s, &id, false)?))
}

async fn interactive(State(s): St, Path(id): Path<String>, b: Bytes) -> ApiResult {
    #[derive(serde::Deserialize)]
    struct Req {
        credentials: HashMap<String, String>,
    }
    let req: Req = body(&b)?;
    let mut w = s.world.lock().unwrap();
    let waiting = w
        .conn(&id)?
        .conn
        .last_attempt
        .as_ref()
        .is_some_and(|a| a.interactive && !a.finished);
    if !waiting {
        return Err(SimError::new(
            ErrorClass::ActionNotAllowed,
            "Connection is not waiting for interactive credentials.",
        ));
    }
    if req.credentials.get("sms").map(String::as_str) != Some(catalogue::SMS_CODE) {
        w.fail_attempt(
            &id,
            &ErrorClass::InvalidInteractiveCredentials,
            "Invalid SMS code.",
        )?;
        return Err(SimError::new(
            ErrorClass::InvalidInteractiveCredentials,
            "Invalid SMS code.",
        ));
    }
    w.succeed(&id, Some(&ConsentRequest::standard()), false, false)?;
    let conn = w.conn(&id)?.conn.clone();
    drop(w);
    send_fetch_callbacks(&s, &id);
    Ok(data(conn))
}

/// notify(start) → notify(fetch_accounts) → success → notify(finish) → success: Salt Edge
/// may send success more than once in one fetch (the guide: "expect 1–3 per fetch"), the
/// first when part of the data is ready. The success bodies carry no `stage` (as in the
/// recorded `callback-success.2.json`).
pub fn send_fetch_callbacks(s: &SimState, id: &str) {
    let (customer_id, custom_fields) = {
        let w = s.world.lock().unwrap();
        match w.connections.get(id) {
            Some(r) => (
                r.conn.customer_id.clone(),
                r.custom_fields.clone().unwrap_or_else(|| json!({})),
            ),
            None => return,
        }
    };
    let base = CallbackData {
        connection_id: id.into(),
        customer_id,
        custom_fields,
        ..Default::default()
    };
    for stage in ["start", "fetch_accounts"] {
        s.callbacks.send(
            CallbackKind::Notify,
            CallbackData {
                stage: Some(stage.into()),
                ..base.clone()
            },
        );
    }
    s.callbacks.send(CallbackKind::Success, base.clone());
    s.callbacks.send(
        CallbackKind::Notify,
        CallbackData {
            stage: Some("finish".into()),
            ..base.clone()
        },
    );
    s.callbacks.send(CallbackKind::Success, base);
}

pub fn send_fail_callback(s: &SimState, id: &str, class: &ErrorClass, message: &str) {
    let (customer_id, custom_fields) = {
        let w = s.world.lock().unwrap();
        match w.connections.get(id) {
            Some(r) => (
                r.conn.customer_id.clone(),
                r.custom_fields.clone().unwrap_or_else(|| json!({})),
            ),
            None => return,
        }
    };
    s.callbacks.send(
        CallbackKind::Fail,
        CallbackData {
            connection_id: id.into(),
            customer_id,
            custom_fields,
            error_class: Some(class.to_string()),
            error_message: Some(message.into()),
            ..Default::default()
        },
    );
}

// ----- consents -----

fn consent_usable(w: &World, rec: &ConnRec) -> Result<(), SimError> {
    if let Some(c) = rec.consent_id().and_then(|id| w.consents.get(id)) {
        if c.revoked_at.is_some() {
            return Err(SimError::new(
                ErrorClass::AispConsentRevoked,
                "The consent was revoked.",
            ));
        }
        if c.expires_at.is_some_and(|e| e < w.now()) {
            return Err(SimError::new(
                ErrorClass::AispConsentExpired,
                "The consent has expired.",
            ));
        }
    }
    Ok(())
}

pub(crate) async fn list_consents(State(s): St, Query(q): Q) -> ApiResult {
    let w = s.world.lock().unwrap();
    let items: Vec<(u64, Consent)> = match q.get("connection_id") {
        Some(cid) => {
            w.conn(cid)?;
            w.consents
                .values()
                .filter(|c| c.connection_id.as_deref() == Some(cid))
                .map(|c| (id_num(&c.id), c.clone()))
                .collect()
        }
        None => {
            let customer = param(&q, "customer_id")?;
            w.consents
                .values()
                .filter(|c| c.customer_id.as_deref() == Some(customer))
                .map(|c| (id_num(&c.id), c.clone()))
                .collect()
        }
    };
    paginate(&s, &q, items)
}

pub(crate) async fn revoke_consent(State(s): St, Path(id): Path<String>) -> ApiResult {
    let mut w = s.world.lock().unwrap();
    let c = w.consents.get_mut(&id).ok_or_else(|| {
        SimError::new(
            ErrorClass::AispConsentNotFound,
            format!("Consent with id: '{id}' was not found."),
        )
    })?;
    if c.revoked_at.is_some() {
        return Err(SimError::new(
            ErrorClass::AispConsentAlreadyRevoked,
            "The consent is already revoked.",
        ));
    }
    // Simulator's choice (not documented by Salt Edge): an expired consent cannot be revoked.
    if c.expires_at.is_some_and(|e| e < Utc::now()) {
        return Err(SimError::new(
            ErrorClass::AispConsentExpired,
            "The consent has expired.",
        ));
    }
    let now = Utc::now();
    c.revoked_at = Some(now);
    c.revoke_reason = Some("client".into());
    c.updated_at = now;
    let revoked = c.clone();
    drop(w);
    // v6 has a consent-changes callback (third-party sources, v6 notes §5.3): a v6
    // simulator sends it when a consent is revoked.
    if s.cfg.callback_version == 6 {
        if let (Some(connection_id), Some(customer_id)) =
            (revoked.connection_id.clone(), revoked.customer_id.clone())
        {
            s.callbacks.send(
                CallbackKind::ConsentChanges,
                CallbackData {
                    connection_id,
                    customer_id,
                    ..Default::default()
                },
            );
        }
    }
    Ok(data(revoked))
}

// ----- accounts and transactions -----

pub(crate) async fn list_accounts(State(s): St, Query(q): Q) -> ApiResult {
    let w = s.world.lock().unwrap();
    let rec = w.conn(param(&q, "connection_id")?)?;
    consent_usable(&w, rec)?;
    let items = rec.accounts.iter().map(|a| (id_num(&a.id), a.clone()));
    paginate(&s, &q, items)
}

/// `pick` gets the connection and the index in `posted` where ids reach `from_id`, so a page
/// costs O(page), not O(history).
fn transactions(
    s: &SimState,
    q: &HashMap<String, String>,
    pick: fn(&ConnRec, usize) -> Box<dyn Iterator<Item = &Transaction> + '_>,
) -> ApiResult {
    let w = s.world.lock().unwrap();
    let rec = w.conn(param(q, "connection_id")?)?;
    consent_usable(&w, rec)?;
    let account = q.get("account_id").filter(|a| !a.is_empty());
    if let Some(a) = account {
        if !rec.accounts.iter().any(|x| &x.id == a) {
            return Err(SimError::new(
                ErrorClass::AccountNotFound,
                format!("Account with id: '{a}' was not found."),
            ));
        }
    }
    let from = from_id(q)?;
    let start = rec.posted.partition_point(|t| id_num(&t.id) < from);
    let items = pick(rec, start)
        .filter(|t| account.is_none_or(|a| &t.account_id == a))
        .map(|t| (id_num(&t.id), cached(s, t)));
    paginate(s, q, items)
}

pub(crate) async fn list_posted(State(s): St, Query(q): Q) -> ApiResult {
    transactions(&s, &q, |r, start| {
        Box::new(r.posted[start..].iter().filter(|t| !t.duplicated))
    })
}

pub(crate) async fn list_pending(State(s): St, Query(q): Q) -> ApiResult {
    transactions(&s, &q, |r, _| Box::new(r.pending.iter()))
}

pub(crate) async fn list_duplicates(State(s): St, Query(q): Q) -> ApiResult {
    transactions(&s, &q, |r, start| {
        Box::new(r.posted[start..].iter().filter(|t| t.duplicated))
    })
}

async fn set_duplicated(s: &SimState, b: &Bytes, flag: bool) -> ApiResult {
    let req: DuplicateRequest = body(b)?;
    let mut w = s.world.lock().unwrap();
    w.customer(&req.customer_id)?;
    let customer = req.customer_id.clone();
    let mut found = 0;
    for rec in w
        .connections
        .values_mut()
        .filter(|c| c.conn.customer_id == customer)
    {
        for t in rec
            .posted
            .iter_mut()
            .filter(|t| req.transaction_ids.contains(&t.id))
        {
            t.duplicated = flag;
            s.tx_json.lock().unwrap().remove(&t.id);
            found += 1;
        }
    }
    if found == 0 {
        return Err(SimError::new(
            ErrorClass::WrongRequestFormat,
            "No such transactions.",
        ));
    }
    Ok(data(
        json!({ if flag { "duplicated" } else { "unduplicated" }: true }),
    ))
}

async fn mark_duplicate(State(s): St, b: Bytes) -> ApiResult {
    set_duplicated(&s, &b, true).await
}

async fn mark_unduplicate(State(s): St, b: Bytes) -> ApiResult {
    set_duplicated(&s, &b, false).await
}

// ----- catalogue -----

pub(crate) async fn list_providers(State(s): St, Query(q): Q) -> ApiResult {
    let include_fake = q.get("include_fake_providers").is_some_and(|v| v == "true");
    let country = q.get("country_code");
    let items = catalogue::providers()
        .into_iter()
        .zip(catalogue::PROVIDERS)
        .filter(|(_, spec)| include_fake || !spec.fake)
        .filter(|(p, _)| country.is_none_or(|c| &p.country_code == c))
        .map(|(p, _)| (id_num(&p.id), p));
    paginate(&s, &q, items)
}

pub(crate) async fn show_provider(Path(code): Path<String>) -> ApiResult {
    let (i, spec) = catalogue::PROVIDERS
        .iter()
        .enumerate()
        .find(|(_, p)| p.code == code)
        .ok_or_else(|| {
            SimError::new(
                ErrorClass::ProviderNotFound,
                format!("Provider with code: '{code}' was not found."),
            )
        })?;
    Ok(data(catalogue::provider(i, spec)))
}

// ----- control routes (not part of Salt Edge) -----

pub fn control_routes() -> Router<Arc<SimState>> {
    Router::new()
        .route("/sim/ground_truth/{id}", get(ground_truth))
        .route(
            "/sim/requests",
            get(|State(s): St| async move { Json(s.requests.lock().unwrap().clone()) }),
        )
        .route(
            "/sim/callbacks",
            get(|State(s): St| async move { Json(s.callbacks.deliveries()) }),
        )
        .route("/sim/faults", post(set_faults).delete(clear_faults))
        .route("/sim/callback_base", post(set_callback_base))
        .route("/sim/connections", post(seed))
        .route("/sim/connections/{id}/advance", post(advance))
        .route("/sim/connections/{id}/fail", post(fail))
        .route("/sim/connections/{id}/remove", post(remove_at_bank))
}

async fn ground_truth(State(s): St, Path(id): Path<String>) -> ApiResult {
    Ok(Json(s.world.lock().unwrap().ground_truth(&id)?).into_response())
}

async fn set_faults(State(s): St, Json(rules): Json<Vec<FaultRule>>) -> impl IntoResponse {
    s.faults.lock().unwrap().0 = rules;
    StatusCode::NO_CONTENT
}

async fn clear_faults(State(s): St) -> impl IntoResponse {
    s.faults.lock().unwrap().0.clear();
    StatusCode::NO_CONTENT
}

async fn set_callback_base(State(s): St, Json(v): Json<Value>) -> ApiResult {
    let url = v["url"]
        .as_str()
        .map(url::Url::parse)
        .transpose()
        .map_err(|e| SimError::new(ErrorClass::WrongRequestFormat, e.to_string()))?;
    *s.callback_base.lock().unwrap() = url;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub fn seed_connection(
    s: &SimState,
    identifier: &str,
    provider_code: &str,
) -> Result<(String, String), SimError> {
    let mut w = s.world.lock().unwrap();
    let customer_id = match w.customer_by_identifier(identifier) {
        Some(c) => c.id.clone(),
        None => w.create_customer(identifier)?.id,
    };
    let conn_id = w.new_connection_shell(
        &customer_id,
        provider_code,
        Some(catalogue::LOGIN),
        true,
        None,
    )?;
    w.succeed(&conn_id, Some(&ConsentRequest::standard()), false, false)?;
    // Render the history now, so that serving it costs the same on every fetch.
    for t in &w.conn(&conn_id)?.posted {
        cached(s, t);
    }
    Ok((customer_id, conn_id))
}

async fn seed(State(s): St, Json(v): Json<Value>) -> ApiResult {
    let identifier = v["identifier"].as_str().unwrap_or("sim-customer");
    let provider = v["provider_code"].as_str().unwrap_or("fake_client_xf");
    let (customer_id, connection_id) = seed_connection(&s, identifier, provider)?;
    Ok(Json(json!({ "customer_id": customer_id, "connection_id": connection_id })).into_response())
}

async fn advance(State(s): St, Path(id): Path<String>) -> ApiResult {
    Ok(data(background_fetch(&s, &id, true)?))
}

async fn fail(State(s): St, Path(id): Path<String>, Json(v): Json<Value>) -> ApiResult {
    let class = ErrorClass::parse(v["error_class"].as_str().unwrap_or("ProviderUnavailable"));
    let message = v["error_message"]
        .as_str()
        .unwrap_or("Provider unavailable, try again later.")
        .to_string();
    s.world
        .lock()
        .unwrap()
        .fail_attempt(&id, &class, &message)?;
    send_fail_callback(&s, &id, &class, &message);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The end user deletes the connection in their Salt Edge dashboard.
async fn remove_at_bank(State(s): St, Path(id): Path<String>) -> ApiResult {
    remove_connection(State(s), Path(id)).await
}
