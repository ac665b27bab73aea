//! `banksync bench scale --companies N --connections M`: the scheduler at scale. Seeds a
//! scratch database and the simulator with N companies (one Salt Edge customer each) and M
//! connections across countries, then runs a simulated day on one clock: Salt Edge's
//! nightly fetch with its callbacks (each makes banksync re-read the connection, as the
//! callback handlers do), the scheduler's ticks, the catch-up listings and refreshes they
//! queue. Syncs are not run: the figure is Salt Edge calls *beyond syncs*. Prints JSON:
//! calls per connection per day, tick duration p50/p99, database size.

use std::time::{Duration, Instant};

use futures::StreamExt;

use saltedge_sim::{DataConfig, SimConfig, Simulator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sync_engine::schedule::{self as scheduler, ScheduleConfig};
use uuid::Uuid;

#[derive(clap::Args)]
pub struct ScaleArgs {
    #[arg(long, default_value_t = 10_000)]
    pub companies: usize,
    #[arg(long, default_value_t = 20_000)]
    pub connections: usize,
    /// The scheduler's tick interval during the simulated day.
    #[arg(long, default_value_t = 300)]
    pub tick_secs: u64,
    /// Keep the scratch database afterwards.
    #[arg(long)]
    pub keep: bool,
}

pub async fn run(a: ScaleArgs) -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: debug build; figures are meaningful only with --release (scripts/dev bench)"
        );
    }
    anyhow::ensure!(
        a.companies >= 1 && a.connections >= a.companies,
        "--connections must be at least --companies (one customer each)"
    );
    let keep = a.keep;
    let report = super::scratch::with_scratch_db("banksync_scale", keep, |opts| async move {
        scale(&opts, &a).await
    })
    .await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn scale(opts: &PgConnectOptions, a: &ScaleArgs) -> anyhow::Result<serde_json::Value> {
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .connect_with(opts.clone())
        .await?;
    sync_engine::MIGRATOR.run(&pool).await?;
    let data = DataConfig {
        accounts_per_connection: 1,
        transactions_per_account: 0,
        pending_per_account: 0,
        twins_per_account: 0,
        reissued_per_fetch: 0,
        new_transactions_per_fetch: 0,
        new_account_on_refresh_session: false,
        ..Default::default()
    };
    let sim = Simulator::start(SimConfig {
        data,
        ..Default::default()
    })
    .await?;
    let mut cfg = banksync_testkit::signed_config(&sim);
    cfg.fetches_per_second = 0;
    let client = saltedge_client::Client::new(cfg)?;
    sync_engine::catalogue::refresh(&pool, &client).await?;

    // The day starts at midnight UTC tomorrow; everything was last fetched the day before.
    let start = (chrono::Utc::now() + chrono::Duration::days(1))
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default()
        .and_utc();
    sim.set_clock(Some(start - chrono::Duration::hours(20)));
    eprintln!(
        "seeding {} companies and {} connections…",
        a.companies, a.connections
    );
    let seeding = Instant::now();
    let providers = [
        "fake_client_xf",
        "demobank_de",
        "demobank_gb",
        "demobank_us",
        "demobank_ro",
        "demobank_jp",
        "demobank_md",
    ];
    let mut rows: Vec<(usize, String, String, &str)> = Vec::with_capacity(a.connections);
    for i in 0..a.connections {
        let company = i % a.companies;
        let provider = providers[(i / a.companies) % providers.len()];
        let (customer, conn) =
            sim.seed_connection(&format!("scale-{company}@bench.example"), provider);
        rows.push((company, customer, conn, provider));
    }
    let company_ids: Vec<Uuid> = (0..a.companies).map(|_| Uuid::new_v4()).collect();
    let names: Vec<String> = (0..a.companies).map(|i| format!("Scale {i}")).collect();
    sqlx::query!(
        "INSERT INTO companies (id, name) SELECT * FROM UNNEST($1::uuid[], $2::text[])",
        &company_ids,
        &names
    )
    .execute(&pool)
    .await?;
    let mut customers: Vec<String> = vec![String::new(); a.companies];
    for (company, customer, _, _) in &rows {
        customers[*company] = customer.clone();
    }
    let idents: Vec<String> = (0..a.companies)
        .map(|i| format!("scale-{i}@bench.example"))
        .collect();
    let customer_rows: Vec<Uuid> = sqlx::query_scalar!("INSERT INTO saltedge_customers (company_id, saltedge_id, identifier) SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[]) RETURNING id", &company_ids, &customers, &idents)
    .fetch_all(&pool)
    .await?;
    // Salt Edge's last fetch was yesterday, and our sync ran a minute after it.
    let seen_at = start - chrono::Duration::hours(20);
    let synced_at = seen_at + chrono::Duration::minutes(1);
    let (mut c_company, mut c_customer, mut c_se, mut c_provider, mut c_country) =
        (vec![], vec![], vec![], vec![], vec![]);
    for (company, _, conn, provider) in &rows {
        c_company.push(company_ids[*company]);
        c_customer.push(customer_rows[*company]);
        c_se.push(conn.clone());
        c_provider.push(provider.to_string());
        c_country.push(provider.rsplit('_').next().unwrap_or("xf").to_uppercase());
    }
    sqlx::query!("INSERT INTO connections (company_id, customer_id, saltedge_id, provider_code, country_code, status, daily_refresh,
             stage, saltedge_last_success_at, last_synced_at)
         SELECT u.company, u.customer, u.se, u.provider, u.country, 'active', true, 'finish', $6, $7
         FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[]) AS u(company, customer, se, provider, country)", &c_company, &c_customer, &c_se, &c_provider, &c_country, seen_at, synced_at)
    .execute(&pool)
    .await?;
    // A database this size has had autovacuum's statistics long before; a fresh one has none.
    sqlx::query("ANALYZE").execute(&pool).await?;
    let seeding_s = seeding.elapsed().as_secs_f64();
    let company_of: std::collections::HashMap<String, Uuid> = rows
        .iter()
        .map(|(c, _, se, _)| (se.clone(), company_ids[*c]))
        .collect();

    // The simulated day.
    let requests_before = sim.requests().len();
    let schedule = ScheduleConfig {
        tick: Duration::from_secs(a.tick_secs),
        fetches_per_second: 0,
        ..Default::default()
    };
    let mut ticks_ms = vec![];
    let (mut refreshes, mut listings, mut nightly) = (0usize, 0usize, 0usize);
    let mut now = start;
    while now < start + chrono::Duration::days(1) {
        // The success callbacks' handlers (8 at once, as several replicas' workers would):
        // each re-reads its connection and queues a sync.
        let fetched = sim.run_nightly(now);
        nightly += fetched.len();
        futures::stream::iter(fetched)
            .map(|se| {
                let (pool, client, company) = (&pool, &client, company_of[&se]);
                async move {
                    let c = client.show_connection(&se).await?;
                    let local =
                        sync_engine::connections::upsert_from_saltedge(pool, company, &c).await?;
                    sync_engine::jobs::queue_sync(pool, local.company_id, local.id, "callback")
                        .await?;
                    anyhow::Ok(())
                }
            })
            .buffer_unordered(8)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<anyhow::Result<Vec<()>>>()?;
        let t = Instant::now();
        scheduler::tick(&pool, &client, &schedule, now).await?;
        ticks_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        let queued: Vec<(i64, String, serde_json::Value)> =
            sqlx::query!("SELECT id, kind, payload FROM jobs WHERE status = 'queued' AND kind IN ('list_customer', 'refresh_connection')")
                .fetch_all(&pool)
                .await?
                .into_iter()
                .map(|r| (r.id, r.kind, r.payload))
                .collect();
        for (id, kind, payload) in queued {
            if kind == "list_customer" {
                listings += 1;
                scheduler::list_customer(
                    &pool,
                    &client,
                    &schedule,
                    payload["customer_id"].as_str().unwrap_or_default(),
                )
                .await?;
            } else {
                refreshes += 1;
                let conn: Uuid = payload["connection_id"]
                    .as_str()
                    .unwrap_or_default()
                    .parse()?;
                scheduler::refresh(&pool, &client, &schedule, conn, now).await?;
            }
            sqlx::query!("DELETE FROM jobs WHERE id = $1", id)
                .execute(&pool)
                .await?;
        }
        // Syncs are outside this benchmark: the queued ones count as done a second after the
        // fetch that queued them (a sync always starts after Salt Edge's success it reads).
        sqlx::query!("WITH q AS (DELETE FROM jobs WHERE kind = 'sync_connection' RETURNING (payload->>'connection_id')::uuid AS c, (payload->>'run_id')::uuid AS r),
                  runs AS (UPDATE sync_runs SET status = 'succeeded', finished_at = $1 WHERE id IN (SELECT r FROM q))
             UPDATE connections SET last_synced_at = $1 + interval '1 second' WHERE id IN (SELECT c FROM q)", now)
        .execute(&pool)
        .await?;
        now += chrono::Duration::seconds(a.tick_secs as i64);
    }
    let calls = sim.requests().len() - requests_before;
    ticks_ms.sort_by(f64::total_cmp);
    let db_bytes: i64 =
        sqlx::query_scalar!(r#"SELECT pg_database_size(current_database()) AS "bytes!""#)
            .fetch_one(&pool)
            .await?;
    sim.stop().await;
    Ok(serde_json::json!({
        "companies": a.companies,
        "connections": a.connections,
        "ticks": ticks_ms.len(),
        "tick_ms_p50": percentile(&ticks_ms, 0.5),
        "tick_ms_p99": percentile(&ticks_ms, 0.99),
        "tick_ms_max": ticks_ms.last().copied().unwrap_or(0.0),
        "saltedge_calls_beyond_syncs": calls,
        "saltedge_calls_per_connection_per_day": calls as f64 / a.connections as f64,
        "nightly_fetches_by_saltedge": nightly,
        "catch_up_listings": listings,
        "refreshes_asked": refreshes,
        "database_mib": db_bytes as f64 / 1_048_576.0,
        "seeding_s": seeding_s,
    }))
}
