//! The callback inbox: a verified callback is stored (with a job to process it) before it is
//! acknowledged, so nothing is lost, and stored once, so a redelivery is a no-op.

use sqlx::PgPool;

use crate::error::Result;
use crate::jobs;

/// What was done with a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stored {
    Accepted,
    Duplicate,
}

/// Stores a verified callback of `kind` with its raw `body` and queues its processing, in
/// one transaction.
pub async fn store(
    pool: &PgPool,
    kind: &str,
    body: &str,
    connection_id: Option<&str>,
    event_time: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<Stored> {
    let identity = crate::digest::sha256_hex(format!("{kind}|{body}"), 32);
    // One statement, so one round trip and atomic: the event and its job exist together.
    let job: Option<i64> = sqlx::query_scalar!("WITH ins AS (
             INSERT INTO callback_inbox (identity, kind, connection_saltedge_id, event_time, body) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (identity) DO NOTHING RETURNING id)
         INSERT INTO jobs (kind, payload) SELECT $6, jsonb_build_object('inbox_id', id) FROM ins RETURNING id", &identity, kind, connection_id, event_time, body, <jobs::ProcessCallback as jobs::BackgroundJob>::KIND)
    .fetch_optional(pool)
    .await?;
    if job.is_none() {
        return Ok(Stored::Duplicate);
    }
    Ok(Stored::Accepted)
}
