//! The simulator's own wire types: what it serialises in responses and callbacks and what it
//! reads from requests. Written from the guide and the payload corpus
//! (`conformance/saltedge-v5-payloads/`), not shared with saltedge-client, so a
//! wrong assumption in the client cannot be mirrored here. Field names and nesting follow
//! the recorded payloads (`connection-show.1.json`, `accounts-list.1.json`, …); what the
//! simulator leaves out is listed in the README ("Salt Edge fidelity").

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Money as a JSON number with the decimal's own digits (`-3974.60`), as Salt Edge sends it.
mod number {
    use rust_decimal::Decimal;
    use serde::Serializer;

    pub fn serialize<S: Serializer>(v: &Decimal, s: S) -> Result<S::Ok, S::Error> {
        let n: serde_json::Number = v.to_string().parse().map_err(serde::ser::Error::custom)?;
        serde::Serialize::serialize(&n, s)
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PageMeta {
    pub next_id: Option<String>,
    pub next_page: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Customer {
    pub id: String,
    pub identifier: String,
    pub secret: String,
    pub blocked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

// ----- requests -----

#[derive(Debug, Clone, Deserialize)]
pub struct ConsentRequest {
    pub scopes: Vec<String>,
    #[serde(default)]
    pub from_date: Option<NaiveDate>,
    #[serde(default)]
    pub period_days: Option<u32>,
}

impl ConsentRequest {
    pub fn standard() -> Self {
        ConsentRequest {
            scopes: vec!["account_details".into(), "transactions_details".into()],
            from_date: None,
            period_days: None,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct AttemptRequest {
    #[serde(default)]
    pub fetch_scopes: Option<Vec<String>>,
    #[serde(default)]
    pub from_date: Option<NaiveDate>,
    #[serde(default)]
    pub return_to: Option<String>,
    #[serde(default)]
    pub custom_fields: Option<Value>,
    #[serde(default)]
    pub store_credentials: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CreateConnectSession {
    pub customer_id: String,
    pub consent: ConsentRequest,
    #[serde(default)]
    pub attempt: AttemptRequest,
    #[serde(default)]
    pub provider_code: Option<String>,
    #[serde(default)]
    pub daily_refresh: Option<bool>,
    #[serde(default)]
    pub include_fake_providers: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ReconnectConnectSession {
    pub connection_id: String,
    pub consent: ConsentRequest,
    #[serde(default)]
    pub attempt: AttemptRequest,
    #[serde(default)]
    pub daily_refresh: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RefreshConnectSession {
    pub connection_id: String,
    #[serde(default)]
    pub attempt: AttemptRequest,
    #[serde(default)]
    pub daily_refresh: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ConnectionUpdate {
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub daily_refresh: Option<bool>,
    #[serde(default)]
    pub store_credentials: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DuplicateRequest {
    pub customer_id: String,
    pub transaction_ids: Vec<String>,
}

// ----- responses -----

#[derive(Debug, Clone, Serialize)]
pub struct ConnectSession {
    pub expires_at: DateTime<Utc>,
    pub connect_url: String,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatus {
    Active,
    Inactive,
    Disabled,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Stage {
    pub id: String,
    pub name: String,
    pub interactive_html: Option<String>,
    pub interactive_fields_names: Option<Vec<String>>,
    pub interactive_fields_options: Option<Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Attempt {
    pub id: String,
    pub api_mode: &'static str,
    pub api_version: &'static str,
    pub automatic_fetch: bool,
    pub daily_refresh: bool,
    pub finished: bool,
    pub finished_recent: bool,
    pub partial: bool,
    pub interactive: bool,
    pub store_credentials: bool,
    pub success_at: Option<DateTime<Utc>>,
    pub fail_at: Option<DateTime<Utc>>,
    pub fail_error_class: Option<String>,
    pub fail_message: Option<String>,
    pub fetch_scopes: Vec<String>,
    pub from_date: Option<NaiveDate>,
    pub to_date: Option<NaiveDate>,
    pub consent_id: Option<String>,
    pub custom_fields: Value,
    pub exclude_accounts: Vec<String>,
    pub last_stage: Option<Stage>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Connection {
    pub id: String,
    pub secret: String,
    pub provider_id: String,
    pub provider_code: String,
    pub provider_name: String,
    pub customer_id: String,
    pub next_refresh_possible_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub status: ConnectionStatus,
    pub categorization: &'static str,
    pub daily_refresh: bool,
    pub store_credentials: bool,
    pub country_code: String,
    pub last_success_at: Option<DateTime<Utc>>,
    pub show_consent_confirmation: bool,
    pub last_consent_id: Option<String>,
    pub last_attempt: Option<Attempt>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RemovedConnection {
    pub id: String,
    pub removed: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Consent {
    pub id: String,
    pub connection_id: Option<String>,
    pub customer_id: Option<String>,
    pub scopes: Vec<String>,
    pub period_days: Option<u32>,
    pub expires_at: Option<DateTime<Utc>>,
    pub from_date: Option<NaiveDate>,
    pub to_date: Option<NaiveDate>,
    pub collected_by: &'static str,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoke_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Account {
    pub id: String,
    pub connection_id: String,
    pub name: String,
    pub nature: String,
    #[serde(with = "number")]
    pub balance: Decimal,
    pub currency_code: String,
    pub extra: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TransactionStatus {
    Posted,
    Pending,
}

#[derive(Debug, Clone, Serialize)]
pub struct Transaction {
    pub id: String,
    pub duplicated: bool,
    pub mode: &'static str,
    pub status: TransactionStatus,
    pub made_on: NaiveDate,
    #[serde(with = "number")]
    pub amount: Decimal,
    pub currency_code: String,
    pub description: String,
    pub category: &'static str,
    pub extra: Value,
    pub account_id: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Provider {
    pub id: String,
    pub code: String,
    pub name: String,
    pub mode: String,
    pub status: &'static str,
    pub automatic_fetch: bool,
    pub interactive: bool,
    pub refresh_timeout: u32,
    pub max_consent_days: Option<u32>,
    pub max_fetch_interval: u32,
    pub country_code: String,
    pub supported_fetch_scopes: Vec<&'static str>,
    pub supported_account_natures: Vec<&'static str>,
    pub regulated: bool,
    pub home_url: String,
    pub logo_url: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Country {
    pub code: &'static str,
    pub name: &'static str,
    pub refresh_start_time: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Currency {
    pub code: &'static str,
    pub name: &'static str,
}

/// A callback's `data`: the common keys plus those of each kind.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CallbackData {
    pub connection_id: String,
    pub customer_id: String,
    pub custom_fields: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_class: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_expires_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interactive_fields_names: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interactive_fields_options: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
