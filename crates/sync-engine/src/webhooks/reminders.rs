//! Consent reminders: `consent.expiring` 15, 3 and 1 days before a connection's consent
//! expires, then `consent.expired` with `connection.needs_reconnect`. Each fires once per
//! consent (a new consent after a reconnect starts again); a connection first seen with
//! 2 days left gets the 3-day reminder only, not the 15-day one too. Checked every minute
//! by each replica's deliverer; `consent_reminders` makes it once across replicas.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::error::Result;

/// Days before expiry that remind.
pub const THRESHOLDS: [i64; 3] = [15, 3, 1];

/// Emits the reminders due at `now`; returns how many events were written.
pub async fn check(pool: &PgPool, now: DateTime<Utc>) -> Result<usize> {
    let due = sqlx::query!(
        r#"SELECT c.id, c.company_id, c.consent_expires_at AS "expires!", c.provider_name
           FROM connections c
           WHERE c.consent_revoked_at IS NULL AND c.consent_expires_at IS NOT NULL AND c.status <> 'removed'
             AND c.consent_expires_at <= $1::timestamptz + interval '15 days'
             AND NOT EXISTS (SELECT 1 FROM consent_reminders r WHERE r.connection_id = c.id
                               AND r.consent_expires_at = c.consent_expires_at AND r.days = 0)"#,
        now
    )
    .fetch_all(pool)
    .await?;
    let mut emitted = 0;
    for c in due {
        let secs = (c.expires - now).num_seconds();
        let days_left = if secs <= 0 {
            0
        } else {
            (secs + 86_399) / 86_400
        };
        // The smallest threshold reached (0: expired); the larger ones are marked sent.
        let reached = if days_left == 0 {
            0
        } else {
            match THRESHOLDS.iter().rev().find(|t| days_left <= **t) {
                Some(t) => *t,
                None => continue,
            }
        };
        let marks: Vec<i32> = std::iter::once(0)
            .chain(THRESHOLDS)
            .filter(|t| *t >= reached)
            .map(|t| t as i32)
            .collect();
        let mut tx = pool.begin().await?;
        let fresh: Vec<i32> = sqlx::query_scalar!(
            "INSERT INTO consent_reminders (connection_id, consent_expires_at, days)
             SELECT $1, $2, d FROM UNNEST($3::int4[]) d
             ON CONFLICT DO NOTHING RETURNING days",
            c.id,
            c.expires,
            &marks
        )
        .fetch_all(&mut *tx)
        .await?;
        if fresh.contains(&(reached as i32)) {
            let data = serde_json::json!({
                "connection_id": c.id,
                "provider_name": c.provider_name,
                "consent_expires_at": c.expires,
                "expires_in_days": days_left,
            });
            if reached == 0 {
                super::emit(&mut tx, c.company_id, Some(c.id), "consent.expired", &data).await?;
                let mut again = data.clone();
                again["reason"] = "consent_expired".into();
                super::emit(
                    &mut tx,
                    c.company_id,
                    Some(c.id),
                    "connection.needs_reconnect",
                    &again,
                )
                .await?;
                emitted += 2;
            } else {
                super::emit(&mut tx, c.company_id, Some(c.id), "consent.expiring", &data).await?;
                emitted += 1;
            }
        }
        tx.commit().await?;
    }
    Ok(emitted)
}
