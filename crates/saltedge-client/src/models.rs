//! Typed Salt Edge v5 resources. Fields follow the API's names; everything the API may omit
//! is `Option` or defaulted so that new fields or sparse answers never break parsing.
//! Money is `rust_decimal::Decimal` parsed from the JSON number's own text, never via `f64`.
//!
//! Why one file of this size: one type per Salt Edge resource, each small; kept together as
//! the client's single statement of the wire format.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub mod lenient;

/// A string that must never reach logs: `Debug` prints a placeholder, serde is transparent.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct Sensitive(pub String);

impl Sensitive {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A JSON value kept as the text it arrived in (any shape; `null` when absent), for a
/// transaction's `extra`: it is stored whole and only a few documented fields are read,
/// so parsing it into a tree, reading the fields from the tree and printing it back took
/// a third of the CPU of preparing a page of lines. Equality is the values' (not the
/// spelling's).
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RawJson(Box<serde_json::value::RawValue>);

impl RawJson {
    pub fn null() -> Self {
        RawJson(serde_json::value::RawValue::from_string("null".into()).expect("null is JSON"))
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    pub fn is_null(&self) -> bool {
        self.get().trim() == "null"
    }

    /// The value as a tree.
    pub fn value(&self) -> Value {
        serde_json::from_str(self.get()).unwrap_or(Value::Null)
    }

    /// The value read as `T`.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.get())
    }
}

impl Default for RawJson {
    fn default() -> Self {
        RawJson::null()
    }
}

impl From<Value> for RawJson {
    fn from(v: Value) -> Self {
        RawJson(serde_json::value::to_raw_value(&v).expect("a JSON value prints as JSON"))
    }
}

impl PartialEq for RawJson {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get() || self.value() == other.value()
    }
}

impl std::fmt::Debug for RawJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.get())
    }
}

/// `{"data": …, "meta": {…}}`, the envelope of every answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope<T> {
    pub data: T,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<PageMeta>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PageMeta {
    #[serde(default)]
    pub next_id: Option<String>,
    #[serde(default)]
    pub next_page: Option<String>,
}

/// One page of a paginated list.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// `from_id` of the following page, `None` on the last page.
    pub next_id: Option<String>,
    /// Items of the page that did not parse: one bad record never fails its page.
    pub rejected: Vec<Rejected>,
}

/// A list item that did not parse, kept whole with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Its `id`, when that much could be read.
    pub id: Option<String>,
    /// The item's raw JSON text.
    pub raw: String,
    pub reason: String,
}

impl Rejected {
    pub fn of(raw: &str, reason: String) -> Self {
        #[derive(Deserialize)]
        struct IdOnly {
            #[serde(default)]
            id: Option<Value>,
        }
        let id = serde_json::from_str::<IdOnly>(raw)
            .ok()
            .and_then(|i| i.id)
            .and_then(|v| match v {
                Value::String(s) => Some(s),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            });
        Rejected {
            id,
            raw: raw.to_string(),
            reason,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(try_from = "CustomerWire")]
pub struct Customer {
    pub id: String,
    pub identifier: String,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub secret: Sensitive,
    #[serde(default)]
    pub blocked_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
}

/// A customer as either version sends it: v5 names its id `id`, v6 `customer_id` (five
/// third-party v6 clients read `customer_id`; Salt Edge's own v6 example still shows `id`):
/// both are accepted, `customer_id` first.
#[derive(Deserialize)]
struct CustomerWire {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    customer_id: Option<String>,
    identifier: String,
    #[serde(default, deserialize_with = "lenient::null_default")]
    secret: Sensitive,
    #[serde(default)]
    blocked_at: Option<DateTime<Utc>>,
    #[serde(default)]
    created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    updated_at: Option<DateTime<Utc>>,
}

impl TryFrom<CustomerWire> for Customer {
    type Error = &'static str;

    fn try_from(w: CustomerWire) -> Result<Customer, Self::Error> {
        Ok(Customer {
            id: w
                .customer_id
                .or(w.id)
                .ok_or("a customer without `customer_id` or `id`")?,
            identifier: w.identifier,
            secret: w.secret,
            blocked_at: w.blocked_at,
            created_at: w.created_at,
            updated_at: w.updated_at,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RemovedCustomer {
    pub deleted: bool,
    pub id: String,
}

/// Consent asked for in a connect session.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConsentRequest {
    pub scopes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_date: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_days: Option<u32>,
}

impl Default for ConsentRequest {
    fn default() -> Self {
        ConsentRequest {
            scopes: vec!["account_details".into(), "transactions_details".into()],
            from_date: None,
            period_days: None,
        }
    }
}

/// What one fetch (an attempt) should do.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct AttemptRequest {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fetch_scopes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_date: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_fields: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_credentials: Option<bool>,
}

/// `POST /connect_sessions/create`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct CreateConnectSession {
    pub customer_id: String,
    pub consent: ConsentRequest,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub attempt: AttemptRequest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_refresh: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_fake_providers: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_connection_id: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_strategy: Option<String>,
}

/// `POST /connect_sessions/reconnect`: the "update credentials" flow.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct ReconnectConnectSession {
    pub connection_id: String,
    pub consent: ConsentRequest,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub attempt: AttemptRequest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_refresh: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_fake_providers: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_connection_id: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub override_credentials_strategy: Option<String>,
}

/// `POST /connect_sessions/refresh`: refresh through the widget, which also picks up new accounts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct RefreshConnectSession {
    pub connection_id: String,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub attempt: AttemptRequest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_refresh: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_fake_providers: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_connection_id: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConnectSession {
    pub expires_at: DateTime<Utc>,
    pub connect_url: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatus {
    Active,
    Inactive,
    Disabled,
    #[serde(other)]
    Unknown,
}

impl ConnectionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionStatus::Active => "active",
            ConnectionStatus::Inactive => "inactive",
            ConnectionStatus::Disabled => "disabled",
            ConnectionStatus::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Stage {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interactive_html: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interactive_fields_names: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interactive_fields_options: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Attempt {
    pub id: String,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub automatic_fetch: bool,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub daily_refresh: bool,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub finished: bool,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub finished_recent: bool,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub partial: bool,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub interactive: bool,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub store_credentials: bool,
    #[serde(default)]
    pub success_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub fail_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub fail_error_class: Option<String>,
    #[serde(default)]
    pub fail_message: Option<String>,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub fetch_scopes: Vec<String>,
    #[serde(default)]
    pub from_date: Option<NaiveDate>,
    #[serde(default)]
    pub last_stage: Option<Stage>,
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Connection {
    pub id: String,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub secret: Sensitive,
    pub customer_id: String,
    pub provider_code: String,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub provider_name: String,
    #[serde(default)]
    pub provider_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub country_code: String,
    pub status: ConnectionStatus,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub daily_refresh: bool,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub store_credentials: bool,
    #[serde(default)]
    pub categorization: Option<String>,
    #[serde(default)]
    pub last_success_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub next_refresh_possible_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub last_consent_id: Option<String>,
    #[serde(default)]
    pub last_attempt: Option<Attempt>,
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
}

/// How the last attempt ended, read from `last_attempt.success_at` / `fail_at` /
/// `fail_error_class` — never from the stage name: a real connection can end at stage
/// `finish` with `ProviderAccessNotGranted` (corpus `connection-show.1.json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    Succeeded {
        at: DateTime<Utc>,
    },
    Failed {
        at: Option<DateTime<Utc>>,
        class: String,
        message: Option<String>,
    },
    /// Not finished yet (fetching, or waiting for interactive input).
    InProgress,
    /// No attempt known.
    Unknown,
}

impl Attempt {
    pub fn outcome(&self) -> AttemptOutcome {
        match (self.success_at, self.fail_at, &self.fail_error_class) {
            // The later of the two wins when both are set.
            (Some(s), Some(f), _) if s >= f => AttemptOutcome::Succeeded { at: s },
            (_, Some(f), class) => AttemptOutcome::Failed {
                at: Some(f),
                class: class.clone().unwrap_or_else(|| "Unknown".into()),
                message: self.fail_message.clone(),
            },
            (None, None, Some(class)) => AttemptOutcome::Failed {
                at: None,
                class: class.clone(),
                message: self.fail_message.clone(),
            },
            (Some(s), None, _) => AttemptOutcome::Succeeded { at: s },
            (None, None, None) if self.finished => AttemptOutcome::Unknown,
            (None, None, None) => AttemptOutcome::InProgress,
        }
    }
}

impl Connection {
    pub fn last_outcome(&self) -> AttemptOutcome {
        self.last_attempt
            .as_ref()
            .map(Attempt::outcome)
            .unwrap_or(AttemptOutcome::Unknown)
    }
}

/// `PUT /connections/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct ConnectionUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ConnectionStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_refresh: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_credentials: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RemovedConnection {
    pub id: String,
    pub removed: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Consent {
    pub id: String,
    #[serde(default)]
    pub connection_id: Option<String>,
    #[serde(default)]
    pub customer_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub period_days: Option<u32>,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub from_date: Option<NaiveDate>,
    #[serde(default)]
    pub to_date: Option<NaiveDate>,
    #[serde(default)]
    pub collected_by: Option<String>,
    #[serde(default)]
    pub revoked_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub revoke_reason: Option<String>,
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Account {
    pub id: String,
    pub connection_id: String,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub name: String,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub nature: String,
    #[serde(with = "lenient::amount")]
    pub balance: Decimal,
    pub currency_code: String,
    /// Raw `extra`, kept whole; [`Account::extra_typed`] reads the documented fields.
    #[serde(default)]
    pub extra: Value,
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct AccountExtra {
    #[serde(default)]
    pub iban: Option<String>,
    #[serde(default)]
    pub account_number: Option<String>,
    #[serde(default)]
    pub sort_code: Option<String>,
    #[serde(default)]
    pub swift: Option<String>,
    #[serde(default)]
    pub client_name: Option<String>,
    #[serde(default)]
    pub account_name: Option<String>,
    #[serde(default, with = "lenient::amount_opt")]
    pub available_amount: Option<Decimal>,
    #[serde(default, with = "lenient::amount_opt")]
    pub credit_limit: Option<Decimal>,
    #[serde(default, with = "lenient::amount_opt")]
    pub blocked_amount: Option<Decimal>,
    /// Some providers report an available rather than a booked balance (`"available"`).
    #[serde(default)]
    pub balance_type: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub transactions_count: Option<TransactionsCount>,
    #[serde(default)]
    pub last_posted_transaction_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct TransactionsCount {
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub posted: u64,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub pending: u64,
}

impl Account {
    pub fn extra_typed(&self) -> Result<AccountExtra, serde_json::Error> {
        if self.extra.is_null() {
            return Ok(AccountExtra::default());
        }
        serde_json::from_value(self.extra.clone())
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TransactionStatus {
    Posted,
    Pending,
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Transaction {
    pub id: String,
    pub account_id: String,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub duplicated: bool,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub mode: String,
    pub status: TransactionStatus,
    pub made_on: NaiveDate,
    /// Signed: negative is money leaving the account.
    #[serde(with = "lenient::amount")]
    pub amount: Decimal,
    pub currency_code: String,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub description: String,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub category: String,
    /// Raw `extra`, kept whole as text; [`Transaction::extra_typed`] reads the documented
    /// fields.
    #[serde(default)]
    pub extra: RawJson,
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct TransactionExtra {
    #[serde(default)]
    pub posting_date: Option<NaiveDate>,
    #[serde(default)]
    pub posting_time: Option<String>,
    #[serde(default)]
    pub payee: Option<String>,
    #[serde(default)]
    pub payee_information: Option<String>,
    #[serde(default)]
    pub payer: Option<String>,
    #[serde(default)]
    pub payer_information: Option<String>,
    #[serde(default, with = "lenient::amount_opt")]
    pub original_amount: Option<Decimal>,
    #[serde(default)]
    pub original_currency_code: Option<String>,
    #[serde(default, with = "lenient::amount_opt")]
    pub account_balance_snapshot: Option<Decimal>,
    #[serde(default)]
    pub information: Option<String>,
    #[serde(default)]
    pub additional: Option<String>,
    #[serde(default)]
    pub possible_duplicate: Option<bool>,
    #[serde(default)]
    pub record_number: Option<String>,
    /// The bank's own id of the transaction, where the provider gives one (a string or a
    /// number).
    #[serde(default)]
    pub id: Option<Value>,
}

impl Transaction {
    pub fn extra_typed(&self) -> Result<TransactionExtra, serde_json::Error> {
        if self.extra.is_null() {
            return Ok(TransactionExtra::default());
        }
        self.extra.parse()
    }
}

/// `PUT /transactions/duplicate` and `/unduplicate`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DuplicateRequest {
    pub customer_id: String,
    pub transaction_ids: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Provider {
    #[serde(default)]
    pub id: Option<String>,
    pub code: String,
    pub name: String,
    pub country_code: String,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub mode: String,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub status: String,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub automatic_fetch: bool,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub interactive: bool,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub refresh_timeout: u32,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub max_fetch_interval: u32,
    #[serde(default)]
    pub max_consent_days: Option<u32>,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub supported_fetch_scopes: Vec<String>,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub supported_account_natures: Vec<String>,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub regulated: bool,
    #[serde(default)]
    pub home_url: Option<String>,
    #[serde(default)]
    pub logo_url: Option<String>,
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Country {
    pub code: String,
    pub name: String,
    #[serde(default)]
    pub refresh_start_time: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Currency {
    pub code: String,
    pub name: String,
}

/// Callback bodies: `{"data": {…}, "meta": {"version", "time"}}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CallbackBody {
    pub data: CallbackData,
    pub meta: CallbackMeta,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct CallbackData {
    /// Empty in callbacks about no connection (v6's provider changes).
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub connection_id: String,
    #[serde(default, deserialize_with = "lenient::null_default")]
    pub customer_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_fields: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interactive_fields_names: Option<Vec<String>>,
    /// Interactive callbacks: the bank's question as HTML (untrusted: shown as data only).
    #[serde(
        default,
        alias = "interactive_html",
        skip_serializing_if = "Option::is_none"
    )]
    pub html: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_expires_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interactive_fields_options: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// v6 provider-changes callbacks: the provider and its new status (unverified shape).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_status: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CallbackMeta {
    pub version: String,
    pub time: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_parse_exactly_from_json_text() {
        let t: Transaction = serde_json::from_str(
            r#"{"id":"987654321098765432","account_id":"1","status":"posted","made_on":"2026-01-02",
                "amount":-1234567890123.10,"currency_code":"EUR","extra":{"account_balance_snapshot":0.1}}"#,
        )
        .unwrap();
        assert_eq!(t.amount.to_string(), "-1234567890123.10");
        assert_eq!(
            t.extra_typed()
                .unwrap()
                .account_balance_snapshot
                .unwrap()
                .to_string(),
            "0.1"
        );
        assert_eq!(t.id, "987654321098765432");
        let back = serde_json::to_string(&t).unwrap();
        assert!(back.contains("\"amount\":-1234567890123.10"), "{back}");
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let c: Customer =
            serde_json::from_str(r#"{"id":"1","identifier":"x","secret":"TOPSECRET"}"#).unwrap();
        assert!(!format!("{c:?}").contains("TOPSECRET"));
        assert_eq!(c.secret.expose(), "TOPSECRET");
    }
}
