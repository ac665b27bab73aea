//! The connection pool's rules, shared by `banksync serve`, the worker and the benchmarks.

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;

/// How long a connection may sit idle and still be handed out without a ping.
pub const PING_IDLE: Duration = Duration::from_secs(5);

/// Pool options where a connection that sat idle for `ping_idle` or more is pinged before
/// it is handed out (one round trip) and a busy one is not. sqlx pings every connection on
/// its way back to the pool anyway (closing a broken one), so the ping on the way out only
/// matters for connections that may have died while idle (a Postgres restart, a proxy's
/// idle timeout); pinging every one (sqlx's default) cost each list request two round
/// trips (`bench load`: ~10 % of its requests per second).
///
/// Every connection runs with JIT compilation off: banksync's statements are short, and
/// where a generic plan's estimate crossed `jit_above_cost` (a night's upsert of 50 lines
/// over an account of 1,000,000) compiling took 0.3–0.5 s of a 1 ms statement.
pub fn options(ping_idle: Duration) -> PgPoolOptions {
    PgPoolOptions::new()
        .after_connect(|conn, _| {
            Box::pin(async move {
                sqlx::Executor::execute(&mut *conn, "SET jit = off").await?;
                Ok(())
            })
        })
        .test_before_acquire(false)
        .before_acquire(move |conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= ping_idle {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
}
