//! Layered configuration: `config/default.toml` < `config/$BANKSYNC_ENV.toml` < environment
//! (`BANKSYNC__SECTION__KEY`, plus `DATABASE_URL`). Secrets are read from the environment or
//! from files, and `Debug` never shows them.

use std::path::{Path, PathBuf};

use anyhow::Context;
use saltedge_client::models::Sensitive;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub database: Database,
    pub saltedge: SaltEdge,
    pub server: Server,
    #[serde(default)]
    pub worker: Worker,
    #[serde(default)]
    pub scheduler: Scheduler,
    #[serde(default)]
    pub retention: Retention,
    #[serde(default)]
    pub webhooks: Webhooks,
}

/// Outbound webhooks (see docs/api.md, Webhooks).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Webhooks {
    /// Accept `http://` endpoint URLs (development only).
    pub allow_http: bool,
    /// Accept loopback, private and link-local targets (development only).
    pub allow_private_targets: bool,
    pub connect_timeout_secs: u64,
    pub timeout_secs: u64,
    pub retry_base_secs: u64,
    pub retry_max_secs: u64,
    /// An endpoint failing this long without a success is disabled.
    pub disable_after_hours: u64,
    /// A rotated-out secret keeps signing alongside the new one this long.
    pub rotation_grace_hours: u64,
    /// Endpoints a company may register (0: no cap).
    pub max_endpoints_per_company: u32,
    /// Deliveries in flight at once per replica, and per company across replicas.
    pub in_flight: i64,
    pub in_flight_per_company: i64,
    /// The key endpoints' signing secrets are sealed with at rest (base64 of 32 bytes):
    /// from the environment (`BANKSYNC__WEBHOOKS__SECRET_KEY`) or `secret_key_file`.
    pub secret_key: Option<Sensitive>,
    pub secret_key_file: Option<PathBuf>,
}

impl Default for Webhooks {
    fn default() -> Self {
        Webhooks {
            allow_http: false,
            allow_private_targets: false,
            connect_timeout_secs: 5,
            timeout_secs: 10,
            retry_base_secs: 5,
            retry_max_secs: 3600,
            disable_after_hours: 72,
            rotation_grace_hours: 24,
            max_endpoints_per_company: 25,
            in_flight: 16,
            in_flight_per_company: 4,
            secret_key: None,
            secret_key_file: None,
        }
    }
}

impl Webhooks {
    pub fn policy(&self) -> sync_engine::webhooks::TargetPolicy {
        sync_engine::webhooks::TargetPolicy {
            allow_http: self.allow_http,
            allow_private_targets: self.allow_private_targets,
        }
    }

    /// How deliveries go out; `key` opens the endpoints' secrets ([`Settings::webhook_key`]).
    pub fn delivery(
        &self,
        key: sync_engine::webhooks::SecretKey,
    ) -> anyhow::Result<sync_engine::webhooks::DeliveryConfig> {
        use std::time::Duration;
        anyhow::ensure!(
            self.timeout_secs >= 1 && self.connect_timeout_secs >= 1 && self.retry_base_secs >= 1
                && self.retry_max_secs >= self.retry_base_secs && self.disable_after_hours >= 1
                && self.in_flight >= 1 && self.in_flight_per_company >= 1,
            "webhooks: timeouts, retry_base_secs, disable_after_hours and the in-flight bounds are at least 1, retry_max_secs at least retry_base_secs"
        );
        Ok(sync_engine::webhooks::DeliveryConfig {
            policy: self.policy(),
            connect_timeout: Duration::from_secs(self.connect_timeout_secs),
            timeout: Duration::from_secs(self.timeout_secs),
            retry_base: Duration::from_secs(self.retry_base_secs),
            retry_max: Duration::from_secs(self.retry_max_secs),
            disable_after: Duration::from_secs(self.disable_after_hours * 3600),
            lease: Duration::from_secs(self.timeout_secs * 2 + 20),
            batch: self.in_flight,
            per_company: self.in_flight_per_company,
            key,
            ..Default::default()
        })
    }
}

/// How long processed callbacks, finished jobs and old sync runs are kept (see docs/operations.md,
/// Operations); pruned once a day in batches.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Retention {
    pub callback_inbox_days: i64,
    pub jobs_days: i64,
    pub sync_runs_days: i64,
    /// How long the change feed keeps removals (a cursor older than that gets 410 Gone).
    pub changes_days: i64,
    /// Webhook events all delivered are kept this long (with their delivery log).
    pub webhook_events_days: i64,
    pub batch: i64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            callback_inbox_days: 30,
            jobs_days: 14,
            sync_runs_days: 180,
            changes_days: 30,
            webhook_events_days: 30,
            batch: 1000,
        }
    }
}

impl Retention {
    pub fn engine(&self) -> anyhow::Result<sync_engine::retention::Retention> {
        anyhow::ensure!(
            self.callback_inbox_days >= 1
                && self.jobs_days >= 1
                && self.sync_runs_days >= 1
                && self.changes_days >= 1
                && self.webhook_events_days >= 1
                && self.batch >= 1,
            "retention: every age is at least 1 day and the batch at least 1"
        );
        Ok(sync_engine::retention::Retention {
            callback_inbox: chrono::Duration::days(self.callback_inbox_days),
            jobs: chrono::Duration::days(self.jobs_days),
            sync_runs: chrono::Duration::days(self.sync_runs_days),
            changes: chrono::Duration::days(self.changes_days),
            webhook_events: chrono::Duration::days(self.webhook_events_days),
            batch: self.batch,
            ..Default::default()
        })
    }
}

/// Daily automatic refresh (see docs/architecture.md, Scheduling).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Scheduler {
    pub window_start_hour: u32,
    pub window_end_hour: u32,
    pub max_retries_per_day: i64,
    pub provider_unavailable_backoff_mins: i64,
    /// "provider" (each provider its own 2/s) or "global".
    pub limit_scope: String,
    pub tick_secs: u64,
}

impl Default for Scheduler {
    fn default() -> Self {
        Scheduler {
            window_start_hour: 2,
            window_end_hour: 6,
            max_retries_per_day: 2,
            provider_unavailable_backoff_mins: 30,
            limit_scope: "global".into(),
            tick_secs: 300,
        }
    }
}

impl Settings {
    pub fn schedule_config(&self) -> anyhow::Result<sync_engine::schedule::ScheduleConfig> {
        let s = &self.scheduler;
        anyhow::ensure!(
            s.window_start_hour < s.window_end_hour && s.window_end_hour <= 24,
            "scheduler window must satisfy start < end <= 24"
        );
        anyhow::ensure!(
            matches!(s.limit_scope.as_str(), "provider" | "global"),
            "scheduler.limit_scope must be provider or global"
        );
        Ok(sync_engine::schedule::ScheduleConfig {
            window_start_hour: s.window_start_hour,
            window_end_hour: s.window_end_hour,
            max_retries_per_day: s.max_retries_per_day,
            unavailable_backoff: chrono::Duration::minutes(s.provider_unavailable_backoff_mins),
            fetches_per_second: self.saltedge.fetches_per_second,
            limit_per_provider: s.limit_scope == "provider",
            tick: std::time::Duration::from_secs(s.tick_secs.max(10)),
            fetch_wait_max: self.fetch_wait_max(),
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Server {
    pub bind: std::net::SocketAddr,
    /// How Salt Edge reaches us, e.g. https://banksync.example.com/ ; callbacks are by
    /// default `{public_base_url}callbacks/saltedge/{kind}` and must be registered so at
    /// Salt Edge.
    pub public_base_url: url::Url,
    /// Callback URLs exactly as registered at Salt Edge, by kind (success, fail, notify,
    /// interactive, destroy, service), overriding the default layout; a trailing slash is
    /// kept, since Salt Edge signs the URL as registered.
    #[serde(default)]
    pub callback_urls: std::collections::BTreeMap<String, String>,
    /// Origins every company's frontend may receive users back at after Connect
    /// (`return_to`); companies add their own with `banksync company allow-origin`.
    #[serde(default)]
    pub return_to_origins: Vec<String>,
    /// Serve `/metrics` on this address instead of with the API.
    #[serde(default)]
    pub metrics_bind: Option<std::net::SocketAddr>,
    /// `/metrics` requires `Authorization: Bearer <token>` (set it from the environment:
    /// BANKSYNC__SERVER__METRICS_TOKEN).
    #[serde(default)]
    pub metrics_token: Option<Sensitive>,
    /// API requests per token per minute, counted by each replica on its own; 0 = no limit.
    #[serde(default = "six_hundred")]
    pub rate_limit_per_minute: u32,
    /// Failed authentications (API tokens, console sign-ins) per client address per minute,
    /// counted by each replica on its own; over it the address gets 429. 0 = no limit.
    #[serde(default = "thirty_u32")]
    pub auth_failures_per_minute: u32,
    /// The client address is the last `X-Forwarded-For` entry: set it only behind a proxy
    /// that appends the address it saw.
    #[serde(default)]
    pub trust_forwarded_for: bool,
    #[serde(default = "body_limit")]
    pub body_limit_bytes: usize,
    #[serde(default = "thirty")]
    pub request_timeout_secs: u64,
    #[serde(default = "three_days")]
    pub callback_max_age_hours: i64,
    /// PEM certificate chain and key: when both are set, the server speaks HTTPS itself.
    #[serde(default)]
    pub tls_cert_file: Option<PathBuf>,
    #[serde(default)]
    pub tls_key_file: Option<PathBuf>,
    /// How long a console sign-in lasts (hours).
    #[serde(default = "eight")]
    pub console_session_hours: i64,
    /// A request's headers must arrive within this; an idle kept-alive connection is closed
    /// after it (seconds).
    #[serde(default = "ten_secs")]
    pub header_read_timeout_secs: u64,
    /// A TLS handshake must complete within this (seconds).
    #[serde(default = "ten_secs")]
    pub tls_handshake_timeout_secs: u64,
}

fn thirty_u32() -> u32 {
    30
}

fn ten_secs() -> u64 {
    10
}

fn eight() -> i64 {
    8
}

impl Server {
    /// The listener's bounds; `grace` is the worker's shutdown grace.
    pub fn serve_options(&self, grace: std::time::Duration) -> banksync_http::serve::ServeOptions {
        banksync_http::serve::ServeOptions {
            grace,
            header_read: std::time::Duration::from_secs(self.header_read_timeout_secs.max(1)),
            tls_handshake: std::time::Duration::from_secs(self.tls_handshake_timeout_secs.max(1)),
        }
    }

    pub fn tls(&self) -> Option<banksync_http::serve::Tls> {
        match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(c), Some(k)) if !c.as_os_str().is_empty() && !k.as_os_str().is_empty() => {
                Some(banksync_http::serve::Tls {
                    cert_file: c.clone(),
                    key_file: k.clone(),
                })
            }
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Worker {
    /// Jobs run at once by this process; 0 = this replica only serves HTTP.
    pub concurrency: usize,
    /// Seconds in-flight jobs get to finish on shutdown before they are released.
    pub shutdown_grace_secs: u64,
    pub lease_secs: u64,
    /// `/livez` fails when a job loop has been silent this long (a running job beats every
    /// lease/3); default three leases.
    pub livez_stale_secs: Option<u64>,
}

impl Default for Worker {
    fn default() -> Self {
        Worker {
            concurrency: 2,
            shutdown_grace_secs: 20,
            lease_secs: 60,
            livez_stale_secs: None,
        }
    }
}

fn body_limit() -> usize {
    256 * 1024
}
fn three_days() -> i64 {
    72
}

#[derive(Debug, Clone, Deserialize)]
pub struct Database {
    pub url: Sensitive,
    #[serde(default = "ten")]
    pub max_connections: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SaltEdge {
    pub base_url: url::Url,
    pub app_id: String,
    #[serde(default)]
    pub secret: Option<Sensitive>,
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    #[serde(default)]
    pub private_key_file: Option<PathBuf>,
    /// Salt Edge's public key (PEM), to verify callbacks with; required to serve.
    #[serde(default)]
    pub callback_public_key_file: Option<PathBuf>,
    /// Salt Edge's v6 callback key (v6 callbacks are signed with a key of their own);
    /// empty: v6 callbacks are not accepted.
    #[serde(default)]
    pub callback_public_key_v6_file: Option<PathBuf>,
    #[serde(default = "two")]
    pub fetches_per_second: u32,
    /// The longest a fetch waits for its slot (then 429 / the job re-queued).
    #[serde(default = "five")]
    pub fetch_wait_max_secs: u64,
    /// Each company's connect sessions per minute inside the budget (0: no quota).
    #[serde(default = "ten")]
    pub connect_sessions_per_company_per_minute: u32,
    #[serde(default = "five_u32")]
    pub connect_session_burst: u32,
    #[serde(default = "thirty")]
    pub timeout_secs: u64,
    #[serde(default = "four")]
    pub max_retries: u32,
    /// Salt Edge is the bundled simulator: its public test keys and secret are then allowed.
    #[serde(default)]
    pub simulator: bool,
}

fn six_hundred() -> u32 {
    600
}
fn ten() -> u32 {
    10
}
fn two() -> u32 {
    2
}
fn five() -> u64 {
    5
}
fn five_u32() -> u32 {
    5
}
fn thirty() -> u64 {
    30
}
fn four() -> u32 {
    4
}

impl Settings {
    /// Reads the layers from `dir` (default `config/`, or `$BANKSYNC_CONFIG_DIR`).
    pub fn load() -> anyhow::Result<Settings> {
        let dir = std::env::var("BANKSYNC_CONFIG_DIR").unwrap_or_else(|_| "config".into());
        Self::load_from(Path::new(&dir))
    }

    pub fn load_from(dir: &Path) -> anyhow::Result<Settings> {
        let env_name = std::env::var("BANKSYNC_ENV").unwrap_or_else(|_| "local".into());
        let mut b = config::Config::builder()
            .add_source(config::File::from(dir.join("default.toml")).required(true))
            .add_source(config::File::from(dir.join(format!("{env_name}.toml"))).required(false))
            .add_source(
                config::Environment::with_prefix("BANKSYNC")
                    .prefix_separator("__")
                    .separator("__"),
            );
        if let Ok(url) = std::env::var("DATABASE_URL") {
            b = b.set_override("database.url", url)?;
        }
        let cfg = b.build().with_context(|| {
            format!(
                "cannot read configuration from {}/default.toml",
                dir.display()
            )
        })?;
        let s: Settings = cfg.try_deserialize().context("configuration is invalid")?;
        Ok(s)
    }

    /// The configuration folder in use.
    pub fn config_dir() -> PathBuf {
        PathBuf::from(std::env::var("BANKSYNC_CONFIG_DIR").unwrap_or_else(|_| "config".into()))
    }

    /// What makes this configuration unsafe to serve with: the simulator's public test keys
    /// or secret while `saltedge.simulator` is not set, a secret written into a TOML file, or
    /// an RSA key under 2048 bits. Empty when safe.
    pub fn unsafe_reasons(&self) -> Vec<String> {
        let mut out = vec![];
        for f in secret_in_toml(&Self::config_dir()) {
            out.push(format!("{f} contains a secret (saltedge.secret or webhooks.secret_key): move it to the environment (BANKSYNC__SALTEDGE__SECRET, BANKSYNC__WEBHOOKS__SECRET_KEY) or a file (saltedge.secret_file, webhooks.secret_key_file)"));
        }
        let hint = "(set saltedge.simulator = true only when Salt Edge is the simulator)";
        if !self.saltedge.simulator {
            // Recognised by key material, in any slot and any PEM encoding.
            for (slot, path) in [
                ("private_key_file", self.saltedge.private_key_file.as_ref()),
                (
                    "callback_public_key_file",
                    self.saltedge.callback_public_key_file.as_ref(),
                ),
                (
                    "callback_public_key_v6_file",
                    self.saltedge.callback_public_key_v6_file.as_ref(),
                ),
            ] {
                let bundled = path
                    .filter(|p| !p.as_os_str().is_empty())
                    .and_then(|p| std::fs::read_to_string(p).ok())
                    .and_then(|pem| crate::bundled_keys::which(&pem));
                if let Some(name) = bundled {
                    out.push(format!("saltedge.{slot} is {name}, a public test key in git: use your own key (or Salt Edge's) {hint}"));
                }
            }
            if self
                .saltedge_secret()
                .is_ok_and(|s| s == saltedge_sim::SimConfig::default().secret)
            {
                out.push(format!("the Salt Edge secret is the simulator's {hint}"));
            }
        } else if !simulator_host(&self.saltedge.base_url) {
            out.push(format!(
                "saltedge.simulator = true but saltedge.base_url {} is not the simulator (a loopback address or the compose network's `simulator` host): the simulator's public keys would be trusted for a real Salt Edge",
                self.saltedge.base_url
            ));
        }
        if saltedge_client::ApiVersion::of_base_url(&self.saltedge.base_url)
            == saltedge_client::ApiVersion::V6
            && matches!(self.callback_verifier_v6(), Ok(None))
        {
            out.push("saltedge.base_url is API v6 but saltedge.callback_public_key_v6_file is not set: v6 callbacks are signed with Salt Edge's v6 key".to_string());
        }
        if let Err(e) = self.signer() {
            out.push(format!("{e:#}"));
        }
        if let Err(e) = self.callback_verifier() {
            out.push(format!("{e:#}"));
        }
        if let Err(e) = self.callback_verifier_v6() {
            out.push(format!("{e:#}"));
        }
        match self.webhook_key() {
            Ok(k) if k.is_development() && !self.saltedge.simulator => out.push(format!(
                "webhooks.secret_key is the public development key {hint}"
            )),
            Ok(k) => {
                if let Err(e) = self.webhooks.delivery(k) {
                    out.push(format!("{e:#}"));
                }
            }
            Err(e) => out.push(format!("{e:#}")),
        }
        out
    }

    /// The key webhook secrets are sealed with: `webhooks.secret_key` (from the
    /// environment) or `secret_key_file`; with the simulator and neither set, the public
    /// development key.
    pub fn webhook_key(&self) -> anyhow::Result<sync_engine::webhooks::SecretKey> {
        let text = match (&self.webhooks.secret_key, &self.webhooks.secret_key_file) {
            (Some(k), _) if !k.expose().is_empty() => k.expose().to_string(),
            (_, Some(p)) if !p.as_os_str().is_empty() => std::fs::read_to_string(p)
                .with_context(|| format!("cannot read webhooks.secret_key_file {}", p.display()))?,
            _ if self.saltedge.simulator => {
                return Ok(sync_engine::webhooks::SecretKey::development())
            }
            _ => anyhow::bail!(
                "webhooks.secret_key is not set: the key webhook secrets are sealed with; export BANKSYNC__WEBHOOKS__SECRET_KEY=$(openssl rand -base64 32) or set webhooks.secret_key_file"
            ),
        };
        sync_engine::webhooks::SecretKey::from_base64(&text).map_err(|e| anyhow::anyhow!(e))
    }

    /// The Salt Edge `Secret`: from the environment or `secret_file`.
    pub fn saltedge_secret(&self) -> anyhow::Result<String> {
        if let Some(s) = &self.saltedge.secret {
            return Ok(s.expose().to_string());
        }
        match self.saltedge.secret_file.as_ref().filter(|p| !p.as_os_str().is_empty()) {
            Some(p) => Ok(std::fs::read_to_string(p)
                .with_context(|| format!("cannot read saltedge.secret_file {}", p.display()))?
                .trim()
                .to_string()),
            None => anyhow::bail!("the Salt Edge secret is not set: export BANKSYNC__SALTEDGE__SECRET or set saltedge.secret_file"),
        }
    }

    /// Salt Edge's public key, to verify callbacks with.
    pub fn callback_verifier(&self) -> anyhow::Result<saltedge_client::Verifier> {
        let Some(p) = self
            .saltedge
            .callback_public_key_file
            .as_ref()
            .filter(|p| !p.as_os_str().is_empty())
        else {
            anyhow::bail!("saltedge.callback_public_key_file is not set: Salt Edge's public key (PEM), to verify callbacks with");
        };
        let pem = std::fs::read_to_string(p).with_context(|| {
            format!(
                "cannot read saltedge.callback_public_key_file {}",
                p.display()
            )
        })?;
        saltedge_client::Verifier::from_pem(&pem)
            .with_context(|| format!("{} is not an RSA public key", p.display()))
    }

    /// Salt Edge's v6 callback key, when configured.
    pub fn callback_verifier_v6(&self) -> anyhow::Result<Option<saltedge_client::Verifier>> {
        let Some(p) = self
            .saltedge
            .callback_public_key_v6_file
            .as_ref()
            .filter(|p| !p.as_os_str().is_empty())
        else {
            return Ok(None);
        };
        let pem = std::fs::read_to_string(p).with_context(|| {
            format!(
                "cannot read saltedge.callback_public_key_v6_file {}",
                p.display()
            )
        })?;
        Ok(Some(
            saltedge_client::Verifier::from_pem(&pem)
                .with_context(|| format!("{} is not an RSA public key", p.display()))?,
        ))
    }

    pub fn callback_base(&self) -> anyhow::Result<url::Url> {
        let mut base = self.server.public_base_url.clone();
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        Ok(base.join("callbacks/saltedge/")?)
    }

    /// Every callback URL as registered at Salt Edge.
    /// The HTTP service's configuration ([`banksync_http::Application::build`]).
    pub fn http_config(&self) -> banksync_http::HttpConfig {
        banksync_http::HttpConfig {
            callback_max_age: chrono::Duration::hours(self.server.callback_max_age_hours),
            return_to_origins: self.server.return_to_origins.clone(),
            connect_sessions_per_minute: self.saltedge.connect_sessions_per_company_per_minute,
            connect_session_burst: self.saltedge.connect_session_burst,
            rate_limit_per_minute: self.server.rate_limit_per_minute,
            auth_failures_per_minute: self.server.auth_failures_per_minute,
            trust_forwarded_for: self.server.trust_forwarded_for,
            livez_stale: std::time::Duration::from_secs(
                self.worker
                    .livez_stale_secs
                    .unwrap_or(3 * self.worker.lease_secs),
            ),
            metrics_token: self
                .server
                .metrics_token
                .as_ref()
                .map(|t| t.expose().to_string()),
            metrics_separate: self.server.metrics_bind.is_some(),
            limits: banksync_http::HttpLimits {
                body_limit_bytes: self.server.body_limit_bytes,
                request_timeout: std::time::Duration::from_secs(self.server.request_timeout_secs),
            },
            // A bad v6 key file is reported by `unsafe_reasons` (serve refuses to start).
            callback_verifier_v6: self.callback_verifier_v6().ok().flatten(),
            webhook_policy: self.webhooks.policy(),
            webhook_max_endpoints: self.webhooks.max_endpoints_per_company,
            // A missing or bad key is reported by `unsafe_reasons` (serve refuses to start).
            webhook_key: self
                .webhook_key()
                .unwrap_or_else(|_| sync_engine::webhooks::SecretKey::development()),
            webhook_rotation_grace: std::time::Duration::from_secs(
                self.webhooks.rotation_grace_hours * 3600,
            ),
            public_base_url: Some(self.server.public_base_url.clone()),
            console_session_ttl: chrono::Duration::hours(self.server.console_session_hours.max(1)),
        }
    }

    pub fn callback_urls(&self) -> anyhow::Result<banksync_http::callbacks::urls::CallbackUrls> {
        banksync_http::callbacks::urls::CallbackUrls::with_overrides(
            &self.callback_base()?,
            &self.server.callback_urls,
        )
        .map_err(|e| anyhow::anyhow!("server.callback_urls: {e}"))
    }

    /// The request signer, when `saltedge.private_key_file` is set.
    pub fn signer(&self) -> anyhow::Result<Option<saltedge_client::Signer>> {
        match self
            .saltedge
            .private_key_file
            .as_ref()
            .filter(|p| !p.as_os_str().is_empty())
        {
            Some(p) => {
                let pem = std::fs::read_to_string(p).with_context(|| {
                    format!("cannot read saltedge.private_key_file {}", p.display())
                })?;
                Ok(Some(saltedge_client::Signer::from_pem(&pem).with_context(
                    || format!("{} is not an RSA private key", p.display()),
                )?))
            }
            None => Ok(None),
        }
    }

    fn fetch_wait_max(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.saltedge.fetch_wait_max_secs)
    }

    /// The Salt Edge client; with `scheduler.limit_scope = "global"` (the default) every
    /// request that starts a fetch takes a slot of one budget shared by all replicas.
    pub fn client(&self, pool: &sqlx::PgPool) -> anyhow::Result<saltedge_client::Client> {
        let mut cfg = self.client_config()?;
        if self.scheduler.limit_scope == "global" {
            let gate = sync_engine::fetch_limit::PgFetchGate::new(
                pool.clone(),
                "global",
                self.saltedge.fetches_per_second,
            )
            .with_max_wait(self.fetch_wait_max());
            cfg.fetch_gate = Some(std::sync::Arc::new(gate));
        }
        Ok(saltedge_client::Client::new(cfg)?)
    }

    pub fn client_config(&self) -> anyhow::Result<saltedge_client::ClientConfig> {
        let mut c = saltedge_client::ClientConfig::new(
            self.saltedge.base_url.clone(),
            &self.saltedge.app_id,
            self.saltedge_secret()?,
        );
        c.signer = self.signer()?;
        c.fetches_per_second = self.saltedge.fetches_per_second;
        c.timeout = std::time::Duration::from_secs(self.saltedge.timeout_secs);
        c.max_retries = self.saltedge.max_retries;
        Ok(c)
    }
}

/// Salt Edge's base URL names the bundled simulator: a loopback address, or the host
/// `simulator` of docker-compose's network.
pub fn simulator_host(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        Some(url::Host::Domain(d)) => {
            d.eq_ignore_ascii_case("localhost") || d.eq_ignore_ascii_case("simulator")
        }
        None => false,
    }
}

/// TOML files of the config folder that hold `saltedge.secret`: secrets belong in the
/// environment or in files of their own.
pub fn secret_in_toml(dir: &Path) -> Vec<String> {
    let mut found = vec![];
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.extension().and_then(|x| x.to_str()) != Some("toml") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&p) else {
            continue;
        };
        let Ok(doc) = text.parse::<toml::Table>() else {
            continue;
        };
        let set = |table: &str, key: &str| {
            doc.get(table)
                .and_then(|v| v.as_table())
                .and_then(|t| t.get(key))
                .and_then(|v| v.as_str())
                .is_some_and(|s| !s.is_empty())
        };
        if set("saltedge", "secret") || set("webhooks", "secret_key") {
            found.push(p.display().to_string());
        }
    }
    found
}
