//! A first import's writes, two at a time. While one write copies its lines, the next opens
//! its transaction, creates its statements, takes its line ids and renders its `COPY` text,
//! so the round trips and fixed costs of one write hide behind the other's `COPY` (on two
//! cores the database was idle a fifth of a one-at-a-time import).
//!
//! What keeps it exactly equal to writing the batches one after the other:
//! - **Order.** A write commits only after the previous one has committed: what is
//!   committed is always a prefix of the listing, so the cursor never skips a write that
//!   failed; if one fails, the later one rolls back. The two writes' `COPY`s run at the
//!   same time (on two cores a first import takes 0.87 of the time it took with one `COPY`
//!   after the other): their rows cannot share a key of a unique index (next item), so
//!   neither waits for the other inside Postgres. Should they ever, by a fault of ours, the
//!   later write's wait for the earlier one's end is itself a Postgres lock
//!   ([`WRITE_LOCK`]), so Postgres sees the cycle and fails one of them instead of both
//!   waiting for ever.
//! - **Keys.** Line ids come from the sequence; Salt Edge ids only grow (see "only the plain
//!   case"); identities are handed over (next item).
//! - **Identities.** The next write cannot see the lines of the write in flight: their
//!   (account, fingerprint) → (first line, highest occurrence) are handed over in memory
//!   and laid over what the database holds ([`Identities`]); anything older has committed.
//! - **Statements.** Statements this sync created are known by id ([`statements::assign_ahead`])
//!   and only marked as changed once the previous write has committed (writing them
//!   earlier would wait for its lock anyway).
//! - **Only the plain case.** A batch whose Salt Edge ids do not all come after every id
//!   written before (a listing out of order could repeat an id, which the one-at-a-time
//!   write resolves with an upsert), or that carries a look-alike hint (looked up among
//!   stored lines in SQL), waits for the writes in flight and is written alone
//!   ([`write_prepared`]).
//!
//! At most two transactions are open: before a write starts, the one before the write in
//! flight has committed.

use std::collections::{HashMap, VecDeque};

use chrono::NaiveDate;
use sqlx::PgPool;
use tokio::sync::oneshot;
use uuid::Uuid;

use super::{
    fingerprint_digest, identities_of, line_ids, link_pending, match_pending_rows, occurrences,
    propose_pending, render_lines, send_copy, write_prepared, DedupOptions, Identities, LineStatus,
    PendingLines, PreparedPage, Row,
};
use crate::error::{Result, SyncError};
use crate::statements;

/// What every write of one sync shares.
#[derive(Clone, Copy)]
pub struct WriteContext<'a> {
    pub pool: &'a PgPool,
    pub run_id: Uuid,
    pub opts: &'a DedupOptions,
    /// The connection's lock, checked inside each write's transaction.
    pub lock: Option<&'a crate::ingest::lock::ConnectionLock>,
}

/// The writes of one first import.
#[derive(Default)]
pub struct ImportPipeline {
    /// Spawned writes, oldest first (at most two).
    in_flight: VecDeque<InFlight>,
    /// Statements this sync created or touched: (account, period start) → id.
    statements: HashMap<(Uuid, NaiveDate), i64>,
    /// The highest numeric Salt Edge id written so far (see the module's "only the plain
    /// case").
    last_id: Option<u64>,
}

/// A write spawned and not yet awaited.
struct InFlight {
    /// Its lines' identities, for the next write.
    identities: Identities,
    /// Its [`WRITE_LOCK`] key, held until it ends (none for a write without lines).
    lock_key: Option<i32>,
    /// Fires once it has committed.
    committed: Option<oneshot::Receiver<()>>,
    task: AbortOnDrop,
}

/// The spawned write stops with the sync, however it ends (its transaction rolls back).
struct AbortOnDrop(Option<tokio::task::JoinHandle<Result<()>>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            t.abort();
        }
    }
}

impl AbortOnDrop {
    async fn join(mut self) -> Result<()> {
        match self.0.take() {
            Some(t) => t
                .await
                .map_err(|e| SyncError::Corrupt(format!("a write's task ended: {e}")))?,
            None => Ok(()),
        }
    }
}

impl ImportPipeline {
    /// Writes a batch of a first import (a connection without lines when the sync began),
    /// overlapping it with the write before it where that is safe.
    pub async fn write(
        &mut self,
        ctx: &WriteContext<'_>,
        page: PreparedPage,
        pending: &mut PendingLines,
    ) -> Result<()> {
        let ids: Option<Vec<u64>> = page
            .rows
            .iter()
            .map(|r| r.saltedge_id.parse::<u64>().ok())
            .collect();
        let in_order = ids.as_ref().is_some_and(|ids| {
            ids.iter()
                .min()
                .is_some_and(|min| self.last_id.is_none_or(|last| *min > last))
        });
        let plain = page.status == LineStatus::Posted
            && page.held.is_empty()
            && in_order
            && !page.rows.iter().any(|r| r.possible_duplicate);
        // Every id so far, whichever way it is written.
        let top = ids.as_ref().and_then(|ids| ids.iter().max().copied());
        self.last_id = match (self.last_id, top) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        if !plain {
            // A batch with a non-numeric id leaves no order to rely on from here.
            if ids.is_none() {
                self.last_id = Some(u64::MAX);
            }
            self.drain().await?;
            let WriteContext {
                pool,
                run_id,
                opts,
                lock,
            } = *ctx;
            write_prepared(pool, run_id, page, false, pending, opts, lock).await?;
            return Ok(());
        }
        // At most two transactions: the write before the one in flight has committed.
        while self.in_flight.len() > 1 {
            if let Some(oldest) = self.in_flight.pop_front() {
                oldest.task.join().await?;
            }
        }
        self.start(ctx, page, pending).await
    }

    /// Waits for every write in flight, in order.
    pub async fn drain(&mut self) -> Result<()> {
        while let Some(w) = self.in_flight.pop_front() {
            w.task.join().await?;
        }
        Ok(())
    }

    /// The part of a write that the next one depends on, then the rest on its own task.
    async fn start(
        &mut self,
        ctx: &WriteContext<'_>,
        page: PreparedPage,
        pending: &mut PendingLines,
    ) -> Result<()> {
        let (pool, run_id, opts) = (ctx.pool, ctx.run_id, ctx.opts);
        let PreparedPage {
            mut rows,
            mut out,
            quarantined,
            pages,
            ..
        } = page;
        let lock = ctx.lock.map(|l| l.holder());
        let mut db = pool.begin().await?;
        crate::quarantine::record(&mut *db, run_id, &quarantined).await?;
        if !rows.is_empty() && pending.any_left() {
            match_pending_rows(&mut rows, &HashMap::new(), pending, opts);
        }
        let new_lines: Vec<(Uuid, NaiveDate)> = rows
            .iter()
            .map(|r| (r.bank_account_id, r.booking_date))
            .collect();
        let (statement_ids, touch) =
            statements::assign_ahead(&mut db, &new_lines, &mut self.statements).await?;
        for (r, s) in rows.iter_mut().zip(statement_ids) {
            r.statement_id = Some(s);
        }
        // Identities: what has committed (only fingerprints this sync may have stored can
        // have one), then the write in flight's over it.
        let digest = |r: &Row| fingerprint_digest(r.bank_account_id, &r.fingerprint);
        let lookup: Vec<&Row> = rows
            .iter()
            .filter(|r| pending.stored_fingerprints.may_contain(digest(r)))
            .collect();
        let mut base = identities_of(&mut db, &lookup).await?;
        if let Some(previous) = self.in_flight.back() {
            for r in &rows {
                let key = (r.bank_account_id, r.fingerprint.clone());
                if let Some(v) = previous.identities.get(&key) {
                    base.insert(key, *v);
                }
            }
        }
        for r in &rows {
            pending.stored_fingerprints.insert(digest(r));
        }
        let (occurrence, first) = occurrences(&rows, &base);
        let (company, line_ids) = line_ids(&mut db, run_id, rows.len()).await?;
        let lock_key = line_ids.first().map(|id| write_lock_key(*id));
        if let Some(key) = lock_key {
            sqlx::query!("SELECT pg_advisory_xact_lock($1, $2)", WRITE_LOCK, key)
                .execute(&mut *db)
                .await?;
        }
        let (text, written) = render_lines(&rows, &line_ids, company, run_id, &occurrence, &first);
        // This write's identities, for the next one.
        let mut identities: Identities = HashMap::new();
        for (i, r) in rows.iter().enumerate() {
            let e = identities
                .entry((r.bank_account_id, r.fingerprint.clone()))
                .or_insert((first[i].unwrap_or(line_ids[i]), occurrence[i]));
            e.1 = e.1.max(occurrence[i]);
        }
        let (mut pids, mut lids) = (vec![], vec![]);
        let (mut proposed, mut proposed_lines) = (vec![], vec![]);
        for (r, id) in rows.iter().zip(&line_ids) {
            if let Some(p) = r.pending_id {
                pids.push(p);
                lids.push(*id);
            }
            if let Some(p) = r.pending_proposal {
                proposed.push(p);
                proposed_lines.push(*id);
            }
        }
        let flagged: Vec<i64> = line_ids
            .iter()
            .zip(&written)
            .filter_map(|(id, flagged)| flagged.then_some(*id))
            .collect();
        out.inserted += rows.len() as i32;
        out.suspects = flagged.len() as i32;
        drop(written);
        tokio::task::spawn_blocking(move || drop(rows));

        let previous = self.in_flight.back_mut();
        let (wait_key, wait_committed) = match previous {
            Some(p) => (p.lock_key, p.committed.take()),
            None => (None, None),
        };
        let (committed_tx, committed) = oneshot::channel();
        let task = tokio::spawn(async move {
            let earlier_failed =
                || SyncError::Corrupt("the sync's previous write did not commit".into());
            send_copy(&mut db, text).await?;
            link_pending(&mut db, pids, lids, run_id).await?;
            propose_pending(&mut db, proposed, proposed_lines).await?;
            crate::history::record_flagged(&mut db, run_id, &flagged).await?;
            // The previous write's end, waited for in Postgres first (see the module's
            // "order"), then its outcome.
            if let Some(key) = wait_key {
                sqlx::query!(
                    "SELECT pg_advisory_xact_lock_shared($1, $2)",
                    WRITE_LOCK,
                    key
                )
                .execute(&mut *db)
                .await?;
            }
            if let Some(w) = wait_committed {
                w.await.map_err(|_| earlier_failed())?;
            }
            statements::touch(&mut db, &touch).await?;
            crate::runs::add_pages(&mut *db, run_id, pages, &out, lock).await?;
            db.commit().await?;
            let _ = committed_tx.send(());
            Ok(())
        });
        self.in_flight.push_back(InFlight {
            identities,
            lock_key,
            committed: Some(committed),
            task: AbortOnDrop(Some(task)),
        });
        Ok(())
    }
}

/// The class of the transaction-level advisory locks a first import's writes hold while
/// they are open (two-key form: apart from the connection locks' one-key form). The key is
/// the write's first line id, which no other write ever has (bar a wrap of 2³² ids, which at
/// worst makes one write wait for an unrelated one to end).
pub const WRITE_LOCK: i32 = 0x6273_7772; // "bswr"

fn write_lock_key(first_line_id: i64) -> i32 {
    first_line_id as i32
}
