//! The bookkeeper's flows: link, list/show, update credentials, fetch new accounts, sync now,
//! sync history, revoke consent, delete.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use saltedge_client::models::{
    AttemptRequest, ConsentRequest, CreateConnectSession, ReconnectConnectSession,
    RefreshConnectSession,
};
use saltedge_client::ErrorClass;
use serde_json::json;
use sync_engine::{catalogue, companies, connections, events, guidance, mapping, runs, SyncError};
use uuid::Uuid;

use crate::dto::{
    self, BankAccount, ConnectUrl, Connection, ConnectionError, LinkRequest, ReturnTo, SyncQueued,
    SyncRun,
};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Company, Json, Path, Query};
use crate::AppState;
use crate::{input, paging};

pub fn account_dto(a: mapping::BankAccount, journal_name: &str) -> BankAccount {
    BankAccount {
        id: a.id,
        saltedge_id: a.saltedge_id,
        name: a.name,
        nature: a.nature,
        iban: a.iban,
        bank_balance: a.bank_balance.map(|b| dto::money(b, &a.currency)),
        balance_mismatch: a.balance_mismatch.map(|b| dto::money(b, &a.currency)),
        currency: a.currency,
        journal_id: a.journal_id,
        journal_name: journal_name.to_string(),
        disappeared_at: a.disappeared_at,
        balance_check: a.balance_check,
        balance_note: a.balance_note,
    }
}

async fn load(st: &AppState, company: Uuid, id: Uuid) -> ApiResult<connections::Connection> {
    let c = match connections::get(&st.pool, id).await {
        Ok(c) => c,
        Err(SyncError::NotFound { .. }) => return Err(ApiError::NotFound("connection")),
        Err(e) => return Err(e.into()),
    };
    // Another company's connection does not exist, as far as this caller knows.
    if c.company_id != company {
        return Err(ApiError::NotFound("connection"));
    }
    Ok(c)
}

async fn view(st: &AppState, c: connections::Connection) -> ApiResult<Connection> {
    let journals = mapping::journals(&st.pool, c.company_id).await?;
    let accounts = mapping::accounts_of_connection(&st.pool, c.id)
        .await?
        .into_iter()
        .map(|a| {
            let name = journals
                .iter()
                .find(|j| j.id == a.journal_id)
                .map(|j| j.name.clone())
                .unwrap_or_default();
            account_dto(a, &name)
        })
        .collect();
    let last_sync = runs::for_connection(&st.pool, c.id, 1)
        .await?
        .into_iter()
        .next()
        .map(SyncRun::from);
    let error = c.last_error_class.clone().map(|class| ConnectionError {
        guidance: guidance::for_class(&class).map(str::to_string),
        class,
        message: c.last_error_message.clone(),
    });
    let waiting = c.stage.as_deref() == Some("interactive")
        && (c.interactive_html.is_some() || c.interactive_fields_names.is_some());
    let interactive = waiting.then(|| dto::InteractivePrompt {
        html: c.interactive_html.clone(),
        fields_names: c
            .interactive_fields_names
            .clone()
            .unwrap_or_else(|| json!([])),
        fields_options: c
            .interactive_fields_options
            .clone()
            .unwrap_or_else(|| json!({})),
        expires_at: c.interactive_expires_at,
    });
    Ok(Connection {
        id: c.id,
        saltedge_id: c.saltedge_id,
        provider_code: c.provider_code,
        provider_name: c.provider_name,
        country_code: c.country_code,
        status: c.status,
        stage: c.stage,
        daily_refresh: c.daily_refresh,
        consent_expires_at: c.consent_expires_at,
        consent_revoked_at: c.consent_revoked_at,
        last_synced_at: c.last_synced_at,
        next_refresh_possible_at: c.next_refresh_possible_at,
        interactive,
        error,
        accounts,
        last_sync,
    })
}

/// Answers the bank's interactive question (SMS code, chosen accounts…); Salt Edge carries
/// on with the fetch and calls back as usual.
#[utoipa::path(post, path = "/api/v1/connections/{id}/interactive", tag = "connections", params(("id" = Uuid, Path)),
    request_body = dto::InteractiveAnswer,
    responses((status = 202, body = Connection), (status = 409, description = "not_waiting_for_input, connection_removed or connection_disabled"), (status = 422, description = "invalid_credentials: not a field the bank asked for"), (status = 502, description = "saltedge_error or saltedge_unreachable: Salt Edge refused or could not be reached")),
    security(("token" = [])))]
pub async fn answer_interactive(
    State(st): State<AppState>,
    Company(company): Company,
    Path(id): Path<Uuid>,
    Json(req): Json<dto::InteractiveAnswer>,
) -> ApiResult<(StatusCode, Json<Connection>)> {
    let c = load(&st, company, id).await?;
    connections::usable(&c)?;
    if c.stage.as_deref() != Some("interactive") {
        return Err(ApiError::conflict(
            "not_waiting_for_input",
            "the bank is not waiting for an answer on this connection",
        ));
    }
    let names: Vec<String> = c
        .interactive_fields_names
        .as_ref()
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    if req.credentials.is_empty() {
        return Err(ApiError::invalid(
            "invalid_credentials",
            "credentials must name at least one field",
        ));
    }
    if let Some(unknown) = req
        .credentials
        .keys()
        .find(|k| !names.is_empty() && !names.contains(k))
    {
        return Err(ApiError::invalid(
            "invalid_credentials",
            format!(
                "the bank did not ask for {unknown:?}; it asked for {}",
                names.join(", ")
            ),
        ));
    }
    if req.credentials.values().any(|v| {
        !(v.is_string()
            || v.as_array()
                .is_some_and(|a| a.iter().all(|x| x.is_string())))
    }) {
        return Err(ApiError::invalid(
            "invalid_credentials",
            "each answer is a string or a list of strings",
        ));
    }
    let strings = req
        .credentials
        .values()
        .flat_map(|v| v.as_array().cloned().unwrap_or_else(|| vec![v.clone()]));
    if strings
        .filter_map(|v| v.as_str().map(str::to_string))
        .any(|t| t.contains('\0'))
    {
        return Err(ApiError::invalid(
            "invalid_text",
            "text must not contain the NUL character (U+0000)",
        ));
    }
    st.client
        .interactive(&c.saltedge_id, &serde_json::Value::Object(req.credentials))
        .await?;
    connections::clear_interactive(&st.pool, c.id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(view(&st, connections::get(&st.pool, id).await?).await?),
    ))
}

/// `return_to` must match the schema (`http://` or `https://`, no white space, at most
/// 2048 characters: else 422) and be a URL whose origin is on the service-wide allow-list
/// or the company's own (else 403): Connect sends the user there with the connection id.
async fn valid_return_to(st: &AppState, company: Uuid, u: &str) -> ApiResult<()> {
    if !input::return_to_shaped(u) {
        return Err(ApiError::invalid(
            "invalid_return_to",
            "return_to must be an http(s) URL",
        ));
    }
    let not_allowed = |origin: &str| {
        ApiError::ReturnToNotAllowed(format!(
            "return_to's origin {origin} is not on the allow-list; an operator adds it"
        ))
    };
    let Ok(url) = url::Url::parse(u) else {
        return Err(not_allowed("(not a URL)"));
    };
    let origin = url.origin().ascii_serialization();
    let same =
        |o: &String| url::Url::parse(o).is_ok_and(|a| a.origin().ascii_serialization() == origin);
    if st.return_to_origins.iter().any(same) {
        return Ok(());
    }
    let own = companies::return_to_origins(&st.pool, company).await?;
    if own.iter().any(same) {
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

fn attempt(return_to: &str, company: Uuid) -> AttemptRequest {
    AttemptRequest {
        fetch_scopes: vec!["accounts".into(), "transactions".into()],
        return_to: Some(return_to.to_string()),
        custom_fields: Some(json!({ "company_id": company })),
        ..Default::default()
    }
}

/// The email (our Salt Edge customer identifier) is used by another company or outside
/// banksync; which one is not said.
fn email_in_use() -> ApiError {
    ApiError::conflict(
        "email_in_use",
        "this email is already used with this service; choose another email address",
    )
}

/// Link a bank: returns the Salt Edge Connect URL to send the user to.
#[utoipa::path(post, path = "/api/v1/connections", tag = "connections", request_body = LinkRequest,
    responses((status = 201, body = ConnectUrl), (status = 403, description = "return_to_not_allowed: return_to's origin is not on the allow-list"), (status = 404, description = "not_found: no active institution with this code"), (status = 409, description = "already_synchronized (with guidance and connection_id) or email_in_use"), (status = 502, description = "saltedge_error or saltedge_unreachable: Salt Edge refused or could not be reached"),
              (status = 422, description = "invalid_email, invalid_phone, unknown_institution, invalid_return_to")),
    security(("token" = [])))]
pub async fn link(
    State(st): State<AppState>,
    Company(company): Company,
    Json(req): Json<LinkRequest>,
) -> ApiResult<impl IntoResponse> {
    // Everything is checked before anything is sent to Salt Edge.
    if !input::valid_email(&req.email) {
        return Err(ApiError::invalid(
            "invalid_email",
            "the email address is not valid; it creates your Salt Edge account",
        ));
    }
    let phone = input::normalise_phone(&req.phone).ok_or_else(|| {
        ApiError::invalid(
            "invalid_phone",
            "the phone number is not valid (7 to 15 digits, optional +)",
        )
    })?;
    if !(1..=200).contains(&req.provider_code.chars().count()) {
        return Err(ApiError::invalid(
            "invalid_body",
            "`provider_code` must be 1 to 200 characters",
        ));
    }
    valid_return_to(&st, company, &req.return_to).await?;
    let inst = catalogue::get(&st.pool, &req.provider_code)
        .await?
        .filter(|i| i.status == "active")
        .ok_or(ApiError::NotFound("institution"))?;
    if !req.allow_second_connection {
        let existing: Option<Uuid> = sqlx::query_scalar(
            "SELECT id FROM connections WHERE company_id = $1 AND provider_code = $2 AND status <> 'removed' ORDER BY created_at LIMIT 1",
        )
        .bind(company)
        .bind(&inst.code)
        .fetch_optional(&st.pool)
        .await?;
        if let Some(id) = existing {
            let mut extra = serde_json::Map::new();
            extra.insert("guidance".into(), json!(guidance::ALREADY_SYNCHRONIZED));
            extra.insert("connection_id".into(), json!(id));
            return Err(ApiError::Conflict {
                code: "already_synchronized",
                detail: "this company already has a connection to this institution; use Update credentials on it".into(),
                extra,
            });
        }
    }
    let email = req.email.trim().to_lowercase();
    let customer = match companies::customer_of(&st.pool, company).await? {
        Some(c) => c,
        None => {
            let taken: Option<Uuid> = sqlx::query_scalar(
                "SELECT company_id FROM saltedge_customers WHERE identifier = $1",
            )
            .bind(&email)
            .fetch_optional(&st.pool)
            .await?;
            if taken.is_some() {
                return Err(email_in_use());
            }
            let se = match st.client.create_customer(&email).await {
                Ok(c) => c,
                // Salt Edge already has a customer with this identifier, and it is not this
                // company's (that one would be recorded): a Salt Edge customer belongs to
                // exactly one company, so it is never handed over.
                Err(e) if e.class() == Some(&ErrorClass::DuplicatedCustomer) => {
                    return Err(email_in_use())
                }
                Err(e) => return Err(e.into()),
            };
            companies::save_customer(
                &st.pool,
                company,
                &se.id,
                &email,
                Some(&email),
                Some(&phone),
            )
            .await?
        }
    };
    let session = st
        .client
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
    Ok((
        StatusCode::CREATED,
        Json(ConnectUrl {
            connect_url: session.connect_url,
            expires_at: session.expires_at,
        }),
    ))
}

/// The company's connections with accounts, journals, last sync and errors.
#[utoipa::path(get, path = "/api/v1/connections", tag = "connections", operation_id = "list_connections", responses((status = 200, body = Vec<Connection>)), security(("token" = [])))]
pub async fn list(
    State(st): State<AppState>,
    Company(company): Company,
) -> ApiResult<Json<Vec<Connection>>> {
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM connections WHERE company_id = $1 ORDER BY created_at, id",
    )
    .bind(company)
    .fetch_all(&st.pool)
    .await?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.push(view(&st, connections::get(&st.pool, id).await?).await?);
    }
    Ok(Json(out))
}

#[utoipa::path(get, path = "/api/v1/connections/{id}", tag = "connections", params(("id" = Uuid, Path)),
    responses((status = 200, body = Connection)), security(("token" = [])))]
pub async fn show(
    State(st): State<AppState>,
    Company(company): Company,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Connection>> {
    let c = load(&st, company, id).await?;
    Ok(Json(view(&st, c).await?))
}

/// Update credentials (reconnect): returns a Connect URL. Remind the user to tick the consent box.
#[utoipa::path(post, path = "/api/v1/connections/{id}/update-credentials", tag = "connections", params(("id" = Uuid, Path)),
    request_body = ReturnTo, responses((status = 200, body = ConnectUrl), (status = 403, description = "return_to_not_allowed"), (status = 409, description = "connection_removed or connection_disabled, with guidance"), (status = 502, description = "saltedge_error or saltedge_unreachable: Salt Edge refused or could not be reached")), security(("token" = [])))]
pub async fn update_credentials(
    State(st): State<AppState>,
    Company(company): Company,
    Path(id): Path<Uuid>,
    Json(req): Json<ReturnTo>,
) -> ApiResult<Json<ConnectUrl>> {
    valid_return_to(&st, company, &req.return_to).await?;
    let c = load(&st, company, id).await?;
    connections::usable(&c)?;
    let inst = catalogue::get(&st.pool, &c.provider_code).await?;
    let s = st
        .client
        .reconnect_connect_session(&ReconnectConnectSession {
            connection_id: c.saltedge_id,
            consent: consent(inst.as_ref().and_then(|i| i.max_consent_days)),
            attempt: attempt(&req.return_to, company),
            daily_refresh: Some(true),
            include_fake_providers: Some(inst.map(|i| i.fake).unwrap_or(false)),
            return_connection_id: Some(true),
            override_credentials_strategy: Some("ask".into()),
        })
        .await?;
    Ok(Json(ConnectUrl {
        connect_url: s.connect_url,
        expires_at: s.expires_at,
    }))
}

/// Fetch new accounts (refresh through Connect): returns a Connect URL.
#[utoipa::path(post, path = "/api/v1/connections/{id}/fetch-accounts", tag = "connections", params(("id" = Uuid, Path)),
    request_body = ReturnTo, responses((status = 200, body = ConnectUrl), (status = 403, description = "return_to_not_allowed"), (status = 409, description = "connection_removed, connection_disabled, consent_revoked, consent_expired or connection_inactive, with `guidance`: what the user does instead"), (status = 502, description = "saltedge_error or saltedge_unreachable: Salt Edge refused or could not be reached")), security(("token" = [])))]
pub async fn fetch_accounts(
    State(st): State<AppState>,
    Company(company): Company,
    Path(id): Path<Uuid>,
    Json(req): Json<ReturnTo>,
) -> ApiResult<Json<ConnectUrl>> {
    valid_return_to(&st, company, &req.return_to).await?;
    let c = load(&st, company, id).await?;
    connections::readable(&c)?;
    let fake = catalogue::get(&st.pool, &c.provider_code)
        .await?
        .map(|i| i.fake)
        .unwrap_or(false);
    let s = st
        .client
        .refresh_connect_session(&RefreshConnectSession {
            connection_id: c.saltedge_id,
            attempt: attempt(&req.return_to, company),
            daily_refresh: Some(true),
            include_fake_providers: Some(fake),
            return_connection_id: Some(true),
        })
        .await?;
    Ok(Json(ConnectUrl {
        connect_url: s.connect_url,
        expires_at: s.expires_at,
    }))
}

/// Sync now: queues a sync (or returns the one already queued).
#[utoipa::path(post, path = "/api/v1/connections/{id}/sync", tag = "connections", params(("id" = Uuid, Path)),
    responses((status = 202, body = SyncQueued), (status = 409, description = "connection_removed, connection_disabled, consent_revoked, consent_expired or connection_inactive, with `guidance`: what the user does instead")), security(("token" = [])))]
pub async fn sync_now(
    State(st): State<AppState>,
    Company(company): Company,
    Path(id): Path<Uuid>,
) -> ApiResult<impl IntoResponse> {
    let c = load(&st, company, id).await?;
    connections::readable(&c)?;
    let run = events::enqueue_sync(&st.pool, company, c.id, "api").await?;
    Ok((StatusCode::ACCEPTED, Json(SyncQueued { sync_run_id: run })))
}

/// Sync history, newest first, a page at a time.
#[utoipa::path(get, path = "/api/v1/connections/{id}/sync-runs", tag = "connections", operation_id = "list_sync_runs",
    params(("id" = Uuid, Path), dto::PageQuery),
    responses((status = 200, body = dto::SyncRunsPage)), security(("token" = [])))]
pub async fn sync_runs(
    State(st): State<AppState>,
    Company(company): Company,
    Path(id): Path<Uuid>,
    Query(q): Query<dto::PageQuery>,
) -> ApiResult<Json<dto::SyncRunsPage>> {
    let limit = paging::limit(q.limit)?;
    let c = load(&st, company, id).await?;
    let scope = format!("sync-runs|{company}|{}", c.id);
    let after = match &q.cursor {
        Some(cur) => {
            let pos = paging::decode(&st, &scope, cur).await?;
            let parsed = pos.split_once('|').and_then(|(t, i)| {
                Some((
                    chrono::DateTime::parse_from_rfc3339(t).ok()?.to_utc(),
                    i.parse::<Uuid>().ok()?,
                ))
            });
            Some(parsed.ok_or_else(|| {
                ApiError::invalid("invalid_cursor", "cursor is not one this API gave out")
            })?)
        }
        None => None,
    };
    let mut items = runs::page(&st.pool, c.id, after, limit + 1).await?;
    let next_cursor = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        match items.last() {
            Some(r) => Some(
                paging::encode(
                    &st,
                    &scope,
                    &format!(
                        "{}|{}",
                        r.started_at
                            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                        r.id
                    ),
                )
                .await?,
            ),
            None => None,
        }
    } else {
        None
    };
    Ok(Json(dto::SyncRunsPage {
        items: items.into_iter().map(SyncRun::from).collect(),
        next_cursor,
    }))
}

/// Records of the connection that could not be parsed or stored, newest first, with the
/// raw JSON and the reason; the rest of the connection imported.
#[utoipa::path(get, path = "/api/v1/connections/{id}/quarantine", tag = "connections", params(("id" = Uuid, Path)),
    responses((status = 200, body = Vec<dto::QuarantinedRecord>)), security(("token" = [])))]
pub async fn quarantine(
    State(st): State<AppState>,
    Company(company): Company,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Vec<dto::QuarantinedRecord>>> {
    let c = load(&st, company, id).await?;
    let list = sync_engine::quarantine::for_connection(&st.pool, c.id, 500).await?;
    Ok(Json(
        list.into_iter().map(dto::QuarantinedRecord::from).collect(),
    ))
}

/// Revokes the connection's current consent (Salt Edge's `last_consent_id`). A consent
/// that has already expired or was already revoked gives no more access: that is what the
/// user asked for, so it is not an error.
async fn revoke_current(st: &AppState, c: &connections::Connection) -> ApiResult<()> {
    let se = st.client.show_connection(&c.saltedge_id).await?;
    if let Some(consent_id) = &se.last_consent_id {
        match st.client.revoke_consent(consent_id, &c.saltedge_id).await {
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
    sqlx::query("UPDATE connections SET consent_revoked_at = coalesce(consent_revoked_at, now()), updated_at = now() WHERE id = $1")
        .bind(c.id)
        .execute(&st.pool)
        .await?;
    Ok(())
}

/// Revoke consent: the bank data is no longer accessed. Idempotent.
#[utoipa::path(post, path = "/api/v1/connections/{id}/revoke", tag = "connections", params(("id" = Uuid, Path)),
    responses((status = 200, body = Connection), (status = 409, description = "connection_removed"), (status = 502, description = "saltedge_error or saltedge_unreachable: Salt Edge refused or could not be reached")), security(("token" = [])))]
pub async fn revoke(
    State(st): State<AppState>,
    Company(company): Company,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Connection>> {
    let c = load(&st, company, id).await?;
    if c.status == "removed" {
        return Err(connections::REMOVED.into());
    }
    revoke_current(&st, &c).await?;
    Ok(Json(
        view(&st, connections::get(&st.pool, id).await?).await?,
    ))
}

/// Delete: revoke, remove at Salt Edge, and delete the record only once Salt Edge no longer
/// holds the connection; otherwise 409 with the FAQ's explanation and the record kept.
/// Journals and their lines are never deleted.
#[utoipa::path(delete, path = "/api/v1/connections/{id}", tag = "connections", params(("id" = Uuid, Path)),
    responses((status = 204, description = "deleted"), (status = 409, description = "still_held_by_saltedge: consent revoked, record kept (with guidance)"), (status = 502, description = "saltedge_error or saltedge_unreachable: Salt Edge refused or could not be reached")),
    security(("token" = [])))]
pub async fn delete(
    State(st): State<AppState>,
    Company(company): Company,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    let c = load(&st, company, id).await?;
    let gone = |e: &saltedge_client::Error| e.class() == Some(&ErrorClass::ConnectionNotFound);
    if c.status != "removed" {
        match revoke_current(&st, &c).await {
            Ok(()) => {}
            Err(ApiError::SaltEdge(e)) if gone(&e) => {}
            Err(e) => return Err(e),
        }
        match st.client.remove_connection(&c.saltedge_id).await {
            Ok(_) => {}
            Err(e) if gone(&e) => {}
            Err(e) => {
                tracing::warn!(connection = %c.id, error = %e, "Salt Edge kept the connection");
                return Err(kept(e));
            }
        }
    }
    // Only delete once Salt Edge confirms it no longer holds the connection.
    match st.client.show_connection(&c.saltedge_id).await {
        Err(e) if gone(&e) => {}
        Ok(_) => {
            return Err(kept(saltedge_client::Error::Config(
                "the connection is still listed".into(),
            )))
        }
        Err(e) => return Err(kept(e)),
    }
    connections::mark_removed(&st.pool, c.id).await?;
    sqlx::query("DELETE FROM connections WHERE id = $1")
        .bind(c.id)
        .execute(&st.pool)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

fn kept(cause: saltedge_client::Error) -> ApiError {
    let mut extra = serde_json::Map::new();
    extra.insert("guidance".into(), json!(guidance::DELETE_KEPT));
    if let Some(c) = cause.class() {
        extra.insert("saltedge_error_class".into(), json!(c.as_str()));
    }
    ApiError::Conflict {
        code: "still_held_by_saltedge",
        detail: "the consent was revoked, but the record could not be deleted as it still exists within Salt Edge".into(),
        extra,
    }
}
