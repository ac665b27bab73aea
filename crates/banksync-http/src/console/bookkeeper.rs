//! The bookkeeper's pages: connections and the user doc's buttons, linking a bank,
//! journals with statements and lines, pending transactions, lines flagged for review.
//! Every action is the engine's flow the REST API calls.

use std::collections::HashMap;
use sync_engine::status::{
    ConnectionStatus, ConsentStatus, DuplicateReview, ReissueReview, RemovalReview, RunStatus,
};

use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use chrono::NaiveDate;
use maud::{html, Markup};
use serde::Deserialize;
use sync_engine::flows::{self, Email, Phone, ProviderCode, ReturnUrl};
use sync_engine::{catalogue, mapping, pending, statement_lines, statements};
use uuid::Uuid;

use super::layout::{
    action_button, badge, csrf_field, date, moment, money, money_cell, page, table, Nav,
};
use super::{failed, notice, redirect_with, Book, Empty, Path, Posted, Query};
use crate::dto;
use crate::error::ApiError;
use crate::AppState;

type Page = Result<Response, super::PageError>;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/connections", get(connections))
        .route("/console/connections/{id}", get(connection))
        .route("/console/connections/{id}/progress", get(progress))
        .route("/console/connections/{id}/sync", post(sync_now))
        .route(
            "/console/connections/{id}/update-credentials",
            post(update_credentials),
        )
        .route(
            "/console/connections/{id}/fetch-accounts",
            post(fetch_accounts),
        )
        .route("/console/connections/{id}/revoke", post(revoke))
        .route("/console/connections/{id}/delete", post(delete))
        .route("/console/connections/{id}/interactive", post(interactive))
        .route("/console/link", get(link_page).post(link))
        .route("/console/journals", get(journals))
        .route("/console/journals/{id}", get(journal))
        .route("/console/statements/{id}", get(statement))
        .route("/console/pending", get(pending_page))
        .route("/console/review", get(review_page))
        .route("/console/review/{id}/{answer}", post(review_answer))
}

/// Where Salt Edge Connect sends the user back: this console, when its public URL is known.
fn return_to(
    st: &AppState,
    id: Option<Uuid>,
) -> Result<(ReturnUrl, flows::ConnectPolicy), ApiError> {
    let base = st.console_base.as_deref().ok_or(ApiError::conflict(
        "console_url_unknown",
        "the console's public URL is not configured (server.public_base_url)",
    ))?;
    let path = match id {
        Some(id) => format!("console/connections/{id}"),
        None => "console/connections".to_string(),
    };
    let url = base
        .join(&path)
        .map_err(|_| ApiError::invalid("invalid_return_to", "bad console URL"))?;
    // The console's own origin is a return target besides the configured ones.
    let mut policy = (*st.connect).clone();
    policy
        .return_to_origins
        .push(base.origin().ascii_serialization());
    Ok((ReturnUrl::parse(url.as_str())?, policy))
}

fn connection_card(b: &Book, c: &dto::Connection, detail: bool) -> Markup {
    let u = &b.user;
    let l = u.locale();
    let base = format!("/console/connections/{}", c.id);
    let waiting = c.interactive.is_some();
    html! {
        section.card aria-labelledby={ "c-" (c.id) } data-connection=(c.id) {
            h2 #{ "c-" (c.id) } {
                @if detail { (c.provider_name) } @else { a href=(base) { (c.provider_name) } }
                " " span.muted { "(" (c.country_code) ")" }
            }
            dl.facts {
                dt { "Status" } dd { (badge(&c.status)) @if let Some(s) = &c.stage { " " span.muted { (s) } } }
                dt { "Consent" } dd {
                    (badge(&c.consent_status))
                    @match c.consent_expires_in_days {
                        Some(d) if c.consent_status != ConsentStatus::Revoked => {
                            " expires in " (d) " day" @if d != 1 { "s" } " (" (moment(c.consent_expires_at, l)) ")"
                        },
                        _ => {},
                    }
                }
                dt { "Last sync" } dd {
                    (moment(c.last_synced_at, l))
                    @if let Some(r) = &c.last_sync { " · " (badge(&r.status)) " " (r.inserted) " new, " (r.updated) " updated" }
                }
            }
            @if let Some(e) = &c.error {
                div.guidance role="note" {
                    strong { "The bank reported: " (e.class) }
                    @if let Some(m) = &e.message { " — " (m) }
                    @if let Some(g) = &e.guidance { p { (g) } }
                }
            }
            @if c.consent_status == ConsentStatus::Expiring {
                p.guidance { "The bank's consent ends soon. Use Update Credentials now to renew it and keep syncing." }
            }
            @if let Some(q) = &c.interactive {
                (interactive_form(b, c, q))
            }
            @if !c.accounts.is_empty() {
                (table("Accounts", html! {
                    th { "Account" } th { "IBAN" } th { "Journal" } th.num { "Bank balance" }
                }, html! {
                    @for a in &c.accounts {
                        tr {
                            td { (a.name) @if a.disappeared_at.is_some() { " " (badge("removed")) } }
                            td { (a.iban.as_deref().unwrap_or("—")) }
                            td { a href={ "/console/journals/" (a.journal_id) } { (a.journal_name) } }
                            @match &a.bank_balance {
                                Some(bal) => (money_cell(bal, &a.currency, l)),
                                None => td.num { "—" },
                            }
                        }
                    }
                }))
            }
            @if c.status != ConnectionStatus::Removed {
                div.actions {
                    @if !waiting { (action_button(u, &format!("{base}/sync"), "Sync now", "primary", None)) }
                    (action_button(u, &format!("{base}/update-credentials"), "Update Credentials", "", None))
                    (action_button(u, &format!("{base}/fetch-accounts"), "Fetch Accounts", "", None))
                    @if c.consent_status != ConsentStatus::Revoked {
                        (action_button(u, &format!("{base}/revoke"), "Revoke", "danger", Some("Revoke the consent? banksync stops reading this bank; the journals and lines stay.")))
                    }
                    (action_button(u, &format!("{base}/delete"), "Delete", "danger", Some("Delete this connection? Its journals and lines stay.")))
                }
            } @else {
                div.actions {
                    (action_button(u, &format!("{base}/delete"), "Delete", "danger", Some("Delete this connection? Its journals and lines stay.")))
                }
            }
        }
    }
}

/// The bank's question: its text as text (never its HTML), one input per field, a choice
/// where the bank offers options.
fn interactive_form(b: &Book, c: &dto::Connection, q: &dto::InteractivePrompt) -> Markup {
    let names: Vec<String> = q
        .fields_names
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let options = |name: &str| -> Vec<(String, String)> {
        q.fields_options
            .get(name)
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|o| {
                        let value = o.get("option_value").or(o.get("value"))?.as_str()?;
                        let label = o
                            .get("english_name")
                            .or(o.get("localized_name"))
                            .and_then(|v| v.as_str())
                            .unwrap_or(value);
                        Some((value.to_string(), label.to_string()))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let text = q.html.as_deref().map(strip_tags).unwrap_or_default();
    html! {
        div.card {
            h2 { "The bank asks" }
            @if !text.is_empty() { p.bank-question { (text) } }
            form.stack method="post" action={ "/console/connections/" (c.id) "/interactive" } {
                (csrf_field(&b.user))
                @for n in &names {
                    @let opts = options(n);
                    label for={ "f-" (n) } { (n) }
                    @if opts.is_empty() {
                        input id={ "f-" (n) } name=(n) type="text" autocomplete="one-time-code" required;
                    } @else {
                        select id={ "f-" (n) } name=(n) required {
                            @for (v, lbl) in &opts { option value=(v) { (lbl) } }
                        }
                    }
                }
                button.primary type="submit" { "Send answer" }
            }
        }
    }
}

/// The bank's HTML as plain text: tags dropped, by characters (never by byte index).
fn strip_tags(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for ch in html.chars() {
        match ch {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.trim().to_string()
}

async fn connections(State(st): State<AppState>, b: Book) -> Page {
    let views = flows::connection_views(&st.pool, b.company).await?;
    let list: Vec<dto::Connection> = views.into_iter().map(Into::into).collect();
    let body = html! {
        @if list.is_empty() {
            div.card {
                p { "No bank is linked yet." }
                a.button.primary href="/console/link" { "Link a bank" }
            }
        }
        @for c in &list { (connection_card(&b, c, false)) }
    };
    Ok(page(&b.user, "Connections", Nav::Connections, body))
}

fn progress_fragment(c: &dto::Connection, l: &str) -> Markup {
    let running = c
        .last_sync
        .as_ref()
        .is_some_and(|r| matches!(r.status, RunStatus::Queued | RunStatus::Running));
    html! {
        @if running {
            div.progress #progress role="status" aria-live="polite"
                hx-get={ "/console/connections/" (c.id) "/progress" } hx-trigger="every 2s" hx-swap="outerHTML" {
                span.spinner aria-hidden="true" {}
                @if let Some(r) = &c.last_sync {
                    "Sync " (r.status) ": " (r.pages) " pages, " (r.fetched) " transactions fetched, " (r.inserted) " new so far."
                }
            }
        } @else {
            div.progress #progress role="status" aria-live="polite" {
                @match &c.last_sync {
                    Some(r) => {
                        "Last sync " (badge(&r.status)) " " (moment(r.finished_at, l)) ": "
                        (r.fetched) " fetched, " (r.inserted) " new, " (r.updated) " updated, " (r.quarantined) " quarantined."
                        @if let Some(m) = &r.error_message { " " span.muted { (m) } }
                    },
                    None => "No sync yet.",
                }
            }
        }
    }
}

async fn connection(State(st): State<AppState>, b: Book, Path(id): Path<Uuid>) -> Page {
    let c = flows::load(&st.pool, b.company, id).await?;
    let c: dto::Connection = flows::connection_view(&st.pool, c).await?.into();
    let runs = sync_engine::runs::for_connection(&st.pool, c.id, 20).await?;
    let l = b.user.locale().to_string();
    let body = html! {
        (progress_fragment(&c, &l))
        (connection_card(&b, &c, true))
        h2 { "Sync history" }
        (table("Sync history", html! {
            th { "Started" } th { "Trigger" } th { "Status" } th.num { "Fetched" } th.num { "New" } th.num { "Updated" } th.num { "Quarantined" } th { "Error" }
        }, html! {
            @for r in &runs {
                tr {
                    td { (moment(Some(r.started_at), &l)) } td { (r.trigger) } td { (badge(r.status.as_str())) }
                    td.num { (r.fetched) } td.num { (r.inserted) } td.num { (r.updated) } td.num { (r.quarantined) }
                    td { (r.error_message.as_deref().unwrap_or("")) }
                }
            }
        }))
    };
    Ok(page(
        &b.user,
        &c.provider_name.clone(),
        Nav::Connections,
        body,
    ))
}

/// The progress line alone (htmx polls it while a sync runs).
async fn progress(State(st): State<AppState>, b: Book, Path(id): Path<Uuid>) -> Page {
    use axum::response::IntoResponse;
    let c = flows::load(&st.pool, b.company, id).await?;
    let c: dto::Connection = flows::connection_view(&st.pool, c).await?.into();
    Ok(progress_fragment(&c, b.user.locale()).into_response())
}

fn back(id: Uuid) -> String {
    format!("/console/connections/{id}")
}

type IdPath = Path<Uuid>;

async fn sync_now(
    State(st): State<AppState>,
    Path(id): IdPath,
    Posted(b, _): Posted<Book, Empty>,
) -> Response {
    match flows::sync_now(&st.pool, b.company, id).await {
        Ok(_) => notice(&st, &back(id), "Sync queued."),
        Err(e) => failed(&st, &back(id), e.into()),
    }
}

/// To Salt Edge Connect for a connection's reconnect (Update Credentials) or refresh
/// (Fetch Accounts), coming back to the connection's page.
async fn through_connect(st: &AppState, b: &Book, id: Uuid, reconnect: bool) -> Response {
    let r = async {
        let (to, origins) = return_to(st, Some(id))?;
        let (pool, client) = (&st.pool, &st.client);
        Ok::<_, ApiError>(if reconnect {
            flows::update_credentials(pool, client, &origins, b.company, id, &to).await?
        } else {
            flows::fetch_accounts(pool, client, &origins, b.company, id, &to).await?
        })
    }
    .await;
    match r {
        Ok(link) => redirect_with(st, &link.connect_url, None),
        Err(e) => failed(st, &back(id), e),
    }
}

async fn update_credentials(
    State(st): State<AppState>,
    Path(id): IdPath,
    Posted(b, _): Posted<Book, Empty>,
) -> Response {
    through_connect(&st, &b, id, true).await
}

async fn fetch_accounts(
    State(st): State<AppState>,
    Path(id): IdPath,
    Posted(b, _): Posted<Book, Empty>,
) -> Response {
    through_connect(&st, &b, id, false).await
}

async fn revoke(
    State(st): State<AppState>,
    Path(id): IdPath,
    Posted(b, _): Posted<Book, Empty>,
) -> Response {
    match flows::revoke(&st.pool, &st.client, b.company, id).await {
        Ok(_) => notice(&st, &back(id), "Consent revoked: banksync no longer reads this bank's data. The journals and their lines stay."),
        Err(e) => failed(&st, &back(id), e.into()),
    }
}

async fn delete(
    State(st): State<AppState>,
    Path(id): IdPath,
    Posted(b, _): Posted<Book, Empty>,
) -> Response {
    match flows::delete(&st.pool, &st.client, b.company, id).await {
        Ok(()) => notice(
            &st,
            "/console/connections",
            "Connection deleted. Its journals and their lines stay.",
        ),
        Err(e) => failed(&st, &back(id), e.into()),
    }
}

async fn interactive(
    State(st): State<AppState>,
    Path(id): IdPath,
    Posted(b, form): Posted<Book, HashMap<String, String>>,
) -> Response {
    let credentials: serde_json::Map<String, serde_json::Value> = form
        .into_iter()
        .filter(|(k, _)| k != "csrf")
        .map(|(k, v)| (k, serde_json::Value::String(v)))
        .collect();
    match flows::answer_interactive(&st.pool, &st.client, b.company, id, &credentials).await {
        Ok(_) => notice(&st, &back(id), "Answer sent to the bank."),
        Err(e) => failed(&st, &back(id), e.into()),
    }
}

#[derive(Deserialize)]
struct LinkQuery {
    country: Option<String>,
    q: Option<String>,
    #[serde(default)]
    include_fake: Option<String>,
    provider: Option<String>,
}

async fn link_page(State(st): State<AppState>, b: Book, Query(q): Query<LinkQuery>) -> Page {
    if [&q.country, &q.q, &q.provider]
        .into_iter()
        .flatten()
        .any(|t| t.contains('\0'))
    {
        return Err(ApiError::invalid(
            "invalid_query",
            "the search must not contain the NUL character (U+0000)",
        )
        .into());
    }
    let country = q
        .country
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_uppercase);
    let text = q.q.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let fake = q.include_fake.is_some();
    let chosen = match q.provider.as_deref() {
        Some(code) => catalogue::get(&st.pool, code).await?,
        None => None,
    };
    let found = if chosen.is_none() && (country.is_some() || text.is_some()) {
        catalogue::search(&st.pool, country.as_deref(), text, fake, 50).await?
    } else {
        vec![]
    };
    let u = &b.user;
    let body = html! {
        @if let Some(i) = &chosen {
            div.card {
                h2 { (i.name) " " span.muted { "(" (i.country_code) ")" } }
                p { "Salt Edge will ask for your online-banking login and your consent. Remember to tick the consent box." }
                form.stack method="post" action="/console/link" {
                    (csrf_field(u))
                    input type="hidden" name="provider_code" value=(i.code);
                    label for="email" { "Email" span.hint { "Where Salt Edge writes to you about this connection." } }
                    input #email type="email" name="email" autocomplete="email" required;
                    label for="phone" { "Phone" span.hint { "International format, e.g. +44 20 7946 0000." } }
                    input #phone type="tel" name="phone" autocomplete="tel" required;
                    button.primary type="submit" { "Continue to Salt Edge" }
                }
                p { a href="/console/link" { "Choose another bank" } }
            }
        } @else {
            form.inline.card method="get" action="/console/link" role="search" {
                label for="country" { "Country" span.hint { "Two letters, e.g. DE" } }
                input #country name="country" maxlength="2" size="3" value=[country.as_deref()];
                label for="q" { "Bank name" }
                input #q name="q" type="search" value=[text];
                label { span { input type="checkbox" name="include_fake" value="1" checked[fake]; " Include test banks" } }
                button.primary type="submit" { "Search" }
            }
            @if !found.is_empty() {
                (table("Banks", html! { th { "Bank" } th { "Country" } th { "" } }, html! {
                    @for i in &found {
                        tr {
                            td { (i.name) @if i.fake { " " span.badge { "test" } } }
                            td { (i.country_code) }
                            td { a.button href={ "/console/link?provider=" (urlencode(&i.code)) } aria-label={ "Choose " (i.name) } { "Choose" } }
                        }
                    }
                }))
            } @else if country.is_some() || text.is_some() {
                p { "No bank matches. Try another name or country." }
            }
        }
    };
    Ok(page(u, "Link a bank", Nav::Link, body))
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[derive(Deserialize)]
struct LinkForm {
    provider_code: String,
    email: String,
    phone: String,
}

async fn link(State(st): State<AppState>, Posted(b, f): Posted<Book, LinkForm>) -> Response {
    let again = format!("/console/link?provider={}", urlencode(&f.provider_code));
    let r = async {
        let (to, origins) = return_to(&st, None)?;
        let req = flows::LinkRequest {
            email: Email::parse(&f.email)?,
            phone: Phone::parse(&f.phone)?,
            provider_code: ProviderCode::parse(&f.provider_code)?,
            return_to: to,
            allow_second_connection: false,
        };
        Ok::<_, ApiError>(flows::link(&st.pool, &st.client, &origins, b.company, &req).await?)
    }
    .await;
    match r {
        Ok(link) => redirect_with(&st, &link.connect_url, None),
        Err(e) => failed(&st, &again, e),
    }
}

async fn journals(State(st): State<AppState>, b: Book) -> Page {
    let js = mapping::journals(&st.pool, b.company).await?;
    let l = b.user.locale().to_string();
    let body = html! {
        @if js.is_empty() { p { "No journal yet: link a bank and its accounts get journals." } }
        @else {
            (table("Journals", html! { th { "Journal" } th { "Currency" } th { "Synced from" } }, html! {
                @for j in &js {
                    tr {
                        td { a href={ "/console/journals/" (j.id) } { (j.name) } }
                        td { (j.currency) }
                        td { @match j.sync_start_date { Some(d) => (date(d, &l)), None => span.muted { "all history" } } }
                    }
                }
            }))
        }
    };
    Ok(page(&b.user, "Journals", Nav::Journals, body))
}

#[derive(Deserialize)]
struct LinesQuery {
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
}

fn line_rows(lines: &[dto::StatementLine], l: &str) -> Markup {
    html! {
        @for x in lines {
            tr {
                td { (date(x.booking_date, l)) }
                td { (x.description) @if let Some(p) = &x.payee { br; span.muted { (p) } } }
                (money_cell(&x.amount, &x.currency, l))
                td { @if let Some(r) = &x.duplicate_review { (badge(r)) } }
            }
        }
    }
}

fn lines_head() -> Markup {
    html! { th { "Booked" } th { "Description" } th.num { "Amount" } th { "Review" } }
}

/// A journal: its statements (newest first) with balances, and its lines in a date range.
async fn journal(
    State(st): State<AppState>,
    b: Book,
    Path(id): IdPath,
    Query(q): Query<LinesQuery>,
) -> Page {
    let j = mapping::journal(&st.pool, b.company, id).await?;
    let mut sts = statements::page(
        &st.pool,
        b.company,
        statements::Scope::Journal(id),
        None,
        1000,
    )
    .await?;
    sts.reverse();
    sts.truncate(100);
    let filter = statement_lines::LineFilter {
        journal_id: Some(id),
        from: q.from,
        to: q.to,
    };
    let lines = statement_lines::page(&st.pool, b.company, &filter, None, 200).await?;
    let lines: Vec<dto::StatementLine> = lines
        .into_iter()
        .map(crate::routes::statement_lines::line_dto)
        .collect();
    let l = b.user.locale().to_string();
    let body = html! {
        h2 { "Statements" }
        @if sts.is_empty() { p { "No statement yet." } } @else {
            (table("Statements", html! {
                th { "No." } th { "Period" } th { "Status" } th.num { "Lines" } th.num { "Opening" } th.num { "Closing" } th.num { "Difference to bank" }
            }, html! {
                @for s in sts.into_iter().map(crate::routes::statements::statement_dto) {
                    tr {
                        td { a href={ "/console/statements/" (s.id) } { @match s.sequence { Some(n) => (n), None => "open" } } }
                        td { (date(s.period_start, &l)) " – " (date(s.period_end, &l)) }
                        td { (badge(&s.status)) }
                        td.num { (s.line_count) }
                        (money_cell(&s.opening_balance, &s.currency, &l))
                        (money_cell(&s.closing_balance, &s.currency, &l))
                        @match &s.balance_difference { Some(d) => (money_cell(d, &s.currency, &l)), None => td.num { "—" } }
                    }
                }
            }))
        }
        h2 { "Statement lines" }
        form.inline method="get" action={ "/console/journals/" (id) } {
            label for="from" { "From" } input #from type="date" name="from" value=[q.from.map(|d| d.to_string())];
            label for="to" { "To" } input #to type="date" name="to" value=[q.to.map(|d| d.to_string())];
            button type="submit" { "Show" }
        }
        @if lines.is_empty() { p { "No lines in this range." } } @else {
            (table("Statement lines", lines_head(), line_rows(&lines, &l)))
            @if lines.len() == 200 { p.muted { "The first 200 lines of the range; narrow the dates to see others." } }
        }
    };
    Ok(page(&b.user, &j.name, Nav::Journals, body))
}

async fn statement(State(st): State<AppState>, b: Book, Path(id): Path<i64>) -> Page {
    let s = statements::get(&st.pool, b.company, id).await?;
    let ids = statements::line_ids(&st.pool, b.company, id).await?;
    let mut lines = statement_lines::many(&st.pool, b.company, &ids).await?;
    lines.sort_by_key(|x| (x.booking_date, x.id));
    let lines: Vec<dto::StatementLine> = lines
        .into_iter()
        .map(crate::routes::statement_lines::line_dto)
        .collect();
    let s = crate::routes::statements::statement_dto(s);
    let l = b.user.locale().to_string();
    let title = match s.sequence {
        Some(n) => format!("Statement {n}"),
        None => "Open statement".to_string(),
    };
    let body = html! {
        div.card {
            dl.facts {
                dt { "Period" } dd { (date(s.period_start, &l)) " – " (date(s.period_end, &l)) " (" (s.period) ")" }
                dt { "Status" } dd { (badge(&s.status)) }
                dt { "Opening balance" } dd { (money(&s.opening_balance, &s.currency, &l)) }
                dt { "Closing balance" } dd { (money(&s.closing_balance, &s.currency, &l)) }
                dt { "Lines" } dd { (s.line_count) }
                @if let Some(d) = &s.balance_difference {
                    dt { "Difference to the bank's balance" } dd { (money(d, &s.currency, &l)) }
                }
            }
            p { a href={ "/console/journals/" (s.journal_id) } { "Back to the journal" } }
        }
        (table("Lines", lines_head(), line_rows(&lines, &l)))
    };
    Ok(page(&b.user, &title, Nav::Journals, body))
}

async fn pending_page(State(st): State<AppState>, b: Book) -> Page {
    let filter = pending::PendingFilter {
        journal_id: None,
        state: Some("pending"),
    };
    let list = pending::page(&st.pool, b.company, &filter, None, 500).await?;
    let l = b.user.locale().to_string();
    let body = html! {
        p.muted { "Transactions the bank lists as not yet booked. They are not in the journals; each is linked to its line when it posts." }
        @if list.is_empty() { p { "Nothing pending." } } @else {
            (table("Pending transactions", html! { th { "Date" } th { "Description" } th.num { "Amount" } th { "Seen" } }, html! {
                @for p in list.into_iter().map(crate::routes::pending_transactions::dto) {
                    tr {
                        td { (date(p.booking_date, &l)) }
                        td { (p.description) }
                        (money_cell(&p.amount, &p.currency, &l))
                        td { (moment(Some(p.first_seen_at), &l)) }
                    }
                }
            }))
        }
    };
    Ok(page(&b.user, "Pending transactions", Nav::Pending, body))
}

async fn review_page(State(st): State<AppState>, b: Book) -> Page {
    let list = statement_lines::flagged(&st.pool, b.company, 200).await?;
    let lines: Vec<dto::StatementLine> = list
        .into_iter()
        .map(crate::routes::statement_lines::line_dto)
        .collect();
    let l = b.user.locale().to_string();
    let u = &b.user;
    // Each line shows what it waits for, and the answers to it (one line may wait for two).
    let body = html! {
        p.muted { "Lines that look like another line of the same day and amount, lines the bank no longer lists, and new lines that may be the bank's re-issue of a line that vanished. Each answer is recorded in the line's history and can be undone (a merge is final)." }
        @if lines.is_empty() { p { "Nothing to review." } } @else {
            (table("Lines to review", html! { th { "Booked" } th { "Description" } th.num { "Amount" } th { "Why" } th { "Decision" } }, html! {
                @for x in &lines {
                    tr data-line=(x.id) {
                        td { (date(x.booking_date, &l)) }
                        td { (x.description) }
                        (money_cell(&x.amount, &x.currency, &l))
                        td {
                            @if x.duplicate_review == Some(DuplicateReview::Flagged) { @if let Some(o) = x.suspect_duplicate_of { div { "Looks like line " (o) } } }
                            @if x.removal_review == Some(RemovalReview::Flagged) { div.warn { "The bank no longer lists it (since " (moment(x.gone_at_bank_at, &l)) ")" } }
                            @if x.reissue_review == Some(ReissueReview::Flagged) { @if let Some(o) = x.reissue_of { div { "May be the bank's re-issue of line " (o) ", which vanished" } } }
                        }
                        td { div.actions {
                            @if x.duplicate_review == Some(DuplicateReview::Flagged) {
                                (action_button(u, &format!("/console/review/{}/confirm", x.id), "Confirm duplicate", "danger", None))
                                (action_button(u, &format!("/console/review/{}/dismiss", x.id), "Keep", "", None))
                            }
                            @if x.removal_review == Some(RemovalReview::Flagged) {
                                (action_button(u, &format!("/console/review/{}/confirm-removal", x.id), "Confirm removal", "danger", None))
                                (action_button(u, &format!("/console/review/{}/keep-removed", x.id), "Keep the line", "", None))
                            }
                            @if x.reissue_review == Some(ReissueReview::Flagged) {
                                (action_button(u, &format!("/console/review/{}/merge-reissue", x.id), "Merge into the earlier line", "danger", Some("Merge: the earlier line takes this content and this line goes. This cannot be undone.")))
                                (action_button(u, &format!("/console/review/{}/dismiss-reissue", x.id), "Keep both", "", None))
                            }
                        } }
                    }
                }
            }))
        }
    };
    Ok(page(u, "Lines to review", Nav::Review, body))
}

/// One console answer to a flagged line: `/console/review/{id}/{answer}`.
async fn review_answer(
    State(st): State<AppState>,
    Path((id, answer)): Path<(i64, String)>,
    Posted(b, _): Posted<Book, Empty>,
) -> Response {
    use sync_engine::review::Decision;
    let (decision, done) = match answer.as_str() {
        "confirm" => (
            Decision::ConfirmDuplicate,
            "Confirmed as a duplicate: the line left the journal.",
        ),
        "dismiss" => (
            Decision::DismissDuplicate,
            "Kept: the line stays in the journal.",
        ),
        "confirm-removal" => (
            Decision::ConfirmRemoval,
            "Removal confirmed: the line left the journal.",
        ),
        "keep-removed" => (
            Decision::KeepRemoved,
            "Kept: the line stays in the journal.",
        ),
        "merge-reissue" => (
            Decision::MergeReissue,
            "Merged: the earlier line holds the re-issued transaction.",
        ),
        "dismiss-reissue" => (Decision::DismissReissue, "Kept both lines."),
        _ => {
            return failed(
                &st,
                "/console/review",
                sync_engine::SyncError::not_found("review answer").into(),
            )
        }
    };
    match sync_engine::review::decide(&st.pool, &st.client, b.company, id, decision).await {
        Ok(_) => notice(&st, "/console/review", done),
        Err(e) => failed(&st, "/console/review", e.into()),
    }
}
