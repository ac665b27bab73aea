//! The simulator's state: customers, connections, consents, connect sessions, accounts and
//! transactions, generated deterministically from a seed. Each fetch ("advance") posts
//! pending transactions under new ids, drops a cancelled one, and adds new activity, like a
//! real bank. [`GroundTruth`] exposes what exists so tests can check "exactly once".
//!
//! Why one file of this size: the bank's state and the transitions a fetch applies to it
//! must change together; the ground truth is computed from the same structures.

use std::collections::{BTreeMap, HashMap};

use crate::errors::ErrorClass;
use crate::wire::*;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::json;

use crate::catalogue::{self, AuthKind};

/// Shape of the generated data.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct DataConfig {
    pub seed: u64,
    pub accounts_per_connection: u32,
    pub transactions_per_account: u32,
    pub history_days: u32,
    pub pending_per_account: u32,
    /// Genuine twins per account: a second real transaction with the same amount, date,
    /// currency and text (two coffees), carrying Salt Edge's `extra.possible_duplicate` hint.
    pub twins_per_account: u32,
    /// Transactions the bank re-issues under a new id on each fetch (the old id is gone; the
    /// new one carries `possible_duplicate`).
    pub reissued_per_fetch: u32,
    pub new_transactions_per_fetch: u32,
    /// A widget refresh session finds one more account at the bank ("fetch new accounts").
    pub new_account_on_refresh_session: bool,
    /// The bank's "today"; `None` = the real date.
    pub today: Option<NaiveDate>,
    /// First id handed out; `None` = a block chosen from the clock, so that ids stay unique
    /// across simulator runs against one database, as Salt Edge's are.
    pub id_base: Option<u64>,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            seed: 42,
            accounts_per_connection: 2,
            transactions_per_account: 40,
            history_days: 90,
            pending_per_account: 3,
            twins_per_account: 1,
            reissued_per_fetch: 1,
            new_transactions_per_fetch: 4,
            new_account_on_refresh_session: true,
            today: None,
            id_base: None,
        }
    }
}

/// An API failure, answered as Salt Edge's error JSON.
#[derive(Debug, Clone)]
pub struct SimError {
    pub class: ErrorClass,
    pub message: String,
}

impl SimError {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        SimError {
            class,
            message: message.into(),
        }
    }
}

/// Deterministic PRNG (SplitMix64): stable across versions, unlike `rand`'s `StdRng`.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next_u64() % ((hi - lo + 1) as u64)) as i64
    }
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() as f64 / u64::MAX as f64) < p
    }
}

/// A JSON number with the decimal's digits (`5000.00`), as Salt Edge writes money.
fn num(d: Decimal) -> serde_json::Value {
    d.to_string()
        .parse::<serde_json::Number>()
        .map(serde_json::Value::Number)
        .unwrap_or(serde_json::Value::Null)
}

/// The bank's question on the interactive stage (the simulator's own text).
pub const SMS_HTML: &str = "<div>Enter the SMS code sent to your phone</div>";

/// (description, payee, min, max) in minor units.
const ACTIVITY: &[(&str, &str, i64, i64)] = &[
    ("Salary ACME Ltd", "ACME Ltd", 150_000, 350_000),
    ("Rent City Flats", "City Flats", -180_000, -90_000),
    ("Coffee Shop", "Bean There", -800, -250),
    ("Supermarket FreshMart", "FreshMart", -12_000, -1_500),
    ("Electricity bill PowerCo", "PowerCo", -15_000, -4_000),
    ("Online Store order", "ShopOnline", -30_000, -1_000),
    ("Transfer from savings", "Own account", 5_000, 50_000),
    ("ATM withdrawal", "ATM", -40_000, -2_000),
    ("Customer payment invoice", "Globex Corp", 10_000, 250_000),
    ("Bank fee", "Bank", -1_500, -100),
];

#[derive(Debug, Clone)]
pub enum SessionKind {
    Create,
    Reconnect(String),
    Refresh(String),
}

#[derive(Debug, Clone)]
pub struct Session {
    pub kind: SessionKind,
    pub customer_id: String,
    pub provider_code: Option<String>,
    pub return_to: Option<String>,
    pub include_fake_providers: bool,
    pub daily_refresh: bool,
    pub consent: Option<ConsentRequest>,
    pub custom_fields: Option<serde_json::Value>,
    pub expires_at: DateTime<Utc>,
    /// Set after login when the provider asks for an SMS code.
    pub awaiting_sms: Option<AwaitingSms>,
    pub done: bool,
}

#[derive(Debug, Clone)]
pub struct AwaitingSms {
    pub connection_id: String,
    pub provider_code: String,
    pub login: String,
}

#[derive(Debug)]
pub struct ConnRec {
    pub conn: Connection,
    pub login: Option<String>,
    pub removed: bool,
    pub custom_fields: Option<serde_json::Value>,
    pub accounts: Vec<Account>,
    openings: Vec<Decimal>,
    /// Posted transactions in id order, including those flagged `duplicated`.
    pub posted: Vec<Transaction>,
    pub pending: Vec<Transaction>,
    pub posted_from_pending: Vec<(String, String)>,
    pub vanished_pending: Vec<String>,
    /// (old id, new id): the bank re-issued a transaction; the old id is gone.
    pub reissued: Vec<(String, String)>,
    /// (first id, twin id): two real transactions that look alike.
    pub twins: Vec<(String, String)>,
    /// Local date (provider's capital) of Salt Edge's last nightly fetch.
    pub last_automatic_on: Option<NaiveDate>,
}

impl ConnRec {
    pub fn consent_id(&self) -> Option<&str> {
        self.conn.last_consent_id.as_deref()
    }
}

/// What the bank holds for one connection, for tests to compare against.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct GroundTruth {
    pub connection_id: String,
    pub accounts: Vec<AccountTruth>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct AccountTruth {
    pub account_id: String,
    pub currency_code: String,
    #[serde(with = "rust_decimal::serde::str")]
    pub balance: Decimal,
    /// Posted, not duplicated: each should become exactly one statement line.
    pub posted: Vec<TxTruth>,
    /// Posted but flagged `duplicated`: should not become lines.
    pub duplicated_ids: Vec<String>,
    /// Still pending now.
    pub pending: Vec<TxTruth>,
    /// (pending id, posted id) pairs: the posted one replaced the pending one.
    pub posted_from_pending: Vec<(String, String)>,
    /// Pending ids that disappeared without posting.
    pub vanished_pending: Vec<String>,
    /// (old id, new id): re-issued by the bank; only the new id is listed.
    pub reissued: Vec<(String, String)>,
    /// (first id, twin id): both real and listed.
    pub twins: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct TxTruth {
    pub id: String,
    pub made_on: NaiveDate,
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    pub description: String,
}

#[derive(Debug)]
pub struct World {
    pub data: DataConfig,
    next_id: u64,
    rng: SplitMix64,
    pub customers: BTreeMap<String, Customer>,
    /// Customer identifier → customer id (Salt Edge's identifiers are unique per client):
    /// finding a customer by identifier must not scan every customer at scale.
    identifiers: HashMap<String, String>,
    /// Customer id → its connections' ids, oldest first (connections are never forgotten).
    by_customer: HashMap<String, Vec<String>>,
    pub connections: BTreeMap<String, ConnRec>,
    pub consents: BTreeMap<String, Consent>,
    pub sessions: HashMap<String, Session>,
    /// A clock set by a test; `None` = real time.
    pub clock: Option<DateTime<Utc>>,
    /// Every fetch of new data, as the bank saw it.
    pub fetch_log: Vec<FetchRecord>,
    /// Connection id → how many of its next fetches fail at the bank (ProviderUnavailable).
    pub failing_fetches: HashMap<String, u32>,
}

/// One fetch of new data from the bank.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct FetchRecord {
    pub connection_id: String,
    pub at: DateTime<Utc>,
    /// Salt Edge's own nightly fetch (not asked for by the client).
    pub automatic: bool,
    pub succeeded: bool,
}

impl World {
    pub fn new(data: DataConfig) -> Self {
        let rng = SplitMix64::new(data.seed);
        let base = data.id_base.unwrap_or_else(|| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            // 18 digits: 1e17 plus a block of 1e9 ids per (tenth of a) second of start time.
            100_000_000_000_000_000 + (now.as_millis() as u64 / 100 % 800_000_000) * 1_000_000_000
        });
        World {
            data,
            next_id: base + 1,
            rng,
            customers: BTreeMap::new(),
            identifiers: HashMap::new(),
            by_customer: HashMap::new(),
            connections: BTreeMap::new(),
            consents: BTreeMap::new(),
            sessions: HashMap::new(),
            clock: None,
            fetch_log: vec![],
            failing_fetches: HashMap::new(),
        }
    }

    /// Ids are 18-digit decimal strings, increasing in creation order.
    pub fn new_id(&mut self) -> String {
        let id = self.next_id;
        self.next_id += 1;
        id.to_string()
    }

    pub fn token(&mut self) -> String {
        format!("{:016x}{:016x}", self.rng.next_u64(), self.rng.next_u64())
    }

    /// The simulator's clock: real time unless a test set it ([`World::clock`]).
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.unwrap_or_else(Utc::now)
    }

    pub fn today(&self) -> NaiveDate {
        self.data.today.unwrap_or_else(|| self.now().date_naive())
    }

    // ----- customers -----

    /// The customer's connections (removed ones too), oldest first.
    pub fn connections_of(&self, customer_id: &str) -> impl Iterator<Item = &ConnRec> {
        self.by_customer
            .get(customer_id)
            .into_iter()
            .flatten()
            .filter_map(|id| self.connections.get(id))
    }

    /// The customer with this identifier.
    pub fn customer_by_identifier(&self, identifier: &str) -> Option<&Customer> {
        self.customers.get(self.identifiers.get(identifier)?)
    }

    /// Forgets a customer (its connections are the caller's business).
    pub fn remove_customer(&mut self, id: &str) -> Option<Customer> {
        let c = self.customers.remove(id)?;
        self.identifiers.remove(&c.identifier);
        Some(c)
    }

    pub fn create_customer(&mut self, identifier: &str) -> Result<Customer, SimError> {
        if identifier.trim().is_empty() {
            return Err(SimError::new(
                ErrorClass::WrongRequestFormat,
                "identifier is required",
            ));
        }
        if self.identifiers.contains_key(identifier) {
            return Err(SimError::new(
                ErrorClass::DuplicatedCustomer,
                "Customer with such identifier already exists.",
            ));
        }
        let id = self.new_id();
        let secret = format!("cs-{}", self.token());
        let now = self.now();
        let c = Customer {
            id: id.clone(),
            identifier: identifier.to_string(),
            secret,
            blocked_at: None,
            created_at: now,
            updated_at: now,
        };
        self.identifiers.insert(c.identifier.clone(), id.clone());
        self.customers.insert(id, c.clone());
        Ok(c)
    }

    pub fn customer(&self, id: &str) -> Result<&Customer, SimError> {
        self.customers.get(id).ok_or_else(|| {
            SimError::new(
                ErrorClass::CustomerNotFound,
                format!("Customer with id: '{id}' was not found."),
            )
        })
    }

    // ----- connections -----

    pub fn conn(&self, id: &str) -> Result<&ConnRec, SimError> {
        self.connections
            .get(id)
            .filter(|c| !c.removed)
            .ok_or_else(|| {
                SimError::new(
                    ErrorClass::ConnectionNotFound,
                    format!("Connection with id: '{id}' was not found."),
                )
            })
    }

    pub fn conn_mut(&mut self, id: &str) -> Result<&mut ConnRec, SimError> {
        self.connections
            .get_mut(id)
            .filter(|c| !c.removed)
            .ok_or_else(|| {
                SimError::new(
                    ErrorClass::ConnectionNotFound,
                    format!("Connection with id: '{id}' was not found."),
                )
            })
    }

    fn attempt(
        &mut self,
        success: bool,
        error: Option<(&ErrorClass, &str)>,
        stage: &str,
        automatic: bool,
    ) -> Attempt {
        let now = self.now();
        Attempt {
            id: self.new_id(),
            api_mode: "service",
            api_version: "5",
            automatic_fetch: automatic,
            daily_refresh: automatic,
            finished: true,
            finished_recent: true,
            partial: false,
            interactive: false,
            store_credentials: true,
            success_at: success.then_some(now),
            fail_at: (!success).then_some(now),
            fail_error_class: error.map(|(c, _)| c.to_string()),
            fail_message: error.map(|(_, m)| m.to_string()),
            fetch_scopes: vec!["accounts".into(), "transactions".into()],
            from_date: None,
            to_date: Some(now.date_naive()),
            consent_id: None,
            custom_fields: json!({}),
            exclude_accounts: vec![],
            last_stage: Some(Stage {
                id: self.new_id(),
                name: stage.into(),
                created_at: now,
                updated_at: now,
                ..Default::default()
            }),
            created_at: now,
            updated_at: now,
        }
    }

    /// A connection that exists at Salt Edge but whose first attempt is still running
    /// (interactive) or failed.
    pub fn new_connection_shell(
        &mut self,
        customer_id: &str,
        provider_code: &str,
        login: Option<&str>,
        daily_refresh: bool,
        custom_fields: Option<serde_json::Value>,
    ) -> Result<String, SimError> {
        self.customer(customer_id)?;
        let spec = catalogue::spec(provider_code).ok_or_else(|| {
            SimError::new(
                ErrorClass::ProviderNotFound,
                format!("Provider with code: '{provider_code}' was not found."),
            )
        })?;
        let id = self.new_id();
        let secret = format!("cn-{}", self.token());
        let now = self.now();
        let conn = Connection {
            id: id.clone(),
            secret,
            customer_id: customer_id.into(),
            provider_code: spec.code.into(),
            provider_name: spec.name.into(),
            provider_id: catalogue::provider_id(spec.code),
            country_code: spec.country.into(),
            status: ConnectionStatus::Inactive,
            daily_refresh,
            store_credentials: true,
            categorization: "personal",
            show_consent_confirmation: false,
            last_success_at: None,
            next_refresh_possible_at: None,
            last_consent_id: None,
            last_attempt: None,
            created_at: now,
            updated_at: now,
        };
        self.by_customer
            .entry(customer_id.to_string())
            .or_default()
            .push(id.clone());
        self.connections.insert(
            id.clone(),
            ConnRec {
                conn,
                login: login.map(str::to_string),
                removed: false,
                custom_fields,
                accounts: vec![],
                openings: vec![],
                posted: vec![],
                pending: vec![],
                posted_from_pending: vec![],
                vanished_pending: vec![],
                reissued: vec![],
                twins: vec![],
                last_automatic_on: None,
            },
        );
        Ok(id)
    }

    /// The customer already has a working connection to this provider with this login.
    pub fn duplicate_of(
        &self,
        customer_id: &str,
        provider_code: &str,
        login: Option<&str>,
    ) -> Option<String> {
        self.connections.values().find_map(|c| {
            (!c.removed
                && c.conn.customer_id == customer_id
                && c.conn.provider_code == provider_code
                && c.conn.last_success_at.is_some()
                && c.login.as_deref() == login)
                .then(|| c.conn.id.clone())
        })
    }

    pub fn fail_attempt(
        &mut self,
        conn_id: &str,
        class: &ErrorClass,
        message: &str,
    ) -> Result<(), SimError> {
        self.fail_attempt_as(conn_id, class, message, false)
    }

    pub fn fail_attempt_as(
        &mut self,
        conn_id: &str,
        class: &ErrorClass,
        message: &str,
        automatic: bool,
    ) -> Result<(), SimError> {
        let attempt = self.attempt(false, Some((class, message)), "finish", automatic);
        let now = self.now();
        let rec = self.conn_mut(conn_id)?;
        rec.conn.next_refresh_possible_at = Some(now + Duration::minutes(60));
        if *class == ErrorClass::InvalidCredentials {
            rec.conn.status = ConnectionStatus::Inactive;
        }
        rec.conn.last_attempt = Some(attempt);
        rec.conn.updated_at = now;
        Ok(())
    }

    pub fn set_interactive_stage(&mut self, conn_id: &str) -> Result<(), SimError> {
        let mut attempt = self.attempt(false, None, "interactive", false);
        attempt.finished = false;
        attempt.fail_at = None;
        attempt.interactive = true;
        if let Some(s) = attempt.last_stage.as_mut() {
            s.interactive_html = Some(SMS_HTML.into());
            s.interactive_fields_names = Some(vec!["sms".into()]);
        }
        self.conn_mut(conn_id)?.conn.last_attempt = Some(attempt);
        Ok(())
    }

    /// A successful attempt: gives consent, makes the connection active and fetches data.
    /// The first fetch generates the history; later ones advance the bank by one fetch.
    pub fn succeed(
        &mut self,
        conn_id: &str,
        consent: Option<&ConsentRequest>,
        add_account: bool,
        automatic: bool,
    ) -> Result<(), SimError> {
        if let Some(req) = consent {
            let consent_id = self.new_id();
            let now = self.now();
            let period = req.period_days.unwrap_or(90);
            let rec = self.conn(conn_id)?;
            let c = Consent {
                id: consent_id.clone(),
                connection_id: Some(conn_id.into()),
                customer_id: Some(rec.conn.customer_id.clone()),
                scopes: req.scopes.clone(),
                period_days: Some(period),
                expires_at: Some(now + Duration::days(period as i64)),
                from_date: req.from_date,
                to_date: None,
                collected_by: "saltedge",
                revoked_at: None,
                revoke_reason: None,
                created_at: now,
                updated_at: now,
            };
            self.consents.insert(consent_id.clone(), c);
            self.conn_mut(conn_id)?.conn.last_consent_id = Some(consent_id);
        }
        let first = self.conn(conn_id)?.accounts.is_empty();
        if first {
            match self.earlier_link(conn_id) {
                // The same bank and login linked before: the same accounts and history,
                // under new Salt Edge ids (the simulator's choice; see docs/saltedge.md).
                Some(earlier) => self.copy_bank(&earlier, conn_id)?,
                None => {
                    for _ in 0..self.data.accounts_per_connection {
                        self.add_account(conn_id)?;
                    }
                }
            }
        } else {
            self.advance(conn_id)?;
            if add_account {
                self.add_account(conn_id)?;
            }
        }
        let attempt = self.attempt(true, None, "finish", automatic);
        let now = self.now();
        let rec = self.conn_mut(conn_id)?;
        rec.conn.status = ConnectionStatus::Active;
        // Salt Edge's timestamps have whole seconds (every one in the conformance corpus,
        // e.g. `connection-show.1.json`); a consumer must not read more precision into them.
        rec.conn.last_success_at = Some(chrono::SubsecRound::trunc_subsecs(now, 0));
        rec.conn.next_refresh_possible_at = Some(now + Duration::minutes(60));
        rec.conn.last_attempt = Some(attempt);
        rec.conn.updated_at = now;
        self.recompute_balances(conn_id)?;
        Ok(())
    }

    fn make_tx(
        &mut self,
        account: &Account,
        made_on: NaiveDate,
        amount: Decimal,
        description: &str,
        payee: &str,
        status: TransactionStatus,
    ) -> Transaction {
        let id = self.new_id();
        let now = self.now();
        Transaction {
            id: id.clone(),
            account_id: account.id.clone(),
            duplicated: false,
            mode: "normal",
            status,
            made_on,
            amount,
            currency_code: account.currency_code.clone(),
            description: description.into(),
            category: "uncategorized",
            extra: json!({
                "posting_date": made_on.succ_opt().unwrap_or(made_on).to_string(),
                "payee": payee,
                "record_number": id,
            }),
            created_at: now,
            updated_at: now,
        }
    }

    fn random_activity(&mut self, currency: &str) -> (Decimal, &'static str, &'static str) {
        let (desc, payee, lo, hi) =
            ACTIVITY[(self.rng.next_u64() % ACTIVITY.len() as u64) as usize];
        let mut minor = self.rng.range(lo, hi);
        if minor == 0 {
            minor = -1;
        }
        (Decimal::new(minor, catalogue::scale(currency)), desc, payee)
    }

    /// A new account with its full history, pending and duplicated transactions.
    pub fn add_account(&mut self, conn_id: &str) -> Result<String, SimError> {
        let (provider_code, n_existing) = {
            let rec = self.conn(conn_id)?;
            (rec.conn.provider_code.clone(), rec.accounts.len())
        };
        let spec = catalogue::spec(&provider_code).expect("connections have known providers");
        let currency = spec.currencies[n_existing % spec.currencies.len()];
        let id = self.new_id();
        // Current account, credit card (balance = sum of its negative transactions), savings,
        // credit line, debit card: the natures of the corpus (`accounts-list.1.json`).
        let natures = ["account", "credit_card", "savings", "credit", "card"];
        let nature = natures[n_existing % natures.len()];
        let iban = format!(
            "{}{:02}SIM{:015}",
            if spec.country == "XF" {
                "XF"
            } else {
                spec.country
            },
            n_existing + 10,
            self.rng.next_u64() % 1_000_000_000_000_000
        );
        let now = self.now();
        let account = Account {
            id: id.clone(),
            connection_id: conn_id.into(),
            name: format!("{} {} {}", spec.name, nature, n_existing + 1),
            nature: nature.into(),
            balance: Decimal::ZERO,
            currency_code: currency.into(),
            extra: json!({ "iban": iban, "account_name": format!("{nature} {}", n_existing + 1), "client_name": "Sim Customer" }),
            created_at: now,
            updated_at: now,
        };
        let opening = Decimal::new(
            self.rng.range(100_000, 2_000_000),
            catalogue::scale(currency),
        );
        let today = self.today();
        let days = self.data.history_days.max(1) as i64;
        let m = self.data.transactions_per_account as i64;
        let mut txs = Vec::with_capacity(m as usize);
        for k in 0..m {
            let made_on = today - Duration::days(days) + Duration::days(k * days / m.max(1));
            let (amount, desc, payee) = self.random_activity(currency);
            txs.push(self.make_tx(
                &account,
                made_on,
                amount,
                desc,
                payee,
                TransactionStatus::Posted,
            ));
        }
        // Genuine twins: both real, both listed; Salt Edge only hints (`possible_duplicate`).
        // `duplicated` is never set here: only a client sets it (PUT /transactions/duplicate).
        let mut twins = vec![];
        for _ in 0..self.data.twins_per_account.min(m as u32) {
            let src = txs[(self.rng.next_u64() % m as u64) as usize].clone();
            let twin = self.copy_tx(&src);
            twins.push((src.id.clone(), twin.id.clone()));
            txs.push(twin);
        }
        let pending = self.new_pending(&account);
        let rec = self.conn_mut(conn_id)?;
        rec.accounts.push(account);
        rec.openings.push(opening);
        rec.posted.extend(txs);
        rec.pending.extend(pending);
        rec.twins.extend(twins);
        self.recompute_balances(conn_id)?;
        Ok(id)
    }

    /// A removed connection of the same customer to the same provider with the same login
    /// (the bank linked again after a delete), if any.
    fn earlier_link(&self, conn_id: &str) -> Option<String> {
        let rec = self.connections.get(conn_id)?;
        // The customer's connections only: scanning every connection made seeding
        // quadratic (200,000 connections did not seed in 5 minutes).
        self.by_customer
            .get(&rec.conn.customer_id)?
            .iter()
            .filter_map(|id| self.connections.get(id))
            .filter(|c| {
                c.removed
                    && c.conn.id != conn_id
                    && c.conn.customer_id == rec.conn.customer_id
                    && c.conn.provider_code == rec.conn.provider_code
                    && c.login == rec.login
                    && !c.accounts.is_empty()
            })
            .map(|c| c.conn.id.clone())
            .next_back()
    }

    /// Gives `to` the accounts and history of `from` under new ids.
    fn copy_bank(&mut self, from: &str, to: &str) -> Result<(), SimError> {
        // (`conn` refuses removed connections; the earlier link is one.)
        let src = self
            .connections
            .get(from)
            .ok_or_else(|| SimError::new(ErrorClass::ConnectionNotFound, "no such connection"))?;
        let (accounts, openings, posted, pending, twins) = (
            src.accounts.clone(),
            src.openings.clone(),
            src.posted.clone(),
            src.pending.clone(),
            src.twins.clone(),
        );
        let (accounts, posted, pending, twins) = self.reid(to, accounts, posted, pending, twins);
        let rec = self.conn_mut(to)?;
        rec.accounts = accounts;
        rec.openings = openings;
        rec.posted = posted;
        rec.pending = pending;
        rec.twins = twins;
        self.recompute_balances(to)
    }

    /// The bank re-registers the connection's accounts: the same accounts (IBAN, name,
    /// nature, currency) and history under new account and transaction ids, as a
    /// reconnect sometimes yields.
    pub fn relink_accounts(&mut self, conn_id: &str) -> Result<(), SimError> {
        let rec = self.conn(conn_id)?;
        let (accounts, posted, pending, twins) = (
            rec.accounts.clone(),
            rec.posted.clone(),
            rec.pending.clone(),
            rec.twins.clone(),
        );
        let (accounts, posted, pending, twins) =
            self.reid(conn_id, accounts, posted, pending, twins);
        let rec = self.conn_mut(conn_id)?;
        rec.accounts = accounts;
        rec.posted = posted;
        rec.pending = pending;
        rec.twins = twins;
        rec.posted_from_pending.clear();
        rec.vanished_pending.clear();
        rec.reissued.clear();
        self.recompute_balances(conn_id)
    }

    /// New ids for accounts and transactions (in their order, so ids still grow with
    /// creation), everything else kept.
    #[allow(clippy::type_complexity)]
    fn reid(
        &mut self,
        conn_id: &str,
        mut accounts: Vec<Account>,
        mut posted: Vec<Transaction>,
        mut pending: Vec<Transaction>,
        twins: Vec<(String, String)>,
    ) -> (
        Vec<Account>,
        Vec<Transaction>,
        Vec<Transaction>,
        Vec<(String, String)>,
    ) {
        let mut ids: HashMap<String, String> = HashMap::new();
        for a in accounts.iter_mut() {
            let new = self.new_id();
            ids.insert(a.id.clone(), new.clone());
            a.id = new;
            a.connection_id = conn_id.into();
        }
        for t in posted.iter_mut().chain(pending.iter_mut()) {
            let new = self.new_id();
            ids.insert(t.id.clone(), new.clone());
            t.id = new.clone();
            t.account_id = ids.get(&t.account_id).cloned().unwrap_or_default();
            if t.extra.get("record_number").is_some() {
                t.extra["record_number"] = json!(new);
            }
        }
        let twins = twins
            .into_iter()
            .filter_map(|(a, b)| Some((ids.get(&a)?.clone(), ids.get(&b)?.clone())))
            .collect();
        (accounts, posted, pending, twins)
    }

    /// The bank re-issues posted transaction `tx_id` under a new id; the old id is gone.
    pub fn reissue(&mut self, conn_id: &str, tx_id: &str) -> Result<String, SimError> {
        let rec = self.conn_mut(conn_id)?;
        let pos = rec
            .posted
            .iter()
            .position(|t| t.id == tx_id)
            .ok_or_else(|| {
                SimError::new(
                    ErrorClass::TransactionNotFound,
                    format!("Transaction {tx_id} was not found."),
                )
            })?;
        let old = rec.posted.remove(pos);
        let new = self.copy_tx(&old);
        let new_id = new.id.clone();
        let rec = self.conn_mut(conn_id)?;
        rec.posted.push(new);
        rec.reissued.push((old.id, new_id.clone()));
        self.recompute_balances(conn_id)?;
        Ok(new_id)
    }

    /// The bank re-issues a transaction under a new id with changed content (amount and
    /// description) and without its own id (`extra.id`): nothing says it is the same one.
    pub fn reissue_changed(
        &mut self,
        conn_id: &str,
        tx_id: &str,
        amount: Decimal,
        description: &str,
    ) -> Result<String, SimError> {
        let new_id = self.reissue(conn_id, tx_id)?;
        let rec = self.conn_mut(conn_id)?;
        let t = rec
            .posted
            .iter_mut()
            .find(|t| t.id == new_id)
            .expect("just re-issued");
        t.amount = amount;
        t.description = description.to_string();
        if let Some(extra) = t.extra.as_object_mut() {
            extra.remove("id");
            extra.remove("possible_duplicate");
        }
        self.recompute_balances(conn_id)?;
        Ok(new_id)
    }

    /// The bank removes a posted transaction: it is no longer listed.
    pub fn remove_posted(&mut self, conn_id: &str, tx_id: &str) -> Result<(), SimError> {
        let rec = self.conn_mut(conn_id)?;
        let before = rec.posted.len();
        rec.posted.retain(|t| t.id != tx_id);
        if rec.posted.len() == before {
            return Err(SimError::new(
                ErrorClass::TransactionNotFound,
                format!("Transaction {tx_id} was not found."),
            ));
        }
        self.recompute_balances(conn_id)
    }

    /// The same transaction under a new id, with Salt Edge's `possible_duplicate` hint.
    fn copy_tx(&mut self, src: &Transaction) -> Transaction {
        let mut t = src.clone();
        t.id = self.new_id();
        t.extra["record_number"] = json!(t.id);
        t.extra["possible_duplicate"] = json!(true);
        let now = self.now();
        (t.created_at, t.updated_at) = (now, now);
        t
    }

    fn new_pending(&mut self, account: &Account) -> Vec<Transaction> {
        let today = self.today();
        (0..self.data.pending_per_account)
            .map(|i| {
                let (amount, desc, payee) = self.random_activity(&account.currency_code);
                let amount = -amount.abs();
                self.make_tx(
                    account,
                    today - Duration::days((i % 3) as i64),
                    amount,
                    desc,
                    payee,
                    TransactionStatus::Pending,
                )
            })
            .collect()
    }

    /// One more fetch at the bank: pending ones post under new ids (every fourth is
    /// cancelled instead), and new activity appears.
    pub fn advance(&mut self, conn_id: &str) -> Result<(), SimError> {
        let (accounts, pending) = {
            let rec = self.conn_mut(conn_id)?;
            (rec.accounts.clone(), std::mem::take(&mut rec.pending))
        };
        let today = self.today();
        let mut posted = vec![];
        let mut from_pending = vec![];
        let mut vanished = vec![];
        for (i, p) in pending.into_iter().enumerate() {
            if i % 4 == 3 {
                vanished.push(p.id);
                continue;
            }
            let account = accounts
                .iter()
                .find(|a| a.id == p.account_id)
                .expect("pending belongs to an account");
            let payee = p.extra["payee"].as_str().unwrap_or("").to_string();
            let desc = format!(
                "{} REF{}",
                p.description.to_uppercase(),
                self.rng.range(1000, 9999)
            );
            let made_on = (p.made_on + Duration::days(self.rng.range(0, 1))).min(today);
            let tx = self.make_tx(
                account,
                made_on,
                p.amount,
                &desc,
                &payee,
                TransactionStatus::Posted,
            );
            from_pending.push((p.id, tx.id.clone()));
            posted.push(tx);
        }
        let mut new_pending = vec![];
        for account in &accounts {
            for _ in 0..self.data.new_transactions_per_fetch {
                let (amount, desc, payee) = self.random_activity(&account.currency_code);
                let made_on = today - Duration::days(self.rng.range(0, 1));
                posted.push(self.make_tx(
                    account,
                    made_on,
                    amount,
                    desc,
                    payee,
                    TransactionStatus::Posted,
                ));
            }
            new_pending.extend(self.new_pending(account));
        }
        // The bank re-issues its newest transactions under new ids: the old ids are gone.
        let mut reissued = vec![];
        for _ in 0..self.data.reissued_per_fetch {
            let rec = self.conn_mut(conn_id)?;
            let taken: Vec<&String> = reissued.iter().map(|(o, _): &(String, String)| o).collect();
            let Some(pos) = rec
                .posted
                .iter()
                .rposition(|t| !t.duplicated && !taken.contains(&&t.id))
            else {
                break;
            };
            let old = rec.posted.remove(pos);
            let new = self.copy_tx(&old);
            reissued.push((old.id.clone(), new.id.clone()));
            posted.push(new);
        }
        let rec = self.conn_mut(conn_id)?;
        rec.posted.extend(posted);
        rec.reissued.extend(reissued);
        rec.pending = new_pending;
        rec.posted_from_pending.extend(from_pending);
        rec.vanished_pending.extend(vanished);
        self.recompute_balances(conn_id)
    }

    fn recompute_balances(&mut self, conn_id: &str) -> Result<(), SimError> {
        let rec = self.conn_mut(conn_id)?;
        let mut sums: HashMap<String, Decimal> = HashMap::new();
        let mut counts: HashMap<String, (u64, Option<String>)> = HashMap::new();
        // The bank's balance counts its real transactions, whatever a client marked
        // `duplicated` at Salt Edge.
        for t in rec.posted.iter() {
            *sums.entry(t.account_id.clone()).or_default() += t.amount;
            let c = counts.entry(t.account_id.clone()).or_default();
            c.0 += 1;
            c.1 = Some(t.id.clone());
        }
        let available = catalogue::AVAILABLE_BALANCE.contains(&rec.conn.provider_code.as_str());
        for (a, opening) in rec.accounts.iter_mut().zip(&rec.openings) {
            let booked = *opening + sums.get(&a.id).copied().unwrap_or_default();
            a.balance = if a.nature == "credit_card" {
                // Salt Edge's account model: a card's balance is the sum of its negative
                // transactions; payments to the card do not count.
                rec.posted
                    .iter()
                    .filter(|t| t.account_id == a.id && t.amount.is_sign_negative())
                    .map(|t| t.amount)
                    .sum()
            } else {
                booked
            };
            if a.nature == "credit_card" || a.nature == "credit" {
                a.extra["credit_limit"] = num(Decimal::new(500_000, 2));
            }
            if available {
                let blocked: Decimal = rec
                    .pending
                    .iter()
                    .filter(|p| p.account_id == a.id)
                    .map(|p| p.amount.abs())
                    .sum();
                let limit = Decimal::new(100_000, 2);
                a.balance = booked + limit - blocked;
                a.extra["balance_type"] = json!("available");
                a.extra["credit_limit"] = num(limit);
                a.extra["blocked_amount"] = num(blocked);
            }
            let (posted, last) = counts.get(&a.id).cloned().unwrap_or_default();
            let pending = rec.pending.iter().filter(|p| p.account_id == a.id).count();
            a.extra["transactions_count"] = json!({ "posted": posted, "pending": pending });
            a.extra["last_posted_transaction_id"] = json!(last);
            a.extra["available_amount"] = num(a.balance);
        }
        Ok(())
    }

    pub fn ground_truth(&self, conn_id: &str) -> Result<GroundTruth, SimError> {
        let rec = self
            .connections
            .get(conn_id)
            .ok_or_else(|| SimError::new(ErrorClass::ConnectionNotFound, "no such connection"))?;
        let truth = |t: &Transaction| TxTruth {
            id: t.id.clone(),
            made_on: t.made_on,
            amount: t.amount,
            description: t.description.clone(),
        };
        let accounts = rec
            .accounts
            .iter()
            .map(|a| {
                let mine = |t: &&Transaction| t.account_id == a.id;
                let is_mine = |id: &str| {
                    rec.posted
                        .iter()
                        .chain(&rec.pending)
                        .any(|t| t.id == id && t.account_id == a.id)
                };
                AccountTruth {
                    account_id: a.id.clone(),
                    currency_code: a.currency_code.clone(),
                    balance: a.balance,
                    posted: rec
                        .posted
                        .iter()
                        .filter(mine)
                        .filter(|t| !t.duplicated)
                        .map(truth)
                        .collect(),
                    duplicated_ids: rec
                        .posted
                        .iter()
                        .filter(mine)
                        .filter(|t| t.duplicated)
                        .map(|t| t.id.clone())
                        .collect(),
                    pending: rec.pending.iter().filter(mine).map(truth).collect(),
                    posted_from_pending: rec
                        .posted_from_pending
                        .iter()
                        .filter(|(_, p)| is_mine(p))
                        .cloned()
                        .collect(),
                    vanished_pending: rec.vanished_pending.clone(),
                    reissued: rec
                        .reissued
                        .iter()
                        .filter(|(_, n)| is_mine(n))
                        .cloned()
                        .collect(),
                    twins: rec
                        .twins
                        .iter()
                        .filter(|(_, n)| is_mine(n))
                        .cloned()
                        .collect(),
                }
            })
            .collect();
        Ok(GroundTruth {
            connection_id: conn_id.into(),
            accounts,
        })
    }

    /// A fetch of new data starts at the bank for this connection: true when the bank
    /// answers, false when it fails (a queued failure from [`World::failing_fetches`]).
    /// Recorded in the fetch log either way.
    pub fn bank_answers(&mut self, conn_id: &str, automatic: bool) -> bool {
        let failing = self
            .failing_fetches
            .get_mut(conn_id)
            .filter(|n| **n > 0)
            .map(|n| *n -= 1)
            .is_some();
        let at = self.now();
        self.fetch_log.push(FetchRecord {
            connection_id: conn_id.to_string(),
            at,
            automatic,
            succeeded: !failing,
        });
        !failing
    }

    /// Connections Salt Edge fetches by itself now: daily refresh on, active, credentials
    /// stored, provider not file-based, consent usable, 02:00–06:00 in the provider
    /// country's capital, and not yet fetched automatically that local night.
    pub fn nightly_due(&self, now: DateTime<Utc>) -> Vec<String> {
        self.connections
            .values()
            .filter(|r| {
                !r.removed
                    && r.conn.daily_refresh
                    && r.conn.status == ConnectionStatus::Active
                    && r.conn.store_credentials
            })
            .filter(|r| catalogue::spec(&r.conn.provider_code).is_some_and(|s| s.mode != "file"))
            .filter(|r| {
                r.consent_id()
                    .and_then(|id| self.consents.get(id))
                    .is_none_or(|c| c.revoked_at.is_none() && c.expires_at.is_none_or(|e| e > now))
            })
            .filter(|r| {
                let local = now.with_timezone(&catalogue::capital(&r.conn.country_code));
                (2..6).contains(&chrono::Timelike::hour(&local))
                    && r.last_automatic_on != Some(local.date_naive())
            })
            .map(|r| r.conn.id.clone())
            .collect()
    }

    /// The auth kind of a provider, for the Connect page.
    pub fn auth_kind(code: &str) -> Option<AuthKind> {
        catalogue::spec(code).map(|s| s.auth)
    }
}

#[cfg(test)]
mod identifier_index_tests {
    #[tokio::test]
    async fn seeding_finds_the_customer_by_its_identifier() {
        let sim = crate::Simulator::start(crate::SimConfig::default())
            .await
            .unwrap();
        let ids: Vec<String> = (0..4)
            .map(|_| {
                sim.seed_connection("same@bench.example", "fake_client_xf")
                    .0
            })
            .collect();
        assert!(ids.iter().all(|i| i == &ids[0]), "{ids:?}");
        sim.stop().await;
    }
}
