//! Companies (tenants) and their Salt Edge customer.

use sqlx::PgPool;
use uuid::Uuid;

use crate::error::Result;

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct Company {
    pub id: Uuid,
    pub name: String,
}

pub async fn create(pool: &PgPool, name: &str) -> Result<Company> {
    Ok(sqlx::query_as!(
        Company,
        "INSERT INTO companies (name) VALUES ($1) RETURNING id, name",
        name
    )
    .fetch_one(pool)
    .await?)
}

pub async fn find(pool: &PgPool, id: Uuid) -> Result<Option<Company>> {
    Ok(
        sqlx::query_as!(Company, "SELECT id, name FROM companies WHERE id = $1", id)
            .fetch_optional(pool)
            .await?,
    )
}

/// A company by id, or by exact name when `key` is not a UUID.
pub async fn find_by_key(pool: &PgPool, key: &str) -> Result<Option<Company>> {
    if let Ok(id) = key.parse::<Uuid>() {
        return find(pool, id).await;
    }
    Ok(sqlx::query_as!(
        Company,
        "SELECT id, name FROM companies WHERE name = $1 ORDER BY created_at LIMIT 1",
        key
    )
    .fetch_optional(pool)
    .await?)
}

/// The company's own allowed `return_to` origins.
pub async fn return_to_origins(pool: &PgPool, company_id: Uuid) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar!(
        "SELECT return_to_origins FROM companies WHERE id = $1",
        company_id
    )
    .fetch_optional(pool)
    .await?
    .unwrap_or_default())
}

/// Adds an allowed `return_to` origin for the company.
pub async fn allow_origin(pool: &PgPool, company_id: Uuid, origin: &str) -> Result<()> {
    sqlx::query!(
        "UPDATE companies SET return_to_origins = array_append(return_to_origins, $2)
         WHERE id = $1 AND NOT ($2 = ANY(return_to_origins))",
        company_id,
        origin
    )
    .execute(pool)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct Customer {
    pub id: Uuid,
    pub company_id: Uuid,
    pub saltedge_id: String,
    pub identifier: String,
    pub email: Option<String>,
    pub phone: Option<String>,
}

pub async fn customer_of(pool: &PgPool, company_id: Uuid) -> Result<Option<Customer>> {
    Ok(sqlx::query_as!(
        Customer,
        "SELECT id, company_id, saltedge_id, identifier, email, phone FROM saltedge_customers WHERE company_id = $1",
        company_id
    )
    .fetch_optional(pool)
    .await?)
}

pub async fn save_customer(
    pool: &PgPool,
    company_id: Uuid,
    saltedge_id: &str,
    identifier: &str,
    email: Option<&str>,
    phone: Option<&str>,
) -> Result<Customer> {
    Ok(sqlx::query_as!(
        Customer,
        "INSERT INTO saltedge_customers (company_id, saltedge_id, identifier, email, phone)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (company_id) DO UPDATE SET email = EXCLUDED.email, phone = EXCLUDED.phone
         RETURNING id, company_id, saltedge_id, identifier, email, phone",
        company_id,
        saltedge_id,
        identifier,
        email,
        phone
    )
    .fetch_one(pool)
    .await?)
}

/// The identifier a company's Salt Edge customer is created with: `<company id>/<email>`.
/// Scoped to the company, so that no company can take another's email or learn whether it
/// is in use; the email stays readable for whoever looks at Salt Edge's dashboard.
pub fn customer_identifier(company_id: Uuid, email: &str) -> String {
    format!("{company_id}/{email}")
}

/// Sets how the console shows the company's dates and amounts: a language tag such as
/// `de-DE` or `en-US` (refused otherwise).
pub async fn set_locale(pool: &PgPool, company_id: Uuid, locale: &str) -> Result<()> {
    let valid = {
        let mut parts = locale.split('-');
        let lang = parts.next().unwrap_or("");
        let region = parts.next();
        (2..=3).contains(&lang.len())
            && lang.chars().all(|c| c.is_ascii_lowercase())
            && region.is_none_or(|r| r.len() == 2 && r.chars().all(|c| c.is_ascii_uppercase()))
            && parts.next().is_none()
    };
    if !valid {
        return Err(crate::SyncError::invalid(
            "invalid_locale",
            "a locale is a language tag such as en-GB, en-US or de-DE",
        ));
    }
    sqlx::query!(
        "UPDATE companies SET locale = $2 WHERE id = $1",
        company_id,
        locale
    )
    .execute(pool)
    .await?;
    Ok(())
}
