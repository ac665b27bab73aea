//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::callbacks::receive;
use crate::dto;
use crate::routes::{admin, connections, institutions, journals, ops};

#[derive(OpenApi)]
#[openapi(
    info(title = "banksync", description = "Bank journals kept in step with bank accounts through Salt Edge. \
        Errors are RFC 9457 problem JSON with a stable `code`. Authenticate with `Authorization: Bearer <token>` \
        (`banksync token create`)."),
    paths(
        institutions::list,
        connections::link, connections::list, connections::show, connections::update_credentials,
        connections::fetch_accounts, connections::sync_now, connections::sync_runs, connections::revoke,
        connections::answer_interactive, connections::quarantine, connections::delete,
        journals::list, journals::map_account, journals::lines,
        journals::confirm_duplicate, journals::dismiss_duplicate, journals::undo_review,
        receive::receive,
        admin::jobs, admin::rerun, admin::tokens, admin::revoke_token, admin::audit,
        ops::healthz, ops::readyz, ops::livez, ops::metrics, ops::openapi,
    ),
    components(schemas(dto::Institution, dto::LinkRequest, dto::ReturnTo, dto::ConnectUrl, dto::Connection,
        dto::ConnectionError, dto::BankAccount, dto::SyncRun, dto::SyncQueued, dto::Journal, dto::MapAccount,
        dto::StatementLine, dto::LinesPage, dto::Job, dto::InteractivePrompt, dto::InteractiveAnswer, dto::QuarantinedRecord, dto::Token, dto::AuditRecord)),
    modifiers(&TokenAuth),
)]
pub struct ApiDoc;

struct TokenAuth;

impl Modify for TokenAuth {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme("token", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()));
    }
}
