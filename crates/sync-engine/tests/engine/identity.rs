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

/// Three identical coffees on one day are three lines (occurrences 0, 1, 2), the second and
/// third flagged as look-alikes of the first; two re-syncs change nothing.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn three_identical_coffees_stay_three_lines(pool: PgPool) {
    let f = fixture(&pool, |c| c.data.transactions_per_account = 5).await;
    sync(&pool, &f, false).await;
    let coffee_ids = [
        "990000000000000001",
        "990000000000000002",
        "990000000000000003",
    ];
    f.sim.edit_connection(&f.se_conn, |rec| {
        let mut t = rec.posted[0].clone();
        t.made_on = rec.posted.iter().map(|p| p.made_on).max().unwrap();
        t.amount = "-3.20".parse().unwrap();
        t.description = "Coffee Shop".into();
        t.extra = serde_json::json!({ "payee": "Bean There" });
        for id in coffee_ids {
            t.id = id.into();
            rec.posted.push(t.clone());
        }
    });
    let first = sync(&pool, &f, false).await;
    assert_eq!(first.run.inserted, 3);
    let coffees: Vec<_> = line_rows(&pool, f.conn)
        .await
        .into_iter()
        .filter(|r| coffee_ids.contains(&r.1.as_str()))
        .collect();
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
    let flags: Vec<Option<i64>> = sqlx::query_scalar(
        "SELECT suspect_duplicate_of FROM statement_lines WHERE saltedge_transaction_id = ANY($1) ORDER BY id",
    )
    .bind(coffee_ids)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(flags, [None, Some(coffees[0].0), Some(coffees[0].0)]);
    assert_eq!(
        history(&pool, f.company, coffees[2].0).await,
        [
            (
                "created".to_string(),
                serde_json::json!({ "saltedge_transaction_id": coffee_ids[2], "fingerprint": coffees[2].2, "occurrence": 2 })
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
    t.extra = serde_json::json!({ "payee": "Pages", "id": "BANK-REF-77" });
    let o = write(&pool, &f, &target, vec![t.clone()]).await;
    assert_eq!(o.inserted, 1);
    let (line, _, fp, occ) = line_rows(&pool, f.conn)
        .await
        .into_iter()
        .find(|r| r.1 == "980000000000000001")
        .unwrap();

    // Salt Edge edits the text.
    t.description = "Book shop Mitte".into();
    t.updated_at = Some(chrono::Utc::now());
    let o = write(&pool, &f, &target, vec![t.clone()]).await;
    assert_eq!(o.updated, 1);

    // The same bank transaction under a new Salt Edge id (a number this time).
    let mut again = t.clone();
    again.id = "980000000000000002".into();
    again.extra = serde_json::json!({ "payee": "Pages", "id": "BANK-REF-77" });
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
