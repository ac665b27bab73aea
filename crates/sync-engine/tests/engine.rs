//! The sync engine against real Postgres (a fresh database per test) and the simulator over
//! real HTTP. Every test ends by comparing the statement lines with the simulator's ground
//! truth where that applies.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use saltedge_client::models::{Transaction, TransactionStatus};
use saltedge_client::Client;
use saltedge_sim::{FaultAction, FaultRule, SimConfig, Simulator};
use sqlx::PgPool;
use sync_engine::ingest::lines::{self, AccountTarget, DedupOptions, LineStatus};
use sync_engine::{
    catalogue, companies, connections, mapping, sync_connection, SyncError, SyncOptions,
};
use uuid::Uuid;

struct Fixture {
    sim: Simulator,
    client: Client,
    company: Uuid,
    conn: Uuid,
    se_conn: String,
}

fn client_for(sim: &Simulator, retries: u32) -> Client {
    let mut c = saltedge_client::ClientConfig::signed(
        sim.api_base(),
        sim.app_credentials().0,
        sim.app_credentials().1,
        saltedge_sim::keys::CLIENT_PRIVATE_PEM,
    )
    .expect("test key");
    c.max_retries = retries;
    c.backoff_base = Duration::from_millis(5);
    c.fetches_per_second = 0;
    Client::new(c).unwrap()
}

async fn fixture(pool: &PgPool, f: impl FnOnce(&mut SimConfig)) -> Fixture {
    let mut cfg = SimConfig::default();
    f(&mut cfg);
    let sim = Simulator::start(cfg).await.unwrap();
    let client = client_for(&sim, 3);
    let company = companies::create(pool, "ACME Books").await.unwrap().id;
    let (_, se_conn) = sim.seed_connection("acme", "fake_client_xf");
    let se = client.show_connection(&se_conn).await.unwrap();
    let conn = connections::upsert_from_saltedge(pool, company, &se)
        .await
        .unwrap()
        .id;
    Fixture {
        sim,
        client,
        company,
        conn,
        se_conn,
    }
}

async fn sync(pool: &PgPool, f: &Fixture, full: bool) -> sync_engine::SyncReport {
    sync_connection(
        pool,
        &f.client,
        f.conn,
        &SyncOptions {
            full,
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

/// (saltedge id → status) of the connection's lines, asserting no id appears twice.
async fn lines(pool: &PgPool, conn: Uuid) -> BTreeMap<String, String> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT l.saltedge_transaction_id, l.status FROM statement_lines l JOIN bank_accounts a ON a.id = l.bank_account_id
         WHERE a.connection_id = $1",
    )
    .bind(conn)
    .fetch_all(pool)
    .await
    .unwrap();
    let n = rows.len();
    let map: BTreeMap<String, String> = rows.into_iter().collect();
    assert_eq!(map.len(), n, "an id appears on two lines");
    map
}

/// Every posted (non-duplicated) transaction and every current pending one is exactly one
/// line; nothing else is.
async fn assert_matches_truth(pool: &PgPool, f: &Fixture) {
    let truth = f.sim.ground_truth(&f.se_conn).unwrap();
    let mut expected = BTreeMap::new();
    for a in &truth.accounts {
        for t in &a.posted {
            expected.insert(t.id.clone(), "posted".to_string());
        }
        for t in &a.pending {
            expected.insert(t.id.clone(), "pending".to_string());
        }
    }
    assert_eq!(lines(pool, f.conn).await, expected);
}

#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn rule1_resync_of_the_whole_history_changes_nothing(pool: PgPool) {
    let f = fixture(&pool, |_| {}).await;
    let first = sync(&pool, &f, false).await;
    assert_eq!(first.run.status, "succeeded");
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
async fn rule2_pending_that_posts_under_a_new_id_updates_its_line(pool: PgPool) {
    let f = fixture(&pool, |c| c.data.pending_per_account = 4).await;
    sync(&pool, &f, false).await;
    let line_ids: HashMap<String, i64> = sqlx::query_as::<_, (String, i64)>(
        "SELECT saltedge_transaction_id, id FROM statement_lines WHERE status = 'pending'",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
    .into_iter()
    .collect();
    assert_eq!(line_ids.len(), 8);

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
        let (line_id, was): (i64, Option<String>) = sqlx::query_as(
            "SELECT id, pending_transaction_id FROM statement_lines WHERE saltedge_transaction_id = $1 AND status = 'posted'",
        )
        .bind(posted_id)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(was.as_deref(), Some(pending_id.as_str()));
        assert_eq!(
            line_id, line_ids[pending_id],
            "the pending line itself became posted"
        );
    }
    assert!(report.run.updated >= 6);
    assert_matches_truth(&pool, &f).await;
}

#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn rule3_vanished_pending_lines_go_posted_lines_never(pool: PgPool) {
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
    assert_matches_truth(&pool, &f).await;

    // Even an empty pending list deletes only pending lines.
    let posted_before = all.values().filter(|s| *s == "posted").count();
    let removed = lines::remove_vanished_pending(&pool, f.conn, &[])
        .await
        .unwrap();
    assert_eq!(
        removed as usize,
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
    assert_eq!(a.run.status, "succeeded");
    assert_eq!(b.run.status, "succeeded");
    let total = lines(&pool, f.conn).await.len() as i32;
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
    // The second transactions page dies mid-answer, and this client does not retry.
    f.sim.set_faults(vec![FaultRule::new(FaultAction::Drop)
        .on_path("/transactions")
        .nth(2)]);
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
    assert_eq!(rerun.run.status, "succeeded");
    assert_matches_truth(&pool, &f).await;
}

#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn accounts_get_journals_and_mapping_checks_currency(pool: PgPool) {
    let f = fixture(&pool, |_| {}).await;
    sync(&pool, &f, false).await;
    let accounts = mapping::accounts_of_connection(&pool, f.conn)
        .await
        .unwrap();
    let journals = mapping::journals(&pool, f.company).await.unwrap();
    assert_eq!(accounts.len(), 2);
    assert_eq!(journals.len(), 2, "one journal per new account");
    for a in &accounts {
        let j = journals.iter().find(|j| j.id == a.journal_id).unwrap();
        assert_eq!(j.currency, a.currency);
    }
    // Map the first account to a fresh journal: wrong currency is refused, nothing changes.
    let acc = &accounts[0];
    let other_ccy = if acc.currency == "EUR" { "USD" } else { "EUR" };
    let wrong = mapping::create_journal(&pool, f.company, "Other", other_ccy, None)
        .await
        .unwrap();
    let e = mapping::map_account(&pool, f.company, acc.id, wrong.id)
        .await
        .unwrap_err();
    assert!(matches!(e, SyncError::CurrencyMismatch { .. }), "{e:?}");
    assert_eq!(
        mapping::accounts_of_connection(&pool, f.conn)
            .await
            .unwrap()[0]
            .journal_id,
        acc.journal_id
    );
    // Another company's journal is not found.
    let stranger = companies::create(&pool, "Stranger").await.unwrap();
    let theirs = mapping::create_journal(&pool, stranger.id, "Theirs", &acc.currency, None)
        .await
        .unwrap();
    assert!(matches!(
        mapping::map_account(&pool, f.company, acc.id, theirs.id).await,
        Err(SyncError::NotFound { .. })
    ));
    // Same currency works, and new lines go there.
    let right = mapping::create_journal(&pool, f.company, "Main bank", &acc.currency, None)
        .await
        .unwrap();
    mapping::map_account(&pool, f.company, acc.id, right.id)
        .await
        .unwrap();
    f.sim.advance(&f.se_conn);
    let r = sync(&pool, &f, false).await;
    assert!(r.run.inserted > 0);
    let in_new: i64 =
        sqlx::query_scalar("SELECT count(*) FROM statement_lines WHERE journal_id = $1")
            .bind(right.id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(in_new > 0);

    // An account that disappears keeps its journal and lines.
    let se_accounts = f.client.list_accounts(&f.se_conn).await.unwrap();
    let out = mapping::sync_accounts(&pool, f.company, f.conn, "Bank", &se_accounts[..1])
        .await
        .unwrap();
    assert_eq!(out.disappeared, 1);
    let gone = mapping::accounts_of_connection(&pool, f.conn)
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.disappeared_at.is_some())
        .unwrap();
    let kept: i64 =
        sqlx::query_scalar("SELECT count(*) FROM statement_lines WHERE bank_account_id = $1")
            .bind(gone.id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(kept > 0);
    assert_eq!(
        mapping::journals(&pool, f.company).await.unwrap().len(),
        4,
        "two automatic, two made by hand; none deleted"
    );
}

#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn balance_mismatch_is_recorded_not_fixed(pool: PgPool) {
    let f = fixture(&pool, |_| {}).await;
    let first = sync(&pool, &f, false).await;
    assert_eq!(first.run.balance_mismatches, serde_json::json!([]));
    f.sim.advance(&f.se_conn);
    let second = sync(&pool, &f, false).await;
    assert_eq!(
        second.run.balance_mismatches,
        serde_json::json!([]),
        "journal follows the bank"
    );

    // Someone edits the opening balance: the next sync reports the difference and changes no line.
    let acc = mapping::accounts_of_connection(&pool, f.conn)
        .await
        .unwrap()
        .remove(0);
    sqlx::query("UPDATE bank_accounts SET opening_balance = opening_balance + 1 WHERE id = $1")
        .bind(acc.id)
        .execute(&pool)
        .await
        .unwrap();
    let before = lines(&pool, f.conn).await;
    let third = sync(&pool, &f, false).await;
    let m = third.run.balance_mismatches.as_array().unwrap();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0]["bank_account_id"], acc.id.to_string());
    assert_eq!(
        m[0]["difference"]
            .as_str()
            .unwrap()
            .parse::<Decimal>()
            .unwrap(),
        Decimal::from(-1)
    );
    let acc = mapping::accounts_of_connection(&pool, f.conn)
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.id == acc.id)
        .unwrap();
    assert_eq!(acc.balance_mismatch, Some(Decimal::from(-1)));
    assert_eq!(lines(&pool, f.conn).await, before);
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

// ----- helpers for direct page writes -----

async fn target_of(pool: &PgPool, conn: Uuid) -> (String, AccountTarget) {
    let a = mapping::accounts_of_connection(pool, conn)
        .await
        .unwrap()
        .remove(0);
    (
        a.saltedge_id.clone(),
        AccountTarget {
            bank_account_id: a.id,
            journal_id: a.journal_id,
            currency: a.currency,
            sync_start_date: None,
        },
    )
}

fn tx(id: &str, account: &str, date: &str, amount: &str, description: &str) -> Transaction {
    Transaction {
        id: id.into(),
        account_id: account.into(),
        duplicated: false,
        mode: "normal".into(),
        status: TransactionStatus::Posted,
        made_on: date.parse().unwrap(),
        amount: amount.parse().unwrap(),
        currency_code: "EUR".into(),
        description: description.into(),
        category: String::new(),
        extra: serde_json::json!({ "payee": "Bean There" }),
        created_at: None,
        updated_at: None,
    }
}

async fn write(
    pool: &PgPool,
    f: &Fixture,
    target: &(String, AccountTarget),
    txs: Vec<Transaction>,
) -> lines::PageOutcome {
    let run = sync_engine::runs::start(pool, f.company, f.conn, "test", None)
        .await
        .unwrap();
    let targets = HashMap::from([target.clone()]);
    let txs: Vec<Transaction> = txs
        .into_iter()
        .map(|mut t| {
            t.currency_code = target.1.currency.clone();
            t
        })
        .collect();
    let mut pending = lines::PendingLines::load(pool, f.conn).await.unwrap();
    lines::write_page(
        pool,
        run,
        &targets,
        &txs,
        LineStatus::Posted,
        &mut pending,
        &DedupOptions::default(),
    )
    .await
    .unwrap()
}

// ----- job queue and scheduler -----

/// Runs the queued catch-up listings as a worker would.
async fn run_listings(
    pool: &PgPool,
    client: &Client,
    cfg: &sync_engine::schedule::ScheduleConfig,
) -> usize {
    let queued: Vec<(i64, String)> = sqlx::query_as("SELECT id, payload->>'customer_id' FROM jobs WHERE kind = 'list_customer' AND status = 'queued'")
        .fetch_all(pool)
        .await
        .unwrap();
    for (job, customer) in &queued {
        sync_engine::schedule::list_customer(pool, client, cfg, customer)
            .await
            .unwrap();
        sqlx::query("DELETE FROM jobs WHERE id = $1")
            .bind(job)
            .execute(pool)
            .await
            .unwrap();
    }
    queued.len()
}

use sync_engine::jobs;
use sync_engine::schedule::{self as scheduler, Candidate, ScheduleConfig, Verdict};

#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn three_workers_drain_1000_jobs_each_exactly_once(pool: PgPool) {
    for i in 0..1000 {
        jobs::enqueue(&pool, "test", serde_json::json!({ "i": i }), None)
            .await
            .unwrap();
    }
    let mut tasks = vec![];
    for w in 0..3 {
        // Separate pools: separate sessions, as three processes would have.
        let p = sqlx::postgres::PgPoolOptions::new()
            .max_connections(3)
            .connect_with((*pool.connect_options()).clone())
            .await
            .unwrap();
        tasks.push(tokio::spawn(async move {
            let me = format!("worker-{w}");
            let mut done = vec![];
            while let Some(job) = jobs::claim(&p, &me, Duration::from_secs(30)).await.unwrap() {
                done.push(job.id);
                jobs::complete(&p, job.id, &me).await.unwrap();
            }
            done
        }));
    }
    let mut all = vec![];
    let mut per_worker = vec![];
    for t in tasks {
        let d = t.await.unwrap();
        per_worker.push(d.len());
        all.extend(d);
    }
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!((n, all.len()), (1000, 1000), "every job once, none twice");
    assert!(
        per_worker.iter().all(|&k| k > 0),
        "all three took part: {per_worker:?}"
    );
    let (done, attempts): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'done'), max(attempts)::bigint FROM jobs",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((done, attempts), (1000, 1));
}

#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn a_dead_workers_job_runs_again_after_its_lease(pool: PgPool) {
    let id = jobs::enqueue(&pool, "test", serde_json::json!({}), None)
        .await
        .unwrap()
        .unwrap();
    let taken = jobs::claim(&pool, "dies", Duration::from_millis(800))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(taken.id, id);
    // The worker dies: no heartbeat, no completion. Nobody else may take it yet…
    assert!(jobs::claim(&pool, "alive", Duration::from_secs(30))
        .await
        .unwrap()
        .is_none());
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // …but after the lease, another worker does.
    let again = jobs::claim(&pool, "alive", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((again.id, again.attempts), (id, 2));
    // The dead worker cannot complete it any more.
    jobs::complete(&pool, id, "dies").await.unwrap();
    let status: String = sqlx::query_scalar("SELECT status FROM jobs WHERE id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(status, "running");
    jobs::complete(&pool, id, "alive").await.unwrap();
    let status: String = sqlx::query_scalar("SELECT status FROM jobs WHERE id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(status, "done");
}

#[test]
fn scheduler_picks_exactly_the_qualifying_connections() {
    let at = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .with_timezone(&chrono::Utc)
    };
    // 02:30 in Berlin (winter, UTC+1) is 01:30 UTC.
    let night = at("2026-01-15T01:30:00Z");
    let base = Candidate {
        connection_id: Uuid::nil(),
        company_id: Uuid::nil(),
        provider_code: "demobank_de".into(),
        country_code: "DE".into(),
        status: "active".into(),
        daily_refresh: true,
        provider_mode: Some("oauth".into()),
        stage: Some("finish".into()),
        next_refresh_possible_at: Some(at("2026-01-01T00:00:00Z")),
        last_error_class: None,
        company_fetches: 0,
        saltedge_fetched: false,
        failures: 0,
        last_failure_at: None,
        last_failure_class: None,
    };
    let cfg = ScheduleConfig::default();
    type Case = (&'static str, fn(&mut Candidate), &'static str, Verdict);
    let cases: Vec<Case> = vec![
        ("qualifies", |_| {}, "2026-01-15T01:30:00Z", Verdict::Due),
        (
            "daily refresh off",
            |c| c.daily_refresh = false,
            "2026-01-15T01:30:00Z",
            Verdict::DailyRefreshOff,
        ),
        (
            "inactive",
            |c| c.status = "inactive".into(),
            "2026-01-15T01:30:00Z",
            Verdict::Inactive,
        ),
        (
            "invalid credentials",
            |c| {
                c.status = "inactive".into();
                c.last_error_class = Some("InvalidCredentials".into())
            },
            "2026-01-15T01:30:00Z",
            Verdict::CredentialsInvalid,
        ),
        (
            "file provider",
            |c| c.provider_mode = Some("file".into()),
            "2026-01-15T01:30:00Z",
            Verdict::FileProvider,
        ),
        (
            "attempt running",
            |c| c.stage = Some("fetch_accounts".into()),
            "2026-01-15T01:30:00Z",
            Verdict::AttemptRunning,
        ),
        (
            "refresh timeout",
            |c| {
                c.next_refresh_possible_at = Some(
                    chrono::DateTime::parse_from_rfc3339("2026-01-15T02:00:00Z")
                        .unwrap()
                        .into(),
                )
            },
            "2026-01-15T01:30:00Z",
            Verdict::RefreshTimeout,
        ),
        (
            "before the window (00:59 Berlin)",
            |_| {},
            "2026-01-14T23:59:00Z",
            Verdict::OutsideWindow,
        ),
        (
            "window start (02:00 Berlin)",
            |_| {},
            "2026-01-15T01:00:00Z",
            Verdict::Due,
        ),
        (
            "window end (06:00 Berlin)",
            |_| {},
            "2026-01-15T05:00:00Z",
            Verdict::OutsideWindow,
        ),
        (
            "summer time (02:30 Berlin = 00:30 UTC)",
            |_| {},
            "2026-07-15T00:30:00Z",
            Verdict::Due,
        ),
        (
            "02:30 UTC is 03:30 Berlin",
            |_| {},
            "2026-01-15T02:30:00Z",
            Verdict::Due,
        ),
        (
            "Tokyo at 18:00 UTC is 03:00",
            |c| c.country_code = "JP".into(),
            "2026-01-15T18:00:00Z",
            Verdict::Due,
        ),
        (
            "Tokyo at 01:30 UTC is 10:30",
            |c| c.country_code = "JP".into(),
            "2026-01-15T01:30:00Z",
            Verdict::OutsideWindow,
        ),
        (
            "unknown country uses UTC",
            |c| c.country_code = "XF".into(),
            "2026-01-15T03:00:00Z",
            Verdict::Due,
        ),
        (
            "already fetched for this end user",
            |c| c.company_fetches = 1,
            "2026-01-15T01:30:00Z",
            Verdict::FetchedToday,
        ),
        (
            "Salt Edge fetched it itself tonight",
            |c| c.saltedge_fetched = true,
            "2026-01-15T01:30:00Z",
            Verdict::FetchedToday,
        ),
        (
            "two retries left after failures",
            |c| c.failures = 2,
            "2026-01-15T01:30:00Z",
            Verdict::Due,
        ),
        (
            "retries used up",
            |c| c.failures = 3,
            "2026-01-15T01:30:00Z",
            Verdict::RetriesUsed,
        ),
        (
            "provider unavailable: backing off",
            |c| {
                c.failures = 1;
                c.last_failure_class = Some("ProviderUnavailable".into());
                c.last_failure_at = Some(
                    chrono::DateTime::parse_from_rfc3339("2026-01-15T01:10:00Z")
                        .unwrap()
                        .into(),
                );
            },
            "2026-01-15T01:30:00Z",
            Verdict::BackingOff,
        ),
        (
            "provider unavailable: backoff over",
            |c| {
                c.failures = 1;
                c.last_failure_class = Some("ProviderUnavailable".into());
                c.last_failure_at = Some(
                    chrono::DateTime::parse_from_rfc3339("2026-01-15T00:50:00Z")
                        .unwrap()
                        .into(),
                );
            },
            "2026-01-15T01:30:00Z",
            Verdict::Due,
        ),
        (
            "second failure doubles the backoff",
            |c| {
                c.failures = 2;
                c.last_failure_class = Some("ProviderUnavailable".into());
                c.last_failure_at = Some(
                    chrono::DateTime::parse_from_rfc3339("2026-01-15T00:50:00Z")
                        .unwrap()
                        .into(),
                );
            },
            "2026-01-15T01:30:00Z",
            Verdict::BackingOff,
        ),
    ];
    assert_eq!(scheduler::decide(&base, night, &cfg), Verdict::Due);
    for (name, change, now, expected) in cases {
        let mut c = base.clone();
        change(&mut c);
        assert_eq!(scheduler::decide(&c, at(now), &cfg), expected, "{name}");
    }
}

#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn the_fetch_limit_holds_across_workers(pool: PgPool) {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let mut conns = vec![];
    for i in 0..9 {
        // One end user each: the one-fetch-per-user-per-day rule must not be what spaces them.
        let (_, se_conn) = sim.seed_connection(&format!("user-{i}"), "fake_client_xf");
        sim.age_connection(&se_conn, chrono::Duration::days(1));
        let company = companies::create(&pool, &format!("Company {i}"))
            .await
            .unwrap()
            .id;
        let se = client_for(&sim, 0).show_connection(&se_conn).await.unwrap();
        conns.push(
            connections::upsert_from_saltedge(&pool, company, &se)
                .await
                .unwrap()
                .id,
        );
    }
    // Any hour is inside this window; the shared limit is what remains.
    let cfg = ScheduleConfig {
        window_start_hour: 0,
        window_end_hour: 24,
        ..Default::default()
    };
    let mut tasks = vec![];
    for chunk in conns.chunks(3) {
        let p = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect_with((*pool.connect_options()).clone())
            .await
            .unwrap();
        // Each worker's own client has no local limit: only the shared one (its fetch gate,
        // as every replica installs it) counts.
        let mut cfg_c = saltedge_client::ClientConfig::signed(
            sim.api_base(),
            sim.app_credentials().0,
            sim.app_credentials().1,
            saltedge_sim::keys::CLIENT_PRIVATE_PEM,
        )
        .unwrap();
        cfg_c.fetches_per_second = 0;
        cfg_c.fetch_gate = Some(std::sync::Arc::new(
            sync_engine::fetch_limit::PgFetchGate::new(p.clone(), "global", 2),
        ));
        let client = Client::new(cfg_c).unwrap();
        let cfg = cfg.clone();
        let chunk = chunk.to_vec();
        tasks.push(tokio::spawn(async move {
            for c in chunk {
                scheduler::refresh(&p, &client, &cfg, c, chrono::Utc::now())
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut times: Vec<f64> = sim
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/refresh"))
        .map(|r| r.at_ms)
        .collect();
    times.sort_by(f64::total_cmp);
    assert_eq!(times.len(), 9, "every connection refreshed once");
    for w in times.windows(3) {
        assert!(
            w[2] - w[0] >= 1000.0,
            "three fetches within a second at the bank: {times:?}"
        );
    }
    let requested: i64 =
        sqlx::query_scalar("SELECT count(*) FROM refresh_attempts WHERE outcome = 'requested'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(requested, 9);
    // The same night, nothing qualifies again: one fetch per end user per day.
    for mut c in scheduler::candidates(&pool).await.unwrap() {
        assert_ne!(
            scheduler::decide(&c, chrono::Utc::now(), &cfg),
            Verdict::Due
        );
        c.next_refresh_possible_at = None;
        assert_eq!(
            scheduler::decide(&c, chrono::Utc::now(), &cfg),
            Verdict::FetchedToday
        );
    }
}

#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn shutdown_releases_unfinished_jobs_and_another_worker_finishes_them(pool: PgPool) {
    use sync_engine::worker::Worker;
    let f = fixture(&pool, |c| c.data.transactions_per_account = 1500).await;
    // Slow bank: every transactions page takes a while.
    f.sim.set_faults(vec![
        FaultRule::new(FaultAction::Delay(700)).on_path("/transactions")
    ]);
    sync_engine::jobs::queue_sync(&pool, f.company, f.conn, "test")
        .await
        .unwrap();
    let (stop, rx) = tokio::sync::watch::channel(false);
    let mut w = Worker::new(pool.clone(), f.client.clone());
    w.poll = Duration::from_millis(20);
    let handle = tokio::spawn(w.run(1, rx, Duration::from_millis(300)));
    for _ in 0..100 {
        let s: String =
            sqlx::query_scalar("SELECT status FROM jobs WHERE kind = 'sync_connection'")
                .fetch_one(&pool)
                .await
                .unwrap();
        if s == "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let asked = std::time::Instant::now();
    stop.send(true).unwrap();
    handle.await.unwrap();
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "stopped within the grace period"
    );
    let (status, attempts): (String, i32) =
        sqlx::query_as("SELECT status, attempts FROM jobs WHERE kind = 'sync_connection'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        (status.as_str(), attempts),
        ("queued", 0),
        "released, not lost, not counted as a failure"
    );

    // Another worker (a restart) picks it up and finishes; lines stay single.
    f.sim.set_faults(vec![]);
    let (stop, rx) = tokio::sync::watch::channel(false);
    let mut w = Worker::new(pool.clone(), f.client.clone());
    w.poll = Duration::from_millis(20);
    let handle = tokio::spawn(w.run(1, rx, Duration::from_secs(5)));
    for _ in 0..250 {
        let s: String =
            sqlx::query_scalar("SELECT status FROM jobs WHERE kind = 'sync_connection'")
                .fetch_one(&pool)
                .await
                .unwrap();
        if s == "done" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.send(true).unwrap();
    handle.await.unwrap();
    let statuses: Vec<String> =
        sqlx::query_scalar("SELECT status FROM sync_runs ORDER BY started_at")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        statuses.last().map(String::as_str),
        Some("succeeded"),
        "{statuses:?}"
    );
    assert_matches_truth(&pool, &f).await;
}

// ----- fault matrix: every case ends with the lines equal to the bank's ground truth -----

/// Runs syncs until one succeeds (a scheduler would), at most `tries`.
async fn sync_until_ok(pool: &PgPool, client: &Client, conn: Uuid, tries: usize) -> usize {
    for i in 1..=tries {
        if sync_connection(pool, client, conn, &SyncOptions::default())
            .await
            .is_ok()
        {
            return i;
        }
    }
    panic!("no successful sync in {tries} tries");
}

async fn matrix_fixture(pool: &PgPool) -> Fixture {
    fixture(pool, |c| {
        c.data.transactions_per_account = 1200;
        c.data.pending_per_account = 3;
    })
    .await
}

#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn fault_matrix_500s_and_429s_mid_pagination(pool: PgPool) {
    let f = matrix_fixture(&pool).await;
    f.sim.set_faults(vec![
        FaultRule::new(FaultAction::Status(500))
            .on_path("/transactions")
            .skip(1)
            .times(2),
        FaultRule::new(FaultAction::Status(429))
            .on_path("/transactions")
            .skip(5)
            .times(2),
    ]);
    assert_eq!(
        sync_until_ok(&pool, &f.client, f.conn, 1).await,
        1,
        "retries absorb them"
    );
    assert_matches_truth(&pool, &f).await;
    f.sim.advance(&f.se_conn);
    f.sim
        .set_faults(vec![FaultRule::new(FaultAction::Status(503))
            .on_path("/transactions")
            .fraction(0.5)]);
    sync_until_ok(&pool, &f.client, f.conn, 10).await;
    assert_matches_truth(&pool, &f).await;
}

#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn fault_matrix_timeouts_and_drops_mid_pagination(pool: PgPool) {
    let f = matrix_fixture(&pool).await;
    let mut cfg = saltedge_client::ClientConfig::signed(
        f.sim.api_base(),
        f.sim.app_credentials().0,
        f.sim.app_credentials().1,
        saltedge_sim::keys::CLIENT_PRIVATE_PEM,
    )
    .expect("test key");
    cfg.timeout = Duration::from_millis(400);
    cfg.max_retries = 1;
    cfg.backoff_base = Duration::from_millis(5);
    cfg.fetches_per_second = 0;
    let impatient = Client::new(cfg).unwrap();
    f.sim.set_faults(vec![
        FaultRule::new(FaultAction::Delay(1000))
            .on_path("/transactions")
            .skip(1)
            .times(3),
        FaultRule::new(FaultAction::Drop)
            .on_path("/transactions")
            .fraction(0.3),
    ]);
    sync_until_ok(&pool, &impatient, f.conn, 20).await;
    assert_matches_truth(&pool, &f).await;
}

#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn fault_matrix_postgres_connections_cut_mid_sync(pool: PgPool) {
    let f = matrix_fixture(&pool).await;
    // Slow pages, so that the cut lands mid-sync.
    f.sim.set_faults(vec![
        FaultRule::new(FaultAction::Delay(300)).on_path("/transactions")
    ]);
    let sync = {
        let (pool, client, conn) = (pool.clone(), f.client.clone(), f.conn);
        tokio::spawn(
            async move { sync_connection(&pool, &client, conn, &SyncOptions::default()).await },
        )
    };
    tokio::time::sleep(Duration::from_millis(450)).await;
    // What a Postgres restart does to a client: every session of this database ends.
    let killer = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with((*pool.connect_options()).clone())
        .await
        .unwrap();
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
           WHERE datname = current_database() AND pid <> pg_backend_pid()) t",
    )
    .fetch_one(&killer)
    .await
    .unwrap();
    assert!(killed > 0);
    let first = sync.await.unwrap();
    let partial = lines(&pool, f.conn).await.len();
    f.sim.set_faults(vec![]);
    if first.is_err() {
        assert!(partial < 2409, "the cut interrupted the sync");
    }
    sync_until_ok(&pool, &f.client, f.conn, 3).await;
    assert_matches_truth(&pool, &f).await;
}

#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn scheduler_tick_queues_catch_up_syncs_and_due_refreshes(pool: PgPool) {
    let f = fixture(&pool, |_| {}).await;
    sync(&pool, &f, false).await;
    companies::save_customer(
        &pool,
        f.company,
        &f.client
            .show_connection(&f.se_conn)
            .await
            .unwrap()
            .customer_id,
        "acme",
        None,
        None,
    )
    .await
    .unwrap();
    // We last synced two days ago; Salt Edge refreshed yesterday night and its callback was
    // lost: the bank moved on. Yesterday's fetch is more than a day ago, so tonight we may ask.
    sqlx::query("UPDATE connections SET last_synced_at = now() - interval '2 days'")
        .execute(&pool)
        .await
        .unwrap();
    f.sim.advance(&f.se_conn);
    f.sim.age_connection(&f.se_conn, chrono::Duration::days(1));
    catalogue::refresh(&pool, &f.client).await.unwrap();
    let anytime = ScheduleConfig {
        window_start_hour: 0,
        window_end_hour: 24,
        ..Default::default()
    };
    scheduler::tick(&pool, &f.client, &anytime, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(
        run_listings(&pool, &f.client, &anytime).await,
        1,
        "the customer's connections are listed"
    );
    let queued = scheduler::tick(&pool, &f.client, &anytime, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(queued, 1, "the connection qualifies for our own refresh");
    let kinds: Vec<(String, String)> =
        sqlx::query_as("SELECT kind, payload::text FROM jobs WHERE status = 'queued' ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert!(
        kinds
            .iter()
            .any(|(k, p)| k == "sync_connection" && p.contains(&f.conn.to_string())),
        "catch-up sync: {kinds:?}"
    );
    assert!(
        kinds.iter().any(|(k, _)| k == "refresh_connection"),
        "{kinds:?}"
    );
    assert!(
        !kinds.iter().any(|(k, _)| k == "refresh_catalogue"),
        "the catalogue is fresh"
    );
    // A second tick queues nothing new: each kind of work is queued once.
    scheduler::tick(&pool, &f.client, &anytime, chrono::Utc::now())
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE status = 'queued'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n as usize, kinds.len());
    // Outside the window nothing is refreshed.
    let night_only = ScheduleConfig::default();
    let c = scheduler::candidates(&pool).await.unwrap().remove(0);
    let noon_utc = (chrono::Utc::now() + chrono::Duration::days(1))
        .date_naive()
        .and_hms_opt(12, 0, 0)
        .unwrap()
        .and_utc();
    assert_eq!(
        scheduler::decide(&c, noon_utc, &night_only),
        Verdict::OutsideWindow
    );
}

#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn failed_jobs_retry_with_backoff_unless_a_successor_is_queued(pool: PgPool) {
    let a = jobs::enqueue(&pool, "test", serde_json::json!({}), Some("k"))
        .await
        .unwrap()
        .unwrap();
    assert!(
        jobs::enqueue(&pool, "test", serde_json::json!({}), Some("k"))
            .await
            .unwrap()
            .is_none(),
        "one queued per key"
    );
    let job = jobs::claim(&pool, "w", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    jobs::fail(&pool, &job, "w", "boom", false).await.unwrap();
    let (status, wait): (String, f64) = sqlx::query_as(
        "SELECT status, extract(epoch FROM run_after - now())::float8 FROM jobs WHERE id = $1",
    )
    .bind(a)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(status, "queued");
    assert!(
        wait > 5.0,
        "retried after a backoff, not at once ({wait} s)"
    );
    assert!(
        jobs::claim(&pool, "w", Duration::from_secs(30))
            .await
            .unwrap()
            .is_none(),
        "not before its time"
    );

    // While it runs again, the same work is queued anew: its failure then is final.
    sqlx::query("UPDATE jobs SET run_after = now() WHERE id = $1")
        .bind(a)
        .execute(&pool)
        .await
        .unwrap();
    let job = jobs::claim(&pool, "w", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    let b = jobs::enqueue(&pool, "test", serde_json::json!({}), Some("k"))
        .await
        .unwrap()
        .unwrap();
    jobs::fail(&pool, &job, "w", "boom again", false)
        .await
        .unwrap();
    let statuses: Vec<(i64, String)> = sqlx::query_as("SELECT id, status FROM jobs ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(
        statuses,
        vec![(a, "failed".to_string()), (b, "queued".to_string())]
    );
    // Permanent failures are final at once.
    let job = jobs::claim(&pool, "w", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    jobs::fail(&pool, &job, "w", "InvalidCredentials", true)
        .await
        .unwrap();
    let s: String = sqlx::query_scalar("SELECT status FROM jobs WHERE id = $1")
        .bind(b)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(s, "failed");
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
        assert_eq!(report.run.status, "succeeded");
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

/// Stage `finish` is not success: a real connection (corpus `connection-show.1.json`) ended
/// at `finish` with ProviderAccessNotGranted; its record shows that error. A later attempt
/// that succeeded clears it.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn connection_state_comes_from_the_last_attempt_not_the_stage(pool: PgPool) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/conformance/saltedge-v5-payloads/connection-show.1.json");
    let env: saltedge_client::models::Envelope<saltedge_client::models::Connection> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut se = env.data;
    let company = companies::create(&pool, "Real").await.unwrap().id;
    let c = connections::upsert_from_saltedge(&pool, company, &se)
        .await
        .unwrap();
    assert_eq!(c.stage.as_deref(), Some("finish"));
    assert_eq!(
        c.last_error_class.as_deref(),
        Some("ProviderAccessNotGranted")
    );
    assert_eq!(
        c.last_error_message.as_deref(),
        Some("Unfinished authorization.")
    );
    let attempt = se.last_attempt.as_mut().unwrap();
    attempt.success_at = Some(chrono::Utc::now());
    let c = connections::upsert_from_saltedge(&pool, company, &se)
        .await
        .unwrap();
    assert_eq!(
        c.last_error_class, None,
        "a success later than the failure clears it"
    );
}

/// Balances by nature and balance type: a credit card's balance is the sum of its negative
/// transactions; an available balance cannot be derived from lines and is recorded as not
/// comparable, with the reason. Neither yields a false mismatch, sync after sync.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn balances_are_compared_by_nature_and_balance_type(pool: PgPool) {
    let f = fixture(&pool, |c| c.data.accounts_per_connection = 4).await;
    for _ in 0..3 {
        let r = sync(&pool, &f, false).await;
        assert_eq!(
            r.run.balance_mismatches,
            serde_json::json!([]),
            "no false mismatch"
        );
        f.sim.advance(&f.se_conn);
    }
    let accounts = mapping::accounts_of_connection(&pool, f.conn)
        .await
        .unwrap();
    let by_nature = |n: &str| {
        accounts
            .iter()
            .find(|a| a.nature == n)
            .unwrap_or_else(|| panic!("no {n} account"))
    };
    let card = by_nature("credit_card");
    assert_eq!(card.balance_check.as_deref(), Some("credit_card_spend"));
    assert!(card.bank_balance.unwrap() < Decimal::ZERO);
    let has_payments: bool = sqlx::query_scalar(
        "SELECT bool_or(amount > 0) FROM statement_lines WHERE bank_account_id = $1",
    )
    .bind(card.id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        has_payments,
        "the card has payments, which a booked comparison would wrongly count"
    );
    assert_eq!(
        by_nature("account").balance_check.as_deref(),
        Some("booked")
    );
    assert_eq!(by_nature("credit").balance_check.as_deref(), Some("booked"));

    // A provider that reports available balances.
    let (_, se_conn) = f
        .sim
        .seed_connection("acme-available", "fakebank_available_xf");
    let se = f.client.show_connection(&se_conn).await.unwrap();
    let conn = connections::upsert_from_saltedge(&pool, f.company, &se)
        .await
        .unwrap()
        .id;
    for _ in 0..2 {
        let r = sync_connection(&pool, &f.client, conn, &SyncOptions::default())
            .await
            .unwrap();
        assert_eq!(r.run.balance_mismatches, serde_json::json!([]));
        f.sim.advance(&se_conn);
    }
    for a in mapping::accounts_of_connection(&pool, conn).await.unwrap() {
        assert_eq!(
            a.balance_check.as_deref(),
            Some("not_comparable"),
            "{}",
            a.nature
        );
        assert!(a.balance_note.unwrap().contains("available balance"));
        assert_eq!(a.balance_mismatch, None);
    }
}

/// An adopted connection records its Salt Edge customer, so the lost-callback catch-up covers
/// it as it covers a linked one; a customer belongs to one company only.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn adopted_connections_are_caught_up_and_customers_stay_with_one_company(pool: PgPool) {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let client = client_for(&sim, 0);
    let (se_customer, se_conn) = sim.seed_connection("adopted@acme.example", "fake_client_xf");
    let company = companies::create(&pool, "Adopter").await.unwrap().id;
    let conn = connections::adopt(&pool, &client, company, &se_conn)
        .await
        .unwrap();
    let customer = companies::customer_of(&pool, company)
        .await
        .unwrap()
        .expect("the customer is recorded");
    assert_eq!(
        (customer.saltedge_id.as_str(), customer.identifier.as_str()),
        (se_customer.as_str(), "adopted@acme.example")
    );
    sync_connection(&pool, &client, conn.id, &SyncOptions::default())
        .await
        .unwrap();

    // Salt Edge fetched at night; the callback never came.
    sim.advance(&se_conn);
    let cfg = sync_engine::schedule::ScheduleConfig {
        window_start_hour: 0,
        window_end_hour: 0,
        ..Default::default()
    };
    sync_engine::schedule::tick(&pool, &client, &cfg, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(
        run_listings(&pool, &client, &cfg).await,
        1,
        "the adopted connection's customer is listed"
    );
    let catch_up: i64 = sqlx::query_scalar("SELECT count(*) FROM sync_runs WHERE connection_id = $1 AND trigger = 'catch_up' AND status = 'queued'")
        .bind(conn.id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(catch_up, 1, "the adopted connection is caught up");

    // Another company cannot adopt a connection of that customer…
    let other = companies::create(&pool, "Other").await.unwrap().id;
    let (_, second_conn) = sim.seed_connection("adopted@acme.example", "fakebank_simple_xf");
    let e = connections::adopt(&pool, &client, other, &second_conn)
        .await
        .unwrap_err();
    assert!(matches!(e, SyncError::Conflict { .. }), "{e:?}");
    // …nor can the first company take a second customer.
    let (_, foreign) = sim.seed_connection("someone-else@x.example", "fake_client_xf");
    assert!(matches!(
        connections::adopt(&pool, &client, company, &foreign).await,
        Err(SyncError::Conflict { .. })
    ));
    assert!(companies::customer_of(&pool, other)
        .await
        .unwrap()
        .is_none());
}

/// A changed `scheduler.tick_secs` applies at restart: the tick queued by the previous
/// process is due at once and re-queues itself with the new interval.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn a_restart_applies_a_new_tick_interval(pool: PgPool) {
    jobs::enqueue_at(
        &pool,
        <jobs::Schedule as jobs::BackgroundJob>::KIND,
        serde_json::json!({}),
        Some("schedule"),
        Duration::from_secs(3600),
    )
    .await
    .unwrap();
    jobs::start_schedule(&pool).await.unwrap();
    let (n, wait): (i64, f64) = sqlx::query_as(
        "SELECT count(*), coalesce(max(extract(epoch FROM run_after - now())), 0)::float8 FROM jobs WHERE kind = $1 AND status = 'queued'",
    )
    .bind(<jobs::Schedule as jobs::BackgroundJob>::KIND)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(n, 1, "one tick queued");
    assert!(wait <= 0.0, "due now, not in an hour ({wait} s)");
}

/// (line id, Salt Edge id, flagged-of, rekeyed_from) of the connection's posted lines.
async fn review_rows(pool: &PgPool, conn: Uuid) -> Vec<(i64, String, Option<i64>, Option<String>)> {
    sqlx::query_as(
        "SELECT l.id, l.saltedge_transaction_id, l.suspect_duplicate_of, l.rekeyed_from FROM statement_lines l
         JOIN bank_accounts a ON a.id = l.bank_account_id WHERE a.connection_id = $1 AND l.status = 'posted' ORDER BY l.id",
    )
    .bind(conn)
    .fetch_all(pool)
    .await
    .unwrap()
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

/// A simulated week on one clock shared by the simulator and the scheduler: Salt Edge
/// fetches every qualifying connection once a night (02:00–06:00 in the capital), banksync
/// never asks for a second fetch that night, and after failures it retries at most twice.
/// Counted at the simulator, per connection per local day.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn a_simulated_week_has_one_fetch_per_connection_per_night_plus_two_retries(pool: PgPool) {
    use chrono::{Duration as D, Timelike};
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let client = client_for(&sim, 0);
    catalogue::refresh(&pool, &client).await.unwrap();
    let start = (chrono::Utc::now() + D::days(1))
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    sim.set_clock(Some(start - D::days(2)));
    let mut conns = vec![];
    for (i, provider) in ["fake_client_xf", "demobank_de", "demobank_jp"]
        .into_iter()
        .enumerate()
    {
        let (_, se) = sim.seed_connection(&format!("week-{i}@x.example"), provider);
        let company = companies::create(&pool, &format!("Week {i}"))
            .await
            .unwrap()
            .id;
        let local = connections::adopt(&pool, &client, company, &se)
            .await
            .unwrap();
        conns.push((se, local.id, provider));
    }
    let flaky = conns[1].0.clone();
    let cfg = ScheduleConfig::default();
    let mut now = start;
    while now < start + D::days(7) {
        let day = (now - start).num_days();
        if now.hour() == 0 && now.minute() == 0 {
            // The bank fails: on day 1 Salt Edge's fetch and our first retry; on day 3
            // everything, so the retries run out.
            match day {
                1 => sim.fail_next_fetches(&flaky, 2),
                3 => sim.fail_next_fetches(&flaky, 10),
                _ => sim.fail_next_fetches(&flaky, 0),
            }
        }
        // Salt Edge's callbacks for its nightly fetches: each makes banksync re-read the
        // connection (what the success and fail handlers do).
        for se in sim.run_nightly(now) {
            let c = client.show_connection(&se).await.unwrap();
            let company = conns.iter().find(|x| x.0 == se).map(|x| x.1).unwrap();
            let company = connections::get(&pool, company).await.unwrap().company_id;
            connections::upsert_from_saltedge(&pool, company, &c)
                .await
                .unwrap();
        }
        scheduler::tick(&pool, &client, &cfg, now).await.unwrap();
        run_listings(&pool, &client, &cfg).await;
        let queued: Vec<(i64, String)> = sqlx::query_as("SELECT id, payload->>'connection_id' FROM jobs WHERE kind = 'refresh_connection' AND status = 'queued'")
            .fetch_all(&pool)
            .await
            .unwrap();
        for (job, conn) in queued {
            scheduler::refresh(&pool, &client, &cfg, conn.parse().unwrap(), now)
                .await
                .unwrap();
            sqlx::query("DELETE FROM jobs WHERE id = $1")
                .bind(job)
                .execute(&pool)
                .await
                .unwrap();
        }
        now += D::minutes(20);
    }
    sim.set_clock(None);

    let log = sim.fetch_log();
    let mut per_day: BTreeMap<(String, NaiveDate), (usize, usize, usize)> = BTreeMap::new();
    for f in log.iter().filter(|f| f.at >= start) {
        let provider = conns.iter().find(|c| c.0 == f.connection_id).unwrap().2;
        let tz = scheduler::capital_zone(if provider.ends_with("_de") {
            "DE"
        } else if provider.ends_with("_jp") {
            "JP"
        } else {
            "XF"
        });
        let e = per_day
            .entry((
                f.connection_id.clone(),
                f.at.with_timezone(&tz).date_naive(),
            ))
            .or_default();
        e.0 += 1;
        e.1 += f.succeeded as usize;
        e.2 += f.automatic as usize;
    }
    for ((conn, date), (fetches, ok, automatic)) in &per_day {
        assert!(*fetches <= 3, "{conn} on {date}: {fetches} fetches");
        assert!(*ok <= 1, "{conn} on {date}: {ok} successful fetches");
        assert!(
            *automatic <= 1,
            "{conn} on {date}: {automatic} automatic fetches"
        );
        if fetches > ok {
            assert!(fetches - 1 <= 2, "at most two retries after failures");
        }
        if *conn != flaky {
            assert_eq!(
                (*fetches, *automatic),
                (1, 1),
                "{conn} on {date}: Salt Edge's own fetch, and none of ours"
            );
        }
    }
    let flaky_days: Vec<(usize, usize)> = per_day
        .iter()
        .filter(|((c, _), _)| *c == flaky)
        .map(|(_, v)| (v.0, v.1))
        .collect();
    assert!(
        flaky_days.contains(&(3, 1)),
        "a failed night is retried until it succeeds: {flaky_days:?}"
    );
    assert!(
        flaky_days.contains(&(3, 0)),
        "retries stop after two: {flaky_days:?}"
    );
    assert!(
        per_day.len() >= 3 * 6,
        "every connection was fetched on most nights: {}",
        per_day.len()
    );
    let ours: i64 = sqlx::query_scalar("SELECT count(*) FROM refresh_attempts")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(ours, 4, "banksync asked only for the four retries");
}

/// Three replicas run one tick's refreshes for three connections of one company at the same
/// moment: the allowance check and the record are one step, so exactly one reaches Salt Edge.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn three_replicas_refreshing_one_company_send_one_fetch(pool: PgPool) {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let client = client_for(&sim, 0);
    let company = companies::create(&pool, "One end user").await.unwrap().id;
    let mut ids = vec![];
    for provider in [
        "fake_client_xf",
        "fakebank_simple_xf",
        "fake_oauth_client_xf",
    ] {
        let (_, se) = sim.seed_connection("one-user@x.example", provider);
        sim.age_connection(&se, chrono::Duration::days(1));
        let conn = if ids.is_empty() {
            connections::adopt(&pool, &client, company, &se)
                .await
                .unwrap()
        } else {
            connections::upsert_from_saltedge(
                &pool,
                company,
                &client.show_connection(&se).await.unwrap(),
            )
            .await
            .unwrap()
        };
        ids.push(conn.id);
    }
    let cfg = ScheduleConfig {
        window_start_hour: 0,
        window_end_hour: 24,
        ..Default::default()
    };
    let now = chrono::Utc::now();
    let mut tasks = vec![];
    for id in ids {
        let p = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect_with((*pool.connect_options()).clone())
            .await
            .unwrap();
        let (client, cfg) = (client_for(&sim, 0), cfg.clone());
        tasks.push(tokio::spawn(async move {
            scheduler::refresh(&p, &client, &cfg, id, now)
                .await
                .unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let at_bank = sim
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/refresh"))
        .count();
    assert_eq!(
        at_bank, 1,
        "one fetch per end user per night, across replicas"
    );
    let recorded: i64 = sqlx::query_scalar("SELECT count(*) FROM refresh_attempts")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(recorded, 1);
}

/// Connect sessions (link, reconnect, fetch accounts) and refreshes share one fetch budget
/// across replicas: three replicas opening six sessions at once stay at two per second.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn connect_sessions_share_the_fetch_budget_across_replicas(pool: PgPool) {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let (customer, _) = sim.seed_connection("budget@x.example", "fake_client_xf");
    let mut tasks = vec![];
    for _ in 0..3 {
        let p = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect_with((*pool.connect_options()).clone())
            .await
            .unwrap();
        let mut cfg = saltedge_client::ClientConfig::signed(
            sim.api_base(),
            sim.app_credentials().0,
            sim.app_credentials().1,
            saltedge_sim::keys::CLIENT_PRIVATE_PEM,
        )
        .unwrap();
        cfg.fetch_gate = Some(std::sync::Arc::new(
            sync_engine::fetch_limit::PgFetchGate::new(p, "global", 2),
        ));
        let client = Client::new(cfg).unwrap();
        let customer = customer.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..2 {
                let req = saltedge_client::models::CreateConnectSession {
                    customer_id: customer.clone(),
                    consent: Default::default(),
                    provider_code: Some("fake_client_xf".into()),
                    include_fake_providers: Some(true),
                    ..Default::default()
                };
                client.create_connect_session(&req).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut times: Vec<f64> = sim
        .requests()
        .iter()
        .filter(|r| r.path.contains("/connect_sessions/"))
        .map(|r| r.at_ms)
        .collect();
    times.sort_by(f64::total_cmp);
    assert_eq!(times.len(), 6);
    for w in times.windows(3) {
        assert!(
            w[2] - w[0] >= 1000.0,
            "three fetch-starting requests within a second: {times:?}"
        );
    }
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

/// A job that panics fails alone, with the panic's message recorded, and the loop goes on
/// to the next job; past its attempts cap it is dead, and an operator can re-run it.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn a_panicking_job_fails_alone_and_the_worker_goes_on(pool: PgPool) {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let mut worker = sync_engine::worker::Worker::new(pool.clone(), client_for(&sim, 0));
    worker.poll = Duration::from_millis(10);
    worker.register(
        "boom",
        std::sync::Arc::new(|_| Box::pin(async { panic!("bad record in the bank's data") })),
    );
    let ran = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = ran.clone();
    worker.register(
        "fine",
        std::sync::Arc::new(move |_| {
            let c = counter.clone();
            Box::pin(async move {
                c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok(())
            })
        }),
    );
    let boom = jobs::enqueue(&pool, "boom", serde_json::json!({}), None)
        .await
        .unwrap()
        .unwrap();
    sqlx::query("UPDATE jobs SET max_attempts = 1 WHERE id = $1")
        .bind(boom)
        .execute(&pool)
        .await
        .unwrap();
    for _ in 0..3 {
        jobs::enqueue(&pool, "fine", serde_json::json!({}), None)
            .await
            .unwrap();
    }
    let (stop, rx) = tokio::sync::watch::channel(false);
    let run = tokio::spawn(worker.run(1, rx, Duration::from_millis(100)));
    for _ in 0..200 {
        if ran.load(std::sync::atomic::Ordering::SeqCst) == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.send(true).unwrap();
    run.await.unwrap();
    assert_eq!(
        ran.load(std::sync::atomic::Ordering::SeqCst),
        3,
        "the loop went on after the panic"
    );
    let (status, error): (String, String) =
        sqlx::query_as("SELECT status, last_error FROM jobs WHERE id = $1")
            .bind(boom)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(status, "dead");
    assert!(
        error.contains("panicked: bad record in the bank's data"),
        "{error}"
    );
    assert_eq!(jobs::dead(&pool, 10).await.unwrap().len(), 1);
    assert!(jobs::rerun(&pool, boom).await.unwrap());
    let (status, attempts): (String, i32) =
        sqlx::query_as("SELECT status, attempts FROM jobs WHERE id = $1")
            .bind(boom)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((status.as_str(), attempts), ("queued", 0));
    assert!(
        !jobs::rerun(&pool, boom).await.unwrap(),
        "only dead or failed jobs are re-run"
    );
}

/// A worker that dies mid-job again and again: each expired-lease claim counts as an
/// attempt, and past the cap the job is dead instead of first in line forever.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn a_job_whose_worker_keeps_dying_ends_dead(pool: PgPool) {
    let id = jobs::enqueue(&pool, "sync_connection", serde_json::json!({}), None)
        .await
        .unwrap()
        .unwrap();
    let other = jobs::enqueue_at(
        &pool,
        "refresh_catalogue",
        serde_json::json!({}),
        None,
        Duration::from_millis(1),
    )
    .await
    .unwrap()
    .unwrap();
    let max: i32 = sqlx::query_scalar("SELECT max_attempts FROM jobs WHERE id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
    for attempt in 1..=max {
        // The worker claims it and dies: its lease runs out.
        let j = jobs::claim(&pool, &format!("w{attempt}"), Duration::from_millis(30))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((j.id, j.attempts), (id, attempt));
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    let next = jobs::claim(&pool, "w-last", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        next.id, other,
        "the dead job is not claimed again; other work goes on"
    );
    let (status, error): (String, String) =
        sqlx::query_as("SELECT status, last_error FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(status, "dead");
    assert!(
        error.contains(&format!("lease expired after attempt {max} of {max}")),
        "{error}"
    );
}

/// Two syncs that both believe they hold the lock (one lost it) see the same pending line:
/// it is consumed by at most one posted transaction; the other becomes a line of its own.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn a_pending_line_is_consumed_by_at_most_one_posted_line(pool: PgPool) {
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
    // Both "syncs" loaded the pending lines before either wrote.
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
    assert_eq!(
        (o1.updated, o1.inserted),
        (1, 0),
        "the first consumes the pending line"
    );
    assert_eq!(
        (o2.updated, o2.inserted),
        (0, 1),
        "the second finds it consumed and gets its own line"
    );
    let from_pending: Vec<Option<String>> =
        sqlx::query_scalar("SELECT pending_transaction_id FROM statement_lines WHERE saltedge_transaction_id IN ('900000000000000101', '900000000000000102') ORDER BY saltedge_transaction_id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(from_pending, [Some("900000000000000100".to_string()), None]);
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

/// A fetch whose request never left (no connection) gives its slot back: the next fetch
/// does not wait for it.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn an_unsent_fetch_gives_its_slot_back(pool: PgPool) {
    let gate = std::sync::Arc::new(sync_engine::fetch_limit::PgFetchGate::new(
        pool.clone(),
        "global",
        1,
    ));
    // Nothing listens on port 9.
    let mut cfg =
        saltedge_client::ClientConfig::new("http://127.0.0.1:9/api/v5/".parse().unwrap(), "a", "b");
    cfg.fetch_gate = Some(gate.clone());
    cfg.max_retries = 0;
    let dead = Client::new(cfg).unwrap();
    let req = saltedge_client::models::RefreshConnectSession {
        connection_id: "1".into(),
        ..Default::default()
    };
    let started = std::time::Instant::now();
    for _ in 0..3 {
        assert!(dead.refresh_connect_session(&req).await.is_err());
    }
    let wait: f64 = sqlx::query_scalar("SELECT extract(epoch FROM next_slot - clock_timestamp())::float8 FROM fetch_slots WHERE scope = 'global'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "unsent fetches did not queue behind each other: {:?}",
        started.elapsed()
    );
    assert!(
        wait <= 0.05,
        "no slot is held by a request that never left ({wait} s)"
    );
}

/// Retention deletes by age in batches and keeps what must stay: unprocessed callbacks,
/// unfinished jobs and each connection's newest sync run.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn retention_prunes_old_records_in_batches(pool: PgPool) {
    let f = fixture(&pool, |_| {}).await;
    for _ in 0..3 {
        sync(&pool, &f, false).await;
    }
    sqlx::query("UPDATE sync_runs SET started_at = started_at - interval '400 days', finished_at = finished_at - interval '400 days'").execute(&pool).await.unwrap();
    for i in 0..25 {
        sync_engine::inbox::store(&pool, "notify", &format!("{{\"n\":{i}}}"), None, None)
            .await
            .unwrap();
    }
    sqlx::query(
        "UPDATE callback_inbox SET processed_at = now() - interval '40 days' WHERE id % 5 <> 0",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("UPDATE jobs SET status = 'done', finished_at = now() - interval '20 days' WHERE id % 2 = 0").execute(&pool).await.unwrap();
    let (jobs_before, open_jobs): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(*) FILTER (WHERE finished_at IS NULL) FROM jobs")
            .fetch_one(&pool)
            .await
            .unwrap();
    let r = sync_engine::retention::Retention {
        batch: 7,
        pause: Duration::ZERO,
        ..Default::default()
    };
    let pruned = sync_engine::retention::prune(&pool, &r).await.unwrap();
    assert_eq!(pruned.callbacks, 20);
    assert_eq!(pruned.jobs as i64, jobs_before - open_jobs);
    assert_eq!(
        pruned.sync_runs, 2,
        "the newest run of the connection stays"
    );
    let left: (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM callback_inbox), (SELECT count(*) FROM jobs), (SELECT count(*) FROM sync_runs)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(left, (5, open_jobs, 1));
    assert_eq!(
        sync_engine::retention::prune(&pool, &r).await.unwrap(),
        Default::default(),
        "nothing more to prune"
    );
}

/// One scheduler tick at a time across replicas: a tick that finds another running skips.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn two_replicas_scheduling_at_once_run_one_tick(pool: PgPool) {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let client = client_for(&sim, 0);
    let cfg = ScheduleConfig::default();
    // Replica A holds the tick lock (as if mid-tick); replica B's tick skips.
    let mut a = pool.acquire().await.unwrap();
    sqlx::query("SELECT pg_advisory_lock(x'62616e6b73796e63'::bigint)")
        .execute(&mut *a)
        .await
        .unwrap();
    assert_eq!(
        scheduler::tick_once(&pool, &client, &cfg, chrono::Utc::now())
            .await
            .unwrap(),
        None
    );
    sqlx::query("SELECT pg_advisory_unlock(x'62616e6b73796e63'::bigint)")
        .execute(&mut *a)
        .await
        .unwrap();
    assert_eq!(
        scheduler::tick_once(&pool, &client, &cfg, chrono::Utc::now())
            .await
            .unwrap(),
        Some(0)
    );
    // Two at once: exactly one runs.
    let (p1, p2, c1, c2) = (pool.clone(), pool.clone(), client.clone(), client.clone());
    let (x, y) = tokio::join!(
        async move {
            scheduler::tick_once(&p1, &c1, &ScheduleConfig::default(), chrono::Utc::now())
                .await
                .unwrap()
        },
        async move {
            scheduler::tick_once(&p2, &c2, &ScheduleConfig::default(), chrono::Utc::now())
                .await
                .unwrap()
        },
    );
    assert!(x.is_some() || y.is_some());
}

/// The catch-up lists each customer at most once a day, a slice per tick.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn catch_up_lists_each_customer_once_a_day_spread_over_ticks(pool: PgPool) {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let client = client_for(&sim, 0);
    for i in 0..10 {
        let (_, se) = sim.seed_connection(&format!("c{i}@x.example"), "fake_client_xf");
        let company = companies::create(&pool, &format!("C{i}")).await.unwrap().id;
        connections::adopt(&pool, &client, company, &se)
            .await
            .unwrap();
    }
    // 4 ticks a day: 3 customers per tick (ceil(10 / 4)).
    let cfg = ScheduleConfig {
        tick: Duration::from_secs(6 * 3600),
        fetches_per_second: 0,
        ..Default::default()
    };
    let start = chrono::Utc::now();
    let mut per_tick = vec![];
    for k in 0..8 {
        scheduler::tick(&pool, &client, &cfg, start + chrono::Duration::hours(6 * k))
            .await
            .unwrap();
        per_tick.push(run_listings(&pool, &client, &cfg).await);
    }
    assert_eq!(
        per_tick,
        [3, 3, 3, 1, 3, 3, 3, 1],
        "each customer once a day, spread over the ticks"
    );
    let lists = sim
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/connections"))
        .count();
    assert_eq!(lists, 20, "two days, ten customers");
}

/// Every tenant table carries its company (row-level security or distributing by company
/// needs no redesign); the global ones (catalogue, queue, inbox, secrets) do not.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn every_tenant_table_carries_company_id(pool: PgPool) {
    for t in [
        "saltedge_customers",
        "connections",
        "journals",
        "bank_accounts",
        "sync_runs",
        "statement_lines",
        "quarantined_records",
        "refresh_attempts",
    ] {
        let nullable: Option<String> = sqlx::query_scalar(
            "SELECT is_nullable FROM information_schema.columns WHERE table_name = $1 AND column_name = 'company_id'",
        )
        .bind(t)
        .fetch_optional(&pool)
        .await
        .unwrap();
        assert_eq!(nullable.as_deref(), Some("NO"), "{t}.company_id");
    }
}
