//! `banksync bench load`: sustained signed callbacks per second (with verification) and the
//! statement-lines list under concurrency, against an in-process server on loopback and a
//! scratch database. Prints one JSON object.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use banksync_http::{Application, HttpConfig};
use saltedge_client::{Signer, Verifier};
use saltedge_sim::keys;
use sqlx::postgres::PgConnectOptions;

#[derive(clap::Args)]
pub struct LoadArgs {
    /// Distinct signed callbacks to send (signed beforehand, untimed).
    #[arg(long, default_value_t = 20_000)]
    pub callbacks: usize,
    /// Statement-lines list requests to send.
    #[arg(long, default_value_t = 5_000)]
    pub list_requests: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
}

struct Sample {
    ok: usize,
    failed: usize,
    secs: f64,
    latencies_us: Vec<u32>,
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

impl Sample {
    fn json(mut self) -> serde_json::Value {
        self.latencies_us.sort_unstable();
        serde_json::json!({
            "requests": self.ok + self.failed,
            "ok": self.ok,
            "failed": self.failed,
            "per_second": ((self.ok as f64) / self.secs).round(),
            "p50_ms": pct(&self.latencies_us, 0.50),
            "p99_ms": pct(&self.latencies_us, 0.99),
            "max_ms": pct(&self.latencies_us, 1.0),
        })
    }
}

/// Sends `n` requests to `addr`, `concurrency` at a time, each on its own keep-alive
/// connection: a minimal HTTP/1.1 client in the manner of `wrk`. Each request's bytes come
/// ready from `request(i)` (rendered before the clock starts where they can be), so the
/// two cores the server shares with its load go to the server: with `reqwest` the client
/// took a fifth of the process' CPU.
async fn drive<F>(addr: SocketAddr, n: usize, concurrency: usize, request: F) -> Sample
where
    F: Fn(usize) -> Bytes + Send + Sync + 'static,
{
    let request = Arc::new(request);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = vec![];
    for _ in 0..concurrency {
        let request = request.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut failed, mut lat) = (0, 0, Vec::new());
            let mut conn: Option<Conn> = None;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let t = Instant::now();
                let answer = match conn.as_mut() {
                    Some(c) => c.exchange(&request(i)).await,
                    None => match Conn::open(addr).await {
                        Ok(c) => conn.insert(c).exchange(&request(i)).await,
                        Err(e) => Err(e),
                    },
                };
                match answer {
                    Ok(status) if (200..300).contains(&status) => ok += 1,
                    Ok(_) => failed += 1,
                    Err(_) => {
                        // A broken connection is replaced for the next request.
                        conn = None;
                        failed += 1;
                    }
                }
                lat.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
            }
            (ok, failed, lat)
        }));
    }
    let mut s = Sample {
        ok: 0,
        failed: 0,
        secs: 0.0,
        latencies_us: vec![],
    };
    for t in tasks {
        let (ok, failed, lat) = t.await.expect("load task");
        s.ok += ok;
        s.failed += failed;
        s.latencies_us.extend(lat);
    }
    s.secs = started.elapsed().as_secs_f64();
    s
}

/// One keep-alive connection of [`drive`].
struct Conn {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> std::io::Result<Conn> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(64 * 1024),
        })
    }

    /// Writes one request and reads its whole response (the server always sends a
    /// `Content-Length`); returns the status.
    async fn exchange(&mut self, request: &[u8]) -> std::io::Result<u16> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let bad = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_string());
        self.stream.write_all(request).await?;
        self.buf.clear();
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut head = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(head_len) = head
                .parse(&self.buf)
                .map_err(|_| bad("malformed response"))?
            {
                let status = head.code.unwrap_or(0);
                let length: usize = head
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
                    .ok_or_else(|| bad("response without Content-Length"))?;
                let total = head_len + length;
                while self.buf.len() < total {
                    if self.stream.read_buf(&mut self.buf).await? == 0 {
                        return Err(bad("connection closed mid-response"));
                    }
                }
                if self.buf.len() > total {
                    return Err(bad("more bytes than one response"));
                }
                return Ok(status);
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(bad("connection closed before a response"));
            }
        }
    }
}

/// An HTTP/1.1 request's bytes.
fn render(
    method: &str,
    path: &str,
    host: SocketAddr,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Bytes {
    let mut out = format!("{method} {path} HTTP/1.1\r\nhost: {host}\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    Bytes::from(bytes)
}

pub async fn run(a: LoadArgs) -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: debug build; figures are meaningful only with --release (scripts/dev bench)"
        );
    }
    let report = super::scratch::with_scratch_db("banksync_load", false, |opts| async move {
        load(&opts, &a).await
    })
    .await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

async fn load(opts: &PgConnectOptions, a: &LoadArgs) -> anyhow::Result<serde_json::Value> {
    // The server's pool as `banksync serve` configures it.
    let pool = crate::db::pool_options()
        .max_connections(16)
        .connect_with(opts.clone())
        .await?;
    sync_engine::MIGRATOR.run(&pool).await?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let callback_base = url::Url::parse(&format!("http://{addr}/callbacks/saltedge/"))?;
    let sim_cfg = saltedge_client::ClientConfig::new(
        url::Url::parse("http://127.0.0.1:9/api/v5/")?,
        "unused",
        "unused",
    );
    // No per-token rate limit here: the benchmark measures the machine, not the limit.
    let app = Application::build(
        pool.clone(),
        saltedge_client::Client::new(sim_cfg)?,
        Verifier::from_pem(keys::SIMULATOR_PUBLIC_PEM)?,
        banksync_http::callbacks::urls::CallbackUrls::under(&callback_base),
        &HttpConfig::default(),
        None,
    )
    .router;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = banksync_http::serve::spawn_plain(listener, app, stop_rx, Duration::from_secs(2));

    // Distinct callbacks, signed like Salt Edge does, before the clock starts.
    eprintln!("signing {} callbacks…", a.callbacks);
    let signer = Arc::new(Signer::from_pem(keys::SIMULATOR_PRIVATE_PEM)?);
    let url = format!("{callback_base}notify");
    let now = chrono::Utc::now();
    let mut handles = vec![];
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    for t in 0..threads {
        let (signer, url) = (signer.clone(), url.clone());
        let n = a.callbacks;
        handles.push(tokio::task::spawn_blocking(move || {
            (t..n)
                .step_by(threads)
                .map(|i| {
                    let body = serde_json::json!({
                        "data": { "connection_id": format!("{}", 300_000_000_000_000_000u64 + i as u64), "customer_id": "1", "stage": "fetch_accounts" },
                        "meta": { "version": "5", "time": now },
                    })
                    .to_string();
                    let sig = signer.sign_callback(&url, body.as_bytes());
                    (i, body, sig)
                })
                .collect::<Vec<_>>()
        }));
    }
    let path = url::Url::parse(&url)?.path().to_string();
    let mut requests = vec![Bytes::new(); a.callbacks];
    for h in handles {
        for (i, body, sig) in h.await? {
            requests[i] = render(
                "POST",
                &path,
                addr,
                &[("signature", &sig), ("content-type", "application/json")],
                body.as_bytes(),
            );
        }
    }

    eprintln!("sending {} callbacks…", a.callbacks);
    let callbacks = drive(addr, a.callbacks, a.concurrency, move |i| {
        requests[i].clone()
    })
    .await;
    let stored: i64 =
        sqlx::query_scalar!(r#"SELECT count(DISTINCT identity) AS "n!" FROM callback_inbox"#)
            .fetch_one(&pool)
            .await?;
    let rows: i64 = sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM callback_inbox"#)
        .fetch_one(&pool)
        .await?;
    let jobs: i64 =
        sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM jobs WHERE kind = 'process_callback'"#)
            .fetch_one(&pool)
            .await?;

    // The statement-lines list: one company with 10,000 lines.
    let company = sync_engine::companies::create(&pool, "Load Ltd").await?;
    let (_, token) = sync_engine::tokens::create(&pool, company.id, "load").await?;
    let journal =
        sync_engine::mapping::create_journal(&pool, company.id, "Bank", "EUR", None).await?;
    sqlx::query!("INSERT INTO bank_accounts (id, company_id, journal_id, saltedge_id, currency) VALUES (gen_random_uuid(), $1, $2, 'load-acc', 'EUR')", company.id, journal.id)
    .execute(&pool)
    .await?;
    sqlx::query!("INSERT INTO statement_lines (company_id, journal_id, bank_account_id, booking_date, amount, currency, description, saltedge_transaction_id,
             fingerprint, content_hash)
         SELECT a.company_id, $1, a.id, date '2026-01-01' + (g % 300), (g % 10000)::numeric / 100, 'EUR', 'Line ' || g, g::text, md5(g::text), md5(g::text)
         FROM generate_series(1, 10000) g, bank_accounts a WHERE a.saltedge_id = 'load-acc'", journal.id)
    .execute(&pool)
    .await?;
    // As autovacuum would have by the time anyone lists them.
    sqlx::query("ANALYZE statement_lines")
        .execute(&pool)
        .await?;
    // A journal's lines from a date, as a bookkeeping frontend pages through them.
    let list_request = render(
        "GET",
        &format!(
            "/api/v1/statement-lines?journal_id={}&limit=100&from=2026-03-01",
            journal.id
        ),
        addr,
        &[("authorization", &format!("Bearer {token}"))],
        b"",
    );
    eprintln!("listing {} times…", a.list_requests);
    let list = drive(addr, a.list_requests, a.concurrency, move |_| {
        list_request.clone()
    })
    .await;

    let _ = stop_tx.send(true);
    let _ = server.await;
    Ok(serde_json::json!({
        "concurrency": a.concurrency,
        "callbacks": callbacks.json(),
        "callbacks_stored_once": stored == rows && rows as usize == a.callbacks && jobs == rows,
        "callback_inbox_rows": rows,
        "statement_lines_list": list.json(),
    }))
}
