//! The deduplication rules and the integrity of the lines a sync writes.
//!
//! Long because every dedup rule has its own test, as the rules in `ingest/lines/mod.rs` list them.

use super::support::*;

#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn rule1_resync_of_the_whole_history_changes_nothing(pool: PgPool) {
    let f = fixture(&pool, |_| {}).await;
    let first = sync(&pool, &f, false).await;
    assert_eq!(first.run.status, sync_engine::status::RunStatus::Succeeded);
    assert_eq!(first.new_accounts.len(), 2);
    assert!(first.run.inserted > 80);
    assert_matches_truth(&pool, &f).await;
    let before = lines(&pool, f.conn).await;

    let again = sync(&pool, &f, true).await;
    assert_eq!((again.run.inserted, again.run.updated), (0, 0));
    assert_eq!(again.run.skipped_duplicate, first.run.inserted);
    assert!(again.new_accounts.is_empty());
    assert_eq!(lines(&pool, f.conn).await, before);
    assert_matches_truth(&pool, &f).await;
}

#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn rule2_pending_that_posts_under_a_new_id_is_linked_not_doubled(pool: PgPool) {
    let f = fixture(&pool, |c| c.data.pending_per_account = 4).await;
    sync(&pool, &f, false).await;
    let pending_ids: HashMap<String, i64> = sqlx::query_as::<_, (String, i64)>(
        "SELECT saltedge_transaction_id, id FROM pending_transactions WHERE state = 'pending'",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
    .into_iter()
    .collect();
    assert_eq!(pending_ids.len(), 8);
    let in_books: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM statement_lines WHERE saltedge_transaction_id = ANY($1)",
    )
    .bind(pending_ids.keys().cloned().collect::<Vec<_>>())
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(in_books, 0, "pending transactions are not statement lines");

    f.sim.advance(&f.se_conn);
    let report = sync(&pool, &f, false).await;
    let truth = f.sim.ground_truth(&f.se_conn).unwrap();
    let pairs: Vec<(String, String)> = truth
        .accounts
        .iter()
        .flat_map(|a| a.posted_from_pending.clone())
        .collect();
    assert_eq!(pairs.len(), 6, "three of four pending posted per account");
    for (pending_id, posted_id) in &pairs {
        let (line_id, from): (i64, Option<i64>) = sqlx::query_as(
            "SELECT id, pending_transaction_id FROM statement_lines WHERE saltedge_transaction_id = $1",
        )
        .bind(posted_id)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(
            from,
            Some(pending_ids[pending_id]),
            "the line names its pending transaction"
        );
        let (state, posted_line): (String, Option<i64>) =
            sqlx::query_as("SELECT state, posted_line_id FROM pending_transactions WHERE id = $1")
                .bind(pending_ids[pending_id])
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!((state.as_str(), posted_line), ("posted", Some(line_id)));
    }
    assert!(report.run.inserted >= 6);
    assert_matches_truth(&pool, &f).await;
}

/// A pending card payment of -15.00 the bank still lists as pending is never linked to
/// another posted payment of the same amount a day later ("Another merchant, same amount"):
/// the sync reads the pending list before it links. When the payment really posts, it is
/// linked to its own posting. Storing a pending transaction changes no line: `updated`
/// stays 0 and no `lines.changed` is sent.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn rule2_a_pending_the_bank_still_lists_is_never_linked(pool: PgPool) {
    use saltedge_sim::wire::TransactionStatus as SimStatus;
    let f = fixture(&pool, |c| {
        c.data.pending_per_account = 0;
        c.data.new_transactions_per_fetch = 0;
        c.data.reissued_per_fetch = 0;
    })
    .await;
    sqlx::query("INSERT INTO webhook_endpoints (company_id, url, secret) VALUES ($1, 'https://books.example/hook', 'whsec_test')")
        .bind(f.company)
        .execute(&pool)
        .await
        .unwrap();
    let lines_changed = |run: uuid::Uuid| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM webhook_events WHERE kind = 'lines.changed' AND payload->'data'->>'sync_run_id' = $1",
            )
            .bind(run.to_string())
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    sync(&pool, &f, false).await;
    let today = banksync_testkit::clock::today();
    let make = |rec: &saltedge_sim::world::ConnRec, id: &str, status, days_ago: u64, text: &str| {
        let mut t = rec.posted[0].clone();
        t.id = id.into();
        t.status = status;
        t.duplicated = false;
        t.made_on = today - chrono::Days::new(days_ago);
        t.amount = "-15.00".parse().unwrap();
        t.description = text.into();
        t.extra = serde_json::json!({ "payee": text, "record_number": id });
        t
    };
    let (pending_id, other_id, real_id) = (
        "990000000000000001",
        "990000000000000002",
        "990000000000000003",
    );
    f.sim.edit_connection(&f.se_conn, |rec| {
        let p = make(
            rec,
            pending_id,
            SimStatus::Pending,
            1,
            "Card payment Coffee Corner",
        );
        rec.pending.push(p);
    });
    let r = sync(&pool, &f, false).await;
    assert_eq!((r.run.inserted, r.run.updated), (0, 0), "no line changed");
    assert_eq!(
        lines_changed(r.run.id).await,
        0,
        "no lines.changed for a pending transaction"
    );

    // Another merchant's payment of the same amount posts; the card payment stays pending.
    f.sim.edit_connection(&f.se_conn, |rec| {
        let t = make(
            rec,
            other_id,
            SimStatus::Posted,
            0,
            "Another merchant, same amount",
        );
        rec.posted.push(t);
    });
    let r = sync(&pool, &f, false).await;
    assert_eq!(
        lines_changed(r.run.id).await,
        1,
        "a new line: lines.changed"
    );
    let state = |id: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_as::<_, (String, Option<i64>, Option<i64>)>(
                "SELECT state, posted_line_id, proposed_line_id FROM pending_transactions WHERE saltedge_transaction_id = $1",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    assert_eq!(
        state(pending_id).await,
        ("pending".to_string(), None, None),
        "still listed as pending: not posted, not proposed"
    );
    let other_link: Option<i64> = sqlx::query_scalar(
        "SELECT pending_transaction_id FROM statement_lines WHERE saltedge_transaction_id = $1",
    )
    .bind(other_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(other_link, None);

    // The card payment posts under a new id: linked to its own posting.
    f.sim.edit_connection(&f.se_conn, |rec| {
        rec.pending.retain(|t| t.id != pending_id);
        let t = make(
            rec,
            real_id,
            SimStatus::Posted,
            0,
            "CARD PAYMENT COFFEE CORNER REF4821",
        );
        rec.posted.push(t);
    });
    sync(&pool, &f, false).await;
    let real_line: i64 =
        sqlx::query_scalar("SELECT id FROM statement_lines WHERE saltedge_transaction_id = $1")
            .bind(real_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        state(pending_id).await,
        ("posted".to_string(), Some(real_line), None)
    );
}

/// Weak evidence is proposed, not linked: the only open pending transaction of the same
/// amount, no longer listed, but without a word in common with the posting.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn rule2_weak_evidence_is_proposed_not_linked(pool: PgPool) {
    use saltedge_sim::wire::TransactionStatus as SimStatus;
    let f = fixture(&pool, |c| {
        c.data.pending_per_account = 0;
        c.data.new_transactions_per_fetch = 0;
        c.data.reissued_per_fetch = 0;
    })
    .await;
    sync(&pool, &f, false).await;
    let today = banksync_testkit::clock::today();
    let (pending_id, posted_id) = ("990000000000000011", "990000000000000012");
    let mut template = None;
    f.sim.edit_connection(&f.se_conn, |rec| {
        let mut p = rec.posted[0].clone();
        p.id = pending_id.into();
        p.status = SimStatus::Pending;
        p.duplicated = false;
        p.made_on = today;
        p.amount = "-15.00".parse().unwrap();
        p.description = "Pending card 1".into();
        p.extra = serde_json::json!({ "payee": "", "record_number": pending_id });
        template = Some(p.clone());
        rec.pending.push(p);
    });
    sync(&pool, &f, false).await;
    f.sim.edit_connection(&f.se_conn, |rec| {
        rec.pending.clear();
        let mut t = template.clone().unwrap();
        t.id = posted_id.into();
        t.status = SimStatus::Posted;
        t.description = "Pending card 2".into();
        t.extra = serde_json::json!({ "payee": "", "record_number": posted_id });
        rec.posted.push(t);
    });
    sync(&pool, &f, false).await;
    let line: (i64, Option<i64>) = sqlx::query_as(
        "SELECT id, pending_transaction_id FROM statement_lines WHERE saltedge_transaction_id = $1",
    )
    .bind(posted_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(line.1, None, "not linked: card 1 is not card 2");
    let (state, posted, proposed): (String, Option<i64>, Option<i64>) = sqlx::query_as(
        "SELECT state, posted_line_id, proposed_line_id FROM pending_transactions WHERE saltedge_transaction_id = $1",
    )
    .bind(pending_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((state.as_str(), posted), ("expired", None));
    assert_eq!(proposed, Some(line.0), "proposed for review");
}

#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn rule3_vanished_pending_transactions_expire_lines_never(pool: PgPool) {
    let f = fixture(&pool, |c| c.data.pending_per_account = 4).await;
    sync(&pool, &f, false).await;
    f.sim.advance(&f.se_conn);
    let report = sync(&pool, &f, false).await;
    let truth = f.sim.ground_truth(&f.se_conn).unwrap();
    let vanished = &truth.accounts[0].vanished_pending;
    assert_eq!(vanished.len(), 2);
    assert_eq!(report.run.pending_removed, 2);
    let all = lines(&pool, f.conn).await;
    assert!(vanished.iter().all(|v| !all.contains_key(v)));
    let states: Vec<String> = sqlx::query_scalar(
        "SELECT state FROM pending_transactions WHERE saltedge_transaction_id = ANY($1)",
    )
    .bind(vanished)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(states, ["expired", "expired"], "kept, out of the books");
    assert_matches_truth(&pool, &f).await;

    // Even an empty pending list expires only open pending transactions: lines stay.
    let posted_before = all.values().filter(|s| *s == "posted").count();
    let expired = lines::expire_vanished_pending(&pool, f.conn, &[])
        .await
        .unwrap();
    assert_eq!(
        expired as usize,
        all.values().filter(|s| *s == "pending").count()
    );
    let after = lines(&pool, f.conn).await;
    assert_eq!(after.len(), posted_before);
    assert!(after.values().all(|s| s == "posted"));
}

#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn rule4_duplicated_transactions_are_counted_not_imported(pool: PgPool) {
    let f = fixture(&pool, |_| {}).await;
    // Only a client sets `duplicated` (here, as a bookkeeper's confirmation would).
    let truth = f.sim.ground_truth(&f.se_conn).unwrap();
    let dup_ids: Vec<String> = truth
        .accounts
        .iter()
        .flat_map(|a| a.twins.iter().map(|(_, twin)| twin.clone()))
        .collect();
    assert_eq!(
        dup_ids.len(),
        2,
        "one genuine twin per account, and nothing flagged by the simulator"
    );
    assert!(truth.accounts.iter().all(|a| a.duplicated_ids.is_empty()));
    let customer = f
        .client
        .show_connection(&f.se_conn)
        .await
        .unwrap()
        .customer_id;
    f.client
        .mark_duplicated(&saltedge_client::models::DuplicateRequest {
            customer_id: customer,
            transaction_ids: dup_ids.clone(),
        })
        .await
        .unwrap();
    let report = sync(&pool, &f, false).await;
    assert_eq!(report.run.flagged_duplicated, 2);
    let all = lines(&pool, f.conn).await;
    assert!(dup_ids.iter().all(|d| !all.contains_key(d)));
    assert_matches_truth(&pool, &f).await;

    // A transaction flagged `duplicated` inside the posted list is skipped too.
    let target = target_of(&pool, f.conn).await;
    let mut t = tx(
        "900000000000000001",
        &target.0,
        "2026-01-05",
        "-12.50",
        "Coffee Shop",
    );
    t.duplicated = true;
    let out = write(&pool, &f, &target, vec![t]).await;
    assert_eq!((out.flagged_duplicated, out.inserted), (1, 0));
    assert!(!lines(&pool, f.conn)
        .await
        .contains_key("900000000000000001"));
}

#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn rule5_incremental_and_overlapping_windows_never_double(pool: PgPool) {
    let f = fixture(&pool, |_| {}).await;
    sync(&pool, &f, false).await;
    for _ in 0..3 {
        f.sim.advance(&f.se_conn);
        let r = sync(&pool, &f, false).await;
        assert!(r.run.from_id.is_some(), "incremental");
        assert!(
            r.run.skipped_duplicate > 0,
            "the overlap window re-fetched known lines"
        );
        assert_matches_truth(&pool, &f).await;
    }
    let whole = sync(&pool, &f, true).await;
    assert_eq!(whole.run.inserted, 0);
    assert_matches_truth(&pool, &f).await;
}

#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn rule6_two_concurrent_syncs_serialize(pool: PgPool) {
    let f = fixture(&pool, |c| c.data.transactions_per_account = 1500).await;
    // A second pool stands for a second process: its own sessions, same database.
    let other = sqlx::postgres::PgPoolOptions::new()
        .connect_with((*pool.connect_options()).clone())
        .await
        .unwrap();
    let opts = SyncOptions::default();
    let (a, b) = tokio::join!(
        sync_connection(&pool, &f.client, f.conn, &opts),
        sync_connection(&other, &f.client, f.conn, &opts),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.run.status, sync_engine::status::RunStatus::Succeeded);
    assert_eq!(b.run.status, sync_engine::status::RunStatus::Succeeded);
    let total = lines(&pool, f.conn)
        .await
        .values()
        .filter(|s| *s == "posted")
        .count() as i32;
    assert_eq!(
        a.run.inserted + b.run.inserted,
        total,
        "each line inserted by exactly one of the two"
    );
    assert!(
        a.run.inserted == 0 || b.run.inserted == 0,
        "one ran after the other"
    );
    // Their runs did not overlap in time.
    let (first, second) = if a.run.started_at < b.run.started_at {
        (&a.run, &b.run)
    } else {
        (&b.run, &a.run)
    };
    assert!(first.finished_at.unwrap() <= second.started_at);
    assert_matches_truth(&pool, &f).await;
}

#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn rule7_look_alikes_with_other_ids_are_flagged_not_dropped(pool: PgPool) {
    let f = fixture(&pool, |_| {}).await;
    sync(&pool, &f, false).await;
    let target = target_of(&pool, f.conn).await;
    let a = tx(
        "900000000000000010",
        &target.0,
        "2026-02-01",
        "-3.50",
        "Coffee Shop",
    );
    let b = tx(
        "900000000000000011",
        &target.0,
        "2026-02-01",
        "-3.50",
        "COFFEE SHOP 0042",
    );
    let c = tx(
        "900000000000000012",
        &target.0,
        "2026-02-01",
        "-3.60",
        "Coffee Shop",
    );
    let out = write(&pool, &f, &target, vec![a, b, c]).await;
    assert_eq!((out.inserted, out.suspects), (3, 1));
    let rows: Vec<(String, Option<i64>, i64)> = sqlx::query_as(
        "SELECT saltedge_transaction_id, suspect_duplicate_of, id FROM statement_lines
         WHERE saltedge_transaction_id LIKE '9000000000000000%' ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].1, None);
    assert_eq!(rows[1].1, Some(rows[0].2));
    assert_eq!(rows[2].1, None, "a different amount is not a look-alike");
}

#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn crash_between_pages_loses_only_the_page_in_flight(pool: PgPool) {
    let f = fixture(&pool, |c| {
        c.data.accounts_per_connection = 1;
        c.data.transactions_per_account = 2500;
    })
    .await;
    // The second transactions page dies mid-answer, and this client does not retry (the
    // pending list, read first, is the first request on that path).
    f.sim.set_faults(vec![FaultRule::new(FaultAction::Drop)
        .on_path("/transactions")
        .nth(3)]);
    let fragile = client_for(&f.sim, 0);
    let err = sync_connection(&pool, &fragile, f.conn, &SyncOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            SyncError::SaltEdge(saltedge_client::Error::Transport(_))
        ),
        "{err:?}"
    );
    let after_crash = lines(&pool, f.conn).await;
    assert_eq!(after_crash.len(), 1000, "exactly the first page was stored");
    let failed: (String, i32) =
        sqlx::query_as("SELECT status, inserted FROM sync_runs ORDER BY started_at LIMIT 1")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(failed, ("failed".to_string(), 1000));

    f.sim.set_faults(vec![]);
    let rerun = sync(&pool, &f, false).await;
    assert_eq!(rerun.run.status, sync_engine::status::RunStatus::Succeeded);
    assert_matches_truth(&pool, &f).await;
}

#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn lines_before_the_journal_start_date_are_skipped(pool: PgPool) {
    let f = fixture(&pool, |_| {}).await;
    sync(&pool, &f, false).await;
    let (se_account, mut target) = target_of(&pool, f.conn).await;
    target.sync_start_date = NaiveDate::from_ymd_opt(2026, 3, 1);
    let old = tx(
        "900000000000000020",
        &se_account,
        "2026-02-28",
        "10.00",
        "Old",
    );
    let new = tx(
        "900000000000000021",
        &se_account,
        "2026-03-01",
        "10.00",
        "New",
    );
    let out = write(&pool, &f, &(se_account, target), vec![old, new]).await;
    assert_eq!((out.inserted, out.skipped_before_start), (1, 1));
    let all = lines(&pool, f.conn).await;
    assert!(all.contains_key("900000000000000021") && !all.contains_key("900000000000000020"));
}

/// Hostile bank text: arbitrary Unicode, very long, empty, `null`, U+0000 and lone UTF-16
/// surrogates in every text field of accounts and transactions, through a full sync against
/// Postgres. Markers in the simulator's data become the raw JSON (`null`, `\u0000`, `\ud800`)
/// on the wire. Nothing panics, every transaction becomes exactly one line, and lines whose
/// text could not be stored carry U+FFFD and `text_repaired`.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn hostile_bank_text_never_stops_a_sync(pool: PgPool) {
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let text = prop_oneof![
        Just(String::new()),
        any::<String>(),
        "\\PC{0,60}",
        Just("Müller Consulting GmbH".to_string()),
        Just("D€12345678901234567 ÄÖÜ".to_string()),
        Just("é".repeat(20_000)),
        Just("⟦NULL⟧".to_string()),
        Just("a⟦NUL⟧b".to_string()),
        Just("x⟦LONE⟧y".to_string()),
    ];
    let f = fixture(&pool, |c| {
        c.data.transactions_per_account = 6;
        c.data.pending_per_account = 2;
    })
    .await;
    f.sim.set_body_rewrites(vec![
        ("\"⟦NULL⟧\"".into(), "null".into()),
        ("⟦NUL⟧".into(), "\\u0000".into()),
        ("⟦LONE⟧".into(), "\\ud800".into()),
    ]);
    let mut runner = TestRunner::default();
    for case in 0..12 {
        let (_, se_conn) = f
            .sim
            .seed_connection(&format!("hostile-{case}"), "fake_client_xf");
        let mut texts = vec![];
        f.sim.edit_connection(&se_conn, |rec| {
            let mut next = || {
                let t = text.new_tree(&mut runner).unwrap().current();
                texts.push(t.clone());
                t
            };
            for a in rec.accounts.iter_mut() {
                a.name = next();
                for k in ["iban", "account_name", "client_name"] {
                    a.extra[k] = serde_json::Value::String(next());
                }
            }
            for t in rec.posted.iter_mut().chain(rec.pending.iter_mut()) {
                t.description = next();
                for k in [
                    "payee",
                    "payee_information",
                    "payer",
                    "information",
                    "additional",
                ] {
                    t.extra[k] = serde_json::Value::String(next());
                }
            }
        });
        let se = f.client.show_connection(&se_conn).await.unwrap();
        let conn = connections::upsert_from_saltedge(&pool, f.company, &se)
            .await
            .unwrap()
            .id;
        let report = sync_connection(&pool, &f.client, conn, &SyncOptions::default())
            .await
            .unwrap_or_else(|e| panic!("case {case}: sync failed: {e}\ntexts: {texts:?}"));
        assert_eq!(report.run.status, sync_engine::status::RunStatus::Succeeded);
        let truth = f.sim.ground_truth(&se_conn).unwrap();
        let expected: BTreeMap<String, String> = truth
            .accounts
            .iter()
            .flat_map(|a| {
                a.posted
                    .iter()
                    .map(|t| (t.id.clone(), "posted".to_string()))
                    .chain(
                        a.pending
                            .iter()
                            .map(|t| (t.id.clone(), "pending".to_string())),
                    )
            })
            .collect();
        assert_eq!(
            lines(&pool, conn).await,
            expected,
            "case {case}: every transaction is one line"
        );
        // Texts after the accounts' four each belong to lines.
        let line_texts = &texts[4 * truth.accounts.len()..];
        if line_texts
            .iter()
            .any(|t| t.contains("⟦NUL⟧") || t.contains("⟦LONE⟧"))
        {
            let repaired: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM statement_lines l JOIN bank_accounts a ON a.id = l.bank_account_id
                 WHERE a.connection_id = $1 AND l.text_repaired
                   AND (strpos(l.description, U&'\\FFFD') > 0 OR strpos(l.extra::text, U&'\\FFFD') > 0)",
            )
            .bind(conn)
            .fetch_one(&pool)
            .await
            .unwrap();
            assert!(
                repaired > 0,
                "case {case}: lines with unstorable text are marked text_repaired"
            );
        }
    }
}

/// Rule 8 and Salt Edge's duplicate semantics: a genuine twin (both ids listed) stays a line
/// of its own, flagged; a transaction re-issued under a new id is re-keyed (same line id, new
/// Salt Edge id, the old one remembered) only once a listing covering the old id lacks it.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn rule8_reissued_transactions_are_rekeyed_only_when_the_old_id_is_gone(pool: PgPool) {
    let f = fixture(&pool, |c| {
        c.data.reissued_per_fetch = 0;
        c.data.twins_per_account = 1;
    })
    .await;
    sync(&pool, &f, false).await;
    let truth = f.sim.ground_truth(&f.se_conn).unwrap();
    let rows = review_rows(&pool, f.conn).await;
    let id_of = |se: &str| {
        rows.iter()
            .find(|r| r.1 == se)
            .unwrap_or_else(|| panic!("no line for {se}"))
            .0
    };
    for (first, twin) in truth.accounts.iter().flat_map(|a| a.twins.clone()) {
        let twin_row = rows.iter().find(|r| r.1 == twin).unwrap();
        assert_eq!(
            twin_row.2,
            Some(id_of(&first)),
            "the genuine twin is its own line, flagged"
        );
    }

    // The bank re-issues a recent transaction: re-keyed in the next (incremental) sync.
    let recent = truth.accounts[0]
        .posted
        .iter()
        .max_by_key(|t| (t.made_on, t.id.clone()))
        .unwrap()
        .id
        .clone();
    let line_id = id_of(&recent);
    let new_id = f.sim.reissue(&f.se_conn, &recent);
    let r = sync(&pool, &f, false).await;
    assert_eq!(r.run.rekeyed, 1);
    let rows = review_rows(&pool, f.conn).await;
    let moved = rows.iter().find(|r| r.0 == line_id).unwrap();
    assert_eq!(
        (moved.1.as_str(), moved.3.as_deref()),
        (new_id.as_str(), Some(recent.as_str())),
        "same line, new id, old id kept"
    );
    assert_matches_truth(&pool, &f).await;

    // An old transaction re-issued: the incremental listing does not reach its id, so the
    // new one stands flagged; a full listing confirms the old id gone and re-keys.
    let oldest = f.sim.ground_truth(&f.se_conn).unwrap().accounts[0].posted[0]
        .id
        .clone();
    let old_line = id_of(&oldest);
    let new_old = f.sim.reissue(&f.se_conn, &oldest);
    let r = sync(&pool, &f, false).await;
    assert_eq!(
        r.run.rekeyed, 0,
        "not confirmed gone: its id lies below the listing's from_id"
    );
    let rows = review_rows(&pool, f.conn).await;
    assert_eq!(
        rows.iter().find(|r| r.1 == new_old).unwrap().2,
        Some(old_line),
        "the re-issue is flagged for review"
    );
    let r = sync(&pool, &f, true).await;
    assert_eq!(r.run.rekeyed, 1);
    let rows = review_rows(&pool, f.conn).await;
    assert_eq!(rows.iter().find(|r| r.0 == old_line).unwrap().1, new_old);
    assert_matches_truth(&pool, &f).await;
    assert_eq!(r.run.balance_mismatches, serde_json::json!([]));
}

/// A transaction with a genuine twin is re-issued: the old line takes the re-issue's id, the
/// twin stays a line of its own.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn rule8_a_reissue_next_to_a_genuine_twin_keeps_the_twin(pool: PgPool) {
    let f = fixture(&pool, |c| {
        c.data.reissued_per_fetch = 0;
        c.data.twins_per_account = 1;
    })
    .await;
    let truth = f.sim.ground_truth(&f.se_conn).unwrap();
    let (first, twin) = truth.accounts[0].twins[0].clone();
    sync(&pool, &f, true).await;
    let rows = review_rows(&pool, f.conn).await;
    let first_line = rows.iter().find(|r| r.1 == first).unwrap().0;
    let twin_line = rows.iter().find(|r| r.1 == twin).unwrap().0;
    let reissued = f.sim.reissue(&f.se_conn, &first);
    let r = sync(&pool, &f, true).await;
    assert_eq!(r.run.rekeyed, 1);
    let rows = review_rows(&pool, f.conn).await;
    assert_eq!(
        rows.iter().find(|r| r.0 == first_line).unwrap().1,
        reissued,
        "the old line carries the re-issue's id"
    );
    assert_eq!(
        rows.iter().find(|r| r.0 == twin_line).unwrap().1,
        twin,
        "the twin is untouched"
    );
    assert_matches_truth(&pool, &f).await;
}

/// Genuine twins X and Y (same date, amount, currency and text), each re-issued by the bank
/// in its own fetch, then X removed: Y's line keeps Y, X's line is not taken over by Y.
/// Listed together once, two transactions for good (issue 30: a live twin was merged into a
/// removed transaction's line).
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn rule8_twins_listed_together_are_never_merged_when_one_goes(pool: PgPool) {
    let f = fixture(&pool, |c| {
        c.data.reissued_per_fetch = 0;
        c.data.twins_per_account = 1;
        c.data.new_transactions_per_fetch = 0;
        c.data.pending_per_account = 0;
    })
    .await;
    let truth = f.sim.ground_truth(&f.se_conn).unwrap();
    let (x, y) = truth.accounts[0].twins[0].clone();
    sync(&pool, &f, true).await;
    let rows = review_rows(&pool, f.conn).await;
    let line_of = |rows: &[(i64, String, Option<i64>, Option<String>)], se: &str| {
        rows.iter().find(|r| r.1 == se).map(|r| r.0)
    };
    let (x_line, y_line) = (line_of(&rows, &x).unwrap(), line_of(&rows, &y).unwrap());
    // X re-issued, then Y: each line re-keyed to its own re-issue.
    let x2 = f.sim.reissue(&f.se_conn, &x);
    assert_eq!(sync(&pool, &f, true).await.run.rekeyed, 1);
    let y2 = f.sim.reissue(&f.se_conn, &y);
    assert_eq!(sync(&pool, &f, true).await.run.rekeyed, 1);
    let rows = review_rows(&pool, f.conn).await;
    assert_eq!(line_of(&rows, &x2), Some(x_line));
    assert_eq!(line_of(&rows, &y2), Some(y_line));
    // The bank removes X: nothing is re-keyed, Y's line still carries Y.
    f.sim.remove_posted(&f.se_conn, &x2);
    let r = sync(&pool, &f, true).await;
    assert_eq!(
        r.run.rekeyed, 0,
        "a twin is not a re-issue of the one that went"
    );
    let rows = review_rows(&pool, f.conn).await;
    assert_eq!(
        line_of(&rows, &y2),
        Some(y_line),
        "the live twin keeps its line"
    );
    assert_eq!(
        line_of(&rows, &x2),
        Some(x_line),
        "the removed one's line is not taken over (lines never vanish)"
    );
    let y_row = rows.iter().find(|r| r.0 == y_line).unwrap();
    assert_eq!(
        y_row.3.as_deref(),
        Some(y.as_str()),
        "re-keyed once, from Y"
    );
    // The bookkeeper is told which line the bank no longer has.
    let gone: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM statement_lines WHERE gone_at_bank_at IS NOT NULL ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(gone, vec![x_line]);
    assert_eq!(r.run.gone_at_bank, 1);
}

/// A transaction the bank removes after banksync stored it: its line stays (closed
/// statements never change) but is flagged `gone_at_bank` (time, run, history, counted on
/// the run); when the bank lists the transaction again the flag clears by itself,
/// recorded.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn a_line_the_bank_removed_is_flagged_and_cleared_when_it_returns(pool: PgPool) {
    let f = fixture(&pool, |c| {
        c.data.reissued_per_fetch = 0;
        c.data.twins_per_account = 0;
        c.data.pending_per_account = 0;
    })
    .await;
    sync(&pool, &f, false).await;
    let truth = f.sim.ground_truth(&f.se_conn).unwrap();
    let newest = truth.accounts[0]
        .posted
        .iter()
        .max_by_key(|t| t.id.parse::<u64>().unwrap())
        .unwrap()
        .id
        .clone();
    let mut removed = None;
    f.sim.edit_connection(&f.se_conn, |rec| {
        let at = rec.posted.iter().position(|t| t.id == newest).unwrap();
        removed = Some(rec.posted.remove(at));
    });
    let r = sync(&pool, &f, false).await;
    assert_eq!(r.run.gone_at_bank, 1, "{:?}", r.run);
    let (line, gone_at, gone_run): (i64, Option<chrono::DateTime<chrono::Utc>>, Option<uuid::Uuid>) =
        sqlx::query_as(
            "SELECT id, gone_at_bank_at, gone_at_bank_run_id FROM statement_lines WHERE saltedge_transaction_id = $1",
        )
        .bind(&newest)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(gone_at.is_some());
    assert_eq!(gone_run, Some(r.run.id));
    let flagged: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM statement_lines WHERE gone_at_bank_at IS NOT NULL",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(flagged, 1, "only the removed one");
    // Nothing more while it stays away.
    let again = sync(&pool, &f, false).await;
    assert_eq!(again.run.gone_at_bank, 0, "flagged once");
    // The bank lists it again: cleared, recorded.
    f.sim.edit_connection(&f.se_conn, |rec| {
        rec.posted.push(removed.take().unwrap());
    });
    sync(&pool, &f, false).await;
    let gone_at: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT gone_at_bank_at FROM statement_lines WHERE id = $1")
            .bind(line)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(gone_at, None);
    let kinds: Vec<String> =
        sqlx::query_scalar("SELECT kind FROM line_events WHERE line_id = $1 ORDER BY id")
            .bind(line)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(kinds, ["gone_at_bank", "back_at_bank"]);
}

/// Two transactions the bank tells apart by its own ids (`extra.id`) are never taken for a
/// re-issue of each other, even when they look alike and one goes.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn rule8_different_bank_ids_are_never_a_reissue(pool: PgPool) {
    let f = fixture(&pool, |_| {}).await;
    sync(&pool, &f, false).await;
    let target = target_of(&pool, f.conn).await;
    let run = sync_engine::runs::start(&pool, f.company, f.conn, "test", None)
        .await
        .unwrap();
    let targets = HashMap::from([target.clone()]);
    let mk = |id: &str, bank: &str| {
        let mut t = tx(id, &target.0, "2026-03-02", "-15.00", "Card payment");
        t.currency_code = target.1.currency.clone();
        t.extra = serde_json::json!({ "payee": "Card shop", "id": bank }).into();
        t
    };
    let (a, b) = (
        mk("900000000000000201", "BK104"),
        mk("900000000000000202", "BK109"),
    );
    lines::write_page(
        &pool,
        run,
        &targets,
        std::slice::from_ref(&a),
        LineStatus::Posted,
        &mut lines::PendingLines::default(),
        &DedupOptions::default(),
    )
    .await
    .unwrap();
    // B arrives in a later listing that no longer holds A: a re-issue by the old rule.
    lines::write_page(
        &pool,
        run,
        &targets,
        std::slice::from_ref(&b),
        LineStatus::Posted,
        &mut lines::PendingLines::default(),
        &DedupOptions::default(),
    )
    .await
    .unwrap();
    let mut seen = lines::SeenIds::default();
    seen.insert(&b.id);
    seen.finish();
    let rekeyed = lines::rekey_reissued(&pool, run, f.conn, None, &seen)
        .await
        .unwrap();
    assert_eq!(rekeyed, 0);
    let rows = review_rows(&pool, f.conn).await;
    assert!(rows.iter().any(|r| r.1 == a.id) && rows.iter().any(|r| r.1 == b.id));
}

/// Two syncs that both believe they hold the lock (one lost it) see the same pending
/// transaction: it is linked to at most one posted line; the other line stands alone.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn a_pending_transaction_is_consumed_by_at_most_one_posted_line(pool: PgPool) {
    let f = fixture(&pool, |_| {}).await;
    sync(&pool, &f, false).await;
    let target = target_of(&pool, f.conn).await;
    let mut p = tx(
        "900000000000000100",
        &target.0,
        "2026-03-01",
        "-42.00",
        "Hardware store",
    );
    p.status = TransactionStatus::Pending;
    p.currency_code = target.1.currency.clone();
    let run = sync_engine::runs::start(&pool, f.company, f.conn, "test", None)
        .await
        .unwrap();
    let targets = HashMap::from([target.clone()]);
    lines::write_page(
        &pool,
        run,
        &targets,
        &[p],
        LineStatus::Pending,
        &mut lines::PendingLines::default(),
        &DedupOptions::default(),
    )
    .await
    .unwrap();
    // Both "syncs" loaded the pending transactions before either wrote.
    let mut first = lines::PendingLines::load(&pool, f.conn).await.unwrap();
    let mut second = lines::PendingLines::load(&pool, f.conn).await.unwrap();
    let mut a = tx(
        "900000000000000101",
        &target.0,
        "2026-03-02",
        "-42.00",
        "HARDWARE STORE 1",
    );
    a.currency_code = target.1.currency.clone();
    let mut b = tx(
        "900000000000000102",
        &target.0,
        "2026-03-02",
        "-42.00",
        "HARDWARE STORE 2",
    );
    b.currency_code = target.1.currency.clone();
    let o1 = lines::write_page(
        &pool,
        run,
        &targets,
        &[a],
        LineStatus::Posted,
        &mut first,
        &DedupOptions::default(),
    )
    .await
    .unwrap();
    let o2 = lines::write_page(
        &pool,
        run,
        &targets,
        &[b],
        LineStatus::Posted,
        &mut second,
        &DedupOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!((o1.inserted, o2.inserted), (1, 1), "both are lines");
    let pending_id: i64 = sqlx::query_scalar(
        "SELECT id FROM pending_transactions WHERE saltedge_transaction_id = '900000000000000100'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let from_pending: Vec<Option<i64>> =
        sqlx::query_scalar("SELECT pending_transaction_id FROM statement_lines WHERE saltedge_transaction_id IN ('900000000000000101', '900000000000000102') ORDER BY saltedge_transaction_id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        from_pending,
        [Some(pending_id), None],
        "the first consumes the pending transaction, the second finds it taken"
    );
    let posted_line: Option<i64> =
        sqlx::query_scalar("SELECT posted_line_id FROM pending_transactions WHERE id = $1")
            .bind(pending_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(posted_line.is_some());
}

/// The lock's database session is ended mid-sync: the sync stops before writing another
/// page, and the next sync completes with every transaction exactly once.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn a_sync_that_loses_its_lock_stops_writing(pool: PgPool) {
    let f = fixture(&pool, |c| {
        c.data.accounts_per_connection = 1;
        c.data.transactions_per_account = 3000;
    })
    .await;
    f.sim.set_faults(vec![
        FaultRule::new(FaultAction::Delay(300)).on_path("/transactions")
    ]);
    let (p2, client, conn) = (pool.clone(), f.client.clone(), f.conn);
    let task =
        tokio::spawn(
            async move { sync_connection(&p2, &client, conn, &SyncOptions::default()).await },
        );
    for _ in 0..200 {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM statement_lines")
            .fetch_one(&pool)
            .await
            .unwrap();
        if n > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_locks
         WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(killed, [true], "the lock's session was ended");
    let written: i64 = sqlx::query_scalar("SELECT count(*) FROM statement_lines")
        .fetch_one(&pool)
        .await
        .unwrap();
    let e = task.await.unwrap().unwrap_err();
    assert!(matches!(e, SyncError::LockLost), "{e:?}");
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM statement_lines")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        after <= written + 1000,
        "at most the page in flight was written after the lock went ({written} → {after})"
    );
    f.sim.set_faults(vec![]);
    sync(&pool, &f, false).await;
    assert_matches_truth(&pool, &f).await;
}

/// A first import writes each page with a plain INSERT; a page that does hold a stored id
/// after all (Salt Edge repeating an item of an earlier page) falls back to the upsert:
/// nothing fails, nothing doubles, a changed item updates its line.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn a_first_import_page_repeating_a_stored_id_falls_back_to_the_upsert(pool: PgPool) {
    let f = fixture(&pool, |_| {}).await;
    sync(&pool, &f, false).await;
    let target = target_of(&pool, f.conn).await;
    let (stored_id, line_id): (String, i64) = sqlx::query_as(
        "SELECT saltedge_transaction_id, id FROM statement_lines WHERE bank_account_id = $1 ORDER BY id LIMIT 1",
    )
    .bind(target.1.bank_account_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    let count = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM statement_lines")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    let before = count().await;
    let mut changed = tx(
        &stored_id,
        &target.0,
        "2026-03-03",
        "-7.25",
        "Changed at the bank",
    );
    changed.currency_code = target.1.currency.clone();
    let mut new = tx(
        "900000000000000200",
        &target.0,
        "2026-03-04",
        "-3.10",
        "Bakery",
    );
    new.currency_code = target.1.currency.clone();
    let run = sync_engine::runs::start(&pool, f.company, f.conn, "test", None)
        .await
        .unwrap();
    let targets = HashMap::from([target.clone()]);
    let out = lines::write_prepared(
        &pool,
        run,
        lines::prepare(&targets, &[changed, new], LineStatus::Posted),
        false,
        &mut lines::PendingLines::default(),
        &DedupOptions::default(),
        None,
    )
    .await
    .unwrap();
    assert_eq!((out.inserted, out.updated), (1, 1));
    assert_eq!(count().await, before + 1, "only the new item became a line");
    let (id, description): (i64, String) = sqlx::query_as(
        "SELECT id, description FROM statement_lines WHERE bank_account_id = $1 AND saltedge_transaction_id = $2",
    )
    .bind(target.1.bank_account_id)
    .bind(&stored_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((id, description.as_str()), (line_id, "Changed at the bank"));
}

/// A first import copies its lines in (`COPY`, text format): text with a tab, newlines, a
/// carriage return, backslashes, a literal `\N`, quotes and non-ASCII survives exactly, in
/// the description and in `extra`. A re-sync of the same bytes holds every line without
/// parsing it (nothing inserted or updated, every line's raw digest kept); an item whose
/// bytes change but not its content (its category) is parsed and skipped; one whose
/// description changes is updated.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn copied_lines_keep_their_text_and_verbatim_items_are_held(pool: PgPool) {
    let f = fixture(&pool, |c| c.data.transactions_per_account = 5).await;
    let nasty = "Tab\there\nnew line\r\\back\\N ünï 😀 \"q\" 'a'";
    let mut ids = vec![];
    f.sim.edit_connection(&f.se_conn, |rec| {
        let mut plain: Vec<usize> = (0..rec.posted.len())
            .filter(|&i| !rec.posted[i].duplicated)
            .collect();
        plain.truncate(3);
        let t = &mut rec.posted[plain[0]];
        t.description = nasty.into();
        t.extra = serde_json::json!({ "payee": "A\tB\\N", "information": "x\ny" });
        ids = plain.iter().map(|&i| rec.posted[i].id.clone()).collect();
    });
    let first = sync(&pool, &f, true).await;
    assert!(first.run.inserted > 3, "{:?}", first.run);
    let (description, payee, info): (String, String, String) = sqlx::query_as(
        "SELECT description, extra->>'payee', extra->>'information' FROM statement_lines WHERE saltedge_transaction_id = $1",
    )
    .bind(&ids[0])
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (description.as_str(), payee.as_str(), info.as_str()),
        (nasty, "A\tB\\N", "x\ny")
    );
    let without: i64 =
        sqlx::query_scalar("SELECT count(*) FROM statement_lines WHERE raw_digest IS NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(without, 0, "every line keeps its raw digest");

    let again = sync(&pool, &f, true).await;
    assert_eq!((again.run.inserted, again.run.updated), (0, 0));
    assert_eq!(again.run.skipped_duplicate, first.run.inserted);

    f.sim.edit_connection(&f.se_conn, |rec| {
        for t in rec.posted.iter_mut() {
            if t.id == ids[1] {
                t.category = "changed_category";
            }
            if t.id == ids[2] {
                t.description = "Changed at the bank".into();
            }
        }
    });
    let third = sync(&pool, &f, true).await;
    assert_eq!(
        (third.run.inserted, third.run.updated),
        (0, 1),
        "{:?}",
        third.run
    );
    let changed: String = sqlx::query_scalar(
        "SELECT description FROM statement_lines WHERE saltedge_transaction_id = $1",
    )
    .bind(&ids[2])
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(changed, "Changed at the bank");
}

/// Which raw items a line holds byte for byte: every item of the account after an import;
/// not one whose bytes differ (even by a field banksync does not keep), not one of an
/// account the connection does not map, not one stored before lines kept their digest.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn items_are_held_only_when_a_line_holds_their_exact_bytes(pool: PgPool) {
    let f = fixture(&pool, |c| c.data.transactions_per_account = 5).await;
    sync(&pool, &f, true).await;
    let target = target_of(&pool, f.conn).await;
    let targets = HashMap::from([target.clone()]);
    let raw_page = || async {
        f.client
            .transactions_raw_page(&saltedge_client::TransactionQuery::connection(&f.se_conn))
            .await
            .unwrap()
            .items
    };
    let items = raw_page().await;
    let account = format!("\"account_id\":\"{}\"", target.0);
    let mine = items.iter().filter(|r| r.get().contains(&account)).count();
    let total = items.len();
    let (held, rest) = lines::held_verbatim(&pool, lines::KeyedPage::new(&targets, items))
        .await
        .unwrap();
    assert!(mine > 1 && held.len() == mine, "{} of {mine}", held.len());
    assert_eq!(rest.len(), total - mine, "other accounts' items are parsed");

    // One item's category changes at the bank; another line lost its digest.
    let (changed, cleared) = (held[0].0.clone(), held[1].0.clone());
    f.sim.edit_connection(&f.se_conn, |rec| {
        for t in rec.posted.iter_mut().filter(|t| t.id == changed) {
            t.category = "changed_category";
        }
    });
    sqlx::query("UPDATE statement_lines SET raw_digest = NULL WHERE saltedge_transaction_id = $1")
        .bind(&cleared)
        .execute(&pool)
        .await
        .unwrap();
    let (held, rest) =
        lines::held_verbatim(&pool, lines::KeyedPage::new(&targets, raw_page().await))
            .await
            .unwrap();
    assert_eq!(held.len(), mine - 2);
    assert!(!held.iter().any(|(id, _)| *id == changed || *id == cleared));
    assert!(rest.iter().any(|(r, _)| r.get().contains(&changed)));
}

/// A first import writes the pages that are ready together (one transaction for several of
/// Salt Edge's pages): with pages of 7 items the lines, their occurrences and look-alike
/// flags are those of the same history imported from one page, and every page is counted.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn pages_written_together_give_the_lines_of_one_page(pool: PgPool) {
    // The same seeded history once more, in a database of its own (the simulator gives it
    // the same Salt Edge ids).
    // (A name of its own: the test's database name already has Postgres's 63 characters.)
    let other = format!("bs_whole_{}", Uuid::new_v4().simple());
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{other}\""))
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE DATABASE \"{other}\""))
        .execute(&pool)
        .await
        .unwrap();
    let pool2 = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect_with(
            std::env::var("DATABASE_URL")
                .unwrap()
                .parse::<sqlx::postgres::PgConnectOptions>()
                .unwrap()
                .database(&other),
        )
        .await
        .unwrap();
    sync_engine::MIGRATOR.run(&pool2).await.unwrap();
    let db2: String = sqlx::query_scalar("SELECT current_database()::text")
        .fetch_one(&pool2)
        .await
        .unwrap();
    assert_eq!(db2, other);

    let small = fixture(&pool, |c| c.per_page_max = 7).await;
    let whole = fixture(&pool2, |_| {}).await;
    let report = sync(&pool, &small, true).await;
    sync(&pool2, &whole, true).await;
    assert_matches_truth(&pool, &small).await;
    assert_matches_truth(&pool2, &whole).await;
    let posted: usize = small
        .sim
        .ground_truth(&small.se_conn)
        .unwrap()
        .accounts
        .iter()
        .map(|a| a.posted.len())
        .sum();
    assert!(posted > 20, "several pages: {posted} posted");
    assert!(
        report.run.pages as usize >= posted / 7,
        "every page counted: {} pages for {posted} posted",
        report.run.pages
    );
    let shape = |pool: &PgPool, conn: Uuid| {
        let pool = pool.clone();
        async move {
            // In Salt Edge id order, without the ids: the simulator's ids carry the second
            // it started at.
            let rows: Vec<(String, i32, bool)> = sqlx::query_as(
                "SELECT l.fingerprint, l.occurrence, l.suspect_duplicate_of IS NOT NULL
                 FROM statement_lines l JOIN bank_accounts a ON a.id = l.bank_account_id
                 WHERE a.connection_id = $1 ORDER BY l.saltedge_transaction_id",
            )
            .bind(conn)
            .fetch_all(&pool)
            .await
            .unwrap();
            rows
        }
    };
    let (a, b) = (
        shape(&pool, small.conn).await,
        shape(&pool2, whole.conn).await,
    );
    pool2.close().await;
    // FORCE: a closed connection's backend may still be on its way out (twice "being
    // accessed by other users" under a full test run).
    sqlx::query(&format!("DROP DATABASE \"{other}\" WITH (FORCE)"))
        .execute(&pool)
        .await
        .unwrap();
    assert!(!a.is_empty());
    assert_eq!(a, b);
    // A re-sync of the same history in small pages changes nothing.
    let again = sync(&pool, &small, true).await;
    assert_eq!(again.run.inserted, 0);
    assert_eq!(shape(&pool, small.conn).await, b);
}
