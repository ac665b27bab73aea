//! The REST API's request and response bodies (the OpenAPI schemas). Money is a decimal
//! string with its currency.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sync_engine::changes::Op;
use sync_engine::statements::Period;
use sync_engine::status::{
    CallbackOutcome, ChangeEntity, ConnectionStatus, ConsentStatus, DeliveryState, DuplicateReview,
    EndpointState, JobStatus, MatchStatus, PendingState, RecordKind, ReissueReview, RemovalReview,
    RunStatus, StatementState, TokenKind,
};
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Serialize, ToSchema)]
pub struct Institution {
    pub code: String,
    pub name: String,
    pub country_code: String,
    pub mode: String,
    pub interactive: bool,
    pub fake: bool,
}

/// An RFC 9457 problem document: every error answer of the service.
#[derive(Serialize, ToSchema)]
pub struct Problem {
    /// `https://banksync.dev/problems/{code}`
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    /// Stable, machine-readable: `not_found`, `invalid_body`, `consent_revoked`…
    pub code: String,
    /// For a person; never echoes a secret.
    pub detail: String,
    /// What to tell the user, when there is something they can do.
    #[schema(nullable = false)]
    pub guidance: Option<String>,
    /// Salt Edge's error class, when Salt Edge refused.
    #[schema(nullable = false)]
    pub saltedge_error_class: Option<String>,
    /// The existing connection, for `already_synchronized`.
    #[schema(nullable = false)]
    pub connection_id: Option<Uuid>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    /// Institution (Salt Edge provider) code, from `GET /api/v1/institutions`.
    #[schema(min_length = 1, max_length = 200, pattern = r"^[^\x00]*$")]
    pub provider_code: String,
    /// An optional `+`, 7 to 15 digits; spaces, dots, dashes and brackets allowed.
    #[schema(pattern = r"^[ ().-]*\+?(?:[ ().-]*[0-9]){7,15}[ ().-]*$")]
    pub phone: String,
    /// Used to create the company's Salt Edge account: it must be valid.
    #[schema(
        max_length = 254,
        pattern = r"^[!-?A-~]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$"
    )]
    pub email: String,
    /// Where Salt Edge Connect sends the user back (http or https); its origin must be on
    /// the allow-list (403 `return_to_not_allowed` otherwise).
    #[schema(max_length = 2048, pattern = r"^https?://[!-~]+$")]
    pub return_to: String,
    /// Link even though the company already has a connection to this institution.
    #[serde(default)]
    pub allow_second_connection: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReturnTo {
    /// Where Salt Edge Connect sends the user back (http or https); its origin must be on
    /// the allow-list (403 `return_to_not_allowed` otherwise).
    #[schema(max_length = 2048, pattern = r"^https?://[!-~]+$")]
    pub return_to: String,
}

/// Paging of a list: `limit` 1 to 1000 (else 422 `invalid_limit`), `cursor` from the
/// previous page's `next_cursor` (else 422 `invalid_cursor`).
#[derive(Deserialize, utoipa::IntoParams)]
pub struct PageQuery {
    /// Page size.
    #[param(minimum = 1, maximum = 1000, default = 100, nullable = false)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(nullable = false, pattern = "^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]{43}$")]
    pub cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ConnectUrl {
    /// Send the user here (Salt Edge Connect).
    pub connect_url: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct ConnectionError {
    pub class: String,
    pub message: Option<String>,
    /// What to tell the user, after Salt Edge's support guide.
    pub guidance: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct BankAccount {
    pub id: Uuid,
    pub saltedge_id: String,
    pub name: String,
    pub nature: String,
    pub iban: Option<String>,
    pub currency: String,
    /// Decimal string.
    pub bank_balance: Option<String>,
    pub journal_id: Uuid,
    pub journal_name: String,
    /// Bank balance minus journal balance at the last check, when not zero.
    pub balance_mismatch: Option<String>,
    /// How the bank balance was compared with the journal: `booked`, `credit_card_spend`
    /// (a card's balance is the sum of its negative transactions) or `not_comparable`.
    pub balance_check: Option<String>,
    /// Why the balance could not be compared.
    pub balance_note: Option<String>,
    pub disappeared_at: Option<DateTime<Utc>>,
    /// How its lines are grouped into statements: `daily`, `weekly` or `monthly`.
    #[schema(value_type = Period)]
    pub statement_period: String,
}

#[derive(Serialize, ToSchema)]
pub struct SyncRun {
    pub id: Uuid,
    pub trigger: String,
    pub status: RunStatus,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub pages: i32,
    pub fetched: i32,
    pub inserted: i32,
    pub updated: i32,
    pub skipped_duplicate: i32,
    pub flagged_duplicated: i32,
    pub pending_removed: i32,
    pub suspects: i32,
    /// Lines moved to the id under which the bank re-issued their transaction.
    pub rekeyed: i32,
    /// Lines this run flagged `gone_at_bank`: the bank no longer lists their transaction.
    pub gone_at_bank: i32,
    /// New lines this run flagged as possible re-issues (changed content) of lines that
    /// vanished in the same listing (`reissue_of`).
    pub possible_reissues: i32,
    /// Records that could not be parsed or stored, kept with the reason (see
    /// `GET /api/v1/connections/{id}/quarantine`).
    pub quarantined: i32,
    /// Accounts whose bank balance differed from the journal's when the run ended.
    pub balance_mismatches: Vec<BalanceMismatch>,
    pub error_class: Option<String>,
    pub error_message: Option<String>,
}

impl From<sync_engine::runs::SyncRun> for SyncRun {
    fn from(r: sync_engine::runs::SyncRun) -> Self {
        SyncRun {
            id: r.id,
            trigger: r.trigger,
            status: r.status,
            started_at: r.started_at,
            finished_at: r.finished_at,
            pages: r.pages,
            fetched: r.fetched,
            inserted: r.inserted,
            updated: r.updated,
            skipped_duplicate: r.skipped_duplicate,
            flagged_duplicated: r.flagged_duplicated,
            pending_removed: r.pending_removed,
            suspects: r.suspects,
            rekeyed: r.rekeyed,
            gone_at_bank: r.gone_at_bank,
            possible_reissues: r.possible_reissues,
            quarantined: r.quarantined,
            balance_mismatches: BalanceMismatch::list(&r.balance_mismatches),
            error_class: r.error_class,
            error_message: r.error_message,
        }
    }
}

/// A bank account whose bank balance and journal balance differed at the end of a sync;
/// recorded, never "fixed". Amounts are decimal strings.
#[derive(Serialize, ToSchema)]
pub struct BalanceMismatch {
    pub bank_account_id: Uuid,
    pub currency: String,
    pub bank_balance: String,
    pub journal_balance: String,
    /// Bank balance minus journal balance.
    pub difference: String,
}

impl BalanceMismatch {
    fn list(stored: &serde_json::Value) -> Vec<BalanceMismatch> {
        let parsed: Vec<sync_engine::balance::Mismatch> = serde_json::from_value(stored.clone())
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "a sync run's balance_mismatches could not be read");
                vec![]
            });
        parsed
            .into_iter()
            .map(|m| BalanceMismatch {
                bank_account_id: m.bank_account_id,
                bank_balance: money(m.bank_balance, &m.currency),
                journal_balance: money(m.journal_balance, &m.currency),
                difference: money(m.difference, &m.currency),
                currency: m.currency,
            })
            .collect()
    }
}

#[derive(Serialize, ToSchema)]
pub struct SyncRunsPage {
    pub items: Vec<SyncRun>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Connection {
    pub id: Uuid,
    pub saltedge_id: String,
    pub provider_code: String,
    pub provider_name: String,
    pub country_code: String,
    /// active, inactive, disabled, or removed (gone at Salt Edge; record kept).
    pub status: ConnectionStatus,
    pub stage: Option<String>,
    pub daily_refresh: bool,
    pub consent_expires_at: Option<DateTime<Utc>>,
    /// Whole days until the consent expires (a started day counts), 0 once expired; null
    /// when Salt Edge gave no expiry.
    pub consent_expires_in_days: Option<i64>,
    /// `none` (no expiry given), `valid`, `expiring` (15 days or fewer left: ask for a
    /// reconnect link with update-credentials now), `expired` or `revoked`.
    pub consent_status: ConsentStatus,
    pub consent_revoked_at: Option<DateTime<Utc>>,
    pub last_synced_at: Option<DateTime<Utc>>,
    pub next_refresh_possible_at: Option<DateTime<Utc>>,
    pub error: Option<ConnectionError>,
    /// Set while the bank waits for the user's answer (an SMS code, a choice of accounts).
    pub interactive: Option<InteractivePrompt>,
    pub accounts: Vec<BankAccount>,
    pub last_sync: Option<SyncRun>,
}

/// The bank's question, from Salt Edge's interactive callback. `html` is the bank's own,
/// untrusted markup: show it as text or in a sandbox, never inject it into a page.
#[derive(Serialize, ToSchema)]
pub struct InteractivePrompt {
    pub html: Option<String>,
    /// The fields to send back in `credentials`.
    #[schema(value_type = Vec<String>)]
    pub fields_names: serde_json::Value,
    /// Choices per field, when the bank offers some (Salt Edge's `interactive_fields_options`).
    #[schema(value_type = Object)]
    pub fields_options: serde_json::Value,
    pub expires_at: Option<DateTime<Utc>>,
}

/// The user's answer to the bank's interactive question: one entry per field name.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InteractiveAnswer {
    /// One entry per field the bank asked for: a string, or a list of strings for a choice.
    #[schema(schema_with = credentials_schema)]
    pub credentials: serde_json::Map<String, serde_json::Value>,
}

/// `{ "<field>": "answer" | ["choice", …] }`, at least one field.
fn credentials_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{
        AdditionalProperties, ArrayBuilder, ObjectBuilder, OneOfBuilder, Type,
    };
    let answer = OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(sync_engine::flows::input::TEXT_PATTERN)),
        )
        .item(
            ArrayBuilder::new().items(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(sync_engine::flows::input::TEXT_PATTERN)),
            ),
        );
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .min_properties(Some(1))
        .additional_properties(Some(AdditionalProperties::RefOr(answer.into())))
        .build()
}

/// A record from Salt Edge that could not be parsed or stored.
#[derive(Serialize, ToSchema)]
pub struct QuarantinedRecord {
    pub id: i64,
    pub sync_run_id: Uuid,
    /// transaction or account
    pub kind: RecordKind,
    pub saltedge_id: Option<String>,
    /// The record's JSON exactly as Salt Edge sent it (the bank's data: untrusted).
    pub raw: String,
    pub reason: String,
    pub created_at: DateTime<Utc>,
}

impl From<sync_engine::quarantine::QuarantinedRecord> for QuarantinedRecord {
    fn from(q: sync_engine::quarantine::QuarantinedRecord) -> Self {
        QuarantinedRecord {
            id: q.id,
            sync_run_id: q.sync_run_id,
            kind: q.kind,
            saltedge_id: q.saltedge_id,
            raw: q.raw,
            reason: q.reason,
            created_at: q.created_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SyncQueued {
    pub sync_run_id: Uuid,
}

#[derive(Serialize, ToSchema)]
pub struct Journal {
    pub id: Uuid,
    pub name: String,
    pub currency: String,
    pub sync_start_date: Option<NaiveDate>,
}

/// A new Salt Edge account that looks like an earlier bank account only by provider,
/// currency and name: the bookkeeper confirms (the earlier account and its journal take it
/// over, history is not imported again) or rejects (it gets a journal of its own).
#[derive(Serialize, ToSchema)]
pub struct AccountMatch {
    pub id: i64,
    pub connection_id: Uuid,
    pub saltedge_account_id: String,
    /// The new account's name and currency, as Salt Edge lists it.
    pub name: String,
    pub currency: String,
    /// The earlier bank account it may be.
    pub candidate_account_id: Uuid,
    pub candidate_name: String,
    /// `proposed`, `confirmed` or `rejected`.
    pub status: MatchStatus,
    pub created_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
}

/// A bank statement: one account's lines of one period, with balances that chain.
#[derive(Serialize, ToSchema)]
pub struct Statement {
    pub id: i64,
    pub bank_account_id: Uuid,
    pub journal_id: Uuid,
    pub currency: String,
    /// `daily`, `weekly` (Monday to Sunday) or `monthly`.
    #[schema(value_type = Period)]
    pub period: String,
    pub period_start: NaiveDate,
    pub period_end: NaiveDate,
    /// `open` until its period has ended and a sync after that has completed; then
    /// `closed`, numbered, and never changed again.
    pub status: StatementState,
    /// The account's statement number, given when it closes.
    pub sequence: Option<i32>,
    pub closed_at: Option<DateTime<Utc>>,
    pub line_count: i64,
    /// Decimal string: the previous statement's closing balance.
    pub opening_balance: String,
    /// Decimal string: opening balance + its lines (confirmed duplicates excluded) +
    /// corrections.
    pub closing_balance: String,
    /// Decimal string: changes to lines of closed statements (an amount edited by Salt Edge,
    /// a line confirmed as a duplicate or removed), carried here so that closed statements
    /// never change and the balances still chain.
    pub corrections: String,
    /// The balance check recorded on this statement, if any: the bank's balance at the
    /// sync's attempt…
    pub bank_balance: Option<String>,
    pub bank_balance_at: Option<DateTime<Utc>>,
    /// …how it was compared (`booked`, `credit_card_spend`, `not_comparable`)…
    pub balance_basis: Option<String>,
    /// …and bank balance minus the journal's balance then (zero: they agreed; absent: not
    /// comparable). Recorded, never adjusted.
    pub balance_difference: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct StatementsPage {
    pub items: Vec<Statement>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct StatementWithLines {
    pub statement: Statement,
    /// Its lines by booking date (a line that arrived after its own period closed is in
    /// the statement it arrived in, with its own date).
    pub lines: Vec<StatementLine>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatementPeriod {
    /// `daily`, `weekly` or `monthly`.
    #[schema(value_type = Period)]
    pub period: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MapAccount {
    pub journal_id: Uuid,
}

#[derive(Serialize, ToSchema)]
pub struct StatementLine {
    pub id: i64,
    pub journal_id: Uuid,
    pub bank_account_id: Uuid,
    pub booking_date: NaiveDate,
    pub value_date: Option<NaiveDate>,
    /// Decimal string, negative for money leaving the account.
    pub amount: String,
    pub currency: String,
    pub description: String,
    pub payee: Option<String>,
    pub counterparty_iban: Option<String>,
    pub saltedge_transaction_id: String,
    /// The pending transaction this line posted from (`GET /api/v1/pending-transactions`).
    pub pending_transaction_id: Option<i64>,
    /// Another line that looks the same (same fingerprint, or Salt Edge's
    /// `possible_duplicate` hint with the same amount, date and currency): worth a look.
    pub suspect_duplicate_of: Option<i64>,
    /// The bookkeeper's review of the flag: flagged, confirmed (a duplicate: out of the
    /// journal, marked `duplicated` at Salt Edge) or dismissed; absent when not flagged.
    pub duplicate_review: Option<DuplicateReview>,
    /// False once confirmed as a duplicate or confirmed removed: the line no longer counts
    /// in the journal.
    pub in_journal: bool,
    /// The Salt Edge id this line had before the bank re-issued its transaction.
    pub rekeyed_from: Option<String>,
    /// Set when a complete listing that covers this line's transaction no longer holds it
    /// (the bank removed it; no re-issue explains it): the line stays (closed statements
    /// never change) and the bookkeeper is told. Cleared, recorded in the history, when the
    /// bank lists the transaction again.
    pub gone_at_bank_at: Option<DateTime<Utc>>,
    /// The sync run that found the line gone.
    pub gone_at_bank_run_id: Option<Uuid>,
    /// The bookkeeper's answer to `gone_at_bank`: `flagged` (waiting), `confirmed` (the
    /// removal: the line left the journal, a correction when its statement is closed) or
    /// `kept`; absent when the bank lists the transaction. Cleared with the flag when the
    /// transaction comes back.
    pub removal_review: Option<RemovalReview>,
    /// This line may be the bank's re-issue, with changed amount or text, of that earlier
    /// line, which vanished in the same listing: merge them
    /// (`POST …/{id}/merge-reissue`: the earlier line keeps its id and takes this content;
    /// this line goes) or dismiss (both stay).
    pub reissue_of: Option<i64>,
    /// `flagged` (waiting) or `dismissed`; absent when `reissue_of` is.
    pub reissue_review: Option<ReissueReview>,
    /// Content identity, fixed when the line was first stored: a hash of booking date,
    /// amount, currency, normalised description and counterparty…
    pub fingerprint: String,
    /// …and which of the account's lines with that fingerprint this is (0, 1, 2… in the
    /// order first stored: three identical coffees on one day are three lines).
    pub occurrence: i32,
    /// The bank's own transaction id (`extra.id`), where the provider gives one.
    pub bank_transaction_id: Option<String>,
    pub imported_at: DateTime<Utc>,
    #[schema(value_type = Object)]
    pub extra: serde_json::Value,
    /// The bank's text held characters that cannot be stored (U+0000, lone UTF-16
    /// surrogates), replaced by U+FFFD; true whenever the line's text holds U+FFFD.
    pub text_repaired: bool,
}

/// One entry of the change feed: an entity as it is now, and what happened to it since the
/// cursor.
#[derive(Serialize, ToSchema)]
pub struct ChangeEntry {
    /// `added` (new since the cursor), `modified` (changed since) or `removed` (out of the
    /// books: folded into another line when the bank re-issued it, or confirmed as a
    /// duplicate). Apply `added` and `modified` alike: upsert by `id`.
    pub op: Op,
    /// `line` or `statement`.
    pub entity: ChangeEntity,
    pub id: i64,
    pub journal_id: Uuid,
    /// The line as it is now (for a line that still exists).
    pub line: Option<StatementLine>,
    /// The statement as it is now (for a statement that still exists).
    pub statement: Option<Statement>,
}

#[derive(Serialize, ToSchema)]
pub struct ChangesPage {
    pub changes: Vec<ChangeEntry>,
    /// Where to continue: pass it as `cursor` next time (always present; keep the last one).
    pub next_cursor: String,
    /// More changes are ready: ask again at once.
    pub has_more: bool,
    /// Nothing is ready or held back: the consumer is up to date. False while changes
    /// wait for older database transactions to end (they never land behind a cursor
    /// already given out): ask again shortly.
    pub caught_up: bool,
}

/// One entry of a line's history.
#[derive(Serialize, ToSchema)]
pub struct LineEvent {
    /// `created`, `updated` (by Salt Edge: `detail.fields` and what they held in
    /// `detail.before`), `rekeyed` (`detail.from`, `detail.to`, `detail.reason`:
    /// `reissued`, `bank_transaction_id` or `relinked`), `posted_from_pending`
    /// (`detail.by`: `bookkeeper` when linked through the API), `flagged`
    /// (`detail.look_alike_of`), `duplicate_confirmed`, `duplicate_dismissed`,
    /// `review_undone` (`detail.undone`: the decision taken back), `pending_unlinked` (a
    /// bookkeeper undid the link), `gone_at_bank` (the bank no longer lists the
    /// transaction), `back_at_bank` (listed again; `detail.answer_dropped` when a removal
    /// had been answered), `removal_confirmed`, `removal_kept`, `possible_reissue`
    /// (`detail.reissue_of`), `reissue_merged` (on the earlier line: `detail.replaced_line`,
    /// `from`, `to`, `before`), `reissue_dismissed`.
    pub kind: String,
    pub at: DateTime<Utc>,
    /// The sync run that made the change (none for a bookkeeper's review).
    pub sync_run_id: Option<Uuid>,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

#[derive(Serialize, ToSchema)]
pub struct LineHistory {
    pub line_id: i64,
    /// Oldest first; the first is always `created`.
    pub events: Vec<LineEvent>,
}

/// A transaction the bank has not booked yet: out of the books until it posts.
#[derive(Serialize, ToSchema)]
pub struct PendingTransaction {
    pub id: i64,
    pub journal_id: Uuid,
    pub bank_account_id: Uuid,
    pub saltedge_transaction_id: String,
    pub booking_date: NaiveDate,
    pub value_date: Option<NaiveDate>,
    /// Decimal string, negative for money leaving the account.
    pub amount: String,
    pub currency: String,
    pub description: String,
    pub payee: Option<String>,
    /// `pending` (listed by Salt Edge now), `posted` (became the statement line
    /// `posted_line_id`) or `expired` (Salt Edge stopped listing it before it posted).
    pub state: PendingState,
    pub posted_line_id: Option<i64>,
    /// A statement line that may be this transaction's posting: same amount and currency
    /// within a few days, the only candidate, but no shared words, so it was proposed for
    /// review instead of linked. The transaction stays `pending`/`expired` meanwhile.
    pub proposed_line_id: Option<i64>,
    pub first_seen_at: DateTime<Utc>,
    /// When it posted or expired.
    pub resolved_at: Option<DateTime<Utc>>,
    #[schema(value_type = Object)]
    pub extra: serde_json::Value,
    pub text_repaired: bool,
}

#[derive(Serialize, ToSchema)]
pub struct PendingPage {
    pub items: Vec<PendingTransaction>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct LinesPage {
    pub items: Vec<StatementLine>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// ISO 4217 minor-unit digits, for showing amounts the way accountants expect ("10.50").
fn minor_units(currency: &str) -> u32 {
    match currency {
        "JPY" | "KRW" | "VND" | "CLP" | "ISK" | "UGX" | "XAF" | "XOF" | "PYG" => 0,
        "BHD" | "KWD" | "OMR" | "JOD" | "TND" | "LYD" | "IQD" => 3,
        _ => 2,
    }
}

/// An exact decimal string with at least the currency's minor digits and never fewer than
/// the value needs.
pub fn money(amount: rust_decimal::Decimal, currency: &str) -> String {
    let mut n = amount.normalize();
    let want = minor_units(currency);
    if n.scale() < want {
        n.rescale(want);
    }
    n.to_string()
}

#[derive(Serialize, ToSchema)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    /// queued, running, done, failed or dead
    pub status: JobStatus,
    pub attempts: i32,
    pub run_after: DateTime<Utc>,
    pub locked_by: Option<String>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<sync_engine::jobs::Job> for Job {
    fn from(j: sync_engine::jobs::Job) -> Self {
        Job {
            id: j.id,
            kind: j.kind,
            payload: j.payload,
            status: j.status,
            attempts: j.attempts,
            run_after: j.run_after,
            locked_by: j.locked_by,
            last_error: j.last_error,
            created_at: j.created_at,
            finished_at: j.finished_at,
        }
    }
}

/// An API token as operators see it; the token itself is never stored.
#[derive(Serialize, ToSchema)]
pub struct Token {
    pub id: Uuid,
    /// company or operator
    pub kind: TokenKind,
    pub company_id: Option<Uuid>,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<sync_engine::tokens::TokenInfo> for Token {
    fn from(t: sync_engine::tokens::TokenInfo) -> Self {
        Token {
            id: t.id,
            kind: t.kind,
            company_id: t.company_id,
            name: t.name,
            created_at: t.created_at,
            expires_at: t.expires_at,
            last_used_at: t.last_used_at,
            revoked_at: t.revoked_at,
        }
    }
}

/// One state-changing API call or admin command.
#[derive(Serialize, ToSchema)]
pub struct AuditRecord {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub token_id: Option<Uuid>,
    pub company_id: Option<Uuid>,
    /// token:ID, operator:ID, cli:USER or anonymous
    pub actor: String,
    /// METHOD path, or the CLI command
    pub action: String,
    /// The HTTP status (0 for CLI commands that succeeded)
    pub status: Option<i32>,
    pub detail: Option<String>,
}

impl From<sync_engine::audit::Record> for AuditRecord {
    fn from(r: sync_engine::audit::Record) -> Self {
        AuditRecord {
            id: r.id,
            at: r.at,
            token_id: r.token_id,
            company_id: r.company_id,
            actor: r.actor,
            action: r.action,
            status: r.status,
            detail: r.detail,
        }
    }
}

/// What the callback receiver did with a verified callback.
#[derive(Serialize, ToSchema)]
pub struct CallbackAck {
    /// `accepted`, or `duplicate` for a redelivery (ignored).
    pub status: CallbackOutcome,
}

impl From<sync_engine::flows::ConnectLink> for ConnectUrl {
    fn from(l: sync_engine::flows::ConnectLink) -> Self {
        ConnectUrl {
            connect_url: l.connect_url,
            expires_at: l.expires_at,
        }
    }
}

impl BankAccount {
    /// An account with the name of the journal it feeds.
    pub fn new(a: sync_engine::mapping::BankAccount, journal_name: String) -> Self {
        BankAccount {
            id: a.id,
            saltedge_id: a.saltedge_id,
            name: a.name,
            nature: a.nature,
            iban: a.iban,
            bank_balance: a.bank_balance.map(|b| money(b, &a.currency)),
            balance_mismatch: a.balance_mismatch.map(|b| money(b, &a.currency)),
            currency: a.currency,
            journal_id: a.journal_id,
            journal_name,
            disappeared_at: a.disappeared_at,
            balance_check: a.balance_check,
            balance_note: a.balance_note,
            statement_period: a.statement_period,
        }
    }
}

impl From<sync_engine::flows::ConnectionView> for Connection {
    fn from(v: sync_engine::flows::ConnectionView) -> Self {
        use sync_engine::connections;
        let c = v.connection;
        let now = Utc::now();
        let consent_expires_in_days = connections::consent_days_left(&c, now);
        let consent_status = connections::consent_status(&c, now);
        let error = c.last_error_class.clone().map(|class| ConnectionError {
            guidance: sync_engine::guidance::for_class(&class).map(str::to_string),
            class,
            message: c.last_error_message.clone(),
        });
        let waiting = c.stage.as_deref() == Some("interactive")
            && (c.interactive_html.is_some() || c.interactive_fields_names.is_some());
        let interactive = waiting.then(|| InteractivePrompt {
            html: c.interactive_html.clone(),
            fields_names: c
                .interactive_fields_names
                .clone()
                .unwrap_or_else(|| serde_json::json!([])),
            fields_options: c
                .interactive_fields_options
                .clone()
                .unwrap_or_else(|| serde_json::json!({})),
            expires_at: c.interactive_expires_at,
        });
        Connection {
            id: c.id,
            saltedge_id: c.saltedge_id,
            provider_code: c.provider_code,
            provider_name: c.provider_name,
            country_code: c.country_code,
            status: c.status,
            stage: c.stage,
            daily_refresh: c.daily_refresh,
            consent_expires_in_days,
            consent_status,
            consent_expires_at: c.consent_expires_at,
            consent_revoked_at: c.consent_revoked_at,
            last_synced_at: c.last_synced_at,
            next_refresh_possible_at: c.next_refresh_possible_at,
            interactive,
            error,
            accounts: v
                .accounts
                .into_iter()
                .map(|(a, name)| BankAccount::new(a, name))
                .collect(),
            last_sync: v.last_run.map(SyncRun::from),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhookEndpoint {
    /// Where events are posted: https (http only where the configuration allows it), a
    /// public address (see docs/api.md, Webhooks), no credentials in it.
    #[schema(
        min_length = 1,
        max_length = 2000,
        pattern = r"^https?://[^\s/?#@]+(?:[/?#]\S*)?$"
    )]
    pub url: String,
    #[schema(max_length = 500)]
    pub description: Option<String>,
    /// The event kinds to deliver; empty or absent: all of them.
    pub events: Option<Vec<WebhookEventKind>>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookEndpointChange {
    #[schema(
        min_length = 1,
        max_length = 2000,
        pattern = r"^https?://[^\s/?#@]+(?:[/?#]\S*)?$"
    )]
    pub url: Option<String>,
    #[schema(max_length = 500)]
    pub description: Option<String>,
    pub events: Option<Vec<WebhookEventKind>>,
    /// false pauses deliveries (they wait); true resumes them, also after the endpoint was
    /// disabled for failing.
    pub enabled: Option<bool>,
}

/// An event kind.
#[derive(Serialize, Deserialize, ToSchema, Clone, Copy)]
pub enum WebhookEventKind {
    #[serde(rename = "lines.changed")]
    LinesChanged,
    #[serde(rename = "lines.flagged")]
    LinesFlagged,
    #[serde(rename = "connection.status_changed")]
    ConnectionStatusChanged,
    #[serde(rename = "connection.needs_reconnect")]
    ConnectionNeedsReconnect,
    #[serde(rename = "consent.expiring")]
    ConsentExpiring,
    #[serde(rename = "consent.expired")]
    ConsentExpired,
    #[serde(rename = "sync.failed")]
    SyncFailed,
}

impl WebhookEventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookEventKind::LinesChanged => "lines.changed",
            WebhookEventKind::LinesFlagged => "lines.flagged",
            WebhookEventKind::ConnectionStatusChanged => "connection.status_changed",
            WebhookEventKind::ConnectionNeedsReconnect => "connection.needs_reconnect",
            WebhookEventKind::ConsentExpiring => "consent.expiring",
            WebhookEventKind::ConsentExpired => "consent.expired",
            WebhookEventKind::SyncFailed => "sync.failed",
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct WebhookEndpoint {
    pub id: Uuid,
    pub url: String,
    pub description: String,
    /// Empty: every kind.
    pub events: Vec<String>,
    /// `enabled`, `paused` (through the API) or `disabled` (failing too long: see
    /// `disabled_reason`; enable it again with PATCH).
    pub status: EndpointState,
    pub disabled_at: Option<DateTime<Utc>>,
    pub disabled_reason: Option<String>,
    /// Deliveries have failed since then, without a success.
    pub failing_since: Option<DateTime<Utc>>,
    /// After a rotation, the previous secret signs too until then.
    pub previous_secret_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An endpoint with its signing secret: shown only when registered or rotated.
#[derive(Serialize, ToSchema)]
pub struct WebhookEndpointWithSecret {
    pub endpoint: WebhookEndpoint,
    /// `whsec_…` (Standard Webhooks): verify `webhook-signature` with it. Not shown again.
    pub secret: String,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookDelivery {
    pub id: i64,
    pub endpoint_id: Uuid,
    /// The `webhook-id` header (the same on every attempt: deduplicate by it).
    pub message_id: String,
    #[schema(value_type = WebhookEventKind)]
    pub kind: String,
    pub connection_id: Option<Uuid>,
    /// `pending` (waiting, being sent or retried) or `delivered`.
    pub state: DeliveryState,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// The endpoint's HTTP status on the last attempt.
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// The event's body as stored (`lines.changed` gets its cursor when sent).
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

#[derive(Serialize, ToSchema)]
pub struct JobsPage {
    pub items: Vec<Job>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditRecord>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct QuarantinePage {
    pub items: Vec<QuarantinedRecord>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookDeliveriesPage {
    pub items: Vec<WebhookDelivery>,
    pub next_cursor: Option<String>,
}
