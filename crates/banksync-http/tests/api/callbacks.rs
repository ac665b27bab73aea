//! Callback receivers: the real signed callback, forged, replayed and duplicate deliveries, HTTPS.

use super::support::*;

/// Salt Edge's real signed callback (`conformance/saltedge-callback-v5.json`) was
/// posted to a URL registered with a trailing slash. Registered so here, the receiver answers
/// at that path and accepts it; a URL that differs by the slash is not that URL.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn the_real_callback_is_accepted_at_its_registered_url(pool: PgPool) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../conformance/saltedge-callback-v5.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let (registered, body, sig) = (
        v["callback_url"].as_str().unwrap(),
        v["body"].as_str().unwrap(),
        v["signature"].as_str().unwrap(),
    );
    let mut urls = std::collections::BTreeMap::new();
    urls.insert("success".to_string(), registered.to_string());
    let callbacks = banksync_http::callbacks::urls::CallbackUrls::with_overrides(
        &url::Url::parse("http://127.0.0.1/callbacks/saltedge/").unwrap(),
        &urls,
    )
    .unwrap();
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let app = Application::build(
        pool.clone(),
        Client::new(saltedge_client::ClientConfig::new(sim.api_base(), "a", "b")).unwrap(),
        Verifier::from_pem(v["saltedge_public_key_pem"].as_str().unwrap()).unwrap(),
        callbacks,
        &HttpConfig {
            callback_max_age: chrono::Duration::days(365 * 30),
            ..Default::default()
        },
        None,
    )
    .router;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let http = reqwest::Client::new();
    let post = |p: &'static str, body: String| {
        http.post(format!("http://{addr}{p}"))
            .header("content-type", "application/json")
            .header("Signature", sig)
            .body(body)
            .send()
    };
    let r = post("/callbacks/success/", body.to_string()).await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM callback_inbox WHERE connection_saltedge_id = '349600516445047165'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(stored, 1);
    assert_eq!(
        post("/callbacks/success", body.to_string())
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        post("/callbacks/saltedge/success", body.to_string())
            .await
            .unwrap()
            .status(),
        404
    );
    let r = post(
        "/callbacks/success/",
        body.replace("349600516445047165", "349600516445047166"),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 401);
}

#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn forged_missing_replayed_and_duplicate_callbacks(pool: PgPool) {
    let s = stack(pool).await;
    let body = json!({ "data": { "connection_id": "100000000000000999", "customer_id": "1", "stage": "start" },
                       "meta": { "version": "5", "time": banksync_testkit::clock::now() } })
    .to_string();

    // Missing signature.
    let (st, p) = s.post_callback("notify", &body, None).await;
    assert_eq!(
        (st.as_u16(), p["code"].as_str()),
        (401, Some("missing_signature"))
    );
    // Forged: signed with a key that is not Salt Edge's.
    let forged = Signer::from_pem(keys::CLIENT_PRIVATE_PEM)
        .unwrap()
        .sign_callback(&s.callback_url("notify"), body.as_bytes());
    let (st, p) = s.post_callback("notify", &body, Some(forged)).await;
    assert_eq!(
        (st.as_u16(), p["code"].as_str()),
        (401, Some("invalid_signature"))
    );
    // Valid signature for another kind's URL.
    let (st, _) = s
        .post_callback("success", &body, Some(signed(&s, "notify", &body)))
        .await;
    assert_eq!(st, 401);
    // A changed body.
    let (st, _) = s
        .post_callback(
            "notify",
            &body.replace("start", "finish"),
            Some(signed(&s, "notify", &body)),
        )
        .await;
    assert_eq!(st, 401);
    assert_eq!(
        s.inbox_count().await,
        0,
        "rejected callbacks leave no trace"
    );

    // Valid, then replayed: stored once.
    let (st, p) = s
        .post_callback("notify", &body, Some(signed(&s, "notify", &body)))
        .await;
    assert_eq!((st.as_u16(), p["status"].as_str()), (200, Some("accepted")));
    let (st, p) = s
        .post_callback("notify", &body, Some(signed(&s, "notify", &body)))
        .await;
    assert_eq!(
        (st.as_u16(), p["status"].as_str()),
        (200, Some("duplicate"))
    );
    assert_eq!(s.inbox_count().await, 1);

    // Stale events are refused.
    let old = json!({ "data": { "connection_id": "1", "customer_id": "1" }, "meta": { "version": "5", "time": "2020-11-12T21:00:19.000Z" } }).to_string();
    let (st, p) = s
        .post_callback("success", &old, Some(signed(&s, "success", &old)))
        .await;
    assert_eq!(
        (st.as_u16(), p["code"].as_str()),
        (401, Some("stale_callback"))
    );
    // Signed but not a callback.
    let junk = "{\"nope\":1}";
    let (st, p) = s
        .post_callback("success", junk, Some(signed(&s, "success", junk)))
        .await;
    assert_eq!(
        (st.as_u16(), p["code"].as_str()),
        (400, Some("malformed_callback"))
    );

    // A real flow with every callback delivered twice changes nothing compared to once.
    s.sim
        .state
        .callbacks
        .copies
        .store(2, std::sync::atomic::Ordering::Relaxed);
    let (_, link) = s
        .call(
            Method::POST,
            "/api/v1/connections",
            Some(link_body("fakebank_simple_xf")),
        )
        .await;
    s.complete_connect(link["connect_url"].as_str().unwrap(), true)
        .await;
    eventually("all deliveries answered", || async {
        (s.sim
            .deliveries()
            .iter()
            .filter(|d| d.status == Some(200))
            .count()
            >= 10)
            .then_some(())
    })
    .await;
    let (_, list) = s.call(Method::GET, "/api/v1/connections", None).await;
    let conn_id = list[0]["id"].as_str().unwrap().to_string();
    wait_sync(&s, &conn_id, 0).await;
    let dup_answers = s
        .sim
        .deliveries()
        .iter()
        .filter(|d| d.status == Some(200))
        .count();
    assert_eq!(
        dup_answers, 10,
        "5 callbacks (two successes in one fetch) × 2 deliveries, all acknowledged"
    );
    let inbox: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM callback_inbox WHERE kind IN ('success', 'notify')",
    )
    .fetch_one(&s.pool)
    .await
    .unwrap();
    assert_eq!(
        inbox,
        5 + 1,
        "each event stored once (plus the notify above)"
    );
    let (_, runs) = s
        .call(
            Method::GET,
            &format!("/api/v1/connections/{conn_id}/sync-runs"),
            None,
        )
        .await;
    let n = runs["items"].as_array().unwrap().len();
    assert!(
        (1..=2).contains(&n),
        "two success events give at most two syncs, redeliveries none: {n}"
    );
    let truth = s
        .sim
        .ground_truth(list[0]["saltedge_id"].as_str().unwrap())
        .unwrap();
    let expected: usize = truth
        .accounts
        .iter()
        .map(|a| a.posted.len() + a.pending.len())
        .sum();
    assert_eq!(
        all_lines(&s).await.len() + all_pending(&s).await.len(),
        expected
    );

    // Out of order: a late, older notify does not move the stage back.
    let (_, before) = s
        .call(Method::GET, &format!("/api/v1/connections/{conn_id}"), None)
        .await;
    assert_eq!(before["stage"], "finish");
    let late = json!({ "data": { "connection_id": list[0]["saltedge_id"], "customer_id": "x", "stage": "start" },
                       "meta": { "version": "5", "time": banksync_testkit::clock::now() - chrono::Duration::minutes(5) } })
    .to_string();
    let (st, _) = s
        .post_callback("notify", &late, Some(signed(&s, "notify", &late)))
        .await;
    assert_eq!(st, 200);
    eventually("the late event is processed", || async {
        (sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM callback_inbox WHERE processed_at IS NULL",
        )
        .fetch_one(&s.pool)
        .await
        .unwrap()
            == 0)
            .then_some(())
    })
    .await;
    let (_, after) = s
        .call(Method::GET, &format!("/api/v1/connections/{conn_id}"), None)
        .await;
    assert_eq!(after["stage"], "finish");
}

#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn https_callbacks_with_rustls(pool: PgPool) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = std::env::temp_dir().join(format!("banksync-tls-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let tls = banksync_http::serve::Tls {
        cert_file: dir.join("cert.pem"),
        key_file: dir.join("key.pem"),
    };
    std::fs::write(&tls.cert_file, ck.cert.pem()).unwrap();
    std::fs::write(&tls.key_file, ck.key_pair.serialize_pem()).unwrap();

    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let callback_base =
        url::Url::parse(&format!("https://localhost:{port}/callbacks/saltedge/")).unwrap();
    let app = Application::build(
        pool.clone(),
        Client::new(banksync_testkit::signed_config(&sim)).unwrap(),
        Verifier::from_pem(keys::SIMULATOR_PUBLIC_PEM).unwrap(),
        banksync_http::callbacks::urls::CallbackUrls::under(&callback_base),
        &HttpConfig {
            return_to_origins: vec!["https://books.example".into()],
            ..Default::default()
        },
        None,
    )
    .router;
    let (stop, mut rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(async move {
        let shutdown = async move {
            let _ = rx.wait_for(|v| *v).await;
        };
        let options = banksync_http::serve::ServeOptions {
            grace: Duration::from_secs(1),
            ..Default::default()
        };
        banksync_http::serve::serve(listener, app, Some(&tls), shutdown, options).await
    });
    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ck.cert.pem().as_bytes()).unwrap())
        .resolve("localhost", ([127, 0, 0, 1], port).into())
        .build()
        .unwrap();
    let body = json!({ "data": { "connection_id": "1", "customer_id": "1" }, "meta": { "version": "5", "time": banksync_testkit::clock::now() } }).to_string();
    let url = format!("{callback_base}success");
    let sig = Signer::from_pem(keys::SIMULATOR_PRIVATE_PEM)
        .unwrap()
        .sign_callback(&url, body.as_bytes());
    let r = https
        .post(&url)
        .header("Signature", sig)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "accepted");
    // Plain HTTP to the HTTPS port fails.
    assert!(reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .map(|r| r.status() != 200)
        .unwrap_or(true));
    stop.send(true).unwrap();
    server.await.unwrap().unwrap();
}

/// v6 callbacks: signed with Salt Edge's v6 key (configured apart from the v5 one);
/// `Signature-key-version` accepted when missing or naming v6, refused with any other
/// value; the v5 key does not pass for a callback that says it is signed with the v6 one.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn v6_callbacks_and_their_key_version(pool: PgPool) {
    let s = stack(pool).await;
    let body = |n: u32| {
        json!({ "data": { "connection_id": format!("10000000000000{n:04}"), "customer_id": "1", "stage": "start" },
                "meta": { "version": "6", "time": banksync_testkit::clock::now() } })
        .to_string()
    };
    let sign = |pem: &str, b: &str| {
        Signer::from_pem(pem)
            .unwrap()
            .sign_callback(&s.callback_url("notify"), b.as_bytes())
    };
    let post = |b: String, sig: String, key_version: Option<&'static str>| {
        let mut r = s
            .http
            .post(s.callback_url("notify"))
            .header("content-type", "application/json")
            .header("Signature", sig);
        if let Some(v) = key_version {
            r = r.header("Signature-key-version", v);
        }
        async move {
            let resp = r.body(b).send().await.unwrap();
            let st = resp.status().as_u16();
            (st, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let v6 = keys::SIMULATOR_V6_PRIVATE_PEM;
    let (b1, b2, b3, b4) = (body(1), body(2), body(3), body(4));
    assert_eq!(
        post(b1.clone(), sign(v6, &b1), None).await.0,
        200,
        "no header: either key"
    );
    assert_eq!(post(b2.clone(), sign(v6, &b2), Some("6.0")).await.0, 200);
    let (st, p) = post(b3.clone(), sign(v6, &b3), Some("7.0")).await;
    assert_eq!((st, p["code"].as_str()), (401, Some("unknown_key_version")));
    let (st, p) = post(
        b4.clone(),
        sign(keys::SIMULATOR_PRIVATE_PEM, &b4),
        Some("6.0"),
    )
    .await;
    assert_eq!(
        (st, p["code"].as_str()),
        (401, Some("invalid_signature")),
        "the v5 key is not the v6 key"
    );
    assert_eq!(s.inbox_count().await, 2);
}

/// v6's extra callback kinds: a consent revoked at Salt Edge behind our back arrives as
/// `consent_changes` and the connection shows it; `provider_changes` reads the catalogue
/// again.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn v6_consent_and_provider_changes(pool: PgPool) {
    let s = stack_on(pool.clone(), 6).await;
    let conn = linked(&s, "fake_client_xf").await;
    let (_, c) = s
        .call(Method::GET, &format!("/api/v1/connections/{conn}"), None)
        .await;
    let se_id = c["saltedge_id"].as_str().unwrap().to_string();
    assert_eq!(c["consent_status"], "valid");
    let salt_edge = Client::new(banksync_testkit::signed_config_v6(&s.sim)).unwrap();
    let consent = salt_edge
        .list_consents(&se_id)
        .await
        .unwrap()
        .pop()
        .unwrap();
    salt_edge.revoke_consent(&consent.id, &se_id).await.unwrap();
    eventually("the revocation is seen", || async {
        let (_, c) = s
            .call(Method::GET, &format!("/api/v1/connections/{conn}"), None)
            .await;
        (c["consent_status"] == "revoked").then_some(())
    })
    .await;

    let before: i64 =
        sqlx::query_scalar("SELECT count(*) FROM jobs WHERE kind = 'refresh_catalogue'")
            .fetch_one(&pool)
            .await
            .unwrap();
    let body =
        json!({ "data": { "provider_code": "fake_client_xf", "provider_status": "inactive" },
                       "meta": { "version": "6", "time": banksync_testkit::clock::now() } })
        .to_string();
    let sig = Signer::from_pem(keys::SIMULATOR_V6_PRIVATE_PEM)
        .unwrap()
        .sign_callback(&s.callback_url("provider_changes"), body.as_bytes());
    let (st, _) = s.post_callback("provider_changes", &body, Some(sig)).await;
    assert_eq!(st, 200);
    eventually("a catalogue refresh is queued", || async {
        let n: i64 =
            sqlx::query_scalar("SELECT count(*) FROM jobs WHERE kind = 'refresh_catalogue'")
                .fetch_one(&pool)
                .await
                .unwrap();
        (n > before).then_some(())
    })
    .await;
}

/// A callback dated in the future (a clock far ahead) counts as received now: it cannot
/// make every later callback of its connection look older and be ignored.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn a_callback_from_the_future_does_not_freeze_its_connection(pool: PgPool) {
    let s = stack(pool.clone()).await;
    let conn = linked(&s, "fake_client_xf").await;
    let (se_conn, customer) = saltedge_ids(&pool, &conn).await;
    let notify = |stage: &str, time: chrono::DateTime<chrono::Utc>| {
        json!({ "data": { "connection_id": se_conn, "customer_id": customer, "stage": stage },
                "meta": { "version": "5", "time": time } })
        .to_string()
    };
    // Every stored callback processed, and at least `n` stored.
    let processed = |n: i64| {
        let pool = pool.clone();
        async move {
            eventually("callbacks processed", || async {
                let (all, open): (i64, i64) = sqlx::query_as(
                    "SELECT count(*), count(*) FILTER (WHERE processed_at IS NULL) FROM callback_inbox",
                )
                .fetch_one(&pool)
                .await
                .unwrap();
                (all >= n && open == 0).then_some(all)
            })
            .await
        }
    };
    let before = processed(0).await;
    let now = banksync_testkit::clock::now();
    let ahead = notify("fetch_accounts", now + chrono::Duration::days(1));
    let (st, _) = s
        .post_callback("notify", &ahead, Some(signed(&s, "notify", &ahead)))
        .await;
    assert_eq!(st, 200);
    processed(before + 1).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let later = notify("finish", banksync_testkit::clock::now());
    let (st, _) = s
        .post_callback("notify", &later, Some(signed(&s, "notify", &later)))
        .await;
    assert_eq!(st, 200);
    processed(before + 2).await;
    let stage: Option<String> =
        sqlx::query_scalar("SELECT stage FROM connections WHERE id = $1::uuid")
            .bind(&conn)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        stage.as_deref(),
        Some("finish"),
        "the later callback was applied"
    );
}

/// A callback whose text holds U+0000 or a lone surrogate (a bank's error text) is stored
/// and applied with the client's text rule (U+FFFD), not refused or failed for good.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn callbacks_with_unstorable_text_are_repaired(pool: PgPool) {
    let s = stack(pool.clone()).await;
    let conn = linked(&s, "fake_client_xf").await;
    let (se_conn, customer) = saltedge_ids(&pool, &conn).await;
    let body = format!(
        r#"{{"data":{{"connection_id":"{se_conn}","customer_id":"{customer}","error_class":"InvalidCredentials","error_message":"bad\u0000 login \ud800 here"}},"meta":{{"version":"5","time":"{}"}}}}"#,
        banksync_testkit::clock::now().to_rfc3339()
    );
    let (st, p) = s
        .post_callback("fail", &body, Some(signed(&s, "fail", &body)))
        .await;
    assert_eq!(st, 200, "{p}");
    let message: String = eventually("the fail callback applied", || async {
        sqlx::query_scalar::<_, Option<String>>(
            "SELECT last_error_message FROM connections WHERE id = $1::uuid",
        )
        .bind(&conn)
        .fetch_one(&pool)
        .await
        .unwrap()
        .filter(|m| m.contains("login"))
    })
    .await;
    assert_eq!(message, "bad\u{fffd} login \u{fffd} here");
    let errors: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM callback_inbox WHERE kind = 'fail' AND error IS NOT NULL AND error NOT LIKE '%ignored%'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(errors, 0);
}

/// A connection's Salt Edge id and its customer's, for callbacks about it.
async fn saltedge_ids(pool: &PgPool, conn: &str) -> (String, String) {
    sqlx::query_as(
        "SELECT c.saltedge_id, u.saltedge_id FROM connections c JOIN saltedge_customers u ON u.company_id = c.company_id
         WHERE c.id = $1::uuid",
    )
    .bind(conn)
    .fetch_one(pool)
    .await
    .unwrap()
}
