//! `banksync bench daily`: what a night's sync costs as history grows. For each history size
//! (default 1,000 and 1,000,000 lines, in the same run and the same database), one account
//! is imported once, then synced `--days` times the way the scheduler does (incremental,
//! from the newest known id), each after the bank posted `--new` more transactions. Every
//! account has the same activity, `--new` transactions a day (its history spans
//! lines ÷ `--new` days): only the length of the history differs, not how many recent
//! transactions a night's listing re-reads in its overlap window. The imports are vacuumed
//! before the first night (an account imported long ago, not one whose import's
//! maintenance still runs beside it). Prints one JSON object: per size the median and best daily sync, and the ratio of the largest
//! size's median to the smallest's (target: ≤ 1.5, the bound). Run it in a release
//! build: `scripts/dev bench daily`.

use std::time::Instant;

use anyhow::bail;
use sync_engine::{companies, connections, SyncOptions};

use super::bench::{cpu_s, settle, with_scratch_db, BenchSim};

#[derive(clap::Args)]
pub struct DailyArgs {
    /// History sizes (lines per account) to compare, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1000,1000000")]
    pub history: Vec<u32>,
    /// New transactions each daily sync brings.
    #[arg(long, default_value_t = 50)]
    pub new: u32,
    /// Daily syncs timed per history size (the median is compared).
    #[arg(long, default_value_t = 7)]
    pub days: u32,
    /// Keep the scratch database afterwards.
    #[arg(long)]
    pub keep: bool,
}

pub async fn run(a: DailyArgs) -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: debug build; figures are meaningful only with --release (scripts/dev bench)"
        );
    }
    if a.history.is_empty() || a.days == 0 || a.new == 0 {
        bail!("--history, --days and --new need at least one");
    }
    let report = with_scratch_db("banksync_bench_daily", a.keep, |opts| async move {
        let pool = crate::db::pool_options()
            .max_connections(4)
            .connect_with(opts)
            .await?;
        sync_engine::MIGRATOR.run(&pool).await?;
        let mut sizes = vec![];
        // Every history is imported before any daily sync is timed: all sizes' nights then
        // run against the same database (same tables, same indexes, same cache pressure).
        let mut accounts = vec![];
        for &history in &a.history {
            eprintln!("importing a history of {history} lines…");
            let history_days = history.div_ceil(a.new).max(1);
            let sim = BenchSim::start(history, history_days, a.new).await?;
            let company = companies::create(&pool, &format!("Daily {history}")).await?;
            let se = sim.client.show_connection(&sim.connection).await?;
            let conn = connections::upsert_from_saltedge(&pool, company.id, &se).await?;
            let first = sync_engine::sync_connection(
                &pool,
                &sim.client,
                conn.id,
                &SyncOptions {
                    full: true,
                    trigger: "bench".into(),
                    ..Default::default()
                },
            )
            .await?;
            if first.run.inserted != history as i32 {
                bail!("imported {} lines, expected {history}", first.run.inserted);
            }
            accounts.push((history, history_days, sim, conn.id));
        }
        // The nights of an account imported long ago: the import's own maintenance (the
        // vacuum a million inserted rows trigger, which took a core beside the first
        // nights and made them 1.3-1.8 times slower from run to run) is done before timing.
        eprintln!("vacuuming after the imports…");
        sqlx::query("VACUUM (ANALYZE)").execute(&pool).await?;
        let nightly = SyncOptions {
            trigger: "bench".into(),
            ..Default::default()
        };
        let mut times: Vec<Vec<f64>> = vec![vec![]; accounts.len()];
        let mut cpu: Vec<f64> = vec![0.0; accounts.len()];
        // Nights interleaved across sizes, so that drift in the machine's speed hits all.
        for day in 0..a.days {
            for (k, (history, _, sim, conn)) in accounts.iter().enumerate() {
                sim.advance().await?;
                settle(&mut *pool.acquire().await?).await;
                let (t, c) = (Instant::now(), cpu_s());
                let r = sync_engine::sync_connection(&pool, &sim.client, *conn, &nightly).await?;
                times[k].push(t.elapsed().as_secs_f64() * 1000.0);
                cpu[k] += cpu_s() - c;
                if r.run.inserted != a.new as i32 || r.run.gone_at_bank != 0 {
                    bail!("night {day} over {history} lines: {:?}", r.run);
                }
            }
        }
        let median = |v: &[f64]| {
            let mut v = v.to_vec();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let round = |x: f64| (x * 10.0).round() / 10.0;
        for (k, (history, days, _, _)) in accounts.iter().enumerate() {
            sizes.push(serde_json::json!({
                "history_lines": history,
                "history_days": days,
                "daily_sync_median_ms": round(median(&times[k])),
                "daily_sync_best_ms": round(times[k].iter().copied().fold(f64::MAX, f64::min)),
                "daily_sync_ms": times[k].iter().map(|t| round(*t)).collect::<Vec<_>>(),
                "service_cpu_ms_per_sync": round(cpu[k] * 1000.0 / a.days as f64),
            }));
        }
        let (small, large) = (median(&times[0]), median(&times[times.len() - 1]));
        Ok(serde_json::json!({
            "new_lines_per_sync": a.new,
            "nights": a.days,
            "sizes": sizes,
            "ratio_largest_vs_smallest_median": (large / small * 1000.0).round() / 1000.0,
            "target_ratio_at_most": 1.5,
        }))
    })
    .await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
