//! The console's page frame and shared pieces: navigation, messages, forms with the CSRF
//! token, amounts and dates in the company's locale, error pages.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use maud::{html, Markup, DOCTYPE};
use sync_engine::tokens::Principal;

use super::format;
use super::{Flash, User};
use crate::error::ApiError;

/// Where a page sits in the navigation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Connections,
    Link,
    Journals,
    Pending,
    Review,
    Jobs,
    Runs,
    Attention,
    Webhooks,
    Audit,
}

const BOOK_NAV: &[(Nav, &str, &str)] = &[
    (Nav::Connections, "/console/connections", "Connections"),
    (Nav::Link, "/console/link", "Link a bank"),
    (Nav::Journals, "/console/journals", "Journals"),
    (Nav::Pending, "/console/pending", "Pending"),
    (Nav::Review, "/console/review", "Review"),
];

const OPS_NAV: &[(Nav, &str, &str)] = &[
    (Nav::Jobs, "/console/ops/jobs", "Jobs"),
    (Nav::Runs, "/console/ops/sync-runs", "Sync runs"),
    (Nav::Attention, "/console/ops/connections", "Connections"),
    (Nav::Webhooks, "/console/ops/webhooks", "Webhooks"),
    (Nav::Audit, "/console/ops/audit", "Audit log"),
];

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            // htmx would add an inline <style>, which the CSP refuses.
            meta name="htmx-config" content=r#"{"includeIndicatorStyles":false}"#;
            title { (title) " · banksync" }
            link rel="stylesheet" href="/console/assets/console.css";
            script src="/console/assets/htmx.min.js" defer {}
            script src="/console/assets/console.js" defer {}
        }
    }
}

fn flash(f: Option<&Flash>) -> Markup {
    html! {
        @if let Some(f) = f {
            div class={ "flash " (if f.error { "error" } else { "notice" }) } role=(if f.error { "alert" } else { "status" }) {
                (f.text)
            }
        }
    }
}

/// A signed-in page: navigation for the user's role, the last action's message, `body`.
pub fn page(user: &User, title: &str, nav: Nav, body: Markup) -> Response {
    let (items, who) = match user.session.principal {
        Principal::Company { .. } => (
            BOOK_NAV,
            user.session.company_name.clone().unwrap_or_default(),
        ),
        Principal::Operator { .. } => (OPS_NAV, "Operator".to_string()),
    };
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header.top {
                    span.brand { "banksync" }
                    nav aria-label="Main" {
                        @for (n, href, label) in items {
                            a href=(href) aria-current=[(*n == nav).then_some("page")] { (label) }
                        }
                    }
                    div.who {
                        span { (who) }
                        form method="post" action="/console/logout" {
                            (csrf_field(user))
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main {
                    (flash(user.flash.as_ref()))
                    h1 { (title) }
                    (body)
                }
            }
        }
    };
    let mut resp = markup.into_response();
    if user.flash.is_some() {
        // Shown once.
        resp.headers_mut().append(
            axum::http::header::SET_COOKIE,
            axum::http::HeaderValue::from_static(
                "banksync_flash=; Path=/console; HttpOnly; SameSite=Lax; Max-Age=0",
            ),
        );
    }
    resp
}

pub fn login_page(csrf: &str, next: &str, f: Option<&Flash>) -> Response {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head("Sign in"))
            body {
                header.top { span.brand { "banksync" } }
                main {
                    (flash(f))
                    h1 { "Sign in" }
                    div.card {
                        form.stack method="post" action="/console/login" {
                            input type="hidden" name="csrf" value=(csrf);
                            input type="hidden" name="next" value=(next);
                            label for="token" {
                                "API token"
                                span.hint { "A company token for your books, or an operator token. It is not stored in your browser; a session cookie is." }
                            }
                            input #token type="password" name="token" autocomplete="off" required autofocus;
                            button.primary type="submit" { "Sign in" }
                        }
                    }
                }
            }
        }
    }
    .into_response()
}

/// A page for an error, with the API's words (status, detail, guidance).
pub fn error_page(e: ApiError) -> Response {
    let ex = e.explain();
    let body = html! {
        (DOCTYPE)
        html lang="en" {
            (head(ex.title))
            body {
                header.top { span.brand { "banksync" } nav { a href="/console" { "Console" } } }
                main {
                    h1 { (ex.title) }
                    div.flash.error role="alert" { (ex.detail) }
                    @if let Some(g) = ex.guidance() { p.guidance { (g) } }
                    p { a href="/console" { "Back to the console" } }
                }
            }
        }
    };
    (ex.status, body).into_response()
}

/// A POST whose CSRF token is missing or not the session's: 403, nothing done.
pub fn csrf_refused() -> Response {
    let mut resp = error_page(ApiError::Conflict {
        code: "csrf_refused",
        detail:
            "This form expired or did not come from this console. Reload the page and try again."
                .into(),
        extra: Default::default(),
    });
    *resp.status_mut() = StatusCode::FORBIDDEN;
    resp
}

pub fn csrf_field(user: &User) -> Markup {
    html! { input type="hidden" name="csrf" value=(user.session.csrf()); }
}

/// A one-button form that POSTs to `action` (asking first when `confirm` is given).
pub fn action_button(
    user: &User,
    action: &str,
    label: &str,
    class: &str,
    confirm: Option<&str>,
) -> Markup {
    html! {
        form method="post" action=(action) data-confirm=[confirm] {
            (csrf_field(user))
            button type="submit" class=(class) { (label) }
        }
    }
}

/// An amount cell: right-aligned, in the locale's marks, with its currency.
pub fn money_cell(amount: &str, currency: &str, locale: &str) -> Markup {
    html! { td.num { (money(amount, currency, locale)) } }
}

pub fn money(amount: &str, currency: &str, locale: &str) -> Markup {
    html! { span.num { (format::amount(amount, locale)) span.cur { (currency) } } }
}

pub fn date(d: NaiveDate, locale: &str) -> Markup {
    html! { time datetime=(d.to_string()) { (format::date(d, locale)) } }
}

pub fn moment(t: Option<DateTime<Utc>>, locale: &str) -> Markup {
    html! {
        @match t {
            Some(t) => time datetime=(t.to_rfc3339()) { (format::moment(t, locale)) },
            None => span.muted { "—" },
        }
    }
}

pub fn badge<T: std::fmt::Display + ?Sized>(text: &T) -> Markup {
    let text = text.to_string();
    html! { span class={ "badge " (text) } { (text) } }
}

/// A table inside a horizontally scrolling wrapper (narrow screens).
pub fn table(caption: &str, head: Markup, rows: Markup) -> Markup {
    html! {
        div.table-wrap {
            table {
                caption.sr-only { (caption) }
                thead { tr { (head) } }
                tbody { (rows) }
            }
        }
    }
}
