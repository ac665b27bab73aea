//! The sync engine: Salt Edge connections and accounts become journals, transactions become
//! deduplicated statement lines in Postgres.
//!
//! * [`sync`]: one sync run of a connection, page by page;
//! * [`dedup`]: the deduplication rules (read its doc first);
//! * [`mapping`]: bank accounts → journals;
//! * [`balance`]: the balance check after each sync;
//! * [`lock`]: one sync per connection at a time, across processes;
//! * [`inbox`] stores verified callbacks once; [`events`] applies them to connections;
//! * [`jobs`] is the durable queue, [`worker`] runs it; [`scheduler`] decides daily refreshes
//!   and [`fetch_limit`] keeps all replicas under Salt Edge's fetch rate;
//! * [`catalogue`] (institutions), [`tokens`] (API tokens), [`guidance`] (what to tell users);
//! * [`review`]: a bookkeeper confirms or dismisses a flagged look-alike line;
//! * [`runs`], [`connections`], [`companies`]: the records.

pub mod audit;
pub mod balance;
pub mod catalogue;
pub mod companies;
pub mod connections;
pub mod dedup;
pub mod digest;
pub mod error;
pub mod events;
pub mod fetch_limit;
pub mod flows;
pub mod guidance;
pub mod inbox;
pub mod jobs;
pub mod lock;
pub mod mapping;
pub mod quarantine;
pub mod retention;
pub mod review;
pub mod runs;
pub mod scheduler;
pub mod statement_lines;
pub mod stats;
pub mod sync;
pub mod tokens;

pub use error::{Result, SyncError};
pub use jobs::worker;
pub use sync::{sync_connection, SyncOptions, SyncReport};

/// The schema, embedded from the workspace's `migrations/` folder.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");
