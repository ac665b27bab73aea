//! Bank statements: grouped by period, closed once the period has ended and a sync after it
//! completed, numbered in sequence, balances that chain from the account's opening balance
//! to the bank's balance; closed statements never change.

use crate::support::*;
use sync_engine::statements::{self, Period, Scope};

async fn all(pool: &PgPool, f: &Fixture, account: Uuid) -> Vec<statements::Statement> {
    statements::page(pool, f.company, Scope::Account(account), None, 10_000)
        .await
        .unwrap()
}

/// The chain: numbered 1, 2, 3… in period order, each opening equal to the previous
/// closing, each closing = opening + its lines + corrections, the first opening the
/// account's opening balance; the figures match the lines.
async fn assert_chain(pool: &PgPool, f: &Fixture, account: &mapping::BankAccount) {
    let st = all(pool, f, account.id).await;
    assert!(!st.is_empty());
    let mut expected_opening = account.opening_balance.unwrap_or_default();
    let mut sequence = 0;
    for s in &st {
        assert_eq!(
            s.opening_balance, expected_opening,
            "statement {} opens where the last closed",
            s.id
        );
        let (n, sum): (i64, Option<Decimal>) = sqlx::query_as(
            "SELECT count(*), sum(amount) FILTER (WHERE duplicate_confirmed_at IS NULL AND removal_confirmed_at IS NULL) FROM statement_lines WHERE statement_id = $1",
        )
        .bind(s.id)
        .fetch_one(pool)
        .await
        .unwrap();
        if s.closed_at.is_none() {
            assert_eq!(s.line_count, n);
            assert_eq!(
                s.closing_balance,
                s.opening_balance + sum.unwrap_or_default() + s.corrections
            );
        } else {
            sequence += 1;
            assert_eq!(s.sequence, Some(sequence), "numbered in sequence");
        }
        assert!(s.period_start <= s.period_end);
        expected_opening = s.closing_balance;
    }
}

#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn statements_close_in_sequence_and_chain_to_the_bank_balance(pool: PgPool) {
    let f = fixture(&pool, |c| {
        c.data.pending_per_account = 0;
        c.data.twins_per_account = 0;
    })
    .await;
    sync(&pool, &f, false).await;
    let accounts = mapping::accounts_of_connection(&pool, f.conn)
        .await
        .unwrap();
    let account = accounts
        .iter()
        .find(|a| a.balance_check.as_deref() == Some("booked"))
        .expect("a booked account")
        .clone();
    let st = all(&pool, &f, account.id).await;
    let today = banksync_testkit::clock::today();
    // Daily by default; every day before today has ended and this sync saw it: closed.
    assert!(st.iter().all(|s| s.period == "daily"));
    assert!(st
        .iter()
        .all(|s| (s.period_end < today) == s.closed_at.is_some()));
    assert!(st.iter().filter(|s| s.closed_at.is_some()).count() > 10);
    let lines: i64 =
        sqlx::query_scalar("SELECT count(*) FROM statement_lines WHERE bank_account_id = $1")
            .bind(account.id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        st.iter().map(|s| s.line_count).sum::<i64>(),
        lines,
        "every line in one statement"
    );
    assert_chain(&pool, &f, &account).await;
    // The newest statement carries the balance check: its closing is the bank's balance.
    let newest = st.last().unwrap();
    assert_eq!(Some(newest.closing_balance), account.bank_balance);
    assert_eq!(newest.balance_difference, Some(Decimal::ZERO));
    assert_eq!(newest.balance_basis.as_deref(), Some("booked"));

    // The bank moves on: closed statements stay exactly as they were.
    let closed_before: Vec<_> = st
        .iter()
        .filter(|s| s.closed_at.is_some())
        .map(|s| format!("{s:?}"))
        .collect();
    f.sim.advance(&f.se_conn);
    sync(&pool, &f, false).await;
    let after = all(&pool, &f, account.id).await;
    let closed_after: Vec<_> = after
        .iter()
        .filter(|s| s.closed_at.is_some())
        .take(closed_before.len())
        .map(|s| format!("{s:?}"))
        .collect();
    assert_eq!(
        closed_after, closed_before,
        "closed statements never change"
    );
    let account = mapping::accounts_of_connection(&pool, f.conn)
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.id == account.id)
        .unwrap();
    assert_chain(&pool, &f, &account).await;
    assert_eq!(
        Some(after.last().unwrap().closing_balance),
        account.bank_balance
    );
}

/// A line that arrives after its period closed goes into the open statement (keeping its
/// own date); an amount Salt Edge edits on a closed statement's line is carried as a
/// correction on the open statement: closed statements do not change, the chain holds, and
/// a difference from the bank's balance is recorded, never covered up.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn late_lines_and_corrections_go_to_the_open_statement(pool: PgPool) {
    let f = fixture(&pool, |c| {
        c.data.pending_per_account = 0;
        c.data.twins_per_account = 0;
        c.data.reissued_per_fetch = 0;
    })
    .await;
    sync(&pool, &f, false).await;
    let target = target_of(&pool, f.conn).await;
    let account_id = target.1.bank_account_id;
    let closed: Vec<_> = all(&pool, &f, account_id)
        .await
        .into_iter()
        .filter(|s| s.closed_at.is_some())
        .collect();
    let old_day = closed[2].period_start;
    let today = banksync_testkit::clock::today();

    // A late transaction dated in a closed period.
    let late = tx(
        "970000000000000001",
        &target.0,
        &old_day.to_string(),
        "-19.99",
        "Late card payment",
    );
    write(&pool, &f, &target, vec![late]).await;
    let (statement_id, booking): (i64, NaiveDate) = sqlx::query_as(
        "SELECT statement_id, booking_date FROM statement_lines WHERE saltedge_transaction_id = '970000000000000001'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(booking, old_day, "the line keeps its own date");
    let home = statements::get(&pool, f.company, statement_id)
        .await
        .unwrap();
    assert!(home.closed_at.is_none(), "into the open statement");
    assert_eq!(home.period_start, today);

    // Salt Edge edits the amount of a line in a closed statement.
    let (line, amount): (i64, Decimal) = sqlx::query_as(
        "SELECT id, amount FROM statement_lines WHERE statement_id = $1 ORDER BY id LIMIT 1",
    )
    .bind(closed[5].id)
    .fetch_one(&pool)
    .await
    .unwrap();
    sqlx::query("UPDATE statement_lines SET amount = amount - 1 WHERE id = $1")
        .bind(line)
        .execute(&pool)
        .await
        .unwrap();
    let now_closed = statements::get(&pool, f.company, closed[5].id)
        .await
        .unwrap();
    assert_eq!(
        format!("{now_closed:?}"),
        format!("{:?}", closed[5]),
        "closed: unchanged"
    );
    let open = statements::get(&pool, f.company, statement_id)
        .await
        .unwrap();
    assert_eq!(
        open.corrections,
        Decimal::NEGATIVE_ONE,
        "carried as a correction"
    );
    let _ = amount;

    // The bank never had the late payment: the next sync's check records the difference.
    sync(&pool, &f, false).await;
    let account = mapping::accounts_of_connection(&pool, f.conn)
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.id == account_id)
        .unwrap();
    assert_chain(&pool, &f, &account).await;
    let newest = all(&pool, &f, account_id).await.pop().unwrap();
    assert_eq!(
        newest.balance_difference,
        Some(Decimal::new(1999, 2) + Decimal::ONE),
        "the bank balance minus the journal's: recorded, not faked"
    );
    assert_eq!(
        Some(newest.closing_balance + Decimal::new(2099, 2)),
        account.bank_balance
    );
}

/// A connection without pending, look-alike or re-issued transactions, synced once, and
/// its account.
async fn synced(pool: &PgPool) -> (Fixture, Uuid) {
    let f = fixture(pool, |c| {
        c.data.pending_per_account = 0;
        c.data.twins_per_account = 0;
        c.data.reissued_per_fetch = 0;
    })
    .await;
    sync(pool, &f, false).await;
    let account = target_of(pool, f.conn).await.1.bank_account_id;
    (f, account)
}

/// The newest `n` closed statements of an account opened again, as they are at the end of a
/// first import before the close; returns them, oldest first.
async fn reopen_newest(pool: &PgPool, account: Uuid, n: i64) -> Vec<i64> {
    let mut ids: Vec<i64> = sqlx::query_scalar(
        "UPDATE statements SET closed_at = NULL, sequence = NULL
         WHERE id IN (SELECT id FROM statements WHERE bank_account_id = $1 AND closed_at IS NOT NULL
                      ORDER BY period_start DESC LIMIT $2)
         RETURNING id",
    )
    .bind(account)
    .bind(n)
    .fetch_all(pool)
    .await
    .unwrap();
    ids.sort();
    ids
}

/// A line of a statement with lines, and its amount.
async fn a_line_of(pool: &PgPool, statement: i64) -> (i64, Decimal) {
    sqlx::query_as(
        "SELECT id, amount FROM statement_lines WHERE statement_id = $1 ORDER BY id LIMIT 1",
    )
    .bind(statement)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Waits until some session waits for a row lock on `statements` (or gives up after 20 s).
async fn until_someone_waits(pool: &PgPool) -> bool {
    for _ in 0..1000 {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if n > 0 {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    false
}

/// A duplicate confirmed while the sync is about to close its statement: the close waits for
/// that transaction and sums the statement's lines after it, so the closed figures leave the
/// duplicate out (summing first and waiting on the row after, as one statement did, closed
/// it with the duplicate counted).
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn a_line_changed_before_the_close_is_in_the_closed_figures(pool: PgPool) {
    let (f, account) = synced(&pool).await;
    let mut reopened = vec![];
    for id in reopen_newest(&pool, account, 5).await {
        let n: i64 =
            sqlx::query_scalar("SELECT count(*) FROM statement_lines WHERE statement_id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap();
        if n > 0 {
            reopened.push(id);
        }
    }
    let statement = *reopened.first().expect("a reopened statement with lines");
    let (line, amount) = a_line_of(&pool, statement).await;
    let mut user = pool.begin().await.unwrap();
    sqlx::query("UPDATE statement_lines SET duplicate_confirmed_at = now() WHERE id = $1")
        .bind(line)
        .execute(&mut *user)
        .await
        .unwrap();
    let release = async {
        let waited = until_someone_waits(&pool).await;
        user.commit().await.unwrap();
        waited
    };
    let (_, waited) = tokio::join!(sync(&pool, &f, false), release);
    assert!(waited, "the close waits for the change");
    let s = statements::get(&pool, f.company, statement).await.unwrap();
    assert!(s.closed_at.is_some());
    let counted: Decimal = sqlx::query_scalar(
        "SELECT coalesce(sum(amount), 0) FROM statement_lines WHERE statement_id = $1 AND duplicate_confirmed_at IS NULL",
    )
    .bind(statement)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        s.closing_balance - s.opening_balance,
        counted + s.corrections,
        "the confirmed duplicate ({amount}) is out of the closed figures"
    );
}

/// The other order: a statement being closed (its row locked, as the close does) and a line
/// of it changed meanwhile. The change waits for the close and is then carried as a
/// correction on the current statement; read before the close committed, it was taken for
/// a change to an open statement and lost.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn a_line_changed_during_the_close_is_carried_as_a_correction(pool: PgPool) {
    let (_f, account) = synced(&pool).await;
    let closed: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT s.id, count(l.id) FROM statements s JOIN statement_lines l ON l.statement_id = s.id
         WHERE s.bank_account_id = $1 AND s.closed_at IS NOT NULL GROUP BY s.id ORDER BY s.period_start DESC LIMIT 1",
    )
    .bind(account)
    .fetch_all(&pool)
    .await
    .unwrap();
    let statement = closed[0].0;
    sqlx::query("UPDATE statements SET closed_at = NULL, sequence = NULL WHERE id = $1")
        .bind(statement)
        .execute(&pool)
        .await
        .unwrap();
    let (line, amount) = a_line_of(&pool, statement).await;
    let corrections_before: Decimal = sqlx::query_scalar(
        "SELECT coalesce(sum(corrections), 0) FROM statements WHERE bank_account_id = $1",
    )
    .bind(account)
    .fetch_one(&pool)
    .await
    .unwrap();

    let mut close = pool.begin().await.unwrap();
    sqlx::query("SELECT id FROM statements WHERE id = $1 FOR UPDATE")
        .bind(statement)
        .execute(&mut *close)
        .await
        .unwrap();
    let confirming = {
        let pool = pool.clone();
        tokio::spawn(async move {
            sqlx::query("UPDATE statement_lines SET duplicate_confirmed_at = now() WHERE id = $1")
                .bind(line)
                .execute(&pool)
                .await
                .unwrap();
        })
    };
    assert!(
        until_someone_waits(&pool).await,
        "the change waits for the close"
    );
    let sequence: i32 = sqlx::query_scalar(
        "SELECT coalesce(max(sequence), 0) + 1 FROM statements WHERE bank_account_id = $1",
    )
    .bind(account)
    .fetch_one(&mut *close)
    .await
    .unwrap();
    sqlx::query("UPDATE statements SET closed_at = now(), sequence = $2 WHERE id = $1")
        .bind(statement)
        .bind(sequence)
        .execute(&mut *close)
        .await
        .unwrap();
    close.commit().await.unwrap();
    confirming.await.unwrap();
    let corrections_after: Decimal = sqlx::query_scalar(
        "SELECT coalesce(sum(corrections), 0) FROM statements WHERE bank_account_id = $1 AND closed_at IS NULL",
    )
    .bind(account)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        corrections_after - corrections_before,
        -amount,
        "the duplicate's amount leaves the books as a correction on the open statement"
    );
}

/// Weekly and monthly periods: the account's open statements are regrouped, closed ones
/// stay; Monday-to-Sunday weeks and calendar months.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn weekly_and_monthly_statements(pool: PgPool) {
    let f = fixture(&pool, |c| c.data.pending_per_account = 0).await;
    let accounts = {
        sync(&pool, &f, false).await;
        mapping::accounts_of_connection(&pool, f.conn)
            .await
            .unwrap()
    };
    let (a, b) = (&accounts[0], &accounts[1]);
    // Fresh accounts of a new connection would be simpler; here the periods change before
    // the next lines arrive: new lines follow the new period.
    statements::set_period(&pool, f.company, a.id, Period::Weekly)
        .await
        .unwrap();
    statements::set_period(&pool, f.company, b.id, Period::Monthly)
        .await
        .unwrap();
    let before_change = all(&pool, &f, a.id).await;
    let before: Vec<i64> = before_change.iter().map(|s| s.id).collect();
    // The last day of the newest statement closed under the daily period.
    let closed_through = before_change
        .iter()
        .filter(|s| s.closed_at.is_some())
        .map(|s| s.period_end)
        .max();
    f.sim.advance(&f.se_conn);
    sync(&pool, &f, false).await;
    let st = all(&pool, &f, a.id).await;
    let weekly: Vec<_> = st.iter().filter(|s| s.period == "weekly").collect();
    assert!(!weekly.is_empty());
    // The new lines are dated today or yesterday: they make at most two new statements
    // (two when yesterday was a Sunday, or the day after the last closed statement starts
    // a short week), each holding some of them; one that has ended is closed by this sync.
    let today = banksync_testkit::clock::today();
    let new: Vec<_> = st.iter().filter(|s| !before.contains(&s.id)).collect();
    assert!(new.len() <= 2, "{new:?}");
    for s in &new {
        let lines: i64 =
            sqlx::query_scalar("SELECT count(*) FROM statement_lines WHERE statement_id = $1")
                .bind(s.id)
                .fetch_one(&pool)
                .await
                .unwrap();
        assert!(lines > 0, "a new statement holds lines: {s:?}");
        assert_eq!(s.closed_at.is_some(), s.period_end < today, "{s:?}");
    }
    // Weeks run Monday to Sunday; the first one after the change starts the day after the
    // last statement closed before it, so that no period overlaps a closed one.
    for s in &weekly {
        assert_eq!(s.period_end.weekday(), chrono::Weekday::Sun);
        assert!(
            s.period_start.weekday() == chrono::Weekday::Mon
                || Some(s.period_start) == closed_through.map(|c| c + chrono::Days::new(1))
        );
        assert!(closed_through.is_none_or(|c| s.period_start > c));
    }
    for s in all(&pool, &f, b.id)
        .await
        .iter()
        .filter(|s| s.period == "monthly")
    {
        assert_eq!(Period::Monthly.end(s.period_start), s.period_end);
    }
    let other = companies::create(&pool, "Other").await.unwrap().id;
    assert!(matches!(
        statements::set_period(&pool, other, a.id, Period::Daily).await,
        Err(SyncError::NotFound { .. })
    ));
    for acc in [a, b] {
        let acc = mapping::accounts_of_connection(&pool, f.conn)
            .await
            .unwrap()
            .into_iter()
            .find(|x| x.id == acc.id)
            .unwrap();
        assert_chain(&pool, &f, &acc).await;
    }
}

/// The database's period functions (used when lines are assigned) and the engine's agree,
/// day by day over two years and every period.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn sql_and_rust_periods_agree(pool: PgPool) {
    let start: NaiveDate = "2027-01-01".parse().unwrap();
    for p in Period::ALL {
        let rows: Vec<(NaiveDate, NaiveDate, NaiveDate)> = sqlx::query_as(
            "SELECT d::date, period_start($1, d::date), period_end($1, d::date)
             FROM generate_series($2::date, $2::date + 730, interval '1 day') d",
        )
        .bind(p.as_str())
        .bind(start)
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(rows.len(), 731);
        for (d, s, e) in rows {
            assert_eq!((s, e), (p.start(d), p.end(d)), "{p:?} {d}");
        }
    }
}

/// What a check would use for an account (its sums, and whether they were the kept ones),
/// in a transaction of its own as the sync's is.
async fn load_sums(pool: &PgPool, f: &Fixture, account: Uuid) -> (bool, statements::Sums) {
    let mut db = pool.begin().await.unwrap();
    let sums = statements::LineSums::load(&mut db, f.conn, &[])
        .await
        .unwrap();
    db.commit().await.unwrap();
    (sums.reused, sums.account(account))
}

/// The account's lines summed directly, and what `line_sums` keeps for it.
async fn counted_and_kept(pool: &PgPool, account: Uuid) -> [(i64, Decimal, Decimal); 2] {
    let counted = sqlx::query_as(
        "SELECT count(*), coalesce(sum(amount) FILTER (WHERE duplicate_confirmed_at IS NULL AND removal_confirmed_at IS NULL), 0),
                coalesce(sum(amount) FILTER (WHERE duplicate_confirmed_at IS NULL AND removal_confirmed_at IS NULL AND amount < 0), 0)
         FROM statement_lines WHERE bank_account_id = $1",
    )
    .bind(account)
    .fetch_one(pool)
    .await
    .unwrap();
    let kept =
        sqlx::query_as("SELECT lines, total, negative FROM line_sums WHERE bank_account_id = $1")
            .bind(account)
            .fetch_one(pool)
            .await
            .unwrap();
    [counted, kept]
}

/// The sums a check keeps for the next are reused only while no line of the account
/// changed: an edited amount, a confirmed duplicate, a removed line, new lines from a sync,
/// a pruned tombstone each make the next check sum anew; an update that changes nothing
/// does not. Whichever way, the sums are the lines'.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn kept_sums_are_reused_only_while_no_line_changed(pool: PgPool) {
    let (f, account) = synced(&pool).await;
    let as_triple = |s: statements::Sums| (s.lines, s.total, s.negative);
    let [counted, kept] = counted_and_kept(&pool, account).await;
    assert_eq!(kept, counted, "the sync kept its sums");
    assert!(counted.0 > 0);
    let (reused, sums) = load_sums(&pool, &f, account).await;
    assert!(reused, "nothing changed since the sync");
    assert_eq!(as_triple(sums), counted);

    let line: i64 = sqlx::query_scalar(
        "SELECT id FROM statement_lines WHERE bank_account_id = $1 AND amount < 0 ORDER BY id LIMIT 1",
    )
    .bind(account)
    .fetch_one(&pool)
    .await
    .unwrap();
    // (change, whether it changes the sums' lines). After each, the next check sums anew
    // where it should and keeps what it summed.
    let changes = [
        (
            "UPDATE statement_lines SET amount = amount - 5 WHERE id = $1",
            true,
        ),
        (
            "UPDATE statement_lines SET amount = amount WHERE id = $1",
            false,
        ),
        (
            "UPDATE statement_lines SET duplicate_confirmed_at = now() WHERE id = $1",
            true,
        ),
        ("DELETE FROM statement_lines WHERE id = $1", true),
    ];
    for (change, changes_anything) in changes {
        let done = sqlx::query(change).bind(line).execute(&pool).await.unwrap();
        assert_eq!(done.rows_affected(), 1, "{change}");
        let (reused, sums) = load_sums(&pool, &f, account).await;
        assert_eq!(reused, !changes_anything, "after {change}");
        let [counted, kept] = counted_and_kept(&pool, account).await;
        assert_eq!(as_triple(sums), counted, "after {change}");
        assert_eq!(kept, counted, "after {change}");
        assert!(
            load_sums(&pool, &f, account).await.0,
            "then kept, after {change}"
        );
    }
    // Lines stored since: the kept sums are extended by them, not summed anew (a night's
    // sync costs its new lines, not the history).
    let (se_account, target) = target_of(&pool, f.conn).await;
    assert_eq!(target.bank_account_id, account);
    let run = sync_engine::runs::start(&pool, f.company, f.conn, "test", None)
        .await
        .unwrap();
    let mut new_line = tx(
        "990000000000000001",
        &se_account,
        "2026-03-02",
        "-12.34",
        "New since",
    );
    new_line.currency_code = target.currency.clone();
    lines::write_page(
        &pool,
        run,
        &HashMap::from([(se_account.clone(), target.clone())]),
        std::slice::from_ref(&new_line),
        LineStatus::Posted,
        &mut lines::PendingLines::default(),
        &DedupOptions::default(),
    )
    .await
    .unwrap();
    let mut db = pool.begin().await.unwrap();
    let extended = statements::LineSums::load(&mut db, f.conn, &[])
        .await
        .unwrap();
    db.commit().await.unwrap();
    assert!(extended.reused, "extended, not summed anew");
    assert_eq!(extended.added, 1);
    let [counted, kept] = counted_and_kept(&pool, account).await;
    assert_eq!(as_triple(extended.account(account)), counted);
    assert_eq!(kept, counted);
    // The same line changed afterwards: it was counted, so the next check sums anew.
    sqlx::query("UPDATE statement_lines SET amount = -20 WHERE saltedge_transaction_id = $1")
        .bind(&new_line.id)
        .execute(&pool)
        .await
        .unwrap();
    let (reused, sums) = load_sums(&pool, &f, account).await;
    assert!(!reused, "a counted line changed");
    assert_eq!(as_triple(sums), counted_and_kept(&pool, account).await[0]);

    // Tombstones pruned since the sums were kept: one may have been a line of the account.
    // (Kept again only once no transaction older than the pruning runs anywhere in the
    // cluster, which other tests' transactions may delay: not asserted.)
    sqlx::query("UPDATE change_feed_horizon SET pruned_xid = pg_current_xact_id()::text::bigint")
        .execute(&pool)
        .await
        .unwrap();
    let (reused, sums) = load_sums(&pool, &f, account).await;
    assert!(!reused, "after a pruning");
    assert_eq!(as_triple(sums), counted_and_kept(&pool, account).await[0]);

    // New lines from the bank: the sync's check counts them (a kept sum would miss them and
    // report the bank's balance as a mismatch).
    sqlx::query("UPDATE bank_accounts SET opening_balance = NULL WHERE id = $1")
        .bind(account)
        .execute(&pool)
        .await
        .unwrap();
    sync(&pool, &f, false).await;
    f.sim.advance(&f.se_conn);
    let report = sync(&pool, &f, false).await;
    assert!(report.run.inserted > 0);
    assert_eq!(report.run.balance_mismatches, serde_json::json!([]));
    let [counted, kept] = counted_and_kept(&pool, account).await;
    assert_eq!(kept, counted);
}
