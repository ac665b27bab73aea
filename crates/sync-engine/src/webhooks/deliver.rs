//! Sending deliveries: each replica's deliverer claims the due head of each (endpoint,
//! connection) queue under a lease, posts it signed, and records the answer. At least once:
//! a replica that dies mid-delivery lets its lease run out and another sends the same
//! message (same `webhook-id`) again. In order: a queue's next delivery waits until the
//! one before it is delivered. Failures are retried with exponential backoff; an endpoint
//! failing for `disable_after` is disabled, with the reason, and the audit log says so.
//!
//! Fair to every tenant: each endpoint has at most one delivery in flight (across
//! replicas), each company at most `per_company` (a company's endpoints that never answer
//! hold that many requests, not the deliverer), and each replica keeps at most `batch`
//! in flight, claiming the next as soon as one ends — it never waits for the slowest.

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use sqlx::PgPool;
use uuid::Uuid;

use super::target::{self, TargetPolicy};
use crate::error::Result;

/// How deliveries go out.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    pub policy: TargetPolicy,
    pub connect_timeout: Duration,
    /// The whole request, answer included.
    pub timeout: Duration,
    /// The first retry waits this long, doubling up to `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// An endpoint failing without a success for this long is disabled.
    pub disable_after: Duration,
    /// How often a deliverer looks for due deliveries.
    pub poll: Duration,
    /// Deliveries in flight at once in one deliverer.
    pub batch: i64,
    /// Deliveries of one company in flight at once, across replicas.
    pub per_company: i64,
    /// How long a claimed delivery is held (more than `timeout`).
    pub lease: Duration,
    /// The key endpoints' secrets are sealed with.
    pub key: super::SecretKey,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            policy: TargetPolicy::default(),
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
            retry_base: Duration::from_secs(5),
            retry_max: Duration::from_secs(3600),
            disable_after: Duration::from_secs(72 * 3600),
            poll: Duration::from_millis(500),
            key: super::SecretKey::development(),
            batch: 16,
            per_company: 4,
            lease: Duration::from_secs(40),
        }
    }
}

/// One claimed delivery.
struct Claimed {
    id: i64,
    event_id: i64,
    endpoint_id: Uuid,
    company_id: Uuid,
    attempts: i32,
    payload: serde_json::Value,
    url: String,
    secret: String,
    previous_secret: Option<String>,
}

/// Sends due deliveries, and the consent reminders, until stopped.
pub struct Deliverer {
    pool: PgPool,
    cfg: DeliveryConfig,
    http: reqwest::Client,
    cursor_secret: tokio::sync::OnceCell<Vec<u8>>,
}

impl Deliverer {
    pub fn new(pool: PgPool, cfg: DeliveryConfig) -> Deliverer {
        let http = target::client(cfg.policy, cfg.connect_timeout, cfg.timeout);
        Deliverer {
            pool,
            cfg,
            http,
            cursor_secret: tokio::sync::OnceCell::new(),
        }
    }

    /// Runs until `stop` turns true; errors (the database away) are logged and retried.
    /// Deliveries run on their own tasks, at most `batch` at once; as each ends the next due
    /// one is claimed. On stop the ones in flight finish (each is bounded by `timeout`).
    pub async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let me = std::sync::Arc::new(self);
        let mut last_reminders = std::time::Instant::now() - Duration::from_secs(3600);
        let mut inflight: tokio::task::JoinSet<Uuid> = tokio::task::JoinSet::new();
        let mut busy: HashSet<Uuid> = HashSet::new();
        loop {
            while let Some(done) = inflight.try_join_next() {
                if let Ok(endpoint) = done {
                    busy.remove(&endpoint);
                }
            }
            if *stop.borrow() {
                while inflight.join_next().await.is_some() {}
                return;
            }
            if last_reminders.elapsed() > Duration::from_secs(60) {
                match super::reminders::check(&me.pool, Utc::now()).await {
                    Ok(_) => last_reminders = std::time::Instant::now(),
                    Err(e) => tracing::warn!(error = %e, "consent reminders failed; retrying"),
                }
            }
            let room = me.cfg.batch - inflight.len() as i64;
            let mut claimed = 0;
            if room > 0 {
                let skip: Vec<Uuid> = busy.iter().copied().collect();
                match me.claim(room, &skip).await {
                    Ok(batch) => {
                        claimed = batch.len();
                        for c in batch {
                            busy.insert(c.endpoint_id);
                            let d = me.clone();
                            inflight.spawn(async move {
                                let endpoint = c.endpoint_id;
                                d.send(c).await;
                                endpoint
                            });
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "claiming webhook deliveries failed; retrying")
                    }
                }
            }
            if claimed == 0 {
                // Nothing due (or no room): wait for a delivery to end, the poll, or stop.
                tokio::select! {
                    Some(done) = inflight.join_next(), if !inflight.is_empty() => {
                        if let Ok(endpoint) = done {
                            busy.remove(&endpoint);
                        }
                    }
                    _ = tokio::time::sleep(me.cfg.poll) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    }

    /// Claims up to `limit` due queue heads: one per endpoint (none of an endpoint with a
    /// delivery in flight anywhere, or in `skip`), none of a company with `per_company`
    /// in flight, companies taking turns (each one's oldest first).
    async fn claim(&self, limit: i64, skip: &[Uuid]) -> Result<Vec<Claimed>> {
        let rows = sqlx::query!(
            r#"WITH heads AS (
                 SELECT DISTINCT ON (d.endpoint_id, d.order_key) d.id, d.endpoint_id, d.company_id, d.next_attempt_at
                 FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id AND e.enabled
                 WHERE d.state = 'pending'
                 ORDER BY d.endpoint_id, d.order_key, d.id),
               flying AS (
                 SELECT endpoint_id, company_id FROM webhook_deliveries
                 WHERE state = 'pending' AND leased_until > now()),
               ready AS (
                 SELECT DISTINCT ON (h.endpoint_id) h.id, h.company_id, h.next_attempt_at
                 FROM heads h
                 WHERE h.next_attempt_at <= now() AND NOT (h.endpoint_id = ANY($3))
                   AND NOT EXISTS (SELECT 1 FROM flying f WHERE f.endpoint_id = h.endpoint_id)
                 ORDER BY h.endpoint_id, h.next_attempt_at, h.id),
               turns AS (
                 SELECT r.id, r.next_attempt_at,
                        row_number() OVER (PARTITION BY r.company_id ORDER BY r.next_attempt_at, r.id)
                          + (SELECT count(*) FROM flying f WHERE f.company_id = r.company_id) AS turn
                 FROM ready r),
               due AS (
                 SELECT x.id FROM webhook_deliveries x JOIN turns t ON t.id = x.id
                 WHERE x.state = 'pending' AND (x.leased_until IS NULL OR x.leased_until < now())
                   AND t.turn <= $4
                 ORDER BY t.turn, t.next_attempt_at, x.id LIMIT $2
                 FOR UPDATE OF x SKIP LOCKED)
               UPDATE webhook_deliveries d
               SET leased_until = now() + make_interval(secs => $1), attempts = d.attempts + 1, last_attempt_at = now()
               FROM due, webhook_events ev, webhook_endpoints e
               WHERE d.id = due.id AND ev.id = d.event_id AND e.id = d.endpoint_id
               RETURNING d.id, d.event_id, d.endpoint_id, d.company_id, d.attempts, ev.payload, e.url, e.secret,
                         CASE WHEN e.previous_secret_until > now() THEN e.previous_secret END AS previous_secret"#,
            self.cfg.lease.as_secs_f64(),
            limit,
            skip,
            self.cfg.per_company
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| Claimed {
                id: r.id,
                event_id: r.event_id,
                endpoint_id: r.endpoint_id,
                company_id: r.company_id,
                attempts: r.attempts,
                payload: r.payload,
                url: r.url,
                secret: r.secret,
                previous_secret: r.previous_secret,
            })
            .collect())
    }

    /// The body as sent: `lines.changed` carries a change-feed cursor, signed here from
    /// the position the event recorded (the same bytes on every attempt).
    async fn body(&self, c: &Claimed) -> Result<Vec<u8>> {
        let mut payload = c.payload.clone();
        if let Some(data) = payload.get_mut("data").and_then(|d| d.as_object_mut()) {
            if let Some(pos) = data.remove("feed_position") {
                let secret = self
                    .cursor_secret
                    .get_or_try_init(|| crate::tokens::service_secret(&self.pool, "cursor"))
                    .await?;
                let scope = crate::cursor::changes_scope(c.company_id, None);
                data.insert(
                    "cursor".into(),
                    crate::cursor::sign(secret, &scope, pos.as_str().unwrap_or_default()).into(),
                );
            }
        }
        Ok(serde_json::to_vec(&payload).expect("JSON values serialise"))
    }

    async fn send(&self, c: Claimed) {
        let outcome = self.attempt(&c).await;
        if let Err(e) = self.record(&c, outcome).await {
            // The lease runs out and the delivery goes again: at least once.
            tracing::warn!(delivery = c.id, error = %e, "could not record a webhook attempt");
        }
    }

    /// Posts the delivery; Ok(status) for a 2xx, Err((status, why)) otherwise.
    async fn attempt(&self, c: &Claimed) -> std::result::Result<u16, (Option<u16>, String)> {
        // Checked again at send time: the policy may have tightened since registration, and
        // an IP literal or `localhost` never reaches the checking resolver.
        target::check_url(&c.url, self.cfg.policy).map_err(|e| (None, e.to_string()))?;
        let body = self.body(c).await.map_err(|e| (None, e.to_string()))?;
        let id = format!("evt_{}", c.event_id);
        let open = |s: &str| self.cfg.key.open(c.company_id, s);
        let current = open(&c.secret).map_err(|e| (None, e.to_string()))?;
        // A previous secret that no longer opens only costs its signature.
        let previous = c.previous_secret.as_deref().and_then(|s| open(s).ok());
        let mut secrets = vec![current.as_str()];
        secrets.extend(previous.as_deref());
        let headers = super::headers(&id, Utc::now().timestamp(), &body, &secrets);
        let mut req = self
            .http
            .post(&c.url)
            .header("content-type", "application/json");
        for (k, v) in headers {
            req = req.header(k, v);
        }
        match req.body(body).send().await {
            Ok(r) if r.status().is_success() => Ok(r.status().as_u16()),
            Ok(r) => Err((
                Some(r.status().as_u16()),
                format!("answered {}", r.status()),
            )),
            Err(e) => Err((None, describe(&e))),
        }
    }

    async fn record(
        &self,
        c: &Claimed,
        outcome: std::result::Result<u16, (Option<u16>, String)>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        match outcome {
            Ok(status) => {
                sqlx::query!(
                    "UPDATE webhook_deliveries SET state = 'delivered', delivered_at = now(), leased_until = NULL,
                       last_status = $2, last_error = NULL WHERE id = $1",
                    c.id,
                    status as i32
                )
                .execute(&mut *tx)
                .await?;
                sqlx::query!(
                    "UPDATE webhook_endpoints SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL",
                    c.endpoint_id
                )
                .execute(&mut *tx)
                .await?;
            }
            Err((status, why)) => {
                let wait = backoff(self.cfg.retry_base, self.cfg.retry_max, c.attempts);
                sqlx::query!(
                    "UPDATE webhook_deliveries SET leased_until = NULL, last_status = $2, last_error = $3,
                       next_attempt_at = now() + make_interval(secs => $4) WHERE id = $1",
                    c.id,
                    status.map(i32::from),
                    why,
                    wait.as_secs_f64()
                )
                .execute(&mut *tx)
                .await?;
                let disabled = sqlx::query_scalar!(
                    r#"UPDATE webhook_endpoints SET failing_since = coalesce(failing_since, now()),
                         enabled = CASE WHEN failing_since < now() - make_interval(secs => $2) THEN false ELSE enabled END,
                         disabled_at = CASE WHEN failing_since < now() - make_interval(secs => $2) THEN now() ELSE disabled_at END,
                         disabled_reason = CASE WHEN failing_since < now() - make_interval(secs => $2)
                             THEN 'failing since ' || to_char(failing_since AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') || ': ' || $3
                             ELSE disabled_reason END
                       WHERE id = $1 AND enabled
                       RETURNING NOT enabled AS "disabled!""#,
                    c.endpoint_id,
                    self.cfg.disable_after.as_secs_f64(),
                    why
                )
                .fetch_optional(&mut *tx)
                .await?
                .unwrap_or(false);
                if disabled {
                    tracing::warn!(endpoint = %c.endpoint_id, reason = %why, "webhook endpoint disabled: failing too long");
                    sqlx::query!(
                        "INSERT INTO audit_log (company_id, actor, action, detail) VALUES ($1, 'banksync', 'webhook endpoint disabled', $2)",
                        c.company_id,
                        format!("endpoint {}: failing for longer than the limit; last error: {why}", c.endpoint_id)
                    )
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

/// The wait before attempt `attempts + 1`: `base` doubled per attempt, at most `max`, with
/// up to a fifth added at random so that failing receivers are not hit in lockstep.
pub fn backoff(base: Duration, max: Duration, attempts: i32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempts.clamp(1, 20).saturating_sub(1) as u32);
    let d = exp.min(max);
    let jitter = rand::random::<f64>() * 0.2;
    d + d.mul_f64(jitter)
}

/// Why a request failed, without the URL (it may hold a token in its path).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_redirect() {
        "redirected (not followed)"
    } else {
        "request failed"
    };
    let mut why = kind.to_string();
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = src {
        why = format!("{why}: {s}");
        src = s.source();
    }
    why.chars().take(500).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let (b, m) = (Duration::from_secs(5), Duration::from_secs(60));
        let first = backoff(b, m, 1);
        assert!(first >= b && first <= b.mul_f64(1.2));
        let third = backoff(b, m, 3);
        assert!(third >= Duration::from_secs(20) && third <= Duration::from_secs(24));
        let late = backoff(b, m, 30);
        assert!(late >= m && late <= m.mul_f64(1.2));
    }
}
