//! What every topic of these tests shares: fixtures and helpers.
// Re-exported for the topic modules: each takes what it needs.
#![allow(unused_imports)]

pub use chrono::{Datelike, NaiveDate};
pub use rust_decimal::Decimal;
pub use saltedge_client::models::{Transaction, TransactionStatus};
pub use saltedge_client::Client;
pub use saltedge_sim::{FaultAction, FaultRule, SimConfig, Simulator};
pub use sqlx::PgPool;
pub use std::collections::{BTreeMap, HashMap};
pub use std::time::Duration;
pub use sync_engine::ingest::lines::{self, AccountTarget, DedupOptions, LineStatus};
pub use sync_engine::jobs;
pub use sync_engine::schedule::{self as scheduler, Candidate, ScheduleConfig, Verdict};
pub use sync_engine::{
    catalogue, companies, connections, mapping, sync_connection, SyncError, SyncOptions,
};
pub use uuid::Uuid;

pub struct Fixture {
    pub sim: Simulator,
    pub client: Client,
    pub company: Uuid,
    pub conn: Uuid,
    pub se_conn: String,
}

pub fn client_for(sim: &Simulator, retries: u32) -> Client {
    banksync_testkit::client_with(sim, |c| c.max_retries = retries)
}

pub async fn fixture(pool: &PgPool, f: impl FnOnce(&mut SimConfig)) -> Fixture {
    fixture_on(pool, 5, f).await
}

/// [`fixture`] with the client speaking Salt Edge API `version` (5 or 6).
pub async fn fixture_on(pool: &PgPool, version: u8, f: impl FnOnce(&mut SimConfig)) -> Fixture {
    let mut cfg = SimConfig::default();
    f(&mut cfg);
    let sim = Simulator::start(cfg).await.unwrap();
    let client = if version == 6 {
        let mut c = banksync_testkit::signed_config_v6(&sim);
        c.max_retries = 3;
        Client::new(c).unwrap()
    } else {
        client_for(&sim, 3)
    };
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

pub async fn sync(pool: &PgPool, f: &Fixture, full: bool) -> sync_engine::SyncReport {
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

/// Salt Edge id → "posted" for the connection's statement lines and "pending" for its
/// open pending transactions (out of the books), asserting no id appears twice.
pub async fn lines(pool: &PgPool, conn: Uuid) -> BTreeMap<String, String> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT l.saltedge_transaction_id, 'posted' FROM statement_lines l JOIN bank_accounts a ON a.id = l.bank_account_id
         WHERE a.connection_id = $1
         UNION ALL
         SELECT p.saltedge_transaction_id, 'pending' FROM pending_transactions p JOIN bank_accounts a ON a.id = p.bank_account_id
         WHERE a.connection_id = $1 AND p.state = 'pending'",
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

/// Every posted (non-duplicated) transaction is exactly one statement line and every
/// current pending one exactly one open pending transaction; nothing else is.
pub async fn assert_matches_truth(pool: &PgPool, f: &Fixture) {
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

// ----- helpers for direct page writes -----

pub async fn target_of(pool: &PgPool, conn: Uuid) -> (String, AccountTarget) {
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
            relinked: false,
        },
    )
}

pub fn tx(id: &str, account: &str, date: &str, amount: &str, description: &str) -> Transaction {
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
        extra: serde_json::json!({ "payee": "Bean There" }).into(),
        created_at: None,
        updated_at: None,
    }
}

/// `txs` in the currency of `target`'s account.
pub fn in_currency_of(target: &(String, AccountTarget), txs: Vec<Transaction>) -> Vec<Transaction> {
    txs.into_iter()
        .map(|mut t| {
            t.currency_code = target.1.currency.clone();
            t
        })
        .collect()
}

pub async fn write(
    pool: &PgPool,
    f: &Fixture,
    target: &(String, AccountTarget),
    txs: Vec<Transaction>,
) -> lines::PageOutcome {
    let run = sync_engine::runs::start(pool, f.company, f.conn, "test", None)
        .await
        .unwrap();
    let targets = HashMap::from([target.clone()]);
    let txs = in_currency_of(target, txs);
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

/// Runs `f` until the fetch budget has a slot for it: a yielding fetch refused for want of
/// one is tried again when told, as the worker does with its job.
pub async fn when_free<T, F, Fut>(mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = sync_engine::error::Result<T>>,
{
    loop {
        match f().await {
            Err(e) if e.retry_after().is_some() => {
                tokio::time::sleep(e.retry_after().unwrap()).await
            }
            r => return r.unwrap(),
        }
    }
}

/// Runs the queued catch-up listings as a worker would.
pub async fn run_listings(
    pool: &PgPool,
    client: &Client,
    cfg: &sync_engine::schedule::ScheduleConfig,
) -> usize {
    let queued: Vec<(i64, String)> = sqlx::query_as("SELECT id, payload->>'customer_id' FROM jobs WHERE kind = 'list_customer' AND status = 'queued'")
        .fetch_all(pool)
        .await
        .unwrap();
    for (job, customer) in &queued {
        when_free(|| sync_engine::schedule::list_customer(pool, client, cfg, customer)).await;
        sqlx::query("DELETE FROM jobs WHERE id = $1")
            .bind(job)
            .execute(pool)
            .await
            .unwrap();
    }
    queued.len()
}

// ----- fault matrix: every case ends with the lines equal to the bank's ground truth -----

/// Runs syncs until one succeeds (a scheduler would), at most `tries`.
pub async fn sync_until_ok(pool: &PgPool, client: &Client, conn: Uuid, tries: usize) -> usize {
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

pub async fn matrix_fixture(pool: &PgPool) -> Fixture {
    matrix_fixture_on(pool, 5).await
}

/// The fault matrix's fixture, the client speaking Salt Edge API `version`.
pub async fn matrix_fixture_on(pool: &PgPool, version: u8) -> Fixture {
    fixture_on(pool, version, |c| {
        c.data.transactions_per_account = 1200;
        c.data.pending_per_account = 3;
    })
    .await
}

/// (line id, Salt Edge id, flagged-of, rekeyed_from) of the connection's posted lines.
pub async fn review_rows(
    pool: &PgPool,
    conn: Uuid,
) -> Vec<(i64, String, Option<i64>, Option<String>)> {
    sqlx::query_as(
        "SELECT l.id, l.saltedge_transaction_id, l.suspect_duplicate_of, l.rekeyed_from FROM statement_lines l
         JOIN bank_accounts a ON a.id = l.bank_account_id WHERE a.connection_id = $1 ORDER BY l.id",
    )
    .bind(conn)
    .fetch_all(pool)
    .await
    .unwrap()
}
