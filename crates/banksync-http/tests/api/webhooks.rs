//! Outbound webhooks against a real receiving HTTP server that fails, hangs and is down;
//! signatures verified by the `standardwebhooks` package from PyPI (`scripts/py-check`).

use super::support::*;
use axum::extract::State as AxState;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use sync_engine::webhooks::{Deliverer, DeliveryConfig, TargetPolicy};

/// What the receiver does with the next requests.
#[derive(Clone, Copy, Debug)]
enum Mode {
    Ok,
    Fail,
    Hang,
}

/// A request as the receiver saw it: headers and body.
type Seen = (BTreeMap<String, String>, String);

#[derive(Clone, Default)]
struct Receiver {
    /// Every request seen (recorded on arrival, before answering): headers and body.
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Modes for the next requests, in order; then `Ok`.
    script: Arc<Mutex<std::collections::VecDeque<Mode>>>,
}

async fn receive(
    AxState(r): AxState<Receiver>,
    headers: axum::http::HeaderMap,
    body: String,
) -> axum::http::StatusCode {
    let h: BTreeMap<String, String> = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    r.seen.lock().unwrap().push((h, body));
    let mode = r.script.lock().unwrap().pop_front().unwrap_or(Mode::Ok);
    match mode {
        Mode::Ok => axum::http::StatusCode::NO_CONTENT,
        Mode::Fail => axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            axum::http::StatusCode::NO_CONTENT
        }
    }
}

/// Starts the receiver on `port` (0: any); returns its address.
async fn start_receiver(r: &Receiver, port: u16) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .route(
            "/moved",
            axum::routing::post(|| async {
                (
                    axum::http::StatusCode::TEMPORARY_REDIRECT,
                    [("location", "/hook")],
                )
            }),
        )
        .with_state(r.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// A free port nothing listens on (yet).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn fast() -> DeliveryConfig {
    DeliveryConfig {
        policy: TargetPolicy {
            allow_http: true,
            allow_private_targets: true,
        },
        connect_timeout: Duration::from_millis(500),
        timeout: Duration::from_millis(700),
        retry_base: Duration::from_millis(50),
        retry_max: Duration::from_millis(400),
        poll: Duration::from_millis(20),
        lease: Duration::from_millis(1500),
        ..Default::default()
    }
}

/// A deliverer (one replica's) that runs until the returned sender says stop.
fn deliverer(
    pool: &PgPool,
    cfg: DeliveryConfig,
) -> (
    tokio::task::JoinHandle<()>,
    tokio::sync::watch::Sender<bool>,
) {
    let (tx, rx) = tokio::sync::watch::channel(false);
    (tokio::spawn(Deliverer::new(pool.clone(), cfg).run(rx)), tx)
}

async fn register(s: &Stack, url: &str, events: Option<Value>) -> (String, String) {
    let mut body = json!({ "url": url, "description": "books frontend" });
    if let Some(e) = events {
        body["events"] = e;
    }
    let (st, v) = s
        .call(Method::POST, "/api/v1/webhook-endpoints", Some(body))
        .await;
    assert_eq!(st, 201, "{v}");
    let secret = v["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    (v["endpoint"]["id"].as_str().unwrap().to_string(), secret)
}

/// Revokes the connection's consent through the API (a `connection.needs_reconnect`).
async fn revoke(s: &Stack, conn: &str) {
    let (st, _) = s
        .call(
            Method::POST,
            &format!("/api/v1/connections/{conn}/revoke"),
            None,
        )
        .await;
    assert_eq!(st, 200);
}

/// The endpoint's events as the outbox holds them, oldest first: (event id, connection).
async fn outbox(pool: &PgPool, endpoint: &str) -> Vec<(i64, Option<uuid::Uuid>, String)> {
    sqlx::query_as(
        "SELECT ev.id, ev.connection_id, ev.kind FROM webhook_deliveries d JOIN webhook_events ev ON ev.id = d.event_id
         WHERE d.endpoint_id = $1::uuid ORDER BY ev.id",
    )
    .bind(endpoint)
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn all_delivered(pool: &PgPool, endpoint: &str) {
    eventually("every delivery delivered", || async {
        let pending: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = $1::uuid AND state = 'pending'",
        )
        .bind(endpoint)
        .fetch_one(pool)
        .await
        .unwrap();
        (pending == 0).then_some(())
    })
    .await;
}

/// Checks what the receiver saw: every event at least once; a repeat only with the same
/// id and body; per connection, first arrivals in event order; every signature verified
/// by the reference implementation with `secret`.
fn check_received(r: &Receiver, events: &[(i64, Option<uuid::Uuid>, String)], secret: &str) {
    let seen = r.seen.lock().unwrap().clone();
    let mut bodies: HashMap<String, String> = HashMap::new();
    let mut first: Vec<String> = vec![];
    for (h, body) in &seen {
        let id = h["webhook-id"].clone();
        match bodies.get(&id) {
            Some(b) => assert_eq!(b, body, "a repeat of {id} carries the same body"),
            None => {
                bodies.insert(id.clone(), body.clone());
                first.push(id);
            }
        }
        let v: Value = serde_json::from_str(body).unwrap();
        assert!(
            v["type"].is_string() && v["timestamp"].is_string() && v["data"].is_object(),
            "{v}"
        );
    }
    for (id, _, kind) in events {
        let key = format!("evt_{id}");
        let body = bodies
            .get(&key)
            .unwrap_or_else(|| panic!("{key} ({kind}) never arrived"));
        assert_eq!(
            serde_json::from_str::<Value>(body).unwrap()["type"],
            kind.as_str()
        );
    }
    assert_eq!(
        bodies.len(),
        events.len(),
        "nothing but the outbox's events"
    );
    let mut by_conn: HashMap<Option<uuid::Uuid>, Vec<i64>> = HashMap::new();
    let conn_of: HashMap<String, Option<uuid::Uuid>> = events
        .iter()
        .map(|(id, c, _)| (format!("evt_{id}"), *c))
        .collect();
    for id in &first {
        by_conn
            .entry(conn_of[id])
            .or_default()
            .push(id.trim_start_matches("evt_").parse().unwrap());
    }
    for (conn, ids) in by_conn {
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted, "connection {conn:?}: in order");
    }
    // The reference implementation verifies every request (and would refuse a stale one).
    let file =
        std::env::temp_dir().join(format!("banksync-webhooks-{}.json", uuid::Uuid::new_v4()));
    let requests: Vec<Value> = seen
        .iter()
        .map(|(h, b)| json!({ "headers": h, "body": b }))
        .collect();
    std::fs::write(&file, serde_json::to_vec(&requests).unwrap()).unwrap();
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let out = std::process::Command::new("bash")
        .arg(format!("{root}/scripts/py-check"))
        .arg("webhooks")
        .arg(&file)
        .arg(secret)
        .output()
        .unwrap();
    std::fs::remove_file(&file).ok();
    assert!(
        out.status.success(),
        "standardwebhooks refused: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verified"].as_array().unwrap().len(), seen.len());
}

/// The receiver is down, then answers 500s, then hangs past the timeout, then works: every
/// event arrives, signed, in order per connection, repeats only with the same id.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn every_event_arrives_signed_and_in_order_through_failures(pool: PgPool) {
    let s = stack(pool.clone()).await;
    let port = free_port();
    let (endpoint, secret) = register(&s, &format!("http://127.0.0.1:{port}/hook"), None).await;
    let (task, stop) = deliverer(&pool, fast());
    // Down: nothing listens yet while the bank is linked and synced.
    let conn = linked(&s, "fake_client_xf").await;
    revoke(&s, &conn).await;
    eventually("failed attempts while the receiver is down", || async {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = $1::uuid AND attempts > 1",
        )
        .bind(&endpoint)
        .fetch_one(&pool)
        .await
        .unwrap();
        (n > 0).then_some(())
    })
    .await;
    let r = Receiver::default();
    r.script
        .lock()
        .unwrap()
        .extend([Mode::Fail, Mode::Fail, Mode::Hang, Mode::Fail]);
    start_receiver(&r, port).await;
    all_delivered(&pool, &endpoint).await;
    let events = outbox(&pool, &endpoint).await;
    let kinds: Vec<&str> = events.iter().map(|e| e.2.as_str()).collect();
    for k in [
        "connection.status_changed",
        "lines.changed",
        "connection.needs_reconnect",
    ] {
        assert!(kinds.contains(&k), "{k} in {kinds:?}");
    }
    check_received(&r, &events, &secret);

    // The delivery log tells what happened; lines.changed carries a cursor the feed takes.
    let (_, log) = s
        .call(
            Method::GET,
            &format!("/api/v1/webhook-endpoints/{endpoint}/deliveries?limit=100"),
            None,
        )
        .await;
    let items = log["items"].as_array().unwrap();
    assert_eq!(items.len(), events.len());
    assert!(items.iter().all(|d| d["state"] == "delivered"));
    assert!(
        items.iter().any(|d| d["attempts"].as_i64().unwrap() > 1),
        "retries are logged"
    );
    let lines_changed = r
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|(_, b)| serde_json::from_str::<Value>(b).unwrap())
        .find(|v| v["type"] == "lines.changed")
        .unwrap();
    let cursor = lines_changed["data"]["cursor"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, feed) = s
        .call(
            Method::GET,
            &format!("/api/v1/changes?cursor={cursor}&limit=1000"),
            None,
        )
        .await;
    assert_eq!(st, 200, "{feed}");
    let added = feed["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["entity"] == "line")
        .count() as i64;
    assert!(
        added >= lines_changed["data"]["inserted"].as_i64().unwrap(),
        "the cursor reads the run's lines"
    );

    // Redelivery: the same message again, with its id.
    let first = items.last().unwrap();
    let before = r.seen.lock().unwrap().len();
    let (st, _) = s
        .call(
            Method::POST,
            &format!("/api/v1/webhook-deliveries/{}/redeliver", first["id"]),
            None,
        )
        .await;
    assert_eq!(st, 202);
    all_delivered(&pool, &endpoint).await;
    let seen = r.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), before + 1);
    assert_eq!(
        seen.last().unwrap().0["webhook-id"],
        first["message_id"].as_str().unwrap()
    );
    stop.send(true).unwrap();
    task.await.unwrap();
}

/// A replica dies while a delivery hangs: another replica delivers it after the lease, with
/// the same id; nothing is lost or reordered.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn a_replica_killed_mid_delivery_loses_nothing(pool: PgPool) {
    let s = stack(pool.clone()).await;
    let r = Receiver::default();
    r.script.lock().unwrap().push_back(Mode::Hang);
    let addr = start_receiver(&r, 0).await;
    let (endpoint, secret) = register(&s, &format!("http://{addr}/hook"), None).await;
    let slow = DeliveryConfig {
        timeout: Duration::from_secs(20),
        ..fast()
    };
    let (a, _stop_a) = deliverer(&pool, slow.clone());
    let conn = linked(&s, "fake_client_xf").await;
    eventually("replica A is inside a delivery", || async {
        (!r.seen.lock().unwrap().is_empty()).then_some(())
    })
    .await;
    a.abort();
    let _ = a.await;
    let (b, stop_b) = deliverer(&pool, slow);
    revoke(&s, &conn).await;
    all_delivered(&pool, &endpoint).await;
    let events = outbox(&pool, &endpoint).await;
    check_received(&r, &events, &secret);
    let seen = r.seen.lock().unwrap().clone();
    assert!(
        seen.len() > events.len(),
        "the killed replica's message came again"
    );
    assert_eq!(
        seen[0].0["webhook-id"], seen[1].0["webhook-id"],
        "under its own id"
    );
    stop_b.send(true).unwrap();
    b.await.unwrap();
}

/// The endpoint API: validation, events filter, secrets shown once and rotated (both
/// signatures during the grace), another company's endpoint not found; an endpoint
/// failing too long is disabled and reported, and resumes when enabled again; the address
/// is checked again when sending.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn endpoints_are_managed_disabled_and_guarded(pool: PgPool) {
    let s = stack(pool.clone()).await;
    for (url, code) in [
        ("ftp://x.example/", "invalid_webhook_url"),
        ("https://u:p@x.example/", "invalid_webhook_url"),
    ] {
        let (st, v) = s
            .call(
                Method::POST,
                "/api/v1/webhook-endpoints",
                Some(json!({ "url": url })),
            )
            .await;
        assert_eq!(
            (st.as_u16(), v["code"].as_str()),
            (422, Some(code)),
            "{url}"
        );
    }
    let (st, _) = s
        .call(
            Method::POST,
            "/api/v1/webhook-endpoints",
            Some(json!({ "url": "https://x.example/", "events": ["nope"] })),
        )
        .await;
    assert_eq!(st, 422);

    let r = Receiver::default();
    r.script.lock().unwrap().extend([Mode::Fail; 1000]);
    let addr = start_receiver(&r, 0).await;
    let (endpoint, secret) = register(
        &s,
        &format!("http://{addr}/hook"),
        Some(json!(["connection.needs_reconnect"])),
    )
    .await;
    let (_, listed) = s.call(Method::GET, "/api/v1/webhook-endpoints", None).await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(
        !listed.to_string().contains(&secret),
        "the secret is never listed"
    );
    let (st, _) = s
        .call(
            Method::GET,
            &format!("/api/v1/webhook-endpoints/{}", uuid::Uuid::new_v4()),
            None,
        )
        .await;
    assert_eq!(st, 404);

    let failing = DeliveryConfig {
        disable_after: Duration::from_millis(300),
        ..fast()
    };
    let (task, stop) = deliverer(&pool, failing);
    let conn = linked(&s, "fake_client_xf").await;
    revoke(&s, &conn).await;
    let disabled = eventually("the endpoint is disabled", || async {
        let (_, e) = s
            .call(
                Method::GET,
                &format!("/api/v1/webhook-endpoints/{endpoint}"),
                None,
            )
            .await;
        (e["status"] == "disabled").then_some(e)
    })
    .await;
    assert!(
        disabled["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("500"),
        "{disabled}"
    );
    let audit: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'webhook endpoint disabled'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(audit, 1, "reported");
    let events = outbox(&pool, &endpoint).await;
    assert!(
        events.iter().all(|e| e.2 == "connection.needs_reconnect"),
        "the filter holds: {events:?}"
    );

    // Rotated, then enabled again with a working receiver: delivered with both signatures.
    let (st, rotated) = s
        .call(
            Method::POST,
            &format!("/api/v1/webhook-endpoints/{endpoint}/rotate-secret"),
            None,
        )
        .await;
    assert_eq!(st, 200);
    let new_secret = rotated["secret"].as_str().unwrap().to_string();
    assert_ne!(new_secret, secret);
    r.script.lock().unwrap().clear();
    let before = r.seen.lock().unwrap().len();
    let (st, e) = s
        .call(
            Method::PATCH,
            &format!("/api/v1/webhook-endpoints/{endpoint}"),
            Some(json!({ "enabled": true })),
        )
        .await;
    assert_eq!((st.as_u16(), e["status"].as_str()), (200, Some("enabled")));
    all_delivered(&pool, &endpoint).await;
    let after: Vec<_> = r.seen.lock().unwrap()[before..].to_vec();
    assert!(!after.is_empty());
    assert!(after
        .iter()
        .all(|(h, _)| h["webhook-signature"].split(' ').count() == 2));
    let only_new = Receiver::default();
    only_new.seen.lock().unwrap().extend(after.clone());
    check_received(&only_new, &events, &new_secret);
    check_received(&only_new, &events, &secret);
    stop.send(true).unwrap();
    task.await.unwrap();

    // Sent only to addresses the policy allows, checked again when sending.
    let strict = DeliveryConfig {
        policy: TargetPolicy {
            allow_http: true,
            allow_private_targets: false,
        },
        ..fast()
    };
    let before = r.seen.lock().unwrap().len();
    let (_, redo) = s
        .call(
            Method::GET,
            &format!("/api/v1/webhook-endpoints/{endpoint}/deliveries"),
            None,
        )
        .await;
    let id = redo["items"][0]["id"].clone();
    s.call(
        Method::POST,
        &format!("/api/v1/webhook-deliveries/{id}/redeliver"),
        None,
    )
    .await;
    let (task, stop) = deliverer(&pool, strict);
    let refused = eventually("the attempt is refused", || async {
        let (_, log) = s
            .call(
                Method::GET,
                &format!("/api/v1/webhook-endpoints/{endpoint}/deliveries"),
                None,
            )
            .await;
        let d = log["items"][0].clone();
        d["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("private"))
            .then_some(d)
    })
    .await;
    assert_eq!(refused["state"], "pending");
    assert_eq!(
        r.seen.lock().unwrap().len(),
        before,
        "nothing reached the private address"
    );
    stop.send(true).unwrap();
    task.await.unwrap();
    let (st, _) = s
        .call(
            Method::DELETE,
            &format!("/api/v1/webhook-endpoints/{endpoint}"),
            None,
        )
        .await;
    assert_eq!(st, 204);

    // A redirect is not followed: the attempt fails, the target it names sees nothing.
    let (moved, _) = register(&s, &format!("http://{addr}/moved"), None).await;
    let (task, stop) = deliverer(&pool, fast());
    let before = r.seen.lock().unwrap().len();
    sqlx::query("UPDATE connections SET status = 'inactive' WHERE id = $1::uuid")
        .bind(&conn)
        .execute(&pool)
        .await
        .unwrap();
    let d = eventually("the redirect answered", || async {
        let (_, log) = s
            .call(
                Method::GET,
                &format!("/api/v1/webhook-endpoints/{moved}/deliveries"),
                None,
            )
            .await;
        let d = log["items"][0].clone();
        (d["last_status"] == 307).then_some(d)
    })
    .await;
    assert_eq!(d["state"], "pending");
    assert_eq!(r.seen.lock().unwrap().len(), before, "not followed");
    stop.send(true).unwrap();
    task.await.unwrap();
}

/// Consent reminders: 15, 3 and 1 days before, then expired (with needs_reconnect), each
/// once per consent; a connection first seen late gets only the nearest reminder; a new
/// consent starts again.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn consent_reminders_fire_once_per_threshold(pool: PgPool) {
    let s = stack(pool.clone()).await;
    let (endpoint, _) = register(&s, "http://127.0.0.1:9/hook", None).await;
    let conn = linked(&s, "fake_client_xf").await;
    let expires = banksync_testkit::clock::now() + chrono::Duration::days(20);
    sqlx::query("UPDATE connections SET consent_expires_at = $2 WHERE id = $1::uuid")
        .bind(&conn)
        .bind(expires)
        .execute(&pool)
        .await
        .unwrap();
    let reminders = || async {
        let rows: Vec<(String, Value)> = sqlx::query_as(
            "SELECT ev.kind, ev.payload FROM webhook_deliveries d JOIN webhook_events ev ON ev.id = d.event_id
             WHERE d.endpoint_id = $1::uuid AND ev.kind IN ('consent.expiring', 'consent.expired', 'connection.needs_reconnect')
             ORDER BY ev.id",
        )
        .bind(&endpoint)
        .fetch_all(&pool)
        .await
        .unwrap();
        rows.into_iter()
            .map(|(k, p)| format!("{k}:{}", p["data"]["expires_in_days"]))
            .collect::<Vec<_>>()
    };
    let check = |at: chrono::DateTime<chrono::Utc>| {
        let pool = pool.clone();
        async move {
            sync_engine::webhooks::reminders::check(&pool, at)
                .await
                .unwrap()
        }
    };
    let day = chrono::Duration::days(1);
    assert_eq!(check(expires - day * 16).await, 0, "nothing 16 days before");
    assert_eq!(check(expires - day * 15).await, 1);
    assert_eq!(check(expires - day * 14).await, 0, "once");
    assert_eq!(
        check(expires - day * 3 + chrono::Duration::hours(1)).await,
        1
    );
    assert_eq!(check(expires - day * 2).await, 0);
    assert_eq!(check(expires - chrono::Duration::hours(5)).await, 1);
    assert_eq!(check(expires + chrono::Duration::minutes(1)).await, 2);
    assert_eq!(check(expires + day).await, 0);
    assert_eq!(
        reminders().await,
        [
            "consent.expiring:15",
            "consent.expiring:3",
            "consent.expiring:1",
            "consent.expired:0",
            "connection.needs_reconnect:0"
        ]
    );
    // A new consent, first seen 2 days before it expires: the 3-day reminder only.
    let renewed = expires + day * 90;
    sqlx::query("UPDATE connections SET consent_expires_at = $2 WHERE id = $1::uuid")
        .bind(&conn)
        .bind(renewed)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(check(renewed - day * 2).await, 1);
    assert_eq!(
        check(renewed - day * 2 + chrono::Duration::hours(1)).await,
        0
    );
    assert_eq!(reminders().await.last().unwrap(), "consent.expiring:2");
}

/// Invalid credentials at the bank (a reconnect with a wrong password): the fail callback
/// records the error and `connection.needs_reconnect` is in the outbox with its reason.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn invalid_credentials_ask_for_a_reconnect(pool: PgPool) {
    let s = stack(pool.clone()).await;
    let (endpoint, _) = register(
        &s,
        "http://127.0.0.1:9/hook",
        Some(json!(["connection.needs_reconnect"])),
    )
    .await;
    let conn = linked(&s, "fake_client_xf").await;
    let (st, link) = s
        .call(
            Method::POST,
            &format!("/api/v1/connections/{conn}/update-credentials"),
            Some(json!({ "return_to": "https://books.example/back" })),
        )
        .await;
    assert_eq!(st, 200, "{link}");
    let r = s
        .http
        .post(link["connect_url"].as_str().unwrap())
        .form(&[
            ("login", "username"),
            ("password", "wrong"),
            ("consent", "on"),
        ])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_redirection(), "{}", r.status());
    let reason = eventually("connection.needs_reconnect in the outbox", || async {
        let data: Option<Value> = sqlx::query_scalar(
            "SELECT ev.payload->'data' FROM webhook_deliveries d JOIN webhook_events ev ON ev.id = d.event_id
             WHERE d.endpoint_id = $1::uuid AND ev.kind = 'connection.needs_reconnect'",
        )
        .bind(&endpoint)
        .fetch_optional(&pool)
        .await
        .unwrap();
        data
    })
    .await;
    assert_eq!(reason["reason"], "invalid_credentials", "{reason}");
    assert_eq!(reason["connection_id"], conn.as_str());
    assert_eq!(reason["error_class"], "InvalidCredentials");
}

/// Fair to every tenant: a company whose receivers never answer holds its share of the
/// deliverer (one delivery per endpoint, `per_company` for the company), never the whole
/// of it; deliveries to others go out as each one ends, never waiting for the slowest.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn a_company_whose_receivers_hang_holds_its_share_not_the_deliverer(pool: PgPool) {
    let s = stack(pool.clone()).await;
    let hang = Receiver::default();
    hang.script
        .lock()
        .unwrap()
        .extend(std::iter::repeat_n(Mode::Hang, 100));
    let hang_addr = start_receiver(&hang, 0).await;
    let ok = Receiver::default();
    let ok_addr = start_receiver(&ok, 0).await;
    let noisy: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM companies WHERE name = 'ACME Books'")
            .fetch_one(&pool)
            .await
            .unwrap();
    for _ in 0..6 {
        register(&s, &format!("http://{hang_addr}/hook"), None).await;
    }
    let quiet = companies::create(&pool, "Quiet Books").await.unwrap().id;
    let permissive = TargetPolicy {
        allow_http: true,
        allow_private_targets: true,
    };
    let quiet_endpoint = sync_engine::webhooks::endpoints::create(
        &pool,
        quiet,
        &format!("http://{ok_addr}/hook"),
        "",
        &[],
        &sync_engine::webhooks::Rules {
            policy: permissive,
            max_endpoints: 0,
            key: sync_engine::webhooks::SecretKey::development(),
        },
    )
    .await
    .unwrap()
    .endpoint
    .id
    .to_string();
    for company in [noisy, quiet] {
        for k in 0..3 {
            let mut tx = pool.begin().await.unwrap();
            sync_engine::webhooks::emit(&mut tx, company, None, "sync.failed", &json!({ "k": k }))
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
    }
    let cfg = DeliveryConfig {
        timeout: Duration::from_secs(8),
        lease: Duration::from_secs(20),
        batch: 4,
        per_company: 2,
        ..fast()
    };
    let started = std::time::Instant::now();
    let (d, stop) = deliverer(&pool, cfg);
    all_delivered(&pool, &quiet_endpoint).await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the quiet company's three deliveries went out while the hanging ones were held, \
         not after them ({:?})",
        started.elapsed()
    );
    assert_eq!(ok.seen.lock().unwrap().len(), 3);
    let hanging = hang.seen.lock().unwrap().len();
    assert!(
        (1..=2).contains(&hanging),
        "the noisy company holds at most its share of two requests at once: {hanging}"
    );
    stop.send(true).unwrap();
    d.abort();
}

/// Endpoints per company are capped; redelivering respects the endpoint's backoff.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn endpoints_are_capped_and_redelivery_waits_for_the_backoff(pool: PgPool) {
    let s = stack(pool.clone()).await;
    let company: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM companies WHERE name = 'ACME Books'")
            .fetch_one(&pool)
            .await
            .unwrap();
    let rules = sync_engine::webhooks::Rules {
        policy: TargetPolicy {
            allow_http: true,
            allow_private_targets: true,
        },
        max_endpoints: 2,
        key: sync_engine::webhooks::SecretKey::development(),
    };
    let create = || {
        sync_engine::webhooks::endpoints::create(
            &pool,
            company,
            "http://127.0.0.1:9/hook",
            "",
            &[],
            &rules,
        )
    };
    create().await.unwrap();
    create().await.unwrap();
    match create().await {
        Err(sync_engine::SyncError::Conflict { code, .. }) => {
            assert_eq!(code, "webhook_endpoint_limit")
        }
        other => panic!("a third endpoint over a cap of two: {other:?}"),
    }

    // A failing receiver: the first attempt fails, the next waits 30 s.
    let r = Receiver::default();
    r.script.lock().unwrap().push_back(Mode::Fail);
    let addr = start_receiver(&r, 0).await;
    let (endpoint, _) = register(&s, &format!("http://{addr}/hook"), None).await;
    sqlx::query("DELETE FROM webhook_endpoints WHERE url LIKE 'http://127.0.0.1:9/%'")
        .execute(&pool)
        .await
        .unwrap();
    let mut tx = pool.begin().await.unwrap();
    sync_engine::webhooks::emit(&mut tx, company, None, "sync.failed", &json!({}))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let (d, stop) = deliverer(
        &pool,
        DeliveryConfig {
            retry_base: Duration::from_secs(30),
            retry_max: Duration::from_secs(60),
            ..fast()
        },
    );
    let delivery: i64 = eventually("the first attempt failed", || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT id FROM webhook_deliveries WHERE endpoint_id = $1::uuid AND attempts = 1 AND last_error IS NOT NULL",
        )
        .bind(&endpoint)
        .fetch_optional(&pool)
        .await
        .unwrap()
    })
    .await;
    let (st, _) = s
        .call(
            Method::POST,
            &format!("/api/v1/webhook-deliveries/{delivery}/redeliver"),
            None,
        )
        .await;
    assert!(st.is_success(), "{st}");
    let wait: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM next_attempt_at - now())::float8 FROM webhook_deliveries WHERE id = $1",
    )
    .bind(delivery)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        wait > 20.0,
        "redelivering did not skip the backoff: next attempt in {wait} s"
    );
    assert_eq!(
        r.seen.lock().unwrap().len(),
        1,
        "the receiver was not hit again"
    );
    stop.send(true).unwrap();
    d.abort();
}

/// Signing secrets are sealed at rest: the row holds neither the secret nor its key
/// bytes; a row from before sealing is sealed in place; the deliverer signs with the
/// secret the API returned (verified by the reference implementation); a deliverer with
/// another key cannot open the row and sends nothing it could not sign.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn signing_secrets_are_sealed_at_rest(pool: PgPool) {
    let s = stack(pool.clone()).await;
    let r = Receiver::default();
    let addr = start_receiver(&r, 0).await;
    let (endpoint, secret) = register(&s, &format!("http://{addr}/hook"), None).await;
    let stored = || async {
        sqlx::query_scalar::<_, String>("SELECT secret FROM webhook_endpoints WHERE id = $1::uuid")
            .bind(&endpoint)
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    let key_part = secret.trim_start_matches("whsec_");
    let sealed = stored().await;
    assert!(sealed.starts_with("sealed:v1:"), "{sealed}");
    assert!(!sealed.contains(key_part));

    // A row from before sealing: put the secret back in clear, then seal the table.
    sqlx::query("UPDATE webhook_endpoints SET secret = $2 WHERE id = $1::uuid")
        .bind(&endpoint)
        .bind(&secret)
        .execute(&pool)
        .await
        .unwrap();
    let key = sync_engine::webhooks::SecretKey::development();
    let n = sync_engine::webhooks::seal::seal_clear_rows(&pool, &key)
        .await
        .unwrap();
    assert_eq!(n, 1);
    let resealed = stored().await;
    assert!(resealed.starts_with("sealed:v1:") && !resealed.contains(key_part));
    assert_eq!(
        sync_engine::webhooks::seal::seal_clear_rows(&pool, &key)
            .await
            .unwrap(),
        0,
        "nothing left in clear"
    );

    let company: uuid::Uuid =
        sqlx::query_scalar("SELECT company_id FROM webhook_endpoints WHERE id = $1::uuid")
            .bind(&endpoint)
            .fetch_one(&pool)
            .await
            .unwrap();
    let mut tx = pool.begin().await.unwrap();
    sync_engine::webhooks::emit(&mut tx, company, None, "sync.failed", &json!({ "k": 1 }))
        .await
        .unwrap();
    tx.commit().await.unwrap();

    // Another key: the row does not open, so nothing is sent.
    let wrong = DeliveryConfig {
        key: sync_engine::webhooks::SecretKey::from_bytes([9; 32]),
        ..fast()
    };
    let (d, stop) = deliverer(&pool, wrong);
    let error = eventually("the attempt fails", || async {
        sqlx::query_scalar::<_, Option<String>>(
            "SELECT last_error FROM webhook_deliveries WHERE endpoint_id = $1::uuid AND attempts > 0",
        )
        .bind(&endpoint)
        .fetch_optional(&pool)
        .await
        .unwrap()
        .flatten()
    })
    .await;
    stop.send(true).unwrap();
    d.await.unwrap();
    assert!(error.contains("sealed with key"), "{error}");
    assert!(r.seen.lock().unwrap().is_empty());

    // The right key: delivered, and signed with the secret the API returned.
    sqlx::query(
        "UPDATE webhook_deliveries SET next_attempt_at = now() WHERE endpoint_id = $1::uuid",
    )
    .bind(&endpoint)
    .execute(&pool)
    .await
    .unwrap();
    let (d, stop) = deliverer(&pool, fast());
    all_delivered(&pool, &endpoint).await;
    stop.send(true).unwrap();
    d.await.unwrap();
    let events = outbox(&pool, &endpoint).await;
    check_received(&r, &events, &secret);
}
