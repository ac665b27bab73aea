//! The sync engine: Salt Edge connections and accounts become journals, transactions become
//! deduplicated statement lines in Postgres. The folders show the architecture:
//!
//! * [`flows`]: the bookkeeper's flows (link, update credentials, fetch accounts, sync now,
//!   answer the bank, revoke, delete, review a flagged line) as the REST API calls them;
//! * [`ingest`]: one sync of a connection ([`ingest::run`], page by page), the lines it
//!   writes with the deduplication rules ([`ingest::lines`]: read its doc first), the
//!   balance check, the per-connection lock and the quarantine of records that cannot be
//!   stored;
//! * [`callbacks`]: verified Salt Edge callbacks stored once ([`callbacks::inbox`]) and
//!   applied to connections, never backwards ([`callbacks::events`]);
//! * [`jobs`]: the durable queue, the worker and one typed struct per job;
//! * [`schedule`]: the daily refresh rules, the tick and the lost-callback catch-up, and
//!   the fetch limit shared by replicas ([`schedule::fetch_limit`]);
//! * [`store`]: the records (companies, connections, accounts and journals, runs, lines,
//!   pending transactions, line history, statements, the change feed, tokens, audit, catalogue, retention, stats);
//! * [`error`] (one error type, by category), [`guidance`] (what to tell users),
//!   [`digest`].
//!
//! The store's modules, the callbacks' and a few others are re-exported at the root, so
//! that `sync_engine::connections` reads as it did.

pub mod callbacks;
pub mod cursor;
pub mod digest;
pub mod error;
pub mod export;
pub mod flows;
pub mod guidance;
pub mod ingest;
pub mod jobs;
pub mod schedule;
pub mod store;
pub mod webhooks;

pub use callbacks::{events, inbox};
pub use error::{Result, SyncError};
pub use flows::review;
pub use ingest::run::{sync_connection, SyncOptions, SyncReport};
pub use ingest::{balance, quarantine};
pub use jobs::worker;
pub use schedule::fetch_limit;
pub use store::{
    audit, catalogue, changes, companies, connections, console, history, mapping, pending,
    retention, runs, statement_lines, statements, stats, status, tokens,
};

/// The schema, embedded from the workspace's `migrations/` folder.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");
