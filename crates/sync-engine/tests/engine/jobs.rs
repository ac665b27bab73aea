//! The job queue and the worker: exactly once, leases, retries, panics, dead jobs, retention.

use super::support::*;

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
    assert_eq!(jobs::dead(&pool, None, 10).await.unwrap().len(), 1);
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

/// Retention deletes by age in batches and keeps what must stay: unprocessed callbacks,
/// unfinished jobs and each connection's newest sync run.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn retention_prunes_old_records_in_batches(pool: PgPool) {
    let f = fixture(&pool, |_| {}).await;
    let permissive = sync_engine::webhooks::TargetPolicy {
        allow_http: true,
        allow_private_targets: true,
    };
    sync_engine::webhooks::endpoints::create(
        &pool,
        f.company,
        "http://127.0.0.1:9/x",
        "",
        &[],
        &sync_engine::webhooks::Rules {
            policy: permissive,
            max_endpoints: 0,
            key: sync_engine::webhooks::SecretKey::development(),
        },
    )
    .await
    .unwrap();
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
    for _ in 0..6 {
        sqlx::query("SELECT webhook_emit($1, NULL, 'sync.failed', '{}')")
            .bind(f.company)
            .execute(&pool)
            .await
            .unwrap();
    }
    sqlx::query("UPDATE webhook_events SET created_at = now() - interval '40 days'")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE webhook_deliveries SET state = 'delivered' WHERE event_id % 2 = 0")
        .execute(&pool)
        .await
        .unwrap();
    let (events, owed): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(*) FILTER (WHERE id % 2 = 1) FROM webhook_events")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(events > 6, "the syncs emitted events too");
    let pruned = sync_engine::retention::prune(&pool, &r).await.unwrap();
    assert_eq!(
        pruned.webhook_events as i64,
        events - owed,
        "delivered ones only"
    );
    let left_events: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left_events, owed, "events still owed stay");
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

/// Callbacks stored in groups: a burst with repeats inside it and across it stores each
/// distinct callback once with one job, answers the first of each "accepted" and every
/// repeat "duplicate"; a group holding a row Postgres refuses (a NUL character) fails only
/// that callback, the others of its group are stored.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn grouped_callback_storage_accepts_each_once_and_isolates_a_bad_row(pool: PgPool) {
    use sync_engine::inbox::{InboxWriter, Stored};
    let writer = InboxWriter::start(pool.clone(), 2);
    // 300 sends of 100 distinct bodies, all at once.
    let sends = (0..300).map(|i| {
        let w = writer.clone();
        async move {
            w.store(
                "notify",
                &format!("{{\"n\":{}}}", i % 100),
                Some("c1"),
                None,
            )
            .await
        }
    });
    let answers = futures::future::join_all(sends).await;
    let accepted = answers
        .iter()
        .filter(|a| matches!(a, Ok(Stored::Accepted)))
        .count();
    let duplicates = answers
        .iter()
        .filter(|a| matches!(a, Ok(Stored::Duplicate)))
        .count();
    assert_eq!((accepted, duplicates), (100, 200));
    let (rows, distinct, jobs): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM callback_inbox), (SELECT count(DISTINCT body) FROM callback_inbox),
                (SELECT count(*) FROM jobs WHERE kind = 'process_callback')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((rows, distinct, jobs), (100, 100, 100));

    // One bad row among good ones, sent together.
    let sends = (0..40).map(|i| {
        let w = writer.clone();
        async move {
            let body = if i == 7 {
                "{\"n\":\"\u{0}\"}".to_string()
            } else {
                format!("{{\"m\":{i}}}")
            };
            w.store("notify", &body, None, None).await
        }
    });
    let answers = futures::future::join_all(sends).await;
    assert!(answers[7].is_err(), "{:?}", answers[7]);
    assert_eq!(
        answers
            .iter()
            .filter(|a| matches!(a, Ok(Stored::Accepted)))
            .count(),
        39
    );
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM callback_inbox")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 139);
}

/// A group whose commit is stuck (here: behind another transaction's uncommitted row with
/// the same identity) does not hold the callbacks that arrive after it: after
/// `InboxWriter::STALL` another group commits beside it. The stuck one is answered once the
/// other transaction ends.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn a_stuck_group_commit_does_not_hold_later_callbacks(pool: PgPool) {
    use std::time::Duration;
    use sync_engine::inbox::{InboxWriter, Stored};
    let writer = InboxWriter::start(pool.clone(), 2);
    let mut other = pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO callback_inbox (identity, kind, body)
         VALUES (encode(sha256(convert_to('notify|{\"n\":1}', 'UTF8')), 'hex'), 'notify', '{\"n\":1}')",
    )
    .execute(&mut *other)
    .await
    .unwrap();
    let stuck = tokio::spawn({
        let w = writer.clone();
        async move { w.store("notify", "{\"n\":1}", None, None).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !stuck.is_finished(),
        "the first callback waits for the other transaction"
    );
    let later = tokio::time::timeout(
        Duration::from_secs(5),
        writer.store("notify", "{\"n\":2}", None, None),
    )
    .await
    .expect("a later callback is answered while the first group is stuck");
    assert_eq!(later.unwrap(), Stored::Accepted);
    assert!(!stuck.is_finished());
    other.commit().await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), stuck)
        .await
        .expect("answered once the other transaction ends")
        .unwrap();
    assert_eq!(
        first.unwrap(),
        Stored::Duplicate,
        "the other transaction stored it first"
    );
}

/// The pool hands out a busy connection without a ping, and pings one that sat idle: a
/// connection Postgres ended while it was idle in the pool is replaced, not handed out
/// broken.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn an_idle_connection_that_died_is_replaced(
    _: sqlx::postgres::PgPoolOptions,
    opts: sqlx::postgres::PgConnectOptions,
) {
    use sqlx::Connection;
    use std::time::Duration;
    let pool = sync_engine::store::pool::options(Duration::from_millis(100))
        .max_connections(1)
        .connect_with(opts.clone())
        .await
        .unwrap();
    let first: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&pool)
        .await
        .unwrap();
    // Ended by Postgres while idle in the pool.
    let mut admin = sqlx::PgConnection::connect_with(&opts).await.unwrap();
    let ended: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(first)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert!(ended);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&pool)
        .await
        .expect("the dead connection was pinged and replaced");
    assert_ne!(first, second);
}

/// Jobs are claimed fairly across companies: while one company's job runs, another
/// company's job is claimed before that company's thousand queued ones; the service's own
/// jobs always qualify; with nothing else to do, a company runs a second job at once.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn jobs_are_claimed_fairly_across_companies(pool: PgPool) {
    use sync_engine::jobs::Owner;
    let (noisy, quiet) = (Uuid::new_v4(), Uuid::new_v4());
    let enqueue = |owner: Owner<'static>| {
        let pool = pool.clone();
        async move {
            jobs::enqueue_owned(
                &pool,
                "test",
                serde_json::json!({}),
                None,
                Duration::ZERO,
                owner,
            )
            .await
            .unwrap()
            .unwrap()
        }
    };
    let mut noisy_ids = vec![];
    for _ in 0..1000 {
        noisy_ids.push(enqueue(Owner::Company(noisy)).await);
    }
    let quiet_id = enqueue(Owner::Company(quiet)).await;
    let service_id = enqueue(Owner::Service).await;
    let lease = Duration::from_secs(30);
    let first = jobs::claim(&pool, "w1", lease).await.unwrap().unwrap();
    assert_eq!(first.id, noisy_ids[0], "the oldest job first");
    let second = jobs::claim(&pool, "w2", lease).await.unwrap().unwrap();
    assert_eq!(
        second.id, quiet_id,
        "the quiet company's one job before the noisy company's 999 others"
    );
    let third = jobs::claim(&pool, "w3", lease).await.unwrap().unwrap();
    assert_eq!(
        third.id, service_id,
        "the service's own work is never held back"
    );
    let fourth = jobs::claim(&pool, "w4", lease).await.unwrap().unwrap();
    assert_eq!(
        fourth.id, noisy_ids[1],
        "nothing else to do: the noisy company's next job runs beside its first"
    );
}

/// Catch-up syncs queued in a batch: one run and one job per connection, and a connection
/// that already has a sync queued keeps that one (no second job, no orphan run).
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn syncs_are_queued_in_batches_without_doubling_a_queued_one(pool: PgPool) {
    let f = fixture(&pool, |_| {}).await;
    let (_, se) = f.sim.seed_connection("acme", "fake_client_xf");
    let second = sync_engine::connections::adopt(&pool, &f.client, f.company, &se)
        .await
        .unwrap()
        .id;
    let existing = sync_engine::jobs::queue_sync(&pool, f.company, f.conn, "manual")
        .await
        .unwrap();
    let queued = sync_engine::jobs::queue_syncs(
        &pool,
        &[(f.company, f.conn), (f.company, second)],
        "catch_up",
    )
    .await
    .unwrap();
    assert_eq!(queued, 1);
    let runs: Vec<(Uuid, Option<Uuid>, String)> = sqlx::query_as(
        "SELECT id, connection_id, trigger FROM sync_runs WHERE status = 'queued' ORDER BY trigger",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(runs[0].1, Some(second));
    assert_eq!(runs[0].2, "catch_up");
    assert_eq!((runs[1].0, runs[1].1), (existing, Some(f.conn)));
    let jobs: Vec<(String, Option<Uuid>)> = sqlx::query_as(
        "SELECT payload->>'run_id', company_id FROM jobs WHERE kind = 'sync_connection' ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        jobs,
        vec![
            (existing.to_string(), Some(f.company)),
            (runs[0].0.to_string(), Some(f.company))
        ]
    );
}
