//! The bookkeeper's flows, one function each, as the REST API (and any other front end)
//! calls them: link a bank, update credentials, fetch new accounts, sync now, answer the
//! bank's question, revoke consent, delete. A flow takes parsed inputs ([`input`]),
//! checks what the connection's state allows, talks to Salt Edge and records the result;
//! the HTTP handler only parses, authorizes and maps.

pub mod input;
pub mod review;
mod view;

use chrono::{DateTime, Utc};
use saltedge_client::models::{
    AttemptRequest, ConsentRequest, CreateConnectSession, ReconnectConnectSession,
    RefreshConnectSession,
};
use saltedge_client::{Client, ErrorClass};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

pub use input::{Email, Phone, ProviderCode, ReturnUrl};
pub use view::{connection_view, connection_views, ConnectionView};

use crate::connections::{self, Connection};
use crate::error::{Result, SyncError};
use crate::{catalogue, companies, jobs};

/// Where to send the user: Salt Edge Connect.
#[derive(Debug, Clone)]
pub struct ConnectLink {
    pub connect_url: String,
    pub expires_at: DateTime<Utc>,
}

/// The company's connection `id`; another company's does not exist, as far as the caller
/// knows.
pub async fn load(pool: &PgPool, company: Uuid, id: Uuid) -> Result<Connection> {
    match connections::get(pool, id).await {
        Ok(c) if c.company_id == company => Ok(c),
        Ok(_) => Err(SyncError::not_found("connection")),
        Err(e) => Err(e),
    }
}

/// What starting a Salt Edge Connect session is held to: where users may be sent back
/// (besides each company's own origins), and each company's quota of sessions inside the
/// shared fetch budget (`0` per minute: no quota).
#[derive(Debug, Clone, Default)]
pub struct ConnectPolicy {
    pub return_to_origins: Vec<String>,
    pub sessions_per_minute: u32,
    /// Sessions a company may start at once before the per-minute pace applies.
    pub session_burst: u32,
}

impl ConnectPolicy {
    /// Takes one of the company's sessions, or answers `Busy` with when the next is allowed:
    /// one company's link loop spends its own quota, not everyone's budget. The session's
    /// priority in the shared fetch budget comes with it.
    async fn take_session(
        &self,
        pool: &PgPool,
        company: Uuid,
    ) -> Result<saltedge_client::FetchPriority> {
        crate::schedule::fetch_limit::take_company_quota(
            pool,
            company,
            self.sessions_per_minute,
            self.session_burst,
        )
        .await
    }
}

/// `return_to`'s origin must be on the service-wide allow-list (`service_origins`) or the
/// company's own: Connect sends the user there with the connection id.
pub async fn allowed_return_to(
    pool: &PgPool,
    service_origins: &[String],
    company: Uuid,
    u: &ReturnUrl,
) -> Result<()> {
    let not_allowed = |origin: &str| SyncError::NotAllowed {
        code: "return_to_not_allowed",
        detail: format!(
            "return_to's origin {origin} is not on the allow-list; an operator adds it"
        ),
    };
    let Ok(url) = url::Url::parse(u.as_str()) else {
        return Err(not_allowed("(not a URL)"));
    };
    let origin = url.origin().ascii_serialization();
    let same =
        |o: &String| url::Url::parse(o).is_ok_and(|a| a.origin().ascii_serialization() == origin);
    if service_origins.iter().any(same) {
        return Ok(());
    }
    if companies::return_to_origins(pool, company)
        .await?
        .iter()
        .any(same)
    {
        return Ok(());
    }
    Err(not_allowed(&origin))
}

fn consent(max_days: Option<i32>) -> ConsentRequest {
    ConsentRequest {
        scopes: vec!["account_details".into(), "transactions_details".into()],
        from_date: None,
        period_days: Some(max_days.unwrap_or(90).clamp(1, 365) as u32),
    }
}

fn attempt(return_to: &ReturnUrl, company: Uuid) -> AttemptRequest {
    AttemptRequest {
        fetch_scopes: vec!["accounts".into(), "transactions".into()],
        return_to: Some(return_to.as_str().to_string()),
        custom_fields: Some(json!({ "company_id": company })),
        ..Default::default()
    }
}

/// What the user gives to link a bank.
#[derive(Debug, Clone)]
pub struct LinkRequest {
    pub provider_code: ProviderCode,
    pub phone: Phone,
    pub email: Email,
    pub return_to: ReturnUrl,
    /// Link even though the company already has a connection to this institution.
    pub allow_second_connection: bool,
}

/// Link a bank: everything is checked before anything is sent to Salt Edge; the email
/// creates the company's Salt Edge customer (once; a customer belongs to one company, its
/// identifier is scoped to the company: [`companies::customer_identifier`]), then
/// a Connect session asks for consent for the institution's maximum period, with daily
/// refresh. The connection record appears with Salt Edge's first callback.
pub async fn link(
    pool: &PgPool,
    client: &Client,
    policy: &ConnectPolicy,
    company: Uuid,
    req: &LinkRequest,
) -> Result<ConnectLink> {
    allowed_return_to(pool, &policy.return_to_origins, company, &req.return_to).await?;
    let inst = catalogue::get(pool, req.provider_code.as_str())
        .await?
        .filter(catalogue::Institution::is_active)
        .ok_or(SyncError::not_found("institution"))?;
    if !req.allow_second_connection {
        if let Some(connection_id) =
            connections::live_for_provider(pool, company, &inst.code).await?
        {
            return Err(SyncError::AlreadySynchronized { connection_id });
        }
    }
    let email = req.email.as_str();
    let customer = match companies::customer_of(pool, company).await? {
        Some(c) => c,
        None => {
            // The identifier names this company: no company can take, or learn about,
            // another's email, and a customer with it can only be this company's.
            let identifier = companies::customer_identifier(company, email);
            let se = match client.create_customer(&identifier).await {
                Ok(c) => c,
                // Created by an earlier attempt of this company whose record was lost (a
                // crash between Salt Edge's answer and our commit): it is ours.
                Err(e) if e.class() == Some(&ErrorClass::DuplicatedCustomer) => client
                    .find_customers(&identifier)
                    .await?
                    .into_iter()
                    .next()
                    .ok_or(SyncError::SaltEdge(e))?,
                Err(e) => return Err(e.into()),
            };
            companies::save_customer(
                pool,
                company,
                &se.id,
                &identifier,
                Some(email),
                Some(req.phone.as_str()),
            )
            .await?
        }
    };
    let priority = policy.take_session(pool, company).await?;
    let session = client
        .with_priority(priority)
        .create_connect_session(&CreateConnectSession {
            customer_id: customer.saltedge_id,
            consent: consent(inst.max_consent_days),
            attempt: attempt(&req.return_to, company),
            provider_code: Some(inst.code.clone()),
            country_code: None,
            daily_refresh: Some(true),
            include_fake_providers: Some(inst.fake),
            return_connection_id: Some(true),
            credentials_strategy: None,
        })
        .await?;
    Ok(ConnectLink {
        connect_url: session.connect_url,
        expires_at: session.expires_at,
    })
}

/// Update credentials (a reconnect, with a new consent): the way out of a revoked or
/// expired consent and of an inactive connection; refused once the connection is removed
/// or disabled.
pub async fn update_credentials(
    pool: &PgPool,
    client: &Client,
    policy: &ConnectPolicy,
    company: Uuid,
    id: Uuid,
    return_to: &ReturnUrl,
) -> Result<ConnectLink> {
    allowed_return_to(pool, &policy.return_to_origins, company, return_to).await?;
    let c = load(pool, company, id).await?;
    connections::usable(&c)?;
    let inst = catalogue::get(pool, &c.provider_code).await?;
    let priority = policy.take_session(pool, company).await?;
    let s = client
        .with_priority(priority)
        .reconnect_connect_session(&ReconnectConnectSession {
            connection_id: c.saltedge_id,
            consent: consent(inst.as_ref().and_then(|i| i.max_consent_days)),
            attempt: attempt(return_to, company),
            daily_refresh: Some(true),
            include_fake_providers: Some(inst.map(|i| i.fake).unwrap_or(false)),
            return_connection_id: Some(true),
            override_credentials_strategy: Some("ask".into()),
        })
        .await?;
    Ok(ConnectLink {
        connect_url: s.connect_url,
        expires_at: s.expires_at,
    })
}

/// Fetch new accounts: a refresh through Connect, for a readable connection.
pub async fn fetch_accounts(
    pool: &PgPool,
    client: &Client,
    policy: &ConnectPolicy,
    company: Uuid,
    id: Uuid,
    return_to: &ReturnUrl,
) -> Result<ConnectLink> {
    allowed_return_to(pool, &policy.return_to_origins, company, return_to).await?;
    let c = load(pool, company, id).await?;
    connections::readable(&c)?;
    let fake = catalogue::get(pool, &c.provider_code)
        .await?
        .map(|i| i.fake)
        .unwrap_or(false);
    let priority = policy.take_session(pool, company).await?;
    let s = client
        .with_priority(priority)
        .refresh_connect_session(&RefreshConnectSession {
            connection_id: c.saltedge_id,
            attempt: attempt(return_to, company),
            daily_refresh: Some(true),
            include_fake_providers: Some(fake),
            return_connection_id: Some(true),
        })
        .await?;
    Ok(ConnectLink {
        connect_url: s.connect_url,
        expires_at: s.expires_at,
    })
}

/// Sync now: queues a sync of a readable connection (or returns the one already queued).
pub async fn sync_now(pool: &PgPool, company: Uuid, id: Uuid) -> Result<Uuid> {
    let c = load(pool, company, id).await?;
    connections::readable(&c)?;
    jobs::queue_sync(pool, company, c.id, "api").await
}

/// Decides a proposed account match (confirm: the earlier bank account and its journal take
/// the new Salt Edge account over; reject: it gets a journal of its own) and queues a sync
/// of the connection, which imports its transactions accordingly.
pub async fn decide_account_match(
    pool: &PgPool,
    company: Uuid,
    proposal: i64,
    confirm: bool,
) -> Result<Uuid> {
    let connection = crate::mapping::decide(pool, company, proposal, confirm).await?;
    jobs::queue_sync(pool, company, connection, "account_match").await
}

/// Answers the bank's interactive question; Salt Edge carries on with the fetch and calls
/// back as usual. `credentials`: one answer (a string, or a list of strings) per field.
pub async fn answer_interactive(
    pool: &PgPool,
    client: &Client,
    company: Uuid,
    id: Uuid,
    credentials: &serde_json::Map<String, serde_json::Value>,
) -> Result<Connection> {
    let c = load(pool, company, id).await?;
    connections::usable(&c)?;
    if c.stage.as_deref() != Some("interactive") {
        return Err(SyncError::conflict(
            "not_waiting_for_input",
            "the bank is not waiting for an answer on this connection",
        ));
    }
    let names: Vec<String> = c
        .interactive_fields_names
        .as_ref()
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    let invalid = |detail: String| SyncError::invalid("invalid_credentials", detail);
    if credentials.is_empty() {
        return Err(invalid("credentials must name at least one field".into()));
    }
    if let Some(unknown) = credentials
        .keys()
        .find(|k| !names.is_empty() && !names.contains(k))
    {
        return Err(invalid(format!(
            "the bank did not ask for {unknown:?}; it asked for {}",
            names.join(", ")
        )));
    }
    let strings = |v: &serde_json::Value| -> Option<Vec<String>> {
        match v {
            serde_json::Value::String(s) => Some(vec![s.clone()]),
            serde_json::Value::Array(a) => {
                a.iter().map(|x| x.as_str().map(str::to_string)).collect()
            }
            _ => None,
        }
    };
    let mut all = vec![];
    for v in credentials.values() {
        all.extend(
            strings(v)
                .ok_or_else(|| invalid("each answer is a string or a list of strings".into()))?,
        );
    }
    if all.iter().any(|t| t.contains('\0')) {
        return Err(SyncError::invalid(
            "invalid_text",
            "text must not contain the NUL character (U+0000)",
        ));
    }
    client
        .interactive(
            &c.saltedge_id,
            &serde_json::Value::Object(credentials.clone()),
        )
        .await?;
    connections::clear_interactive(pool, c.id).await?;
    connections::get(pool, id).await
}

/// Revokes the connection's current consent (Salt Edge's `last_consent_id`). A consent
/// that has already expired or was already revoked gives no more access: that is what the
/// user asked for, so it is not an error.
async fn revoke_current(pool: &PgPool, client: &Client, c: &Connection) -> Result<()> {
    let se = client.show_connection(&c.saltedge_id).await?;
    if let Some(consent_id) = &se.last_consent_id {
        match client.revoke_consent(consent_id, &c.saltedge_id).await {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.class(),
                    Some(
                        ErrorClass::AispConsentAlreadyRevoked
                            | ErrorClass::AispConsentRevoked
                            | ErrorClass::AispConsentExpired
                    )
                ) => {}
            Err(e) => return Err(e.into()),
        }
    }
    connections::mark_revoked(pool, c.id).await
}

/// Revoke consent: the bank data is no longer accessed. Idempotent.
pub async fn revoke(pool: &PgPool, client: &Client, company: Uuid, id: Uuid) -> Result<Connection> {
    let c = load(pool, company, id).await?;
    if c.status == crate::store::status::ConnectionStatus::Removed {
        return Err(connections::REMOVED);
    }
    revoke_current(pool, client, &c).await?;
    connections::get(pool, id).await
}

/// Delete: revoke, remove at Salt Edge, and delete the record only once Salt Edge no
/// longer holds the connection; otherwise [`SyncError::StillHeld`] (the FAQ's
/// explanation) with the record kept. Journals and their lines are never deleted.
pub async fn delete(pool: &PgPool, client: &Client, company: Uuid, id: Uuid) -> Result<()> {
    let c = load(pool, company, id).await?;
    let gone = |e: &saltedge_client::Error| e.class() == Some(&ErrorClass::ConnectionNotFound);
    let kept = |e: &saltedge_client::Error| SyncError::StillHeld {
        saltedge_class: e.class().map(|c| c.as_str().to_string()),
    };
    if c.status != crate::store::status::ConnectionStatus::Removed {
        match revoke_current(pool, client, &c).await {
            Ok(()) => {}
            Err(SyncError::SaltEdge(e)) if gone(&e) => {}
            Err(e) => return Err(e),
        }
        match client.remove_connection(&c.saltedge_id).await {
            Ok(_) => {}
            Err(e) if gone(&e) => {}
            Err(e) => {
                tracing::warn!(connection = %c.id, error = %e, "Salt Edge kept the connection");
                return Err(kept(&e));
            }
        }
    }
    // Only delete once Salt Edge confirms it no longer holds the connection.
    match client.show_connection(&c.saltedge_id).await {
        Err(e) if gone(&e) => {}
        Ok(_) => {
            return Err(SyncError::StillHeld {
                saltedge_class: None,
            })
        }
        Err(e) => return Err(kept(&e)),
    }
    connections::mark_removed(pool, c.id).await?;
    connections::delete(pool, c.id).await
}
