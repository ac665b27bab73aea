//! The sync engine: Salt Edge connections and accounts become journals, transactions
//! become deduplicated statement lines in Postgres.

/// The schema, embedded from the workspace's `migrations/` folder.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");
