//! The local provider catalogue ("institutions"), refreshed from Salt Edge once a day.

use saltedge_client::{Client, ProviderQuery};
use sqlx::PgPool;

use crate::error::Result;

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct Institution {
    pub code: String,
    pub name: String,
    pub country_code: String,
    pub mode: String,
    pub status: String,
    pub interactive: bool,
    pub automatic_fetch: bool,
    pub refresh_timeout: i32,
    pub max_consent_days: Option<i32>,
    pub fake: bool,
}

impl Institution {
    /// Salt Edge's provider status is kept as Salt Edge sends it (a value it adds later
    /// survives); only `active` providers can be linked.
    pub fn is_active(&self) -> bool {
        self.status == "active"
    }
}

/// Replaces the catalogue with Salt Edge's current providers and countries. Returns how
/// many providers it holds.
pub async fn refresh(pool: &PgPool, client: &Client) -> Result<usize> {
    let providers = client
        .list_providers(&ProviderQuery {
            include_fake_providers: true,
            ..Default::default()
        })
        .await?;
    let countries = client.list_countries().await?;
    let mut tx = pool.begin().await?;
    for p in &providers {
        sqlx::query!("INSERT INTO providers (code, name, country_code, mode, status, interactive, automatic_fetch, refresh_timeout,
                 max_consent_days, fake, refreshed_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now())
             ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, country_code = EXCLUDED.country_code,
                 mode = EXCLUDED.mode, status = EXCLUDED.status, interactive = EXCLUDED.interactive,
                 automatic_fetch = EXCLUDED.automatic_fetch, refresh_timeout = EXCLUDED.refresh_timeout,
                 max_consent_days = EXCLUDED.max_consent_days, fake = EXCLUDED.fake, refreshed_at = now()", &p.code, &p.name, &p.country_code, &p.mode, &p.status, p.interactive, p.automatic_fetch, p.refresh_timeout as i32, p.max_consent_days.map(|d| d as i32), // Salt Edge's fake providers live in the fake country XF.
p.country_code == "XF")
        .execute(&mut *tx)
        .await?;
    }
    let codes: Vec<&str> = providers.iter().map(|p| p.code.as_str()).collect();
    sqlx::query!(
        "UPDATE providers SET status = 'disabled' WHERE NOT (code = ANY($1))",
        &codes as &[&str]
    )
    .execute(&mut *tx)
    .await?;
    for c in &countries {
        sqlx::query!("INSERT INTO countries (code, name, refresh_start_time) VALUES ($1, $2, $3)
             ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, refresh_start_time = EXCLUDED.refresh_start_time", &c.code, &c.name, c.refresh_start_time.map(|t| t as i32))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(providers.len())
}

pub async fn is_empty(pool: &PgPool) -> Result<bool> {
    Ok(
        !sqlx::query_scalar!(r#"SELECT EXISTS (SELECT 1 FROM providers) AS "exists!""#)
            .fetch_one(pool)
            .await?,
    )
}

/// Active institutions, filtered by country and a name search; fake ones only when asked.
pub async fn search(
    pool: &PgPool,
    country: Option<&str>,
    q: Option<&str>,
    include_fake: bool,
    limit: i64,
) -> Result<Vec<Institution>> {
    Ok(sqlx::query_as!(Institution, r#"SELECT code, name, country_code, mode, status, interactive, automatic_fetch, refresh_timeout, max_consent_days, fake FROM providers
         WHERE status = 'active' AND ($1::text IS NULL OR country_code = upper($1))
           AND ($2::text IS NULL OR name ILIKE '%' || $2 || '%' ESCAPE '\' OR code ILIKE '%' || $2 || '%' ESCAPE '\')
           AND ($3 OR NOT fake)
         ORDER BY country_code, name LIMIT $4"#, country, // `%` and `_` in a search are letters, not wildcards.
q.map(|q| q.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")), include_fake, limit)
    .fetch_all(pool)
    .await?)
}

pub async fn get(pool: &PgPool, code: &str) -> Result<Option<Institution>> {
    Ok(
        sqlx::query_as!(Institution, r#"SELECT code, name, country_code, mode, status, interactive, automatic_fetch, refresh_timeout, max_consent_days, fake FROM providers WHERE code = $1"#, code)
            .fetch_optional(pool)
            .await?,
    )
}
