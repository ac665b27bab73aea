//! The HTTP client: one `call` path that serialises the body once, signs exactly those bytes,
//! retries only what is safe to retry, and turns the API's error JSON into [`Error::Api`].
//!
//! Why one file of this size: one method per Salt Edge endpoint over the single `call`
//! path; the retry and signing rules they share stay in view.

use std::sync::Arc;
use std::time::Duration;

use futures::stream::{self, Stream};
use rand::Rng;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use url::Url;

use crate::error::{Error, ErrorBody};
use crate::models::*;
use crate::ratelimit::FetchLimiter;
use crate::signature::Signer;

/// A limit on requests that start a fetch of new data, shared beyond this process (banksync
/// keeps its slots in Postgres so that every replica shares one budget). When set, it
/// replaces the client's in-process limiter.
pub trait FetchGate: Send + Sync {
    /// Waits until one more fetch may start, but never longer than the gate's bound: a slot
    /// further away answers `Err(retry_after)` at once and takes nothing. The wait may be
    /// cancelled (the caller dropped): the slot then goes back, as [`FetchSlot`] says.
    /// A [`FetchPriority::Yielding`] caller takes only a slot free now that leaves room for
    /// interactive callers.
    fn acquire(
        &self,
        priority: FetchPriority,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<FetchSlot, Duration>> + Send + '_>>;
}

/// Who a fetch is for, when the shared budget is contended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FetchPriority {
    /// Someone is waiting for it (a bookkeeper linking a bank): may queue for a slot.
    #[default]
    Interactive,
    /// Background work, or a company that has just used its share: takes a slot only when
    /// one is free now and another stays free for interactive callers.
    Yielding,
}

/// What giving a slot back does (it may reach a database).
type GiveBack =
    Box<dyn FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Send>;

/// One slot of a [`FetchGate`]: [`FetchSlot::used`] keeps it, [`FetchSlot::unused`] gives it
/// back (the request never left), and dropping it unused — the caller was cancelled while
/// waiting — gives it back on a task of its own.
pub struct FetchSlot {
    give_back: Option<GiveBack>,
}

impl FetchSlot {
    /// A slot with nothing to give back (no limit, or a limit kept in this process).
    pub fn kept() -> FetchSlot {
        FetchSlot { give_back: None }
    }

    /// A slot that runs `give_back` when not used.
    pub fn returnable<F, Fut>(give_back: F) -> FetchSlot
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        FetchSlot {
            give_back: Some(Box::new(move || Box::pin(give_back()))),
        }
    }

    /// The request is about to leave: the slot is spent.
    pub fn used(mut self) {
        self.give_back = None;
    }

    /// The request never left: the slot goes back before the next caller asks.
    pub async fn unused(mut self) {
        if let Some(f) = self.give_back.take() {
            f().await;
        }
    }
}

impl Drop for FetchSlot {
    fn drop(&mut self) {
        if let Some(f) = self.give_back.take() {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(f());
            }
        }
    }
}

/// Everything the client needs. `secret` and the private key never show in `Debug`.
#[derive(Clone)]
pub struct ClientConfig {
    /// API root ending in `/`, e.g. `https://www.saltedge.com/api/v5/`.
    pub base_url: Url,
    pub app_id: String,
    pub secret: Sensitive,
    /// Signs every request when present (mandatory for live clients).
    pub signer: Option<Signer>,
    pub timeout: Duration,
    /// Retries after the first try, for idempotent requests only.
    pub max_retries: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Fetches of new data per second (connect sessions and refreshes); 0 = unlimited.
    pub fetches_per_second: u32,
    /// Seconds added to "now" for `Expires-at`.
    pub expires_in_secs: i64,
    /// For *app* keys only: the `Customer-secret` / `Connection-secret` headers that
    /// identify the customer and connection. banksync uses a *service* key and leaves
    /// them unset; [`Client::as_app`] makes a client that sends them.
    pub customer_secret: Option<Sensitive>,
    pub connection_secret: Option<Sensitive>,
    /// The shared fetch limit; `None` = the in-process limiter (`fetches_per_second`).
    pub fetch_gate: Option<Arc<dyn FetchGate>>,
    /// Which API version `base_url` serves (read from it by [`ClientConfig::new`]).
    pub api_version: crate::version::ApiVersion,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("base_url", &self.base_url.as_str())
            .field("app_id", &self.app_id)
            .field("secret", &self.secret)
            .field("signer", &self.signer)
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("fetches_per_second", &self.fetches_per_second)
            .field("shared_fetch_gate", &self.fetch_gate.is_some())
            .field("api_version", &self.api_version)
            .finish_non_exhaustive()
    }
}

impl ClientConfig {
    pub fn new(base_url: Url, app_id: impl Into<String>, secret: impl Into<String>) -> Self {
        ClientConfig {
            api_version: crate::version::ApiVersion::of_base_url(&base_url),
            base_url,
            app_id: app_id.into(),
            secret: Sensitive(secret.into()),
            signer: None,
            timeout: Duration::from_secs(30),
            max_retries: 4,
            backoff_base: Duration::from_millis(200),
            backoff_max: Duration::from_secs(10),
            fetches_per_second: 2,
            expires_in_secs: 60,
            customer_secret: None,
            connection_secret: None,
            fetch_gate: None,
        }
    }

    /// A configuration that signs every request with `private_key_pem`.
    pub fn signed(
        base_url: Url,
        app_id: &str,
        secret: &str,
        private_key_pem: &str,
    ) -> Result<Self, Error> {
        let mut c = ClientConfig::new(base_url, app_id, secret);
        c.signer =
            Some(Signer::from_pem(private_key_pem).map_err(|e| Error::Config(e.to_string()))?);
        Ok(c)
    }
}

/// How a request may be treated by the retry and rate-limit machinery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Safe to repeat (reads, deletes, revokes).
    Idempotent,
    /// Creates or changes something; never repeated automatically.
    Mutating,
    /// Starts a fetch of new data from a bank: rate-limited and never repeated.
    Fetch,
}

/// A cheap-to-clone Salt Edge API client.
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
    priority: FetchPriority,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    cfg: ClientConfig,
    limiter: FetchLimiter,
}

impl Client {
    pub fn new(mut cfg: ClientConfig) -> Result<Self, Error> {
        if !cfg.base_url.path().ends_with('/') {
            let p = format!("{}/", cfg.base_url.path());
            cfg.base_url.set_path(&p);
        }
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("banksync/", env!("CARGO_PKG_VERSION")))
            // Never follow a redirect: the `Secret` header (and a signature over the original
            // URL) must never reach another host. A 3xx is reported as an unexpected status.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Config(e.to_string()))?;
        let limiter = FetchLimiter::new(cfg.fetches_per_second);
        Ok(Client {
            inner: Arc::new(Inner { http, cfg, limiter }),
            priority: FetchPriority::Interactive,
        })
    }

    /// The same client, its fetches taking slots of the shared gate with `priority`.
    pub fn with_priority(&self, priority: FetchPriority) -> Client {
        Client {
            inner: self.inner.clone(),
            priority,
        }
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.cfg
    }

    /// A client for an *app* key, sending `Customer-secret` (and `Connection-secret`).
    pub fn as_app(
        &self,
        customer_secret: &Sensitive,
        connection_secret: Option<&Sensitive>,
    ) -> Result<Client, Error> {
        let mut cfg = self.inner.cfg.clone();
        cfg.customer_secret = Some(customer_secret.clone());
        cfg.connection_secret = connection_secret.cloned();
        Ok(Client::new(cfg)?.with_priority(self.priority))
    }

    fn url(&self, path: &str, query: &[(&str, &str)]) -> Result<Url, Error> {
        let mut url = self
            .inner
            .cfg
            .base_url
            .join(path)
            .map_err(|e| Error::Config(format!("bad path {path}: {e}")))?;
        if !query.is_empty() {
            let mut q = url.query_pairs_mut();
            for (k, v) in query {
                q.append_pair(k, v);
            }
        }
        Ok(url)
    }

    /// Sends one request (with retries where allowed) and decodes the envelope.
    pub async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&B>,
        kind: Kind,
    ) -> Result<Envelope<T>, Error> {
        let url = self.url(path, query)?;
        // Serialise once: the signed bytes must be the sent bytes.
        let body = match body {
            Some(b) => serde_json::to_string(b).map_err(|e| Error::Config(e.to_string()))?,
            None => String::new(),
        };
        let retries = if kind == Kind::Idempotent {
            self.inner.cfg.max_retries
        } else {
            0
        };
        let mut attempt = 0;
        loop {
            let slot = if kind == Kind::Fetch {
                match &self.inner.cfg.fetch_gate {
                    Some(gate) => Some(
                        gate.acquire(self.priority)
                            .await
                            .map_err(|retry_after| Error::Busy { retry_after })?,
                    ),
                    None => {
                        self.inner.limiter.acquire().await;
                        None
                    }
                }
            } else {
                None
            };
            let result = self.send_once(&method, &url, &body).await;
            // A request that never left (no connection) gives its slot back as the slot
            // drops; one that left, even unanswered, spent it.
            if let Some(slot) = slot {
                match &result {
                    Err(Error::Transport(e)) if e.is_connect() || e.is_builder() => {
                        slot.unused().await
                    }
                    _ => slot.used(),
                }
            }
            match result {
                Err(e) if attempt < retries && e.is_transient() => {
                    let delay = self.backoff(attempt, &e);
                    tracing::warn!(%method, path, attempt, error = %e, ?delay, "retrying Salt Edge request");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Exponential backoff with "equal jitter": half fixed, half random.
    fn backoff(&self, attempt: u32, _err: &Error) -> Duration {
        let cfg = &self.inner.cfg;
        let exp = cfg.backoff_base.saturating_mul(1u32 << attempt.min(16));
        let capped = exp.min(cfg.backoff_max);
        let half = capped / 2;
        let jitter = rand::thread_rng().gen_range(0..=half.as_micros() as u64);
        half + Duration::from_micros(jitter)
    }

    async fn send_once<T: DeserializeOwned>(
        &self,
        method: &Method,
        url: &Url,
        body: &str,
    ) -> Result<Envelope<T>, Error> {
        let cfg = &self.inner.cfg;
        let mut req = self
            .inner
            .http
            .request(method.clone(), url.clone())
            .header("Accept", "application/json")
            .header("Content-Type", "application/json")
            .header("App-id", &cfg.app_id)
            .header("Secret", cfg.secret.expose());
        if let Some(cs) = &cfg.customer_secret {
            req = req.header("Customer-secret", cs.expose());
        }
        if let Some(cs) = &cfg.connection_secret {
            req = req.header("Connection-secret", cs.expose());
        }
        if let Some(signer) = &cfg.signer {
            let expires_at = chrono::Utc::now().timestamp() + cfg.expires_in_secs;
            let sig = signer.sign_request(expires_at, method.as_str(), url.as_str(), body);
            req = req
                .header("Expires-at", expires_at.to_string())
                .header("Signature", sig);
        }
        if !body.is_empty() {
            req = req.body(body.to_string());
        }
        let resp = req.send().await.map_err(map_transport)?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(map_transport)?;
        tracing::debug!(%method, path = url.path(), status = status.as_u16(), "Salt Edge answered");
        decode(status, &bytes)
    }

    // ----- customers -----

    pub async fn create_customer(&self, identifier: &str) -> Result<Customer, Error> {
        let body = serde_json::json!({ "data": { "identifier": identifier } });
        Ok(self
            .call(Method::POST, "customers", &[], Some(&body), Kind::Mutating)
            .await?
            .data)
    }

    /// Customers whose identifier is `identifier` (0 or 1). The filter is also applied here:
    /// v6 may ignore it and list every customer (v6 notes §4.1, unverified).
    pub async fn find_customers(&self, identifier: &str) -> Result<Vec<Customer>, Error> {
        let all = self
            .collect(self.pages("customers", vec![("identifier", identifier.to_string())]))
            .await?;
        Ok(all
            .into_iter()
            .filter(|c: &Customer| c.identifier == identifier)
            .collect())
    }

    pub async fn show_customer(&self, id: &str) -> Result<Customer, Error> {
        Ok(self.get(&format!("customers/{id}"), &[]).await?.data)
    }

    pub async fn remove_customer(&self, id: &str) -> Result<RemovedCustomer, Error> {
        Ok(self
            .call::<(), _>(
                Method::DELETE,
                &format!("customers/{id}"),
                &[],
                None,
                Kind::Idempotent,
            )
            .await?
            .data)
    }

    // ----- connect sessions -----

    pub async fn create_connect_session(
        &self,
        req: &CreateConnectSession,
    ) -> Result<ConnectSession, Error> {
        let s = self.version().connect(req);
        Ok(self.send(s, Kind::Fetch).await?.data)
    }

    pub async fn reconnect_connect_session(
        &self,
        req: &ReconnectConnectSession,
    ) -> Result<ConnectSession, Error> {
        let s = self.version().reconnect(req);
        Ok(self.send(s, Kind::Fetch).await?.data)
    }

    pub async fn refresh_connect_session(
        &self,
        req: &RefreshConnectSession,
    ) -> Result<ConnectSession, Error> {
        let s = self.version().refresh_session(req);
        Ok(self.send(s, Kind::Fetch).await?.data)
    }

    /// The API version this client speaks.
    pub fn version(&self) -> crate::version::ApiVersion {
        self.inner.cfg.api_version
    }

    /// Sends a request as [`crate::version`] spelled it.
    async fn send<T: DeserializeOwned>(
        &self,
        s: crate::version::Spelled,
        kind: Kind,
    ) -> Result<Envelope<T>, Error> {
        let query: Vec<(&str, &str)> = s.query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.call(s.method, &s.path, &query, s.body.as_ref(), kind)
            .await
    }

    // ----- connections -----

    pub async fn list_connections(&self, customer_id: &str) -> Result<Vec<Connection>, Error> {
        self.collect(self.pages(
            "connections",
            vec![("customer_id", customer_id.to_string())],
        ))
        .await
    }

    pub async fn show_connection(&self, id: &str) -> Result<Connection, Error> {
        Ok(self.get(&format!("connections/{id}"), &[]).await?.data)
    }

    pub async fn update_connection(
        &self,
        id: &str,
        update: &ConnectionUpdate,
    ) -> Result<Connection, Error> {
        let body = serde_json::json!({ "data": update });
        let path = format!("connections/{id}");
        Ok(self
            .call(Method::PUT, &path, &[], Some(&body), Kind::Idempotent)
            .await?
            .data)
    }

    /// Background refresh; Salt Edge answers 406 `ConnectionCannotBeRefreshed` when "not now".
    pub async fn refresh_connection(
        &self,
        id: &str,
        attempt: &AttemptRequest,
    ) -> Result<Connection, Error> {
        let s = self.version().background_refresh(id, attempt);
        Ok(self.send(s, Kind::Fetch).await?.data)
    }

    /// Answers an interactive stage (SMS code, OTP…).
    pub async fn interactive(
        &self,
        id: &str,
        credentials: &serde_json::Value,
    ) -> Result<Connection, Error> {
        let body = serde_json::json!({ "data": { "credentials": credentials } });
        let path = format!("connections/{id}/interactive");
        Ok(self
            .call(Method::PUT, &path, &[], Some(&body), Kind::Mutating)
            .await?
            .data)
    }

    pub async fn remove_connection(&self, id: &str) -> Result<RemovedConnection, Error> {
        let path = format!("connections/{id}");
        Ok(self
            .call::<(), _>(Method::DELETE, &path, &[], None, Kind::Idempotent)
            .await?
            .data)
    }

    // ----- consents -----

    pub async fn list_consents(&self, connection_id: &str) -> Result<Vec<Consent>, Error> {
        self.collect(self.pages(
            "consents",
            vec![("connection_id", connection_id.to_string())],
        ))
        .await
    }

    pub async fn revoke_consent(
        &self,
        consent_id: &str,
        connection_id: &str,
    ) -> Result<Consent, Error> {
        let path = format!("consents/{consent_id}/revoke");
        Ok(self
            .call::<(), _>(
                Method::PUT,
                &path,
                &[("connection_id", connection_id)],
                None,
                Kind::Idempotent,
            )
            .await?
            .data)
    }

    // ----- accounts and transactions -----

    /// Accounts of a connection, one page at a time.
    pub fn account_pages(
        &self,
        connection_id: &str,
    ) -> impl Stream<Item = Result<Page<Account>, Error>> + '_ {
        self.pages(
            "accounts",
            vec![("connection_id", connection_id.to_string())],
        )
    }

    pub async fn list_accounts(&self, connection_id: &str) -> Result<Vec<Account>, Error> {
        self.collect(self.account_pages(connection_id)).await
    }

    /// Posted, non-duplicated transactions in id order, one page at a time, so that a caller
    /// can store each page before asking for the next.
    pub fn transaction_pages(
        &self,
        q: TransactionQuery,
    ) -> impl Stream<Item = Result<Page<Transaction>, Error>> + '_ {
        self.pages("transactions", q.pairs())
    }

    /// Pending transactions (a separate list in v5, a flag in v6).
    pub fn pending_transaction_pages(
        &self,
        q: TransactionQuery,
    ) -> impl Stream<Item = Result<Page<Transaction>, Error>> + '_ {
        let (path, mut pairs) = self.version().pending_list();
        pairs.extend(q.pairs());
        self.pages(path, pairs)
    }

    /// Transactions flagged `duplicated`.
    pub fn duplicate_transaction_pages(
        &self,
        q: TransactionQuery,
    ) -> impl Stream<Item = Result<Page<Transaction>, Error>> + '_ {
        let (path, mut pairs) = self.version().duplicates_list();
        pairs.extend(q.pairs());
        self.pages(path, pairs)
    }

    pub async fn mark_duplicated(
        &self,
        req: &DuplicateRequest,
    ) -> Result<serde_json::Value, Error> {
        let body = serde_json::json!({ "data": req });
        Ok(self
            .call(
                Method::PUT,
                "transactions/duplicate",
                &[],
                Some(&body),
                Kind::Idempotent,
            )
            .await?
            .data)
    }

    /// Undoes [`Client::mark_duplicated`]: the transactions return to `/transactions`.
    pub async fn mark_unduplicated(
        &self,
        req: &DuplicateRequest,
    ) -> Result<serde_json::Value, Error> {
        let body = serde_json::json!({ "data": req });
        Ok(self
            .call(
                Method::PUT,
                "transactions/unduplicate",
                &[],
                Some(&body),
                Kind::Idempotent,
            )
            .await?
            .data)
    }

    // ----- catalogue -----

    pub async fn list_providers(&self, q: &ProviderQuery) -> Result<Vec<Provider>, Error> {
        let mut pairs = vec![];
        if let Some(c) = &q.country_code {
            pairs.push(("country_code", c.clone()));
        }
        if q.include_fake_providers {
            pairs.push((self.version().sandboxes_param(), "true".to_string()));
        }
        if let Some(f) = &q.from_date {
            pairs.push(("from_date", f.to_string()));
        }
        self.collect(self.pages("providers", pairs)).await
    }

    pub async fn show_provider(&self, code: &str) -> Result<Provider, Error> {
        Ok(self.get(&format!("providers/{code}"), &[]).await?.data)
    }

    pub async fn list_countries(&self) -> Result<Vec<Country>, Error> {
        Ok(self.get("countries", &[]).await?.data)
    }

    pub async fn list_currencies(&self) -> Result<Vec<Currency>, Error> {
        Ok(self.get("currencies", &[]).await?.data)
    }

    // ----- plumbing -----

    async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Envelope<T>, Error> {
        self.call::<(), T>(Method::GET, path, query, None, Kind::Idempotent)
            .await
    }

    /// One page of a list: `from_id` (inclusive) as given, `next_id` for the following one.
    pub async fn page<T: DeserializeOwned>(
        &self,
        path: &str,
        pairs: &[(&str, String)],
        from_id: Option<&str>,
    ) -> Result<Page<T>, Error> {
        let raw = self.raw_page(path, pairs, from_id).await?;
        let (items, rejected) = parse_items(raw.items.iter().map(|r| (r, ())));
        Ok(Page {
            items: items.into_iter().map(|(t, ())| t).collect(),
            next_id: raw.next_id,
            rejected,
        })
    }

    /// One page of a list with its items unparsed, as Salt Edge sent them: for a caller
    /// that can tell from an item's raw text that it has it already ([`parse_items`]
    /// parses the others).
    pub async fn raw_page(
        &self,
        path: &str,
        pairs: &[(&str, String)],
        from_id: Option<&str>,
    ) -> Result<RawPage, Error> {
        let mut q: Vec<(&str, &str)> = pairs
            .iter()
            .filter(|(k, _)| *k != "from_id")
            .map(|(k, v)| (*k, v.as_str()))
            .collect();
        if let Some(f) = from_id {
            q.push(("from_id", f));
        }
        let env: Envelope<Vec<Box<serde_json::value::RawValue>>> = self.get(path, &q).await?;
        let next_id = env.meta.and_then(|m| m.next_id).filter(|s| !s.is_empty());
        Ok(RawPage {
            items: env.data,
            next_id,
        })
    }

    /// [`Client::raw_page`] of posted transactions.
    pub async fn transactions_raw_page(&self, q: &TransactionQuery) -> Result<RawPage, Error> {
        self.raw_page("transactions", &q.pairs(), q.from_id.as_deref())
            .await
    }

    /// One page of posted transactions, for callers that drive pagination themselves.
    pub async fn transactions_page(
        &self,
        q: &TransactionQuery,
    ) -> Result<Page<Transaction>, Error> {
        self.page("transactions", &q.pairs(), q.from_id.as_deref())
            .await
    }

    /// Follows `meta.next_id` until it is null, yielding one page per request.
    pub fn pages<T: DeserializeOwned + 'static>(
        &self,
        path: &'static str,
        pairs: Vec<(&'static str, String)>,
    ) -> impl Stream<Item = Result<Page<T>, Error>> + '_ {
        let start_from = pairs
            .iter()
            .find(|(k, _)| *k == "from_id")
            .map(|(_, v)| v.clone());
        stream::try_unfold(Some(start_from), move |state| {
            let pairs = pairs.clone();
            async move {
                let Some(from_id) = state else {
                    return Ok(None);
                };
                let page: Page<T> = self.page(path, &pairs, from_id.as_deref()).await?;
                let next_state = page.next_id.clone().map(Some);
                Ok(Some((page, next_state)))
            }
        })
    }

    async fn collect<T>(
        &self,
        s: impl Stream<Item = Result<Page<T>, Error>>,
    ) -> Result<Vec<T>, Error> {
        use futures::TryStreamExt;
        let pages: Vec<Page<T>> = s.try_collect().await?;
        for r in pages.iter().flat_map(|p| &p.rejected) {
            tracing::warn!(id = ?r.id, reason = %r.reason, "Salt Edge list item skipped: it does not parse");
        }
        Ok(pages.into_iter().flat_map(|p| p.items).collect())
    }
}

/// Filters for the transaction lists.
#[derive(Debug, Clone, Default)]
pub struct TransactionQuery {
    pub connection_id: String,
    pub account_id: Option<String>,
    /// Start at this id (inclusive), as Salt Edge's `from_id`.
    pub from_id: Option<String>,
    pub per_page: Option<u32>,
}

impl TransactionQuery {
    pub fn connection(id: impl Into<String>) -> Self {
        TransactionQuery {
            connection_id: id.into(),
            ..Default::default()
        }
    }

    fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut v = vec![("connection_id", self.connection_id.clone())];
        if let Some(a) = &self.account_id {
            v.push(("account_id", a.clone()));
        }
        if let Some(f) = &self.from_id {
            v.push(("from_id", f.clone()));
        }
        if let Some(p) = self.per_page {
            v.push(("per_page", p.to_string()));
        }
        v
    }
}

#[derive(Debug, Clone, Default)]
pub struct ProviderQuery {
    pub country_code: Option<String>,
    pub include_fake_providers: bool,
    pub from_date: Option<chrono::NaiveDate>,
}

fn map_transport(e: reqwest::Error) -> Error {
    if e.is_timeout() {
        Error::Timeout
    } else {
        Error::Transport(e)
    }
}

fn decode<T: DeserializeOwned>(status: StatusCode, bytes: &[u8]) -> Result<Envelope<T>, Error> {
    if status.is_success() {
        let bytes = crate::text::storable_json(bytes);
        return serde_json::from_slice(&bytes).map_err(|e| Error::Decode(e.to_string()));
    }
    /// The flattened spelling (`error_class`, `error_message`) of v5's generated models and
    /// of one of Salt Edge's v6 examples (v6 notes §6): read too, leniently.
    #[derive(serde::Deserialize)]
    struct Flat {
        error_class: crate::ErrorClass,
        #[serde(default)]
        error_message: String,
    }
    if let Ok(b) = serde_json::from_slice::<ErrorBody>(bytes) {
        return Err(Error::Api {
            status: status.as_u16(),
            class: b.error.class,
            message: b.error.message,
        });
    }
    match serde_json::from_slice::<Flat>(bytes) {
        Ok(f) => Err(Error::Api {
            status: status.as_u16(),
            class: f.error_class,
            message: f.error_message,
        }),
        Err(_) => Err(Error::UnexpectedStatus {
            status: status.as_u16(),
            snippet: String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned(),
        }),
    }
}

/// A page whose items are still JSON text.
pub struct RawPage {
    pub items: Vec<Box<serde_json::value::RawValue>>,
    /// `from_id` of the following page, `None` on the last page.
    pub next_id: Option<String>,
}

/// Parses list items one by one, so that one bad record never fails its page: those that
/// do not parse are returned whole with the reason. Each item keeps what the caller paired
/// it with (`X`).
pub fn parse_items<'a, T: DeserializeOwned, X>(
    raw: impl Iterator<Item = (&'a Box<serde_json::value::RawValue>, X)>,
) -> (Vec<(T, X)>, Vec<Rejected>) {
    let mut items = vec![];
    let mut rejected = vec![];
    for (raw, x) in raw {
        match serde_json::from_str::<T>(raw.get()) {
            Ok(item) => items.push((item, x)),
            Err(e) => rejected.push(Rejected::of(raw.get(), e.to_string())),
        }
    }
    (items, rejected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_read_in_either_spelling() {
        let class = |body: &str| match decode::<serde_json::Value>(
            StatusCode::NOT_FOUND,
            body.as_bytes(),
        ) {
            Err(Error::Api { class, message, .. }) => (class.to_string(), message),
            other => panic!("{other:?}"),
        };
        let nested = r#"{"error":{"class":"ConnectionNotFound","message":"gone","documentation_url":"x"},"request":{"id":"1"}}"#;
        let flat = r#"{"error_class":"ConnectionNotFound","error_message":"gone"}"#;
        assert_eq!(class(nested), ("ConnectionNotFound".into(), "gone".into()));
        assert_eq!(class(flat), class(nested));
        assert!(matches!(
            decode::<serde_json::Value>(StatusCode::BAD_GATEWAY, b"<html>"),
            Err(Error::UnexpectedStatus { status: 502, .. })
        ));
    }
}
