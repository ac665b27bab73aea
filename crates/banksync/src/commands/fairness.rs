//! `banksync bench fairness`: one noisy company beside many quiet ones, in one process over
//! loopback HTTP, on a scratch database, with Salt Edge's real fetch budget (2 a second).
//!
//! Quiet companies (100 by default) each link a bank through the REST API and Salt Edge
//! Connect, one company a second; the success callback queues a sync that imports the
//! lines; each has one healthy webhook endpoint. The noisy company, in the second run
//! only, keeps 16 link requests in flight without pause (honouring no `Retry-After`), asks
//! for 1,000 sync-now on its 20 connections with long histories, and registers 200
//! webhook endpoints at a receiver that accepts connections and never answers.
//!
//! Printed as JSON, for the quiet companies, each with `quiet_only` and `with_noise`: link
//! p99 (the API call), callback-to-lines p99 (the success callback stored → its first line
//! stored, both database clocks), webhook delivery delay p99 (event written → delivered).
//! Target: with the noise every p99 within 2× its quiet-only value and under 5 s.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use banksync_http::{Application, HttpConfig};
use saltedge_client::{Client, Verifier};
use saltedge_sim::{keys, DataConfig, SimConfig, Simulator};
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use sync_engine::worker::Worker;
use sync_engine::{catalogue, companies, tokens};
use uuid::Uuid;

#[derive(clap::Args)]
pub struct FairnessArgs {
    /// Quiet companies, each linking one bank.
    #[arg(long, default_value_t = 100)]
    pub quiet: usize,
    /// Between two quiet companies' links (Salt Edge allows 2 fetches a second in all).
    #[arg(long, default_value_t = 1000)]
    pub spacing_ms: u64,
    /// The noisy company's connections (its 1,000 sync-now go round them).
    #[arg(long, default_value_t = 20)]
    pub noisy_connections: usize,
    /// Keep the scratch databases afterwards.
    #[arg(long)]
    pub keep: bool,
    /// Which of the noisy company's loads run (to see which one costs what).
    #[arg(long, value_delimiter = ',', default_value = "links,syncs,webhooks")]
    pub noise: Vec<Noise>,
}

/// One of the noisy company's loads.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Noise {
    /// Link requests at its API rate limit, ignoring Retry-After.
    Links,
    /// 1,000 sync-now on its connections with long histories.
    Syncs,
    /// 200 webhook endpoints at a receiver that never answers.
    Webhooks,
}

const LIMIT_MS: f64 = 5000.0;

pub async fn run(a: FairnessArgs) -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: debug build; figures are meaningful only with --release (scripts/dev bench)"
        );
    }
    anyhow::ensure!(a.quiet >= 1, "--quiet must be at least 1");
    let a = Arc::new(a);
    eprintln!("quiet companies alone…");
    let b = a.clone();
    let quiet = super::scratch::with_scratch_db("banksync_fair_quiet", a.keep, |o| async move {
        scenario(&o, &b, false).await
    })
    .await?;
    eprintln!("the same beside the noisy company…");
    let b = a.clone();
    let noisy = super::scratch::with_scratch_db("banksync_fair_noise", a.keep, |o| async move {
        scenario(&o, &b, true).await
    })
    .await?;
    let figure = |name: &str| {
        let (q, n) = (
            quiet[name].as_f64().unwrap_or(0.0),
            noisy[name].as_f64().unwrap_or(0.0),
        );
        let met = n <= LIMIT_MS && n <= 2.0 * q.max(1.0);
        (json!({ "quiet_only": q, "with_noise": n, "met": met }), met)
    };
    let (link, l_ok) = figure("link_p99_ms");
    let (lines, c_ok) = figure("callback_to_lines_p99_ms");
    let (hooks, w_ok) = figure("webhook_delay_p99_ms");
    let report = json!({
        "quiet_companies": a.quiet,
        "link_p99_ms": link,
        "callback_to_lines_p99_ms": lines,
        "webhook_delay_p99_ms": hooks,
        "target": "with the noise, every quiet p99 within 2x its quiet-only value and under 5 s",
        "met": l_ok && c_ok && w_ok,
        "quiet_only": quiet,
        "with_noise": noisy,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// The five largest, largest first.
fn slowest(v: &[f64]) -> Vec<f64> {
    let mut v = v.to_vec();
    v.sort_by(|a, b| b.total_cmp(a));
    v.truncate(5);
    v
}

fn p99(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * 0.99).round() as usize]
}

/// A receiver that accepts connections and never answers.
async fn hanging_receiver() -> anyhow::Result<std::net::SocketAddr> {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    tokio::spawn(async move {
        let mut held = vec![];
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    Ok(addr)
}

/// A receiver that answers 204 at once.
async fn healthy_receiver() -> anyhow::Result<std::net::SocketAddr> {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(|| async { axum::http::StatusCode::NO_CONTENT }),
    );
    tokio::spawn(async move { axum::serve(l, app).await });
    Ok(addr)
}

async fn scenario(opts: &PgConnectOptions, a: &FairnessArgs, noise: bool) -> anyhow::Result<Value> {
    let pool = PgPoolOptions::new()
        .max_connections(20)
        .connect_with(opts.clone())
        .await?;
    sync_engine::MIGRATOR.run(&pool).await?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let base = format!("http://{addr}");
    let callback_base = url::Url::parse(&format!("{base}/callbacks/saltedge/"))?;
    let sim = Simulator::start(SimConfig {
        callback_base_url: Some(callback_base.clone()),
        data: DataConfig {
            transactions_per_account: 30,
            ..Default::default()
        },
        ..Default::default()
    })
    .await?;
    // Salt Edge's access terms: 2 fetches of new data a second, for everyone together.
    // Shared by every replica through Postgres, as `serve` installs it.
    let mut cfg = banksync_testkit::config(&sim);
    cfg.fetches_per_second = 2;
    cfg.fetch_gate = Some(Arc::new(sync_engine::fetch_limit::PgFetchGate::new(
        pool.clone(),
        "global",
        2,
    )));
    let client = Client::new(cfg)?;
    catalogue::refresh(&pool, &client).await?;
    let config = HttpConfig {
        return_to_origins: vec![base.clone()],
        connect_sessions_per_minute: 10,
        connect_session_burst: 5,
        rate_limit_per_minute: 600,
        webhook_max_endpoints: 25,
        public_base_url: Some(url::Url::parse(&format!("{base}/"))?),
        ..Default::default()
    };
    let app = Application::build(
        pool.clone(),
        client.clone(),
        Verifier::from_pem(keys::SIMULATOR_PUBLIC_PEM)?,
        banksync_http::callbacks::urls::CallbackUrls::under(&callback_base),
        &config,
        None,
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = banksync_http::serve::spawn_plain(
        listener,
        app.router,
        stop_rx.clone(),
        Duration::from_secs(1),
    );
    let mut worker = Worker::new(pool.clone(), client.clone());
    worker.poll = Duration::from_millis(50);
    let worker = tokio::spawn(worker.run(4, stop_rx.clone(), Duration::from_secs(2)));
    let deliverer = sync_engine::webhooks::Deliverer::new(
        pool.clone(),
        sync_engine::webhooks::DeliveryConfig {
            policy: HttpConfig::default().webhook_policy,
            poll: Duration::from_millis(100),
            ..Default::default()
        },
    );
    let deliverer = tokio::spawn(deliverer.run(stop_rx.clone()));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(64)
        .build()?;

    let healthy = healthy_receiver().await?;
    let mut quiet = vec![];
    for i in 0..a.quiet {
        let c = companies::create(&pool, &format!("Quiet {i}")).await?;
        let (_, token) = tokens::create(&pool, c.id, "bench").await?;
        let r = http
            .post(format!("{base}/api/v1/webhook-endpoints"))
            .bearer_auth(&token)
            .json(&json!({ "url": format!("http://{healthy}/hook") }))
            .send()
            .await?;
        anyhow::ensure!(r.status() == 201, "a quiet endpoint: {}", r.status());
        quiet.push((c.id, token));
    }

    let (noise_stop_tx, noise_stop) = tokio::sync::watch::channel(false);
    let noisy_figures = Arc::new(NoiseCounts::default());
    let mut noise_tasks = vec![];
    if noise {
        let c = companies::create(&pool, "Noisy").await?;
        let (_, token) = tokens::create(&pool, c.id, "bench").await?;
        let hang = hanging_receiver().await?;
        let endpoints = if a.noise.contains(&Noise::Webhooks) {
            200
        } else {
            0
        };
        for _ in 0..endpoints {
            let r = http
                .post(format!("{base}/api/v1/webhook-endpoints"))
                .bearer_auth(&token)
                .json(&json!({ "url": format!("http://{hang}/hook") }))
                .send()
                .await?;
            let n = if r.status() == 201 {
                &noisy_figures.endpoints_accepted
            } else {
                &noisy_figures.endpoints_refused
            };
            n.fetch_add(1, Ordering::Relaxed);
        }
        let mut conns = vec![];
        for _ in 0..a.noisy_connections {
            // One Salt Edge customer (a company has one), many connections.
            let (_, se) = sim.seed_connection("noisy@bench.example", "fake_client_xf");
            conns.push(
                sync_engine::connections::adopt(&pool, &client, c.id, &se)
                    .await?
                    .id,
            );
        }
        // Links at its API rate limit (600 a minute: one every 100 ms, whatever the answers),
        // ignoring Retry-After; its connect-session quota refuses most of them.
        if a.noise.contains(&Noise::Links) {
            let (http, base, token, stop, counts) = (
                http.clone(),
                base.clone(),
                token.clone(),
                noise_stop.clone(),
                noisy_figures.clone(),
            );
            noise_tasks.push(tokio::spawn(async move {
                let mut every = tokio::time::interval(Duration::from_millis(100));
                while !*stop.borrow() {
                    every.tick().await;
                    let (http, base, token, counts) =
                        (http.clone(), base.clone(), token.clone(), counts.clone());
                    tokio::spawn(async move {
                        let r = http
                            .post(format!("{base}/api/v1/connections"))
                            .bearer_auth(&token)
                            .json(&json!({ "provider_code": "fakebank_simple_xf", "phone": "+44 20 7946 0000",
                                "email": "noisy@bench.example", "return_to": format!("{base}/healthz"),
                                "allow_second_connection": true }))
                            .send()
                            .await;
                        let counter = match r.map(|r| r.status().as_u16()) {
                            Ok(201) => &counts.links_accepted,
                            Ok(429) => &counts.links_429,
                            _ => &counts.links_other,
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                    });
                }
            }));
        }
        // Its sync-now come with a token of their own (a company may hold several).
        let (_, token) = tokens::create(&pool, c.id, "bench sync").await?;
        // 1,000 sync-now, 8 in flight.
        let conns = Arc::new(conns);
        let next = Arc::new(AtomicU64::new(0));
        let sync_loops = if a.noise.contains(&Noise::Syncs) {
            8
        } else {
            0
        };
        for _ in 0..sync_loops {
            let (http, base, token, conns, next, counts) = (
                http.clone(),
                base.clone(),
                token.clone(),
                conns.clone(),
                next.clone(),
                noisy_figures.clone(),
            );
            noise_tasks.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= 1000 {
                        return;
                    }
                    let conn = conns[i as usize % conns.len()];
                    let r = http
                        .post(format!("{base}/api/v1/connections/{conn}/sync"))
                        .bearer_auth(&token)
                        .send()
                        .await;
                    if r.is_ok_and(|r| r.status().is_success()) {
                        counts.syncs_asked.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        // Let the noise build up before the quiet companies start.
        tokio::time::sleep(Duration::from_secs(3)).await;
    }

    // The quiet companies' work: a link each, `spacing` apart, completed on Connect.
    let started = Instant::now();
    let mut links = vec![];
    for (i, (_, token)) in quiet.iter().enumerate() {
        let at = Duration::from_millis(a.spacing_ms * i as u64);
        let (http, base, token) = (http.clone(), base.clone(), token.clone());
        links.push(tokio::spawn(async move {
            tokio::time::sleep(at.saturating_sub(started.elapsed())).await;
            let t = Instant::now();
            let r = http
                .post(format!("{base}/api/v1/connections"))
                .bearer_auth(&token)
                .json(&json!({ "provider_code": "fakebank_simple_xf", "phone": "+44 20 7946 0000",
                    "email": format!("books-{i}@quiet.example"), "return_to": format!("{base}/healthz") }))
                .send()
                .await?;
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            let status = r.status();
            let v: Value = r.json().await?;
            anyhow::ensure!(status == 201, "a quiet link answered {status}: {v}");
            let url = v["connect_url"].as_str().context("connect_url")?;
            let done = http
                .post(url)
                .form(&[("login", "username"), ("password", "secret"), ("consent", "on")])
                .send()
                .await?;
            anyhow::ensure!(done.status() == 303, "Connect answered {}", done.status());
            anyhow::Ok(ms)
        }));
    }
    let mut link_ms = vec![];
    let mut link_failures = vec![];
    for l in links {
        match l.await? {
            Ok(ms) => link_ms.push(ms),
            Err(e) => link_failures.push(e.to_string()),
        }
    }
    let quiet_ids: Vec<Uuid> = quiet.iter().map(|(c, _)| *c).collect();
    // Every quiet company's lines imported and its webhooks delivered (or 120 s).
    let waited = Instant::now();
    loop {
        let (with_lines, pending) = progress(&pool, &quiet_ids).await?;
        if (with_lines as usize >= link_ms.len() && pending == 0)
            || waited.elapsed() > Duration::from_secs(120)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = noise_stop_tx.send(true);
    for t in noise_tasks {
        t.abort();
    }
    let lines_ms: Vec<f64> = sqlx::query_scalar!(
        r#"SELECT (extract(epoch FROM (SELECT min(l.imported_at) FROM statement_lines l
                                       JOIN bank_accounts b ON b.id = l.bank_account_id WHERE b.connection_id = c.id)
                   - (SELECT min(i.received_at) FROM callback_inbox i WHERE i.kind = 'success' AND i.connection_saltedge_id = c.saltedge_id)) * 1000)::float8 AS ms
           FROM connections c WHERE c.company_id = ANY($1)"#,
        &quiet_ids
    )
    .fetch_all(&pool)
    .await?
    .into_iter()
    .flatten()
    .collect();
    let hook_ms: Vec<f64> = sqlx::query_scalar!(
        r#"SELECT (extract(epoch FROM d.delivered_at - e.created_at) * 1000)::float8 AS "ms!"
           FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id
           WHERE d.company_id = ANY($1) AND d.state = 'delivered'"#,
        &quiet_ids
    )
    .fetch_all(&pool)
    .await?;
    let undelivered: i64 = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM webhook_deliveries WHERE company_id = ANY($1) AND state = 'pending'"#,
        &quiet_ids
    )
    .fetch_one(&pool)
    .await?;
    let _ = stop_tx.send(true);
    let _ = server.await;
    let _ = worker.await;
    let _ = deliverer.await;
    sim.stop().await;
    let c = &noisy_figures;
    Ok(json!({
        "link_p99_ms": p99(link_ms.clone()),
        "slowest_links_ms": slowest(&link_ms),
        "callback_to_lines_p99_ms": p99(lines_ms.clone()),
        "webhook_delay_p99_ms": p99(hook_ms.clone()),
        "links": link_ms.len(),
        "link_failures": link_failures,
        "connections_with_lines": lines_ms.len(),
        "webhooks_delivered": hook_ms.len(),
        "webhooks_undelivered": undelivered,
        "noise": if noise { json!({
            "links_accepted": c.links_accepted.load(Ordering::Relaxed),
            "links_429": c.links_429.load(Ordering::Relaxed),
            "links_other": c.links_other.load(Ordering::Relaxed),
            "sync_now_accepted": c.syncs_asked.load(Ordering::Relaxed),
            "webhook_endpoints_accepted": c.endpoints_accepted.load(Ordering::Relaxed),
            "webhook_endpoints_refused": c.endpoints_refused.load(Ordering::Relaxed),
        }) } else { Value::Null },
    }))
}

#[derive(Default)]
struct NoiseCounts {
    links_accepted: AtomicU64,
    links_429: AtomicU64,
    links_other: AtomicU64,
    syncs_asked: AtomicU64,
    endpoints_accepted: AtomicU64,
    endpoints_refused: AtomicU64,
}

/// Quiet companies' connections with lines, and their unfinished work (webhooks to
/// deliver, jobs queued or running).
async fn progress(pool: &PgPool, quiet: &[Uuid]) -> anyhow::Result<(i64, i64)> {
    let r = sqlx::query!(
        r#"SELECT (SELECT count(DISTINCT b.connection_id) FROM statement_lines l
                    JOIN bank_accounts b ON b.id = l.bank_account_id JOIN connections c ON c.id = b.connection_id
                    WHERE c.company_id = ANY($1)) AS "lines!",
                  (SELECT count(*) FROM webhook_deliveries WHERE company_id = ANY($1) AND state = 'pending')
                  + (SELECT count(*) FROM jobs WHERE company_id = ANY($1) AND status IN ('queued', 'running')) AS "pending!""#,
        quiet
    )
    .fetch_one(pool)
    .await?;
    Ok((r.lines, r.pending))
}
