//! A faithful, offline Salt Edge API v5 simulator: a real axum server with the API's paths,
//! JSON shapes, `next_id` pagination, error JSON, request-signature checks, a Connect page
//! and signed callbacks. Tests, the demo and the benchmarks all run against it.
//!
//! Layout: [`world`] holds the data and its generator, [`api`] the API routes, [`connect`]
//! the Connect page, [`guard`] what every API request passes (request log, faults, keys,
//! signatures), [`callbacks`] the signed callback sender, [`faults`] the fault rules.

pub mod api;
pub mod callbacks;
pub mod catalogue;
pub mod connect;
pub mod errors;
pub mod faults;
pub mod guard;
pub mod keys;
pub mod sigs;
pub mod v6;
pub mod wire;
pub mod world;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use tokio::net::TcpListener;
use url::Url;

pub use callbacks::{CallbackKind, Delivery};
pub use faults::{FaultAction, FaultRule};
pub use world::{DataConfig, GroundTruth, World};

/// The simulated client's status at Salt Edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientStatus {
    /// Fake providers only, at most 10 connections.
    Pending,
    /// Signatures optional (checked when sent).
    Test,
    /// Every request must be signed.
    Live,
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub app_id: String,
    pub secret: String,
    pub client_status: ClientStatus,
    /// Our client's public key, to check request signatures with.
    pub client_public_key_pem: Option<String>,
    /// The key the simulator signs callbacks with (Salt Edge's, in real life).
    pub signing_key_pem: String,
    /// Where callbacks go: `{base}success`, `{base}fail`, … (base ends with `/`).
    pub callback_base_url: Option<Url>,
    pub data: DataConfig,
    pub per_page_max: usize,
    pub faults: Vec<FaultRule>,
    /// v6 only: answer a new customer with `id` instead of `customer_id` (the v6 notes
    /// leave both plausible; the client must read either).
    pub v6_customer_key_id: bool,
    /// v6 only: `GET /customers` ignores its `identifier` filter and lists every customer
    /// (one third-party v6 client says so; unverified).
    pub v6_ignores_identifier_filter: bool,
    /// The API version of the callbacks sent: 5, or 6 (`meta.version` "6", signed with
    /// `signing_key_v6_pem`, with the `Signature-key-version` header below).
    pub callback_version: u8,
    /// The key v6 callbacks are signed with.
    pub signing_key_v6_pem: String,
    /// The `Signature-key-version` header on v6 callbacks; `None` sends none (the header is
    /// seen only in third-party code).
    pub v6_key_version_header: Option<String>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            app_id: "sim-app-id".into(),
            secret: "sim-secret".into(),
            client_status: ClientStatus::Test,
            client_public_key_pem: Some(keys::CLIENT_PUBLIC_PEM.into()),
            signing_key_pem: keys::SIMULATOR_PRIVATE_PEM.into(),
            callback_base_url: None,
            data: DataConfig::default(),
            per_page_max: 1000,
            faults: vec![],
            v6_customer_key_id: false,
            v6_ignores_identifier_filter: false,
            callback_version: 5,
            signing_key_v6_pem: keys::SIMULATOR_V6_PRIVATE_PEM.into(),
            v6_key_version_header: Some("6.0".into()),
        }
    }
}

/// One request as the simulator saw it (for rate-limit and retry checks).
#[derive(Debug, Clone, serde::Serialize)]
pub struct RequestRecord {
    pub method: String,
    pub path: String,
    /// Milliseconds since the simulator started.
    pub at_ms: f64,
    pub signed: bool,
    /// The app-key headers `Customer-secret` / `Connection-secret` were present.
    pub customer_secret: bool,
    pub connection_secret: bool,
}

pub struct SimState {
    pub cfg: SimConfig,
    pub world: Mutex<World>,
    pub faults: Mutex<(Vec<FaultRule>, world::SplitMix64)>,
    pub requests: Mutex<Vec<RequestRecord>>,
    /// Rendered JSON of transactions by id (see `api::cached`).
    pub tx_json: Mutex<std::collections::HashMap<String, api::CachedJson>>,
    /// Text replacements applied to every API response body (hostile-input tests: JSON that
    /// Rust strings cannot hold, such as `null` for a text or a lone `\ud800` escape).
    pub body_rewrites: Mutex<Vec<(String, String)>>,
    pub callbacks: callbacks::CallbackSender,
    pub callback_base: Arc<Mutex<Option<Url>>>,
    pub client_key: Option<sigs::ClientKey>,
    pub started: std::time::Instant,
    pub public_base: Url,
}

impl SimState {
    pub fn api_base(&self) -> Url {
        self.public_base.join("api/v5/").expect("valid base")
    }
}

/// A running simulator. Dropping it does not stop the server; call [`Simulator::stop`].
pub struct Simulator {
    pub addr: SocketAddr,
    pub state: Arc<SimState>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Simulator {
    /// Starts on `127.0.0.1` with an OS-chosen port.
    pub async fn start(cfg: SimConfig) -> std::io::Result<Simulator> {
        Self::start_on(cfg, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    pub async fn start_on(cfg: SimConfig, addr: SocketAddr) -> std::io::Result<Simulator> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let public_base = Url::parse(&format!("http://{addr}/")).expect("valid url");
        let bad = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
        let style = if cfg.callback_version == 6 {
            callbacks::Style {
                signer: sigs::SaltEdgeKey::from_pem(&cfg.signing_key_v6_pem).map_err(bad)?,
                version: "6",
                key_version: cfg.v6_key_version_header.clone(),
            }
        } else {
            callbacks::Style {
                signer: sigs::SaltEdgeKey::from_pem(&cfg.signing_key_pem).map_err(bad)?,
                version: "5",
                key_version: None,
            }
        };
        let client_key = cfg
            .client_public_key_pem
            .as_deref()
            .map(sigs::ClientKey::from_pem)
            .transpose()
            .map_err(bad)?;
        let callback_base = Arc::new(Mutex::new(cfg.callback_base_url.clone()));
        let state = Arc::new(SimState {
            world: Mutex::new(World::new(cfg.data.clone())),
            faults: Mutex::new((
                cfg.faults.clone(),
                world::SplitMix64::new(cfg.data.seed ^ 0xFA017),
            )),
            requests: Mutex::new(vec![]),
            tx_json: Mutex::new(Default::default()),
            body_rewrites: Mutex::new(vec![]),
            callbacks: callbacks::CallbackSender::start(callback_base.clone(), style),
            callback_base,
            client_key,
            started: std::time::Instant::now(),
            public_base,
            cfg,
        });
        let app = router(state.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(Simulator {
            addr,
            state,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// The API root to give the client, e.g. `http://127.0.0.1:PORT/api/v5/`.
    pub fn api_base(&self) -> Url {
        self.state.api_base()
    }

    /// The v6 API root, e.g. `http://127.0.0.1:PORT/api/v6/` (see [`v6`]).
    pub fn api_base_v6(&self) -> Url {
        self.state.public_base.join("api/v6/").expect("valid base")
    }

    pub fn base_url(&self) -> Url {
        self.state.public_base.clone()
    }

    /// `App-id` and `Secret` this simulator accepts.
    pub fn app_credentials(&self) -> (&str, &str) {
        (&self.state.cfg.app_id, &self.state.cfg.secret)
    }

    /// Changes a connection's data in place (bank text, amounts…); served from the next request.
    pub fn edit_connection(&self, connection_id: &str, f: impl FnOnce(&mut world::ConnRec)) {
        let mut w = self.state.world.lock().unwrap();
        if let Some(rec) = w.connections.get_mut(connection_id) {
            f(rec);
        }
        self.state.tx_json.lock().unwrap().clear();
    }

    /// The bank re-registers the connection's accounts: the same accounts and history under
    /// new account and transaction ids (a reconnect that yields new account ids).
    pub fn relink_accounts(&self, connection_id: &str) {
        self.state
            .world
            .lock()
            .unwrap()
            .relink_accounts(connection_id)
            .expect("relink accounts");
        self.state.tx_json.lock().unwrap().clear();
    }

    /// The bank re-issues one posted transaction under a new id (the old id is gone); returns
    /// the new id.
    pub fn reissue(&self, connection_id: &str, transaction_id: &str) -> String {
        let id = self
            .state
            .world
            .lock()
            .unwrap()
            .reissue(connection_id, transaction_id)
            .expect("reissue");
        self.state.tx_json.lock().unwrap().remove(transaction_id);
        id
    }

    /// The bank re-issues a transaction under a new id with a changed amount and text and
    /// no bank id (`extra.id`). Returns the new id.
    pub fn reissue_changed(
        &self,
        connection_id: &str,
        transaction_id: &str,
        amount: rust_decimal::Decimal,
        description: &str,
    ) -> String {
        let id = self
            .state
            .world
            .lock()
            .unwrap()
            .reissue_changed(connection_id, transaction_id, amount, description)
            .expect("reissue_changed");
        self.state.tx_json.lock().unwrap().remove(transaction_id);
        id
    }

    /// The bank removes a posted transaction (it is no longer listed, and the balance no
    /// longer holds it).
    pub fn remove_posted(&self, connection_id: &str, transaction_id: &str) {
        self.state
            .world
            .lock()
            .unwrap()
            .remove_posted(connection_id, transaction_id)
            .expect("remove_posted");
        self.state.tx_json.lock().unwrap().remove(transaction_id);
    }

    /// Moves the connection's last fetch back in time by `by` (as if it happened then).
    pub fn age_connection(&self, connection_id: &str, by: chrono::Duration) {
        let mut w = self.state.world.lock().unwrap();
        if let Some(rec) = w.connections.get_mut(connection_id) {
            let c = &mut rec.conn;
            c.last_success_at = c.last_success_at.map(|t| t - by);
            c.next_refresh_possible_at = c.next_refresh_possible_at.map(|t| t - by);
            if let Some(a) = c.last_attempt.as_mut() {
                a.success_at = a.success_at.map(|t| t - by);
                a.fail_at = a.fail_at.map(|t| t - by);
                a.created_at -= by;
                a.updated_at -= by;
            }
        }
    }

    /// Sets the simulator's clock (`None`: real time). Attempts, fetch times, refresh
    /// timeouts and consent expiry follow it.
    pub fn set_clock(&self, now: Option<chrono::DateTime<chrono::Utc>>) {
        self.state.world.lock().unwrap().clock = now;
    }

    /// The bank's today: the day new transactions are dated (the clock's date unless the
    /// data configuration fixes one).
    pub fn today(&self) -> chrono::NaiveDate {
        self.state.world.lock().unwrap().today()
    }

    /// Runs Salt Edge's nightly automatic fetch at `now` (see [`api::run_nightly`]).
    pub fn run_nightly(&self, now: chrono::DateTime<chrono::Utc>) -> Vec<String> {
        api::run_nightly(&self.state, now)
    }

    /// Every fetch of new data the bank saw.
    pub fn fetch_log(&self) -> Vec<world::FetchRecord> {
        self.state.world.lock().unwrap().fetch_log.clone()
    }

    /// The bank fails the connection's next `n` fetches (ProviderUnavailable).
    pub fn fail_next_fetches(&self, connection_id: &str, n: u32) {
        self.state
            .world
            .lock()
            .unwrap()
            .failing_fetches
            .insert(connection_id.to_string(), n);
    }

    /// The connection's current consent expires now (as if its period ran out).
    pub fn expire_consent(&self, connection_id: &str) {
        let mut w = self.state.world.lock().unwrap();
        let current = w
            .connections
            .get(connection_id)
            .and_then(|r| r.consent_id().map(str::to_string));
        if let Some(c) = current.and_then(|id| w.consents.get_mut(&id)) {
            c.expires_at = Some(chrono::Utc::now() - chrono::Duration::seconds(1));
        }
    }

    /// (consent id, revoked) of the connection's consents, oldest first.
    pub fn consents(&self, connection_id: &str) -> Vec<(String, bool)> {
        let w = self.state.world.lock().unwrap();
        w.consents
            .values()
            .filter(|c| c.connection_id.as_deref() == Some(connection_id))
            .map(|c| (c.id.clone(), c.revoked_at.is_some()))
            .collect()
    }

    /// Every API response body has each `from` replaced by `to` (see [`SimState::body_rewrites`]).
    pub fn set_body_rewrites(&self, rules: Vec<(String, String)>) {
        *self.state.body_rewrites.lock().unwrap() = rules;
    }

    pub fn set_faults(&self, rules: Vec<FaultRule>) {
        self.state.faults.lock().unwrap().0 = rules;
    }

    pub fn add_fault(&self, rule: FaultRule) {
        self.state.faults.lock().unwrap().0.push(rule);
    }

    /// Registers the exact URL for one kind of callback (trailing slash and all).
    pub fn set_callback_url(&self, kind: CallbackKind, url: &str) {
        self.state
            .callbacks
            .registered
            .lock()
            .unwrap()
            .insert(kind, url.to_string());
    }

    pub fn set_callback_base(&self, url: Option<Url>) {
        *self.state.callback_base.lock().unwrap() = url;
    }

    pub fn requests(&self) -> Vec<RequestRecord> {
        self.state.requests.lock().unwrap().clone()
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.state.callbacks.deliveries()
    }

    pub fn ground_truth(&self, connection_id: &str) -> Option<GroundTruth> {
        self.state
            .world
            .lock()
            .unwrap()
            .ground_truth(connection_id)
            .ok()
    }

    /// Creates a customer and an active connection with data, skipping the Connect page.
    pub fn seed_connection(&self, identifier: &str, provider_code: &str) -> (String, String) {
        api::seed_connection(&self.state, identifier, provider_code).expect("seed connection")
    }

    /// The bank moves on by one fetch (what Salt Edge's nightly refresh sees), then the
    /// simulator posts the usual callbacks.
    pub fn advance(&self, connection_id: &str) {
        api::background_fetch(&self.state, connection_id, true).expect("advance");
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

pub fn router(state: Arc<SimState>) -> Router {
    let api_v6 = v6::routes().layer(axum::middleware::from_fn_with_state(
        state.clone(),
        guard::guard,
    ));
    let api = api::routes().layer(axum::middleware::from_fn_with_state(
        state.clone(),
        guard::guard,
    ));
    Router::new()
        .nest("/api/v5", api)
        .nest("/api/v6", api_v6)
        .merge(connect::routes())
        .merge(api::control_routes())
        .with_state(state)
}

#[cfg(test)]
mod conformance_tests;
