//! The tests' clock (`banksync_testkit::clock`) is the one the engine, the simulator and the
//! database use: under the date matrix (`scripts/date-matrix`) all three are at the pinned
//! instant, or every date-dependent test there would pass at the real date and prove nothing.

use sqlx::PgPool;

#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn the_process_and_the_database_share_the_test_clock(pool: PgPool) {
    // today() itself fails when the date matrix pinned a day the clock does not show.
    let today = banksync_testkit::clock::today();
    let db_now: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&pool)
        .await
        .unwrap();
    let ours = banksync_testkit::clock::now();
    assert!(
        (ours - db_now).num_seconds().abs() < 60,
        "the database's now() {db_now} is not the tests' {ours}"
    );
    if let Some(day) = banksync_testkit::clock::pinned_day() {
        assert_eq!(
            db_now.date_naive(),
            day,
            "the database is not at the pinned day"
        );
    }
    // The simulator's clock is the same one: today's transactions are dated today.
    let sim = saltedge_sim::Simulator::start(saltedge_sim::SimConfig::default())
        .await
        .unwrap();
    assert_eq!(sim.today(), today);
}
