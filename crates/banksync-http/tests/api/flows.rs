//! The bookkeeper's flows end to end: link, sync, update credentials, fetch accounts, revoke, delete, interactive questions, review, quarantine, state refusals.
//!
//! Long because each flow is tested end to end, link to lines, over real HTTP; one test a flow.

use super::support::*;

#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn end_to_end_link_sync_update_fetch_revoke_delete(pool: PgPool) {
    end_to_end(pool, 5).await;
}

/// The same flows with Salt Edge API v6: requests, Connect and v6 callbacks (their own key,
/// `meta.version` "6", `Signature-key-version`).
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn end_to_end_on_salt_edge_v6(pool: PgPool) {
    end_to_end(pool, 6).await;
}

async fn end_to_end(pool: PgPool, version: u8) {
    let s = stack_on(pool, version).await;

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
    let pending = all_pending(&s).await;
    assert_eq!(
        truth
            .accounts
            .iter()
            .map(|a| a.pending.len())
            .sum::<usize>(),
        pending.len(),
        "each pending transaction once, out of the books"
    );
    assert_eq!(
        lines.len() + pending.len(),
        expected,
        "each transaction exactly once through the API"
    );
    let (_, journals) = s.call(Method::GET, "/api/v1/journals", None).await;
    assert_eq!(journals.as_array().unwrap().len(), 2);

    // Filters: one journal; every line is booked, pending ones have their own resource.
    let j0 = conn["accounts"][0]["journal_id"].as_str().unwrap();
    let (_, posted) = s
        .call(
            Method::GET,
            &format!("/api/v1/statement-lines?journal_id={j0}&status=posted&limit=1000"),
            None,
        )
        .await;
    let posted = posted["items"].as_array().unwrap();
    assert!(!posted.is_empty() && posted.iter().all(|l| l["journal_id"] == j0));
    let (_, pending) = s
        .call(
            Method::GET,
            &format!("/api/v1/pending-transactions?journal_id={j0}"),
            None,
        )
        .await;
    let pending = pending["items"].as_array().unwrap();
    assert!(!pending.is_empty());
    assert!(pending.iter().all(|p| p["journal_id"] == j0
        && p["state"] == "pending"
        && p["posted_line_id"].is_null()));
    let (st, p) = s
        .call(Method::GET, "/api/v1/statement-lines?status=pending", None)
        .await;
    assert_eq!(
        (st.as_u16(), p["code"].as_str()),
        (422, Some("pending_moved"))
    );
    assert!(p["detail"]
        .as_str()
        .unwrap()
        .contains("/api/v1/pending-transactions"));
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
    assert_eq!(
        all_lines(&s).await.len() + all_pending(&s).await.len(),
        expected
    );

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
    // Revoked: no sync and no refresh session until consent is given again. (On v6 Salt
    // Edge reports the revocation with a consent_changes callback, which may be stored at
    // any moment: `jobs_count` counts what requests queue.)
    let jobs_before = jobs_count(&s.pool).await;
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
    let jobs_after = jobs_count(&s.pool).await;
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

/// A Salt Edge customer belongs to exactly one company, and its identifier names the
/// company: linking with an email another company uses, or one a customer outside banksync
/// was created with, answers exactly as for a fresh email (no probe, no squatting), and
/// the linking company gets a customer of its own; nothing is handed over. A customer this
/// company created whose record was lost (a crash after Salt Edge answered) is its own and
/// is taken up again.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn a_salt_edge_customer_is_never_handed_to_a_second_company(pool: PgPool) {
    let s = stack(pool.clone()).await;
    let client = Client::new(banksync_testkit::signed_config(&s.sim)).unwrap();
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
    let owners: String =
        sqlx::query_scalar("SELECT saltedge_id FROM saltedge_customers WHERE company_id = $1")
            .bind(owner)
            .fetch_one(&pool)
            .await
            .unwrap();
    s.sim
        .seed_connection("outside@acme.example", "fake_client_xf");
    let acme: Uuid = sqlx::query_scalar("SELECT id FROM companies WHERE name = 'ACME Books'")
        .fetch_one(&pool)
        .await
        .unwrap();

    let mut body = link_body("fakebank_simple_xf");
    body["email"] = json!("shared@acme.example");
    let (st, e) = s
        .call(Method::POST, "/api/v1/connections", Some(body))
        .await;
    assert_eq!(st, 201, "an email in use elsewhere: {e}");
    assert!(!e.to_string().contains("Secret Owner"), "{e}");
    let (mine, identifier): (String, String) = sqlx::query_as(
        "SELECT saltedge_id, identifier FROM saltedge_customers WHERE company_id = $1",
    )
    .bind(acme)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_ne!(
        mine, owners,
        "the other company's customer was not handed over"
    );
    assert_eq!(identifier, format!("{acme}/shared@acme.example"));
    let at_salt_edge = client.show_customer(&mine).await.unwrap();
    assert_eq!(at_salt_edge.identifier, identifier);

    // Another company with the email of a customer outside banksync: its own customer too.
    let other = companies::create(&pool, "Other Books").await.unwrap().id;
    let (_, token) = tokens::create(&pool, other, "books").await.unwrap();
    let mut body = link_body("fakebank_simple_xf");
    body["email"] = json!("outside@acme.example");
    let (st, e) = s
        .call_as(&token, Method::POST, "/api/v1/connections", Some(body))
        .await;
    assert_eq!(st, 201, "{e}");

    // A customer created for a third company whose record was lost: taken up again.
    let third = companies::create(&pool, "Third Books").await.unwrap().id;
    let lost = client
        .create_customer(&companies::customer_identifier(
            third,
            "books@third.example",
        ))
        .await
        .unwrap();
    let (_, token) = tokens::create(&pool, third, "books").await.unwrap();
    let mut body = link_body("fakebank_simple_xf");
    body["email"] = json!("books@third.example");
    let (st, e) = s
        .call_as(&token, Method::POST, "/api/v1/connections", Some(body))
        .await;
    assert_eq!(st, 201, "{e}");
    let recorded: String =
        sqlx::query_scalar("SELECT saltedge_id FROM saltedge_customers WHERE company_id = $1")
            .bind(third)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(recorded, lost.id);
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
        .find(|l| l["duplicate_review"].is_null())
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

    // The line's history tells all of it, in order.
    let (st, h) = s
        .call(
            Method::GET,
            &format!("/api/v1/statement-lines/{id}/history"),
            None,
        )
        .await;
    assert_eq!(st, 200, "{h}");
    let kinds: Vec<&str> = h["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "created",
            "flagged",
            "duplicate_confirmed",
            "review_undone",
            "duplicate_dismissed",
            "review_undone"
        ]
    );
    assert_eq!(
        h["events"][0]["detail"]["saltedge_transaction_id"],
        se_id.as_str()
    );
    let (st, _) = s
        .call(
            Method::GET,
            "/api/v1/statement-lines/999999999/history",
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
    let client = Client::new(banksync_testkit::signed_config(&s.sim)).unwrap();
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
    assert_eq!(report.run.status, sync_engine::status::RunStatus::Succeeded);
    assert_eq!(report.run.quarantined, 3, "{:?}", report.run);

    let (st, q) = s
        .call(
            Method::GET,
            &format!("/api/v1/connections/{}/quarantine", conn.id),
            None,
        )
        .await;
    assert_eq!(st, 200, "{q}");
    assert!(q["next_cursor"].is_null(), "one page: {q}");
    let q = q["items"].as_array().unwrap();
    assert_eq!(q.len(), 3);
    // Two at a time: the cursor brings the third, and no more.
    let path = format!("/api/v1/connections/{}/quarantine?limit=2", conn.id);
    let (_, first) = s.call(Method::GET, &path, None).await;
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = s
        .call(Method::GET, &format!("{path}&cursor={cursor}"), None)
        .await;
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    assert_eq!(second["items"].as_array().unwrap().len(), 1, "{second}");
    assert!(second["next_cursor"].is_null());
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
        all_lines(&s).await.len() + all_pending(&s).await.len(),
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

/// Consent expiry before it bites: the connection says how many days are left and that it
/// is expiring; Update credentials gives a reconnect link ahead of expiry, and the new
/// consent is valid again; once expired, reading is refused but the reconnect still works.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn consent_expiry_is_shown_and_a_reconnect_can_come_first(pool: PgPool) {
    let s = stack(pool.clone()).await;
    let conn = linked(&s, "fake_client_xf").await;
    let show = || async {
        s.call(Method::GET, &format!("/api/v1/connections/{conn}"), None)
            .await
            .1
    };
    let c = show().await;
    assert_eq!(c["consent_status"], "valid", "{c}");
    assert!(c["consent_expires_in_days"].as_i64().unwrap() > 15, "{c}");
    let set_expiry = |secs: i64| {
        let pool = pool.clone();
        let conn = conn.clone();
        async move {
            sqlx::query("UPDATE connections SET consent_expires_at = now() + make_interval(secs => $2) WHERE id = $1::uuid")
                .bind(&conn)
                .bind(secs as f64)
                .execute(&pool)
                .await
                .unwrap();
        }
    };
    set_expiry(10 * 86_400 - 3_600).await;
    let c = show().await;
    assert_eq!(
        (
            c["consent_status"].as_str(),
            c["consent_expires_in_days"].as_i64()
        ),
        (Some("expiring"), Some(10))
    );
    set_expiry(3_600).await;
    assert_eq!(
        show().await["consent_expires_in_days"],
        1,
        "a started day counts"
    );

    let before = succeeded_runs(&s, &conn).await;
    let (st, link) = s
        .call(
            Method::POST,
            &format!("/api/v1/connections/{conn}/update-credentials"),
            Some(json!({ "return_to": "https://books.example/back" })),
        )
        .await;
    assert_eq!(st, 200, "a reconnect link ahead of expiry: {link}");
    s.complete_connect(link["connect_url"].as_str().unwrap(), true)
        .await;
    wait_sync(&s, &conn, before).await;
    let c = show().await;
    assert_eq!(c["consent_status"], "valid", "the new consent: {c}");

    set_expiry(-60).await;
    let c = show().await;
    assert_eq!(
        (
            c["consent_status"].as_str(),
            c["consent_expires_in_days"].as_i64()
        ),
        (Some("expired"), Some(0))
    );
    let (st, body) = s
        .call(
            Method::POST,
            &format!("/api/v1/connections/{conn}/sync"),
            None,
        )
        .await;
    assert_eq!(
        (st.as_u16(), body["code"].as_str()),
        (409, Some("consent_expired")),
        "{body}"
    );
    let (st, _) = s
        .call(
            Method::POST,
            &format!("/api/v1/connections/{conn}/update-credentials"),
            Some(json!({ "return_to": "https://books.example/back" })),
        )
        .await;
    assert_eq!(st, 200);
}
