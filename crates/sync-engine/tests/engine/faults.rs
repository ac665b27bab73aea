//! The fault matrix: Salt Edge and Postgres failing mid-sync; every case ends on the simulator's ground truth.

use super::support::*;

#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn fault_matrix_500s_and_429s_mid_pagination(pool: PgPool) {
    errors_mid_pagination(pool, 5).await;
}

/// The same on Salt Edge API v6 (its pending list is `transactions?pending=true`, so the
/// faults hit it too).
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn fault_matrix_500s_and_429s_mid_pagination_v6(pool: PgPool) {
    errors_mid_pagination(pool, 6).await;
}

async fn errors_mid_pagination(pool: PgPool, version: u8) {
    let f = matrix_fixture_on(&pool, version).await;
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
    timeouts_mid_pagination(pool, 5).await;
}

#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn fault_matrix_timeouts_and_drops_mid_pagination_v6(pool: PgPool) {
    timeouts_mid_pagination(pool, 6).await;
}

async fn timeouts_mid_pagination(pool: PgPool, version: u8) {
    let f = matrix_fixture_on(&pool, version).await;
    let mut cfg = if version == 6 {
        banksync_testkit::signed_config_v6(&f.sim)
    } else {
        banksync_testkit::signed_config(&f.sim)
    };
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
