//! The OpenAPI 3.1 document, generated from the handlers' annotations and completed here
//! with what every operation shares, so that it lists every status an operation can
//! return:
//! * secured operations: 401 (no or bad token, with `WWW-Authenticate`), 403 (the other
//!   kind of token), 429 (the token's rate limit, with `Retry-After`);
//! * operations with a body: 400 (not JSON), 413 (too large), 415 (not `application/json`),
//!   422 (JSON of the wrong shape); with query parameters: 422; with path parameters: 404;
//! * every operation: 408 (request timeout), 414 (URI too long), 500;
//! * every error answer is `application/problem+json` with the [`dto::Problem`] schema.
//!
//! The callback receivers are documented at the paths registered at Salt Edge
//! ([`with_callback_paths`]). `scripts/dev api-check` validates the document and runs
//! schemathesis against a live server.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::response::{ResponseBuilder, Responses};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, HttpMethod, Ref, RefOr};
use utoipa::{Modify, OpenApi};

use crate::callbacks::{receive, urls::CallbackUrls};
use crate::dto;
use crate::routes::{
    account_matches, admin, bank_accounts, changes, connections, exports, institutions, journals,
    ops, pending_transactions, statement_lines, statements, webhooks,
};
use crate::AppState;
use utoipa_axum::{router::OpenApiRouter, routes};

#[derive(OpenApi)]
#[openapi(
    info(title = "banksync", description = "Bank journals kept in step with bank accounts through Salt Edge. \
        Errors are RFC 9457 problem JSON with a stable `code`. Authenticate with `Authorization: Bearer <token>` \
        (`banksync token create`). Lists take `limit` from 1 to 1000 (default 100); a value outside is 422 \
        `invalid_limit`. Cursors are opaque, valid for the list and filters they came from."),
    servers((url = "/", description = "This server")),
    // Operations are registered with their routes ([`api_routes`]); the callback receiver's
    // template is rewritten to the registered paths ([`with_callback_paths`]).
    paths(receive::receive),
    components(schemas(dto::Problem, dto::Institution, dto::LinkRequest, dto::ReturnTo, dto::ConnectUrl, dto::Connection,
        dto::ConnectionError, dto::BankAccount, dto::SyncRun, dto::SyncRunsPage, dto::BalanceMismatch, dto::SyncQueued,
        dto::Journal, dto::MapAccount, dto::StatementLine, dto::LinesPage, dto::Job, dto::InteractivePrompt,
        dto::InteractiveAnswer, dto::QuarantinedRecord, dto::Token, dto::AuditRecord, dto::CallbackAck,
        // Named only by query parameters, which do not register their schemas.
        sync_engine::export::Format)),
    modifiers(&TokenAuth),
)]
pub struct ApiDoc;

struct TokenAuth;

impl Modify for TokenAuth {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A company or operator token from `banksync token create`",
                    ))
                    .build(),
            ),
        );
    }
}

const PROBLEM: &str = "application/problem+json";

fn problem_content() -> Content {
    Content::new(Some(RefOr::Ref(Ref::from_schema_name("Problem"))))
}

struct CommonAnswers;

impl CommonAnswers {
    fn add(responses: &mut Responses, status: &str, description: &str) {
        responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| {
                RefOr::T(
                    ResponseBuilder::new()
                        .description(description)
                        .content(PROBLEM, problem_content())
                        .build(),
                )
            });
    }

    fn complete(op: &mut Operation, path: &str) {
        let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
        let params = op.parameters.as_deref().unwrap_or_default();
        let has_query = params.iter().any(|p| p.parameter_in == ParameterIn::Query);
        let has_path = params.iter().any(|p| p.parameter_in == ParameterIn::Path);
        let has_body = op.request_body.is_some();
        let r = &mut op.responses;
        if secured {
            Self::add(r, "401", "unauthorized: no token, an unknown, expired or revoked one (`WWW-Authenticate: Bearer`)");
            let other = if path.starts_with("/api/v1/admin/") {
                "forbidden: this needs an operator token"
            } else {
                "company_token_required: an operator token cannot read or change a company's data"
            };
            Self::add(r, "403", other);
            Self::add(
                r,
                "429",
                "rate_limited: too many requests for this token (`Retry-After` says when to retry)",
            );
        }
        if has_body {
            Self::add(r, "400", "malformed_json: the body is not JSON");
            Self::add(r, "413", "payload_too_large: the body is over the limit");
            Self::add(
                r,
                "415",
                "unsupported_media_type: send `Content-Type: application/json`",
            );
        }
        if has_body || has_query {
            Self::add(r, "422", "invalid_body, invalid_query, invalid_limit, invalid_cursor, invalid_text (a NUL character): the input breaks the schema");
        }
        if has_path {
            Self::add(r, "404", "not_found: no such resource for this caller");
        }
        Self::add(r, "408", "request_timeout: the request took too long");
        Self::add(r, "414", "uri_too_long: the URI is over 8 KiB");
        Self::add(
            r,
            "500",
            "internal: an error of ours; details are in the logs",
        );
        // Every error answer is a problem document.
        for (status, resp) in r.responses.iter_mut() {
            if let (true, RefOr::T(resp)) =
                (status.starts_with('4') || status.starts_with('5'), resp)
            {
                if resp.content.is_empty() {
                    resp.content.insert(PROBLEM.to_string(), problem_content());
                }
            }
        }
    }
}

impl Modify for CommonAnswers {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        for (path, item) in api.paths.paths.iter_mut() {
            for method in [
                HttpMethod::Get,
                HttpMethod::Post,
                HttpMethod::Put,
                HttpMethod::Delete,
                HttpMethod::Patch,
            ] {
                let op = match method {
                    HttpMethod::Get => item.get.as_mut(),
                    HttpMethod::Post => item.post.as_mut(),
                    HttpMethod::Put => item.put.as_mut(),
                    HttpMethod::Delete => item.delete.as_mut(),
                    HttpMethod::Patch => item.patch.as_mut(),
                    _ => None,
                };
                if let Some(op) = op {
                    Self::complete(op, path);
                }
            }
        }
    }
}

/// OpenAPI links: where the ids an answer holds can be used next (a generated client's
/// navigation, and schemathesis's stateful phase: list → show, sync → its runs, lines →
/// their review).
struct Links;

impl Links {
    const TABLE: &'static [(
        &'static str,
        HttpMethod,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
    )] = &[
        // (path, method, status, target operationId, parameter, value)
        (
            "/api/v1/connections",
            HttpMethod::Get,
            "200",
            "show_connection",
            "id",
            "$response.body#/0/id",
        ),
        (
            "/api/v1/connections",
            HttpMethod::Get,
            "200",
            "sync_connection",
            "id",
            "$response.body#/0/id",
        ),
        (
            "/api/v1/connections",
            HttpMethod::Get,
            "200",
            "list_sync_runs",
            "id",
            "$response.body#/0/id",
        ),
        (
            "/api/v1/connections",
            HttpMethod::Get,
            "200",
            "list_quarantined_items",
            "id",
            "$response.body#/0/id",
        ),
        (
            "/api/v1/connections",
            HttpMethod::Get,
            "200",
            "update_connection_credentials",
            "id",
            "$response.body#/0/id",
        ),
        (
            "/api/v1/connections",
            HttpMethod::Get,
            "200",
            "fetch_new_accounts",
            "id",
            "$response.body#/0/id",
        ),
        (
            "/api/v1/connections",
            HttpMethod::Get,
            "200",
            "answer_interactive_question",
            "id",
            "$response.body#/0/id",
        ),
        (
            "/api/v1/connections",
            HttpMethod::Get,
            "200",
            "revoke_consent",
            "id",
            "$response.body#/0/id",
        ),
        (
            "/api/v1/connections",
            HttpMethod::Get,
            "200",
            "delete_connection",
            "id",
            "$response.body#/0/id",
        ),
        (
            "/api/v1/connections",
            HttpMethod::Get,
            "200",
            "map_bank_account",
            "id",
            "$response.body#/0/accounts/0/id",
        ),
        (
            "/api/v1/connections/{id}/sync",
            HttpMethod::Post,
            "202",
            "list_sync_runs",
            "id",
            "$request.path.id",
        ),
        (
            "/api/v1/connections/{id}/sync",
            HttpMethod::Post,
            "202",
            "show_connection",
            "id",
            "$request.path.id",
        ),
        (
            "/api/v1/journals",
            HttpMethod::Get,
            "200",
            "list_statement_lines",
            "journal_id",
            "$response.body#/0/id",
        ),
        (
            "/api/v1/statement-lines",
            HttpMethod::Get,
            "200",
            "confirm_duplicate_line",
            "id",
            "$response.body#/items/0/id",
        ),
        (
            "/api/v1/statement-lines",
            HttpMethod::Get,
            "200",
            "dismiss_duplicate_line",
            "id",
            "$response.body#/items/0/id",
        ),
        (
            "/api/v1/statement-lines",
            HttpMethod::Get,
            "200",
            "undo_line_review",
            "id",
            "$response.body#/items/0/id",
        ),
        (
            "/api/v1/statement-lines",
            HttpMethod::Get,
            "200",
            "confirm_line_removal",
            "id",
            "$response.body#/items/0/id",
        ),
        (
            "/api/v1/statement-lines",
            HttpMethod::Get,
            "200",
            "keep_removed_line",
            "id",
            "$response.body#/items/0/id",
        ),
        (
            "/api/v1/statement-lines",
            HttpMethod::Get,
            "200",
            "merge_reissued_line",
            "id",
            "$response.body#/items/0/id",
        ),
        (
            "/api/v1/statement-lines",
            HttpMethod::Get,
            "200",
            "dismiss_reissued_line",
            "id",
            "$response.body#/items/0/id",
        ),
        (
            "/api/v1/admin/jobs",
            HttpMethod::Get,
            "200",
            "rerun_job",
            "id",
            "$response.body#/0/id",
        ),
    ];
}

impl Modify for Links {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        for (path, method, status, target, param, value) in Self::TABLE {
            let op = api
                .paths
                .paths
                .get_mut(*path)
                .and_then(|item| match method {
                    HttpMethod::Get => item.get.as_mut(),
                    HttpMethod::Post => item.post.as_mut(),
                    _ => None,
                });
            let Some(RefOr::T(resp)) = op.and_then(|op| op.responses.responses.get_mut(*status))
            else {
                panic!("OpenAPI link from {path} {status}: no such documented answer");
            };
            let link = utoipa::openapi::link::LinkBuilder::new()
                .operation_id(*target)
                .parameter(*param, *value)
                .build();
            resp.links
                .insert(format!("{target}_{param}"), RefOr::T(link));
        }
    }
}

/// The template path of the callback receiver.
pub const CALLBACK_TEMPLATE: &str = "/callbacks/saltedge/{kind}";

/// Every operation with its route, registered once for the router and the document. The
/// callback receivers are routed in `router` at their registered paths; `/metrics` is here
/// unless it has its own listener.
pub fn api_routes(state: &AppState) -> OpenApiRouter<AppState> {
    let api = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(institutions::list))
        .routes(routes!(connections::link, connections::list))
        .routes(routes!(connections::show, connections::delete))
        .routes(routes!(connections::update_credentials))
        .routes(routes!(connections::fetch_accounts))
        .routes(routes!(connections::sync_now))
        .routes(routes!(connections::sync_runs))
        .routes(routes!(connections::quarantine))
        .routes(routes!(connections::revoke))
        .routes(routes!(connections::answer_interactive))
        .routes(routes!(journals::list))
        .routes(routes!(bank_accounts::map_account))
        .routes(routes!(statement_lines::lines))
        .routes(routes!(statement_lines::confirm_duplicate))
        .routes(routes!(statement_lines::dismiss_duplicate))
        .routes(routes!(statement_lines::undo_review))
        .routes(routes!(statement_lines::confirm_removal))
        .routes(routes!(statement_lines::keep_removed))
        .routes(routes!(statement_lines::merge_reissue))
        .routes(routes!(statement_lines::dismiss_reissue))
        .routes(routes!(statement_lines::history))
        .routes(routes!(pending_transactions::list))
        .routes(routes!(pending_transactions::link))
        .routes(routes!(pending_transactions::unlink))
        .routes(routes!(changes::list))
        .routes(routes!(statements::of_account))
        .routes(routes!(statements::of_journal))
        .routes(routes!(statements::show))
        .routes(routes!(statements::set_period))
        .routes(routes!(exports::of_account))
        .routes(routes!(exports::of_journal))
        .routes(routes!(webhooks::create, webhooks::list))
        .routes(routes!(webhooks::show, webhooks::update, webhooks::delete))
        .routes(routes!(webhooks::rotate))
        .routes(routes!(webhooks::deliveries))
        .routes(routes!(webhooks::redeliver))
        .routes(routes!(account_matches::list))
        .routes(routes!(account_matches::confirm))
        .routes(routes!(account_matches::reject))
        .routes(routes!(admin::jobs))
        .routes(routes!(admin::rerun))
        .routes(routes!(admin::tokens))
        .routes(routes!(admin::revoke_token))
        .routes(routes!(admin::audit))
        .routes(routes!(serve_document))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::audit,
        ));
    let mut ops = OpenApiRouter::new()
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::livez));
    if !state.metrics_separate {
        ops = ops.routes(routes!(ops::metrics));
    }
    api.merge(ops)
}

/// The document of [`api_routes`] completed (common answers, links) with the callback
/// receivers at their registered paths: the JSON this server serves.
pub fn complete(mut api: utoipa::openapi::OpenApi, callbacks: &CallbackUrls) -> serde_json::Value {
    CommonAnswers.modify(&mut api);
    Links.modify(&mut api);
    let mut doc = serde_json::to_value(with_callback_paths(api, callbacks))
        .expect("the OpenAPI document serializes");
    // utoipa 5.5 writes a Link's `operationId` as `operation_id` (no serde rename on
    // `utoipa::openapi::link::Link`): renamed here so that the document is valid.
    if let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) {
        for op in paths
            .values_mut()
            .filter_map(|i| i.as_object_mut())
            .flat_map(|i| i.values_mut())
        {
            let responses = op.get_mut("responses").and_then(|r| r.as_object_mut());
            for resp in responses.into_iter().flat_map(|r| r.values_mut()) {
                let links = resp.get_mut("links").and_then(|l| l.as_object_mut());
                for link in links
                    .into_iter()
                    .flat_map(|l| l.values_mut())
                    .filter_map(|l| l.as_object_mut())
                {
                    if let Some(id) = link.remove("operation_id") {
                        link.insert("operationId".into(), id);
                    }
                }
            }
        }
    }
    doc
}

/// The document as this server answers: the callback receiver at each path registered at
/// Salt Edge (`server.callback_urls`), one operation per kind.
pub fn with_callback_paths(
    mut doc: utoipa::openapi::OpenApi,
    callbacks: &CallbackUrls,
) -> utoipa::openapi::OpenApi {
    if let Some(template) = doc.paths.paths.remove(CALLBACK_TEMPLATE) {
        for c in callbacks.all() {
            let mut item = template.clone();
            if let Some(op) = item.post.as_mut() {
                op.operation_id = Some(format!("receive_{}_callback", c.kind));
                op.summary = Some(format!("Receives Salt Edge's {} callback", c.kind));
                if let Some(params) = op.parameters.as_mut() {
                    params.retain(|p| p.name != "kind");
                }
                if op.parameters.as_ref().is_some_and(|p| p.is_empty()) {
                    op.parameters = None;
                }
                op.responses.responses.remove("404");
            }
            doc.paths.paths.insert(c.path.clone(), item);
        }
    }
    doc
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "operations", operation_id = "show_openapi_document",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json")))]
pub async fn serve_document(
    axum::extract::State(st): axum::extract::State<crate::AppState>,
) -> impl axum::response::IntoResponse {
    axum::Json(st.openapi.get().cloned().unwrap_or_default())
}
