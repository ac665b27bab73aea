//! Salt Edge API v6, as the simulator states it (from `docs/saltedge/v6-notes.md`, not
//! from banksync's client): served under `/api/v6` over the same world, faults, Connect page
//! and signature rules as v5. What changes is the spelling:
//!
//! - `POST /connections/connect`, `POST /connections/{id}/reconnect`,
//!   `POST /connections/{id}/refresh` (the widget) and
//!   `POST /connections/{id}/background_refresh` replace v5's connect sessions and
//!   `PUT /connections/{id}/refresh`;
//! - consent and fetch scopes are `accounts`, `transactions`, `holder_info` (v5's names are
//!   refused); the provider goes in `provider.code`, sandboxes in
//!   `provider.include_sandboxes`, the daily refresh in `automatic_refresh`, the fetch start
//!   in `attempt.fetch_from_date`; `attempt.unduplication_strategy` must be one of
//!   `mark_as_pending`, `mark_as_duplicate`, `delete_duplicated` when given;
//! - pending and duplicated transactions are `GET /transactions?pending=true` and
//!   `?duplicated=true`; providers take `include_sandboxes`;
//! - a new customer is answered with `customer_id` (or `id` when
//!   [`crate::SimConfig::v6_customer_key_id`] is set: the notes leave both plausible) and
//!   no secret; `GET /customers` honours `identifier`, or ignores it with
//!   [`crate::SimConfig::v6_ignores_identifier_filter`]; there is no interactive or
//!   connection-update endpoint.
//!
//! Invented where the notes are silent (listed in docs/saltedge.md): the shapes of errors and
//! pages are v5's; `mark_as_pending` and `delete_duplicated` are accepted but duplicates
//! are still served flagged, as with `mark_as_duplicate`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post, put};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::api::{self, body, data, ApiResult, St, Q};
use crate::errors::ErrorClass;
use crate::world::SimError;
use crate::SimState;

pub fn routes() -> Router<Arc<SimState>> {
    Router::new()
        .route("/customers", post(create_customer).get(list_customers))
        .route(
            "/customers/{id}",
            get(api::show_customer).delete(api::remove_customer),
        )
        .route("/connections/connect", post(connect))
        .route("/connections", get(api::list_connections))
        .route(
            "/connections/{id}",
            get(api::show_connection).delete(api::remove_connection),
        )
        .route("/connections/{id}/reconnect", post(reconnect))
        .route("/connections/{id}/refresh", post(refresh))
        .route(
            "/connections/{id}/background_refresh",
            post(background_refresh),
        )
        .route("/consents", get(api::list_consents))
        .route("/consents/{id}/revoke", put(api::revoke_consent))
        .route("/accounts", get(api::list_accounts))
        .route("/transactions", get(transactions))
        .route("/providers", get(providers))
        .route("/providers/{code}", get(api::show_provider))
        .route(
            "/countries",
            get(|| async { data(crate::catalogue::countries()) }),
        )
        .route(
            "/currencies",
            get(|| async { data(crate::catalogue::currencies()) }),
        )
}

fn wrong(msg: impl Into<String>) -> SimError {
    SimError::new(ErrorClass::WrongRequestFormat, msg)
}

#[derive(Deserialize)]
struct NewCustomer {
    identifier: String,
}

async fn create_customer(State(s): St, b: Bytes) -> ApiResult {
    let req: NewCustomer = body(&b)?;
    let c = s.world.lock().unwrap().create_customer(&req.identifier)?;
    let key = if s.cfg.v6_customer_key_id {
        "id"
    } else {
        "customer_id"
    };
    Ok(data(json!({
        key: c.id,
        "identifier": c.identifier,
        "blocked_at": c.blocked_at,
        "created_at": c.created_at,
        "updated_at": c.updated_at,
    })))
}

async fn list_customers(st: St, Query(mut q): Q) -> ApiResult {
    if st.cfg.v6_ignores_identifier_filter {
        q.remove("identifier");
    }
    api::list_customers(st, Query(q)).await
}

/// v6's scope names, as v5's (the world speaks v5); v5's own names are refused.
fn scopes(v: Option<&Value>, field: &str) -> Result<Option<Vec<String>>, SimError> {
    let Some(v) = v else { return Ok(None) };
    let list = v
        .as_array()
        .ok_or_else(|| wrong(format!("{field} must be a list")))?;
    list.iter()
        .map(|s| match s.as_str() {
            Some("accounts") => Ok("account_details".to_string()),
            Some("transactions") => Ok("transactions_details".to_string()),
            Some("holder_info") => Ok("holder_information".to_string()),
            Some("balance") => Ok("balance".to_string()),
            other => Err(wrong(format!(
                "{field}: unknown scope {other:?} (v6 names: accounts, transactions, holder_info)"
            ))),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// A v6 `consent` as v5's.
fn consent(c: Option<&Value>) -> Result<Value, SimError> {
    let c = c.ok_or_else(|| wrong("consent is required"))?;
    let scopes = scopes(c.get("scopes"), "consent.scopes")?
        .ok_or_else(|| wrong("consent.scopes is required"))?;
    let mut m = Map::new();
    m.insert("scopes".into(), scopes.into());
    for k in ["from_date", "period_days"] {
        if let Some(v) = c.get(k) {
            m.insert(k.into(), v.clone());
        }
    }
    Ok(Value::Object(m))
}

/// A v6 `attempt` as v5's.
fn attempt(a: Option<&Value>) -> Result<Value, SimError> {
    let mut m = Map::new();
    let Some(a) = a else {
        return Ok(Value::Object(m));
    };
    if a.get("from_date").is_some() {
        return Err(wrong(
            "attempt.from_date is v5's; v6 calls it attempt.fetch_from_date",
        ));
    }
    if let Some(s) = scopes(a.get("fetch_scopes"), "attempt.fetch_scopes")? {
        m.insert("fetch_scopes".into(), s.into());
    }
    if let Some(d) = a.get("fetch_from_date") {
        m.insert("from_date".into(), d.clone());
    }
    for k in ["return_to", "custom_fields", "store_credentials"] {
        if let Some(v) = a.get(k) {
            m.insert(k.into(), v.clone());
        }
    }
    match a.get("unduplication_strategy").map(|v| v.as_str()) {
        None | Some(Some("mark_as_pending" | "mark_as_duplicate" | "delete_duplicated")) => {}
        Some(other) => return Err(wrong(format!("attempt.unduplication_strategy: {other:?} is not one of mark_as_pending, mark_as_duplicate, delete_duplicated"))),
    }
    Ok(Value::Object(m))
}

/// The request's `data`, refusing v5's top-level names that v6 moved.
fn v6_data(b: &Bytes) -> Result<Map<String, Value>, SimError> {
    let Value::Object(d) = body::<Value>(b)? else {
        return Err(wrong("data must be an object"));
    };
    for moved in [
        "provider_code",
        "include_fake_providers",
        "daily_refresh",
        "javascript_callback_type",
    ] {
        if d.contains_key(moved) {
            return Err(wrong(format!(
                "{moved} is v5's; see provider / widget / automatic_refresh in v6"
            )));
        }
    }
    Ok(d)
}

fn bytes(v: Value) -> Bytes {
    Bytes::from(serde_json::to_vec(&json!({ "data": v })).expect("JSON"))
}

async fn connect(st: St, b: Bytes) -> ApiResult {
    let d = v6_data(&b)?;
    let mut v5 = Map::new();
    v5.insert(
        "customer_id".into(),
        d.get("customer_id")
            .cloned()
            .ok_or_else(|| wrong("customer_id is required"))?,
    );
    v5.insert("consent".into(), consent(d.get("consent"))?);
    v5.insert("attempt".into(), attempt(d.get("attempt"))?);
    if let Some(p) = d.get("provider") {
        if let Some(code) = p.get("code") {
            v5.insert("provider_code".into(), code.clone());
        }
        if let Some(s) = p.get("include_sandboxes") {
            v5.insert("include_fake_providers".into(), s.clone());
        }
    }
    if let Some(r) = d.get("automatic_refresh") {
        v5.insert("daily_refresh".into(), r.clone());
    }
    api::session_create(st, bytes(Value::Object(v5))).await
}

async fn reconnect(st: St, Path(id): Path<String>, b: Bytes) -> ApiResult {
    let d = v6_data(&b)?;
    let mut v5 = Map::new();
    v5.insert("connection_id".into(), id.into());
    v5.insert("consent".into(), consent(d.get("consent"))?);
    v5.insert("attempt".into(), attempt(d.get("attempt"))?);
    if let Some(r) = d.get("automatic_refresh") {
        v5.insert("daily_refresh".into(), r.clone());
    }
    api::session_reconnect(st, bytes(Value::Object(v5))).await
}

async fn refresh(st: St, Path(id): Path<String>, b: Bytes) -> ApiResult {
    let d = v6_data(&b)?;
    let mut v5 = Map::new();
    v5.insert("connection_id".into(), id.into());
    v5.insert("attempt".into(), attempt(d.get("attempt"))?);
    if let Some(r) = d.get("automatic_refresh") {
        v5.insert("daily_refresh".into(), r.clone());
    }
    api::session_refresh(st, bytes(Value::Object(v5))).await
}

async fn background_refresh(st: St, id: Path<String>, b: Bytes) -> ApiResult {
    let d = if b.is_empty() {
        Map::new()
    } else {
        v6_data(&b)?
    };
    let v5 = json!({ "attempt": attempt(d.get("attempt"))? });
    api::refresh_connection(st, id, bytes(v5)).await
}

async fn transactions(st: St, Query(mut q): Q) -> ApiResult {
    let flag = |q: &mut std::collections::HashMap<String, String>, k: &str| {
        q.remove(k).is_some_and(|v| v == "true")
    };
    let pending = flag(&mut q, "pending");
    let duplicated = flag(&mut q, "duplicated");
    match (pending, duplicated) {
        (true, true) => Err(wrong("pending and duplicated cannot be combined")),
        (true, false) => api::list_pending(st, Query(q)).await,
        (false, true) => api::list_duplicates(st, Query(q)).await,
        (false, false) => api::list_posted(st, Query(q)).await,
    }
}

async fn providers(st: St, Query(mut q): Q) -> ApiResult {
    if q.remove("include_fake_providers").is_some() {
        return Err(wrong(
            "include_fake_providers is v5's; v6 calls it include_sandboxes",
        ));
    }
    if let Some(v) = q.remove("include_sandboxes") {
        q.insert("include_fake_providers".into(), v);
    }
    api::list_providers(st, Query(q)).await
}
