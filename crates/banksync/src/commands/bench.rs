//! `banksync bench ingest --transactions N`: import throughput against a scratch database
//! and a simulator child process (so this process's peak RSS is the service's alone).
//! Prints one JSON object. Run it in a release build: `scripts/dev bench ingest`.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::StreamExt;
use saltedge_client::{Client, ClientConfig, Signer};
use sqlx::postgres::PgConnectOptions;

pub use super::scratch::with_scratch_db;
use sqlx::{Connection, PgConnection};
use sync_engine::{companies, connections, SyncOptions};
use tokio::io::AsyncWriteExt;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub what: What,
}

#[derive(clap::Subcommand)]
pub enum What {
    /// First import, re-sync and a COPY baseline of N transactions.
    Ingest(IngestArgs),
    /// Load on the callback receivers (signature verification included) and on the
    /// statement-lines list, over loopback HTTP.
    Load(super::load::LoadArgs),
    /// The scheduler over a simulated day with many companies and connections.
    Scale(super::scale::ScaleArgs),
    /// One noisy company beside many quiet ones: the quiet companies' link, callback-to-lines
    /// and webhook delays, alone and with the noise.
    Fairness(super::fairness::FairnessArgs),
    /// Daily syncs of a few new lines over accounts with short and very long histories,
    /// in the same run: a sync's cost must not grow with the history.
    Daily(super::daily::DailyArgs),
}

#[derive(clap::Args)]
pub struct IngestArgs {
    #[arg(long, default_value_t = 100_000)]
    pub transactions: u32,
    /// Keep the scratch database afterwards.
    #[arg(long)]
    pub keep: bool,
}

pub async fn run(a: Args) -> anyhow::Result<()> {
    match a.what {
        What::Ingest(i) => ingest(i).await,
        What::Load(l) => super::load::run(l).await,
        What::Scale(s) => super::scale::run(s).await,
        What::Daily(d) => super::daily::run(d).await,
        What::Fairness(f) => super::fairness::run(f).await,
    }
}

/// CPU seconds (user + system) this process has used, from /proc (Linux).
pub fn cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// Peak resident set size of this process, from /proc (Linux).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

async fn ingest(a: IngestArgs) -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: debug build; figures are meaningful only with --release (scripts/dev bench)"
        );
    }
    let n = a.transactions;
    let report = with_scratch_db("banksync_bench", a.keep, |opts| async move {
        ingest_into(&opts, n).await
    })
    .await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

async fn ingest_into(opts: &PgConnectOptions, n: u32) -> anyhow::Result<serde_json::Value> {
    // The pool `banksync serve` and the worker use (`db::pool_options`).
    let pool = crate::db::pool_options()
        .max_connections(4)
        .connect_with(opts.clone())
        .await?;
    sync_engine::MIGRATOR.run(&pool).await?;

    let sim = BenchSim::start(n, 3650, 0).await?;
    let (client, se_conn) = (sim.client.clone(), sim.connection.clone());
    let company = companies::create(&pool, "Bench Ltd").await?;
    let se = client.show_connection(&se_conn).await?;
    let conn = connections::upsert_from_saltedge(&pool, company.id, &se).await?;
    let full = SyncOptions {
        full: true,
        trigger: "bench".into(),
        ..Default::default()
    };

    settle(&mut *pool.acquire().await?).await;
    eprintln!("importing {n} transactions…");
    let (t, c) = (Instant::now(), cpu_s());
    let first = sync_engine::sync_connection(&pool, &client, conn.id, &full).await?;
    let first_s = t.elapsed().as_secs_f64();
    let first_cpu = cpu_s() - c;
    if first.run.inserted != n as i32 {
        bail!(
            "first import inserted {} lines, expected {n}",
            first.run.inserted
        );
    }
    // The baseline right after the import it is compared with: the machine's speed drifts
    // by a third over minutes here, and the ratio is only fair when both see the same one.
    // Every table a first import writes rows to, with their indexes.
    let copy_all_s = copy_baseline(
        opts,
        &["statement_lines", "statements", "line_events", "sync_runs"],
        "INCLUDING ALL",
    )
    .await?;
    settle(&mut *pool.acquire().await?).await;
    eprintln!("syncing them again…");
    let (t, c) = (Instant::now(), cpu_s());
    let again = sync_engine::sync_connection(&pool, &client, conn.id, &full).await?;
    let resync_s = t.elapsed().as_secs_f64();
    let resync_cpu = cpu_s() - c;
    if again.run.inserted != 0 || again.run.skipped_duplicate != n as i32 {
        bail!("re-sync was not all duplicates: {:?}", again.run);
    }
    let rss = peak_rss_mib();
    // The floor: fetching and parsing the same pages, writing nothing.
    let (t, c) = (Instant::now(), cpu_s());
    let mut pages = std::pin::pin!(client.transaction_pages(saltedge_client::TransactionQuery {
        connection_id: se_conn.clone(),
        ..Default::default()
    }));
    let mut fetched = 0usize;
    while let Some(page) = pages.next().await {
        fetched += page?.items.len();
    }
    let floor_s = t.elapsed().as_secs_f64();
    let floor_cpu = cpu_s() - c;
    if fetched != n as usize {
        bail!("the floor fetched {fetched} transactions, expected {n}");
    }
    drop(sim);

    let copy_bare_s = copy_baseline(opts, &["statement_lines"], "").await?;
    let copy_s = copy_baseline(opts, &["statement_lines"], "INCLUDING ALL").await?;
    let rate = |s: f64| n as f64 / s;
    Ok(serde_json::json!({
        "transactions": n,
        "pages": first.run.pages,
        "first_import_s": first_s,
        "resync_s": resync_s,
        "first_import_cpu_s": first_cpu,
        "resync_cpu_s": resync_cpu,
        "copy_s": copy_s,
        "copy_bare_s": copy_bare_s,
        "first_import_rows_per_s": rate(first_s).round(),
        "resync_rows_per_s": rate(resync_s).round(),
        "copy_rows_per_s": rate(copy_s).round(),
        "copy_bare_rows_per_s": rate(copy_bare_s).round(),
        "ratio_first_import_vs_copy_bare": (copy_bare_s / first_s * 1000.0).round() / 1000.0,
        "ratio_first_import_vs_copy": (copy_s / first_s * 1000.0).round() / 1000.0,
        "ratio_resync_vs_first_import": (first_s / resync_s * 1000.0).round() / 1000.0,
        "copy_all_tables_s": copy_all_s,
        "copy_all_tables_rows_per_s": rate(copy_all_s).round(),
        "ratio_first_import_vs_copy_all_tables": (copy_all_s / first_s * 1000.0).round() / 1000.0,
        "floor_fetch_parse_s": floor_s,
        "floor_fetch_parse_cpu_s": floor_cpu,
        "floor_rows_per_s": rate(floor_s).round(),
        "ratio_resync_vs_floor": (floor_s / resync_s * 1000.0).round() / 1000.0,
        "peak_rss_mib": rss.map(|r| (r * 10.0).round() / 10.0),
    }))
}

/// A simulator child process (so this process's peak RSS is the service's alone) holding
/// one connection with one account of `transactions` over `history_days`, nothing
/// pending, no twins, no re-issues; each advance posts `new_per_fetch` more. Killed when
/// dropped.
pub struct BenchSim {
    _child: tokio::process::Child,
    pub base: String,
    pub client: Client,
    pub connection: String,
    http: reqwest::Client,
}

impl BenchSim {
    pub async fn start(
        transactions: u32,
        history_days: u32,
        new_per_fetch: u32,
    ) -> anyhow::Result<BenchSim> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let exe = std::env::current_exe()?;
        let child = tokio::process::Command::new(exe)
            .args(["simulator", "--port", &port.to_string(), "--accounts", "1"])
            .args(["--pending", "0", "--twins", "0", "--reissued", "0"])
            .args([
                "--transactions",
                &transactions.to_string(),
                "--history-days",
                &history_days.to_string(),
            ])
            .args(["--new-per-fetch", &new_per_fetch.to_string()])
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start the simulator")?;
        let base = format!("http://127.0.0.1:{port}/");
        let http = reqwest::Client::new();
        let ready = Instant::now();
        while http
            .get(format!("{base}sim/requests"))
            .send()
            .await
            .is_err()
        {
            if ready.elapsed() > Duration::from_secs(30) {
                bail!("the simulator did not start");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let seeded: serde_json::Value = http
            .post(format!("{base}sim/connections"))
            .json(&serde_json::json!({ "identifier": "bench", "provider_code": "fakebank_simple_xf" }))
            .timeout(Duration::from_secs(1800))
            .send()
            .await?
            .json()
            .await?;
        let connection = seeded["connection_id"]
            .as_str()
            .context("simulator did not seed")?
            .to_string();
        let mut cfg = ClientConfig::new(
            url::Url::parse(&format!("{base}api/v5/"))?,
            "sim-app-id",
            "sim-secret",
        );
        cfg.signer = Some(Signer::from_pem(saltedge_sim::keys::CLIENT_PRIVATE_PEM)?);
        cfg.timeout = Duration::from_secs(600);
        Ok(BenchSim {
            _child: child,
            base,
            client: Client::new(cfg)?,
            connection,
            http,
        })
    }

    /// The bank's next fetch: `new_per_fetch` more posted transactions.
    pub async fn advance(&self) -> anyhow::Result<()> {
        let r = self
            .http
            .post(format!(
                "{}sim/connections/{}/advance",
                self.base, self.connection
            ))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("the simulator did not advance: {}", r.status());
        }
        Ok(())
    }
}

/// Before each timed phase: the dirty pages the previous phase left are written out
/// (`CHECKPOINT`), so that no phase pays for another's writes. Needs a superuser or
/// `pg_checkpoint` (the test harness's cluster has it); without, the phases run as they are.
pub async fn settle(db: &mut PgConnection) {
    // Maintenance a sync started in the background (statistics after a large import) ends
    // first: no phase pays for it.
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(120) {
        let busy: Option<bool> = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_progress_analyze WHERE datid = (SELECT oid FROM pg_database WHERE datname = current_database()))",
        )
        .fetch_one(&mut *db)
        .await
        .ok();
        if busy != Some(true) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = sqlx::query("CHECKPOINT").execute(db).await;
}

/// The same rows loaded with COPY into scratch tables: each of `tables` dumped to a file
/// first (untimed), then streamed in 1 MiB chunks (timed, all tables together). `like` =
/// "INCLUDING ALL" gives each scratch table the original's indexes, defaults and checks (the
/// fair baseline); "" gives a bare table with the same columns. Foreign keys are never
/// copied.
async fn copy_baseline(
    opts: &PgConnectOptions,
    tables: &[&str],
    like: &str,
) -> anyhow::Result<f64> {
    let mut conn = PgConnection::connect_with(opts).await?;
    let mut files = vec![];
    for (k, table) in tables.iter().enumerate() {
        let path =
            std::env::temp_dir().join(format!("banksync-bench-{}-{k}.tsv", std::process::id()));
        {
            let mut file = tokio::fs::File::create(&path).await?;
            let mut out = conn
                .copy_out_raw(&format!("COPY {table} TO STDOUT"))
                .await?;
            while let Some(chunk) = out.next().await {
                file.write_all(&chunk?).await?;
            }
            file.flush().await?;
        }
        // The baseline's scratch tables: DDL outside the schema (and tables the macros
        // cannot know), so plain queries.
        let scratch = format!("bench_scratch_{k}");
        sqlx::query(&format!("DROP TABLE IF EXISTS {scratch}"))
            .execute(&mut conn)
            .await?;
        sqlx::query(&format!(
            "CREATE TABLE {scratch} (LIKE {table} INCLUDING DEFAULTS {like})"
        ))
        .execute(&mut conn)
        .await?;
        files.push((scratch, path));
    }
    settle(&mut conn).await;
    let t = Instant::now();
    for (scratch, path) in &files {
        let mut copy = conn
            .copy_in_raw(&format!("COPY {scratch} FROM STDIN"))
            .await?;
        let file = tokio::fs::File::open(path).await?;
        copy.read_from(tokio::io::BufReader::with_capacity(1 << 20, file))
            .await?;
        copy.finish().await?;
    }
    let secs = t.elapsed().as_secs_f64();
    // Gone once measured: their pages would crowd the next phase's out of the cache.
    for (scratch, path) in files {
        sqlx::query(&format!("DROP TABLE {scratch}"))
            .execute(&mut conn)
            .await?;
        let _ = tokio::fs::remove_file(path).await;
    }
    Ok(secs)
}
