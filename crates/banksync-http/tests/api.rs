//! The HTTP surface over real HTTP: the simulator, this server, its job worker and Postgres.

use std::sync::Arc;
use std::time::Duration;

use banksync_http::{Application, HttpConfig, HttpLimits};
use reqwest::{Method, StatusCode};
use saltedge_client::{Client, Signer, Verifier};
use saltedge_sim::{keys, FaultAction, FaultRule, SimConfig, Simulator};
use serde_json::{json, Value};
use sqlx::PgPool;
use sync_engine::worker::Worker;
use sync_engine::{catalogue, companies, tokens};
use uuid::Uuid;

struct Stack {
    sim: Simulator,
    base: String,
    callback_base: String,
    http: reqwest::Client,
    token: String,
    pool: PgPool,
    _stop: tokio::sync::watch::Sender<bool>,
}

async fn stack(pool: PgPool) -> Stack {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let mut cfg = saltedge_client::ClientConfig::signed(
        sim.api_base(),
        sim.app_credentials().0,
        sim.app_credentials().1,
        saltedge_sim::keys::CLIENT_PRIVATE_PEM,
    )
    .expect("test key");
    cfg.backoff_base = Duration::from_millis(5);
    cfg.fetches_per_second = 0;
    let client = Client::new(cfg).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let callback_base = url::Url::parse(&format!("http://{addr}/callbacks/saltedge/")).unwrap();
    sim.set_callback_base(Some(callback_base.clone()));
    // `success` registered with a trailing slash on both sides, as real clients often do.
    let success_url = format!("{callback_base}success/");
    sim.set_callback_url(saltedge_sim::CallbackKind::Success, &success_url);
    let registered = [("success".to_string(), success_url)].into_iter().collect();
    let config = HttpConfig {
        return_to_origins: vec!["https://books.example".into()],
        limits: HttpLimits {
            body_limit_bytes: 64 * 1024,
            ..Default::default()
        },
        ..Default::default()
    };
    let built = Application::build(
        pool.clone(),
        client.clone(),
        Verifier::from_pem(keys::SIMULATOR_PUBLIC_PEM).unwrap(),
        banksync_http::callbacks::urls::CallbackUrls::with_overrides(&callback_base, &registered)
            .unwrap(),
        &config,
        None,
    );
    banksync_http::spawn_metrics_refresher(&built.state, Duration::from_millis(100));
    let app = built.router;
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
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
    }
}

impl Stack {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call_as(&self.token, method, path, body).await
    }

    async fn call_as(
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
    async fn complete_connect(&self, connect_url: &str, consent: bool) -> String {
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
    fn callback_url(&self, kind: &str) -> String {
        match kind {
            "success" => format!("{}success/", self.callback_base),
            _ => format!("{}{kind}", self.callback_base),
        }
    }

    async fn post_callback(
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

    async fn inbox_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM callback_inbox")
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }
}

async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
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

async fn first_connection(s: &Stack) -> String {
    eventually("the connection appears", || async {
        let (_, list) = s.call(Method::GET, "/api/v1/connections", None).await;
        list.as_array()
            .and_then(|l| l.first())
            .map(|c| c["id"].as_str().unwrap().to_string())
    })
    .await
}

/// Successful sync runs of the connection so far.
async fn succeeded_runs(s: &Stack, conn: &str) -> usize {
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
async fn wait_sync(s: &Stack, conn: &str, runs_before: usize) -> Value {
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

async fn all_lines(s: &Stack) -> Vec<Value> {
    let mut out = vec![];
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("/api/v1/statement-lines?limit=50&cursor={c}"),
            None => "/api/v1/statement-lines?limit=50".to_string(),
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

fn link_body(provider: &str) -> Value {
    json!({ "provider_code": provider, "phone": "+49 30 1234567", "email": "Books@ACME.example", "return_to": "https://books.example/back" })
}

#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn end_to_end_link_sync_update_fetch_revoke_delete(pool: PgPool) {
    let s = stack(pool).await;

    // Institutions: fake ones only when asked.
    let (_, real) = s.call(Method::GET, "/api/v1/institutions", None).await;
    assert!(real.as_array().unwrap().iter().all(|i| i["fake"] == false));
    let (_, fake) = s
        .call(
            Method::GET,
            "/api/v1/institutions?include_fake=true&q=fake%20bank%20with",
            None,
        )
        .await;
    assert!(fake
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["code"] == "fake_client_xf"));

    // Link → Connect page → signed success callback → sync → lines.
    let (st, link) = s
        .call(
            Method::POST,
            "/api/v1/connections",
            Some(link_body("fake_client_xf")),
        )
        .await;
    assert_eq!(st, 201, "{link}");
    let back = s
        .complete_connect(link["connect_url"].as_str().unwrap(), true)
        .await;
    assert!(back.starts_with("https://books.example/back?connection_id="));
    let conn_id = first_connection(&s).await;
    wait_sync(&s, &conn_id, 0).await;
    assert!(!all_lines(&s).await.is_empty());
    let (_, conn) = s
        .call(Method::GET, &format!("/api/v1/connections/{conn_id}"), None)
        .await;
    assert_eq!(conn["status"], "active");
    assert_eq!(conn["accounts"].as_array().unwrap().len(), 2);
    let se_conn = conn["saltedge_id"].as_str().unwrap().to_string();
    let truth = s.sim.ground_truth(&se_conn).unwrap();
    let expected: usize = truth
        .accounts
        .iter()
        .map(|a| a.posted.len() + a.pending.len())
        .sum();
    let lines = all_lines(&s).await;
    assert_eq!(
        lines.len(),
        expected,
        "each transaction exactly once through the API"
    );
    let (_, journals) = s.call(Method::GET, "/api/v1/journals", None).await;
    assert_eq!(journals.as_array().unwrap().len(), 2);

    // Filters: posted only, one journal, a date window.
    let j0 = conn["accounts"][0]["journal_id"].as_str().unwrap();
    let (_, posted) = s
        .call(
            Method::GET,
            &format!("/api/v1/statement-lines?journal_id={j0}&status=posted&limit=1000"),
            None,
        )
        .await;
    assert!(posted["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|l| l["status"] == "posted" && l["journal_id"] == j0));
    let (st, _) = s
        .call(Method::GET, "/api/v1/statement-lines?status=weird", None)
        .await;
    assert_eq!(st, 422);

    // Update credentials: reconnect through Connect; a new success callback syncs again.
    let before = succeeded_runs(&s, &conn_id).await;
    let (st, upd) = s
        .call(
            Method::POST,
            &format!("/api/v1/connections/{conn_id}/update-credentials"),
            Some(json!({ "return_to": "https://books.example/back" })),
        )
        .await;
    assert_eq!(st, 200, "{upd}");
    s.complete_connect(upd["connect_url"].as_str().unwrap(), true)
        .await;
    wait_sync(&s, &conn_id, before).await;

    // Fetch new accounts: a new account appears with its own journal.
    let before = succeeded_runs(&s, &conn_id).await;
    let (st, fetch) = s
        .call(
            Method::POST,
            &format!("/api/v1/connections/{conn_id}/fetch-accounts"),
            Some(json!({ "return_to": "https://books.example/back" })),
        )
        .await;
    assert_eq!(st, 200, "{fetch}");
    let r = s
        .http
        .post(fetch["connect_url"].as_str().unwrap())
        .form(&[("login", "username"), ("password", "secret")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    wait_sync(&s, &conn_id, before).await;
    let (_, conn) = s
        .call(Method::GET, &format!("/api/v1/connections/{conn_id}"), None)
        .await;
    assert_eq!(conn["accounts"].as_array().unwrap().len(), 3);
    let (_, journals) = s.call(Method::GET, "/api/v1/journals", None).await;
    assert_eq!(journals.as_array().unwrap().len(), 3);
    let truth = s.sim.ground_truth(&se_conn).unwrap();
    let expected: usize = truth
        .accounts
        .iter()
        .map(|a| a.posted.len() + a.pending.len())
        .sum();
    assert_eq!(all_lines(&s).await.len(), expected);

    // Sync now + history.
    let before = succeeded_runs(&s, &conn_id).await;
    let (st, q) = s
        .call(
            Method::POST,
            &format!("/api/v1/connections/{conn_id}/sync"),
            None,
        )
        .await;
    assert_eq!(st, 202);
    assert!(q["sync_run_id"].as_str().unwrap().parse::<Uuid>().is_ok());
    wait_sync(&s, &conn_id, before).await;

    // Linking the same bank again: the FAQ's "already synchronized".
    let (st, dup) = s
        .call(
            Method::POST,
            "/api/v1/connections",
            Some(link_body("fake_client_xf")),
        )
        .await;
    assert_eq!(st, 409);
    assert_eq!(dup["code"], "already_synchronized");
    assert!(dup["guidance"]
        .as_str()
        .unwrap()
        .contains("Update credentials"));

    // Revoke.
    let (st, revoked) = s
        .call(
            Method::POST,
            &format!("/api/v1/connections/{conn_id}/revoke"),
            None,
        )
        .await;
    assert_eq!(st, 200, "{revoked}");
    assert!(revoked["consent_revoked_at"].is_string());
    let consents = s.sim.consents(&se_conn);
    assert!(consents.len() >= 2, "update credentials gave a new consent");
    assert!(consents.last().unwrap().1, "the current consent is revoked");
    // Revoked: no sync and no refresh session until consent is given again.
    let jobs_before: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    let (st, p) = s
        .call(
            Method::POST,
            &format!("/api/v1/connections/{conn_id}/sync"),
            None,
        )
        .await;
    assert_eq!(
        (st.as_u16(), p["code"].as_str()),
        (409, Some("consent_revoked")),
        "{p}"
    );
    assert!(p["guidance"]
        .as_str()
        .unwrap()
        .contains("Update credentials"));
    let (st, p) = s
        .call(
            Method::POST,
            &format!("/api/v1/connections/{conn_id}/fetch-accounts"),
            Some(json!({ "return_to": "https://books.example/back" })),
        )
        .await;
    assert_eq!(
        (st.as_u16(), p["code"].as_str()),
        (409, Some("consent_revoked")),
        "{p}"
    );
    let jobs_after: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert_eq!(jobs_after, jobs_before, "nothing queued");

    // Delete while Salt Edge still holds it: 409, record kept.
    s.sim
        .set_faults(vec![FaultRule::new(FaultAction::ErrorClass(
            "ActionNotAllowed".into(),
        ))
        .on_path("/connections/")
        .on_method("DELETE")]);
    let (st, kept) = s
        .call(
            Method::DELETE,
            &format!("/api/v1/connections/{conn_id}"),
            None,
        )
        .await;
    assert_eq!(st, 409, "{kept}");
    assert_eq!(kept["code"], "still_held_by_saltedge");
    assert!(kept["guidance"]
        .as_str()
        .unwrap()
        .contains("Salt Edge account"));
    let (st, _) = s
        .call(Method::GET, &format!("/api/v1/connections/{conn_id}"), None)
        .await;
    assert_eq!(st, 200);

    // Then it goes: record deleted, journals and lines stay.
    s.sim.set_faults(vec![]);
    let lines_before = all_lines(&s).await.len();
    let (st, _) = s
        .call(
            Method::DELETE,
            &format!("/api/v1/connections/{conn_id}"),
            None,
        )
        .await;
    assert_eq!(st, 204);
    let (st, _) = s
        .call(Method::GET, &format!("/api/v1/connections/{conn_id}"), None)
        .await;
    assert_eq!(st, 404);
    assert_eq!(all_lines(&s).await.len(), lines_before);
    let (_, journals) = s.call(Method::GET, "/api/v1/journals", None).await;
    assert_eq!(journals.as_array().unwrap().len(), 3);
}

/// The bank asks for an SMS code: the interactive callback's question is shown on the
/// connection (HTML as data), the answer goes through our API to Salt Edge, the fetch ends
/// and the lines arrive.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn interactive_questions_are_shown_and_answered_through_the_api(pool: PgPool) {
    let s = stack(pool).await;
    let (st, link) = s
        .call(
            Method::POST,
            "/api/v1/connections",
            Some(link_body("fake_interactive_client_xf")),
        )
        .await;
    assert_eq!(st, 201, "{link}");
    let r = s
        .http
        .post(link["connect_url"].as_str().unwrap())
        .form(&[
            ("login", "username"),
            ("password", "secret"),
            ("consent", "on"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the Connect page asks for the SMS code");
    let conn_id = first_connection(&s).await;
    let conn = eventually("the bank's question is on the connection", || async {
        let (_, c) = s
            .call(Method::GET, &format!("/api/v1/connections/{conn_id}"), None)
            .await;
        (!c["interactive"].is_null()).then_some(c)
    })
    .await;
    assert_eq!(conn["stage"], "interactive");
    assert_eq!(conn["interactive"]["fields_names"], json!(["sms"]));
    assert!(
        conn["interactive"]["html"]
            .as_str()
            .unwrap()
            .contains("SMS code"),
        "{conn}"
    );
    assert!(conn["interactive"]["expires_at"].is_string());

    let path = format!("/api/v1/connections/{conn_id}/interactive");
    let (st, e) = s
        .call(
            Method::POST,
            &path,
            Some(json!({ "credentials": { "otp": "1" } })),
        )
        .await;
    assert_eq!(
        (st.as_u16(), e["code"].as_str()),
        (422, Some("invalid_credentials"))
    );
    let (st, _) = s
        .call(Method::POST, &path, Some(json!({ "credentials": {} })))
        .await;
    assert_eq!(st, 422);
    let (st, c) = s
        .call(
            Method::POST,
            &path,
            Some(json!({ "credentials": { "sms": "123456" } })),
        )
        .await;
    assert_eq!(st, 202, "{c}");
    assert!(c["interactive"].is_null());
    wait_sync(&s, &conn_id, 0).await;
    assert!(!all_lines(&s).await.is_empty());
    let (_, c) = s
        .call(Method::GET, &format!("/api/v1/connections/{conn_id}"), None)
        .await;
    assert_eq!(c["status"], "active");
    assert!(c["error"].is_null() && c["interactive"].is_null(), "{c}");
    // Not waiting any more: a late answer is refused.
    let (st, e) = s
        .call(
            Method::POST,
            &path,
            Some(json!({ "credentials": { "sms": "123456" } })),
        )
        .await;
    assert_eq!(
        (st.as_u16(), e["code"].as_str()),
        (409, Some("not_waiting_for_input"))
    );
}

/// A Salt Edge customer belongs to exactly one company: linking with the identifier of a
/// customer adopted by another company, or of one that exists at Salt Edge outside banksync,
/// is a 409 that names neither, and nothing is handed over.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn a_salt_edge_customer_is_never_handed_to_a_second_company(pool: PgPool) {
    let s = stack(pool.clone()).await;
    let client = Client::new(
        saltedge_client::ClientConfig::signed(
            s.sim.api_base(),
            s.sim.app_credentials().0,
            s.sim.app_credentials().1,
            keys::CLIENT_PRIVATE_PEM,
        )
        .unwrap(),
    )
    .unwrap();
    let (_, adopted) = s
        .sim
        .seed_connection("shared@acme.example", "fake_client_xf");
    let owner = companies::create(&pool, "Secret Owner GmbH")
        .await
        .unwrap()
        .id;
    sync_engine::connections::adopt(&pool, &client, owner, &adopted)
        .await
        .unwrap();
    s.sim
        .seed_connection("outside@acme.example", "fake_client_xf");
    for email in ["shared@acme.example", "Outside@ACME.example"] {
        let mut body = link_body("fakebank_simple_xf");
        body["email"] = json!(email);
        let (st, e) = s
            .call(Method::POST, "/api/v1/connections", Some(body))
            .await;
        assert_eq!(st, 409, "{email}: {e}");
        assert_eq!(e["code"], "email_in_use");
        assert!(
            e["detail"].as_str().unwrap().contains("choose another"),
            "{e}"
        );
        assert!(
            !e.to_string().contains("Secret Owner"),
            "the owner is not revealed: {e}"
        );
    }
    let mine: Option<String> = sqlx::query_scalar("SELECT s.saltedge_id FROM saltedge_customers s JOIN companies c ON c.id = s.company_id WHERE c.name = 'ACME Books'")
        .fetch_optional(&pool)
        .await
        .unwrap();
    assert_eq!(mine, None, "no customer was handed to the linking company");
}

/// A bookkeeper reviews a flagged look-alike: confirming marks it `duplicated` at Salt Edge
/// and takes it out of the journal; dismissing keeps it; both can be undone.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn flagged_lines_are_confirmed_dismissed_and_undone(pool: PgPool) {
    let s = stack(pool).await;
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
    wait_sync(&s, &conn_id, 0).await;
    let (_, conn) = s
        .call(Method::GET, &format!("/api/v1/connections/{conn_id}"), None)
        .await;
    let se_conn = conn["saltedge_id"].as_str().unwrap().to_string();
    let lines = all_lines(&s).await;
    let flagged: Vec<&Value> = lines
        .iter()
        .filter(|l| l["duplicate_review"] == "flagged")
        .collect();
    assert_eq!(
        flagged.len(),
        2,
        "the two genuine twins are flagged, nothing dropped"
    );
    let twin = flagged[0];
    let (id, se_id) = (
        twin["id"].as_i64().unwrap(),
        twin["saltedge_transaction_id"]
            .as_str()
            .unwrap()
            .to_string(),
    );
    let unflagged = lines
        .iter()
        .find(|l| l["duplicate_review"].is_null() && l["status"] == "posted")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let (st, e) = s
        .call(
            Method::POST,
            &format!("/api/v1/statement-lines/{unflagged}/confirm-duplicate"),
            None,
        )
        .await;
    assert_eq!(st, 409, "{e}");

    let (st, l) = s
        .call(
            Method::POST,
            &format!("/api/v1/statement-lines/{id}/confirm-duplicate"),
            None,
        )
        .await;
    assert_eq!(st, 200, "{l}");
    assert_eq!(
        (l["duplicate_review"].as_str(), l["in_journal"].as_bool()),
        (Some("confirmed"), Some(false))
    );
    let truth = s.sim.ground_truth(&se_conn).unwrap();
    assert!(
        truth
            .accounts
            .iter()
            .any(|a| a.duplicated_ids.contains(&se_id)),
        "marked duplicated at Salt Edge"
    );
    let (st, _) = s
        .call(
            Method::POST,
            &format!("/api/v1/statement-lines/{id}/dismiss-duplicate"),
            None,
        )
        .await;
    assert_eq!(st, 409, "already reviewed");
    // The next sync keeps the line (out of the journal) and does not mistake it for gone.
    let before = succeeded_runs(&s, &conn_id).await;
    let (_, q) = s
        .call(
            Method::POST,
            &format!("/api/v1/connections/{conn_id}/sync"),
            None,
        )
        .await;
    assert!(q["sync_run_id"].is_string());
    let run = wait_sync(&s, &conn_id, before).await;
    assert_eq!(run["rekeyed"], 0);
    // The twin was genuine: the bank still counts it, so the journal now differs by its amount.
    let amount: rust_decimal::Decimal = twin["amount"].as_str().unwrap().parse().unwrap();
    let mismatch = run["balance_mismatches"].as_array().unwrap();
    assert_eq!(mismatch.len(), 1, "{run}");
    assert_eq!(
        mismatch[0]["difference"]
            .as_str()
            .unwrap()
            .parse::<rust_decimal::Decimal>()
            .unwrap(),
        amount
    );

    let (st, l) = s
        .call(
            Method::POST,
            &format!("/api/v1/statement-lines/{id}/undo-review"),
            None,
        )
        .await;
    assert_eq!(st, 200, "{l}");
    assert_eq!(
        (l["duplicate_review"].as_str(), l["in_journal"].as_bool()),
        (Some("flagged"), Some(true))
    );
    let truth = s.sim.ground_truth(&se_conn).unwrap();
    assert!(
        truth.accounts.iter().all(|a| a.duplicated_ids.is_empty()),
        "unduplicated at Salt Edge"
    );
    let (st, l) = s
        .call(
            Method::POST,
            &format!("/api/v1/statement-lines/{id}/dismiss-duplicate"),
            None,
        )
        .await;
    assert_eq!(
        (
            st.as_u16(),
            l["duplicate_review"].as_str(),
            l["in_journal"].as_bool()
        ),
        (200, Some("dismissed"), Some(true))
    );
    let (_, l) = s
        .call(
            Method::POST,
            &format!("/api/v1/statement-lines/{id}/undo-review"),
            None,
        )
        .await;
    assert_eq!(l["duplicate_review"], "flagged");
    let (st, _) = s
        .call(
            Method::POST,
            "/api/v1/statement-lines/999999999/undo-review",
            None,
        )
        .await;
    assert_eq!(st, 404);
}

/// An expired or already revoked consent is not an error for revoke or delete.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn expired_or_revoked_consents_do_not_block_revoke_or_delete(pool: PgPool) {
    let s = stack(pool).await;
    let mut ids = vec![];
    for _ in 0..2 {
        let (st, link) = s
            .call(
                Method::POST,
                "/api/v1/connections",
                Some(link_body(if ids.is_empty() {
                    "fake_client_xf"
                } else {
                    "fakebank_simple_xf"
                })),
            )
            .await;
        assert_eq!(st, 201, "{link}");
        s.complete_connect(link["connect_url"].as_str().unwrap(), true)
            .await;
        let id = eventually("the connection appears", || async {
            let (_, list) = s.call(Method::GET, "/api/v1/connections", None).await;
            list.as_array()
                .unwrap()
                .iter()
                .map(|c| c["id"].as_str().unwrap().to_string())
                .find(|c| !ids.contains(c))
        })
        .await;
        wait_sync(&s, &id, 0).await;
        ids.push(id);
    }
    async fn se(s: &Stack, id: &str) -> String {
        let (_, c) = s
            .call(Method::GET, &format!("/api/v1/connections/{id}"), None)
            .await;
        c["saltedge_id"].as_str().unwrap().to_string()
    }
    // Expired at Salt Edge: revoke answers 200, then delete goes through.
    let expired = se(&s, &ids[0]).await;
    s.sim.expire_consent(&expired);
    let (st, body) = s
        .call(
            Method::POST,
            &format!("/api/v1/connections/{}/revoke", ids[0]),
            None,
        )
        .await;
    assert_eq!(st, 200, "{body}");
    let (st, body) = s
        .call(
            Method::DELETE,
            &format!("/api/v1/connections/{}", ids[0]),
            None,
        )
        .await;
    assert_eq!(st, 204, "{body}");
    // Revoked at the bank's side already: revoke twice, then delete.
    let second = se(&s, &ids[1]).await;
    for _ in 0..2 {
        let (st, body) = s
            .call(
                Method::POST,
                &format!("/api/v1/connections/{}/revoke", ids[1]),
                None,
            )
            .await;
        assert_eq!(st, 200, "{body}");
    }
    assert!(s.sim.consents(&second).last().unwrap().1);
    let (st, body) = s
        .call(
            Method::DELETE,
            &format!("/api/v1/connections/{}", ids[1]),
            None,
        )
        .await;
    assert_eq!(st, 204, "{body}");
}

/// Salt Edge's real signed callback (`../shared/conformance/saltedge-callback-v5.json`) was
/// posted to a URL registered with a trailing slash. Registered so here, the receiver answers
/// at that path and accepts it; a URL that differs by the slash is not that URL.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn the_real_callback_is_accepted_at_its_registered_url(pool: PgPool) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/conformance/saltedge-callback-v5.json");
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

fn signed(s: &Stack, kind: &str, body: &str) -> String {
    Signer::from_pem(keys::SIMULATOR_PRIVATE_PEM)
        .unwrap()
        .sign_callback(&s.callback_url(kind), body.as_bytes())
}

#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn forged_missing_replayed_and_duplicate_callbacks(pool: PgPool) {
    let s = stack(pool).await;
    let body = json!({ "data": { "connection_id": "100000000000000999", "customer_id": "1", "stage": "start" },
                       "meta": { "version": "5", "time": chrono::Utc::now() } })
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
    assert_eq!(all_lines(&s).await.len(), expected);

    // Out of order: a late, older notify does not move the stage back.
    let (_, before) = s
        .call(Method::GET, &format!("/api/v1/connections/{conn_id}"), None)
        .await;
    assert_eq!(before["stage"], "finish");
    let late = json!({ "data": { "connection_id": list[0]["saltedge_id"], "customer_id": "x", "stage": "start" },
                       "meta": { "version": "5", "time": chrono::Utc::now() - chrono::Duration::minutes(5) } })
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
    let kinds: Vec<&str> = jobs
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

#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn openapi_health_metrics(pool: PgPool) {
    let s = stack(pool).await;
    let doc: Value = s
        .http
        .get(format!("{}/api/v1/openapi.json", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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
        Client::new(
            saltedge_client::ClientConfig::signed(
                sim.api_base(),
                sim.app_credentials().0,
                sim.app_credentials().1,
                saltedge_sim::keys::CLIENT_PRIVATE_PEM,
            )
            .expect("test key"),
        )
        .unwrap(),
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
        banksync_http::serve::serve(listener, app, Some(&tls), shutdown, Duration::from_secs(1))
            .await
    });
    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ck.cert.pem().as_bytes()).unwrap())
        .resolve("localhost", ([127, 0, 0, 1], port).into())
        .build()
        .unwrap();
    let body = json!({ "data": { "connection_id": "1", "customer_id": "1" }, "meta": { "version": "5", "time": chrono::Utc::now() } }).to_string();
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

/// Arbitrary JSON, nested a few levels.
fn any_json() -> impl proptest::strategy::Strategy<Value = Value> {
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
fn link_like() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    (any_json(), any_json(), ".{0,64}", ".{0,64}", any::<bool>()).prop_map(|(p, r, email, phone, flag)| {
        json!({ "provider_code": p, "phone": phone, "email": email, "return_to": r, "allow_second_connection": flag })
    })
}

fn samples<S: proptest::strategy::Strategy>(s: S, n: usize) -> Vec<S::Value> {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    (0..n)
        .map(|_| s.new_tree(&mut runner).unwrap().current())
        .collect()
}

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

/// Poison records among good ones: a transaction whose amount no decimal can hold, one with
/// an impossible date, one whose currency is no code, and an account in a crypto currency.
/// The bad ones are quarantined with their raw JSON and reason, visible through the API;
/// every other line imports, and the crypto account is stored as given.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn poison_records_are_quarantined_and_the_rest_imports(pool: PgPool) {
    let s = stack(pool).await;
    let (_, se_conn) = s.sim.seed_connection("poison@x.example", "fake_client_xf");
    let mut victims = vec![];
    s.sim.edit_connection(&se_conn, |rec| {
        rec.accounts[1].currency_code = "USDT".into();
        let acc0 = rec.accounts[0].id.clone();
        let mut mine = rec.posted.iter_mut().filter(|t| t.account_id == acc0);
        let big = mine.next().unwrap();
        big.amount = "12345.6789".parse().unwrap();
        victims.push(big.id.clone());
        let bad_date = mine.next().unwrap();
        bad_date.made_on = chrono::NaiveDate::from_ymd_opt(1901, 1, 1).unwrap();
        victims.push(bad_date.id.clone());
        let bad_currency = mine.next().unwrap();
        bad_currency.currency_code = "€uro!".into();
        victims.push(bad_currency.id.clone());
        for t in rec
            .posted
            .iter_mut()
            .chain(rec.pending.iter_mut())
            .filter(|t| t.account_id != acc0)
        {
            t.currency_code = "USDT".into();
        }
    });
    // The wire gets what no Rust type would produce.
    s.sim.set_body_rewrites(vec![
        ("\"amount\":12345.6789".into(), "\"amount\":1e400".into()),
        (
            "\"made_on\":\"1901-01-01\"".into(),
            "\"made_on\":\"2024-02-30\"".into(),
        ),
    ]);
    let client = Client::new(
        saltedge_client::ClientConfig::signed(
            s.sim.api_base(),
            s.sim.app_credentials().0,
            s.sim.app_credentials().1,
            keys::CLIENT_PRIVATE_PEM,
        )
        .unwrap(),
    )
    .unwrap();
    let company: Uuid = sqlx::query_scalar("SELECT id FROM companies WHERE name = 'ACME Books'")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    let conn = sync_engine::connections::adopt(&s.pool, &client, company, &se_conn)
        .await
        .unwrap();
    let report = sync_engine::sync_connection(&s.pool, &client, conn.id, &Default::default())
        .await
        .unwrap();
    assert_eq!(report.run.status, "succeeded");
    assert_eq!(report.run.quarantined, 3, "{:?}", report.run);

    let (st, q) = s
        .call(
            Method::GET,
            &format!("/api/v1/connections/{}/quarantine", conn.id),
            None,
        )
        .await;
    assert_eq!(st, 200, "{q}");
    let q = q.as_array().unwrap();
    assert_eq!(q.len(), 3);
    let mut ids: Vec<&str> = q
        .iter()
        .map(|r| r["saltedge_id"].as_str().unwrap())
        .collect();
    ids.sort();
    let mut want: Vec<&str> = victims.iter().map(String::as_str).collect();
    want.sort();
    assert_eq!(ids, want);
    assert!(
        q.iter()
            .any(|r| r["raw"].as_str().unwrap().contains("1e400")
                && r["reason"].as_str().unwrap().contains("amount")),
        "{q:?}"
    );
    assert!(
        q.iter().any(|r| r["reason"]
            .as_str()
            .unwrap()
            .contains("\"€uro!\" is not a currency code")),
        "{q:?}"
    );
    assert!(q
        .iter()
        .all(|r| r["kind"] == "transaction" && r["sync_run_id"] == json!(report.run.id)));

    let truth = s.sim.ground_truth(&se_conn).unwrap();
    let expected: usize = truth
        .accounts
        .iter()
        .map(|a| a.posted.len() + a.pending.len())
        .sum::<usize>()
        - 3;
    assert_eq!(
        all_lines(&s).await.len(),
        expected,
        "every other line imported"
    );
    let (_, c) = s
        .call(
            Method::GET,
            &format!("/api/v1/connections/{}", conn.id),
            None,
        )
        .await;
    assert!(
        c["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["currency"] == "USDT"),
        "{c}"
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
    let log = log.as_array().unwrap();
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

/// `/metrics` reads no table per scrape (gauges come from a timer), even in a storm of
/// scrapes during a sync, and can require a token; `/livez` fails when a job loop is silent
/// for too long while `/readyz` still says the API can serve.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn metrics_storm_token_and_liveness(pool: PgPool) {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let client = Client::new(
        saltedge_client::ClientConfig::signed(
            sim.api_base(),
            sim.app_credentials().0,
            sim.app_credentials().1,
            keys::CLIENT_PRIVATE_PEM,
        )
        .unwrap(),
    )
    .unwrap();
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
    assert_eq!(sync.await.unwrap().unwrap().run.status, "succeeded");
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

/// Links a bank through the API and waits for its first sync; returns the connection id.
async fn linked(s: &Stack, provider: &str) -> String {
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

async fn jobs_count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM jobs")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// What a connection's state forbids is 409 with guidance, and queues nothing: reading the
/// bank again needs an active connection with a live consent; update credentials (the way
/// out of an inactive connection or a lapsed consent) is refused only once the connection
/// is gone or disabled.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn connection_states_refuse_what_they_forbid(pool: PgPool) {
    let s = stack(pool.clone()).await;
    let conn = linked(&s, "fake_client_xf").await;
    let set = |sql: &'static str| {
        let (pool, conn) = (pool.clone(), conn.clone());
        async move {
            sqlx::query(sql)
                .bind(Uuid::parse_str(&conn).unwrap())
                .execute(&pool)
                .await
                .unwrap()
        }
    };
    let back = json!({ "return_to": "https://books.example/back" });
    // (state set by SQL, its name, [(operation, the code it is refused with or None)])
    type Case = (
        &'static str,
        &'static str,
        &'static [(&'static str, Option<&'static str>)],
    );
    let cases: [Case; 4] = [
        ("UPDATE connections SET status = 'inactive' WHERE id = $1", "connection_inactive",
            &[("sync", Some("connection_inactive")), ("fetch-accounts", Some("connection_inactive")), ("update-credentials", None)]),
        ("UPDATE connections SET status = 'active', consent_expires_at = now() - interval '1 day' WHERE id = $1", "consent_expired",
            &[("sync", Some("consent_expired")), ("fetch-accounts", Some("consent_expired")), ("update-credentials", None)]),
        ("UPDATE connections SET status = 'disabled', consent_expires_at = NULL WHERE id = $1", "connection_disabled",
            &[("sync", Some("connection_disabled")), ("fetch-accounts", Some("connection_disabled")), ("update-credentials", Some("connection_disabled"))]),
        ("UPDATE connections SET status = 'removed' WHERE id = $1", "connection_removed",
            &[("sync", Some("connection_removed")), ("fetch-accounts", Some("connection_removed")), ("update-credentials", Some("connection_removed")),
              ("revoke", Some("connection_removed")), ("interactive", Some("connection_removed"))]),
    ];
    for (sql, state, ops) in cases {
        set(sql).await;
        for (op, refused) in ops.iter() {
            let jobs = jobs_count(&pool).await;
            let sessions = s
                .sim
                .requests()
                .iter()
                .filter(|r| r.path.contains("connect_sessions"))
                .count();
            let body = match *op {
                "sync" | "revoke" => None,
                "interactive" => Some(json!({ "credentials": { "sms": "123" } })),
                _ => Some(back.clone()),
            };
            let (st, p) = s
                .call(
                    Method::POST,
                    &format!("/api/v1/connections/{conn}/{op}"),
                    body,
                )
                .await;
            match refused {
                Some(code) => {
                    assert_eq!(
                        (st.as_u16(), p["code"].as_str()),
                        (409, Some(*code)),
                        "{state}: {op}: {p}"
                    );
                    assert!(
                        p["guidance"]
                            .as_str()
                            .is_some_and(|g| g.contains("Update credentials")
                                || g.to_lowercase().contains("link the bank again")),
                        "{p}"
                    );
                    assert_eq!(
                        jobs_count(&pool).await,
                        jobs,
                        "{state}: {op} queued nothing"
                    );
                    let now = s
                        .sim
                        .requests()
                        .iter()
                        .filter(|r| r.path.contains("connect_sessions"))
                        .count();
                    assert_eq!(now, sessions, "{state}: {op} asked Salt Edge nothing");
                }
                None => assert_eq!(st, 200, "{state}: {op} is the way out: {p}"),
            }
        }
    }
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
            format!("/api/v1/statement-lines?status=posted&cursor={line_cursor}"),
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
    let doc: Value = s
        .http
        .get(format!("{}/api/v1/openapi.json", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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
