//! `banksync demo`: the whole product offline, in one process. It starts the Salt Edge
//! simulator and banksync (API, callback receivers, worker), links a bank through the REST
//! API and the Connect page over real HTTP, waits for the signed success callback and the
//! sync, prints a summary, then keeps running for you to explore with curl (Ctrl-C stops).

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use banksync_http::{Application, HttpConfig};
use saltedge_client::{Client, Verifier};
use saltedge_sim::{keys, SimConfig, Simulator};
use serde_json::{json, Value};
use sync_engine::worker::Worker;
use sync_engine::{catalogue, companies, tokens};

#[derive(clap::Args)]
pub struct Args {
    /// Postgres URL (scripts/dev demo passes the harness's).
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
    /// Institution to link (see the simulator's providers).
    #[arg(long, default_value = "fake_client_xf")]
    pub provider: String,
    /// Port for banksync (0 = any free port).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Exit after the summary instead of waiting for Ctrl-C.
    #[arg(long)]
    pub exit: bool,
    /// Once the demo is ready, write `BASE=`, `TOKEN=` (the demo company's) and
    /// `OPERATOR_TOKEN=` lines to this file (for `scripts/dev api-check`).
    #[arg(long)]
    pub env_file: Option<std::path::PathBuf>,
    /// The Salt Edge API version to speak: 5 or 6 (requests, Connect and callbacks).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u8).range(5..=6))]
    pub api_version: u8,
}

fn step(msg: impl std::fmt::Display) {
    println!("  → {msg}");
}

fn listener(port: u16) -> anyhow::Result<std::net::TcpListener> {
    std::net::TcpListener::bind(("127.0.0.1", port))
        .or_else(|_| std::net::TcpListener::bind(("127.0.0.1", 0)))
        .context("cannot open a local port")
}

pub async fn run(a: Args) -> anyhow::Result<()> {
    println!("banksync demo: everything runs on this machine; nothing calls the real Salt Edge.\n");
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(10)
        .acquire_timeout(Duration::from_secs(10))
        .connect(&a.database_url)
        .await
        .context("cannot reach Postgres: run `scripts/dev demo`, which finds or starts one")?;
    sync_engine::MIGRATOR
        .run(&pool)
        .await
        .context("migrations failed")?;
    step("database ready (migrations applied)");

    let http_listener = listener(a.port)?;
    let addr = http_listener.local_addr()?;
    let base = format!("http://{addr}");
    let callback_base = url::Url::parse(&format!("{base}/callbacks/saltedge/"))?;
    let sim = Simulator::start(SimConfig {
        callback_base_url: Some(callback_base.clone()),
        callback_version: a.api_version,
        ..Default::default()
    })
    .await?;
    let mut client_config = banksync_testkit::config(&sim);
    if a.api_version == 6 {
        client_config.base_url = sim.api_base_v6();
        client_config.api_version = saltedge_client::ApiVersion::V6;
    }
    step(format!(
        "Salt Edge simulator at {} (API v{})",
        client_config.base_url, a.api_version
    ));
    let client = Client::new(client_config)?;
    let config = HttpConfig {
        return_to_origins: vec![base.clone()],
        public_base_url: Some(url::Url::parse(&format!("{base}/"))?),
        callback_verifier_v6: Some(Verifier::from_pem(keys::SIMULATOR_V6_PUBLIC_PEM)?),
        ..Default::default()
    };
    let app = Application::build(
        pool.clone(),
        client.clone(),
        Verifier::from_pem(keys::SIMULATOR_PUBLIC_PEM)?,
        banksync_http::callbacks::urls::CallbackUrls::under(&callback_base),
        &config,
        None,
    )
    .router;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = banksync_http::serve::spawn_plain(
        http_listener,
        app,
        stop_rx.clone(),
        Duration::from_secs(2),
    );
    let mut worker = Worker::new(pool.clone(), client.clone());
    worker.poll = Duration::from_millis(50);
    let worker = tokio::spawn(worker.run(2, stop_rx.clone(), Duration::from_secs(5)));
    // Webhooks to local receivers are allowed in the demo.
    let deliverer = sync_engine::webhooks::Deliverer::new(
        pool.clone(),
        sync_engine::webhooks::DeliveryConfig {
            policy: banksync_http::HttpConfig::default().webhook_policy,
            poll: Duration::from_millis(100),
            ..Default::default()
        },
    );
    let deliverer = tokio::spawn(deliverer.run(stop_rx.clone()));
    step(format!("banksync API and callback receivers at {base}"));

    let result = tour(&pool, &client, &base, &a, &sim).await;
    if let Ok(token) = &result {
        // The console, signed in as the demo company with one click (a one-time link).
        if let Some(p) = tokens::authenticate(&pool, token).await? {
            let code = sync_engine::console::create_link(
                &pool,
                p.token_id(),
                chrono::Duration::minutes(30),
            )
            .await?;
            println!("\nConsole: {base}/console");
            println!("  sign in as the demo company (one-time link, 30 minutes): {base}/console/sign-in/{code}");
        }
        println!("\nKeep exploring (Ctrl-C stops everything):");
        println!("  export TOKEN={token}");
        println!("  curl -s -H \"Authorization: Bearer $TOKEN\" {base}/api/v1/connections");
        println!(
            "  curl -s -H \"Authorization: Bearer $TOKEN\" '{base}/api/v1/statement-lines?limit=5'"
        );
        println!("  curl -s {base}/api/v1/openapi.json");
        println!("  curl -s {base}/metrics");
        println!(
            "  simulator ground truth: {}sim/ground_truth/<saltedge connection id>",
            sim.base_url()
        );
        if let Some(path) = &a.env_file {
            let (_, operator) = tokens::insert(
                &pool,
                None,
                "demo operator",
                Some(chrono::Duration::days(1)),
            )
            .await?;
            // Written whole, then renamed: a reader never sees half a file.
            let tmp = path.with_extension("tmp");
            std::fs::write(
                &tmp,
                format!("BASE={base}\nTOKEN={token}\nOPERATOR_TOKEN={operator}\n"),
            )?;
            std::fs::rename(&tmp, path)?;
        }
        if !a.exit {
            tokio::signal::ctrl_c().await?;
            println!("\nstopping…");
        }
    }
    let _ = stop_tx.send(true);
    let _ = server.await;
    let _ = worker.await;
    let _ = deliverer.await;
    sim.stop().await;
    result.map(|_| ())
}

/// The bookkeeper's flow over HTTP; returns the API token it made.
async fn tour(
    pool: &sqlx::PgPool,
    client: &Client,
    base: &str,
    a: &Args,
    sim: &Simulator,
) -> anyhow::Result<String> {
    let n = catalogue::refresh(pool, client).await?;
    step(format!(
        "institution catalogue loaded from Salt Edge ({n} providers)"
    ));
    let company = companies::create(
        pool,
        &format!("Demo Company {}", chrono::Utc::now().format("%H:%M:%S")),
    )
    .await?;
    let (_, token) = tokens::create(pool, company.id, "demo").await?;
    step(format!("company {:?} with an API token", company.name));

    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let api = |method: reqwest::Method, path: &str| {
        http.request(method, format!("{base}{path}"))
            .bearer_auth(&token)
    };
    let link: Value = api(reqwest::Method::POST, "/api/v1/connections")
        .json(&json!({ "provider_code": a.provider, "phone": "+44 20 7946 0000", "email": format!("books+{}@demo.example", company.id.simple()), "return_to": format!("{base}/healthz") }))
        .send()
        .await?
        .json()
        .await?;
    let connect_url = link["connect_url"]
        .as_str()
        .with_context(|| format!("link failed: {link}"))?;
    step(format!("link requested: Connect URL {connect_url}"));
    let page = http
        .post(connect_url)
        .form(&[
            ("login", "username"),
            ("password", "secret"),
            ("sms", "123456"),
            ("consent", "on"),
        ])
        .send()
        .await?;
    let mut status = page.status();
    if status == 200 {
        // Interactive providers ask for the SMS code on a second page.
        status = http
            .post(connect_url)
            .form(&[("sms", "123456")])
            .send()
            .await?
            .status();
    }
    if status != 303 {
        bail!("the Connect page did not complete (HTTP {status})");
    }
    step("Connect page completed with the test credentials and consent");

    let started = Instant::now();
    let mut last_stage = String::new();
    let conn = loop {
        if started.elapsed() > Duration::from_secs(60) {
            bail!("no successful sync after 60 s; see the log above");
        }
        let list: Value = api(reqwest::Method::GET, "/api/v1/connections")
            .send()
            .await?
            .json()
            .await?;
        if let Some(c) = list.as_array().and_then(|l| l.first()) {
            let stage = c["stage"].as_str().unwrap_or("").to_string();
            if stage != last_stage {
                step(format!(
                    "callback received: connection {} stage {stage}",
                    c["saltedge_id"].as_str().unwrap_or("")
                ));
                last_stage = stage;
            }
            if c["last_sync"]["status"] == "succeeded" {
                break c.clone();
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // One fetch may send success more than once: give the syncs a moment, then add them up.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let id = conn["id"].as_str().unwrap_or_default();
    let runs: Value = api(
        reqwest::Method::GET,
        &format!("/api/v1/connections/{id}/sync-runs"),
    )
    .send()
    .await?
    .json()
    .await?;
    let runs = runs["items"].as_array().cloned().unwrap_or_default();
    let total = |k: &str| {
        runs.iter()
            .filter(|r| r["status"] == "succeeded")
            .map(|r| r[k].as_i64().unwrap_or(0))
            .sum::<i64>()
    };
    step(format!(
        "{} sync run(s) finished: {} lines inserted, {} look-alikes flagged for review, {} page(s)",
        runs.iter().filter(|r| r["status"] == "succeeded").count(),
        total("inserted"),
        total("suspects"),
        total("pages")
    ));

    println!("\nSummary");
    println!(
        "  connection {} · {} · status {}",
        conn["id"].as_str().unwrap_or(""),
        conn["provider_name"].as_str().unwrap_or(""),
        conn["status"].as_str().unwrap_or("")
    );
    let lines: Value = api(reqwest::Method::GET, "/api/v1/statement-lines?limit=1000")
        .send()
        .await?
        .json()
        .await?;
    let items = lines["items"].as_array().cloned().unwrap_or_default();
    let pending: Value = api(
        reqwest::Method::GET,
        "/api/v1/pending-transactions?limit=1000",
    )
    .send()
    .await?
    .json()
    .await?;
    let pending = pending["items"].as_array().cloned().unwrap_or_default();
    for acc in conn["accounts"].as_array().cloned().unwrap_or_default() {
        let jid = acc["journal_id"].as_str().unwrap_or("");
        let mine: Vec<&Value> = items.iter().filter(|l| l["journal_id"] == jid).collect();
        let posted = mine.len();
        let pending = pending.iter().filter(|p| p["journal_id"] == jid).count();
        let check = match acc["balance_mismatch"].as_str() {
            None => "balance check ✓".to_string(),
            Some(d) => format!("balance differs by {d}"),
        };
        println!(
            "  journal {:<50} {:>3} posted, {} pending · bank balance {} {} · {check}",
            acc["journal_name"].as_str().unwrap_or(""),
            posted,
            pending,
            acc["bank_balance"].as_str().unwrap_or("?"),
            acc["currency"].as_str().unwrap_or("")
        );
    }
    if let Some(truth) = sim.ground_truth(conn["saltedge_id"].as_str().unwrap_or("")) {
        let expected: usize = truth
            .accounts
            .iter()
            .map(|a| a.posted.len() + a.pending.len())
            .sum();
        println!(
            "  lines + pending {} · the simulator holds {} transactions (posted + pending, not duplicated)",
            items.len() + pending.len(),
            expected
        );
    }
    Ok(token)
}
