//! The bookkeeper's answers to what the bank did: a removal confirmed (the line leaves the
//! books), kept, undone, dropped when the transaction comes back; a re-issue with changed
//! content proposed, merged into the earlier line or dismissed.

use crate::support::*;
use sync_engine::review::{decide, Decision};
use sync_engine::statement_lines;
use sync_engine::statements::{self, Scope};

fn no_noise(c: &mut SimConfig) {
    c.data.reissued_per_fetch = 0;
    c.data.twins_per_account = 0;
    c.data.pending_per_account = 0;
}

/// The newest posted transaction of the connection's first account: (Salt Edge id, amount).
fn newest(f: &Fixture) -> (String, Decimal) {
    let truth = f.sim.ground_truth(&f.se_conn).unwrap();
    let t = truth.accounts[0]
        .posted
        .iter()
        .max_by_key(|t| t.id.parse::<u64>().unwrap())
        .unwrap();
    (t.id.clone(), t.amount)
}

async fn line_of(pool: &PgPool, saltedge_id: &str) -> (i64, Uuid) {
    sqlx::query_as(
        "SELECT id, bank_account_id FROM statement_lines WHERE saltedge_transaction_id = $1",
    )
    .bind(saltedge_id)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// The account's books: the newest statement's closing balance (every open statement's
/// lines and corrections chained from the last closed one).
async fn books(pool: &PgPool, f: &Fixture, account: Uuid) -> Decimal {
    statements::page(pool, f.company, Scope::Account(account), None, 10_000)
        .await
        .unwrap()
        .last()
        .expect("a statement")
        .closing_balance
}

async fn kinds(pool: &PgPool, line: i64) -> Vec<String> {
    sqlx::query_scalar("SELECT kind FROM line_events WHERE line_id = $1 ORDER BY id")
        .bind(line)
        .fetch_all(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn a_removal_is_confirmed_kept_undone_and_dropped_when_the_transaction_returns(pool: PgPool) {
    let f = fixture(&pool, no_noise).await;
    sync(&pool, &f, false).await;
    let (id, amount) = newest(&f);
    let (line, account) = line_of(&pool, &id).await;
    let before = books(&pool, &f, account).await;
    let answer = |d| decide(&pool, &f.client, f.company, line, d);

    // Nothing to answer while the bank lists it.
    let err = answer(Decision::ConfirmRemoval).await.unwrap_err();
    assert!(err.to_string().contains("not flagged"), "{err}");

    let mut removed = None;
    f.sim.edit_connection(&f.se_conn, |rec| {
        let at = rec.posted.iter().position(|t| t.id == id).unwrap();
        removed = Some(rec.posted.remove(at));
    });
    assert_eq!(sync(&pool, &f, false).await.run.gone_at_bank, 1);
    let listed = statement_lines::flagged(&pool, f.company, 100)
        .await
        .unwrap();
    assert_eq!(listed.iter().map(|l| l.id).collect::<Vec<_>>(), [line]);
    assert_eq!(
        books(&pool, &f, account).await,
        before,
        "flagged, still in the books"
    );

    // Confirmed: out of the books, out of the review list; the feed's "gone" follows.
    answer(Decision::ConfirmRemoval).await.unwrap();
    let l = statement_lines::get(&pool, f.company, line).await.unwrap();
    assert!(!l.in_books());
    assert_eq!(books(&pool, &f, account).await, before - amount);
    assert!(statement_lines::flagged(&pool, f.company, 100)
        .await
        .unwrap()
        .is_empty());
    let again = answer(Decision::KeepRemoved).await.unwrap_err();
    assert!(again.to_string().contains("already reviewed"), "{again}");

    // Undone, then kept: back in the books either way.
    answer(Decision::Undo).await.unwrap();
    assert_eq!(books(&pool, &f, account).await, before);
    answer(Decision::KeepRemoved).await.unwrap();
    assert_eq!(books(&pool, &f, account).await, before);
    answer(Decision::Undo).await.unwrap();
    answer(Decision::ConfirmRemoval).await.unwrap();
    assert_eq!(books(&pool, &f, account).await, before - amount);

    // The bank lists it again: flag and answer clear by themselves, the line is back.
    f.sim.edit_connection(&f.se_conn, |rec| {
        rec.posted.push(removed.take().unwrap());
    });
    sync(&pool, &f, false).await;
    let l = statement_lines::get(&pool, f.company, line).await.unwrap();
    assert!(l.in_books() && l.gone_at_bank_at.is_none() && l.removal_kept_at.is_none());
    assert_eq!(books(&pool, &f, account).await, before);
    assert_eq!(
        kinds(&pool, line).await,
        [
            "gone_at_bank",
            "removal_confirmed",
            "review_undone",
            "removal_kept",
            "review_undone",
            "removal_confirmed",
            "back_at_bank"
        ]
    );
    let dropped: serde_json::Value = sqlx::query_scalar(
        "SELECT detail FROM line_events WHERE line_id = $1 AND kind = 'back_at_bank'",
    )
    .bind(line)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(dropped["answer_dropped"], "removal_confirmed");
}

#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn a_reissue_with_changed_content_is_proposed_then_merged(pool: PgPool) {
    let f = fixture(&pool, no_noise).await;
    sync(&pool, &f, false).await;
    let (id, amount) = newest(&f);
    let (old_line, account) = line_of(&pool, &id).await;
    let before = books(&pool, &f, account).await;
    let changed = amount - Decimal::new(50, 2);
    let new_id = f
        .sim
        .reissue_changed(&f.se_conn, &id, changed, "Corrected booking text");
    let r = sync(&pool, &f, false).await;
    assert_eq!(
        (r.run.gone_at_bank, r.run.possible_reissues),
        (1, 1),
        "{:?}",
        r.run
    );
    let (new_line, _) = line_of(&pool, &new_id).await;
    let n = statement_lines::get(&pool, f.company, new_line)
        .await
        .unwrap();
    assert_eq!(n.reissue_of, Some(old_line));
    assert_eq!(kinds(&pool, new_line).await, ["possible_reissue"]);
    let waiting: Vec<i64> = statement_lines::flagged(&pool, f.company, 100)
        .await
        .unwrap()
        .iter()
        .map(|l| l.id)
        .collect();
    assert!(waiting.contains(&old_line) && waiting.contains(&new_line));
    // Until someone decides, both count (nothing merges on a guess).
    assert_eq!(books(&pool, &f, account).await, before + changed);
    // Only the new line can be merged.
    assert!(decide(
        &pool,
        &f.client,
        f.company,
        old_line,
        Decision::MergeReissue
    )
    .await
    .is_err());

    decide(
        &pool,
        &f.client,
        f.company,
        new_line,
        Decision::MergeReissue,
    )
    .await
    .unwrap();
    let o = statement_lines::get(&pool, f.company, old_line)
        .await
        .unwrap();
    assert_eq!(
        o.saltedge_transaction_id, new_id,
        "the old line holds the re-issue"
    );
    assert_eq!(
        (o.amount, o.description.as_str()),
        (changed, "Corrected booking text")
    );
    assert_eq!(o.rekeyed_from.as_deref(), Some(id.as_str()));
    assert!(o.gone_at_bank_at.is_none() && o.in_books());
    assert!(statement_lines::get(&pool, f.company, new_line)
        .await
        .is_err());
    assert_eq!(
        books(&pool, &f, account).await,
        before - amount + changed,
        "one line, the new amount"
    );
    assert_eq!(
        kinds(&pool, old_line).await,
        ["gone_at_bank", "reissue_merged"]
    );
    // The next sync keeps it that way: one line per bank transaction.
    let r = sync(&pool, &f, false).await;
    assert_eq!((r.run.inserted, r.run.gone_at_bank), (0, 0));
    assert_matches_truth(&pool, &f).await;
}

#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn a_dismissed_reissue_keeps_both_lines_and_can_be_undone(pool: PgPool) {
    let f = fixture(&pool, no_noise).await;
    sync(&pool, &f, false).await;
    let (id, amount) = newest(&f);
    let (old_line, _) = line_of(&pool, &id).await;
    // Too far apart in amount: no proposal at all.
    let far = f.sim.reissue_changed(
        &f.se_conn,
        &id,
        amount * Decimal::from(3) - Decimal::from(7),
        "Another thing",
    );
    let r = sync(&pool, &f, false).await;
    assert_eq!((r.run.gone_at_bank, r.run.possible_reissues), (1, 0));
    let (far_line, _) = line_of(&pool, &far).await;
    assert_eq!(
        statement_lines::get(&pool, f.company, far_line)
            .await
            .unwrap()
            .reissue_of,
        None
    );

    // A close one, re-issued from the far one: proposed against the far one's line.
    let near = f.sim.reissue_changed(
        &f.se_conn,
        &far,
        amount * Decimal::from(3) - Decimal::from(7) + Decimal::new(1, 2),
        "Another thing, corrected",
    );
    sync(&pool, &f, false).await;
    let (near_line, _) = line_of(&pool, &near).await;
    assert_eq!(
        statement_lines::get(&pool, f.company, near_line)
            .await
            .unwrap()
            .reissue_of,
        Some(far_line)
    );
    decide(
        &pool,
        &f.client,
        f.company,
        near_line,
        Decision::DismissReissue,
    )
    .await
    .unwrap();
    let err = decide(
        &pool,
        &f.client,
        f.company,
        near_line,
        Decision::MergeReissue,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("already reviewed"), "{err}");
    let both: i64 = sqlx::query_scalar("SELECT count(*) FROM statement_lines WHERE id = ANY($1)")
        .bind(vec![old_line, far_line, near_line])
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(both, 3, "dismissed: every line stays");
    decide(&pool, &f.client, f.company, near_line, Decision::Undo)
        .await
        .unwrap();
    let n = statement_lines::get(&pool, f.company, near_line)
        .await
        .unwrap();
    assert_eq!(
        (n.reissue_of, n.reissue_dismissed_at),
        (Some(far_line), None)
    );
    assert_eq!(
        kinds(&pool, near_line).await,
        ["possible_reissue", "reissue_dismissed", "review_undone"]
    );
}
