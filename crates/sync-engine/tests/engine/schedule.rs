//! The daily refresh rules, the tick, the catch-up and the fetch limit shared by replicas.
//!
//! Long because the refresh rules are a table-driven test and each replica scenario needs its own world.

use super::support::*;

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
        status: sync_engine::status::ConnectionStatus::Active,
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
            |c| c.status = sync_engine::status::ConnectionStatus::Inactive,
            "2026-01-15T01:30:00Z",
            Verdict::Inactive,
        ),
        (
            "invalid credentials",
            |c| {
                c.status = sync_engine::status::ConnectionStatus::Inactive;
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
        let mut cfg_c = banksync_testkit::signed_config(&sim);
        cfg_c.fetches_per_second = 0;
        cfg_c.fetch_gate = Some(std::sync::Arc::new(
            sync_engine::fetch_limit::PgFetchGate::new(p.clone(), "global", 2),
        ));
        let client = Client::new(cfg_c).unwrap();
        let cfg = cfg.clone();
        let chunk = chunk.to_vec();
        tasks.push(tokio::spawn(async move {
            for c in chunk {
                // Refreshes yield: one refused for want of a free slot is tried again when
                // told, as the worker does with its job.
                when_free(|| {
                    scheduler::refresh(&p, &client, &cfg, c, banksync_testkit::clock::now())
                })
                .await;
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
            scheduler::decide(&c, banksync_testkit::clock::now(), &cfg),
            Verdict::Due
        );
        c.next_refresh_possible_at = None;
        assert_eq!(
            scheduler::decide(&c, banksync_testkit::clock::now(), &cfg),
            Verdict::FetchedToday
        );
    }
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
    sqlx::query("UPDATE connections SET last_synced_at = now() - interval '2 days', last_sync_started_at = now() - interval '2 days'")
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
    scheduler::tick(&pool, &f.client, &anytime, banksync_testkit::clock::now())
        .await
        .unwrap();
    assert_eq!(
        run_listings(&pool, &f.client, &anytime).await,
        1,
        "the customer's connections are listed"
    );
    let queued = scheduler::tick(&pool, &f.client, &anytime, banksync_testkit::clock::now())
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
    scheduler::tick(&pool, &f.client, &anytime, banksync_testkit::clock::now())
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
    let noon_utc = (banksync_testkit::clock::now() + chrono::Duration::days(1))
        .date_naive()
        .and_hms_opt(12, 0, 0)
        .unwrap()
        .and_utc();
    assert_eq!(
        scheduler::decide(&c, noon_utc, &night_only),
        Verdict::OutsideWindow
    );
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
    let start = (banksync_testkit::clock::now() + D::days(1))
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
    // Counts of fetches, not their pace: the shared budget has tests of its own.
    let cfg = ScheduleConfig {
        fetches_per_second: 0,
        ..Default::default()
    };
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
    let now = banksync_testkit::clock::now();
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
        let mut cfg = banksync_testkit::signed_config(&sim);
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
    // The gate spaces the starts 0.6 s apart by the database's clock; the simulator stamps
    // them when they arrive, a few milliseconds of network and scheduling later, and that
    // delay varies: three starts span 1.2 s, and 100 ms of the margin are allowed here
    // (with the earlier 0.51 s spacing a first and a third arrived 0.963 s apart at a
    // stand-in). Without the gate the six arrive within a few milliseconds.
    for w in times.windows(3) {
        assert!(
            w[2] - w[0] >= 1100.0,
            "three fetch-starting requests within a second: {times:?}"
        );
    }
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
        scheduler::tick_once(&pool, &client, &cfg, banksync_testkit::clock::now())
            .await
            .unwrap(),
        None
    );
    sqlx::query("SELECT pg_advisory_unlock(x'62616e6b73796e63'::bigint)")
        .execute(&mut *a)
        .await
        .unwrap();
    assert_eq!(
        scheduler::tick_once(&pool, &client, &cfg, banksync_testkit::clock::now())
            .await
            .unwrap(),
        Some(0)
    );
    // Two at once: exactly one runs.
    let (p1, p2, c1, c2) = (pool.clone(), pool.clone(), client.clone(), client.clone());
    let (x, y) = tokio::join!(
        async move {
            scheduler::tick_once(
                &p1,
                &c1,
                &ScheduleConfig::default(),
                banksync_testkit::clock::now(),
            )
            .await
            .unwrap()
        },
        async move {
            scheduler::tick_once(
                &p2,
                &c2,
                &ScheduleConfig::default(),
                banksync_testkit::clock::now(),
            )
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
    let start = banksync_testkit::clock::now();
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

/// A lost callback is caught up even when Salt Edge's fetch ended in the same second as our
/// last sync: Salt Edge's `last_success_at` has whole seconds, our end of sync fractions
/// (seen: sync ended 01:49:52.070, fetch at 01:49:52, its transactions never imported).
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn a_fetch_in_the_second_our_sync_ended_is_caught_up(pool: PgPool) {
    let f = fixture(&pool, |_| {}).await;
    // The link's fetch was yesterday: today's sync reads it.
    f.sim.age_connection(&f.se_conn, chrono::Duration::days(1));
    sync(&pool, &f, false).await;
    let customer = f
        .client
        .show_connection(&f.se_conn)
        .await
        .unwrap()
        .customer_id;
    companies::save_customer(&pool, f.company, &customer, "acme", None, None)
        .await
        .unwrap();
    // Our sync ended at hh:mm:ss.070; Salt Edge's next fetch ended in that second after the
    // sync had read the connection, and reports hh:mm:ss. Its callback is lost.
    let ended: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT last_synced_at FROM connections WHERE id = $1")
            .bind(f.conn)
            .fetch_one(&pool)
            .await
            .unwrap();
    let second = chrono::SubsecRound::trunc_subsecs(ended, 0);
    sqlx::query(
        "UPDATE connections SET last_synced_at = $2, last_sync_started_at = $3 WHERE id = $1",
    )
    .bind(f.conn)
    .bind(second + chrono::Duration::milliseconds(70))
    .bind(second + chrono::Duration::milliseconds(20))
    .execute(&pool)
    .await
    .unwrap();
    f.sim.set_clock(Some(second));
    f.sim.advance(&f.se_conn);
    f.sim.set_clock(None);
    let defaults = ScheduleConfig::default();
    when_free(|| scheduler::list_customer(&pool, &f.client, &defaults, &customer)).await;
    let queued: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM jobs WHERE kind = 'sync_connection' AND status = 'queued' AND payload::text LIKE '%' || $1 || '%'",
    )
    .bind(f.conn.to_string())
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(queued, 1, "the fetch our sync did not read is caught up");
    // Once a sync that started in a later second has read it, nothing more is queued.
    sqlx::query("DELETE FROM jobs")
        .execute(&pool)
        .await
        .unwrap();
    let now = banksync_testkit::clock::now();
    let next_second = chrono::SubsecRound::trunc_subsecs(now, 0) + chrono::Duration::seconds(1);
    tokio::time::sleep((next_second - now).to_std().unwrap()).await;
    sync(&pool, &f, false).await;
    let defaults = ScheduleConfig::default();
    when_free(|| scheduler::list_customer(&pool, &f.client, &defaults, &customer)).await;
    let queued: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM jobs WHERE kind = 'sync_connection' AND status = 'queued'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(queued, 0, "caught up");
}

/// A fetch slot further away than the bound is not taken: the caller is told when to come
/// back at once instead of queueing behind everyone (one company's link loop cannot push
/// every other company's fetches past their timeouts).
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn a_slot_beyond_the_bound_is_refused_with_its_time(pool: PgPool) {
    use saltedge_client::{FetchGate, FetchPriority};
    let gate = sync_engine::fetch_limit::PgFetchGate::new(pool.clone(), "global", 1)
        .with_max_wait(Duration::from_millis(500));
    let started = std::time::Instant::now();
    gate.acquire(FetchPriority::Interactive)
        .await
        .expect("the first slot is now")
        .used();
    let retry_after = match gate.acquire(FetchPriority::Interactive).await {
        Ok(_) => panic!("a slot 1.2 s away was taken with a bound of 0.5 s"),
        Err(d) => d,
    };
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "refused without waiting: {:?}",
        started.elapsed()
    );
    assert!(
        retry_after > Duration::from_millis(300) && retry_after < Duration::from_millis(1100),
        "retry after the slot comes within the bound: {retry_after:?}"
    );
    // Refusing took nothing: the queue still ends one slot from the first.
    let away: f64 = sqlx::query_scalar("SELECT extract(epoch FROM next_slot - clock_timestamp())::float8 FROM fetch_slots WHERE scope = 'global'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(away < 1.25, "the refused caller took no slot ({away} s)");

    // Through the client: the request never leaves, the error says when.
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let mut cfg = saltedge_client::ClientConfig::new(
        format!("{}api/v5/", sim.base_url()).parse().unwrap(),
        "a",
        "b",
    );
    cfg.fetch_gate = Some(std::sync::Arc::new(gate));
    let client = Client::new(cfg).unwrap();
    let before = sim.requests().len();
    let e = client
        .refresh_connect_session(&saltedge_client::models::RefreshConnectSession {
            connection_id: "1".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(e, saltedge_client::Error::Busy { .. }), "{e:?}");
    assert_eq!(sim.requests().len(), before, "nothing was sent");
}

/// A caller cancelled while waiting for its slot (an HTTP request cut off) gives it back:
/// the next caller does not wait for a fetch that never happened.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn a_caller_cancelled_while_waiting_gives_its_slot_back(pool: PgPool) {
    use saltedge_client::{FetchGate, FetchPriority};
    let gate = sync_engine::fetch_limit::PgFetchGate::new(pool.clone(), "global", 1);
    gate.acquire(FetchPriority::Interactive)
        .await
        .unwrap()
        .used();
    let away = || async {
        sqlx::query_scalar::<_, f64>("SELECT extract(epoch FROM next_slot - clock_timestamp())::float8 FROM fetch_slots WHERE scope = 'global'")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    // The second slot is 1.2 s away (the queue would end 2.4 s away); the caller gives up
    // after 100 ms.
    assert!(
        tokio::time::timeout(
            Duration::from_millis(100),
            gate.acquire(FetchPriority::Interactive)
        )
        .await
        .is_err(),
        "still waiting when cut off"
    );
    for _ in 0..50 {
        if away().await < 1.5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let left = away().await;
    assert!(
        left < 1.5,
        "the cancelled caller's slot went back: the queue ends {left} s away"
    );
}

/// Each company has a quota of connect sessions inside the shared budget: a burst, then a
/// pace; over it is refused at once with when the next is allowed, and other companies are
/// not touched.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn connect_sessions_have_a_quota_per_company(pool: PgPool) {
    use saltedge_client::FetchPriority;
    use sync_engine::fetch_limit::take_company_quota;
    let (noisy, quiet) = (Uuid::new_v4(), Uuid::new_v4());
    // A whole quota: the first session is interactive, the rest of the burst yields.
    assert_eq!(
        take_company_quota(&pool, noisy, 30, 3).await.unwrap(),
        FetchPriority::Interactive
    );
    for _ in 0..2 {
        assert_eq!(
            take_company_quota(&pool, noisy, 30, 3).await.unwrap(),
            FetchPriority::Yielding
        );
    }
    let e = take_company_quota(&pool, noisy, 30, 3).await.unwrap_err();
    let after = e.retry_after().expect("busy, with a time");
    assert!(
        after >= Duration::from_secs(1) && after <= Duration::from_secs(3),
        "the next session in about one interval (2 s): {after:?}"
    );
    assert_eq!(e.category(), sync_engine::error::Category::Busy);
    assert_eq!(
        take_company_quota(&pool, quiet, 30, 3)
            .await
            .expect("another company's quota is its own"),
        FetchPriority::Interactive
    );
    // A quota refilled over an interval is whole again: interactive.
    let a = Uuid::new_v4();
    take_company_quota(&pool, a, 600, 2).await.unwrap();
    assert_eq!(
        take_company_quota(&pool, a, 600, 2).await.unwrap(),
        FetchPriority::Yielding
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(
        take_company_quota(&pool, a, 600, 2).await.unwrap(),
        FetchPriority::Interactive,
        "0.1 s a session: the quota is whole after 0.2 s"
    );
    // No quota configured: never refused.
    for _ in 0..10 {
        take_company_quota(&pool, noisy, 0, 0).await.unwrap();
    }
}

/// A job that needs a fetch slot beyond the bound is queued again for the slot's time,
/// without spending an attempt, and the worker goes on to other work.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn a_job_waiting_for_a_slot_is_queued_again_not_held(pool: PgPool) {
    use sync_engine::worker::Worker;
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let client = client_for(&sim, 0);
    let (_, se) = sim.seed_connection("busy@x.example", "fake_client_xf");
    let company = companies::create(&pool, "Busy").await.unwrap().id;
    connections::adopt(&pool, &client, company, &se)
        .await
        .unwrap();
    let customer: String = sqlx::query_scalar("SELECT saltedge_id FROM saltedge_customers LIMIT 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    // Someone else's backlog: the global budget's next slots are reserved 50 s ahead.
    sqlx::query("INSERT INTO fetch_slots (scope, next_slot, recent)
                 VALUES ('global', now() + interval '51.2 seconds', ARRAY[now() + interval '50 seconds', now() + interval '50 seconds'])
                 ON CONFLICT (scope) DO UPDATE SET next_slot = excluded.next_slot, recent = excluded.recent")
        .execute(&pool)
        .await
        .unwrap();
    sync_engine::jobs::queue(
        &pool,
        &sync_engine::jobs::ListCustomer {
            customer_id: customer,
        },
    )
    .await
    .unwrap();
    let (stop, rx) = tokio::sync::watch::channel(false);
    let mut w = Worker::new(pool.clone(), client.clone());
    w.poll = Duration::from_millis(20);
    let started = std::time::Instant::now();
    let handle = tokio::spawn(w.run(1, rx, Duration::from_millis(300)));
    let mut row = None;
    for _ in 0..150 {
        let r: (String, i32, f64, Option<String>) = sqlx::query_as(
            "SELECT status, attempts, extract(epoch FROM run_after - now())::float8, last_error
             FROM jobs WHERE kind = 'list_customer'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if r.3.is_some() {
            row = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.send(true).unwrap();
    handle.await.unwrap();
    let (status, attempts, run_in, why) = row.expect("the job was tried");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the worker did not sleep on the backlog"
    );
    assert_eq!((status.as_str(), attempts), ("queued", 0), "{why:?}");
    assert!(
        run_in > 50.0 && run_in < 52.0,
        "queued again for when a slot is free (the reservations leave the window at 51.2 s): {run_in}"
    );
}

/// The budget is a sliding window (two at once are within "two a second"), and yielding
/// fetches — background work, a company spending its burst — take only a slot free now
/// that leaves one to interactive ones: a link never queues behind them.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn yielding_fetches_leave_a_slot_to_interactive_ones(pool: PgPool) {
    use saltedge_client::{FetchGate, FetchPriority};
    let gate = sync_engine::fetch_limit::PgFetchGate::new(pool.clone(), "global", 2);
    let started = std::time::Instant::now();
    gate.acquire(FetchPriority::Yielding)
        .await
        .expect("an empty window: a yielding fetch takes a slot")
        .used();
    let retry = match gate.acquire(FetchPriority::Yielding).await {
        Ok(_) => panic!("a yielding fetch took the window's last slot"),
        Err(d) => d,
    };
    assert!(
        retry > Duration::from_millis(900) && retry <= Duration::from_millis(1200),
        "come back when the first leaves the 1.2 s window: {retry:?}"
    );
    gate.acquire(FetchPriority::Interactive)
        .await
        .expect("the kept slot")
        .used();
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "the interactive fetch did not wait: {:?}",
        started.elapsed()
    );
    // A third within the window waits for the first to leave it, whoever asks.
    gate.acquire(FetchPriority::Interactive)
        .await
        .unwrap()
        .used();
    assert!(
        started.elapsed() >= Duration::from_millis(1150),
        "two in any 1.2 s: {:?}",
        started.elapsed()
    );
    // A reservation ahead is never jumped by a yielding fetch.
    let g1 = sync_engine::fetch_limit::PgFetchGate::new(pool.clone(), "one", 1);
    g1.acquire(FetchPriority::Interactive).await.unwrap().used();
    let queued = tokio::spawn(async move {
        let s = g1.acquire(FetchPriority::Interactive).await;
        s.map(|s| s.used()).is_ok()
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let g2 = sync_engine::fetch_limit::PgFetchGate::new(pool.clone(), "one", 1);
    assert!(
        g2.acquire(FetchPriority::Yielding).await.is_err(),
        "a yielding fetch does not take a slot reserved by a waiting one"
    );
    assert!(queued.await.unwrap());
}
