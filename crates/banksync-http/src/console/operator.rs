//! The operator's pages: the job queue by state with dead jobs and their retry, sync runs,
//! connections needing attention across companies, webhook deliveries, the audit log. No
//! company data beyond what an operator needs: company and bank names, states and errors.

use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use maud::html;
use sync_engine::console as store;

use super::layout::{action_button, badge, moment, page, table, Nav};
use super::{failed, notice, Empty, Ops, Path, Posted};
use crate::error::ApiError;
use crate::AppState;

type Page = Result<Response, super::PageError>;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/console/ops",
            get(|| async { axum::response::Redirect::to("/console/ops/jobs") }),
        )
        .route("/console/ops/jobs", get(jobs))
        .route("/console/ops/jobs/{id}/retry", post(retry))
        .route("/console/ops/sync-runs", get(runs))
        .route("/console/ops/connections", get(attention))
        .route("/console/ops/webhooks", get(webhooks))
        .route("/console/ops/audit", get(audit))
}

async fn jobs(State(st): State<AppState>, o: Ops) -> Page {
    let counts = store::job_counts(&st.pool).await?;
    let dead = sync_engine::jobs::dead(&st.pool, None, 100).await?;
    let recent = sync_engine::jobs::recent(&st.pool, None, 50).await?;
    let u = &o.user;
    let l = u.locale().to_string();
    let body = html! {
        section.card aria-labelledby="by-state" {
            h2 #by-state { "Queue by state" }
            dl.facts {
                @for (s, n) in &counts { dt { (badge(s.as_str())) } dd data-state=(s.as_str()) { (n) } }
            }
        }
        h2 { "Dead jobs" }
        @if dead.is_empty() { p { "No dead job." } } @else {
            (table("Dead jobs", html! { th { "Job" } th { "Kind" } th.num { "Attempts" } th { "Reason" } th { "Finished" } th { "" } }, html! {
                @for j in &dead {
                    tr data-job=(j.id) {
                        td { (j.id) } td { (j.kind) } td.num { (j.attempts) "/" (j.max_attempts) }
                        td { (j.last_error.as_deref().unwrap_or("")) }
                        td { (moment(j.finished_at, &l)) }
                        td { (action_button(u, &format!("/console/ops/jobs/{}/retry", j.id), "Retry", "primary", None)) }
                    }
                }
            }))
        }
        h2 { "Recent jobs" }
        (table("Recent jobs", html! { th { "Job" } th { "Kind" } th { "State" } th.num { "Attempts" } th { "Queued" } th { "Last error" } }, html! {
            @for j in &recent {
                tr {
                    td { (j.id) } td { (j.kind) } td { (badge(j.status.as_str())) } td.num { (j.attempts) }
                    td { (moment(Some(j.created_at), &l)) } td { (j.last_error.as_deref().unwrap_or("")) }
                }
            }
        }))
    };
    Ok(page(u, "Jobs", Nav::Jobs, body))
}

async fn retry(
    State(st): State<AppState>,
    Path(id): Path<i64>,
    Posted(_o, _): Posted<Ops, Empty>,
) -> Response {
    match sync_engine::jobs::rerun(&st.pool, id).await {
        Ok(true) => {
            tracing::info!(job = id, "job queued again by an operator (console)");
            notice(&st, "/console/ops/jobs", format!("Job {id} queued again."))
        }
        Ok(false) => failed(
            &st,
            "/console/ops/jobs",
            ApiError::conflict(
                "not_rerunnable",
                "the job is not dead or failed, or the same work is already queued",
            ),
        ),
        Err(e) => failed(&st, "/console/ops/jobs", e.into()),
    }
}

async fn runs(State(st): State<AppState>, o: Ops) -> Page {
    let list = store::recent_runs(&st.pool, 200).await?;
    let l = o.user.locale().to_string();
    let body = html! {
        (table("Sync runs", html! {
            th { "Started" } th { "Company" } th { "Trigger" } th { "State" } th.num { "Fetched" } th.num { "New" } th.num { "Updated" } th.num { "Quarantined" } th { "Error" }
        }, html! {
            @for r in &list {
                tr {
                    td { (moment(Some(r.started_at), &l)) } td { (r.company_name) } td { (r.trigger) } td { (badge(r.status.as_str())) }
                    td.num { (r.fetched) } td.num { (r.inserted) } td.num { (r.updated) } td.num { (r.quarantined) }
                    td { @if let Some(c) = &r.error_class { strong { (c) } " " } (r.error_message.as_deref().unwrap_or("")) }
                }
            }
        }))
    };
    Ok(page(&o.user, "Sync runs", Nav::Runs, body))
}

async fn attention(State(st): State<AppState>, o: Ops) -> Page {
    let list = store::needing_attention(&st.pool, 200).await?;
    let l = o.user.locale().to_string();
    let body = html! {
        p.muted { "Inactive or disabled connections, errors, consents revoked or ending within 15 days, banks waiting for the user's answer." }
        @if list.is_empty() { p { "Every connection is well." } } @else {
            (table("Connections needing attention", html! {
                th { "Company" } th { "Bank" } th { "State" } th { "Error" } th { "Consent ends" } th { "Last sync" }
            }, html! {
                @for c in &list {
                    tr data-connection=(c.connection_id) {
                        td { (c.company_name) } td { (c.provider_name) } td { (badge(c.status.as_str())) }
                        td { (c.error_class.as_deref().unwrap_or("")) @if let Some(g) = c.error_class.as_deref().and_then(sync_engine::guidance::for_class) { br; span.muted { (g) } } }
                        td { (moment(c.consent_expires_at, &l)) } td { (moment(c.last_synced_at, &l)) }
                    }
                }
            }))
        }
    };
    Ok(page(
        &o.user,
        "Connections needing attention",
        Nav::Attention,
        body,
    ))
}

/// An endpoint as operators see it: where it points, not its path or query (receivers put
/// tokens there; they are the company's, not the operator's).
fn endpoint_origin(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => {
            let more = u.path() != "/" || u.query().is_some();
            format!(
                "{}{}",
                u.origin().ascii_serialization(),
                if more { "/…" } else { "/" }
            )
        }
        Err(_) => "(not a URL)".to_string(),
    }
}

async fn webhooks(State(st): State<AppState>, o: Ops) -> Page {
    let list = store::recent_deliveries(&st.pool, 200).await?;
    let l = o.user.locale().to_string();
    let body = html! {
        @if list.is_empty() { p { "No webhook delivery yet." } } @else {
            (table("Webhook deliveries", html! {
                th { "Event" } th { "Company" } th { "Endpoint" } th { "State" } th.num { "Attempts" } th { "Last answer" } th { "Created" }
            }, html! {
                @for d in &list {
                    tr {
                        td { (d.kind) } td { (d.company_name) } td { (endpoint_origin(&d.url)) } td { (badge(&d.state)) } td.num { (d.attempts) }
                        td { @if let Some(s) = d.last_status { (s) " " } (d.last_error.as_deref().unwrap_or("")) }
                        td { (moment(Some(d.created_at), &l)) }
                    }
                }
            }))
        }
    };
    Ok(page(&o.user, "Webhook deliveries", Nav::Webhooks, body))
}

async fn audit(State(st): State<AppState>, o: Ops) -> Page {
    let list = sync_engine::audit::recent(&st.pool, None, 200).await?;
    let l = o.user.locale().to_string();
    let body = html! {
        (table("Audit log", html! { th { "When" } th { "Who" } th { "Action" } th.num { "Result" } th { "Detail" } }, html! {
            @for r in &list {
                tr {
                    td { (moment(Some(r.at), &l)) } td { (r.actor) } td { (r.action) }
                    td.num { @if let Some(s) = r.status { (s) } }
                    td { (r.detail.as_deref().unwrap_or("")) }
                }
            }
        }))
    };
    Ok(page(&o.user, "Audit log", Nav::Audit, body))
}
