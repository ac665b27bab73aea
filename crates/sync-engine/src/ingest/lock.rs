//! One sync per connection at a time, across tasks and processes: a session-level Postgres
//! advisory lock held on a connection taken out of the pool. If the process dies or the
//! future is dropped, that connection closes and Postgres releases the lock.

use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use crate::error::Result;

pub struct ConnectionLock {
    conn: PgConnection,
    key: i64,
    /// The backend holding the lock ([`ConnectionLock::holder`]).
    pid: i32,
}

/// Who holds a connection's lock, for a check inside another session's transaction
/// ([`crate::runs::add_pages`]): the lock's backend and its key as `pg_locks` shows a
/// bigint advisory lock (`classid` the high 32 bits, `objid` the low ones).
#[derive(Debug, Clone, Copy)]
pub struct LockHolder {
    pub pid: i32,
    pub classid: i64,
    pub objid: i64,
}

/// The lock key of a connection: the first 8 bytes of its UUID (random for v4).
pub fn key(connection_id: Uuid) -> i64 {
    let b = connection_id.as_bytes();
    i64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

impl ConnectionLock {
    /// Waits until no one else syncs this connection.
    pub async fn acquire(pool: &PgPool, connection_id: Uuid) -> Result<ConnectionLock> {
        let mut conn = pool.acquire().await?.detach();
        let key = key(connection_id);
        let pid = sqlx::query_scalar!(
            r#"SELECT pg_backend_pid() AS "pid!" FROM (SELECT pg_advisory_lock($1)) l"#,
            key
        )
        .fetch_one(&mut conn)
        .await?;
        Ok(ConnectionLock { conn, key, pid })
    }

    /// The lock as another session sees it, to check that it is still held in the same
    /// transaction as a write (one round trip fewer than [`ConnectionLock::ensure_held`]).
    pub fn holder(&self) -> LockHolder {
        let k = self.key as u64;
        LockHolder {
            pid: self.pid,
            classid: (k >> 32) as i64,
            objid: (k & 0xFFFF_FFFF) as i64,
        }
    }

    /// Fails when the lock's session is gone (the server ended it, the network cut it): the
    /// lock went with it and another sync may run, so this one must stop writing.
    pub async fn ensure_held(&mut self) -> Result<()> {
        match sqlx::query_scalar!(r#"SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted) AS "held!""#)
            .fetch_one(&mut self.conn)
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) | Err(_) => Err(crate::error::SyncError::LockLost),
        }
    }

    pub async fn release(mut self) {
        let _ = sqlx::query_scalar!("SELECT pg_advisory_unlock($1)", self.key)
            .fetch_one(&mut self.conn)
            .await;
        let _ = self.conn.close().await;
    }
}
