//! Operations endpoints: health, readiness, liveness, metrics.

use super::support::*;

#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn openapi_health_metrics(pool: PgPool) {
    let s = stack(pool).await;
    let doc = s.openapi().await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/api/v1/institutions",
        "/api/v1/connections",
        "/api/v1/connections/{id}",
        "/api/v1/connections/{id}/update-credentials",
        "/api/v1/connections/{id}/fetch-accounts",
        "/api/v1/connections/{id}/sync",
        "/api/v1/connections/{id}/sync-runs",
        "/api/v1/connections/{id}/revoke",
        "/api/v1/journals",
        "/api/v1/bank-accounts/{id}/journal",
        "/api/v1/statement-lines",
        "/callbacks/saltedge/success/",
        "/callbacks/saltedge/notify",
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/v1/openapi.json",
        "/api/v1/admin/jobs",
    ] {
        assert!(paths.contains_key(p), "OpenAPI lacks {p}");
    }
    // Every documented path is served (not the fallback 404 for unknown routes).
    for p in paths.keys() {
        let url = format!(
            "{}{}",
            s.base,
            p.replace("{id}", &Uuid::nil().to_string())
                .replace("{kind}", "notify")
        );
        let r = s.http.request(Method::OPTIONS, url).send().await.unwrap();
        assert_ne!(r.status(), 404, "{p} is documented but not routed");
    }
    assert_eq!(
        s.http
            .get(format!("{}/healthz", s.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let r = s
        .http
        .get(format!("{}/readyz", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("x-request-id"));
    let body = "{}";
    s.post_callback("success", body, None).await;
    let m = s
        .http
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains(
            "banksync_http_requests_total{method=\"GET\",route=\"/readyz\",status=\"200\"} 1"
        ),
        "{m}"
    );
    assert!(
        m.contains("banksync_callbacks_total{kind=\"success\",verdict=\"missing_signature\"} 1"),
        "{m}"
    );
    assert!(m.contains("banksync_statement_lines"), "{m}");
}

/// `/metrics` reads no table per scrape (gauges come from a timer), even in a storm of
/// scrapes during a sync, and can require a token; `/livez` fails when a job loop is silent
/// for too long while `/readyz` still says the API can serve.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn metrics_storm_token_and_liveness(pool: PgPool) {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let client = Client::new(banksync_testkit::signed_config(&sim)).unwrap();
    let health = Arc::new(sync_engine::worker::Health::default());
    let config = HttpConfig {
        metrics_token: Some("scrape-secret".into()),
        livez_stale: Duration::from_millis(400),
        ..Default::default()
    };
    let built = Application::build(
        pool.clone(),
        client.clone(),
        Verifier::from_pem(keys::SIMULATOR_PUBLIC_PEM).unwrap(),
        banksync_http::callbacks::urls::CallbackUrls::under(
            &url::Url::parse("http://127.0.0.1/callbacks/saltedge/").unwrap(),
        ),
        &config,
        Some(health.clone()),
    );
    let state = built.state.clone();
    state.metrics.refresh(&pool).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = built.router;
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let http = reqwest::Client::new();
    let scrape = |token: Option<&'static str>| {
        let mut r = http.get(format!("http://{addr}/metrics"));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    assert_eq!(scrape(None).await.unwrap().status(), 401);
    assert_eq!(scrape(Some("wrong")).await.unwrap().status(), 401);
    let first = scrape(Some("scrape-secret"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(first.contains("banksync_statement_lines"), "{first}");

    // New jobs and a running sync; a storm of scrapes shows the gauges of the last refresh.
    for _ in 0..5 {
        sync_engine::jobs::enqueue(&pool, "noop", json!({}), None)
            .await
            .unwrap();
    }
    let company = companies::create(&pool, "Storm").await.unwrap().id;
    let (_, se_conn) = sim.seed_connection("storm@x.example", "fake_client_xf");
    let conn = sync_engine::connections::adopt(&pool, &client, company, &se_conn)
        .await
        .unwrap();
    let (p2, c2) = (pool.clone(), client.clone());
    let sync = tokio::spawn(async move {
        sync_engine::sync_connection(&p2, &c2, conn.id, &Default::default()).await
    });
    let storm: Vec<_> = (0..300).map(|_| scrape(Some("scrape-secret"))).collect();
    let bodies = futures::future::join_all(storm).await;
    let gauges = |m: &str| {
        m.lines()
            .filter(|l| l.starts_with("banksync_jobs") || l.starts_with("banksync_sync_runs"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    for b in bodies {
        let b = b.unwrap();
        assert_eq!(b.status(), 200);
        assert_eq!(
            gauges(&b.text().await.unwrap()),
            gauges(&first),
            "no database read per scrape"
        );
    }
    assert_eq!(
        sync.await.unwrap().unwrap().run.status,
        sync_engine::status::RunStatus::Succeeded
    );
    state.metrics.refresh(&pool).await;
    let after = scrape(Some("scrape-secret"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        after.contains("banksync_jobs{status=\"queued\"} 5"),
        "{after}"
    );
    assert!(
        after.contains("banksync_sync_runs{status=\"succeeded\"} 1"),
        "{after}"
    );

    // Liveness follows the job loops: a worker whose only loop runs a long job and beats
    // rarely (lease 30 s → a beat every 10 s) goes silent past the allowed 400 ms.
    let livez = || http.get(format!("http://{addr}/livez")).send();
    let mut worker = sync_engine::worker::Worker::new(pool.clone(), client.clone());
    worker.health = health.clone();
    worker.lease = Duration::from_secs(30);
    worker.poll = Duration::from_millis(20);
    worker.register(
        "slow",
        Arc::new(|_| {
            Box::pin(async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                Ok(())
            })
        }),
    );
    let (stop, rx) = tokio::sync::watch::channel(false);
    let run = tokio::spawn(worker.run(1, rx, Duration::from_millis(10)));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(livez().await.unwrap().status(), 200, "polling loops beat");
    sync_engine::jobs::enqueue(&pool, "slow", json!({}), None)
        .await
        .unwrap();
    sqlx::query("DELETE FROM jobs WHERE kind = 'noop'")
        .execute(&pool)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(900)).await;
    let r = livez().await.unwrap();
    assert_eq!(r.status(), 503);
    let p: Value = r.json().await.unwrap();
    assert!(
        p["detail"].as_str().unwrap().contains("job loop 0 silent"),
        "{p}"
    );
    assert_eq!(
        http.get(format!("http://{addr}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "the API can still serve"
    );
    stop.send(true).unwrap();
    run.await.unwrap();
    let r = livez().await.unwrap();
    assert_eq!(r.status(), 503, "a loop that ended is not live");
}
