//! Tokens, scoping, the return_to allow-list, rate limits and the audit log.

use super::support::*;

#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn auth_scoping_and_bad_input(pool: PgPool) {
    let s = stack(pool.clone()).await;
    let (_, link) = s
        .call(
            Method::POST,
            "/api/v1/connections",
            Some(link_body("fake_client_xf")),
        )
        .await;
    s.complete_connect(link["connect_url"].as_str().unwrap(), true)
        .await;
    let conn_id = first_connection(&s).await;

    // No token, a wrong token.
    let r = s
        .http
        .get(format!("{}/api/v1/connections", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let (st, p) = s
        .call_as("bs_nope", Method::GET, "/api/v1/connections", None)
        .await;
    assert_eq!(
        (st.as_u16(), p["code"].as_str()),
        (401, Some("unauthorized"))
    );

    // Another company sees nothing of ours.
    let other = companies::create(&pool, "Other Ltd").await.unwrap();
    let (_, other_token) = tokens::create(&pool, other.id, "t").await.unwrap();
    for (m, path) in [
        (Method::GET, format!("/api/v1/connections/{conn_id}")),
        (Method::POST, format!("/api/v1/connections/{conn_id}/sync")),
        (Method::DELETE, format!("/api/v1/connections/{conn_id}")),
        (
            Method::GET,
            format!("/api/v1/connections/{conn_id}/sync-runs"),
        ),
    ] {
        let (st, p) = s.call_as(&other_token, m, &path, None).await;
        assert_eq!(
            (st.as_u16(), p["code"].as_str()),
            (404, Some("not_found")),
            "{path}"
        );
    }
    let (_, lines) = s
        .call_as(&other_token, Method::GET, "/api/v1/statement-lines", None)
        .await;
    assert!(lines["items"].as_array().unwrap().is_empty());
    let (st, _) = s
        .call(Method::GET, &format!("/api/v1/connections/{conn_id}"), None)
        .await;
    assert_eq!(st, 200, "still there for its owner");

    // Job history is for operator tokens; a company token never sees it, and an operator
    // token never reads a company's data.
    let (st, p) = s.call(Method::GET, "/api/v1/admin/jobs", None).await;
    assert_eq!((st.as_u16(), p["code"].as_str()), (403, Some("forbidden")));
    let (_, operator) = tokens::insert(&pool, None, "ops", None).await.unwrap();
    let (st, jobs) = s
        .call_as(&operator, Method::GET, "/api/v1/admin/jobs?limit=500", None)
        .await;
    assert_eq!(st, 200);
    let kinds: Vec<&str> = jobs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"process_callback") && kinds.contains(&"sync_connection"),
        "{kinds:?}"
    );
    for path in [
        "/api/v1/connections",
        "/api/v1/statement-lines",
        "/api/v1/journals",
    ] {
        let (st, p) = s.call_as(&operator, Method::GET, path, None).await;
        assert_eq!(
            (st.as_u16(), p["code"].as_str()),
            (403, Some("company_token_required")),
            "{path}"
        );
    }

    // Bad input: problem JSON, nothing sent to Salt Edge, nothing changed.
    wait_sync(&s, &conn_id, 0).await;
    let link_calls = || {
        s.sim
            .requests()
            .iter()
            .filter(|r| r.path.contains("customers") || r.path.contains("connect_sessions"))
            .count()
    };
    let before = link_calls();
    let r = s
        .http
        .post(format!("{}/api/v1/connections", s.base))
        .bearer_auth(&s.token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["code"], "malformed_json");
    let big = json!({ "provider_code": "x".repeat(100 * 1024), "phone": "1", "email": "a@b.c", "return_to": "https://x" });
    let (st, p) = s.call(Method::POST, "/api/v1/connections", Some(big)).await;
    assert_eq!(
        (st.as_u16(), p["code"].as_str()),
        (413, Some("payload_too_large"))
    );
    let mut bad_email = link_body("demobank_de");
    bad_email["email"] = json!("not-an-email");
    let (st, p) = s
        .call(Method::POST, "/api/v1/connections", Some(bad_email))
        .await;
    assert_eq!(
        (st.as_u16(), p["code"].as_str()),
        (422, Some("invalid_email"))
    );
    let mut bad_phone = link_body("demobank_de");
    bad_phone["phone"] = json!("call me");
    let (st, p) = s
        .call(Method::POST, "/api/v1/connections", Some(bad_phone))
        .await;
    assert_eq!(
        (st.as_u16(), p["code"].as_str()),
        (422, Some("invalid_phone"))
    );
    let (st, p) = s
        .call(
            Method::POST,
            "/api/v1/connections",
            Some(link_body("no_such_bank")),
        )
        .await;
    assert_eq!(
        (st.as_u16(), p["code"].as_str()),
        (404, Some("not_found")),
        "an institution that does not exist"
    );
    let (st, p) = s
        .call(
            Method::POST,
            "/api/v1/connections",
            Some(json!({ "provider_code": 5 })),
        )
        .await;
    assert_eq!(
        (st.as_u16(), p["code"].as_str()),
        (422, Some("invalid_body"))
    );
    let (st, _) = s
        .call(Method::GET, "/api/v1/connections/not-a-uuid", None)
        .await;
    assert_eq!(st, 404);
    let (st, p) = s
        .call(Method::GET, "/api/v1/statement-lines?cursor=zzz", None)
        .await;
    assert_eq!(
        (st.as_u16(), p["code"].as_str()),
        (422, Some("invalid_cursor"))
    );
    assert_eq!(link_calls(), before, "no request reached Salt Edge");

    // Mapping to a journal of another currency is refused.
    let (_, conn) = s
        .call(Method::GET, &format!("/api/v1/connections/{conn_id}"), None)
        .await;
    let a0 = &conn["accounts"][0];
    let a1 = &conn["accounts"][1];
    assert_ne!(a0["currency"], a1["currency"]);
    let (st, p) = s
        .call(
            Method::PUT,
            &format!(
                "/api/v1/bank-accounts/{}/journal",
                a0["id"].as_str().unwrap()
            ),
            Some(json!({ "journal_id": a1["journal_id"] })),
        )
        .await;
    assert_eq!(
        (st.as_u16(), p["code"].as_str()),
        (409, Some("currency_mismatch"))
    );
}

/// `return_to` must match an allowed origin (service-wide or the company's own); anything
/// else is refused before Salt Edge hears of it.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn return_to_outside_the_allow_list_is_refused(pool: PgPool) {
    let s = stack(pool.clone()).await;
    let before = s.sim.requests().len();
    for bad in [
        "https://evil.example/steal",
        "https://books.example.evil.example/",
        "http://books.example/",
        "https://books.example:8443/",
    ] {
        let mut body = link_body("fake_client_xf");
        body["return_to"] = json!(bad);
        let (st, e) = s
            .call(Method::POST, "/api/v1/connections", Some(body))
            .await;
        assert_eq!(
            (st.as_u16(), e["code"].as_str()),
            (403, Some("return_to_not_allowed")),
            "{bad}: {e}"
        );
    }
    assert_eq!(
        s.sim.requests().len(),
        before,
        "nothing was sent to Salt Edge"
    );
    // The company's own origin.
    let company: Uuid = sqlx::query_scalar("SELECT id FROM companies WHERE name = 'ACME Books'")
        .fetch_one(&pool)
        .await
        .unwrap();
    sync_engine::companies::allow_origin(&pool, company, "https://app.acme.example")
        .await
        .unwrap();
    let mut body = link_body("fake_client_xf");
    body["return_to"] = json!("https://app.acme.example/bank/done?x=1");
    let (st, e) = s
        .call(Method::POST, "/api/v1/connections", Some(body))
        .await;
    assert_eq!(st, 201, "{e}");
    // Another company's origin is not this one's.
    let other = companies::create(&pool, "Other").await.unwrap();
    sync_engine::companies::allow_origin(&pool, other.id, "https://other.example")
        .await
        .unwrap();
    let mut body = link_body("fakebank_simple_xf");
    body["return_to"] = json!("https://other.example/");
    let (st, _) = s
        .call(Method::POST, "/api/v1/connections", Some(body))
        .await;
    assert_eq!(st, 403);
}

/// Tokens expire and are revoked (401 with `WWW-Authenticate`); a per-token rate limit
/// answers 429 with `Retry-After`; every state-changing call is in the audit log, listed
/// for operators only.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn tokens_expire_revoke_rate_limit_and_calls_are_audited(pool: PgPool) {
    let s = stack(pool.clone()).await;
    let company: Uuid = sqlx::query_scalar("SELECT id FROM companies WHERE name = 'ACME Books'")
        .fetch_one(&pool)
        .await
        .unwrap();
    let (_, expiring) = tokens::insert(
        &pool,
        Some(company),
        "short",
        Some(chrono::Duration::days(1)),
    )
    .await
    .unwrap();
    let (st, _) = s
        .call_as(&expiring, Method::GET, "/api/v1/journals", None)
        .await;
    assert_eq!(st, 200);
    sqlx::query(
        "UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE name = 'short'",
    )
    .execute(&pool)
    .await
    .unwrap();
    let r = s
        .http
        .get(format!("{}/api/v1/journals", s.base))
        .bearer_auth(&expiring)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "expired");
    assert_eq!(r.headers()["www-authenticate"], "Bearer");

    let (id, revoked) = tokens::insert(&pool, Some(company), "to revoke", None)
        .await
        .unwrap();
    let (_, operator) = tokens::insert(&pool, None, "ops", None).await.unwrap();
    let (st, list) = s
        .call_as(&operator, Method::GET, "/api/v1/admin/tokens", None)
        .await;
    assert_eq!(st, 200);
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t.get("token_hash").is_none() && t.get("token").is_none()));
    let (st, _) = s
        .call_as(
            &operator,
            Method::DELETE,
            &format!("/api/v1/admin/tokens/{id}"),
            None,
        )
        .await;
    assert_eq!(st, 204);
    let (st, _) = s
        .call_as(&revoked, Method::GET, "/api/v1/journals", None)
        .await;
    assert_eq!(st, 401, "revoked");
    let (st, _) = s
        .call(Method::DELETE, &format!("/api/v1/admin/tokens/{id}"), None)
        .await;
    assert_eq!(st, 403, "a company token cannot manage tokens");

    // Audit: the state-changing calls above, with their token and result; reads are not.
    let mut body = link_body("fake_client_xf");
    body["return_to"] = json!("https://evil.example/");
    s.call(Method::POST, "/api/v1/connections", Some(body))
        .await;
    let (st, log) = s
        .call_as(&operator, Method::GET, "/api/v1/admin/audit", None)
        .await;
    assert_eq!(st, 200);
    // A page at a time, newest first: a cursor goes on where the page ended.
    let (_, first) = s
        .call_as(&operator, Method::GET, "/api/v1/admin/audit?limit=1", None)
        .await;
    let cursor = first["next_cursor"].as_str().unwrap();
    let (st, second) = s
        .call_as(
            &operator,
            Method::GET,
            &format!("/api/v1/admin/audit?limit=1&cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(st, 200, "{second}");
    assert!(
        second["items"][0]["id"].as_i64().unwrap() < first["items"][0]["id"].as_i64().unwrap(),
        "{first} {second}"
    );
    let (st, p) = s
        .call_as(
            &operator,
            Method::GET,
            &format!("/api/v1/admin/jobs?limit=1&cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(
        (st.as_u16(), p["code"].as_str()),
        (422, Some("invalid_cursor")),
        "another list's cursor"
    );
    let log = log["items"].as_array().unwrap();
    assert!(
        log.iter().any(|r| r["action"] == "POST /api/v1/connections"
            && r["status"] == 403
            && r["company_id"] == json!(company)),
        "{log:?}"
    );
    assert!(log.iter().any(
        |r| r["action"] == format!("DELETE /api/v1/admin/tokens/{id}")
            && r["status"] == 204
            && r["actor"].as_str().unwrap().starts_with("operator:")
    ));
    assert!(!log
        .iter()
        .any(|r| r["action"].as_str().unwrap().starts_with("GET")));
    let (st, _) = s.call(Method::GET, "/api/v1/admin/audit", None).await;
    assert_eq!(st, 403);

    // The per-token rate limit (this replica's count).
    let app = Application::build(
        pool.clone(),
        Client::new(saltedge_client::ClientConfig::new(
            s.sim.api_base(),
            "a",
            "b",
        ))
        .unwrap(),
        Verifier::from_pem(keys::SIMULATOR_PUBLIC_PEM).unwrap(),
        banksync_http::callbacks::urls::CallbackUrls::under(
            &url::Url::parse("http://127.0.0.1/callbacks/saltedge/").unwrap(),
        ),
        &HttpConfig {
            rate_limit_per_minute: 5,
            ..Default::default()
        },
        None,
    )
    .router;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mut statuses = vec![];
    for _ in 0..7 {
        let r = s
            .http
            .get(format!("http://{addr}/api/v1/journals"))
            .bearer_auth(&s.token)
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            let after: u64 = r.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=60).contains(&after));
            let p: Value = r.json().await.unwrap();
            assert_eq!(p["code"], "rate_limited");
        }
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429]);
    let r = s
        .http
        .get(format!("http://{addr}/api/v1/journals"))
        .bearer_auth(&operator)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        403,
        "another token has its own budget (and operators read no company data)"
    );
}

/// The audit log's entries for `action`, oldest first: (actor, token, company, detail).
async fn audited(
    pool: &PgPool,
    action: &str,
) -> Vec<(String, Option<Uuid>, Option<Uuid>, Option<String>)> {
    sqlx::query_as(
        "SELECT actor, token_id, company_id, detail FROM audit_log WHERE action = $1 ORDER BY id",
    )
    .bind(action)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// A refused token is in the audit log with the caller's address (never the token); an
/// address over its failures is refused before any lookup, even with a valid token, until
/// its minute ends (429, `Retry-After`), while another address is served.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn failed_authentications_are_recorded_and_limited_per_address(pool: PgPool) {
    let s = stack(pool.clone()).await;
    let base = server_with(
        &s,
        HttpConfig {
            auth_failures_per_minute: 3,
            ..Default::default()
        },
    )
    .await;
    let from = |ip: [u8; 4]| {
        reqwest::Client::builder()
            .local_address(std::net::IpAddr::from(ip))
            .build()
            .unwrap()
    };
    let (a, b) = (from([127, 0, 0, 1]), from([127, 0, 0, 2]));
    let journals = format!("{base}/api/v1/journals");
    for guess in ["guess-1", "guess-2", "guess-3"] {
        let r = a.get(&journals).bearer_auth(guess).send().await.unwrap();
        assert_eq!(r.status(), 401);
    }
    let refused = audited(&pool, "authentication refused").await;
    assert_eq!(refused.len(), 3, "{refused:?}");
    for (actor, token, company, detail) in &refused {
        assert_eq!(actor, "anonymous");
        assert_eq!((*token, *company), (None, None));
        let detail = detail.as_deref().unwrap();
        assert_eq!(detail, "GET /api/v1/journals; client 127.0.0.1");
        assert!(
            !detail.contains("guess"),
            "the credential is never recorded"
        );
    }

    // Over the limit: even the valid token waits, and nothing more is looked up or logged.
    let r = a.get(&journals).bearer_auth(&s.token).send().await.unwrap();
    assert_eq!(r.status(), 429);
    let after: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&after));
    let r = a
        .get(&journals)
        .bearer_auth("guess-4")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(audited(&pool, "authentication refused").await.len(), 3);

    // Another address is served.
    let r = b.get(&journals).bearer_auth(&s.token).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

/// Posts the console's login form with `token`.
async fn console_sign_in(http: &reqwest::Client, base: &str, token: &str) -> reqwest::Response {
    let html = http
        .get(format!("{base}/console/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let re = regex::Regex::new(r#"name="csrf" value="([^"]*)""#).unwrap();
    let csrf = re.captures(&html).unwrap()[1].to_string();
    http.post(format!("{base}/console/login"))
        .form(&[("token", token), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap()
}

/// A console sign-in is attributed to its token and address, a refused one is recorded
/// with the address, and an address that keeps failing is stopped.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn console_sign_ins_are_attributed_and_limited(pool: PgPool) {
    let s = stack(pool.clone()).await;
    let base = server_with(
        &s,
        HttpConfig {
            auth_failures_per_minute: 2,
            ..Default::default()
        },
    )
    .await;
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = console_sign_in(&http, &base, &s.token).await;
    assert_eq!(r.status(), 303);
    let company: Uuid = sqlx::query_scalar("SELECT id FROM companies")
        .fetch_one(&pool)
        .await
        .unwrap();
    let ok = audited(&pool, "POST /console/login").await;
    assert_eq!(ok.len(), 1, "{ok:?}");
    let (actor, token, who, detail) = &ok[0];
    assert!(actor.starts_with("token:"), "{actor}");
    assert!(token.is_some());
    assert_eq!(*who, Some(company));
    assert_eq!(detail.as_deref(), Some("console sign-in; client 127.0.0.1"));

    for _ in 0..2 {
        let r = console_sign_in(&http, &base, "not-a-token").await;
        assert_eq!(r.status(), 303, "back to the form with an error");
    }
    let refused = audited(&pool, "authentication refused").await;
    assert_eq!(refused.len(), 2);
    assert_eq!(
        refused[0].3.as_deref(),
        Some("console sign-in; client 127.0.0.1")
    );
    assert_eq!(
        audited(&pool, "POST /console/login").await.len(),
        1,
        "a refused sign-in is recorded once, where it was refused"
    );
    // Over the limit: the next try, right token or not, is told to wait.
    let r = console_sign_in(&http, &base, &s.token).await;
    assert_eq!(r.status(), 429);
}
