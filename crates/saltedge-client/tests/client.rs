//! The client against the simulator over real HTTP with real RSA signatures, and against
//! the shared conformance material (`support/conformance.rs`).
//!
//! Long because every endpoint and error path of the client is exercised against the simulator.

#[path = "support/conformance.rs"]
mod conformance;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::TryStreamExt;
use saltedge_client::models::*;
use saltedge_client::{Client, Error, ErrorClass, Signer, TransactionQuery, Verifier};
use saltedge_sim::{keys, ClientStatus, FaultAction, FaultRule, SimConfig, Simulator};

async fn sim(f: impl FnOnce(&mut SimConfig)) -> Simulator {
    let mut cfg = SimConfig::default();
    f(&mut cfg);
    Simulator::start(cfg).await.expect("simulator starts")
}

fn client(sim: &Simulator, f: impl FnOnce(&mut saltedge_client::ClientConfig)) -> Client {
    let mut c = saltedge_client::ClientConfig::signed(
        sim.api_base(),
        sim.app_credentials().0,
        sim.app_credentials().1,
        saltedge_sim::keys::CLIENT_PRIVATE_PEM,
    )
    .expect("test key");
    c.backoff_base = Duration::from_millis(5);
    c.backoff_max = Duration::from_millis(50);
    c.fetches_per_second = 0;
    f(&mut c);
    Client::new(c).unwrap()
}

fn api_class(e: &Error) -> (&ErrorClass, u16) {
    match e {
        Error::Api { class, status, .. } => (class, *status),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn signed_requests_are_accepted_by_a_live_client() {
    let sim = sim(|c| c.client_status = ClientStatus::Live).await;
    let c = client(&sim, |_| {});
    let customer = c.create_customer("acme-1").await.unwrap();
    assert_eq!(customer.identifier, "acme-1");
    assert_eq!(customer.id.len(), 18);
    let found = c.find_customers("acme-1").await.unwrap();
    assert_eq!(found, vec![customer.clone()]);
    assert!(sim
        .requests()
        .iter()
        .all(|r| r.signed && !r.customer_secret));

    // An app key sends the customer's and connection's secrets too.
    let app = c
        .as_app(&customer.secret, Some(&Sensitive("conn-secret".into())))
        .unwrap();
    app.list_countries().await.unwrap();
    let last = sim.requests().pop().unwrap();
    assert!(last.customer_secret && last.connection_secret && last.signed);
}

#[tokio::test]
async fn bad_signatures_get_the_guides_error_classes() {
    let sim = sim(|c| c.client_status = ClientStatus::Live).await;
    let missing = client(&sim, |c| c.signer = None);
    let e = missing.list_countries().await.unwrap_err();
    assert_eq!(api_class(&e).0, &ErrorClass::MissingSignature);

    let expired = client(&sim, |c| c.expires_in_secs = -5);
    let e = expired.list_countries().await.unwrap_err();
    assert_eq!(api_class(&e).0, &ErrorClass::RequestExpired);

    let too_far = client(&sim, |c| c.expires_in_secs = 2 * 3600);
    let e = too_far.list_countries().await.unwrap_err();
    assert_eq!(api_class(&e).0, &ErrorClass::ExpiresAtInvalid);

    // Signed with a key Salt Edge does not have for us.
    let forged = client(&sim, |c| {
        c.signer = Some(Signer::from_pem(keys::SIMULATOR_PRIVATE_PEM).unwrap())
    });
    let e = forged.create_customer("x").await.unwrap_err();
    assert_eq!(api_class(&e), (&ErrorClass::SignatureNotMatch, 401));
    // …and nothing was created.
    let ok = client(&sim, |_| {});
    assert!(ok.find_customers("x").await.unwrap().is_empty());

    let wrong_secret = client(&sim, |c| c.secret = Sensitive("nope".into()));
    let e = wrong_secret.list_countries().await.unwrap_err();
    assert_eq!(api_class(&e).0, &ErrorClass::ApiKeyNotFound);
}

#[tokio::test]
async fn pagination_returns_every_transaction_once_in_order() {
    let sim = sim(|c| {
        c.data.accounts_per_connection = 2;
        c.data.transactions_per_account = 1300;
    })
    .await;
    let (_, conn) = sim.seed_connection("paging", "fake_client_xf");
    let c = client(&sim, |_| {});
    let pages: Vec<Page<Transaction>> = c
        .transaction_pages(TransactionQuery::connection(&conn))
        .try_collect()
        .await
        .unwrap();
    assert!(pages.len() >= 3, "{} pages", pages.len());
    assert!(pages.iter().all(|p| p.items.len() <= 1000));
    assert!(pages.last().unwrap().next_id.is_none());
    let ids: Vec<u64> = pages
        .iter()
        .flat_map(|p| &p.items)
        .map(|t| t.id.parse().unwrap())
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids strictly increasing"
    );
    let truth = sim.ground_truth(&conn).unwrap();
    let mut expected: Vec<u64> = truth
        .accounts
        .iter()
        .flat_map(|a| &a.posted)
        .map(|t| t.id.parse().unwrap())
        .collect();
    expected.sort();
    assert!(expected.len() >= 2500);
    assert_eq!(ids, expected);
    // Only a client marks `duplicated`; those leave the posted list and are listed separately.
    let dups: Vec<Page<Transaction>> = c
        .duplicate_transaction_pages(TransactionQuery::connection(&conn))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        dups.iter().map(|p| p.items.len()).sum::<usize>(),
        0,
        "the simulator flags nothing itself"
    );
    let marked: Vec<String> = ids[..2].iter().map(|i| i.to_string()).collect();
    let customer = c.show_connection(&conn).await.unwrap().customer_id;
    c.mark_duplicated(&DuplicateRequest {
        customer_id: customer,
        transaction_ids: marked.clone(),
    })
    .await
    .unwrap();
    let dups: Vec<Page<Transaction>> = c
        .duplicate_transaction_pages(TransactionQuery::connection(&conn))
        .try_collect()
        .await
        .unwrap();
    let dup_ids: Vec<String> = dups
        .iter()
        .flat_map(|p| &p.items)
        .filter(|t| t.duplicated)
        .map(|t| t.id.clone())
        .collect();
    assert_eq!(dup_ids, marked);
    let posted: Vec<Page<Transaction>> = c
        .transaction_pages(TransactionQuery::connection(&conn))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        posted.iter().map(|p| p.items.len()).sum::<usize>(),
        ids.len() - 2
    );
    // Accounts stream too.
    let accounts = c.list_accounts(&conn).await.unwrap();
    assert_eq!(accounts.len(), 2);
    assert_eq!(accounts[0].balance, truth.accounts[0].balance);
}

#[tokio::test]
async fn every_injected_error_class_maps_to_its_variant() {
    let sim = sim(|_| {}).await;
    let c = client(&sim, |c| c.max_retries = 0);
    let mut classes: Vec<ErrorClass> = ErrorClass::ALL.to_vec();
    classes.push(ErrorClass::Other("SomethingNewFromSaltEdge".into()));
    for class in classes {
        sim.set_faults(vec![FaultRule::new(FaultAction::ErrorClass(
            class.to_string(),
        ))
        .on_path("countries")
        .nth(1)]);
        let e = c.list_countries().await.unwrap_err();
        // The status is the simulator's (its own table); the class must come through typed.
        let (got, status) = api_class(&e);
        assert_eq!(got, &class);
        assert!((400..600).contains(&status), "{class}: {status}");
    }
    sim.set_faults(vec![]);
    assert!(!c.list_countries().await.unwrap().is_empty());
}

#[tokio::test]
async fn transient_failures_are_retried_for_idempotent_requests_only() {
    let sim = sim(|_| {}).await;
    let c = client(&sim, |c| c.max_retries = 3);
    sim.set_faults(vec![FaultRule::new(FaultAction::Status(500))
        .on_path("countries")
        .times(2)]);
    assert!(!c.list_countries().await.unwrap().is_empty());
    let n = sim
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/countries"))
        .count();
    assert_eq!(n, 3, "two 500s then success");

    sim.set_faults(vec![FaultRule::new(FaultAction::Status(429))
        .on_path("currencies")
        .times(1)]);
    assert!(!c.list_currencies().await.unwrap().is_empty());

    // Too many failures: the last error surfaces.
    sim.set_faults(vec![
        FaultRule::new(FaultAction::Status(503)).on_path("providers")
    ]);
    let e = c.list_providers(&Default::default()).await.unwrap_err();
    assert!(matches!(e, Error::Api { status: 503, .. }), "{e:?}");
    assert_eq!(
        sim.requests()
            .iter()
            .filter(|r| r.path.ends_with("/providers"))
            .count(),
        4
    );

    // A POST is never repeated, even on a 500.
    sim.set_faults(vec![FaultRule::new(FaultAction::Status(500))
        .on_path("customers")
        .on_method("POST")
        .times(1)]);
    let e = c.create_customer("once").await.unwrap_err();
    assert!(matches!(e, Error::Api { status: 500, .. }), "{e:?}");
    assert_eq!(
        sim.requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/customers"))
            .count(),
        1
    );
}

#[tokio::test]
async fn timeouts_and_dropped_connections_are_distinct_errors() {
    let sim = sim(|_| {}).await;
    let c = client(&sim, |c| {
        c.max_retries = 0;
        c.timeout = Duration::from_millis(300);
    });
    sim.set_faults(vec![FaultRule::new(FaultAction::Delay(1500))
        .on_path("countries")
        .times(1)]);
    assert!(matches!(
        c.list_countries().await.unwrap_err(),
        Error::Timeout
    ));
    sim.set_faults(vec![FaultRule::new(FaultAction::Drop)
        .on_path("currencies")
        .times(1)]);
    assert!(matches!(
        c.list_currencies().await.unwrap_err(),
        Error::Transport(_)
    ));
    // With retries the drop is survived.
    let c = client(&sim, |c| c.max_retries = 2);
    sim.set_faults(vec![FaultRule::new(FaultAction::Drop)
        .on_path("currencies")
        .times(1)]);
    assert!(!c.list_currencies().await.unwrap().is_empty());
}

#[tokio::test]
async fn fetches_are_held_to_two_per_second() {
    let sim = sim(|_| {}).await;
    let c = client(&sim, |c| c.fetches_per_second = 2);
    let customer = c.create_customer("rate").await.unwrap();
    let req = CreateConnectSession {
        customer_id: customer.id.clone(),
        consent: ConsentRequest::default(),
        include_fake_providers: Some(true),
        ..Default::default()
    };
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let c = c.clone();
            let req = req.clone();
            tokio::spawn(async move { c.create_connect_session(&req).await.unwrap() })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let times: Vec<f64> = sim
        .requests()
        .iter()
        .filter(|r| r.path.contains("connect_sessions"))
        .map(|r| r.at_ms)
        .collect();
    assert_eq!(times.len(), 6);
    for w in times.windows(3) {
        assert!(
            w[2] - w[0] >= 990.0,
            "three fetches within one second: {times:?}"
        );
    }
}

/// A minimal receiver: records (path, signature, body) of every POST.
async fn receiver() -> (url::Url, Arc<Mutex<Vec<(String, String, String)>>>) {
    use axum::extract::{OriginalUri, State};
    use axum::http::HeaderMap;
    type Seen = Arc<Mutex<Vec<(String, String, String)>>>;
    let seen: Seen = Arc::new(Mutex::new(vec![]));
    async fn take(
        State(seen): State<Seen>,
        OriginalUri(uri): OriginalUri,
        headers: HeaderMap,
        body: String,
    ) -> &'static str {
        let sig = headers
            .get("signature")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        seen.lock()
            .unwrap()
            .push((uri.path().to_string(), sig, body));
        "ok"
    }
    let app = axum::Router::new()
        .fallback(axum::routing::post(take))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (
        url::Url::parse(&format!("http://{addr}/callbacks/saltedge/")).unwrap(),
        seen,
    )
}

#[tokio::test]
async fn simulator_callbacks_are_signed_and_verifiable() {
    let (base, seen) = receiver().await;
    let sim = sim(|c| c.callback_base_url = Some(base.clone())).await;
    let (_, conn) = sim.seed_connection("cb", "fake_client_xf");
    sim.advance(&conn);
    for _ in 0..100 {
        if seen.lock().unwrap().len() >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seen = seen.lock().unwrap().clone();
    let paths: Vec<&str> = seen.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/callbacks/saltedge/notify",
            "/callbacks/saltedge/notify",
            "/callbacks/saltedge/success",
            "/callbacks/saltedge/notify",
            "/callbacks/saltedge/success"
        ]
    );
    let v = Verifier::from_pem(keys::SIMULATOR_PUBLIC_PEM).unwrap();
    for (path, sig, body) in &seen {
        let url = format!(
            "http://{}{}",
            base.host_str().unwrap().to_owned() + ":" + &base.port().unwrap().to_string(),
            path
        );
        v.verify_callback(&url, body.as_bytes(), sig).unwrap();
        let parsed: CallbackBody = serde_json::from_str(body).unwrap();
        assert_eq!(parsed.data.connection_id, conn);
        assert!(v
            .verify_callback(&url, body.replace(&conn, "1").as_bytes(), sig)
            .is_err());
    }
}

#[tokio::test]
async fn connect_page_completes_fails_and_asks_for_sms() {
    let sim = sim(|_| {}).await;
    let c = client(&sim, |_| {});
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let customer = c.create_customer("connect").await.unwrap();
    let session = |provider: &str| CreateConnectSession {
        customer_id: customer.id.clone(),
        consent: ConsentRequest::default(),
        attempt: AttemptRequest {
            return_to: Some("http://frontend.test/done".into()),
            ..Default::default()
        },
        provider_code: Some(provider.into()),
        include_fake_providers: Some(true),
        ..Default::default()
    };
    let location = |r: &reqwest::Response| r.headers()["location"].to_str().unwrap().to_string();

    // Happy path.
    let s = c
        .create_connect_session(&session("fake_client_xf"))
        .await
        .unwrap();
    let html = browser
        .get(&s.connect_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("name=\"consent\""));
    // No consent: refused, nothing created.
    let r = browser
        .post(&s.connect_url)
        .form(&[("login", "username"), ("password", "secret")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert!(c.list_connections(&customer.id).await.unwrap().is_empty());
    let r = browser
        .post(&s.connect_url)
        .form(&[
            ("login", "username"),
            ("password", "secret"),
            ("consent", "on"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let loc = location(&r);
    assert!(
        loc.starts_with("http://frontend.test/done?connection_id="),
        "{loc}"
    );
    let conn_id = loc.split('=').nth(1).unwrap();
    let conn = c.show_connection(conn_id).await.unwrap();
    assert_eq!(conn.status, ConnectionStatus::Active);
    assert_eq!(c.list_consents(conn_id).await.unwrap().len(), 1);

    // Same credentials again: "already used these credentials".
    let s = c
        .create_connect_session(&session("fake_client_xf"))
        .await
        .unwrap();
    let r = browser
        .post(&s.connect_url)
        .form(&[
            ("login", "username"),
            ("password", "secret"),
            ("consent", "on"),
        ])
        .send()
        .await
        .unwrap();
    assert!(location(&r).ends_with("error_class=ConnectionDuplicated"));

    // Wrong password.
    let s = c
        .create_connect_session(&session("fakebank_simple_xf"))
        .await
        .unwrap();
    let r = browser
        .post(&s.connect_url)
        .form(&[
            ("login", "username"),
            ("password", "nope"),
            ("consent", "on"),
        ])
        .send()
        .await
        .unwrap();
    assert!(location(&r).ends_with("error_class=InvalidCredentials"));

    // Interactive: login, then SMS.
    let s = c
        .create_connect_session(&session("fake_interactive_client_xf"))
        .await
        .unwrap();
    let r = browser
        .post(&s.connect_url)
        .form(&[
            ("login", "username"),
            ("password", "secret"),
            ("consent", "on"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("name=\"sms\""));
    let r = browser
        .post(&s.connect_url)
        .form(&[("sms", "123456")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(!location(&r).contains("error_class"));

    // Reconnect (update credentials) and refresh (fetch new accounts).
    let before = c.list_accounts(conn_id).await.unwrap().len();
    let s = c
        .refresh_connect_session(&RefreshConnectSession {
            connection_id: conn_id.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let r = browser
        .post(&s.connect_url)
        .form(&[("login", "username"), ("password", "secret")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "no return_to: a page");
    assert_eq!(c.list_accounts(conn_id).await.unwrap().len(), before + 1);

    // Revoke, then data access stops; delete removes it.
    let consent = c.list_consents(conn_id).await.unwrap().remove(0);
    let revoked = c.revoke_consent(&consent.id, conn_id).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    let e = c.list_accounts(conn_id).await.unwrap_err();
    assert_eq!(api_class(&e).0, &ErrorClass::AispConsentRevoked);
    let e = c.revoke_consent(&consent.id, conn_id).await.unwrap_err();
    assert_eq!(api_class(&e).0, &ErrorClass::AispConsentAlreadyRevoked);
    assert!(c.remove_connection(conn_id).await.unwrap().removed);
    let e = c.show_connection(conn_id).await.unwrap_err();
    assert_eq!(api_class(&e), (&ErrorClass::ConnectionNotFound, 404));
}

#[tokio::test]
async fn providers_catalogue_and_fake_flag() {
    let sim = sim(|_| {}).await;
    let c = client(&sim, |_| {});
    let real = c.list_providers(&Default::default()).await.unwrap();
    assert!(real.iter().all(|p| !p.code.contains("fake")));
    let all = c
        .list_providers(&saltedge_client::ProviderQuery {
            include_fake_providers: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(all
        .iter()
        .any(|p| p.code == "fake_interactive_client_xf" && p.interactive));
    let de = c
        .list_providers(&saltedge_client::ProviderQuery {
            country_code: Some("DE".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!de.is_empty() && de.iter().all(|p| p.country_code == "DE"));
    let e = c.show_provider("nope").await.unwrap_err();
    assert_eq!(api_class(&e).0, &ErrorClass::ProviderNotFound);
    let e = c
        .create_customer("dup")
        .await
        .and(c.create_customer("dup").await)
        .unwrap_err();
    assert_eq!(api_class(&e), (&ErrorClass::DuplicatedCustomer, 409));
}

/// A redirect is never followed: the `Secret` header must not reach another host.
#[tokio::test]
async fn redirects_are_never_followed() {
    use axum::http::HeaderMap;
    let leaked: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = leaked.clone();
    let other = axum::Router::new().fallback(move |headers: HeaderMap| {
        let seen = seen.clone();
        async move {
            seen.lock().unwrap().push(
                headers
                    .get("secret")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string(),
            );
            "{\"data\":[]}"
        }
    });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other_addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, other).await.unwrap() });
    for status in [301u16, 302, 307, 308] {
        let redirector = axum::Router::new().fallback(move || async move {
            (
                axum::http::StatusCode::from_u16(status).unwrap(),
                [("location", format!("http://{other_addr}/api/v5/countries"))],
            )
        });
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, redirector).await.unwrap() });
        let mut cfg = saltedge_client::ClientConfig::new(
            url::Url::parse(&format!("http://{addr}/api/v5/")).unwrap(),
            "app",
            "TOPSECRET",
        );
        cfg.max_retries = 0;
        let e = Client::new(cfg)
            .unwrap()
            .list_countries()
            .await
            .unwrap_err();
        assert!(
            matches!(e, Error::UnexpectedStatus { status: s, .. } if s == status),
            "{status}: {e:?}"
        );
    }
    assert!(
        leaked.lock().unwrap().is_empty(),
        "the other host was reached: {:?}",
        leaked.lock().unwrap()
    );
}

/// The client speaks v6 to the simulator's v6 (its own statement of the v6 rules), in both
/// shapes the notes leave open for a new customer (`customer_id` or `id`), and reads the
/// same data as through v5.
#[tokio::test]
async fn v6_is_spoken_end_to_end_in_either_customer_shape() {
    for alternate in [false, true] {
        let sim = sim(|c| {
            c.v6_customer_key_id = alternate;
            c.v6_ignores_identifier_filter = alternate;
        })
        .await;
        let v5 = client(&sim, |_| {});
        let c = client(&sim, |c| {
            c.base_url = sim.api_base_v6();
            c.api_version = saltedge_client::ApiVersion::V6;
        });
        assert_eq!(c.version(), saltedge_client::ApiVersion::V6);
        let customer = c.create_customer("v6-books").await.unwrap();
        assert!(!customer.id.is_empty());
        c.create_customer("another-company").await.unwrap();
        let found = c.find_customers("v6-books").await.unwrap();
        assert_eq!(
            found.len(),
            1,
            "the identifier filter holds, whatever Salt Edge does"
        );
        assert_eq!(found[0].id, customer.id);
        let s = c
            .create_connect_session(&CreateConnectSession {
                customer_id: customer.id.clone(),
                consent: ConsentRequest::default(),
                attempt: AttemptRequest {
                    return_to: Some("http://frontend.test/done".into()),
                    from_date: chrono::NaiveDate::from_ymd_opt(2020, 1, 1),
                    ..Default::default()
                },
                provider_code: Some("fake_client_xf".into()),
                include_fake_providers: Some(true),
                daily_refresh: Some(true),
                ..Default::default()
            })
            .await
            .unwrap();
        let browser = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let r = browser
            .post(&s.connect_url)
            .form(&[
                ("login", "username"),
                ("password", "secret"),
                ("consent", "on"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        let conns = c.list_connections(&customer.id).await.unwrap();
        assert_eq!(conns.len(), 1);
        let conn = &conns[0];
        assert_eq!(
            c.show_connection(&conn.id).await.unwrap().status,
            ConnectionStatus::Active
        );
        let accounts = c.list_accounts(&conn.id).await.unwrap();
        assert!(!accounts.is_empty());
        assert_eq!(
            accounts,
            v5.list_accounts(&conn.id).await.unwrap(),
            "the same data"
        );
        let q = || TransactionQuery {
            connection_id: conn.id.clone(),
            ..Default::default()
        };
        let posted = txs(c.transaction_pages(q())).await;
        assert!(!posted.is_empty());
        assert_eq!(posted, txs(v5.transaction_pages(q())).await);
        assert_eq!(
            txs(c.pending_transaction_pages(q())).await,
            txs(v5.pending_transaction_pages(q())).await
        );
        assert_eq!(
            txs(c.duplicate_transaction_pages(q())).await,
            txs(v5.duplicate_transaction_pages(q())).await
        );
        // Reconnect and the widget refresh give Connect links; a background refresh is
        // accepted or refused "not now", as in v5.
        let link = c
            .reconnect_connect_session(&ReconnectConnectSession {
                connection_id: conn.id.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(link.connect_url.contains("/connect/"));
        c.refresh_connect_session(&RefreshConnectSession {
            connection_id: conn.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
        match c
            .refresh_connection(&conn.id, &AttemptRequest::default())
            .await
        {
            Ok(_) => {}
            Err(e) => assert_eq!(api_class(&e).0, &ErrorClass::ConnectionCannotBeRefreshed),
        }
        let providers = c
            .list_providers(&saltedge_client::ProviderQuery {
                include_fake_providers: true,
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(providers.iter().any(|p| p.code == "fake_client_xf"));
    }
}

/// A v5-spelled request to v6 is refused: the simulator does not accept the old shapes, so
/// passing against it means the client really speaks v6.
#[tokio::test]
async fn v5_shapes_are_refused_by_v6() {
    let sim = sim(|_| {}).await;
    let wrong = client(&sim, |c| {
        c.base_url = sim.api_base_v6();
        c.api_version = saltedge_client::ApiVersion::V5;
    });
    let customer = wrong.create_customer("mixed").await.unwrap();
    let session = CreateConnectSession {
        customer_id: customer.id.clone(),
        consent: ConsentRequest::default(),
        provider_code: Some("fake_client_xf".into()),
        include_fake_providers: Some(true),
        ..Default::default()
    };
    assert!(
        wrong.create_connect_session(&session).await.is_err(),
        "no connect_sessions in v6"
    );
    // v5's scope names in v6's place: refused with the request-format error.
    let v6 = client(&sim, |c| {
        c.base_url = sim.api_base_v6();
        c.api_version = saltedge_client::ApiVersion::V6;
    });
    assert!(
        v6.create_connect_session(&session).await.is_ok(),
        "the client translates"
    );
}

/// Every transaction of a stream of pages.
async fn txs(
    pages: impl futures::Stream<Item = Result<Page<Transaction>, Error>>,
) -> Vec<Transaction> {
    pages
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .into_iter()
        .flat_map(|p| p.items)
        .collect()
}
