//! The REST API's contract: bad input refused clearly, limits, cursors, the OpenAPI document.
//!
//! Long because each part of the contract is checked by its own test.

use super::support::*;

#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn arbitrary_payloads_are_refused_with_problem_json_and_change_nothing(pool: PgPool) {
    let s = stack(pool.clone()).await;
    let counts = || async {
        sqlx::query_as::<_, (i64, i64, i64, i64)>(
            "SELECT (SELECT count(*) FROM connections), (SELECT count(*) FROM saltedge_customers),
                    (SELECT count(*) FROM journals), (SELECT count(*) FROM statement_lines)",
        )
        .fetch_one(&s.pool)
        .await
        .unwrap()
    };
    let before = counts().await;
    let endpoints = [
        "/api/v1/connections",
        "/api/v1/connections/00000000-0000-0000-0000-000000000000/update-credentials",
        "/api/v1/connections/00000000-0000-0000-0000-000000000000/fetch-accounts",
    ];
    for (i, body) in samples(any_json(), 150)
        .into_iter()
        .chain(samples(link_like(), 150))
        .enumerate()
    {
        let path = endpoints[i % endpoints.len()];
        // `call` asserts that every 4xx/5xx is problem JSON.
        let (st, p) = s.call(Method::POST, path, Some(body.clone())).await;
        assert!(st.is_client_error(), "{path} {body} → {st} {p}");
        assert!(p["code"].is_string(), "{p}");
    }
    // Raw bytes that are not JSON at all.
    for junk in samples(
        proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
        50,
    ) {
        let r = s
            .http
            .post(format!("{}/api/v1/connections", s.base))
            .bearer_auth(&s.token)
            .header("content-type", "application/json")
            .body(junk)
            .send()
            .await
            .unwrap();
        // Mostly not JSON (400); the odd byte string that is JSON has the wrong shape (422).
        assert!(r.status() == 400 || r.status() == 422, "{}", r.status());
        assert_eq!(r.headers()["content-type"], "application/problem+json");
    }
    assert_eq!(counts().await, before, "nothing changed");
    let link_calls = s
        .sim
        .requests()
        .iter()
        .filter(|r| r.path.contains("customers") || r.path.contains("connect_sessions"))
        .count();
    assert_eq!(link_calls, 0, "nothing reached Salt Edge");

    // Callbacks: arbitrary bodies, unsigned → 401; correctly signed → 200 or 400, never 5xx.
    for body in samples(any_json(), 100) {
        let text = body.to_string();
        let (st, _) = s.post_callback("notify", &text, None).await;
        assert_eq!(st, 401);
        let (st, p) = s
            .post_callback("notify", &text, Some(signed(&s, "notify", &text)))
            .await;
        assert!(st == 400 || st == 401 || st == 200, "{text} → {st} {p}");
    }
    // The server is still healthy.
    assert_eq!(
        s.http
            .get(format!("{}/readyz", s.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

/// Text Postgres cannot store (U+0000) in a query or a body is the caller's 422, not our
/// 500; `%` and `_` in an institution search are letters, not wildcards.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn nul_bytes_are_refused_and_search_has_no_wildcards(pool: PgPool) {
    let s = stack(pool).await;
    let (st, p) = s
        .call(Method::GET, "/api/v1/institutions?q=%00", None)
        .await;
    assert_eq!(
        (st.as_u16(), p["code"].as_str()),
        (422, Some("invalid_text")),
        "{p}"
    );
    assert!(p["detail"].as_str().unwrap().contains("U+0000"));
    let mut body = link_body("fake_client_xf\u{0}");
    body["return_to"] = json!("https://books.example/back");
    let (st, p) = s
        .call(Method::POST, "/api/v1/connections", Some(body))
        .await;
    assert_eq!(
        (st.as_u16(), p["code"].as_str()),
        (422, Some("invalid_text")),
        "{p}"
    );
    let (_, all) = s
        .call(Method::GET, "/api/v1/institutions?include_fake=true", None)
        .await;
    assert!(!all.as_array().unwrap().is_empty());
    for q in ["%25", "%25%25", "fake%25", "fake_c%25", "fakeXclient"] {
        let (st, found) = s
            .call(
                Method::GET,
                &format!("/api/v1/institutions?include_fake=true&q={q}"),
                None,
            )
            .await;
        assert_eq!(st, 200);
        assert!(found.as_array().unwrap().is_empty(), "{q} matched {found}");
    }
    let (_, found) = s
        .call(
            Method::GET,
            "/api/v1/institutions?include_fake=true&q=fake_client",
            None,
        )
        .await;
    assert!(
        found
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["code"] == "fake_client_xf"),
        "an underscore matches itself"
    );
}

/// The contract's edges: 415 for another content type, a JSON array where an object is
/// expected is refused, details name the field without echoing input or the parser's
/// words, one rule for limits, and 405 / 414 / the callback receiver's 413 are problem JSON.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn requests_outside_the_contract_are_refused_clearly(pool: PgPool) {
    let s = stack(pool.clone()).await;
    let (_, operator) = tokens::insert(&pool, None, "ops", None).await.unwrap();
    let conn = linked(&s, "fake_client_xf").await;
    let (_, c) = s
        .call(Method::GET, &format!("/api/v1/connections/{conn}"), None)
        .await;
    let account = c["accounts"][0]["id"].as_str().unwrap().to_string();
    let raw = |method: Method, path: String, ct: Option<&str>, body: String| {
        let mut r = s
            .http
            .request(method, format!("{}{path}", s.base))
            .bearer_auth(&s.token)
            .body(body);
        if let Some(ct) = ct {
            r = r.header("content-type", ct);
        }
        async move {
            let resp = r.send().await.unwrap();
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            assert_eq!(
                headers["content-type"], "application/problem+json",
                "{status}"
            );
            (status, headers, resp.json::<Value>().await.unwrap())
        }
    };
    let link = link_body("fake_client_xf").to_string();

    // 415: the body is JSON, the content type says otherwise (or nothing).
    for ct in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let (st, _, p) = raw(Method::POST, "/api/v1/connections".into(), ct, link.clone()).await;
        assert_eq!(
            (st, p["code"].as_str()),
            (415, Some("unsupported_media_type")),
            "{ct:?}"
        );
    }
    let (st, _, _) = raw(
        Method::POST,
        "/api/v1/connections".into(),
        Some("application/json; charset=utf-8"),
        "{".into(),
    )
    .await;
    assert_eq!(st, 400, "a JSON type with parameters is JSON");

    // Arrays (which serde would take field by field) are not objects.
    let back = r#"["https://books.example/back"]"#.to_string();
    for (method, path, body) in [
        (Method::POST, "/api/v1/connections".to_string(), r#"["fake_client_xf", "+49 30 1234567", "a@b.example", "https://books.example/", false]"#.to_string()),
        (Method::POST, format!("/api/v1/connections/{conn}/fetch-accounts"), back.clone()),
        (Method::POST, format!("/api/v1/connections/{conn}/update-credentials"), back),
        (Method::PUT, format!("/api/v1/bank-accounts/{account}/journal"), format!(r#"["{}"]"#, c["accounts"][0]["journal_id"].as_str().unwrap())),
        (Method::POST, format!("/api/v1/connections/{conn}/interactive"), r#"[{"sms": "1"}]"#.to_string()),
    ] {
        let (st, _, p) = raw(method, path.clone(), Some("application/json"), body).await;
        assert_eq!((st, p["code"].as_str(), p["detail"].as_str()), (422, Some("invalid_body"), Some("the body must be a JSON object")), "{path}");
    }

    // Details in our words: the field's name, never the value or serde's message.
    let mut wrong = link_body("fake_client_xf");
    wrong["phone"] = json!(["SECRET-VALUE-1"]);
    let (st, _, p) = raw(
        Method::POST,
        "/api/v1/connections".into(),
        Some("application/json"),
        wrong.to_string(),
    )
    .await;
    assert_eq!(
        (st, p["detail"].as_str()),
        (422, Some("`phone` has the wrong type; see the schema"))
    );
    let (st, _, p) = raw(
        Method::POST,
        "/api/v1/connections".into(),
        Some("application/json"),
        r#"{"provider_code": "x"}"#.into(),
    )
    .await;
    assert_eq!(
        (st, p["detail"].as_str()),
        (422, Some("`phone` is required"))
    );
    let mut extra = link_body("fake_client_xf");
    extra["SECRET-VALUE-2"] = json!(1);
    let (st, _, p) = raw(
        Method::POST,
        "/api/v1/connections".into(),
        Some("application/json"),
        extra.to_string(),
    )
    .await;
    assert_eq!(st, 422);
    assert!(!p["detail"].as_str().unwrap().contains("expected"), "{p}");
    let (st, _, p) = raw(
        Method::POST,
        "/api/v1/connections".into(),
        Some("application/json"),
        r#"{"provider_code": "SECRET-VALUE-3"#.into(),
    )
    .await;
    assert_eq!((st, p["code"].as_str()), (400, Some("malformed_json")));
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .starts_with("the body is not valid JSON (line 1, column"),
        "{p}"
    );
    let (st, _, p) = raw(
        Method::GET,
        "/api/v1/statement-lines?from=SECRET-VALUE-4".into(),
        None,
        String::new(),
    )
    .await;
    assert_eq!((st, p["code"].as_str()), (422, Some("invalid_query")));
    assert!(p["detail"].as_str().unwrap().contains("`from`"), "{p}");
    {
        let p = &p;
        assert!(!p.to_string().contains("SECRET-VALUE"), "{p}");
    }

    // One rule for limits: 1 to 1000, else 422 invalid_limit, on every list.
    let lists = [
        ("/api/v1/institutions?".to_string(), &s.token),
        ("/api/v1/statement-lines?".to_string(), &s.token),
        (format!("/api/v1/connections/{conn}/sync-runs?"), &s.token),
        ("/api/v1/admin/jobs?".to_string(), &operator),
        ("/api/v1/admin/audit?".to_string(), &operator),
    ];
    for (path, token) in lists {
        for (limit, want) in [
            ("0", 422),
            ("1001", 422),
            ("-5", 422),
            ("1", 200),
            ("1000", 200),
        ] {
            let (st, p) = s
                .call_as(token, Method::GET, &format!("{path}limit={limit}"), None)
                .await;
            assert_eq!(st.as_u16(), want, "{path}limit={limit}: {p}");
            if want == 422 {
                assert_eq!(p["code"], "invalid_limit", "{path}");
            }
        }
        let (st, p) = s
            .call_as(token, Method::GET, &format!("{path}limit=ten"), None)
            .await;
        assert_eq!(
            (st.as_u16(), p["code"].as_str()),
            (422, Some("invalid_query")),
            "{path}"
        );
    }

    // 405 with Allow, 414, and the callback receiver's 413: problem JSON like the rest.
    let (st, h, p) = raw(
        Method::DELETE,
        "/api/v1/journals".into(),
        None,
        String::new(),
    )
    .await;
    assert_eq!((st, p["code"].as_str()), (405, Some("method_not_allowed")));
    assert!(h.contains_key("allow"), "{h:?}");
    let long = "a".repeat(9000);
    let (st, _, p) = raw(
        Method::GET,
        format!("/api/v1/institutions?q={long}"),
        None,
        String::new(),
    )
    .await;
    assert_eq!((st, p["code"].as_str()), (414, Some("uri_too_long")));
    let r = s
        .http
        .post(s.callback_url("notify"))
        .header("content-type", "application/json")
        .body("x".repeat(70 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    assert_eq!(
        r.json::<Value>().await.unwrap()["code"],
        "payload_too_large"
    );
}

/// Cursors are made only by this service, for one company, list and set of filters; sync
/// runs are paged like statement lines.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn cursors_are_signed_and_sync_runs_are_paged(pool: PgPool) {
    let s = stack(pool.clone()).await;
    let conn = linked(&s, "fake_client_xf").await;
    let conn_uuid = Uuid::parse_str(&conn).unwrap();
    sqlx::query(
        "INSERT INTO sync_runs (company_id, connection_id, trigger, status, started_at, finished_at)
         SELECT company_id, id, 'api', 'succeeded', now() - n * interval '1 hour', now() - n * interval '1 hour'
         FROM connections, generate_series(1, 6) n WHERE id = $1",
    )
    .bind(conn_uuid)
    .execute(&pool)
    .await
    .unwrap();
    let stored: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM sync_runs WHERE connection_id = $1 ORDER BY started_at DESC, id DESC",
    )
    .bind(conn_uuid)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(stored.len() >= 7);
    let mut seen = vec![];
    let mut cursor: Option<String> = None;
    let mut first_cursor = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("/api/v1/connections/{conn}/sync-runs?limit=2&cursor={c}"),
            None => format!("/api/v1/connections/{conn}/sync-runs?limit=2"),
        };
        let (st, page) = s.call(Method::GET, &q, None).await;
        assert_eq!(st, 200, "{page}");
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(
            items
                .iter()
                .map(|r| Uuid::parse_str(r["id"].as_str().unwrap()).unwrap()),
        );
        assert!(
            items.iter().all(|r| r["balance_mismatches"].is_array()),
            "{page}"
        );
        match page["next_cursor"].as_str() {
            Some(c) => {
                first_cursor.get_or_insert(c.to_string());
                cursor = Some(c.to_string());
            }
            None => break,
        }
    }
    assert_eq!(seen, stored, "every run once, newest first");

    // Forged, borrowed or re-scoped cursors are refused.
    let good = first_cursor.unwrap();
    let (pos, tag) = good.split_once('.').unwrap();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let forged_pos = b64.encode(format!("2000-01-01T00:00:00.000000Z|{}", Uuid::nil()));
    let (_, lines) = s
        .call(Method::GET, "/api/v1/statement-lines?limit=1", None)
        .await;
    let line_cursor = lines["next_cursor"].as_str().unwrap().to_string();
    let other = companies::create(&pool, "Other Books").await.unwrap();
    let (_, other_token) = tokens::create(&pool, other.id, "other").await.unwrap();
    let refused = [
        (
            s.token.clone(),
            format!("/api/v1/connections/{conn}/sync-runs?cursor={forged_pos}.{tag}"),
        ),
        (
            s.token.clone(),
            format!(
                "/api/v1/connections/{conn}/sync-runs?cursor={pos}.{}",
                "A".repeat(43)
            ),
        ),
        (
            s.token.clone(),
            format!("/api/v1/connections/{conn}/sync-runs?cursor={pos}"),
        ),
        (
            s.token.clone(),
            format!("/api/v1/statement-lines?cursor={good}"),
        ),
        (
            s.token.clone(),
            format!("/api/v1/statement-lines?from=2000-01-01&cursor={line_cursor}"),
        ),
        (
            s.token.clone(),
            format!("/api/v1/connections/{conn}/sync-runs?cursor={line_cursor}"),
        ),
        (
            other_token,
            format!("/api/v1/statement-lines?cursor={line_cursor}"),
        ),
    ];
    for (token, path) in refused {
        let (st, p) = s.call_as(&token, Method::GET, &path, None).await;
        assert_eq!(
            (st.as_u16(), p["code"].as_str()),
            (422, Some("invalid_cursor")),
            "{path}: {p}"
        );
    }
    let (st, _) = s
        .call(
            Method::GET,
            &format!("/api/v1/statement-lines?cursor={line_cursor}"),
            None,
        )
        .await;
    assert_eq!(st, 200, "the same cursor with its own filters");
}

/// The served document is valid in the ways the validators check and complete in the ways
/// a generated client needs; its patterns are exactly what the server enforces.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn the_openapi_document_describes_the_server(pool: PgPool) {
    let s = stack(pool).await;
    let doc = s.openapi().await;
    assert!(!doc["servers"].as_array().unwrap().is_empty());
    assert_eq!(
        doc["components"]["securitySchemes"]["token"]["scheme"],
        "bearer"
    );
    let mut ids = std::collections::HashSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            assert!(ids.insert(id.to_string()), "operationId {id} used twice");
            // A generated SDK's method names: verb + resource, never a bare word.
            let verb = id.split('_').next().unwrap_or_default();
            assert!(
                id.contains('_')
                    && [
                        "list",
                        "show",
                        "create",
                        "update",
                        "delete",
                        "link",
                        "unlink",
                        "confirm",
                        "reject",
                        "dismiss",
                        "undo",
                        "keep",
                        "merge",
                        "rotate",
                        "redeliver",
                        "rerun",
                        "revoke",
                        "map",
                        "answer",
                        "fetch",
                        "sync",
                        "export",
                        "set",
                        "check",
                        "receive",
                        "openapi",
                    ]
                    .contains(&verb),
                "{method} {path}: operationId {id} is not verb_resource"
            );
            let secured = op.get("security").is_some();
            let public = !path.starts_with("/api/v1/") || path == "/api/v1/openapi.json";
            assert_eq!(secured, !public, "{method} {path}: security");
            let responses = op["responses"].as_object().unwrap();
            if secured {
                for st in ["401", "403", "429"] {
                    assert!(responses.contains_key(st), "{method} {path} lacks {st}");
                }
            }
            if op.get("requestBody").is_some() && !path.starts_with("/callbacks/") {
                for st in ["400", "413", "415", "422"] {
                    assert!(responses.contains_key(st), "{method} {path} lacks {st}");
                }
            }
            for (st, r) in responses {
                if st.starts_with('4') || st.starts_with('5') {
                    assert_eq!(
                        r["content"]["application/problem+json"]["schema"]["$ref"],
                        "#/components/schemas/Problem",
                        "{method} {path} {st}"
                    );
                }
            }
        }
    }
    for (path, item) in doc["paths"].as_object().unwrap() {
        for op in item.as_object().unwrap().values() {
            for r in op["responses"].as_object().unwrap().values() {
                for l in r
                    .get("links")
                    .and_then(|l| l.as_object())
                    .into_iter()
                    .flat_map(|l| l.values())
                {
                    assert!(
                        ids.contains(l["operationId"].as_str().unwrap()),
                        "{path}: link to {l}"
                    );
                }
            }
        }
    }
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["SyncRun"]["properties"]["balance_mismatches"]["type"],
        "array"
    );
    // Every reference resolves, and every vocabulary is an `enum` a generated client can
    // switch over, never a pattern of alternatives (a TypeScript `string`).
    let text = doc.to_string();
    for r in text.split("\"#/components/schemas/").skip(1) {
        let name = r.split('"').next().unwrap_or_default();
        assert!(schemas.get(name).is_some(), "dangling $ref to {name}");
    }
    assert!(
        !text.contains("\"pattern\":\"^("),
        "a vocabulary stated as a pattern"
    );
    for (schema, field, values) in [
        ("Connection", "status", "ConnectionStatus"),
        ("Connection", "consent_status", "ConsentStatus"),
        ("ChangeEntry", "op", "Op"),
        ("ChangeEntry", "entity", "ChangeEntity"),
        ("Statement", "status", "StatementState"),
        ("PendingTransaction", "state", "PendingState"),
        ("WebhookEndpoint", "status", "EndpointState"),
    ] {
        assert_eq!(
            schemas[schema]["properties"][field]["$ref"],
            format!("#/components/schemas/{values}"),
            "{schema}.{field}"
        );
        assert!(
            !schemas[values]["enum"].as_array().unwrap().is_empty(),
            "{values}"
        );
    }
    assert_eq!(
        schemas["ConsentStatus"]["enum"],
        serde_json::json!(["none", "valid", "expiring", "expired", "revoked"])
    );
    let link = &schemas["LinkRequest"]["properties"];
    assert_eq!(
        link["email"]["pattern"],
        banksync_http::input::EMAIL_PATTERN
    );
    assert_eq!(
        link["phone"]["pattern"],
        banksync_http::input::PHONE_PATTERN
    );
    assert_eq!(
        link["return_to"]["pattern"],
        banksync_http::input::RETURN_TO_PATTERN
    );
    assert_eq!(
        schemas["ReturnTo"]["properties"]["return_to"]["pattern"],
        banksync_http::input::RETURN_TO_PATTERN
    );
    assert_eq!(schemas["LinkRequest"]["additionalProperties"], false);

    // The server accepts exactly what the patterns match.
    let email = regex::Regex::new(banksync_http::input::EMAIL_PATTERN).unwrap();
    let phone = regex::Regex::new(banksync_http::input::PHONE_PATTERN).unwrap();
    let return_to = regex::Regex::new(banksync_http::input::RETURN_TO_PATTERN).unwrap();
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    let mut runner = TestRunner::new(Config {
        cases: 4000,
        ..Config::default()
    });
    let texts = prop_oneof![
        any::<String>(),
        "[a-zA-Z0-9@. \t\u{0}\u{1}\u{85}é+_()-]{0,12}",
        "[a-z\u{0}\u{7f}\u{85} é.!~?A]{0,4}@[a-zA-Z0-9.-]{0,8}",
        "[ ().+-]{0,3}[0-9 ().+-]{0,20}",
        "(https?|HTTP|ftp)://[a-z \u{a0}\u{85}\u{feff}\u{7f}~!.]{0,6}",
    ];
    runner
        .run(&texts, |t| {
            prop_assert_eq!(
                banksync_http::input::valid_email(&t),
                email.is_match(&t) && t.chars().count() <= 254,
                "email {:?}",
                t
            );
            prop_assert_eq!(
                banksync_http::input::normalise_phone(&t).is_some(),
                phone.is_match(&t),
                "phone {:?}",
                t
            );
            prop_assert_eq!(
                banksync_http::input::return_to_shaped(&t),
                return_to.is_match(&t) && t.chars().count() <= 2048,
                "return_to {:?}",
                t
            );
            Ok(())
        })
        .unwrap();
}

/// A database outage is ours: 500 with no detail, never a 401, 404 or 422.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn a_database_outage_is_an_internal_error(pool: PgPool) {
    let s = stack(pool.clone()).await;
    pool.close().await;
    for path in [
        format!("/api/v1/connections/{}", Uuid::new_v4()),
        "/api/v1/journals".to_string(),
    ] {
        let (st, p) = s.call(Method::GET, &path, None).await;
        assert_eq!(
            (st.as_u16(), p["code"].as_str()),
            (500, Some("internal")),
            "{path}: {p}"
        );
        assert_eq!(p["detail"], "An internal error occurred.");
    }
}

/// The document is committed as `docs/openapi.json` (what generated clients are built
/// from): the served one must equal it. After an API change,
/// `scripts/dev openapi` rewrites the file (this test with `BANKSYNC_WRITE_OPENAPI=1`).
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn the_committed_openapi_document_is_the_served_one(pool: PgPool) {
    let s = stack(pool).await;
    let served = s.openapi().await;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    if std::env::var_os("BANKSYNC_WRITE_OPENAPI").is_some() {
        let text = serde_json::to_string_pretty(&served).unwrap() + "\n";
        std::fs::write(&path, text).unwrap();
    }
    let committed: Value = serde_json::from_str(
        &std::fs::read_to_string(&path).expect("docs/openapi.json is committed"),
    )
    .expect("docs/openapi.json is JSON");
    assert!(
        committed == served,
        "docs/openapi.json differs from the served document: run `scripts/dev openapi` and commit it"
    );
}
