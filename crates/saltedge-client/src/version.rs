//! The one place where Salt Edge API versions differ: how each operation is spelled (path,
//! verb, body) in v5 and in v6. The client's methods ask this module and send what it
//! returns; nothing else in banksync knows which version it talks to.
//!
//! v6 facts and their sources are in `docs/saltedge/v6-notes.md` (§3, §4); the items
//! it marks unverified are spelled the way most sources agree on and listed in the README
//! ("Unverified, handled leniently"; docs/saltedge.md: "To confirm against Salt Edge"):
//! - connect / reconnect / widget refresh: `POST connections/connect`,
//!   `POST connections/{id}/reconnect`, `POST connections/{id}/refresh` (Salt Edge's own
//!   examples, saltedge/saltedge-examples@8f02499, and 5 third-party clients);
//! - background refresh: `POST connections/{id}/background_refresh` (third-party only);
//! - bodies: consent scopes `accounts`/`transactions`/`holder_info`, `provider.code`,
//!   `provider.include_sandboxes`, `automatic_refresh`, `attempt.fetch_from_date`,
//!   `attempt.unduplication_strategy` (set to `mark_as_duplicate`, so duplicates stay
//!   flagged and out of the posted list, as v5 does and banksync's duplicate model expects);
//! - pending and duplicated transactions: `transactions?pending=true` /
//!   `transactions?duplicated=true` (third-party only);
//! - providers: `include_sandboxes` instead of `include_fake_providers`.

use reqwest::Method;
use serde_json::{json, Map, Value};

use crate::models::{
    AttemptRequest, ConsentRequest, CreateConnectSession, ReconnectConnectSession,
    RefreshConnectSession,
};

/// The Salt Edge API version a client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum ApiVersion {
    #[default]
    #[serde(rename = "5")]
    V5,
    #[serde(rename = "6")]
    V6,
}

impl ApiVersion {
    /// The version a base URL names (`…/api/v6/`), v5 otherwise.
    pub fn of_base_url(url: &url::Url) -> ApiVersion {
        if url.path().trim_end_matches('/').ends_with("/v6") {
            ApiVersion::V6
        } else {
            ApiVersion::V5
        }
    }

    pub fn number(self) -> u8 {
        match self {
            ApiVersion::V5 => 5,
            ApiVersion::V6 => 6,
        }
    }
}

/// One request as a version spells it: verb, path under the API root, extra query, body.
#[derive(Debug, Clone, PartialEq)]
pub struct Spelled {
    pub method: Method,
    pub path: String,
    pub query: Vec<(&'static str, String)>,
    pub body: Option<Value>,
}

/// v6's consent and fetch scope names for v5's.
fn scope_v6(s: &str) -> String {
    match s {
        "account_details" => "accounts",
        "transactions_details" => "transactions",
        "holder_information" => "holder_info",
        other => other,
    }
    .to_string()
}

fn consent_v6(c: &ConsentRequest) -> Value {
    let mut m = Map::new();
    m.insert(
        "scopes".into(),
        c.scopes
            .iter()
            .map(|s| scope_v6(s))
            .collect::<Vec<_>>()
            .into(),
    );
    if let Some(d) = c.from_date {
        m.insert("from_date".into(), d.to_string().into());
    }
    if let Some(p) = c.period_days {
        m.insert("period_days".into(), p.into());
    }
    Value::Object(m)
}

fn attempt_v6(a: &AttemptRequest) -> Value {
    let mut m = Map::new();
    if !a.fetch_scopes.is_empty() {
        m.insert(
            "fetch_scopes".into(),
            a.fetch_scopes
                .iter()
                .map(|s| scope_v6(s))
                .collect::<Vec<_>>()
                .into(),
        );
    }
    if let Some(d) = a.from_date {
        m.insert("fetch_from_date".into(), d.to_string().into());
    }
    if let Some(r) = &a.return_to {
        m.insert("return_to".into(), r.clone().into());
    }
    if let Some(c) = &a.custom_fields {
        m.insert("custom_fields".into(), c.clone());
    }
    if let Some(s) = a.store_credentials {
        m.insert("store_credentials".into(), s.into());
    }
    // Duplicates stay flagged and out of the posted list (banksync's duplicate model).
    m.insert("unduplication_strategy".into(), "mark_as_duplicate".into());
    Value::Object(m)
}

/// Inserts `key: value` when `value` is set.
fn put<T: Into<Value>>(m: &mut Map<String, Value>, key: &str, value: Option<T>) {
    if let Some(v) = value {
        m.insert(key.into(), v.into());
    }
}

fn provider_v6(code: Option<&str>, sandboxes: Option<bool>) -> Option<Value> {
    let mut p = Map::new();
    put(&mut p, "code", code);
    put(&mut p, "include_sandboxes", sandboxes);
    (!p.is_empty()).then_some(Value::Object(p))
}

/// The fields every v6 widget session carries: attempt, provider, automatic refresh,
/// whether to return the connection id, the credentials strategy.
struct SessionV6<'a> {
    attempt: &'a AttemptRequest,
    provider_code: Option<&'a str>,
    include_sandboxes: Option<bool>,
    automatic_refresh: Option<bool>,
    return_connection_id: Option<bool>,
    credentials_strategy: Option<&'a str>,
}

impl SessionV6<'_> {
    fn body(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("attempt".into(), attempt_v6(self.attempt));
        put(
            &mut m,
            "provider",
            provider_v6(self.provider_code, self.include_sandboxes),
        );
        put(&mut m, "automatic_refresh", self.automatic_refresh);
        put(&mut m, "return_connection_id", self.return_connection_id);
        if let Some(s) = self.credentials_strategy {
            m.insert("widget".into(), json!({ "credentials_strategy": s }));
        }
        m
    }
}

impl ApiVersion {
    pub fn connect(self, r: &CreateConnectSession) -> Spelled {
        match self {
            ApiVersion::V5 => post("connect_sessions/create", json!({ "data": r })),
            ApiVersion::V6 => {
                let mut m = SessionV6 {
                    attempt: &r.attempt,
                    provider_code: r.provider_code.as_deref(),
                    include_sandboxes: r.include_fake_providers,
                    automatic_refresh: r.daily_refresh,
                    return_connection_id: r.return_connection_id,
                    credentials_strategy: r.credentials_strategy.as_deref(),
                }
                .body();
                m.insert("customer_id".into(), r.customer_id.clone().into());
                m.insert("consent".into(), consent_v6(&r.consent));
                put(&mut m, "country_code", r.country_code.clone());
                post("connections/connect", json!({ "data": m }))
            }
        }
    }

    pub fn reconnect(self, r: &ReconnectConnectSession) -> Spelled {
        match self {
            ApiVersion::V5 => post("connect_sessions/reconnect", json!({ "data": r })),
            ApiVersion::V6 => {
                let mut m = SessionV6 {
                    attempt: &r.attempt,
                    provider_code: None,
                    include_sandboxes: r.include_fake_providers,
                    automatic_refresh: r.daily_refresh,
                    return_connection_id: r.return_connection_id,
                    credentials_strategy: r.override_credentials_strategy.as_deref(),
                }
                .body();
                m.insert("consent".into(), consent_v6(&r.consent));
                post(
                    &format!("connections/{}/reconnect", r.connection_id),
                    json!({ "data": m }),
                )
            }
        }
    }

    pub fn refresh_session(self, r: &RefreshConnectSession) -> Spelled {
        match self {
            ApiVersion::V5 => post("connect_sessions/refresh", json!({ "data": r })),
            ApiVersion::V6 => {
                let m = SessionV6 {
                    attempt: &r.attempt,
                    provider_code: None,
                    include_sandboxes: r.include_fake_providers,
                    automatic_refresh: r.daily_refresh,
                    return_connection_id: r.return_connection_id,
                    credentials_strategy: None,
                }
                .body();
                post(
                    &format!("connections/{}/refresh", r.connection_id),
                    json!({ "data": m }),
                )
            }
        }
    }

    /// A refresh without the user (no widget).
    pub fn background_refresh(self, id: &str, a: &AttemptRequest) -> Spelled {
        match self {
            ApiVersion::V5 => Spelled {
                method: Method::PUT,
                path: format!("connections/{id}/refresh"),
                query: vec![],
                body: Some(json!({ "data": { "attempt": a } })),
            },
            ApiVersion::V6 => post(
                &format!("connections/{id}/background_refresh"),
                json!({ "data": { "attempt": attempt_v6(a) } }),
            ),
        }
    }

    /// The list of pending transactions: its path and the extra query.
    pub fn pending_list(self) -> (&'static str, Vec<(&'static str, String)>) {
        match self {
            ApiVersion::V5 => ("transactions/pending", vec![]),
            ApiVersion::V6 => ("transactions", vec![("pending", "true".into())]),
        }
    }

    /// The list of transactions flagged duplicated.
    pub fn duplicates_list(self) -> (&'static str, Vec<(&'static str, String)>) {
        match self {
            ApiVersion::V5 => ("transactions/duplicates", vec![]),
            ApiVersion::V6 => ("transactions", vec![("duplicated", "true".into())]),
        }
    }

    /// The providers list's switch for sandbox (fake) providers.
    pub fn sandboxes_param(self) -> &'static str {
        match self {
            ApiVersion::V5 => "include_fake_providers",
            ApiVersion::V6 => "include_sandboxes",
        }
    }
}

fn post(path: &str, body: Value) -> Spelled {
    Spelled {
        method: Method::POST,
        path: path.to_string(),
        query: vec![],
        body: Some(body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> CreateConnectSession {
        CreateConnectSession {
            customer_id: "111".into(),
            consent: ConsentRequest::default(),
            attempt: AttemptRequest {
                return_to: Some("https://books.example/back".into()),
                from_date: chrono::NaiveDate::from_ymd_opt(2026, 1, 1),
                ..Default::default()
            },
            provider_code: Some("fakebank_simple_xf".into()),
            include_fake_providers: Some(true),
            daily_refresh: Some(true),
            return_connection_id: Some(true),
            ..Default::default()
        }
    }

    #[test]
    fn the_version_is_read_from_the_base_url() {
        let v = |u: &str| ApiVersion::of_base_url(&url::Url::parse(u).unwrap());
        assert_eq!(v("https://www.saltedge.com/api/v6/"), ApiVersion::V6);
        assert_eq!(v("https://www.saltedge.com/api/v6"), ApiVersion::V6);
        assert_eq!(v("https://www.saltedge.com/api/v5/"), ApiVersion::V5);
    }

    #[test]
    fn v5_sends_the_session_as_it_is() {
        let s = ApiVersion::V5.connect(&session());
        assert_eq!(
            (s.method, s.path.as_str()),
            (Method::POST, "connect_sessions/create")
        );
        assert_eq!(
            s.body.unwrap()["data"]["consent"]["scopes"],
            json!(["account_details", "transactions_details"])
        );
    }

    /// The v6 connect body, field by field as the notes (§3, §4.2) place them.
    #[test]
    fn v6_moves_the_fields_where_v6_expects_them() {
        let s = ApiVersion::V6.connect(&session());
        assert_eq!(
            (s.method, s.path.as_str()),
            (Method::POST, "connections/connect")
        );
        let d = &s.body.unwrap()["data"];
        assert_eq!(d["customer_id"], "111");
        assert_eq!(d["consent"]["scopes"], json!(["accounts", "transactions"]));
        assert_eq!(
            d["provider"],
            json!({ "code": "fakebank_simple_xf", "include_sandboxes": true })
        );
        assert_eq!(d["automatic_refresh"], true);
        assert_eq!(d["attempt"]["fetch_from_date"], "2026-01-01");
        assert_eq!(d["attempt"]["return_to"], "https://books.example/back");
        assert_eq!(d["attempt"]["unduplication_strategy"], "mark_as_duplicate");
        assert!(d.get("daily_refresh").is_none() && d.get("include_fake_providers").is_none());
        let r = ApiVersion::V6.reconnect(&ReconnectConnectSession {
            connection_id: "42".into(),
            ..Default::default()
        });
        assert_eq!(r.path, "connections/42/reconnect");
        assert!(
            r.body.unwrap()["data"].get("connection_id").is_none(),
            "the id is in the path"
        );
        let b = ApiVersion::V6.background_refresh("42", &AttemptRequest::default());
        assert_eq!(
            (b.method, b.path.as_str()),
            (Method::POST, "connections/42/background_refresh")
        );
        assert_eq!(
            ApiVersion::V6.pending_list(),
            ("transactions", vec![("pending", "true".to_string())])
        );
    }

    #[test]
    fn a_customer_is_read_in_either_shape() {
        let v6: crate::models::Customer =
            serde_json::from_value(json!({ "customer_id": "6", "identifier": "acme" })).unwrap();
        let v5: crate::models::Customer =
            serde_json::from_value(json!({ "id": "5", "identifier": "acme", "secret": "s" }))
                .unwrap();
        assert_eq!((v6.id.as_str(), v5.id.as_str()), ("6", "5"));
        assert!(
            serde_json::from_value::<crate::models::Customer>(json!({ "identifier": "x" }))
                .is_err()
        );
    }

    /// The v6 shapes Salt Edge itself documents (v6 notes §5.1: the success callback of the
    /// API reference, S3; §4: the accounts example of swagger-v6.json, S4, whose
    /// `meta.next_page` is a path) read with the same models.
    #[test]
    fn salt_edges_own_v6_examples_parse() {
        let cb: crate::models::CallbackBody = serde_json::from_value(json!({
            "data": { "connection_id": "111111111111111111", "customer_id": "222222222222222222",
                      "custom_fields": { "key": "value" }, "stage": "finish" },
            "meta": { "version": "6", "time": "2025-03-06T10:20:30.123Z" }
        }))
        .unwrap();
        assert_eq!(
            (cb.meta.version.as_str(), cb.data.stage.as_deref()),
            ("6", Some("finish"))
        );
        let page: crate::models::Envelope<Vec<crate::models::Account>> = serde_json::from_value(json!({
            "data": [{ "id": "333333333333333333", "connection_id": "111111111111111111",
                       "name": "Demo account", "nature": "account", "balance": 2012.7,
                       "currency_code": "EUR",
                       "extra": { "iban": "XF123456789", "status": "active", "current_date": "2025-03-06",
                                  "transactions_count": { "posted": 5, "pending": 1 } },
                       "created_at": "2025-03-06T10:20:30Z", "updated_at": "2025-03-06T10:20:30Z" }],
            "meta": { "next_id": "333333333333333334",
                      "next_page": "/api/v6/accounts?connection_id=111111111111111111&from_id=333333333333333334" }
        }))
        .unwrap();
        assert_eq!(page.data[0].balance.to_string(), "2012.7");
        assert_eq!(
            page.meta.unwrap().next_id.as_deref(),
            Some("333333333333333334")
        );
    }
}
