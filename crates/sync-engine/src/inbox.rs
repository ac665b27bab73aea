//! The callback inbox: a verified callback is stored (with a job to process it) before it is
//! acknowledged, so nothing is lost, and stored once, so a redelivery is a no-op.

use sha2::{Digest, Sha256};
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
pub async fn store(pool: &PgPool, kind: &str, body: &str, connection_id: Option<&str>, event_time: Option<chrono::DateTime<chrono::Utc>>) -> Result<Stored> {
    let identity: String = Sha256::digest(format!("{kind}|{body}").as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    let mut tx = pool.begin().await?;
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO callback_inbox (identity, kind, connection_saltedge_id, event_time, body) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (identity) DO NOTHING RETURNING id",
    )
    .bind(&identity)
    .bind(kind)
    .bind(connection_id)
    .bind(event_time)
    .bind(body)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(id) = id else {
        return Ok(Stored::Duplicate);
    };
    jobs::enqueue(&mut *tx, jobs::PROCESS_CALLBACK, serde_json::json!({ "inbox_id": id }), None).await?;
    tx.commit().await?;
    Ok(Stored::Accepted)
}
