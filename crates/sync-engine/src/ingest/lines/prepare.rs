//! A page prepared on the fetching task: each transaction's row, content hash and digest (rules 1, 4, 9).

use std::collections::HashMap;
use std::collections::HashSet;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use saltedge_client::models::Transaction;
use saltedge_client::models::TransactionStatus;
use serde_json::value::RawValue;
use uuid::Uuid;

use super::{
    copy_head, fingerprint, looks_like_iban, AccountTarget, CopyIds, ExtraRead, LineStatus,
    PageOutcome,
};
use crate::quarantine::Quarantined;

/// One statement line as written.
pub(super) struct Row {
    pub(super) bank_account_id: Uuid,
    pub(super) journal_id: Uuid,
    pub(super) booking_date: NaiveDate,
    pub(super) value_date: Option<NaiveDate>,
    pub(super) amount: Decimal,
    pub(super) currency: String,
    pub(super) description: String,
    pub(super) payee: Option<String>,
    pub(super) counterparty_iban: Option<String>,
    pub(super) saltedge_id: String,
    pub(super) fingerprint: String,
    pub(super) content_hash: String,
    /// Salt Edge's `extra` as the JSON text it arrived in (a parsed tree took ~3 times the
    /// memory).
    pub(super) extra: Box<str>,
    /// Some text holds U+FFFD (see `saltedge_client::text`).
    pub(super) text_repaired: bool,
    /// Salt Edge's `extra.possible_duplicate` hint.
    pub(super) possible_duplicate: bool,
    /// The bank's own transaction id (`extra.id`), where the provider gives one.
    pub(super) bank_id: Option<String>,
    /// The pending transaction this posted one replaces (rule 2).
    pub(super) pending_id: Option<i64>,
    /// A pending transaction this row may be the posting of, on weak evidence (rule 2):
    /// proposed for review, not linked.
    pub(super) pending_proposal: Option<i64>,
    /// The statement a new line goes into ([`crate::statements::assign`]).
    pub(super) statement_id: Option<i64>,
    /// Its account was taken over by a new connection (rule 10).
    pub(super) relinked: bool,
    /// [`crate::digest::raw16`] of the item's JSON as received, when the caller had it.
    pub(super) raw_digest: Option<Vec<u8>>,
    /// The columns of [`copy_lines`] that do not depend on the database, as `COPY` text,
    /// rendered ahead on the fetching task ([`PreparedPage::render_copy`]); empty if not.
    pub(super) copy_head: String,
}

/// Change detection without re-serialising `extra`: Salt Edge bumps `updated_at` whenever
/// it changes a transaction; the visible fields are hashed too, for sources that do not.
/// The text is `format!("{}|{:?}|{}|{}|{}|{}|{:?}", made_on, updated_at,
/// amount.normalize(), currency, description, status, posting_date)`, hashed as written.
pub(super) fn content_hash(
    t: &Transaction,
    status: LineStatus,
    posting: Option<NaiveDate>,
) -> String {
    let mut h = crate::digest::HashText::new();
    h.date(t.made_on)
        .str("|")
        .time_debug(t.updated_at)
        .str("|")
        .fmt(format_args!("{}", t.amount.normalize()))
        .str("|")
        .str(&t.currency_code)
        .str("|")
        .str(&t.description)
        .str("|")
        .str(status.as_str())
        .str("|")
        .date_debug(posting);
    h.hex(16)
}

pub(super) fn row(
    t: &Transaction,
    read: ExtraRead,
    target: &AccountTarget,
    status: LineStatus,
    raw_digest: Option<Vec<u8>>,
) -> Row {
    let extra = read.typed;
    let outgoing = t.amount.is_sign_negative();
    let payee = if outgoing {
        extra.payee.clone().or(extra.payer.clone())
    } else {
        extra.payer.clone().or(extra.payee.clone())
    };
    let info = if outgoing {
        extra.payee_information.as_deref()
    } else {
        extra.payer_information.as_deref()
    };
    let counterparty_iban = info
        .filter(|i| looks_like_iban(i))
        .map(|i| i.replace(' ', ""));
    let content_hash = content_hash(t, status, extra.posting_date);
    Row {
        content_hash,
        bank_account_id: target.bank_account_id,
        journal_id: target.journal_id,
        booking_date: t.made_on,
        value_date: extra.posting_date,
        amount: t.amount,
        currency: t.currency_code.clone(),
        description: t.description.clone(),
        fingerprint: fingerprint(
            t.made_on,
            t.amount,
            &t.currency_code,
            &t.description,
            payee.as_deref(),
        ),
        payee,
        counterparty_iban,
        saltedge_id: t.id.clone(),
        text_repaired: t.description.contains('\u{FFFD}') || read.repaired,
        possible_duplicate: extra.possible_duplicate == Some(true),
        extra: t.extra.get().into(),
        pending_id: None,
        pending_proposal: None,
        statement_id: None,
        relinked: target.relinked,
        bank_id: read.bank_id,
        raw_digest,
        copy_head: String::new(),
    }
}

/// A page turned into rows, ready to write. Building it is CPU work that needs no database,
/// so the sync does it on the fetching task.
pub struct PreparedPage {
    pub(super) rows: Vec<Row>,
    pub(super) out: PageOutcome,
    pub(super) status: LineStatus,
    pub(super) quarantined: Vec<Quarantined>,
    /// Items that a line already holds byte for byte ([`held_verbatim`]), unparsed: their
    /// Salt Edge id and JSON text.
    pub(super) held: Vec<(String, Box<RawValue>)>,
    /// How many of Salt Edge's pages this holds ([`PreparedPage::absorb`]).
    pub(super) pages: i32,
}

impl PreparedPage {
    /// Rows to write.
    pub fn row_count(&self) -> usize {
        self.rows.len()
    }

    /// Takes the next page of the same listing into this one, to be written in one
    /// transaction (a first import writes the pages that are ready together). An id this
    /// one holds already is replaced by the later page's row, as writing the pages one
    /// after the other would leave it, and counted as a duplicate.
    pub fn absorb(&mut self, next: PreparedPage) {
        debug_assert!(self.status == next.status);
        let mut at: HashMap<String, usize> = self
            .rows
            .iter()
            .enumerate()
            .map(|(i, r)| (r.saltedge_id.clone(), i))
            .collect();
        for r in next.rows {
            match at.get(&r.saltedge_id) {
                Some(&i) => {
                    self.rows[i] = r;
                    self.out.skipped_duplicate += 1;
                }
                None => {
                    at.insert(r.saltedge_id.clone(), self.rows.len());
                    self.rows.push(r);
                }
            }
        }
        self.out.add(&next.out);
        self.quarantined.extend(next.quarantined);
        self.held.extend(next.held);
        self.pages += next.pages;
    }

    /// Renders each row's `COPY` text ahead ([`Row::copy_head`]), for a first import: CPU
    /// work the fetching task does while the database writes the previous pages.
    pub fn render_copy(&mut self, company: Uuid, run_id: Uuid) {
        let mut ids = CopyIds::new(company, run_id);
        for r in &mut self.rows {
            let mut head = String::with_capacity(384);
            copy_head(&mut head, r, &mut ids);
            r.copy_head = head;
        }
    }

    /// Adds items a line already holds byte for byte: counted, not parsed.
    pub fn hold(&mut self, held: Vec<(String, Box<RawValue>)>) {
        self.out.fetched += held.len() as i32;
        self.held.extend(held);
    }

    /// Adds the page's items that did not parse, to be quarantined with the page.
    pub fn reject(&mut self, rejected: &[saltedge_client::models::Rejected]) {
        self.out.fetched += rejected.len() as i32;
        self.quarantined.extend(
            rejected
                .iter()
                .map(|r| Quarantined::rejected(crate::quarantine::RecordKind::Transaction, r)),
        );
    }
}

/// Why a parsed transaction cannot be stored, if it cannot.
pub(super) fn unstorable(t: &Transaction, extra: &ExtraRead) -> Option<String> {
    if t.id.trim().is_empty() {
        return Some("the transaction has no id".into());
    }
    if !crate::quarantine::storable_currency(&t.currency_code) {
        return Some(format!(
            "currency code {:?} is not a currency code",
            t.currency_code
        ));
    }
    if !crate::quarantine::plausible_date(t.made_on) {
        return Some(format!("booking date {} is not plausible", t.made_on));
    }
    let posting = extra.posting;
    if posting.is_some_and(|d| !crate::quarantine::plausible_date(d)) {
        return Some(format!(
            "posting date {} is not plausible",
            posting.unwrap_or_default()
        ));
    }
    None
}

pub fn prepare(
    targets: &HashMap<String, AccountTarget>,
    txs: &[Transaction],
    status: LineStatus,
) -> PreparedPage {
    prepare_digested(targets, txs.iter().map(|t| (t, None)), status)
}

/// [`prepare`] with each item's [`crate::digest::raw16`], kept on its line.
pub fn prepare_digested<'a>(
    targets: &HashMap<String, AccountTarget>,
    txs: impl ExactSizeIterator<Item = (&'a Transaction, Option<Vec<u8>>)>,
    status: LineStatus,
) -> PreparedPage {
    let mut out = PageOutcome {
        fetched: txs.len() as i32,
        ..Default::default()
    };
    let mut rows = Vec::with_capacity(txs.len());
    let mut in_page = HashSet::with_capacity(txs.len());
    let mut quarantined = vec![];
    for (t, raw_digest) in txs {
        let extra = ExtraRead::of(&t.extra);
        if let Some(reason) = unstorable(t, &extra) {
            quarantined.push(Quarantined::unstorable(
                crate::quarantine::RecordKind::Transaction,
                &t.id,
                t,
                reason,
            ));
            continue;
        }
        // The same id twice in one page would trip the upsert; the second is a duplicate.
        if !in_page.insert(t.id.as_str()) {
            out.skipped_duplicate += 1;
            continue;
        }
        if t.duplicated {
            out.flagged_duplicated += 1;
            continue;
        }
        if status == LineStatus::Posted && t.status == TransactionStatus::Pending {
            continue;
        }
        let Some(target) = targets.get(&t.account_id) else {
            out.unknown_account += 1;
            tracing::warn!(account = %t.account_id, "transaction of an account not known locally; skipped");
            continue;
        };
        if target.sync_start_date.is_some_and(|d| t.made_on < d) {
            out.skipped_before_start += 1;
            continue;
        }
        rows.push(row(t, extra, target, status, raw_digest));
    }
    PreparedPage {
        rows,
        out,
        status,
        quarantined,
        held: vec![],
        pages: 1,
    }
}
