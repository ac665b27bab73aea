//! One sync of one connection: lock, refresh the connection and its accounts, stream posted
//! transactions page by page from the incremental cursor, then the pending list, then check
//! balances. Pages are stored while the next ones are being fetched (up to [`PREFETCH`]
//! ahead; a first import joins the pages that are ready into one transaction of up to
//! [`BATCH_ROWS`] rows and has two such transactions in flight, see
//! [`lines::ImportPipeline`]): memory stays bounded by a few pages, the bank's latency hides
//! behind the database's, and a crash loses at most the pages in flight, which the next run
//! fetches again because the cursor only moves over stored lines.

use std::collections::HashMap;

use futures::TryStreamExt;
use saltedge_client::{Client, ErrorClass, TransactionQuery};
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::{Result, SyncError};
use crate::ingest::lines::{self, AccountTarget, DedupOptions, LineStatus};
use crate::ingest::lock::ConnectionLock;
use crate::runs::SyncRun;
use crate::{balance, connections, mapping, runs};

#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Days of already-imported history fetched again on each sync, to pick up late changes.
    pub overlap_days: i64,
    /// Ignore the cursor and fetch the whole history (still deduplicated).
    pub full: bool,
    pub dedup: DedupOptions,
    pub trigger: String,
    /// A queued run (from "sync now") to carry out, instead of a new one.
    pub run_id: Option<Uuid>,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            overlap_days: 7,
            full: false,
            dedup: DedupOptions::default(),
            trigger: "manual".into(),
            run_id: None,
        }
    }
}

/// The run's final row plus what the accounts step changed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SyncReport {
    pub run: SyncRun,
    pub new_accounts: Vec<Uuid>,
    pub disappeared_accounts: usize,
}

/// Runs one sync of a connection (waiting for any other sync of it to end first).
pub async fn sync_connection(
    pool: &PgPool,
    client: &Client,
    connection_id: Uuid,
    opts: &SyncOptions,
) -> Result<SyncReport> {
    let conn = connections::get(pool, connection_id).await?;
    if conn.status == crate::store::status::ConnectionStatus::Removed {
        return Err(connections::REMOVED);
    }
    let mut lock = ConnectionLock::acquire(pool, connection_id).await?;
    let result = async {
        let run_id =
            runs::start(pool, conn.company_id, conn.id, &opts.trigger, opts.run_id).await?;
        match run(pool, client, &conn, run_id, opts, &mut lock).await {
            Ok(r) => Ok(r),
            Err(e) => {
                let class = e.saltedge_class().map(|c| c.to_string());
                let _ = runs::fail(pool, run_id, class.as_deref(), &e.to_string()).await;
                if let Some(c) = e.saltedge_class() {
                    let _ = connections::set_error(pool, conn.id, c.as_str(), &e.to_string()).await;
                    if *c == ErrorClass::ConnectionNotFound {
                        let _ = connections::mark_removed(pool, conn.id).await;
                    }
                }
                Err(e)
            }
        }
    }
    .await;
    lock.release().await;
    result
}

async fn run(
    pool: &PgPool,
    client: &Client,
    conn: &connections::Connection,
    run_id: Uuid,
    opts: &SyncOptions,
    lock: &mut ConnectionLock,
) -> Result<SyncReport> {
    // Statements whose period ended before now close when this sync completes.
    let started = chrono::Utc::now();
    let se_conn = client.show_connection(&conn.saltedge_id).await?;
    let conn = connections::upsert_from_saltedge(pool, conn.company_id, &se_conn).await?;
    connections::read_consent(pool, client, &conn, &se_conn).await?;

    let mut accounts = vec![];
    let mut bad_accounts = vec![];
    let mut account_pages = std::pin::pin!(client.account_pages(&conn.saltedge_id));
    while let Some(page) = account_pages.try_next().await? {
        accounts.extend(page.items);
        bad_accounts.extend(page.rejected.iter().map(|r| {
            crate::quarantine::Quarantined::rejected(crate::quarantine::RecordKind::Account, r)
        }));
    }
    let acc = mapping::sync_accounts(
        pool,
        conn.company_id,
        conn.id,
        (&conn.provider_code, &conn.provider_name),
        &accounts,
    )
    .await?;
    bad_accounts.extend(acc.quarantined.iter().cloned());
    crate::quarantine::record(pool, run_id, &bad_accounts).await?;
    let targets = std::sync::Arc::new(targets(pool, conn.id).await?);
    // A connection without lines yet cannot hold any of the page's ids: skip that look-up.
    let may_exist: bool = sqlx::query_scalar!(r#"SELECT EXISTS (SELECT 1 FROM statement_lines l JOIN bank_accounts a ON a.id = l.bank_account_id WHERE a.connection_id = $1) AS "exists!""#, conn.id)
    .fetch_one(pool)
    .await?;

    let from_id = if opts.full {
        None
    } else {
        cursor(pool, conn.id, opts.overlap_days).await?
    };
    runs::set_from_id(pool, run_id, from_id.as_deref()).await?;
    let mut pending_lines = lines::PendingLines::load(pool, conn.id).await?;
    // Salt Edge's pending list first: a posted transaction is never linked to a pending one
    // that the same sync reads as still pending (rule 2). Written after the posted listing.
    let mut pending_pages = vec![];
    let mut still_pending = vec![];
    {
        let mut pending = std::pin::pin!(
            client.pending_transaction_pages(TransactionQuery::connection(&conn.saltedge_id))
        );
        while let Some(page) = pending.try_next().await? {
            still_pending.extend(
                page.items
                    .iter()
                    .map(|t| t.id.clone())
                    .chain(page.rejected.iter().filter_map(|r| r.id.clone())),
            );
            pending_pages.push(page);
        }
    }
    pending_lines.set_still_listed(still_pending.iter().cloned());
    let query = TransactionQuery {
        from_id,
        ..TransactionQuery::connection(&conn.saltedge_id)
    };
    // Pages are fetched on their own task, up to PREFETCH pages ahead of the writes; each
    // is handed on to a task of its own as it arrives and the next request goes out at once
    // (pages come one after the other, so this chain is what a re-sync waits on: keying on
    // the fetching task cost it a fifth). A first import's page is parsed and turned into
    // rows there, and the pages that are ready when one is written join its transaction (up
    // to BATCH_ROWS rows; nothing waits for a page to arrive). Where lines may exist
    // already, the items are only keyed; the items a line holds byte for byte are then set
    // aside unparsed here (`held_verbatim`) and only the others are parsed.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Working>>(PREFETCH);
    let producer = {
        let client = client.clone();
        let targets = targets.clone();
        let mut next = Some(query.clone());
        let company = conn.company_id;
        tokio::spawn(async move {
            while let Some(q) = next.take() {
                let item = match client.transactions_raw_page(&q).await {
                    Ok(raw) => {
                        next = raw.next_id.map(|id| TransactionQuery {
                            from_id: Some(id),
                            ..q
                        });
                        let targets = targets.clone();
                        Ok(Working::Running(tokio::spawn(async move {
                            if may_exist {
                                Fetched::Keyed(lines::KeyedPage::new(&targets, raw.items))
                            } else {
                                let digested =
                                    raw.items.iter().map(|r| (r, crate::digest::raw16(r.get())));
                                let (ids, mut page) = prepare(&targets, digested);
                                page.render_copy(company, run_id);
                                Fetched::Prepared((ids, page))
                            }
                        })))
                    }
                    Err(e) => Err(e.into()),
                };
                if tx.send(item).await.is_err() {
                    return;
                }
            }
        })
    };
    // The fetching task stops with the sync, however it ends.
    struct AbortOnDrop(tokio::task::JoinHandle<()>);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let _producer = AbortOnDrop(producer);
    // Every posted id of this (complete) listing, for rule 8 (re-issued transactions).
    let mut seen = lines::SeenIds::default();
    let mut waiting: Option<Result<Working>> = None;
    // A first import writes two batches at a time (see `lines::ImportPipeline`).
    let mut first_import = lines::ImportPipeline::default();
    let listed = async {
        loop {
            let fetched = match waiting.take() {
                Some(f) => f,
                None => match rx.recv().await {
                    Some(f) => f,
                    None => break,
                },
            }?
            .finish()
            .await?;
            let page = match fetched {
                Fetched::Prepared((mut ids, mut page)) => {
                    // Pages already parsed join this one; nothing waits for a page.
                    while page.row_count() < BATCH_ROWS {
                        match rx.try_recv() {
                            Ok(Ok(w)) if w.is_ready() => match w.finish().await? {
                                Fetched::Prepared((more_ids, more)) => {
                                    ids.extend(more_ids);
                                    page.absorb(more);
                                }
                                keyed => {
                                    waiting = Some(Ok(Working::Done(keyed)));
                                    break;
                                }
                            },
                            Ok(other) => {
                                waiting = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    Ok((ids, page))
                }
                Fetched::Keyed(keyed) => {
                    lines::held_verbatim(pool, keyed).await.map(|(held, rest)| {
                        let (mut ids, mut page) =
                            prepare(&targets, rest.iter().map(|(r, d)| (r, d.clone())));
                        ids.extend(held.iter().map(|(id, _)| id.clone()));
                        page.hold(held);
                        (ids, page)
                    })
                }
            };
            // The lock is checked before the page's transaction opens (a page of unchanged
            // lines opens none and writes nothing).
            let (ids, page) = page?;
            for id in &ids {
                seen.insert(id);
            }
            if may_exist {
                lines::write_prepared(
                    pool,
                    run_id,
                    page,
                    may_exist,
                    &mut pending_lines,
                    &opts.dedup,
                    Some(&*lock),
                )
                .await?;
            } else {
                let ctx = lines::WriteContext {
                    pool,
                    run_id,
                    opts: &opts.dedup,
                    lock: Some(&*lock),
                };
                first_import.write(&ctx, page, &mut pending_lines).await?;
            }
        }
        Ok::<_, SyncError>(())
    }
    .await;
    // The writes in flight end either way: what was fetched before a failure is stored,
    // as when pages were written one at a time.
    let drained = first_import.drain().await;
    listed?;
    drained?;

    lock.ensure_held().await?;
    pending_lines.flush(pool, run_id).await?;
    seen.finish();
    let rekeyed =
        lines::rekey_reissued(pool, run_id, conn.id, query.from_id.as_deref(), &seen).await?;
    // A first import stored every line from this very listing: none can be gone.
    if may_exist {
        lines::flag_gone_at_bank(pool, run_id, conn.id, query.from_id.as_deref(), &seen).await?;
    }
    drop(seen);

    for page in pending_pages {
        lock.ensure_held().await?;
        lines::write_fetched(
            pool,
            run_id,
            &targets,
            &page,
            LineStatus::Pending,
            &mut pending_lines,
            &opts.dedup,
        )
        .await?;
    }
    lock.ensure_held().await?;
    let removed = lines::expire_vanished_pending(pool, conn.id, &still_pending).await?;

    let mut flagged = 0;
    let mut dups = std::pin::pin!(
        client.duplicate_transaction_pages(TransactionQuery::connection(&conn.saltedge_id))
    );
    while let Some(page) = dups.try_next().await? {
        flagged += page.items.len() as i32;
    }
    runs::add_counts(pool, run_id, removed, flagged, rekeyed).await?;

    let mismatches = check_and_close(pool, conn.id, started).await?;
    let run = runs::succeed(
        pool,
        run_id,
        &serde_json::to_value(&mismatches).unwrap_or_default(),
    )
    .await?;
    // A large import changes what the planner should know about the lines table (a new
    // account of a million lines is invisible to statistics taken before): without fresh
    // ones, the next night's look-ups of a few recent lines were planned as scans of the
    // whole account (`bench daily`: 0.7 s instead of 2 ms). Autovacuum would get there
    // later, or never on a table this import is a small part of.
    // Maintenance, not the sync's work: it runs beside the next job instead of holding
    // this one (a few hundred ms whatever the import's size: ANALYZE reads a sample).
    if run.inserted >= ANALYZE_AFTER_LINES {
        let pool = pool.clone();
        tokio::spawn(async move {
            if let Err(e) = sqlx::query!("ANALYZE statement_lines").execute(&pool).await {
                tracing::warn!(error = %e, "could not analyze statement_lines after a large import");
            }
        });
    }
    // This sync read Salt Edge's data as of its start: the catch-up compares Salt Edge's
    // `last_success_at` (whole seconds) with the second it started in.
    sqlx::query!("UPDATE connections SET last_synced_at = now(), last_sync_started_at = $2, last_error_class = NULL, last_error_message = NULL, updated_at = now() WHERE id = $1", conn.id, started)
    .execute(pool)
    .await?;
    tracing::info!(connection = %conn.id, run = %run.id, inserted = run.inserted, updated = run.updated,
        skipped = run.skipped_duplicate, pages = run.pages, "sync finished");
    Ok(SyncReport {
        run,
        new_accounts: acc.new_accounts,
        disappeared_accounts: acc.disappeared,
    })
}

/// The balance check and the closing of ended statements, in one transaction over one sum
/// of the connection's lines.
async fn check_and_close(
    pool: &PgPool,
    connection_id: Uuid,
    started: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<balance::Mismatch>> {
    let mut db = pool.begin().await?;
    // The sum reads every line of the connection; with statistics Postgres planned it as a
    // parallel scan, and starting the workers doubled it on two cores (128 ms against 66
    // ms for 100,000 lines, EXPLAIN ANALYZE), beside the other syncs it would crowd.
    sqlx::query!("SET LOCAL max_parallel_workers_per_gather = 0")
        .execute(&mut *db)
        .await?;
    let due = crate::statements::lock_ended(&mut db, connection_id, started).await?;
    let sums = crate::statements::LineSums::load(&mut db, connection_id, &due).await?;
    let mismatches = balance::check(&mut db, connection_id, &sums).await?;
    crate::statements::close_ended(&mut db, connection_id, started, due, &sums).await?;
    db.commit().await?;
    Ok(mismatches)
}

async fn targets(pool: &PgPool, connection_id: Uuid) -> Result<HashMap<String, AccountTarget>> {
    let rows = sqlx::query!(
        "SELECT a.saltedge_id, a.id, a.journal_id, a.currency, j.sync_start_date, a.relinked_at IS NOT NULL AS \"relinked!\"
         FROM bank_accounts a JOIN journals j ON j.id = a.journal_id WHERE a.connection_id = $1",
        connection_id
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.saltedge_id,
                AccountTarget {
                    bank_account_id: r.id,
                    journal_id: r.journal_id,
                    currency: r.currency,
                    sync_start_date: r.sync_start_date,
                    relinked: r.relinked,
                },
            )
        })
        .collect())
}

/// A sync that stored at least this many lines refreshes the lines table's statistics.
const ANALYZE_AFTER_LINES: i32 = 50_000;

/// Where the next incremental fetch starts: the smallest transaction id among posted lines
/// booked within `overlap_days` of the newest one. Salt Edge ids grow with creation time and
/// every sync stores an id-ordered prefix, so everything not yet stored lies above it.
pub async fn cursor(
    pool: &PgPool,
    connection_id: Uuid,
    overlap_days: i64,
) -> Result<Option<String>> {
    // Through the (journal, booking date) index: the newest date is one backward step per
    // account, the window a range; never every line of a long history.
    let ids: Vec<String> = sqlx::query_scalar!(
        r#"WITH acc AS (SELECT id, journal_id FROM bank_accounts WHERE connection_id = $1),
              newest AS (
                  SELECT max(x.booking_date) AS d FROM acc CROSS JOIN LATERAL (
                      SELECT l.booking_date FROM statement_lines l
                      WHERE l.journal_id = acc.journal_id AND l.bank_account_id = acc.id
                      ORDER BY l.booking_date DESC LIMIT 1) x)
         SELECT l.saltedge_transaction_id AS "id!"
         FROM acc JOIN statement_lines l ON l.journal_id = acc.journal_id AND l.bank_account_id = acc.id, newest
         WHERE l.booking_date >= newest.d - $2::int"#,
        connection_id,
        overlap_days as i32
    )
    .fetch_all(pool)
    .await?;
    // Ids are decimal strings; one that is not means we cannot order safely: fetch everything.
    let mut min: Option<u64> = None;
    for id in &ids {
        match id.parse::<u64>() {
            Ok(v) => min = Some(min.map_or(v, |m: u64| m.min(v))),
            Err(_) => return Ok(None),
        }
    }
    Ok(min.map(|m| m.to_string()))
}

/// A fetched page of posted transactions, as the fetching task hands it over.
/// Pages fetched ahead of the writes.
const PREFETCH: usize = 3;
/// A first import writes the pages that are ready together, up to this many rows. With two
/// writes in flight, 2,000 rows kept the peak RSS of a million-line import at 57.8 MiB
/// (3,000: 66.5 MiB) at the same speed.
const BATCH_ROWS: usize = 2000;

/// A fetched page, keyed or parsed on a task of its own while the next one is fetched. (An
/// async task, not `spawn_blocking`: the blocking pool's threads each got an allocator
/// arena, and a million-line import peaked at 65.0 MiB instead of 53.4.)
enum Working {
    Running(tokio::task::JoinHandle<Fetched>),
    Done(Fetched),
}

impl Working {
    fn is_ready(&self) -> bool {
        match self {
            Working::Running(t) => t.is_finished(),
            Working::Done(_) => true,
        }
    }

    async fn finish(self) -> Result<Fetched> {
        match self {
            Working::Running(t) => t
                .await
                .map_err(|e| SyncError::Corrupt(format!("a page's parsing ended: {e}"))),
            Working::Done(f) => Ok(f),
        }
    }
}

enum Fetched {
    /// Parsed and turned into rows, with every id of the page (rule 8).
    Prepared((Vec<String>, lines::PreparedPage)),
    /// Raw, keyed for [`lines::held_verbatim`].
    Keyed(lines::KeyedPage),
}

/// Parses raw items (one bad record never fails its page) and turns them into rows; returns
/// every id the page listed, parsed or not.
fn prepare<'a>(
    targets: &HashMap<String, AccountTarget>,
    raw: impl Iterator<Item = (&'a Box<serde_json::value::RawValue>, Vec<u8>)>,
) -> (Vec<String>, lines::PreparedPage) {
    let (txs, rejected) =
        saltedge_client::parse_items::<saltedge_client::models::Transaction, _>(raw);
    let ids = txs
        .iter()
        .map(|(t, _)| t.id.clone())
        .chain(rejected.iter().filter_map(|r| r.id.clone()))
        .collect();
    let mut page = lines::prepare_digested(
        targets,
        txs.iter().map(|(t, d)| (t, Some(d.clone()))),
        LineStatus::Posted,
    );
    page.reject(&rejected);
    (ids, page)
}
