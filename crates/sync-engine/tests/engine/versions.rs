//! Moving an installation from Salt Edge API v5 to v6: each connection is checked at Salt
//! Edge (`connections::version_check`); those that carry over go on syncing through v6 with
//! nothing imported twice; those Salt Edge no longer knows are reported for linking again.

use super::support::*;
use sync_engine::connections::{self, Carries};

#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn moving_from_v5_to_v6_loses_and_doubles_nothing(pool: PgPool) {
    let f = fixture(&pool, |c| c.data.reissued_per_fetch = 0).await;
    sync(&pool, &f, false).await;
    let before = lines(&pool, f.conn).await;
    assert!(!before.is_empty());

    let v6 = Client::new(banksync_testkit::signed_config_v6(&f.sim)).unwrap();
    let checks = connections::version_check(&pool, &v6).await.unwrap();
    assert_eq!(checks.len(), 1);
    assert_eq!(
        checks[0].carries,
        Carries::Over,
        "the simulator keeps ids across versions"
    );

    // Syncs go on through v6: the whole history again is all duplicates; new activity arrives.
    let full = SyncOptions {
        full: true,
        ..Default::default()
    };
    let again = sync_connection(&pool, &v6, f.conn, &full).await.unwrap();
    assert_eq!((again.run.inserted, again.run.updated), (0, 0));
    assert_eq!(lines(&pool, f.conn).await, before);
    f.sim.advance(&f.se_conn);
    let next = sync_connection(&pool, &v6, f.conn, &SyncOptions::default())
        .await
        .unwrap();
    assert!(next.run.inserted > 0);
    assert_matches_truth(&pool, &f).await;

    // A connection Salt Edge does not know under v6 is reported for linking again.
    f.sim.edit_connection(&f.se_conn, |rec| rec.removed = true);
    let checks = connections::version_check(&pool, &v6).await.unwrap();
    assert!(
        matches!(&checks[0].carries, Carries::LinkAgain { why } if why.contains("does not know")),
        "{checks:?}"
    );
    // And one that cannot be asked is not guessed at.
    f.sim.set_faults(vec![
        FaultRule::new(FaultAction::Status(500)).on_path("/connections")
    ]);
    let checks = connections::version_check(
        &pool,
        &Client::new({
            let mut c = banksync_testkit::signed_config_v6(&f.sim);
            c.max_retries = 0;
            c
        })
        .unwrap(),
    )
    .await
    .unwrap();
    assert!(
        matches!(checks[0].carries, Carries::Unknown { .. }),
        "{checks:?}"
    );
}
