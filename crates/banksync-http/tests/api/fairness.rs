//! Fair to every tenant: shared budgets answer 429 with `Retry-After` instead of making
//! everyone wait behind one company.

use super::support::*;

/// A company over its quota of connect sessions is told when to come back (429,
/// `Retry-After`, code `busy`) and nothing reaches Salt Edge; another company links as
/// usual.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn connect_sessions_over_a_companys_quota_answer_429(pool: PgPool) {
    let s = stack(pool.clone()).await;
    let base = server_with(
        &s,
        HttpConfig {
            return_to_origins: vec!["https://books.example".into()],
            connect_sessions_per_minute: 2,
            connect_session_burst: 2,
            ..Default::default()
        },
    )
    .await;
    let link = |token: String, email: &'static str| {
        let (http, base) = (s.http.clone(), base.clone());
        async move {
            let mut body = link_body("fakebank_simple_xf");
            body["allow_second_connection"] = json!(true);
            body["email"] = json!(email);
            http.post(format!("{base}/api/v1/connections"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    for _ in 0..2 {
        assert_eq!(
            link(s.token.clone(), "books@acme.example").await.status(),
            201
        );
    }
    let sessions = || {
        s.sim
            .requests()
            .iter()
            .filter(|r| r.path.contains("connect_sessions"))
            .count()
    };
    let before = sessions();
    let r = link(s.token.clone(), "books@acme.example").await;
    assert_eq!(r.status(), 429);
    let after: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&after), "Retry-After: {after}");
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["code"], "busy", "{p}");
    assert_eq!(sessions(), before, "nothing was asked of Salt Edge");

    let other = companies::create(&pool, "Quiet Books").await.unwrap();
    let (_, token) = tokens::create(&pool, other.id, "quiet").await.unwrap();
    assert_eq!(
        link(token, "books@quiet.example").await.status(),
        201,
        "another company's quota is its own"
    );
}

/// Problem details about Salt Edge failures never carry the URL we called nor an upstream
/// page's body: a stand-in answering with a proxy's HTML page, and one nothing listens on.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn upstream_failures_do_not_leak_urls_or_bodies(pool: PgPool) {
    let s = stack(pool.clone()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = listener.local_addr().unwrap();
    let page = axum::Router::new().fallback(|| async {
        (
            axum::http::StatusCode::BAD_GATEWAY,
            "<html>upstream-internal-7f3a token=s3cr3t</html>",
        )
    });
    tokio::spawn(async move { axum::serve(listener, page).await.unwrap() });
    for base in [
        format!("http://{proxy}/api/v5/"),
        "http://127.0.0.1:9/api/v5/".to_string(),
    ] {
        let mut cfg = saltedge_client::ClientConfig::new(base.parse().unwrap(), "app", "secret");
        cfg.max_retries = 0;
        let built = Application::build(
            pool.clone(),
            Client::new(cfg).unwrap(),
            Verifier::from_pem(keys::SIMULATOR_PUBLIC_PEM).unwrap(),
            banksync_http::callbacks::urls::CallbackUrls::under(
                &url::Url::parse(&s.callback_base).unwrap(),
            ),
            &HttpConfig {
                return_to_origins: vec!["https://books.example".into()],
                ..Default::default()
            },
            None,
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, built.router).await.unwrap() });
        let r = s
            .http
            .post(format!("http://{addr}/api/v1/connections"))
            .bearer_auth(&s.token)
            .json(&link_body("fakebank_simple_xf"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 502, "{base}");
        let text = r.text().await.unwrap();
        for leak in [
            "upstream-internal",
            "s3cr3t",
            "127.0.0.1",
            "http://",
            "/api/v5",
        ] {
            assert!(!text.contains(leak), "{leak} in {text}");
        }
    }
}
