//! The console in a real headless Chromium (WebDriver), against this server, the simulator
//! and Postgres: the bookkeeper's flows through Salt Edge Connect, review, the operator's
//! retry; and, over plain HTTP, CSRF, session expiry and cross-company access. Each test
//! ends by checking the API or the database, not only the page.

use crate::support::*;

/// The simulator's Connect page, as a user fills it in.
async fn through_connect(b: &Browser) {
    b.fill("input[name=login]", saltedge_sim::catalogue::LOGIN)
        .await;
    b.fill("input[name=password]", saltedge_sim::catalogue::PASSWORD)
        .await;
    if let Ok(consent) =
        b.c.find(fantoccini::Locator::Css("input[name=consent]"))
            .await
    {
        consent.click().await.unwrap();
    }
    b.click("button[type=submit]").await;
}

async fn connection(s: &Stack, id: &str) -> (StatusCode, Value) {
    s.call(Method::GET, &format!("/api/v1/connections/{id}"), None)
        .await
}

/// Clicks a connection's button (a one-button form posting to `action`), accepting the
/// confirmation the page asks for when it asks.
async fn press(b: &Browser, action: &str) {
    b.click(&format!("form[action$='{action}'] button")).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = b.c.accept_alert().await;
}

#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn a_bookkeeper_links_a_bank_and_uses_every_button_of_the_user_doc(pool: PgPool) {
    let s = stack(pool).await;
    sqlx::query("UPDATE companies SET locale = 'de-DE'")
        .execute(&s.pool)
        .await
        .unwrap();
    let b = Browser::start().await;
    b.sign_in(&s.base, &s.token).await;
    assert_eq!(b.path().await, "/console/connections");
    b.wait_text("No bank is linked yet").await;

    // Link: search, choose, phone and email, then Salt Edge Connect and back.
    b.click("a[href='/console/link']").await;
    b.fill("#country", "XF").await;
    b.fill("#q", "Fakebank Simple").await;
    b.click("input[name=include_fake]").await;
    b.click("form[role=search] button").await;
    b.screenshot("link-search").await;
    b.click("a[aria-label='Choose Fakebank Simple']").await;
    b.fill("#email", "books@acme.example").await;
    b.fill("#phone", "+49 30 1234567").await;
    b.click("form[action='/console/link'] button").await;
    through_connect(&b).await;
    // Back on the console, signed in (the session cookie is SameSite=Lax).
    b.find("header.top nav").await;
    assert!(
        b.path().await.starts_with("/console/connections"),
        "{}",
        b.path().await
    );
    let id = first_connection(&s).await;
    wait_sync(&s, &id, 0).await;
    b.goto(&format!("{}/console/connections", s.base)).await;
    let page = b.wait_text("Fakebank Simple").await;
    assert!(page.contains("active"), "{page}");
    // Dates in the company's locale, amounts with their currency, right-aligned.
    assert!(
        regex::Regex::new(r"\d{2}\.\d{2}\.\d{4}")
            .unwrap()
            .is_match(&page),
        "German dates: {page}"
    );
    let align = b
        .c
        .execute(
            "const c = document.querySelector('td.num'); return c ? getComputedStyle(c).textAlign : null;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(align, json!("right"));
    // htmx loaded under the pages' Content-Security-Policy.
    let htmx =
        b.c.execute("return typeof window.htmx;", vec![])
            .await
            .unwrap();
    assert_eq!(htmx, json!("object"));
    b.screenshot("connections").await;
    let (_, c) = connection(&s, &id).await;
    assert_eq!(c["status"], "active");
    assert!(!c["accounts"].as_array().unwrap().is_empty());

    // Linking the same bank again: the FAQ's "already synchronized", nothing linked.
    b.goto(&format!(
        "{}/console/link?provider=fakebank_simple_xf",
        s.base
    ))
    .await;
    // Every field has its label (keyboard and screen-reader users).
    let unlabelled = b
        .c
        .execute(
            "return [...document.querySelectorAll('input:not([type=hidden]), select')].filter(e => e.labels.length === 0).length;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(unlabelled, json!(0));
    b.fill("#email", "books@acme.example").await;
    b.fill("#phone", "+49 30 1234567").await;
    b.click("form[action='/console/link'] button").await;
    let dup = b.wait_text("already synchronized this bank account").await;
    assert!(dup.contains("Update credentials"), "{dup}");
    let (_, list) = s.call(Method::GET, "/api/v1/connections", None).await;
    assert_eq!(list.as_array().unwrap().len(), 1);

    // The connection's page: sync now, with its progress line.
    b.goto(&format!("{}/console/connections", s.base)).await;
    b.click(&format!("a[href='/console/connections/{id}']"))
        .await;
    press(&b, &format!("/console/connections/{id}/sync")).await;
    b.wait_text("Sync queued").await;
    wait_sync(&s, &id, 1).await;
    b.goto(&format!("{}/console/connections/{id}", s.base))
        .await;
    b.wait_text("Sync history").await;
    b.screenshot("connection").await;

    // Update Credentials and Fetch Accounts go through Connect and come back.
    for (button, runs) in [("update-credentials", 2), ("fetch-accounts", 3)] {
        press(&b, &format!("/console/connections/{id}/{button}")).await;
        through_connect(&b).await;
        b.find("header.top nav").await;
        wait_sync(&s, &id, runs).await;
    }
    let (_, c) = connection(&s, &id).await;
    assert_eq!(c["status"], "active", "{c}");

    // Journals, a statement with balances.
    b.goto(&format!("{}/console/journals", s.base)).await;
    b.click("table a[href^='/console/journals/']").await;
    b.wait_text("Statements").await;
    b.screenshot("journal").await;
    b.click("table a[href^='/console/statements/']").await;
    let st = b.wait_text("Opening balance").await;
    assert!(st.contains("Closing balance"), "{st}");
    b.screenshot("statement").await;

    // Revoke: the consent is revoked at Salt Edge and here.
    b.goto(&format!("{}/console/connections/{id}", s.base))
        .await;
    press(&b, &format!("/console/connections/{id}/revoke")).await;
    b.wait_text("Consent revoked").await;
    let (_, c) = connection(&s, &id).await;
    assert_eq!(c["consent_status"], "revoked", "{c}");

    // Delete while Salt Edge still holds it: the FAQ's message, the record kept.
    s.sim
        .set_faults(vec![FaultRule::new(FaultAction::ErrorClass(
            "ActionNotAllowed".into(),
        ))
        .on_path("/connections/")
        .on_method("DELETE")]);
    press(&b, &format!("/console/connections/{id}/delete")).await;
    let refused = b.wait_text("Salt Edge account").await;
    assert!(refused.contains("Salt Edge"), "{refused}");
    let (st, _) = connection(&s, &id).await;
    assert_eq!(st, 200, "the record is kept");

    // Then it goes; journals and lines stay.
    s.sim.set_faults(vec![]);
    let lines_before = all_lines(&s).await.len();
    press(&b, &format!("/console/connections/{id}/delete")).await;
    b.wait_text("Connection deleted").await;
    let (st, _) = connection(&s, &id).await;
    assert_eq!(st, 404);
    assert_eq!(all_lines(&s).await.len(), lines_before);
    b.quit().await;
}

#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn a_flagged_line_is_confirmed_from_the_review_page(pool: PgPool) {
    let s = stack(pool).await;
    let conn_id = linked_to(&s, "fake_client_xf").await;
    let flagged: Vec<i64> = all_lines(&s)
        .await
        .iter()
        .filter(|l| l["duplicate_review"] == "flagged")
        .map(|l| l["id"].as_i64().unwrap())
        .collect();
    assert!(!flagged.is_empty(), "the provider's twins are flagged");

    // Signed in by a one-time link, as `banksync demo` prints it.
    let token_id: Uuid = sqlx::query_scalar("SELECT id FROM api_tokens LIMIT 1")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    let code = sync_engine::console::create_link(&s.pool, token_id, chrono::Duration::minutes(5))
        .await
        .unwrap();
    let b = Browser::start().await;
    b.goto(&format!("{}/console/sign-in/{code}", s.base)).await;
    b.find("header.top nav").await;
    b.goto(&format!("{}/console/review", s.base)).await;
    b.wait_text("Confirm duplicate").await;
    b.screenshot("review").await;
    let first = flagged.iter().max().unwrap();
    press(&b, &format!("/console/review/{first}/confirm")).await;
    b.wait_text("Confirmed as a duplicate").await;
    let (_, line) = s
        .call(Method::GET, "/api/v1/statement-lines?limit=1000", None)
        .await;
    let line = line["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["id"].as_i64() == Some(*first))
        .cloned()
        .unwrap();
    assert_eq!(line["duplicate_review"], "confirmed", "{line}");
    assert_eq!(line["in_journal"], false);

    // The bank removes a transaction: the page offers the removal, confirmed from there.
    let (_, conn) = connection(&s, &conn_id).await;
    let se_conn = conn["saltedge_id"].as_str().unwrap();
    let gone = all_lines(&s)
        .await
        .into_iter()
        .filter(|l| l["duplicate_review"].is_null())
        .max_by_key(|l| {
            l["saltedge_transaction_id"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .unwrap();
    s.sim
        .remove_posted(se_conn, gone["saltedge_transaction_id"].as_str().unwrap());
    let before = succeeded_runs(&s, &conn_id).await;
    s.call(
        Method::POST,
        &format!("/api/v1/connections/{conn_id}/sync"),
        None,
    )
    .await;
    wait_sync(&s, &conn_id, before).await;
    b.goto(&format!("{}/console/review", s.base)).await;
    b.wait_text("The bank no longer lists it").await;
    let gone_id = gone["id"].as_i64().unwrap();
    press(&b, &format!("/console/review/{gone_id}/confirm-removal")).await;
    b.wait_text("Removal confirmed").await;
    let (_, l) = s
        .call(Method::GET, "/api/v1/statement-lines?limit=1000", None)
        .await;
    let l = l["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["id"].as_i64() == Some(gone_id))
        .cloned()
        .unwrap();
    assert_eq!(
        (l["removal_review"].as_str(), l["in_journal"].as_bool()),
        (Some("confirmed"), Some(false)),
        "{l}"
    );

    // The link was spent: a second visit is refused.
    b.goto(&format!("{}/console/sign-in/{code}", s.base)).await;
    b.wait_text("used already or has expired").await;

    // Pending transactions and the phone layout: nothing wider than the screen.
    b.goto(&format!("{}/console/pending", s.base)).await;
    b.wait_text("Pending transactions").await;
    b.c.set_window_size(390, 844).await.unwrap();
    b.goto(&format!("{}/console/connections", s.base)).await;
    b.wait_text("Fake Bank with Client Keys").await;
    let fits =
        b.c.execute(
            "return document.documentElement.scrollWidth <= window.innerWidth + 1;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(fits, json!(true), "the page fits a phone's width");
    b.screenshot("connections-phone").await;
    b.quit().await;
}

#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn an_operator_retries_a_dead_job(pool: PgPool) {
    let s = stack(pool).await;
    let dead: i64 = sqlx::query_scalar(
        "INSERT INTO jobs (kind, payload, status, attempts, max_attempts, last_error, finished_at)
         VALUES ('refresh_catalogue', '{}', 'dead', 5, 5, 'Salt Edge unreachable (test)', now()) RETURNING id",
    )
    .fetch_one(&s.pool)
    .await
    .unwrap();
    let (_, operator) = tokens::insert(&s.pool, None, "ops", None).await.unwrap();
    let b = Browser::start().await;
    b.sign_in(&s.base, &operator).await;
    assert_eq!(b.path().await, "/console/ops/jobs");
    let page = b.wait_text("Salt Edge unreachable (test)").await;
    assert!(page.contains("Dead jobs"), "{page}");
    b.screenshot("ops-jobs").await;
    press(&b, &format!("/console/ops/jobs/{dead}/retry")).await;
    b.wait_text(&format!("Job {dead} queued again")).await;
    let (status, attempts): (String, i32) =
        sqlx::query_as("SELECT status, attempts FROM jobs WHERE id = $1")
            .bind(dead)
            .fetch_one(&s.pool)
            .await
            .unwrap();
    assert_ne!(status, "dead");
    assert!(attempts <= 1, "a fresh attempts count: {attempts}");
    // The audit log has the operator's action, and the page shows it.
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE actor LIKE 'operator:%' AND action = $1",
    )
    .bind(format!("POST /console/ops/jobs/{dead}/retry"))
    .fetch_one(&s.pool)
    .await
    .unwrap();
    assert_eq!(audited, 1);
    for (path, says) in [
        ("sync-runs", "Sync runs"),
        ("connections", "Connections needing attention"),
        ("webhooks", "Webhook deliveries"),
        ("audit", "/console/ops/jobs/"),
    ] {
        b.goto(&format!("{}/console/ops/{path}", s.base)).await;
        b.wait_text(says).await;
    }
    b.screenshot("ops-audit").await;
    // An operator's session reads no company's pages.
    b.goto(&format!("{}/console/connections", s.base)).await;
    b.wait_text("use a company token").await;
    b.quit().await;
}

/// A plain HTTP client with a cookie jar, as a browser without JavaScript.
fn cookie_client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A console page's HTML.
async fn page(http: &reqwest::Client, url: String) -> String {
    http.get(url).send().await.unwrap().text().await.unwrap()
}

fn hidden(html: &str, name: &str) -> String {
    let re = regex::Regex::new(&format!(r#"name="{name}" value="([^"]*)""#)).unwrap();
    re.captures(html)
        .map(|c| c[1].to_string())
        .unwrap_or_else(|| panic!("no {name} field in {html}"))
}

/// Signs in over HTTP; returns the session's CSRF token (read from a page's form).
async fn http_sign_in(s: &Stack, http: &reqwest::Client, token: &str) -> String {
    let login = page(http, format!("{}/console/login", s.base)).await;
    let r = http
        .post(format!("{}/console/login", s.base))
        .form(&[("token", token), ("csrf", &hidden(&login, "csrf"))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let set = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("banksync_session="))
        .expect("a session cookie");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/console"] {
        assert!(set.contains(attr), "{set}");
    }
    let page = page(http, format!("{}/console/connections", s.base)).await;
    hidden(&page, "csrf")
}

async fn linked(s: &Stack) -> String {
    linked_to(s, "fakebank_simple_xf").await
}

/// A connection to `provider` linked through the API, its first sync done.
async fn linked_to(s: &Stack, provider: &str) -> String {
    let (_, link) = s
        .call(
            Method::POST,
            "/api/v1/connections",
            Some(link_body(provider)),
        )
        .await;
    s.complete_connect(link["connect_url"].as_str().unwrap(), true)
        .await;
    let id = first_connection(s).await;
    wait_sync(s, &id, 0).await;
    id
}

#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn console_forms_need_the_sessions_csrf_token_and_sessions_end(pool: PgPool) {
    let s = stack(pool).await;
    let id = linked(&s).await;
    let revoke = format!("{}/console/connections/{id}/revoke", s.base);

    // The login form without its double-submit cookie's value: refused.
    let http = cookie_client();
    let r = http
        .post(format!("{}/console/login", s.base))
        .form(&[("token", s.token.as_str()), ("csrf", "guess")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    let csrf = http_sign_in(&s, &http, &s.token).await;
    // Another session's token, a missing one, a wrong one: 403, nothing done.
    let other = cookie_client();
    let other_csrf = http_sign_in(&s, &other, &s.token).await;
    assert_ne!(csrf, other_csrf);
    for form in [
        vec![],
        vec![("csrf", other_csrf.as_str())],
        vec![("csrf", "x")],
    ] {
        let r = http.post(&revoke).form(&form).send().await.unwrap();
        assert_eq!(r.status(), 403, "{form:?}");
    }
    let (_, c) = connection(&s, &id).await;
    assert_eq!(c["consent_status"], "valid", "nothing was revoked: {c}");
    // A cross-site form post carries no session cookie at all (SameSite=Lax): to login.
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(&revoke)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(r.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with("/console/login"));

    // With the session's token it is done.
    let r = http
        .post(&revoke)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let (_, c) = connection(&s, &id).await;
    assert_eq!(c["consent_status"], "revoked", "{c}");

    // While a sync runs, the progress line says so and asks to be refreshed (htmx).
    let run: Uuid = sqlx::query_scalar(
        "INSERT INTO sync_runs (company_id, connection_id, trigger, status, pages, fetched, inserted)
         SELECT company_id, id, 'api', 'running', 3, 2500, 1200 FROM connections WHERE id = $1::uuid RETURNING id",
    )
    .bind(&id)
    .fetch_one(&s.pool)
    .await
    .unwrap();
    let progress = page(
        &http,
        format!("{}/console/connections/{id}/progress", s.base),
    )
    .await;
    assert!(progress.contains("hx-trigger=\"every 2s\""), "{progress}");
    assert!(progress.contains("2500 transactions fetched"), "{progress}");
    sqlx::query("UPDATE sync_runs SET status = 'succeeded', finished_at = now() WHERE id = $1")
        .bind(run)
        .execute(&s.pool)
        .await
        .unwrap();
    let progress = page(
        &http,
        format!("{}/console/connections/{id}/progress", s.base),
    )
    .await;
    assert!(
        !progress.contains("hx-trigger"),
        "done: no more polling: {progress}"
    );

    // An expired session: back to the login page, with a message, the cookie cleared.
    sqlx::query("UPDATE console_sessions SET expires_at = now() - interval '1 second'")
        .execute(&s.pool)
        .await
        .unwrap();
    let r = http
        .get(format!("{}/console/journals", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(r.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with("/console/login?next=%2Fconsole%2Fjournals"));
    let login = page(&http, format!("{}/console/login", s.base)).await;
    assert!(login.contains("Your session has ended"), "{login}");

    // A revoked token ends its sessions at once.
    let fresh = cookie_client();
    http_sign_in(&s, &fresh, &s.token).await;
    sqlx::query("UPDATE api_tokens SET revoked_at = now()")
        .execute(&s.pool)
        .await
        .unwrap();
    let r = fresh
        .get(format!("{}/console/connections", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    // Sessions keep only a hash of their secret.
    let stored: Vec<String> = sqlx::query_scalar("SELECT id_hash FROM console_sessions")
        .fetch_all(&s.pool)
        .await
        .unwrap();
    assert!(stored.iter().all(|h| h.len() == 64));
}

#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn one_company_cannot_see_or_touch_anothers_connections(pool: PgPool) {
    let s = stack(pool).await;
    let id = linked(&s).await;
    let other = companies::create(&s.pool, "Other Books Ltd").await.unwrap();
    let (_, other_token) = tokens::create(&s.pool, other.id, "other").await.unwrap();
    let http = cookie_client();
    let csrf = http_sign_in(&s, &http, &other_token).await;

    let list = page(&http, format!("{}/console/connections", s.base)).await;
    assert!(!list.contains("Fakebank Simple"), "{list}");
    assert!(!list.contains(&id));
    let runs_before: i64 = sqlx::query_scalar("SELECT count(*) FROM sync_runs")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    let r = http
        .get(format!("{}/console/connections/{id}", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    for action in ["revoke", "delete", "sync"] {
        let r = http
            .post(format!("{}/console/connections/{id}/{action}", s.base))
            .form(&[("csrf", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "{action}");
        // The message says "not found"; nothing happened to the other company's connection.
        let page = page(&http, format!("{}/console/connections", s.base)).await;
        assert!(page.contains("not found"), "{action}: {page}");
    }
    let (st, c) = connection(&s, &id).await;
    assert_eq!(st, 200);
    assert_eq!(c["consent_status"], "valid", "{c}");
    let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM sync_runs")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert_eq!(
        runs, runs_before,
        "no sync was queued for the other company"
    );
    // Statements and journals of the owner are not found either.
    let statement: i64 = sqlx::query_scalar("SELECT id FROM statements LIMIT 1")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    let r = http
        .get(format!("{}/console/statements/{statement}", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Pages are framed by nobody and scripts come from the console only.
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"));
}

#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn the_banks_question_is_answered_in_the_console(pool: PgPool) {
    let s = stack(pool).await;
    let (_, link) = s
        .call(
            Method::POST,
            "/api/v1/connections",
            Some(link_body("fake_interactive_client_xf")),
        )
        .await;
    let r = s
        .http
        .post(link["connect_url"].as_str().unwrap())
        .form(&[
            ("login", saltedge_sim::catalogue::LOGIN),
            ("password", saltedge_sim::catalogue::PASSWORD),
            ("consent", "on"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the bank asks for its SMS code");
    let id = first_connection(&s).await;
    eventually("the bank's question arrives", || async {
        let (_, c) = connection(&s, &id).await;
        (!c["interactive"].is_null()).then_some(())
    })
    .await;

    let b = Browser::start().await;
    b.sign_in(&s.base, &s.token).await;
    let page = b.wait_text("The bank asks").await;
    assert!(
        page.contains("SMS code"),
        "the bank's words, as text: {page}"
    );
    b.screenshot("interactive").await;
    b.fill("input[name=sms]", saltedge_sim::catalogue::SMS_CODE)
        .await;
    b.click(&format!(
        "form[action='/console/connections/{id}/interactive'] button"
    ))
    .await;
    b.wait_text("Answer sent to the bank").await;
    wait_sync(&s, &id, 0).await;
    let (_, c) = connection(&s, &id).await;
    assert!(c["interactive"].is_null(), "{c}");
    assert_eq!(c["status"], "active");
    assert!(!all_lines(&s).await.is_empty());
    b.quit().await;
}

/// Bad input in the console's URLs and forms gets an error page (4xx, HTML), never a 500,
/// and changes nothing.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn bad_input_gets_an_error_page_and_changes_nothing(pool: PgPool) {
    let s = stack(pool).await;
    let id = linked(&s).await;
    let http = cookie_client();
    let csrf = http_sign_in(&s, &http, &s.token).await;
    let unknown = Uuid::new_v4();
    for path in [
        "/console/connections/not-a-uuid".to_string(),
        format!("/console/connections/{unknown}"),
        format!("/console/connections/{unknown}/progress"),
        "/console/statements/abc".into(),
        "/console/statements/99999999999".into(),
        "/console/statements/-1".into(),
        format!("/console/journals/{unknown}"),
        format!("/console/journals/{unknown}?from=2026-13-45"),
        "/console/link?q=%00".into(),
        "/console/link?country=%FF%FE".into(),
        "/console/link?provider=%00".into(),
        "/console/link?q=%27%22%3Cscript%3E".into(),
        "/console/ops/jobs".into(),
        "/console/assets/..%2F..%2FCargo.toml".into(),
        "/console/login?next=https%3A%2F%2Fevil.example".into(),
    ] {
        let r = http.get(format!("{}{path}", s.base)).send().await.unwrap();
        let status = r.status();
        let body = r.text().await.unwrap();
        assert!(status.as_u16() < 500, "{path}: {status} {body}");
        assert!(!body.contains("<script>"), "{path}: echoed markup");
    }
    let before = connection(&s, &id).await.1;
    for (path, form) in [
        (
            "/console/link".to_string(),
            vec![
                ("provider_code", "fakebank_simple_xf"),
                ("email", "not an email"),
                ("phone", "+49 30 1234567"),
            ],
        ),
        (
            "/console/link".into(),
            vec![
                ("provider_code", "\u{0}"),
                ("email", "a@b.example"),
                ("phone", "1"),
            ],
        ),
        ("/console/link".into(), vec![("email", "a@b.example")]),
        (
            format!("/console/connections/{id}/interactive"),
            vec![("sms", "\u{0}"), ("x", "y")],
        ),
        (format!("/console/connections/{unknown}/revoke"), vec![]),
        ("/console/review/99999999/confirm".into(), vec![]),
        ("/console/review/not-a-number/confirm".into(), vec![]),
        ("/console/review/99999999/no-such-answer".into(), vec![]),
        ("/console/review/99999999/merge-reissue".into(), vec![]),
        ("/console/ops/jobs/1/retry".into(), vec![]),
    ] {
        let mut form = form;
        form.push(("csrf", csrf.as_str()));
        let r = http
            .post(format!("{}{path}", s.base))
            .form(&form)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body = r.text().await.unwrap();
        assert!(status.as_u16() < 500, "{path}: {status} {body}");
    }
    let after = connection(&s, &id).await.1;
    assert_eq!(before["status"], after["status"]);
    assert_eq!(before["consent_status"], after["consent_status"]);
    let (_, list) = s.call(Method::GET, "/api/v1/connections", None).await;
    assert_eq!(list.as_array().unwrap().len(), 1, "nothing linked");
}

/// The operator's webhook page shows where an endpoint points, never its path or query
/// (receivers put tokens there).
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn operators_see_webhook_hosts_not_their_tokens(pool: PgPool) {
    let s = stack(pool).await;
    let (st, _) = s
        .call(
            Method::POST,
            "/api/v1/webhook-endpoints",
            Some(json!({ "url": "http://127.0.0.1:9/hooks/tok_SECRET123?key=abc" })),
        )
        .await;
    assert_eq!(st, 201);
    let company: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM companies WHERE name = 'ACME Books'")
            .fetch_one(&s.pool)
            .await
            .unwrap();
    let mut tx = s.pool.begin().await.unwrap();
    sync_engine::webhooks::emit(&mut tx, company, None, "sync.failed", &json!({}))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let (_, operator) = tokens::insert(&s.pool, None, "ops", None).await.unwrap();
    let http = cookie_client();
    let login = page(&http, format!("{}/console/login", s.base)).await;
    let r = http
        .post(format!("{}/console/login", s.base))
        .form(&[
            ("token", operator.as_str()),
            ("csrf", &hidden(&login, "csrf")),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let html = page(&http, format!("{}/console/ops/webhooks", s.base)).await;
    assert!(html.contains("http://127.0.0.1:9/…"), "{html}");
    assert!(
        !html.contains("tok_SECRET123") && !html.contains("key=abc"),
        "{html}"
    );
}
