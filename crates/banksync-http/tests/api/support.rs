//! What every topic of these tests shares: fixtures and helpers.
// Re-exported for the topic modules: each takes what it needs.
#![allow(unused_imports)]

pub use banksync_http::{Application, HttpConfig, HttpLimits};
pub use reqwest::{Method, StatusCode};
pub use saltedge_client::{Client, Signer, Verifier};
pub use saltedge_sim::{keys, FaultAction, FaultRule, SimConfig, Simulator};
pub use serde_json::{json, Value};
pub use sqlx::PgPool;
pub use std::sync::Arc;
pub use std::time::Duration;
pub use sync_engine::worker::Worker;
pub use sync_engine::{catalogue, companies, tokens};
pub use uuid::Uuid;

pub struct Stack {
    pub sim: Simulator,
    pub base: String,
    pub callback_base: String,
    pub http: reqwest::Client,
    pub token: String,
    pub pool: PgPool,
    pub _stop: tokio::sync::watch::Sender<bool>,
    /// The Salt Edge API version the stack speaks.
    pub api_version: u8,
}

pub async fn stack(pool: PgPool) -> Stack {
    stack_on(pool, 5).await
}

/// The stack speaking Salt Edge API `version` (5 or 6): the client's requests and the
/// simulator's callbacks.
pub async fn stack_on(pool: PgPool, version: u8) -> Stack {
    let sim = Simulator::start(SimConfig {
        callback_version: version,
        ..Default::default()
    })
    .await
    .unwrap();
    let mut cfg = if version == 6 {
        banksync_testkit::signed_config_v6(&sim)
    } else {
        banksync_testkit::signed_config(&sim)
    };
    cfg.backoff_base = Duration::from_millis(5);
    cfg.fetches_per_second = 0;
    let client = Client::new(cfg).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let callback_base = url::Url::parse(&format!(
        "http://{}/callbacks/saltedge/",
        listener.local_addr().unwrap()
    ))
    .unwrap();
    sim.set_callback_base(Some(callback_base.clone()));
    // `success` registered with a trailing slash on both sides, as real clients often do.
    let success_url = format!("{callback_base}success/");
    sim.set_callback_url(saltedge_sim::CallbackKind::Success, &success_url);
    let addr = serve(listener, &pool, &client, &callback_base).await;
    let (stop, rx) = tokio::sync::watch::channel(false);
    let mut worker = Worker::new(pool.clone(), client.clone());
    worker.poll = Duration::from_millis(20);
    tokio::spawn(worker.run(2, rx, Duration::from_secs(1)));
    catalogue::refresh(&pool, &client).await.unwrap();
    let company = companies::create(&pool, "ACME Books").await.unwrap();
    let (_, token) = tokens::create(&pool, company.id, "test").await.unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Stack {
        sim,
        base: format!("http://{addr}"),
        callback_base: callback_base.to_string(),
        http,
        token,
        pool,
        _stop: stop,
        api_version: version,
    }
}

/// Builds the application on `pool` and serves it on `listener` (the test stack's server,
/// or another replica of it).
async fn serve(
    listener: tokio::net::TcpListener,
    pool: &PgPool,
    client: &Client,
    callback_base: &url::Url,
) -> std::net::SocketAddr {
    let addr = listener.local_addr().unwrap();
    // `success` registered with a trailing slash on both sides, as real clients often do.
    let success_url = format!("{callback_base}success/");
    let registered = [("success".to_string(), success_url)].into_iter().collect();
    let config = HttpConfig {
        return_to_origins: vec!["https://books.example".into()],
        limits: HttpLimits {
            body_limit_bytes: 64 * 1024,
            ..Default::default()
        },
        callback_verifier_v6: Some(Verifier::from_pem(keys::SIMULATOR_V6_PUBLIC_PEM).unwrap()),
        public_base_url: Some(url::Url::parse(&format!("http://{addr}/")).unwrap()),
        ..Default::default()
    };
    let built = Application::build(
        pool.clone(),
        client.clone(),
        Verifier::from_pem(keys::SIMULATOR_PUBLIC_PEM).unwrap(),
        banksync_http::callbacks::urls::CallbackUrls::with_overrides(callback_base, &registered)
            .unwrap(),
        &config,
        None,
    );
    banksync_http::spawn_metrics_refresher(&built.state, Duration::from_millis(100));
    let app = built.router;
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// A server on the stack's database with `config` (the stack's own is fixed), served as
/// `serve` serves (the client's address known); its base URL.
pub async fn server_with(s: &Stack, config: HttpConfig) -> String {
    let mut cfg = banksync_testkit::signed_config(&s.sim);
    cfg.fetches_per_second = 0;
    let built = Application::build(
        s.pool.clone(),
        Client::new(cfg).unwrap(),
        Verifier::from_pem(keys::SIMULATOR_PUBLIC_PEM).unwrap(),
        banksync_http::callbacks::urls::CallbackUrls::under(
            &url::Url::parse(&s.callback_base).unwrap(),
        ),
        &config,
        None,
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let options = banksync_http::serve::ServeOptions::default();
    tokio::spawn(async move {
        banksync_http::serve::serve(
            listener,
            built.router,
            None,
            std::future::pending(),
            options,
        )
        .await
        .unwrap()
    });
    format!("http://{addr}")
}

impl Stack {
    /// Another replica of the server (same database, its own process state); its base URL.
    pub async fn replica(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let cfg = if self.api_version == 6 {
            banksync_testkit::signed_config_v6(&self.sim)
        } else {
            banksync_testkit::signed_config(&self.sim)
        };
        let client = Client::new(cfg).unwrap();
        let base = url::Url::parse(&self.callback_base).unwrap();
        format!(
            "http://{}",
            serve(listener, &self.pool, &client, &base).await
        )
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call_as(&self.token, method, path, body).await
    }

    pub async fn call_as(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status();
        let ct = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let text = resp.text().await.unwrap();
        if status.is_client_error() || status.is_server_error() {
            assert_eq!(ct, "application/problem+json", "{status} {text}");
        }
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Submits the simulator's Connect page as a browser would; returns the redirect target.
    pub async fn complete_connect(&self, connect_url: &str, consent: bool) -> String {
        let mut form = vec![("login", "username"), ("password", "secret")];
        if consent {
            form.push(("consent", "on"));
        }
        let r = self
            .http
            .post(connect_url)
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
        r.headers()["location"].to_str().unwrap().to_string()
    }

    /// The URL registered for `kind` (see `stack`: `success` ends in a slash).
    pub fn callback_url(&self, kind: &str) -> String {
        match kind {
            "success" => format!("{}success/", self.callback_base),
            _ => format!("{}{kind}", self.callback_base),
        }
    }

    pub async fn post_callback(
        &self,
        kind: &str,
        body: &str,
        signature: Option<String>,
    ) -> (StatusCode, Value) {
        let mut r = self
            .http
            .post(self.callback_url(kind))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(s) = signature {
            r = r.header("Signature", s);
        }
        let resp = r.send().await.unwrap();
        let s = resp.status();
        (s, resp.json().await.unwrap_or(Value::Null))
    }

    /// The OpenAPI document this stack serves.
    pub async fn openapi(&self) -> Value {
        self.http
            .get(format!("{}/api/v1/openapi.json", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn inbox_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM callback_inbox")
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }
}

pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..300 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

pub async fn first_connection(s: &Stack) -> String {
    eventually("the connection appears", || async {
        let (_, list) = s.call(Method::GET, "/api/v1/connections", None).await;
        list.as_array()
            .and_then(|l| l.first())
            .map(|c| c["id"].as_str().unwrap().to_string())
    })
    .await
}

/// Successful sync runs of the connection so far.
pub async fn succeeded_runs(s: &Stack, conn: &str) -> usize {
    let (_, runs) = s
        .call(
            Method::GET,
            &format!("/api/v1/connections/{conn}/sync-runs"),
            None,
        )
        .await;
    runs["items"]
        .as_array()
        .map(|r| r.iter().filter(|r| r["status"] == "succeeded").count())
        .unwrap_or(0)
}

/// Waits until more than `runs_before` runs of the connection succeeded and everything is
/// settled (no callback unprocessed, no run queued or running: one fetch may send success
/// more than once); returns the newest run.
pub async fn wait_sync(s: &Stack, conn: &str, runs_before: usize) -> Value {
    eventually("a successful sync", || async {
        let unprocessed: i64 =
            sqlx::query_scalar("SELECT count(*) FROM callback_inbox WHERE processed_at IS NULL")
                .fetch_one(&s.pool)
                .await
                .unwrap();
        let (_, runs) = s
            .call(
                Method::GET,
                &format!("/api/v1/connections/{conn}/sync-runs"),
                None,
            )
            .await;
        let runs = runs["items"].as_array().cloned().unwrap_or_default();
        let done = runs.iter().filter(|r| r["status"] == "succeeded").count();
        (unprocessed == 0
            && done > runs_before
            && runs
                .iter()
                .all(|r| r["status"] != "running" && r["status"] != "queued"))
        .then(|| runs[0].clone())
    })
    .await
}

pub async fn all_lines(s: &Stack) -> Vec<Value> {
    all_of(s, "/api/v1/statement-lines?limit=50").await
}

/// Every open pending transaction (out of the books), all pages.
pub async fn all_pending(s: &Stack) -> Vec<Value> {
    all_of(s, "/api/v1/pending-transactions?limit=50").await
}

/// Every item of a paged list, following `next_cursor`.
pub async fn all_of(s: &Stack, first: &str) -> Vec<Value> {
    let mut out = vec![];
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("{first}&cursor={c}"),
            None => first.to_string(),
        };
        let (st, page) = s.call(Method::GET, &q, None).await;
        assert_eq!(st, 200);
        out.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
}

pub fn link_body(provider: &str) -> Value {
    json!({ "provider_code": provider, "phone": "+49 30 1234567", "email": "Books@ACME.example", "return_to": "https://books.example/back" })
}

pub fn signed(s: &Stack, kind: &str, body: &str) -> String {
    Signer::from_pem(keys::SIMULATOR_PRIVATE_PEM)
        .unwrap()
        .sign_callback(&s.callback_url(kind), body.as_bytes())
}

/// Arbitrary JSON, nested a few levels.
pub fn any_json() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::hash_map("[a-z_]{1,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Link-shaped bodies with hostile field values.
pub fn link_like() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    (any_json(), any_json(), ".{0,64}", ".{0,64}", any::<bool>()).prop_map(|(p, r, email, phone, flag)| {
        json!({ "provider_code": p, "phone": phone, "email": email, "return_to": r, "allow_second_connection": flag })
    })
}

pub fn samples<S: proptest::strategy::Strategy>(s: S, n: usize) -> Vec<S::Value> {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    (0..n)
        .map(|_| s.new_tree(&mut runner).unwrap().current())
        .collect()
}

/// Links a bank through the API and waits for its first sync; returns the connection id.
pub async fn linked(s: &Stack, provider: &str) -> String {
    let (st, link) = s
        .call(
            Method::POST,
            "/api/v1/connections",
            Some(link_body(provider)),
        )
        .await;
    assert_eq!(st, 201, "{link}");
    s.complete_connect(link["connect_url"].as_str().unwrap(), true)
        .await;
    let conn_id = first_connection(s).await;
    wait_sync(s, &conn_id, 0).await;
    conn_id
}

/// Jobs a request may have queued: callbacks' processing jobs are left out, as Salt Edge
/// (the simulator) may post a callback at any moment.
pub async fn jobs_count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM jobs WHERE kind <> 'process_callback'")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// A real headless Chromium driven over WebDriver (Debian's `chromium` and
/// `chromium-driver`, installed by `scripts/browser-deps`): one browser and one
/// chromedriver per test, a fresh profile each time.
pub struct Browser {
    pub c: fantoccini::Client,
    driver: std::process::Child,
    profile: std::path::PathBuf,
}

impl Browser {
    pub async fn start() -> Browser {
        let driver_bin =
            std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        assert!(
            std::path::Path::new(&driver_bin).exists() && std::path::Path::new(&chromium).exists(),
            "the console's browser tests need Chromium and ChromeDriver: run scripts/browser-deps \
             (apt packages chromium and chromium-driver), or set CHROMIUM and CHROMEDRIVER"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = std::process::Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile = std::env::temp_dir().join(format!("banksync-chromium-{}", Uuid::new_v4()));
        // The flags the machine notes give for a closed network, as root.
        let caps: serde_json::Map<String, Value> = serde_json::from_value(json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.display()),
                ]
            }
        }))
        .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let mut last = None;
        for _ in 0..100 {
            let http = hyper_util::client::legacy::connect::HttpConnector::new();
            match fantoccini::ClientBuilder::new(http)
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => return Browser { c, driver, profile },
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not start a session: {last:?}");
    }

    pub async fn goto(&self, url: &str) {
        self.c.goto(url).await.unwrap();
    }

    /// The element for a CSS selector, waiting up to 15 s for it to appear.
    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.c
            .wait()
            .at_most(Duration::from_secs(15))
            .for_element(fantoccini::Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
    }

    pub async fn fill(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        e.clear().await.unwrap();
        e.send_keys(text).await.unwrap();
    }

    pub async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap();
    }

    /// The page's visible text. A page that is replaced between finding its body and
    /// reading it (a form's answer arriving, a redirect) leaves a stale element: the new
    /// page's body is read instead.
    pub async fn text(&self) -> String {
        let mut last = None;
        for _ in 0..50 {
            match self.find("body").await.text().await {
                Ok(t) => return t,
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the page's text could not be read: {last:?}");
    }

    /// Waits until the page's text contains `needle`; returns the text.
    pub async fn wait_text(&self, needle: &str) -> String {
        let mut t = String::new();
        for _ in 0..150 {
            t = self.text().await;
            if t.contains(needle) {
                return t;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the page never said {needle:?}; it says:\n{t}");
    }

    pub async fn path(&self) -> String {
        self.c.current_url().await.unwrap().path().to_string()
    }

    /// Saves a screenshot under `docs/console/` (linked from docs/console.md).
    pub async fn screenshot(&self, name: &str) {
        let png = self.c.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/console");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// Signs in on the login page with an API token.
    pub async fn sign_in(&self, base: &str, token: &str) {
        self.goto(&format!("{base}/console/login")).await;
        self.fill("#token", token).await;
        self.click("form.stack button[type=submit]").await;
        self.find("header.top nav").await;
    }

    pub async fn quit(mut self) {
        let _ = self.c.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
