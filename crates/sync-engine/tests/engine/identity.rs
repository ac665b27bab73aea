//! The accounting contract's identity: line ids that never change, an occurrence index that
//! keeps identical purchases apart, the bank's own id as the first key, and a history that
//! explains each line.

use crate::support::*;

async fn line_rows(pool: &PgPool, conn: Uuid) -> Vec<(i64, String, String, i32)> {
    sqlx::query_as(
        "SELECT l.id, l.saltedge_transaction_id, l.fingerprint, l.occurrence FROM statement_lines l
         JOIN bank_accounts a ON a.id = l.bank_account_id WHERE a.connection_id = $1 ORDER BY l.id",
    )
    .bind(conn)
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn history(pool: &PgPool, company: Uuid, line: i64) -> Vec<(String, serde_json::Value)> {
    sync_engine::history::of_line(pool, company, line)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.kind, e.detail))
        .collect()
}

const COFFEE_IDS: [&str; 3] = [
    "990000000000000001",
    "990000000000000002",
    "990000000000000003",
];

/// Books three identical coffees at Salt Edge (on the newest day, or on the first
/// transaction's).
fn book_coffees(f: &Fixture, on_newest_day: bool) {
    f.sim.edit_connection(&f.se_conn, |rec| {
        let mut t = rec.posted[0].clone();
        if on_newest_day {
            t.made_on = rec.posted.iter().map(|p| p.made_on).max().unwrap();
        }
        t.amount = "-3.20".parse().unwrap();
        t.description = "Coffee Shop".into();
        t.extra = serde_json::json!({ "payee": "Bean There" });
        for id in COFFEE_IDS {
            t.id = id.into();
            rec.posted.push(t.clone());
        }
    });
}

/// The coffees' lines, and what each is flagged as a look-alike of, in id order.
async fn coffees(pool: &PgPool, conn: Uuid) -> (Vec<(i64, String, String, i32)>, Vec<Option<i64>>) {
    let lines: Vec<_> = line_rows(pool, conn)
        .await
        .into_iter()
        .filter(|r| COFFEE_IDS.contains(&r.1.as_str()))
        .collect();
    let flags: Vec<Option<i64>> = sqlx::query_scalar(
        "SELECT suspect_duplicate_of FROM statement_lines WHERE saltedge_transaction_id = ANY($1) ORDER BY id",
    )
    .bind(COFFEE_IDS)
    .fetch_all(pool)
    .await
    .unwrap();
    (lines, flags)
}

/// The same coffees in a connection's first import (copied in, one page): the look-alikes
/// are flagged as they are copied, pointing at the first, with their history.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn three_identical_coffees_in_a_first_import(pool: PgPool) {
    // No twins: their `possible_duplicate` hint would send the page through `INSERT`.
    let f = fixture(&pool, |c| {
        c.data.transactions_per_account = 5;
        c.data.twins_per_account = 0;
    })
    .await;
    book_coffees(&f, false);
    let first = sync(&pool, &f, false).await;
    assert_eq!(first.run.suspects, 2);
    let (coffees, flags) = coffees(&pool, f.conn).await;
    assert_eq!(coffees.iter().map(|c| c.3).collect::<Vec<_>>(), [0, 1, 2]);
    assert_eq!(flags, [None, Some(coffees[0].0), Some(coffees[0].0)]);
    assert_eq!(
        history(&pool, f.company, coffees[1].0).await[1],
        (
            "flagged".to_string(),
            serde_json::json!({ "look_alike_of": coffees[0].0 })
        )
    );
    assert_matches_truth(&pool, &f).await;
}

/// A first import writes two batches at a time (`lines::ImportPipeline`): identical coffees in
/// the first, middle and last pages of a 7,000-transaction history land in three different
/// writes, each of which cannot see the lines of the one in flight. They still get
/// occurrences 0, 1, 2 and both later ones point at the first; every line sits in its
/// day's statement, one statement a day; a re-sync changes nothing.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn identical_coffees_across_the_writes_of_a_first_import(pool: PgPool) {
    let f = fixture(&pool, |c| {
        c.data.accounts_per_connection = 1;
        c.data.transactions_per_account = 7000;
        c.data.twins_per_account = 0;
    })
    .await;
    let mut ids = vec![];
    f.sim.edit_connection(&f.se_conn, |rec| {
        let mut order: Vec<usize> = (0..rec.posted.len()).collect();
        order.sort_by_key(|&i| rec.posted[i].id.parse::<u64>().unwrap());
        // On the newest day: the earlier writes then reach forward into a statement that
        // later writes add lines to as well.
        let day = rec.posted.iter().map(|p| p.made_on).max().unwrap();
        for at in [0, order.len() / 2, order.len() - 1] {
            let t = &mut rec.posted[order[at]];
            t.made_on = day;
            t.amount = "-3.20".parse().unwrap();
            t.description = "Coffee Shop".into();
            t.extra = serde_json::json!({ "payee": "Bean There" });
            ids.push(t.id.clone());
        }
    });
    let first = sync(&pool, &f, false).await;
    assert_eq!(first.run.inserted, 7000);
    assert!(first.run.pages >= 7, "{first:?}");
    // Every group of look-alikes (the coffees, and any the generated history holds): its
    // occurrences are 0, 1, … in line order and every later one points at the first.
    let broken: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (
             SELECT id, occurrence, suspect_duplicate_of,
                    row_number() OVER w - 1 AS expected, first_value(id) OVER w AS first
             FROM statement_lines WINDOW w AS (PARTITION BY bank_account_id, fingerprint ORDER BY id)) g
         WHERE occurrence <> expected
            OR suspect_duplicate_of IS DISTINCT FROM (CASE WHEN expected > 0 THEN first END)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(broken, 0, "occurrences and look-alike flags across writes");
    let look_alikes: i64 = sqlx::query_scalar(
        "SELECT count(*) - count(DISTINCT (bank_account_id, fingerprint)) FROM statement_lines",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(look_alikes >= 2);
    assert_eq!(i64::from(first.run.suspects), look_alikes);
    let coffees: Vec<(i64, i32, Option<i64>)> = sqlx::query_as(
        "SELECT id, occurrence, suspect_duplicate_of FROM statement_lines WHERE saltedge_transaction_id = ANY($1) ORDER BY id",
    )
    .bind(&ids)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        coffees.iter().map(|c| (c.1, c.2)).collect::<Vec<_>>(),
        [(0, None), (1, Some(coffees[0].0)), (2, Some(coffees[0].0))]
    );
    let misplaced: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM statement_lines l LEFT JOIN statements s ON s.id = l.statement_id
         WHERE s.id IS NULL OR s.bank_account_id <> l.bank_account_id OR s.period_start <> l.booking_date",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(misplaced, 0, "every line in its day's statement");
    let (statements, days): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM statements), (SELECT count(DISTINCT booking_date) FROM statement_lines)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(statements, days);
    let before = line_rows(&pool, f.conn).await;
    let again = sync(&pool, &f, true).await;
    assert_eq!((again.run.inserted, again.run.updated), (0, 0));
    assert_eq!(line_rows(&pool, f.conn).await, before);
    assert_matches_truth(&pool, &f).await;
}

/// Two batches written by one `ImportPipeline` without waiting in between: the second cannot
/// see the first's lines or statement while it prepares, yet its coffee is occurrence 1 and
/// flagged to the first's, both go into one statement for the day, and that statement
/// shows in the change feed as changed by the second write too (it is still open).
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn two_writes_in_flight_share_identities_and_statements(pool: PgPool) {
    let f = fixture(&pool, |c| c.data.transactions_per_account = 5).await;
    sync(&pool, &f, false).await;
    let (account, target) = target_of(&pool, f.conn).await;
    let today = banksync_testkit::clock::today().to_string();
    let at = (account.clone(), target);
    let batch = |ids: [&str; 2]| {
        let coffee = tx(ids[0], &account, &today, "-3.20", "Coffee Shop");
        let other = tx(ids[1], &account, &today, "-12.00", "Books");
        let txs = in_currency_of(&at, vec![coffee, other]);
        lines::prepare(&HashMap::from([at.clone()]), &txs, LineStatus::Posted)
    };
    let run = sync_engine::runs::start(&pool, f.company, f.conn, "test", None)
        .await
        .unwrap();
    let mut pending = lines::PendingLines::load(&pool, f.conn).await.unwrap();
    let mut pipeline = lines::ImportPipeline::default();
    let opts = DedupOptions::default();
    let ctx = lines::WriteContext {
        pool: &pool,
        run_id: run,
        opts: &opts,
        lock: None,
    };
    for ids in [
        ["990000000000000101", "990000000000000102"],
        ["990000000000000103", "990000000000000104"],
    ] {
        pipeline
            .write(&ctx, batch(ids), &mut pending)
            .await
            .unwrap();
    }
    pipeline.drain().await.unwrap();
    let rows: Vec<(String, i32, Option<i64>, i64, i64)> = sqlx::query_as(
        "SELECT saltedge_transaction_id, occurrence, suspect_duplicate_of, statement_id, change_xid
         FROM statement_lines WHERE saltedge_transaction_id LIKE '9900000000000001%' ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 4);
    let first_coffee: i64 = sqlx::query_scalar(
        "SELECT id FROM statement_lines WHERE saltedge_transaction_id = '990000000000000101'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((rows[0].1, rows[0].2), (0, None));
    assert_eq!((rows[2].1, rows[2].2), (1, Some(first_coffee)));
    assert!(
        rows.iter().all(|r| r.3 == rows[0].3),
        "one statement: {rows:?}"
    );
    assert_ne!(rows[0].4, rows[2].4, "two transactions");
    let statement_xid: i64 = sqlx::query_scalar("SELECT change_xid FROM statements WHERE id = $1")
        .bind(rows[0].3)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        statement_xid, rows[2].4,
        "the statement changed with the second write"
    );
}

/// The two writes in flight copy at the same time, and the later one waits for the earlier
/// one's end inside Postgres (an advisory lock), not only in the process: were their rows
/// ever to share a unique key, Postgres would see the cycle and fail one of them rather than
/// both waiting for ever. Here the earlier write is held open (the run's row locked from
/// outside): the later one has copied its lines and waits on the earlier one's lock; once
/// the hold is released, both commit in order.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn the_later_write_waits_for_the_earlier_inside_postgres(pool: PgPool) {
    let f = fixture(&pool, |c| c.data.transactions_per_account = 5).await;
    sync(&pool, &f, false).await;
    let (account, target) = target_of(&pool, f.conn).await;
    let today = banksync_testkit::clock::today().to_string();
    let at = (account.clone(), target);
    let batch = |id: &str, what: &str| {
        let txs = in_currency_of(&at, vec![tx(id, &account, &today, "-5.00", what)]);
        lines::prepare(&HashMap::from([at.clone()]), &txs, LineStatus::Posted)
    };
    let run = sync_engine::runs::start(&pool, f.company, f.conn, "test", None)
        .await
        .unwrap();
    let mut hold = pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM sync_runs WHERE id = $1 FOR UPDATE")
        .bind(run)
        .execute(&mut *hold)
        .await
        .unwrap();
    let mut pending = lines::PendingLines::load(&pool, f.conn).await.unwrap();
    let mut pipeline = lines::ImportPipeline::default();
    let opts = DedupOptions::default();
    let ctx = lines::WriteContext {
        pool: &pool,
        run_id: run,
        opts: &opts,
        lock: None,
    };
    for (id, what) in [
        ("990000000000000201", "Lunch"),
        ("990000000000000202", "Taxi"),
    ] {
        pipeline
            .write(&ctx, batch(id, what), &mut pending)
            .await
            .unwrap();
    }
    let waiting = async {
        loop {
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
                   AND classid::int8 = $1 AND objsubid = 2",
            )
            .bind(lines::WRITE_LOCK as i64)
            .fetch_one(&pool)
            .await
            .unwrap();
            if n == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(20), waiting)
        .await
        .expect("the later write waits on the earlier one's lock in Postgres");
    let copying: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'COPY statement_lines%' AND state = 'active'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(copying, 0, "both writes have copied their lines");
    hold.rollback().await.unwrap();
    pipeline.drain().await.unwrap();
    let stored: Vec<String> = sqlx::query_scalar(
        "SELECT saltedge_transaction_id FROM statement_lines WHERE saltedge_transaction_id LIKE '9900000000000002%' ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(stored, ["990000000000000201", "990000000000000202"]);
    let inserted: i32 = sqlx::query_scalar("SELECT inserted FROM sync_runs WHERE id = $1")
        .bind(run)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(inserted, 2);
}

/// Three identical coffees on one day are three lines (occurrences 0, 1, 2), the second and
/// third flagged as look-alikes of the first; two re-syncs change nothing.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn three_identical_coffees_stay_three_lines(pool: PgPool) {
    let f = fixture(&pool, |c| c.data.transactions_per_account = 5).await;
    sync(&pool, &f, false).await;
    book_coffees(&f, true);
    let first = sync(&pool, &f, false).await;
    assert_eq!(first.run.inserted, 3);
    let (coffees, flags) = coffees(&pool, f.conn).await;
    assert_eq!(coffees.len(), 3);
    assert!(
        coffees.iter().all(|c| c.2 == coffees[0].2),
        "one fingerprint"
    );
    assert_eq!(
        coffees.iter().map(|c| c.3).collect::<Vec<_>>(),
        [0, 1, 2],
        "occurrences in the order first stored"
    );
    assert_eq!(flags, [None, Some(coffees[0].0), Some(coffees[0].0)]);
    assert_eq!(
        history(&pool, f.company, coffees[2].0).await,
        [
            (
                "created".to_string(),
                serde_json::json!({ "saltedge_transaction_id": COFFEE_IDS[2], "fingerprint": coffees[2].2, "occurrence": 2 })
            ),
            (
                "flagged".to_string(),
                serde_json::json!({ "look_alike_of": coffees[0].0 })
            ),
        ]
    );

    let before = line_rows(&pool, f.conn).await;
    for full in [false, true] {
        let again = sync(&pool, &f, full).await;
        assert_eq!((again.run.inserted, again.run.updated), (0, 0));
        assert_eq!(line_rows(&pool, f.conn).await, before);
    }
    assert_matches_truth(&pool, &f).await;
}

/// A transaction whose bank id (`extra.id`) is a line's comes back under a new Salt Edge id:
/// the line is re-keyed at once (same line id, fingerprint and occurrence), never doubled,
/// and its history says why. A Salt Edge edit is recorded with the fields it changed.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn the_banks_own_id_is_the_first_key_and_history_explains(pool: PgPool) {
    let f = fixture(&pool, |_| {}).await;
    sync(&pool, &f, false).await;
    let target = target_of(&pool, f.conn).await;
    let mut t = tx(
        "980000000000000001",
        &target.0,
        "2026-03-02",
        "-12.50",
        "Book shop",
    );
    t.extra = serde_json::json!({ "payee": "Pages", "id": "BANK-REF-77" }).into();
    let o = write(&pool, &f, &target, vec![t.clone()]).await;
    assert_eq!(o.inserted, 1);
    let (line, _, fp, occ) = line_rows(&pool, f.conn)
        .await
        .into_iter()
        .find(|r| r.1 == "980000000000000001")
        .unwrap();

    // Salt Edge edits the text.
    t.description = "Book shop Mitte".into();
    t.updated_at = Some(banksync_testkit::clock::now());
    let o = write(&pool, &f, &target, vec![t.clone()]).await;
    assert_eq!(o.updated, 1);

    // The same bank transaction under a new Salt Edge id (a number this time).
    let mut again = t.clone();
    again.id = "980000000000000002".into();
    again.extra = serde_json::json!({ "payee": "Pages", "id": "BANK-REF-77" }).into();
    let o = write(&pool, &f, &target, vec![again]).await;
    assert_eq!((o.inserted, o.updated), (0, 1), "re-keyed, not inserted");
    let rows = line_rows(&pool, f.conn).await;
    assert!(!rows.iter().any(|r| r.1 == "980000000000000001"));
    let now = rows.iter().find(|r| r.1 == "980000000000000002").unwrap();
    assert_eq!((now.0, &now.2, now.3), (line, &fp, occ), "identity kept");
    let h = history(&pool, f.company, line).await;
    let kinds: Vec<&str> = h.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(kinds, ["created", "updated", "rekeyed"]);
    assert_eq!(h[0].1["saltedge_transaction_id"], "980000000000000001");
    assert_eq!(h[1].1["fields"], serde_json::json!(["description"]));
    assert_eq!(h[1].1["before"]["description"], "Book shop");
    assert_eq!(
        h[2].1,
        serde_json::json!({ "from": "980000000000000001", "to": "980000000000000002", "reason": "bank_transaction_id" })
    );
}

/// A re-issued transaction is re-keyed onto its old line once the old id is confirmed gone;
/// the history records it with the line that was folded in.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn a_reissue_is_part_of_the_lines_history(pool: PgPool) {
    let f = fixture(&pool, |_| {}).await;
    sync(&pool, &f, false).await;
    let truth = f.sim.ground_truth(&f.se_conn).unwrap();
    let old = truth.accounts[0].posted.last().unwrap().id.clone();
    let line: i64 =
        sqlx::query_scalar("SELECT id FROM statement_lines WHERE saltedge_transaction_id = $1")
            .bind(&old)
            .fetch_one(&pool)
            .await
            .unwrap();
    let new = f.sim.reissue(&f.se_conn, &old);
    sync(&pool, &f, false).await;
    let now: i64 =
        sqlx::query_scalar("SELECT id FROM statement_lines WHERE saltedge_transaction_id = $1")
            .bind(&new)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(now, line, "the line id handed out never changes");
    let h = history(&pool, f.company, line).await;
    let rekey = h.iter().find(|e| e.0 == "rekeyed").expect("re-keyed");
    assert_eq!(rekey.1["from"], old.as_str());
    assert_eq!(rekey.1["to"], new.as_str());
    assert_eq!(rekey.1["reason"], "reissued");
    assert_matches_truth(&pool, &f).await;
}

async fn snapshot(pool: &PgPool, company: Uuid) -> (Vec<(Uuid, Uuid)>, Vec<i64>, Vec<String>) {
    let accounts: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT id, journal_id FROM bank_accounts WHERE company_id = $1 ORDER BY id",
    )
    .bind(company)
    .fetch_all(pool)
    .await
    .unwrap();
    let lines: Vec<(i64, String)> = sqlx::query_as(
        "SELECT id, saltedge_transaction_id FROM statement_lines WHERE company_id = $1 ORDER BY id",
    )
    .bind(company)
    .fetch_all(pool)
    .await
    .unwrap();
    (
        accounts,
        lines.iter().map(|l| l.0).collect(),
        lines.into_iter().map(|l| l.1).collect(),
    )
}

/// A reconnect that yields new account ids (the same accounts and history under new Salt
/// Edge ids): accounts are matched by IBAN, else by account number; journals stay, nothing
/// is imported twice, every line keeps its id and is re-keyed to its new Salt Edge id.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn new_account_ids_keep_journals_and_history(pool: PgPool) {
    let f = fixture(&pool, |c| c.data.reissued_per_fetch = 0).await;
    // The second account is known by its number only (no IBAN at the bank).
    f.sim.edit_connection(&f.se_conn, |rec| {
        rec.accounts[1].extra["account_number"] = serde_json::json!("40 1234 5678");
    });
    sync(&pool, &f, false).await;
    sqlx::query("UPDATE bank_accounts SET iban = NULL WHERE saltedge_id = (SELECT max(saltedge_id) FROM bank_accounts)")
        .execute(&pool)
        .await
        .unwrap();
    let (accounts, line_ids, old_ids) = snapshot(&pool, f.company).await;

    f.sim.relink_accounts(&f.se_conn);
    f.sim.edit_connection(&f.se_conn, |rec| {
        rec.accounts[1]
            .extra
            .as_object_mut()
            .unwrap()
            .remove("iban");
    });
    let report = sync(&pool, &f, false).await;
    assert!(report.new_accounts.is_empty(), "no new bank account");
    assert_eq!(report.run.inserted, 0, "nothing imported twice");
    let (accounts_after, line_ids_after, new_ids) = snapshot(&pool, f.company).await;
    assert_eq!(accounts_after, accounts, "the same accounts and journals");
    assert_eq!(line_ids_after, line_ids, "line ids never change");
    assert!(
        new_ids.iter().all(|id| !old_ids.contains(id)),
        "all re-keyed"
    );
    assert_matches_truth(&pool, &f).await;
    let h = history(&pool, f.company, line_ids[0]).await;
    assert_eq!(h.last().unwrap().0, "rekeyed");
    assert_eq!(h.last().unwrap().1["reason"], "relinked");
    assert_eq!(h.last().unwrap().1["from"], old_ids[0].as_str());

    // Life goes on: new activity is new lines.
    f.sim.advance(&f.se_conn);
    let next = sync(&pool, &f, false).await;
    assert!(next.run.inserted > 0);
    assert_matches_truth(&pool, &f).await;
}

/// A new account that resembles an earlier one only by provider, currency and name is a
/// proposal: its transactions wait; confirmed, the earlier account takes it over with its
/// history; rejected, it gets a journal of its own.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn a_match_by_name_is_only_proposed(pool: PgPool) {
    let f = fixture(&pool, |c| c.data.reissued_per_fetch = 0).await;
    sync(&pool, &f, false).await;
    let (accounts, line_ids, _) = snapshot(&pool, f.company).await;
    sqlx::query("UPDATE bank_accounts SET iban = NULL, account_number = NULL")
        .execute(&pool)
        .await
        .unwrap();
    f.sim.relink_accounts(&f.se_conn);
    f.sim.edit_connection(&f.se_conn, |rec| {
        for a in rec.accounts.iter_mut() {
            a.extra.as_object_mut().unwrap().remove("iban");
        }
    });
    let report = sync(&pool, &f, false).await;
    assert!(report.new_accounts.is_empty());
    assert_eq!(report.run.inserted, 0, "their transactions wait");
    let proposals = mapping::proposals(&pool, f.company, true).await.unwrap();
    assert_eq!(proposals.len(), 2);
    let again = sync(&pool, &f, false).await;
    assert_eq!(again.run.inserted, 0);
    assert_eq!(
        mapping::proposals(&pool, f.company, true)
            .await
            .unwrap()
            .len(),
        2,
        "proposed once"
    );

    mapping::decide(&pool, f.company, proposals[0].id, true)
        .await
        .unwrap();
    mapping::decide(&pool, f.company, proposals[1].id, false)
        .await
        .unwrap();
    assert!(matches!(
        mapping::decide(&pool, f.company, proposals[1].id, true).await,
        Err(SyncError::Conflict {
            code: "already_decided",
            ..
        })
    ));
    let report = sync(&pool, &f, false).await;
    assert_eq!(
        report.new_accounts.len(),
        1,
        "the rejected one is an account of its own"
    );
    let (after, after_lines, _) = snapshot(&pool, f.company).await;
    assert_eq!(after.len(), accounts.len() + 1);
    let kept = accounts
        .iter()
        .find(|a| a.0 == proposals[0].candidate_account_id)
        .unwrap();
    assert!(
        after.contains(kept),
        "confirmed: the earlier account and its journal"
    );
    // The confirmed account's history was claimed, the rejected one's imported anew.
    let claimed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM line_events WHERE kind = 'rekeyed' AND detail->>'reason' = 'relinked'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let kept_lines: i64 =
        sqlx::query_scalar("SELECT count(*) FROM statement_lines WHERE bank_account_id = $1")
            .bind(kept.0)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(claimed, kept_lines);
    assert!(line_ids.iter().all(|l| after_lines.contains(l)));
}
