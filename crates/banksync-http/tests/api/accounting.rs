//! The accounting contract through the API: the change feed (replayed, it is the current
//! lines; nothing skipped behind a late commit; cursors across replicas; 410 once expired)
//! and line identity.

use std::collections::BTreeMap;

use crate::support::*;

/// A change-feed consumer: the lines it holds, where it stands, its page size.
struct Consumer {
    lines: BTreeMap<i64, Value>,
    statements: BTreeMap<i64, Value>,
    cursor: Option<String>,
    limit: u32,
}

impl Consumer {
    fn new(limit: u32) -> Self {
        Consumer {
            lines: BTreeMap::new(),
            statements: BTreeMap::new(),
            cursor: None,
            limit,
        }
    }

    /// Applies up to `pages` pages; returns whether it is caught up.
    async fn read(&mut self, s: &Stack, pages: usize) -> bool {
        for _ in 0..pages {
            let path = match &self.cursor {
                Some(c) => format!("/api/v1/changes?limit={}&cursor={c}", self.limit),
                None => format!("/api/v1/changes?limit={}", self.limit),
            };
            let (st, page) = s.call(Method::GET, &path, None).await;
            assert_eq!(st, 200, "{page}");
            for c in page["changes"].as_array().unwrap() {
                let id = c["id"].as_i64().unwrap();
                let entity = c["entity"].as_str().unwrap();
                let (held, now) = match entity {
                    "line" => (&mut self.lines, &c["line"]),
                    "statement" => (&mut self.statements, &c["statement"]),
                    other => panic!("unknown entity {other}"),
                };
                match c["op"].as_str().unwrap() {
                    "added" | "modified" => {
                        assert!(now.is_object(), "{c}");
                        held.insert(id, now.clone());
                    }
                    "removed" => {
                        held.remove(&id);
                    }
                    other => panic!("unknown op {other}"),
                }
            }
            self.cursor = Some(page["next_cursor"].as_str().unwrap().to_string());
            if page["caught_up"] == true {
                return true;
            }
            if page["has_more"] == false {
                // Held back behind a transaction still running: ask again shortly.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        false
    }

    async fn catch_up(&mut self, s: &Stack) {
        for _ in 0..500 {
            if self.read(s, 50).await {
                return;
            }
        }
        panic!("the feed never caught up");
    }
}

/// The lines a consumer should hold: every line in the journals, as the list shows it.
async fn books(s: &Stack) -> BTreeMap<i64, Value> {
    all_lines(s)
        .await
        .into_iter()
        .filter(|l| l["in_journal"] == true)
        .map(|l| (l["id"].as_i64().unwrap(), l))
        .collect()
}

/// Every statement of every journal, as the lists show them.
async fn statements(s: &Stack) -> BTreeMap<i64, Value> {
    let (_, journals) = s.call(Method::GET, "/api/v1/journals", None).await;
    let mut out = BTreeMap::new();
    for j in journals.as_array().unwrap() {
        let first = format!(
            "/api/v1/journals/{}/statements?limit=100",
            j["id"].as_str().unwrap()
        );
        for st in all_of(s, &first).await {
            out.insert(st["id"].as_i64().unwrap(), st);
        }
    }
    out
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

async fn connection_ids(s: &Stack) -> Vec<(Uuid, String)> {
    sqlx::query_as("SELECT id, saltedge_id FROM connections ORDER BY created_at")
        .fetch_all(&s.pool)
        .await
        .unwrap()
}

async fn sync(s: &Stack, client: &Client, conn: Uuid) {
    sync_engine::sync_connection(&s.pool, client, conn, &Default::default())
        .await
        .unwrap();
}

/// Random sync histories on two connections — new activity, pending transactions that
/// post, Salt Edge edits, re-issued ids, duplicates confirmed and undone, concurrent syncs —
/// with consumers that start at different times and read in different page sizes: each
/// ends holding exactly the current lines.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn the_change_feed_replays_to_the_current_lines(pool: PgPool) {
    let s = stack(pool).await;
    linked(&s, "fake_client_xf").await;
    let (st, link) = s
        .call(
            Method::POST,
            "/api/v1/connections",
            Some(link_body("fakebank_simple_xf")),
        )
        .await;
    assert_eq!(st, 201, "{link}");
    s.complete_connect(link["connect_url"].as_str().unwrap(), true)
        .await;
    let conns = eventually("two connections", || async {
        let c = connection_ids(&s).await;
        (c.len() == 2).then_some(c)
    })
    .await;
    let client = banksync_testkit::signed_client(&s.sim);
    for (id, _) in &conns {
        sync(&s, &client, *id).await;
    }

    for seed in [7_u64, 1_234, 99_991] {
        let mut rng = Rng(seed);
        let mut consumers = vec![Consumer::new(1000), Consumer::new(7)];
        let mut late: Option<Consumer> = None;
        for step in 0..14 {
            let (conn, se_conn) = conns[rng.below(2)].clone();
            match rng.below(6) {
                0 => {
                    s.sim.advance(&se_conn);
                    sync(&s, &client, conn).await;
                }
                1 => {
                    // Salt Edge edits a posted transaction.
                    let n = rng.next();
                    s.sim.edit_connection(&se_conn, |rec| {
                        let k = (n % rec.posted.len() as u64) as usize;
                        let t = &mut rec.posted[k];
                        t.description = format!("{} (edited {n})", t.description);
                        t.updated_at = banksync_testkit::clock::now();
                    });
                    sync(&s, &client, conn).await;
                }
                2 => {
                    let truth = s.sim.ground_truth(&se_conn).unwrap();
                    let posted: Vec<String> = truth.accounts[0]
                        .posted
                        .iter()
                        .map(|t| t.id.clone())
                        .collect();
                    let id = posted[rng.below(posted.len())].clone();
                    s.sim.reissue(&se_conn, &id);
                    sync(&s, &client, conn).await;
                }
                3 => {
                    // A bookkeeper confirms a flagged look-alike, or undoes a confirmation.
                    let lines = all_lines(&s).await;
                    let undo = rng.below(2) == 0;
                    let pick = lines.iter().find(|l| {
                        if undo {
                            l["duplicate_review"] == "confirmed"
                        } else {
                            l["duplicate_review"] == "flagged"
                        }
                    });
                    if let Some(l) = pick {
                        let action = if undo {
                            "undo-review"
                        } else {
                            "confirm-duplicate"
                        };
                        let (st, body) = s
                            .call(
                                Method::POST,
                                &format!("/api/v1/statement-lines/{}/{action}", l["id"]),
                                None,
                            )
                            .await;
                        assert_eq!(st, 200, "{body}");
                    }
                }
                4 => {
                    // Both connections sync at once.
                    for (_, se) in &conns {
                        s.sim.advance(se);
                    }
                    tokio::join!(sync(&s, &client, conns[0].0), sync(&s, &client, conns[1].0));
                }
                _ => {
                    let pages = 1 + rng.below(3);
                    for c in consumers.iter_mut() {
                        c.read(&s, pages).await;
                    }
                }
            }
            if step == 6 {
                late = Some(Consumer::new(50));
            }
            if let Some(c) = late.as_mut() {
                c.read(&s, 1).await;
            }
        }
        consumers.extend(late);
        // The worker may still be syncing (callbacks from the simulator): compare at a
        // moment when nothing moves, and again if something did.
        let mut attempts = 0;
        loop {
            settle(&s).await;
            let expected = books(&s).await;
            let expected_statements = statements(&s).await;
            assert!(expected.len() > 100 && expected_statements.len() > 10);
            for c in consumers.iter_mut() {
                c.catch_up(&s).await;
            }
            let moved = books(&s).await != expected || statements(&s).await != expected_statements;
            attempts += 1;
            if moved && attempts < 10 {
                continue;
            }
            for (k, c) in consumers.iter().enumerate() {
                assert_eq!(
                    c.lines.keys().collect::<Vec<_>>(),
                    expected.keys().collect::<Vec<_>>(),
                    "seed {seed}, consumer {k}: the same lines"
                );
                assert_eq!(
                    c.lines, expected,
                    "seed {seed}, consumer {k}: as they are now"
                );
                assert_eq!(
                    c.statements, expected_statements,
                    "seed {seed}, consumer {k}: the same statements, balances included"
                );
            }
            break;
        }
    }
}

/// Waits until no callback waits to be processed and no sync is queued or running.
async fn settle(s: &Stack) {
    eventually("the worker settles", || async {
        let busy: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM callback_inbox WHERE processed_at IS NULL)
                 OR EXISTS (SELECT 1 FROM sync_runs WHERE status IN ('queued', 'running'))",
        )
        .fetch_one(&s.pool)
        .await
        .unwrap();
        (!busy).then_some(())
    })
    .await;
}

/// A transaction that got a lower id but commits after a higher one: the feed holds the
/// higher one back until the lower has ended, so nothing lands behind a cursor.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn a_late_commit_is_never_skipped(pool: PgPool) {
    let s = stack(pool).await;
    linked(&s, "fake_client_xf").await;
    settle(&s).await;
    let mut c = Consumer::new(1000);
    c.catch_up(&s).await;
    let ids: Vec<i64> = c.lines.keys().copied().take(2).collect();

    // T1 changes a line first (it gets the lower transaction id) and stays open.
    let mut t1 = s.pool.begin().await.unwrap();
    sqlx::query("UPDATE statement_lines SET description = description || ' (T1)' WHERE id = $1")
        .bind(ids[0])
        .execute(&mut *t1)
        .await
        .unwrap();
    // T2 changes another line and commits.
    sqlx::query("UPDATE statement_lines SET description = description || ' (T2)' WHERE id = $1")
        .bind(ids[1])
        .execute(&s.pool)
        .await
        .unwrap();
    assert!(!c.read(&s, 3).await, "held back while T1 runs");
    assert!(
        !c.lines[&ids[1]]["description"]
            .as_str()
            .unwrap()
            .ends_with("(T2)"),
        "T2 is not handed out ahead of T1"
    );
    t1.commit().await.unwrap();
    settle(&s).await;
    c.catch_up(&s).await;
    assert!(c.lines[&ids[0]]["description"]
        .as_str()
        .unwrap()
        .ends_with("(T1)"));
    assert!(c.lines[&ids[1]]["description"]
        .as_str()
        .unwrap()
        .ends_with("(T2)"));
    assert_eq!(c.lines, books(&s).await);
}

/// A cursor works on another replica and after a restart (it is the database's position,
/// signed with a key every replica shares); one older than the retained removals is 410
/// with how to start again; another company's or another journal's cursor is refused.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn cursors_cross_replicas_and_expire_with_410(pool: PgPool) {
    let s = stack(pool).await;
    linked(&s, "fake_client_xf").await;
    // (Entries wait while any older transaction runs, other tests' included.)
    let first = eventually("a full first page", || async {
        let (_, p) = s.call(Method::GET, "/api/v1/changes?limit=5", None).await;
        (p["has_more"] == true).then_some(p)
    })
    .await;
    let cursor = first["next_cursor"].as_str().unwrap().to_string();

    let replica = s.replica().await;
    let page = s
        .http
        .get(format!("{replica}/api/v1/changes?limit=5&cursor={cursor}"))
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let page: Value = page.json().await.unwrap();
    let (_, here) = s
        .call(
            Method::GET,
            &format!("/api/v1/changes?limit=5&cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(
        page["changes"], here["changes"],
        "the same page on every replica"
    );
    assert_ne!(page["changes"], first["changes"]);

    let (st, p) = s
        .call(
            Method::GET,
            &format!(
                "/api/v1/changes?cursor={cursor}&journal_id={}",
                Uuid::new_v4()
            ),
            None,
        )
        .await;
    assert_eq!(
        (st.as_u16(), p["code"].as_str()),
        (422, Some("invalid_cursor"))
    );

    // A line is removed, its tombstone outlives the retention and is pruned.
    let line: i64 = sqlx::query_scalar("SELECT max(id) FROM statement_lines")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM statement_lines WHERE id = $1")
        .bind(line)
        .execute(&s.pool)
        .await
        .unwrap();
    let mut c = Consumer::new(1000);
    c.catch_up(&s).await;
    assert!(!c.lines.contains_key(&line));
    let fresh = c.cursor.clone().unwrap();
    sqlx::query("UPDATE removed_lines SET removed_at = now() - interval '40 days'")
        .execute(&s.pool)
        .await
        .unwrap();
    let pruned = sync_engine::retention::prune(&s.pool, &Default::default())
        .await
        .unwrap();
    assert_eq!(pruned.removed_lines, 1);
    let (st, p) = s
        .call(
            Method::GET,
            &format!("/api/v1/changes?cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(
        (st.as_u16(), p["code"].as_str()),
        (410, Some("cursor_expired")),
        "{p}"
    );
    assert!(p["detail"].as_str().unwrap().contains("without one"));
    // A cursor taken after the pruned removal still works.
    let (st, _) = s
        .call(
            Method::GET,
            &format!("/api/v1/changes?cursor={fresh}"),
            None,
        )
        .await;
    assert_eq!(st, 200);
}

/// Statements through the API: an account's and a journal's, one with its lines, the
/// period setting; another company sees none of them.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn statements_through_the_api(pool: PgPool) {
    let s = stack(pool).await;
    let conn = linked(&s, "fake_client_xf").await;
    let (_, c) = s
        .call(Method::GET, &format!("/api/v1/connections/{conn}"), None)
        .await;
    let account = c["accounts"][0].clone();
    let (aid, jid) = (
        account["id"].as_str().unwrap(),
        account["journal_id"].as_str().unwrap(),
    );
    assert_eq!(account["statement_period"], "daily");
    let of_account = all_of(
        &s,
        &format!("/api/v1/bank-accounts/{aid}/statements?limit=10"),
    )
    .await;
    let of_journal = all_of(&s, &format!("/api/v1/journals/{jid}/statements?limit=10")).await;
    assert!(of_account.len() > 10);
    assert_eq!(of_account, of_journal, "one account in this journal");
    let closed: Vec<&Value> = of_account
        .iter()
        .filter(|st| st["status"] == "closed")
        .collect();
    for (k, st) in closed.iter().enumerate() {
        assert_eq!(st["sequence"], k as i64 + 1);
        if k > 0 {
            assert_eq!(st["opening_balance"], closed[k - 1]["closing_balance"]);
        }
    }
    let newest = of_account.last().unwrap();
    assert_eq!(newest["closing_balance"], account["bank_balance"]);

    let id = closed[3]["id"].as_i64().unwrap();
    let (st, one) = s
        .call(Method::GET, &format!("/api/v1/statements/{id}"), None)
        .await;
    assert_eq!(st, 200, "{one}");
    assert_eq!(one["statement"], *closed[3]);
    let lines = one["lines"].as_array().unwrap();
    assert_eq!(
        lines.len() as i64,
        closed[3]["line_count"].as_i64().unwrap()
    );
    let sum: rust_decimal::Decimal = lines
        .iter()
        .map(|l| {
            l["amount"]
                .as_str()
                .unwrap()
                .parse::<rust_decimal::Decimal>()
                .unwrap()
        })
        .sum();
    let open: rust_decimal::Decimal = closed[3]["opening_balance"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let close: rust_decimal::Decimal = closed[3]["closing_balance"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(open + sum, close);

    let (st, a) = s
        .call(
            Method::PUT,
            &format!("/api/v1/bank-accounts/{aid}/statement-period"),
            Some(json!({ "period": "monthly" })),
        )
        .await;
    assert_eq!(
        (st.as_u16(), &a["statement_period"]),
        (200, &json!("monthly"))
    );
    let (st, p) = s
        .call(
            Method::PUT,
            &format!("/api/v1/bank-accounts/{aid}/statement-period"),
            Some(json!({ "period": "hourly" })),
        )
        .await;
    assert_eq!(st, 422, "{p}");

    let other = companies::create(&s.pool, "Other Books").await.unwrap();
    let (_, token) = tokens::create(&s.pool, other.id, "other").await.unwrap();
    for path in [
        format!("/api/v1/statements/{id}"),
        format!("/api/v1/bank-accounts/{aid}/statements"),
        format!("/api/v1/journals/{jid}/statements"),
    ] {
        let (st, _) = s.call_as(&token, Method::GET, &path, None).await;
        assert_eq!(st, 404, "{path}");
    }
    let (_, feed) = s
        .call_as(&token, Method::GET, "/api/v1/changes", None)
        .await;
    assert_eq!(
        feed["changes"],
        json!([]),
        "another company's feed is its own"
    );
}

/// The same bank linked again after a delete: the new connection's accounts are matched by
/// IBAN to the earlier bank accounts; journals, mapping and line ids stay, nothing is
/// imported twice, and the change feed shows the re-keyed lines as modified, not added.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn the_same_bank_linked_again_after_a_delete(pool: PgPool) {
    linked_again_after_a_delete(pool, 5).await;
}

/// The same on Salt Edge v6: how a connection that does not carry over from v5 comes back
/// (see `banksync version-check`), journals and history kept, nothing imported twice.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn the_same_bank_linked_again_after_a_delete_on_v6(pool: PgPool) {
    linked_again_after_a_delete(pool, 6).await;
}

async fn linked_again_after_a_delete(pool: PgPool, version: u8) {
    let s = stack_on(pool, version).await;
    let first = linked(&s, "fake_client_xf").await;
    let before = all_lines(&s).await;
    let (_, journals) = s.call(Method::GET, "/api/v1/journals", None).await;
    let mut consumer = Consumer::new(1000);
    consumer.catch_up(&s).await;

    let (st, _) = s
        .call(
            Method::DELETE,
            &format!("/api/v1/connections/{first}"),
            None,
        )
        .await;
    assert_eq!(st, 204);
    let (st, link) = s
        .call(
            Method::POST,
            "/api/v1/connections",
            Some(link_body("fake_client_xf")),
        )
        .await;
    assert_eq!(st, 201, "{link}");
    s.complete_connect(link["connect_url"].as_str().unwrap(), true)
        .await;
    let second = first_connection(&s).await;
    assert_ne!(second, first);
    wait_sync(&s, &second, 0).await;

    let (_, journals_after) = s.call(Method::GET, "/api/v1/journals", None).await;
    assert_eq!(journals_after, journals, "the same journals, no new ones");
    let (_, conn) = s
        .call(Method::GET, &format!("/api/v1/connections/{second}"), None)
        .await;
    let journal_ids: Vec<&Value> = conn["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["journal_id"])
        .collect();
    assert!(journal_ids.iter().all(|j| journals
        .as_array()
        .unwrap()
        .iter()
        .any(|x| &x["id"] == *j)));
    let after = all_lines(&s).await;
    assert_eq!(
        after.iter().map(|l| &l["id"]).collect::<Vec<_>>(),
        before.iter().map(|l| &l["id"]).collect::<Vec<_>>(),
        "the same lines, none twice"
    );
    assert!(after
        .iter()
        .zip(&before)
        .all(|(a, b)| a["saltedge_transaction_id"] != b["saltedge_transaction_id"]));
    let truth = s
        .sim
        .ground_truth(conn["saltedge_id"].as_str().unwrap())
        .unwrap();
    let posted: usize = truth.accounts.iter().map(|a| a.posted.len()).sum();
    assert_eq!(after.len(), posted);

    let (st, h) = s
        .call(
            Method::GET,
            &format!("/api/v1/statement-lines/{}/history", after[0]["id"]),
            None,
        )
        .await;
    assert_eq!(st, 200);
    let last = h["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["kind"].as_str(), last["detail"]["reason"].as_str()),
        (Some("rekeyed"), Some("relinked"))
    );

    settle(&s).await;
    let lines_before_feed = consumer.lines.len();
    consumer.catch_up(&s).await;
    assert_eq!(consumer.lines.len(), lines_before_feed, "no line added");
    assert_eq!(consumer.lines, books(&s).await);
}

/// A match only by name waits for the bookkeeper: listed, confirmed or rejected through the
/// API (each queues a sync), decided once; another company cannot see or decide it.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn account_matches_are_decided_through_the_api(pool: PgPool) {
    let s = stack(pool).await;
    let conn = linked(&s, "fake_client_xf").await;
    settle(&s).await;
    let (_, c) = s
        .call(Method::GET, &format!("/api/v1/connections/{conn}"), None)
        .await;
    let se_conn = c["saltedge_id"].as_str().unwrap().to_string();
    let lines_before = all_lines(&s).await.len();
    sqlx::query("UPDATE bank_accounts SET iban = NULL, account_number = NULL")
        .execute(&s.pool)
        .await
        .unwrap();
    s.sim.relink_accounts(&se_conn);
    s.sim.edit_connection(&se_conn, |rec| {
        for a in rec.accounts.iter_mut() {
            a.extra.as_object_mut().unwrap().remove("iban");
        }
    });
    let runs = succeeded_runs(&s, &conn).await;
    let (st, _) = s
        .call(
            Method::POST,
            &format!("/api/v1/connections/{conn}/sync"),
            None,
        )
        .await;
    assert_eq!(st, 202);
    wait_sync(&s, &conn, runs).await;
    let (st, matches) = s.call(Method::GET, "/api/v1/account-matches", None).await;
    assert_eq!(st, 200);
    let matches = matches.as_array().unwrap().clone();
    assert_eq!(matches.len(), 2, "{matches:?}");
    assert!(matches.iter().all(|m| m["status"] == "proposed"));
    assert_eq!(
        all_lines(&s).await.len(),
        lines_before,
        "their transactions wait"
    );

    let other = companies::create(&s.pool, "Other Books").await.unwrap();
    let (_, token) = tokens::create(&s.pool, other.id, "other").await.unwrap();
    let (st, _) = s
        .call_as(
            &token,
            Method::POST,
            &format!("/api/v1/account-matches/{}/confirm", matches[0]["id"]),
            None,
        )
        .await;
    assert_eq!(st, 404);

    let runs = succeeded_runs(&s, &conn).await;
    let (st, q) = s
        .call(
            Method::POST,
            &format!("/api/v1/account-matches/{}/confirm", matches[0]["id"]),
            None,
        )
        .await;
    assert_eq!(st, 202, "{q}");
    let (st, _) = s
        .call(
            Method::POST,
            &format!("/api/v1/account-matches/{}/reject", matches[1]["id"]),
            None,
        )
        .await;
    assert_eq!(st, 202);
    let (st, p) = s
        .call(
            Method::POST,
            &format!("/api/v1/account-matches/{}/reject", matches[0]["id"]),
            None,
        )
        .await;
    assert_eq!(
        (st.as_u16(), p["code"].as_str()),
        (409, Some("already_decided"))
    );
    wait_sync(&s, &conn, runs).await;
    settle(&s).await;

    let (_, all) = s
        .call(Method::GET, "/api/v1/account-matches?all=true", None)
        .await;
    let statuses: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["confirmed", "rejected"]);
    let (_, journals) = s.call(Method::GET, "/api/v1/journals", None).await;
    assert_eq!(
        journals.as_array().unwrap().len(),
        3,
        "the rejected one got its own"
    );
    let (_, c) = s
        .call(Method::GET, &format!("/api/v1/connections/{conn}"), None)
        .await;
    let confirmed = c["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == matches[0]["candidate_account_id"])
        .expect("the earlier account serves the connection again")
        .clone();
    let truth = s.sim.ground_truth(&se_conn).unwrap();
    let lines = all_lines(&s).await;
    let in_confirmed = lines
        .iter()
        .filter(|l| l["bank_account_id"] == confirmed["id"])
        .count();
    let bank = truth
        .accounts
        .iter()
        .find(|a| a.account_id == confirmed["saltedge_id"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        in_confirmed,
        bank.posted.len(),
        "history kept, nothing twice"
    );
}

/// A bookkeeper links a pending transaction to the line that is its posting (a proposal
/// confirmed) and undoes a wrong link; both are recorded in the line's history, and each
/// answers 409 when it does not apply.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn a_pending_link_is_made_and_undone_by_the_bookkeeper(pool: PgPool) {
    let s = stack(pool).await;
    linked(&s, "fake_client_xf").await;
    let pending = all_pending(&s).await;
    let p = pending
        .first()
        .expect("the bank lists pending transactions")
        .clone();
    let lines = all_lines(&s).await;
    let line = lines
        .iter()
        .find(|l| {
            l["bank_account_id"] == p["bank_account_id"] && l["pending_transaction_id"].is_null()
        })
        .expect("a line of the same account")
        .clone();
    let (pid, lid) = (p["id"].as_i64().unwrap(), line["id"].as_i64().unwrap());

    let (st, body) = s
        .call(
            Method::POST,
            &format!("/api/v1/pending-transactions/{pid}/unlink"),
            None,
        )
        .await;
    assert_eq!(st, 409, "not linked: {body}");
    // An integer written with a zero fraction is that integer (JSON Schema's `integer`).
    let (st, linked) = s
        .call(
            Method::POST,
            &format!("/api/v1/pending-transactions/{pid}/link"),
            Some(json!({ "line_id": lid as f64 })),
        )
        .await;
    assert_eq!(st, 200, "{linked}");
    assert_eq!(
        (linked["state"].as_str(), linked["posted_line_id"].as_i64()),
        (Some("posted"), Some(lid))
    );
    let (st, _) = s
        .call(
            Method::POST,
            &format!("/api/v1/pending-transactions/{pid}/link"),
            Some(json!({ "line_id": lid })),
        )
        .await;
    assert_eq!(st, 409, "already linked");
    let (st, _) = s
        .call(
            Method::POST,
            &format!("/api/v1/pending-transactions/{pid}/link"),
            Some(json!({ "line_id": 999_999_999 })),
        )
        .await;
    assert_eq!(st, 409, "already linked comes first");

    let (st, open) = s
        .call(
            Method::POST,
            &format!("/api/v1/pending-transactions/{pid}/unlink"),
            None,
        )
        .await;
    assert_eq!(st, 200, "{open}");
    assert_eq!(open["state"], "expired");
    assert!(open["posted_line_id"].is_null());
    let (_, history) = s
        .call(
            Method::GET,
            &format!("/api/v1/statement-lines/{lid}/history"),
            None,
        )
        .await;
    let kinds: Vec<&str> = history["events"]
        .as_array()
        .or(history.as_array())
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"posted_from_pending") && kinds.contains(&"pending_unlinked"),
        "{kinds:?}"
    );
    let (st, _) = s
        .call(
            Method::POST,
            "/api/v1/pending-transactions/999999999/link",
            Some(json!({ "line_id": lid })),
        )
        .await;
    assert_eq!(st, 404);
    // An id that is no number names nothing (problem+json, as every other route).
    let (st, _) = s
        .call(
            Method::POST,
            "/api/v1/pending-transactions/9223372036854775808/unlink",
            None,
        )
        .await;
    assert_eq!(st, 404);
    let (st, _) = s
        .call(
            Method::POST,
            &format!("/api/v1/pending-transactions/{pid}/link"),
            Some(json!({ "line_id": 1.5 })),
        )
        .await;
    assert_eq!(st, 422, "not a whole number");
}

/// The bank removes one transaction and re-issues another with a changed amount and text:
/// the API shows the removal and the possible re-issue, the bookkeeper confirms and undoes
/// the removal and merges the re-issue, and the change feed carries each step.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn removals_and_reissues_are_answered_through_the_api(pool: PgPool) {
    let s = stack(pool).await;
    let conn_id = linked(&s, "fake_client_xf").await;
    let (_, conn) = s
        .call(Method::GET, &format!("/api/v1/connections/{conn_id}"), None)
        .await;
    let se_conn = conn["saltedge_id"].as_str().unwrap().to_string();
    let (_, feed) = s.call(Method::GET, "/api/v1/changes", None).await;
    let mut cursor = feed["next_cursor"].as_str().unwrap().to_string();
    let truth = s.sim.ground_truth(&se_conn).unwrap();
    let mut posted: Vec<_> = truth.accounts[0].posted.clone();
    posted.sort_by_key(|t| t.id.parse::<u64>().unwrap());
    let (gone, reissued) = (
        posted[posted.len() - 1].clone(),
        posted[posted.len() - 2].clone(),
    );
    s.sim.remove_posted(&se_conn, &gone.id);
    let changed = reissued.amount + rust_decimal::Decimal::new(25, 2);
    let new_id = s
        .sim
        .reissue_changed(&se_conn, &reissued.id, changed, "Booking text, corrected");
    let before = succeeded_runs(&s, &conn_id).await;
    s.call(
        Method::POST,
        &format!("/api/v1/connections/{conn_id}/sync"),
        None,
    )
    .await;
    let run = wait_sync(&s, &conn_id, before).await;
    assert_eq!(
        (
            run["gone_at_bank"].as_i64(),
            run["possible_reissues"].as_i64()
        ),
        (Some(2), Some(1)),
        "{run}"
    );
    let lines = all_lines(&s).await;
    let by_se = |id: &str| {
        lines
            .iter()
            .find(|l| l["saltedge_transaction_id"] == id)
            .unwrap()
            .clone()
    };
    let (g, o, n) = (by_se(&gone.id), by_se(&reissued.id), by_se(&new_id));
    assert_eq!(
        (g["removal_review"].as_str(), o["removal_review"].as_str()),
        (Some("flagged"), Some("flagged"))
    );
    assert_eq!(
        (n["reissue_of"].as_i64(), n["reissue_review"].as_str()),
        (o["id"].as_i64(), Some("flagged"))
    );
    let (gid, oid, nid) = (
        g["id"].as_i64().unwrap(),
        o["id"].as_i64().unwrap(),
        n["id"].as_i64().unwrap(),
    );

    let post = |path: String| {
        let s = &s;
        async move { s.call(Method::POST, &path, None).await }
    };
    let (st, l) = post(format!("/api/v1/statement-lines/{gid}/confirm-removal")).await;
    assert_eq!(
        (
            st.as_u16(),
            l["removal_review"].as_str(),
            l["in_journal"].as_bool()
        ),
        (200, Some("confirmed"), Some(false)),
        "{l}"
    );
    let (st, _) = post(format!("/api/v1/statement-lines/{gid}/keep-removed")).await;
    assert_eq!(st, 409, "answered already");
    let (st, l) = post(format!("/api/v1/statement-lines/{gid}/undo-review")).await;
    assert_eq!(
        (
            st.as_u16(),
            l["removal_review"].as_str(),
            l["in_journal"].as_bool()
        ),
        (200, Some("flagged"), Some(true))
    );
    let (st, l) = post(format!("/api/v1/statement-lines/{gid}/keep-removed")).await;
    assert_eq!(
        (
            st.as_u16(),
            l["removal_review"].as_str(),
            l["in_journal"].as_bool()
        ),
        (200, Some("kept"), Some(true))
    );
    let (st, _) = post(format!("/api/v1/statement-lines/{oid}/merge-reissue")).await;
    assert_eq!(st, 409, "the earlier line is not the re-issue");
    let (st, m) = post(format!("/api/v1/statement-lines/{nid}/merge-reissue")).await;
    assert_eq!(st, 200, "{m}");
    assert_eq!(
        (m["id"].as_i64(), m["saltedge_transaction_id"].as_str()),
        (Some(oid), Some(new_id.as_str()))
    );
    assert_eq!(
        (m["amount"].as_str(), m["removal_review"].as_str()),
        (Some(changed.to_string().as_str()), None)
    );
    let (st, _) = s
        .call(
            Method::GET,
            &format!("/api/v1/statement-lines/{nid}/history"),
            None,
        )
        .await;
    assert_eq!(st, 404, "the re-issue's own line is gone");

    // The feed: the merged line modified, the re-issue's line removed, the kept one modified.
    let mut ops: Vec<(i64, String)> = vec![];
    loop {
        let (st, page) = s
            .call(
                Method::GET,
                &format!("/api/v1/changes?cursor={cursor}"),
                None,
            )
            .await;
        assert_eq!(st, 200, "{page}");
        for c in page["changes"].as_array().unwrap() {
            if c["entity"] == "line" {
                ops.push((
                    c["id"].as_i64().unwrap(),
                    c["op"].as_str().unwrap().to_string(),
                ));
            }
        }
        cursor = page["next_cursor"].as_str().unwrap().to_string();
        if page["caught_up"] == true {
            break;
        }
    }
    assert!(ops.contains(&(nid, "removed".into())), "{ops:?}");
    assert!(ops.contains(&(oid, "modified".into())), "{ops:?}");
    assert!(ops.contains(&(gid, "modified".into())), "{ops:?}");
}
