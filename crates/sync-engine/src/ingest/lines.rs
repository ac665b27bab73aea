//! Deduplication: where Salt Edge transactions become statement lines, exactly once.
//!
//! Journals hold booked (posted) transactions only; pending ones live in
//! `pending_transactions` until they post or expire.
//!
//! The rules, each with a test in `tests/engine/dedup.rs`:
//!
//! 1. **One line per Salt Edge transaction id.** Lines are upserted on
//!    `(bank_account_id, saltedge_transaction_id)`; seeing the same transaction again changes
//!    nothing unless Salt Edge changed its content, which updates the line in place.
//! 2. **A pending transaction that posts is linked, not doubled.** A posted transaction whose
//!    id we have not seen is matched against the account's open pending transactions: the
//!    same Salt Edge id, else same amount and currency, booking dates at most
//!    `pending_match_days` apart, never one that this sync's pending list (read before the
//!    posted listing) still holds, then the most similar description (word overlap; long
//!    numbers and references dropped, short numbers kept, differing numbers contradict). A
//!    match is linked when the similarity reaches `min_similarity`; the only candidate
//!    below it is proposed (`proposed_line_id` on the pending transaction), not linked. A
//!    linked line records `pending_transaction_id`; the pending transaction becomes `posted`
//!    with `posted_line_id`.
//! 3. **Pending transactions that vanish expire; lines never do.** After a complete pending
//!    list, the connection's pending transactions that Salt Edge no longer lists become
//!    `expired` (kept, out of the books). An expired one can still be matched when it posts.
//! 4. **`duplicated` transactions do not become lines.** Only a client sets `duplicated`
//!    (`PUT /transactions/duplicate`, which banksync does when a bookkeeper confirms a
//!    flagged line); such transactions leave `/transactions`. Any that still arrive are
//!    counted in the sync run (`flagged_duplicated`) so they stay visible.
//! 5. **Overlapping or whole-history re-fetches never double**: a consequence of rule 1.
//! 6. **Concurrent syncs of one connection serialize** on a Postgres advisory lock
//!    ([`crate::lock`]); rule 1's unique key is the backstop.
//! 7. **Look-alikes are flagged, not dropped.** Each line stores a fingerprint (booking date,
//!    amount, currency, normalised description, counterparty). A new line whose fingerprint
//!    equals another line's in the same account gets `suspect_duplicate_of` set: two real
//!    coffees on one day are both kept, and a person can review them. Salt Edge's own hint,
//!    `extra.possible_duplicate` (same amount, date and currency as a transaction of the
//!    previous attempt), flags a line too, against the first line with that amount, date
//!    and currency: a hint, never a reason to drop anything.
//! 8. **Re-issued transactions are re-keyed only when the old id is confirmed gone.** A bank
//!    may re-issue a transaction under a new id; the new one arrives as a flagged look-alike.
//!    When a complete listing that covers the old id (its id is at or above the listing's
//!    `from_id`) no longer holds it, the old line takes the new id (keeping its line id and
//!    remembering `rekeyed_from`) and the new line goes. Until then both stand, the new one
//!    flagged for review ([`rekey_reissued`]). **Twins are never merged:** never when both
//!    carry bank ids (`extra.id`) that differ, and never when a complete listing held both
//!    after the new one was first stored (table `line_listings`: per line of a look-alike
//!    group, the last complete listing that held its transaction). A line the bank had
//!    already removed (flagged `gone_at_bank` by an earlier listing) is no re-issue's old
//!    line: a re-issue's old id goes in the listing where the new one comes.
//!    **Removals and changed re-issues** ([`flag_gone_at_bank`]): a line the listing covers
//!    but no longer holds is flagged `gone_at_bank`, cleared (with any answer) when it is
//!    listed again; a new line without bank id that the same listing brought, a few days
//!    and a small amount from a line found gone, is flagged `reissue_of` it
//!    ([`propose_reissues`]). The bookkeeper answers both ([`crate::review`]).
//! 9. **Identity survives the bank.** A transaction with an unknown Salt Edge id whose bank
//!    id (`extra.id`) is a line's of the same account is that line: it is re-keyed at once
//!    ([`rekey_by_bank_id`]). A line's content identity — its fingerprint, fixed when first
//!    stored, and its `occurrence` among the account's lines with that fingerprint — is
//!    unique per account; line ids never change. Every change after the first store is
//!    recorded in the line's history ([`crate::history`]) in the same transaction.
//! 10. **The same bank linked again imports nothing twice.** When an account is taken over
//!     by a new connection ([`crate::mapping`]: same IBAN or account number), each
//!     transaction with an unknown Salt Edge id claims the earliest unclaimed line imported
//!     before the takeover with its fingerprint, in occurrence order ([`claim_relinked`]);
//!     only the rest are new lines.
//!
//! Each page is written in one database transaction, so a crash loses at most the page in
//! flight, which the next run fetches again.
//!
//! Speed, without bending a rule: a first import's page (the connection had no lines) is
//! `COPY`'d in ([`copy_lines`]: the text of each row rendered ahead on the fetching task,
//! line ids taken from the sequence first so that look-alikes are flagged as they are
//! copied and nothing is read back), falling back to the upsert through a savepoint if it
//! does repeat a stored id; every line keeps the digest of its item's JSON as received, so a
//! re-sync sets aside the items a line holds byte for byte without parsing them
//! ([`held_verbatim`]), and compares the rest by content hash; a page that changes nothing
//! writes nothing.
//!
//! Why one file of this size: the rules above and the SQL that enforces each of them are
//! read together; splitting them would separate a rule from its statement.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;
use rust_decimal::Decimal;
use saltedge_client::models::{Transaction, TransactionExtra, TransactionStatus};
use serde_json::value::RawValue;
use sqlx::{PgPool, Postgres};
use uuid::Uuid;

use crate::error::{Result, SyncError};
use crate::quarantine::Quarantined;

mod pipeline;
pub use pipeline::{ImportPipeline, WriteContext, WRITE_LOCK};

/// Where a bank account's lines go.
#[derive(Debug, Clone)]
pub struct AccountTarget {
    pub bank_account_id: Uuid,
    pub journal_id: Uuid,
    pub currency: String,
    pub sync_start_date: Option<NaiveDate>,
    /// The account was taken over by this connection (the same bank linked again): its
    /// earlier lines wait to be claimed (rule 10).
    pub relinked: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct DedupOptions {
    pub pending_match_days: i64,
    pub min_similarity: f64,
}

impl Default for DedupOptions {
    fn default() -> Self {
        DedupOptions {
            pending_match_days: 5,
            min_similarity: 0.5,
        }
    }
}

pub use crate::store::status::LineStatus;

pub use crate::runs::PageOutcome;

/// Lower-case words without digits: drops references, card numbers and dates that differ
/// between a pending and a posted version of one payment.
pub fn normalise_description(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for w in s
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty() && !w.chars().any(|c| c.is_numeric()))
    {
        if !out.is_empty() {
            out.push(' ');
        }
        // `str::to_lowercase` for any other text: it knows the final sigma (Σ → ς).
        if w.is_ascii() {
            out.extend(w.chars().map(|c| c.to_ascii_lowercase()));
        } else {
            out.push_str(&w.to_lowercase());
        }
    }
    out
}

/// Jaccard similarity of the normalised descriptions' words, 0.0 to 1.0.
pub fn similarity(a: &str, b: &str) -> f64 {
    let na = normalise_description(a);
    let nb = normalise_description(b);
    let wa: HashSet<&str> = na.split(' ').filter(|w| !w.is_empty()).collect();
    let wb: HashSet<&str> = nb.split(' ').filter(|w| !w.is_empty()).collect();
    if wa.is_empty() && wb.is_empty() {
        return 1.0;
    }
    let inter = wa.intersection(&wb).count() as f64;
    let union = wa.union(&wb).count() as f64;
    inter / union
}

pub fn fingerprint(
    date: NaiveDate,
    amount: Decimal,
    currency: &str,
    description: &str,
    counterparty: Option<&str>,
) -> String {
    // `format!("{date}|{}|{currency}|{}|{}", amount.normalize(), normalise_description(…),
    // counterparty.trim().to_lowercase())`, hashed as written.
    let mut h = crate::digest::HashText::new();
    h.date(date)
        .str("|")
        .fmt(format_args!("{}", amount.normalize()))
        .str("|")
        .str(currency)
        .str("|")
        .str(&normalise_description(description))
        .str("|")
        .str(&counterparty.unwrap_or("").trim().to_lowercase());
    h.hex(16)
}

/// Two capital letters, two digits, then letters and digits: 15–34 characters. Works on
/// characters, never byte offsets, so any bank text ("Müller Consulting GmbH") is safe.
fn looks_like_iban(s: &str) -> bool {
    let chars: Vec<char> = s.chars().filter(|c| !c.is_whitespace()).collect();
    (15..=34).contains(&chars.len())
        && chars.iter().all(char::is_ascii_alphanumeric)
        && chars[..2].iter().all(char::is_ascii_uppercase)
        && chars[2..4].iter().all(char::is_ascii_digit)
}

/// One statement line as written.
struct Row {
    bank_account_id: Uuid,
    journal_id: Uuid,
    booking_date: NaiveDate,
    value_date: Option<NaiveDate>,
    amount: Decimal,
    currency: String,
    description: String,
    payee: Option<String>,
    counterparty_iban: Option<String>,
    saltedge_id: String,
    fingerprint: String,
    content_hash: String,
    /// Salt Edge's `extra` as the JSON text it arrived in (a parsed tree took ~3 times the
    /// memory).
    extra: Box<str>,
    /// Some text holds U+FFFD (see `saltedge_client::text`).
    text_repaired: bool,
    /// Salt Edge's `extra.possible_duplicate` hint.
    possible_duplicate: bool,
    /// The bank's own transaction id (`extra.id`), where the provider gives one.
    bank_id: Option<String>,
    /// The pending transaction this posted one replaces (rule 2).
    pending_id: Option<i64>,
    /// A pending transaction this row may be the posting of, on weak evidence (rule 2):
    /// proposed for review, not linked.
    pending_proposal: Option<i64>,
    /// The statement a new line goes into ([`crate::statements::assign`]).
    statement_id: Option<i64>,
    /// Its account was taken over by a new connection (rule 10).
    relinked: bool,
    /// [`crate::digest::raw16`] of the item's JSON as received, when the caller had it.
    raw_digest: Option<Vec<u8>>,
    /// The columns of [`copy_lines`] that do not depend on the database, as `COPY` text,
    /// rendered ahead on the fetching task ([`PreparedPage::render_copy`]); empty if not.
    copy_head: String,
}

/// The bank's own id of a transaction, `extra.id`, as text (a string or a number). Salt
/// Edge's transaction `extra` lists `id` among its fields; none of the conformance
/// payloads carries it, so both shapes are accepted and anything else is ignored.
fn bank_transaction_id(id: Option<&serde_json::Value>) -> Option<String> {
    match id? {
        serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// What a line reads of a transaction's `extra`, from its text. Usually one pass into
/// [`TransactionExtra`]; when that fails (a documented field of an unexpected type) the
/// tree is read as before: nothing typed, the bank's id and the posting date where they
/// are well-formed.
struct ExtraRead {
    typed: TransactionExtra,
    /// `extra.posting_date`, when it is a date.
    posting: Option<NaiveDate>,
    bank_id: Option<String>,
    /// Some text in it holds U+FFFD (see `saltedge_client::text`).
    repaired: bool,
}

impl ExtraRead {
    fn of(extra: &saltedge_client::models::RawJson) -> ExtraRead {
        if extra.is_null() {
            return ExtraRead {
                typed: TransactionExtra::default(),
                posting: None,
                bank_id: None,
                repaired: false,
            };
        }
        let text = extra.get();
        // U+FFFD as a character or as an escape (any case); only then is the tree read to
        // tell a repaired text from, say, an escaped backslash before "ufffd".
        let repaired = (text.contains('\u{FFFD}') || may_escape_replacement(text))
            && holds_replacement(&extra.value());
        match extra.parse::<TransactionExtra>() {
            Ok(typed) => ExtraRead {
                posting: typed.posting_date,
                bank_id: bank_transaction_id(typed.id.as_ref()),
                typed,
                repaired,
            },
            Err(_) => {
                let v = extra.value();
                ExtraRead {
                    typed: TransactionExtra::default(),
                    posting: v
                        .get("posting_date")
                        .and_then(|v| v.as_str())
                        .and_then(|s| s.parse::<NaiveDate>().ok()),
                    bank_id: bank_transaction_id(v.get("id")),
                    repaired,
                }
            }
        }
    }
}

/// Whether `text` holds `\ufffd` in any case (a JSON escape of U+FFFD, or text that looks
/// like one).
fn may_escape_replacement(text: &str) -> bool {
    text.as_bytes()
        .windows(6)
        .any(|w| w[0] == b'\\' && w[1] == b'u' && w[2..].eq_ignore_ascii_case(b"fffd"))
}

fn holds_replacement(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::String(s) => s.contains('\u{FFFD}'),
        serde_json::Value::Array(a) => a.iter().any(holds_replacement),
        serde_json::Value::Object(o) => o
            .iter()
            .any(|(k, v)| k.contains('\u{FFFD}') || holds_replacement(v)),
        _ => false,
    }
}

/// Change detection without re-serialising `extra`: Salt Edge bumps `updated_at` whenever
/// it changes a transaction; the visible fields are hashed too, for sources that do not.
/// The text is `format!("{}|{:?}|{}|{}|{}|{}|{:?}", made_on, updated_at,
/// amount.normalize(), currency, description, status, posting_date)`, hashed as written.
fn content_hash(t: &Transaction, status: LineStatus, posting: Option<NaiveDate>) -> String {
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

fn row(
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

/// Per (account, fingerprint): the account's first line with that fingerprint and the
/// highest occurrence so far.
type Identities = HashMap<(Uuid, String), (i64, i32)>;

/// What one sync carries from page to page: the connection's open pending transactions
/// (not posted yet, still listed or expired), read once per sync (the sync holds the
/// connection's lock, so nobody else changes them) and consumed as posted transactions
/// replace them; and, for a connection that had no lines when the sync started, the
/// (account, fingerprint) pairs this sync stored, so that only rows whose fingerprint came
/// before need their identity looked up.
#[derive(Default)]
pub struct PendingLines {
    lines: Vec<PendingLine>,
    used: HashSet<i64>,
    stored_fingerprints: FingerprintFilter,
    /// Pages that changed nothing (a re-sync of unchanged history) and their counts, not
    /// written yet: [`PendingLines::flush`] adds them to the run in one update.
    deferred: (i32, PageOutcome),
    /// The Salt Edge ids this sync's pending list holds (read before the posted listing):
    /// a pending transaction the bank still lists as pending has not posted.
    still_listed: HashSet<String>,
}

impl PendingLines {
    pub async fn load(pool: &PgPool, connection_id: Uuid) -> Result<PendingLines> {
        let lines = sqlx::query_as!(
            PendingLine,
            "SELECT p.id, p.bank_account_id, p.saltedge_transaction_id, p.booking_date, p.amount, p.currency, p.description, p.state
             FROM pending_transactions p JOIN bank_accounts a ON a.id = p.bank_account_id
             WHERE a.connection_id = $1 AND p.posted_line_id IS NULL ORDER BY p.id",
            connection_id
        )
        .fetch_all(pool)
        .await?;
        Ok(PendingLines {
            lines,
            used: HashSet::new(),
            stored_fingerprints: FingerprintFilter::default(),
            deferred: Default::default(),
            still_listed: HashSet::new(),
        })
    }

    /// This sync's pending list (rule 2: what it holds is still pending, never posted).
    pub fn set_still_listed(&mut self, ids: impl IntoIterator<Item = String>) {
        self.still_listed = ids.into_iter().collect();
    }

    fn defer(&mut self, pages: i32, p: &PageOutcome) {
        let (n, d) = &mut self.deferred;
        *n += pages;
        d.add(p);
    }

    /// Adds the deferred pages' counts to the run (one update for all of them).
    pub async fn flush(&mut self, pool: &PgPool, run_id: Uuid) -> Result<()> {
        let (pages, d) = std::mem::take(&mut self.deferred);
        if pages > 0 {
            crate::runs::add_pages(pool, run_id, pages, &d, None).await?;
        }
        Ok(())
    }

    fn any_left(&self) -> bool {
        self.used.len() < self.lines.len()
    }
}

/// An (account, fingerprint) pair as 64 bits for [`FingerprintFilter`]: a fingerprint is
/// already a SHA-256 in hex, so its first 16 digits are taken as they are (no hashing again).
fn fingerprint_digest(account: Uuid, fingerprint: &str) -> u64 {
    let (hi, lo) = account.as_u64_pair();
    let fp = fingerprint
        .get(..16)
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .unwrap_or_else(|| {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            fingerprint.hash(&mut h);
            h.finish()
        });
    fp ^ hi.rotate_left(17) ^ lo
}

/// A Bloom filter of (account, fingerprint) digests: 2 MiB whatever the size of the import
/// (a set of them took ~19 MiB at a million lines). A false positive costs only a look-up
/// that finds nothing: about 0.5 % of rows at a million lines, more beyond.
#[derive(Default)]
struct FingerprintFilter {
    bits: Vec<u64>,
}

impl FingerprintFilter {
    const BITS: u64 = 1 << 24;

    fn positions(h: u64) -> [u64; 3] {
        // Double hashing: h1 + i·h2 (h2 odd), over the filter's 2^24 bits.
        let h2 = h.rotate_left(32).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        [0u64, 1, 2].map(|i| h.wrapping_add(i.wrapping_mul(h2)) & (Self::BITS - 1))
    }

    fn insert(&mut self, h: u64) {
        if self.bits.is_empty() {
            self.bits = vec![0; (Self::BITS / 64) as usize];
        }
        for b in Self::positions(h) {
            self.bits[(b / 64) as usize] |= 1u64 << (b % 64);
        }
    }

    fn may_contain(&self, h: u64) -> bool {
        !self.bits.is_empty()
            && Self::positions(h)
                .iter()
                .all(|b| self.bits[(*b / 64) as usize] & (1u64 << (b % 64)) != 0)
    }
}

/// The posted ids one listing held (rule 8), compactly: Salt Edge's ids are decimal
/// numbers, kept as 8-byte integers (a set of strings took ~70 MiB at a million); any other
/// id (or one with a leading zero, which would not read back the same) as text.
pub struct SeenIds {
    numeric: Vec<u64>,
    sorted: bool,
    other: HashSet<String>,
}

impl Default for SeenIds {
    fn default() -> Self {
        SeenIds {
            numeric: vec![],
            sorted: true,
            other: HashSet::new(),
        }
    }
}

impl SeenIds {
    pub fn insert(&mut self, id: &str) {
        match canonical_number(id) {
            Some(n) => {
                if self.numeric.last().is_some_and(|&l| l > n) {
                    self.sorted = false;
                }
                self.numeric.push(n);
            }
            None => {
                self.other.insert(id.to_string());
            }
        }
    }

    /// Sorts what was inserted (listings come in id order, so usually nothing moves).
    pub fn finish(&mut self) {
        if !self.sorted {
            self.numeric.sort_unstable();
            self.sorted = true;
        }
        self.numeric.dedup();
    }

    fn contains(&self, id: &str) -> bool {
        match canonical_number(id) {
            Some(n) => {
                if self.sorted {
                    self.numeric.binary_search(&n).is_ok()
                } else {
                    self.numeric.contains(&n)
                }
            }
            None => self.other.contains(id),
        }
    }
}

/// `id` as a number when it is one written the one way (digits, no leading zero).
fn canonical_number(id: &str) -> Option<u64> {
    let digits = !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit());
    if !digits || (id.len() > 1 && id.starts_with('0')) {
        return None;
    }
    id.parse().ok()
}

#[derive(sqlx::FromRow)]
struct PendingLine {
    id: i64,
    bank_account_id: Uuid,
    saltedge_transaction_id: String,
    booking_date: NaiveDate,
    amount: Decimal,
    currency: String,
    description: String,
    /// `pending` (open until this sync) or `expired` (Salt Edge stopped listing it before).
    state: String,
}

/// What rule 2 makes of a new posted row and the open pending transactions.
enum PendingMatch<'a> {
    /// The posting of this pending transaction: linked.
    Link(&'a PendingLine),
    /// Maybe its posting (same amount and currency, within the days, the only one), but
    /// nothing else says so: proposed for the bookkeeper's review, not linked.
    Propose(&'a PendingLine),
    None,
}

/// Rule 2: the pending transaction a new posted row replaces, if any. Never one that this
/// sync's pending list still holds (it has not posted); by amount only with evidence: the
/// description's words (numbers included) overlap at least `min_similarity`. The only
/// candidate without such evidence is proposed, not linked.
fn match_pending<'a>(
    r: &Row,
    candidates: &'a [PendingLine],
    used: &HashSet<i64>,
    still_listed: &HashSet<String>,
    opts: &DedupOptions,
) -> PendingMatch<'a> {
    let same_id = candidates.iter().find(|p| {
        !used.contains(&p.id)
            && p.bank_account_id == r.bank_account_id
            && p.saltedge_transaction_id == r.saltedge_id
    });
    if let Some(p) = same_id {
        return PendingMatch::Link(p);
    }
    let mut fits: Vec<(&PendingLine, f64)> = candidates
        .iter()
        .filter(|p| !used.contains(&p.id) && !still_listed.contains(&p.saltedge_transaction_id))
        .filter(|p| {
            p.bank_account_id == r.bank_account_id
                && p.amount == r.amount
                && p.currency == r.currency
        })
        .filter(|p| (p.booking_date - r.booking_date).num_days().abs() <= opts.pending_match_days)
        .map(|p| (p, pending_similarity(&p.description, &r.description)))
        .collect();
    let only_one = fits.len() == 1;
    // The most similar; among equals, one that left the pending list in this very sync
    // before one that expired earlier; then the nearest date, then the first stored.
    fits.sort_by(|a, b| {
        b.1.total_cmp(&a.1)
            .then_with(|| (a.0.state != "pending").cmp(&(b.0.state != "pending")))
            .then_with(|| {
                (a.0.booking_date - r.booking_date)
                    .num_days()
                    .abs()
                    .cmp(&(b.0.booking_date - r.booking_date).num_days().abs())
            })
            .then_with(|| a.0.id.cmp(&b.0.id))
    });
    match fits.first() {
        Some((p, s)) if *s >= opts.min_similarity => PendingMatch::Link(p),
        Some((p, _)) if only_one => PendingMatch::Propose(p),
        _ => PendingMatch::None,
    }
}

/// Words of a description for matching a posting to its pending transaction: lower case,
/// references and long numbers dropped (they differ between the two versions: `REF1234`,
/// card numbers, dates), short numbers kept (`card 1` is not `card 2`).
fn pending_words(s: &str) -> HashSet<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .filter(|w| {
            let digits = w.chars().filter(|c| c.is_numeric()).count();
            digits == 0 || (digits == w.chars().count() && digits <= 3)
        })
        .map(|w| w.to_lowercase())
        .collect()
}

/// Jaccard similarity of [`pending_words`], 0.0 to 1.0; 0.0 when both name numbers and
/// none is the same (`card 1`, `card 2`: the text says they are different payments).
fn pending_similarity(a: &str, b: &str) -> f64 {
    let (wa, wb) = (pending_words(a), pending_words(b));
    if wa.is_empty() && wb.is_empty() {
        return 1.0;
    }
    let numbers = |w: &HashSet<String>| -> HashSet<String> {
        w.iter()
            .filter(|x| x.chars().all(char::is_numeric))
            .cloned()
            .collect()
    };
    let (na, nb) = (numbers(&wa), numbers(&wb));
    if !na.is_empty() && !nb.is_empty() && na.is_disjoint(&nb) {
        return 0.0;
    }
    wa.intersection(&wb).count() as f64 / wa.union(&wb).count() as f64
}

/// A page turned into rows, ready to write. Building it is CPU work that needs no database,
/// so the sync does it on the fetching task.
pub struct PreparedPage {
    rows: Vec<Row>,
    out: PageOutcome,
    status: LineStatus,
    quarantined: Vec<Quarantined>,
    /// Items that a line already holds byte for byte ([`held_verbatim`]), unparsed: their
    /// Salt Edge id and JSON text.
    held: Vec<(String, Box<RawValue>)>,
    /// How many of Salt Edge's pages this holds ([`PreparedPage::absorb`]).
    pages: i32,
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
fn unstorable(t: &Transaction, extra: &ExtraRead) -> Option<String> {
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

/// Writes one page of transactions in one database transaction and adds its counts to the
/// sync run. `may_exist` = false skips the look-up of known lines (first import).
pub async fn write_page(
    pool: &PgPool,
    run_id: Uuid,
    targets: &HashMap<String, AccountTarget>,
    txs: &[Transaction],
    status: LineStatus,
    pending: &mut PendingLines,
    opts: &DedupOptions,
) -> Result<PageOutcome> {
    write_prepared(
        pool,
        run_id,
        prepare(targets, txs, status),
        true,
        pending,
        opts,
        None,
    )
    .await
}

/// [`write_page`] for a page fetched from Salt Edge, with the items that did not parse.
pub async fn write_fetched(
    pool: &PgPool,
    run_id: Uuid,
    targets: &HashMap<String, AccountTarget>,
    page: &saltedge_client::models::Page<Transaction>,
    status: LineStatus,
    pending: &mut PendingLines,
    opts: &DedupOptions,
) -> Result<PageOutcome> {
    let mut prepared = prepare(targets, &page.items, status);
    prepared.reject(&page.rejected);
    write_prepared(pool, run_id, prepared, true, pending, opts, None).await
}

pub async fn write_prepared(
    pool: &PgPool,
    run_id: Uuid,
    page: PreparedPage,
    may_exist: bool,
    pending: &mut PendingLines,
    opts: &DedupOptions,
    lock: Option<&crate::ingest::lock::ConnectionLock>,
) -> Result<PageOutcome> {
    let PreparedPage {
        mut rows,
        mut out,
        status,
        quarantined,
        held,
        pages,
    } = page;
    // Held byte for byte by a line ([`held_verbatim`]): unchanged.
    out.skipped_duplicate += held.len() as i32;
    drop(held);
    // Rule 1, cheaply: lines we already hold with identical content are not sent again (read
    // outside the page's transaction: the sync holds the connection's lock, so no other
    // writer changes these lines meanwhile).
    let known = if may_exist && status == LineStatus::Posted && !rows.is_empty() {
        known_lines(pool, &rows).await?
    } else {
        HashMap::new()
    };
    // A page that changes nothing (a re-sync of unchanged history) writes nothing: no
    // transaction; its counts join the run with the next write or at the end of the listing.
    if status == LineStatus::Posted
        && quarantined.is_empty()
        && rows
            .iter()
            .all(|r| known.get(&r.saltedge_id) == Some(&r.content_hash))
    {
        out.skipped_duplicate += rows.len() as i32;
        pending.defer(pages, &out);
        return Ok(out);
    }
    // Another sync may run once the connection's lock is gone: the page's transaction checks
    // that it is still held before it commits ([`crate::runs::add_pages`]).
    let lock = lock.map(|l| l.holder());
    let mut db = pool.begin().await?;
    crate::quarantine::record(&mut *db, run_id, &quarantined).await?;
    if status == LineStatus::Pending {
        // Pending transactions are not lines: storing one changes no line (`updated`
        // counts lines whose content changed, and `lines.changed` follows it).
        write_pending(&mut db, &rows, run_id).await?;
        crate::runs::add_pages(&mut *db, run_id, pages, &out, lock).await?;
        db.commit().await?;
        return Ok(out);
    }
    rows.retain(|r| match known.get(&r.saltedge_id) {
        Some(hash) if *hash == r.content_hash => {
            out.skipped_duplicate += 1;
            false
        }
        _ => true,
    });
    if may_exist && rows.iter().any(|r| r.bank_id.is_some()) {
        out.updated += rekey_by_bank_id(&mut db, &mut rows, &known, run_id).await?;
    }
    if may_exist && rows.iter().any(|r| r.relinked) {
        out.updated += claim_relinked(&mut db, &mut rows, &known, run_id).await?;
    }
    if !rows.is_empty() && pending.any_left() {
        match_pending_rows(&mut rows, &known, pending, opts);
    }
    // Rows whose content Salt Edge changed: what they held before, for the line's history.
    let before = if rows.iter().any(|r| known.contains_key(&r.saltedge_id)) {
        crate::history::content_before(&mut db, &rows_keys(&rows, &known)).await?
    } else {
        HashMap::new()
    };
    let new_lines: Vec<(Uuid, NaiveDate)> = rows
        .iter()
        .filter(|r| !known.contains_key(&r.saltedge_id))
        .map(|r| (r.bank_account_id, r.booking_date))
        .collect();
    let mut statements = crate::statements::assign(&mut db, &new_lines)
        .await?
        .into_iter();
    for r in rows.iter_mut() {
        if !known.contains_key(&r.saltedge_id) {
            r.statement_id = statements.next();
        }
    }
    // Identities so far (earlier pages of this sync included: they are committed). Where
    // the connection had no lines before this sync, only fingerprints this sync already
    // stored can have one.
    let digest = |r: &Row| fingerprint_digest(r.bank_account_id, &r.fingerprint);
    let lookup: Vec<&Row> = rows
        .iter()
        .filter(|r| !known.contains_key(&r.saltedge_id))
        .filter(|r| may_exist || pending.stored_fingerprints.may_contain(digest(r)))
        .collect();
    let base = identities_of(&mut db, &lookup).await?;
    if !may_exist {
        for r in &rows {
            pending.stored_fingerprints.insert(digest(r));
        }
    }
    let up = upsert(&mut db, &rows, run_id, &base, !may_exist).await?;
    link_posted_pending(&mut db, &rows, &up.inserted, run_id).await?;
    out.inserted += up.inserted.len() as i32;
    out.updated += up.updated.len() as i32;
    out.skipped_duplicate += rows.len() as i32 - up.inserted.len() as i32 - up.updated.len() as i32;
    let mut flagged = up.flagged;
    if !up.look_alikes_flagged {
        flagged.extend(flag_look_alikes_in_page(&mut db, &rows, &up.inserted).await?);
    }
    out.suspects = flagged.len() as i32;
    // (The rows' content is copied only when Salt Edge changed some line: not on imports.)
    if !up.updated.is_empty() {
        crate::history::record_updates(&mut db, run_id, &rows_content(&rows), &up.updated, &before)
            .await?;
    }
    crate::history::record_flagged(&mut db, run_id, &flagged).await?;
    crate::runs::add_pages(&mut *db, run_id, pages, &out, lock).await?;
    db.commit().await?;
    // Freeing a batch's rows is CPU work nothing waits for.
    tokio::task::spawn_blocking(move || drop(rows));
    Ok(out)
}

/// (account, Salt Edge id) of the rows that already are lines.
fn rows_keys(rows: &[Row], known: &HashMap<String, String>) -> Vec<(Uuid, String)> {
    rows.iter()
        .filter(|r| known.contains_key(&r.saltedge_id))
        .map(|r| (r.bank_account_id, r.saltedge_id.clone()))
        .collect()
}

/// The rows' visible content, by Salt Edge id, to compare with what a line held before.
fn rows_content(rows: &[Row]) -> HashMap<&str, crate::history::Content> {
    rows.iter()
        .map(|r| {
            (
                r.saltedge_id.as_str(),
                crate::history::Content {
                    booking_date: r.booking_date,
                    value_date: r.value_date,
                    amount: r.amount,
                    currency: r.currency.clone(),
                    description: r.description.clone(),
                    payee: r.payee.clone(),
                    counterparty_iban: r.counterparty_iban.clone(),
                },
            )
        })
        .collect()
}

/// Line `line` (Salt Edge id `old_id`) becomes row `r`'s transaction: re-keyed to its Salt
/// Edge id with its content; line id, fingerprint and occurrence stay; the history says
/// why (`reason`).
async fn rekey_line(
    db: &mut sqlx::Transaction<'_, Postgres>,
    line: i64,
    old_id: &str,
    r: &Row,
    run_id: Uuid,
    reason: &str,
) -> Result<()> {
    sqlx::query!("UPDATE statement_lines SET saltedge_transaction_id = $2, booking_date = $3, value_date = $4, amount = $5,
             description = $6, payee = $7, counterparty_iban = $8, extra = $9::text::jsonb, content_hash = $10, text_repaired = $11,
             sync_run_id = $12, bank_transaction_id = coalesce($13, bank_transaction_id),
             rekeyed_from = saltedge_transaction_id, rekeyed_at = now(), updated_at = now()
         WHERE id = $1", line, &r.saltedge_id, r.booking_date, r.value_date, r.amount, &r.description, r.payee.as_deref(),
         r.counterparty_iban.as_deref(), &*r.extra, &r.content_hash, r.text_repaired, run_id, r.bank_id.as_deref())
    .execute(&mut **db)
    .await?;
    crate::history::record(
        &mut **db,
        line,
        Some(run_id),
        crate::history::EventKind::Rekeyed,
        serde_json::json!({ "from": old_id, "to": r.saltedge_id, "reason": reason }),
    )
    .await
}

/// Identity, first key: a transaction with a Salt Edge id we do not hold whose bank id
/// (`extra.id`) is a line's of the same account is that line under a new Salt Edge id. The
/// line is re-keyed (its id, fingerprint and occurrence stay; `rekeyed_from` remembers the
/// old Salt Edge id) and takes the new content; the row is not inserted. Returns how many
/// lines were re-keyed.
async fn rekey_by_bank_id(
    db: &mut sqlx::Transaction<'_, Postgres>,
    rows: &mut Vec<Row>,
    known: &HashMap<String, String>,
    run_id: Uuid,
) -> Result<i32> {
    let candidates: Vec<&Row> = rows
        .iter()
        .filter(|r| r.bank_id.is_some() && !known.contains_key(&r.saltedge_id))
        .collect();
    if candidates.is_empty() {
        return Ok(0);
    }
    let accounts: Vec<Uuid> = candidates.iter().map(|r| r.bank_account_id).collect();
    let bank_ids: Vec<&str> = candidates
        .iter()
        .filter_map(|r| r.bank_id.as_deref())
        .collect();
    let held: HashMap<(Uuid, String), (i64, String)> = sqlx::query!(
        r#"SELECT id, bank_account_id, bank_transaction_id AS "bank_id!", saltedge_transaction_id FROM statement_lines
         WHERE bank_account_id = ANY($1) AND bank_transaction_id = ANY($2)"#,
        &accounts,
        &bank_ids as &[&str]
    )
    .fetch_all(&mut **db)
    .await?
    .into_iter()
    .map(|r| ((r.bank_account_id, r.bank_id), (r.id, r.saltedge_transaction_id)))
    .collect();
    if held.is_empty() {
        return Ok(0);
    }
    let mut rekeyed = 0;
    let mut keep = Vec::with_capacity(rows.len());
    for r in rows.drain(..) {
        let hit = r
            .bank_id
            .as_ref()
            .filter(|_| !known.contains_key(&r.saltedge_id))
            .and_then(|b| held.get(&(r.bank_account_id, b.clone())));
        let Some((line, old_id)) = hit else {
            keep.push(r);
            continue;
        };
        rekey_line(db, *line, old_id, &r, run_id, "bank_transaction_id").await?;
        tracing::info!(line, from = %old_id, to = %r.saltedge_id, "re-keyed by the bank's transaction id");
        rekeyed += 1;
    }
    *rows = keep;
    Ok(rekeyed)
}

/// Rule 10: in an account taken over by a new connection (the same bank linked again), a
/// transaction with an unknown Salt Edge id claims the earliest unclaimed line imported
/// before the takeover with the same fingerprint (occurrence order): the line is re-keyed
/// to the new id, never imported again. Returns how many lines were claimed.
async fn claim_relinked(
    db: &mut sqlx::Transaction<'_, Postgres>,
    rows: &mut Vec<Row>,
    known: &HashMap<String, String>,
    run_id: Uuid,
) -> Result<i32> {
    let wanted: Vec<(Uuid, &str)> = rows
        .iter()
        .filter(|r| r.relinked && !known.contains_key(&r.saltedge_id))
        .map(|r| (r.bank_account_id, r.fingerprint.as_str()))
        .collect();
    if wanted.is_empty() {
        return Ok(0);
    }
    let accounts: Vec<Uuid> = wanted.iter().map(|w| w.0).collect();
    let fps: Vec<&str> = wanted.iter().map(|w| w.1).collect();
    let mut waiting: HashMap<(Uuid, String), std::collections::VecDeque<(i64, String)>> =
        HashMap::new();
    for r in sqlx::query!(
        "SELECT l.id, l.bank_account_id, l.fingerprint, l.saltedge_transaction_id
         FROM statement_lines l JOIN bank_accounts a ON a.id = l.bank_account_id
         JOIN (SELECT DISTINCT * FROM UNNEST($1::uuid[], $2::text[])) AS w(account, fp)
              ON l.bank_account_id = w.account AND l.fingerprint = w.fp
         WHERE a.relinked_at IS NOT NULL AND l.imported_at < a.relinked_at
           AND (l.rekeyed_at IS NULL OR l.rekeyed_at < a.relinked_at)
         ORDER BY l.occurrence",
        &accounts,
        &fps as &[&str]
    )
    .fetch_all(&mut **db)
    .await?
    {
        waiting
            .entry((r.bank_account_id, r.fingerprint))
            .or_default()
            .push_back((r.id, r.saltedge_transaction_id));
    }
    if waiting.is_empty() {
        return Ok(0);
    }
    let mut claimed = 0;
    let mut keep = Vec::with_capacity(rows.len());
    for r in rows.drain(..) {
        let line = (r.relinked && !known.contains_key(&r.saltedge_id))
            .then(|| waiting.get_mut(&(r.bank_account_id, r.fingerprint.clone())))
            .flatten()
            .and_then(|q| q.pop_front());
        let Some((line, old_id)) = line else {
            keep.push(r);
            continue;
        };
        rekey_line(db, line, &old_id, &r, run_id, "relinked").await?;
        claimed += 1;
    }
    *rows = keep;
    if claimed > 0 {
        tracing::info!(
            claimed,
            "lines of a relinked account claimed by their new Salt Edge ids"
        );
    }
    Ok(claimed)
}

/// The identities (first line, highest occurrence) of the new rows' fingerprints in their
/// accounts, from the unique identity index: one query per page.
async fn identities_of(
    db: &mut sqlx::Transaction<'_, Postgres>,
    rows: &[&Row],
) -> Result<Identities> {
    let keys: HashSet<(Uuid, &str)> = rows
        .iter()
        .map(|r| (r.bank_account_id, r.fingerprint.as_str()))
        .collect();
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let (accounts, fps): (Vec<Uuid>, Vec<&str>) = keys.into_iter().unzip();
    Ok(sqlx::query!(
        r#"SELECT l.bank_account_id, l.fingerprint, min(l.id) AS "first!", max(l.occurrence) AS "top!"
           FROM statement_lines l JOIN UNNEST($1::uuid[], $2::text[]) AS k(account, fp)
                ON l.bank_account_id = k.account AND l.fingerprint = k.fp
           GROUP BY l.bank_account_id, l.fingerprint"#,
        &accounts,
        &fps as &[&str]
    )
    .fetch_all(&mut **db)
    .await?
    .into_iter()
    .map(|r| ((r.bank_account_id, r.fingerprint), (r.first, r.top)))
    .collect())
}

/// A page's raw items with what [`held_verbatim`] needs of each: its account and Salt Edge
/// id (where they can be read and the account is the connection's) and its
/// [`crate::digest::raw16`]. CPU work only: the sync does it on the fetching task.
pub struct KeyedPage {
    items: Vec<Box<RawValue>>,
    keys: Vec<ItemKey>,
}

/// An item's (account, Salt Edge id), where they can be read, and its digest.
type ItemKey = (Option<(Uuid, String)>, Vec<u8>);

impl KeyedPage {
    pub fn new(targets: &HashMap<String, AccountTarget>, items: Vec<Box<RawValue>>) -> Self {
        #[derive(serde::Deserialize)]
        struct Key<'a> {
            #[serde(borrow)]
            id: std::borrow::Cow<'a, str>,
            #[serde(borrow)]
            account_id: std::borrow::Cow<'a, str>,
        }
        let keys = items
            .iter()
            .map(|raw| {
                let key = serde_json::from_str::<Key>(raw.get()).ok().and_then(|k| {
                    targets
                        .get(k.account_id.as_ref())
                        .map(|t| (t.bank_account_id, k.id.into_owned()))
                });
                (key, crate::digest::raw16(raw.get()))
            })
            .collect();
        KeyedPage { items, keys }
    }
}

/// Splits a page into the items a line already holds byte for byte — same account, same
/// Salt Edge id, same digest of the JSON text — and the others, with their digests. The
/// held ones need no parsing: a re-sync of unchanged history costs the fetch, a digest per
/// item and one index range read per page. Items whose id or account cannot be read are
/// never held (they are parsed, and quarantined if they must be). Read outside the page's
/// transaction, like [`known_lines`]: the sync holds the connection's lock and writes its
/// pages one after the other.
pub async fn held_verbatim(
    pool: &PgPool,
    page: KeyedPage,
) -> Result<(Vec<(String, Box<RawValue>)>, Vec<(Box<RawValue>, Vec<u8>)>)> {
    let KeyedPage { items, keys } = page;
    let accounts: Vec<Uuid> = keys
        .iter()
        .filter_map(|(k, _)| k.as_ref().map(|k| k.0))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let ids: Vec<&str> = keys
        .iter()
        .filter_map(|(k, _)| k.as_ref().map(|k| k.1.as_str()))
        .collect();
    let stored: HashMap<String, (Uuid, Vec<u8>)> = if ids.is_empty() {
        HashMap::new()
    } else if let Some((lo, hi)) = one_stretch(&ids) {
        sqlx::query!(
            r#"SELECT bank_account_id, saltedge_transaction_id, raw_digest AS "raw_digest!" FROM statement_lines
             WHERE bank_account_id = ANY($1) AND saltedge_transaction_id BETWEEN $2 AND $3 AND raw_digest IS NOT NULL"#,
            &accounts,
            lo,
            hi
        )
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|r| (r.saltedge_transaction_id, (r.bank_account_id, r.raw_digest)))
        .collect()
    } else {
        sqlx::query!(
            r#"SELECT bank_account_id, saltedge_transaction_id, raw_digest AS "raw_digest!" FROM statement_lines
             WHERE bank_account_id = ANY($1) AND saltedge_transaction_id = ANY($2) AND raw_digest IS NOT NULL"#,
            &accounts,
            &ids as &[&str]
        )
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|r| (r.saltedge_transaction_id, (r.bank_account_id, r.raw_digest)))
        .collect()
    };
    let (mut held, mut rest) = (vec![], vec![]);
    let mut in_page = HashSet::new();
    for (raw, (key, digest)) in items.into_iter().zip(keys) {
        match key {
            // (An id twice in one page goes the long way, where the second is counted.)
            Some((account, id))
                if stored
                    .get(&id)
                    .is_some_and(|(a, d)| *a == account && *d == digest)
                    && in_page.insert(id.clone()) =>
            {
                held.push((id, raw))
            }
            _ => rest.push((raw, digest)),
        }
    }
    Ok((held, rest))
}

/// The smallest and largest id when every id is a decimal number of one length (Salt Edge's
/// ids): then the page is one stretch of the (account, id) index in any collation.
fn one_stretch<'a>(ids: &[&'a str]) -> Option<(&'a str, &'a str)> {
    let len = ids.first()?.len();
    let same = len > 0
        && ids
            .iter()
            .all(|i| i.len() == len && i.bytes().all(|b| b.is_ascii_digit()));
    if !same {
        return None;
    }
    Some((*ids.iter().min()?, *ids.iter().max()?))
}

/// Salt Edge id → content hash of the page's transactions that already are lines.
///
/// Salt Edge lists an account's transactions by ascending id, so a page is one stretch of
/// the unique index on (account, id) ([`one_stretch`]): read as a range it costs one index
/// descent instead of one per id; rows of the range not on the page are dropped here. Any
/// other page (mixed lengths, other characters) is looked up id by id.
async fn known_lines<'e>(
    db: impl sqlx::PgExecutor<'e>,
    rows: &[Row],
) -> Result<HashMap<String, String>> {
    let accounts: Vec<Uuid> = rows
        .iter()
        .map(|r| r.bank_account_id)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let ids: Vec<&str> = rows.iter().map(|r| r.saltedge_id.as_str()).collect();
    if let Some((lo, hi)) = one_stretch(&ids) {
        let wanted: HashSet<&str> = ids.iter().copied().collect();
        let in_range = sqlx::query!(
            "SELECT saltedge_transaction_id, content_hash FROM statement_lines
             WHERE bank_account_id = ANY($1) AND saltedge_transaction_id BETWEEN $2 AND $3",
            &accounts,
            lo,
            hi
        )
        .fetch_all(db)
        .await?;
        return Ok(in_range
            .into_iter()
            .filter(|r| wanted.contains(r.saltedge_transaction_id.as_str()))
            .map(|r| (r.saltedge_transaction_id, r.content_hash))
            .collect());
    }
    Ok(sqlx::query!(
        "SELECT saltedge_transaction_id, content_hash FROM statement_lines
         WHERE bank_account_id = ANY($1) AND saltedge_transaction_id = ANY($2)",
        &accounts,
        &ids as &[&str]
    )
    .fetch_all(db)
    .await?
    .into_iter()
    .map(|r| (r.saltedge_transaction_id, r.content_hash))
    .collect())
}

/// Rule 2, applied: each new posted row that replaces an open pending transaction records
/// its id, to be linked once the row is a line.
fn match_pending_rows(
    rows: &mut [Row],
    known: &HashMap<String, String>,
    pending: &mut PendingLines,
    opts: &DedupOptions,
) {
    for r in rows.iter_mut() {
        if known.contains_key(&r.saltedge_id) {
            continue;
        }
        match match_pending(
            r,
            &pending.lines,
            &pending.used,
            &pending.still_listed,
            opts,
        ) {
            PendingMatch::Link(p) => {
                r.pending_id = Some(p.id);
                pending.used.insert(p.id);
            }
            PendingMatch::Propose(p) => r.pending_proposal = Some(p.id),
            PendingMatch::None => {}
        }
    }
}

/// Rule 2, recorded: the pending transactions matched by inserted lines become `posted`.
/// Guarded: one still open is consumed by at most one line, whatever two syncs do (a lost
/// lock); a line whose pending transaction was taken meanwhile keeps no link.
async fn link_posted_pending(
    db: &mut sqlx::Transaction<'_, Postgres>,
    rows: &[Row],
    inserted: &HashMap<String, i64>,
    run_id: Uuid,
) -> Result<()> {
    let (mut pids, mut lids) = (vec![], vec![]);
    for r in rows {
        if let (Some(p), Some(&l)) = (r.pending_id, inserted.get(&r.saltedge_id)) {
            pids.push(p);
            lids.push(l);
        }
    }
    link_pending(db, pids, lids, run_id).await?;
    let (mut pids, mut lids) = (vec![], vec![]);
    for r in rows {
        if let (Some(p), Some(&l)) = (r.pending_proposal, inserted.get(&r.saltedge_id)) {
            pids.push(p);
            lids.push(l);
        }
    }
    propose_pending(db, pids, lids).await
}

/// Rule 2 on weak evidence: each pending transaction `pids[i]` is proposed as posted by the
/// new line `lids[i]`, for the bookkeeper to link or dismiss; it stays open meanwhile.
async fn propose_pending(
    db: &mut sqlx::Transaction<'_, Postgres>,
    pids: Vec<i64>,
    lids: Vec<i64>,
) -> Result<()> {
    if pids.is_empty() {
        return Ok(());
    }
    sqlx::query!(
        "UPDATE pending_transactions p SET proposed_line_id = u.line, updated_at = now()
         FROM UNNEST($1::bigint[], $2::bigint[]) AS u(pid, line)
         WHERE p.id = u.pid AND p.posted_line_id IS NULL",
        &pids,
        &lids
    )
    .execute(&mut **db)
    .await?;
    Ok(())
}

/// [`link_posted_pending`] for pending transactions `pids` and the new lines `lids` that
/// replace them, pair by pair.
async fn link_pending(
    db: &mut sqlx::Transaction<'_, Postgres>,
    pids: Vec<i64>,
    lids: Vec<i64>,
    run_id: Uuid,
) -> Result<()> {
    if pids.is_empty() {
        return Ok(());
    }
    let linked: HashSet<i64> = sqlx::query!(
        r#"WITH linked AS (
             UPDATE pending_transactions p SET state = 'posted', posted_line_id = u.line, resolved_at = now(), updated_at = now()
             FROM UNNEST($1::bigint[], $2::bigint[]) AS u(pid, line)
             WHERE p.id = u.pid AND p.posted_line_id IS NULL
             RETURNING p.id, p.company_id, p.posted_line_id, p.saltedge_transaction_id),
           events AS (
             INSERT INTO line_events (company_id, line_id, sync_run_id, kind, detail)
             SELECT company_id, posted_line_id, $3, 'posted_from_pending',
                    jsonb_build_object('pending_transaction_id', id, 'pending_saltedge_id', saltedge_transaction_id)
             FROM linked)
         SELECT posted_line_id AS "line!" FROM linked"#,
        &pids,
        &lids,
        run_id
    )
    .fetch_all(&mut **db)
    .await?
    .into_iter()
    .map(|r| r.line)
    .collect();
    let unlinked: Vec<i64> = lids.into_iter().filter(|l| !linked.contains(l)).collect();
    if !unlinked.is_empty() {
        tracing::warn!(lines = ?unlinked, "pending transaction already consumed; the posted line stands alone");
        sqlx::query!(
            "UPDATE statement_lines SET pending_transaction_id = NULL WHERE id = ANY($1)",
            &unlinked
        )
        .execute(&mut **db)
        .await?;
    }
    Ok(())
}

/// Writes a page of Salt Edge's pending list to `pending_transactions`: new ones are added,
/// changed ones updated, an expired one listed again is open again. Returns how many
/// records it wrote.
async fn write_pending(
    db: &mut sqlx::Transaction<'_, Postgres>,
    rows: &[Row],
    run_id: Uuid,
) -> Result<i32> {
    if rows.is_empty() {
        return Ok(0);
    }
    let journal: Vec<Uuid> = rows.iter().map(|r| r.journal_id).collect();
    let account: Vec<Uuid> = rows.iter().map(|r| r.bank_account_id).collect();
    let se_id: Vec<&str> = rows.iter().map(|r| r.saltedge_id.as_str()).collect();
    let booking: Vec<NaiveDate> = rows.iter().map(|r| r.booking_date).collect();
    let value: Vec<Option<NaiveDate>> = rows.iter().map(|r| r.value_date).collect();
    let amount: Vec<Decimal> = rows.iter().map(|r| r.amount).collect();
    let currency: Vec<&str> = rows.iter().map(|r| r.currency.as_str()).collect();
    let description: Vec<&str> = rows.iter().map(|r| r.description.as_str()).collect();
    let payee: Vec<Option<&str>> = rows.iter().map(|r| r.payee.as_deref()).collect();
    let extra: Vec<&str> = rows.iter().map(|r| &*r.extra).collect();
    let hash: Vec<&str> = rows.iter().map(|r| r.content_hash.as_str()).collect();
    let repaired: Vec<bool> = rows.iter().map(|r| r.text_repaired).collect();
    Ok(sqlx::query!(
        "INSERT INTO pending_transactions AS p (company_id, journal_id, bank_account_id, saltedge_transaction_id, booking_date,
             value_date, amount, currency, description, payee, extra, content_hash, text_repaired, sync_run_id)
         SELECT (SELECT r.company_id FROM sync_runs r WHERE r.id = $13), u.journal_id, u.bank_account_id,
                u.saltedge_transaction_id, u.booking_date, u.value_date, u.amount, u.currency, u.description, u.payee,
                u.extra::jsonb, u.content_hash, u.text_repaired, $13
         FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::date[], $5::date[], $6::numeric[], $7::text[], $8::text[],
                     $9::text[], $10::text[], $11::text[], $12::bool[])
              AS u(journal_id, bank_account_id, saltedge_transaction_id, booking_date, value_date, amount, currency,
                   description, payee, extra, content_hash, text_repaired)
         ON CONFLICT (bank_account_id, saltedge_transaction_id) DO UPDATE SET
             booking_date = EXCLUDED.booking_date, value_date = EXCLUDED.value_date, amount = EXCLUDED.amount,
             currency = EXCLUDED.currency, description = EXCLUDED.description, payee = EXCLUDED.payee,
             extra = EXCLUDED.extra, content_hash = EXCLUDED.content_hash, text_repaired = EXCLUDED.text_repaired,
             sync_run_id = EXCLUDED.sync_run_id, state = 'pending', resolved_at = NULL, updated_at = now()
         WHERE p.posted_line_id IS NULL
           AND (p.content_hash IS DISTINCT FROM EXCLUDED.content_hash OR p.state = 'expired')",
        &journal,
        &account,
        &se_id as &[&str],
        &booking,
        &value as &[Option<NaiveDate>],
        &amount,
        &currency as &[&str],
        &description as &[&str],
        &payee as &[Option<&str>],
        &extra as &[&str],
        &hash as &[&str],
        &repaired,
        run_id
    )
    .execute(&mut **db)
    .await?
    .rows_affected() as i32)
}

/// A first import's page of new lines through `COPY … FROM STDIN` (text format), with
/// what the `INSERT`'s `RETURNING` would give: (id, inserted, suspect, Salt Edge id). The
/// line ids are taken from the table's sequence first, so that nothing is read back and a
/// look-alike within the page (rule 7) is flagged as it is copied, not updated after.
async fn copy_lines(
    db: &mut sqlx::Transaction<'_, Postgres>,
    rows: &[Row],
    run_id: Uuid,
    occurrence: &[i32],
    first: &[Option<i64>],
) -> std::result::Result<Vec<(i64, bool, bool, String)>, sqlx::Error> {
    let (company, ids) = line_ids(db, run_id, rows.len()).await?;
    let (buf, flagged) = render_lines(rows, &ids, company, run_id, occurrence, first);
    send_copy(db, buf).await?;
    Ok(rows
        .iter()
        .zip(ids)
        .zip(flagged)
        .map(|((r, id), flagged)| (id, true, flagged, r.saltedge_id.clone()))
        .collect())
}

/// The run's company and `n` new line ids from the sequence, in one round trip (nothing is
/// read back after the `COPY`).
async fn line_ids(
    db: &mut sqlx::PgConnection,
    run_id: Uuid,
    n: usize,
) -> std::result::Result<(Uuid, Vec<i64>), sqlx::Error> {
    let start = sqlx::query!(
        r#"SELECT (SELECT company_id FROM sync_runs WHERE id = $1) AS "company!",
                  (SELECT array_agg(nextval('statement_lines_id_seq')) FROM generate_series(1, $2)) AS "ids!""#,
        run_id,
        n as i32
    )
    .fetch_one(&mut *db)
    .await?;
    if start.ids.len() != n {
        return Err(sqlx::Error::Protocol(
            "the sequence gave too few line ids".into(),
        ));
    }
    Ok((start.company, start.ids))
}

/// The rows as `COPY` text with their line ids (`ids`, one a row), occurrences and first
/// look-alikes; returns the text and, per row, whether it is flagged as a look-alike.
fn render_lines(
    rows: &[Row],
    ids: &[i64],
    company: Uuid,
    run_id: Uuid,
    occurrence: &[i32],
    first: &[Option<i64>],
) -> (String, Vec<bool>) {
    use std::fmt::Write;
    // Rule 7: the first line of the account with the fingerprint (an earlier one, else the
    // first of this page).
    let mut first_in_page: HashMap<(Uuid, &str), i64> = HashMap::new();
    let mut buf = String::with_capacity(rows.len() * 448);
    let mut out = Vec::with_capacity(rows.len());
    let mut copy_ids = CopyIds::new(company, run_id);
    for (i, r) in rows.iter().enumerate() {
        if r.copy_head.is_empty() {
            copy_head(&mut buf, r, &mut copy_ids);
        } else {
            buf.push_str(&r.copy_head);
        }
        let id = ids[i];
        let suspect = match first[i] {
            Some(f) => Some(f),
            None => match first_in_page.entry((r.bank_account_id, r.fingerprint.as_str())) {
                std::collections::hash_map::Entry::Occupied(o) => Some(*o.get()),
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(id);
                    None
                }
            },
        };
        // The columns that depend on the database, in the order of the COPY statement.
        let _ = write!(buf, "{id}\t");
        copy_number(&mut buf, r.pending_id);
        copy_number(&mut buf, suspect);
        let _ = write!(buf, "{}\t", occurrence[i]);
        copy_number(&mut buf, r.statement_id);
        buf.pop();
        buf.push('\n');
        out.push(suspect.is_some());
    }
    (buf, out)
}

/// Sends rendered lines ([`render_lines`]) with `COPY`.
async fn send_copy(
    db: &mut sqlx::PgConnection,
    buf: String,
) -> std::result::Result<(), sqlx::Error> {
    let mut copy = db
        .copy_in_raw(
            "COPY statement_lines (company_id, journal_id, bank_account_id, booking_date, value_date, amount, currency,
                 description, payee, counterparty_iban, saltedge_transaction_id, fingerprint, extra,
                 sync_run_id, content_hash, text_repaired, bank_transaction_id, created_run_id, raw_digest,
                 id, pending_transaction_id, suspect_duplicate_of, occurrence, statement_id) FROM STDIN",
        )
        .await?;
    if let Err(e) = copy.send(buf.into_bytes()).await {
        let _ = copy.abort("the page could not be sent").await;
        return Err(e);
    }
    copy.finish().await?;
    Ok(())
}

/// The ids a page's rows repeat, as `COPY` text: written once, not once a row.
struct CopyIds {
    company: Uuid,
    /// The run's id and its tab.
    run: String,
    /// Per account: company, journal and account, each with its tab.
    accounts: Vec<(Uuid, String)>,
}

impl CopyIds {
    fn new(company: Uuid, run_id: Uuid) -> CopyIds {
        CopyIds {
            company,
            run: format!("{run_id}\t"),
            accounts: vec![],
        }
    }

    fn account(&mut self, r: &Row) -> &str {
        let at = match self
            .accounts
            .iter()
            .position(|(a, _)| *a == r.bank_account_id)
        {
            Some(at) => at,
            None => {
                let text = format!(
                    "{}\t{}\t{}\t",
                    self.company, r.journal_id, r.bank_account_id
                );
                self.accounts.push((r.bank_account_id, text));
                self.accounts.len() - 1
            }
        };
        &self.accounts[at].1
    }
}

/// The columns of a line that do not depend on the database, as `COPY` text, each followed
/// by its tab (the first columns of [`copy_lines`]'s statement).
fn copy_head(buf: &mut String, r: &Row, ids: &mut CopyIds) {
    use std::fmt::Write;
    buf.push_str(ids.account(r));
    let _ = write!(buf, "{}\t", r.booking_date);
    match r.value_date {
        Some(d) => {
            let _ = write!(buf, "{d}\t");
        }
        None => buf.push_str("\\N\t"),
    }
    let _ = write!(buf, "{}\t", r.amount);
    copy_text(buf, Some(&r.currency));
    copy_text(buf, Some(&r.description));
    copy_text(buf, r.payee.as_deref());
    copy_text(buf, r.counterparty_iban.as_deref());
    copy_text(buf, Some(&r.saltedge_id));
    copy_text(buf, Some(&r.fingerprint));
    copy_text(buf, Some(&r.extra));
    buf.push_str(&ids.run);
    copy_text(buf, Some(&r.content_hash));
    let _ = write!(buf, "{}\t", if r.text_repaired { 't' } else { 'f' });
    copy_text(buf, r.bank_id.as_deref());
    buf.push_str(&ids.run);
    match &r.raw_digest {
        // bytea's hex form, its backslash escaped for the text format.
        Some(d) => {
            buf.push_str("\\\\x");
            crate::digest::push_hex(buf, d);
            buf.push('\t');
        }
        None => buf.push_str("\\N\t"),
    }
}

/// One number column of `COPY`'s text format, then its tab; `None` as `\N`.
fn copy_number(buf: &mut String, v: Option<i64>) {
    use std::fmt::Write;
    match v {
        Some(v) => {
            let _ = write!(buf, "{v}\t");
        }
        None => buf.push_str("\\N\t"),
    }
}

/// One text column of `COPY`'s text format, then its tab: backslash, tab, newline and
/// carriage return escaped, `None` as `\N`.
fn copy_text(buf: &mut String, v: Option<&str>) {
    match v {
        None => buf.push_str("\\N"),
        Some(v) => {
            // The four are ASCII, so the text between them is whole characters.
            let mut from = 0;
            for (at, c) in v.match_indices(['\\', '\t', '\n', '\r']) {
                buf.push_str(v.get(from..at).unwrap_or_default());
                buf.push_str(match c {
                    "\\" => "\\\\",
                    "\t" => "\\t",
                    "\n" => "\\n",
                    _ => "\\r",
                });
                from = at + c.len();
            }
            buf.push_str(v.get(from..).unwrap_or_default());
        }
    }
    buf.push('\t');
}

struct Upserted {
    /// Salt Edge id → line id of the lines inserted.
    inserted: HashMap<String, i64>,
    /// Salt Edge id → line id of the lines Salt Edge changed.
    updated: HashMap<String, i64>,
    /// Inserted lines that got `suspect_duplicate_of` (rule 7, against earlier lines).
    flagged: Vec<i64>,
    /// Look-alikes within the page are flagged too (and in `flagged`): `COPY` did it.
    look_alikes_flagged: bool,
}

/// The columns of an `INSERT` of rows, as arrays for `UNNEST`.
struct Columns<'a> {
    journal: Vec<Uuid>,
    account: Vec<Uuid>,
    booking: Vec<NaiveDate>,
    value: Vec<Option<NaiveDate>>,
    amount: Vec<Decimal>,
    currency: Vec<&'a str>,
    description: Vec<&'a str>,
    payee: Vec<Option<&'a str>>,
    iban: Vec<Option<&'a str>>,
    se_id: Vec<&'a str>,
    fp: Vec<&'a str>,
    hash: Vec<&'a str>,
    extra: Vec<&'a str>,
    repaired: Vec<bool>,
    possible: Vec<bool>,
    pending_id: Vec<Option<i64>>,
    bank_id: Vec<Option<&'a str>>,
    statement: Vec<Option<i64>>,
    raw_digest: Vec<Option<&'a [u8]>>,
}

impl<'a> Columns<'a> {
    fn of(rows: &'a [Row]) -> Columns<'a> {
        let n = rows.len();
        let mut c = Columns {
            journal: Vec::with_capacity(n),
            account: Vec::with_capacity(n),
            booking: Vec::with_capacity(n),
            value: Vec::with_capacity(n),
            amount: Vec::with_capacity(n),
            currency: Vec::with_capacity(n),
            description: Vec::with_capacity(n),
            payee: Vec::with_capacity(n),
            iban: Vec::with_capacity(n),
            se_id: Vec::with_capacity(n),
            fp: Vec::with_capacity(n),
            hash: Vec::with_capacity(n),
            extra: Vec::with_capacity(n),
            repaired: Vec::with_capacity(n),
            possible: Vec::with_capacity(n),
            pending_id: Vec::with_capacity(n),
            bank_id: Vec::with_capacity(n),
            statement: Vec::with_capacity(n),
            raw_digest: Vec::with_capacity(n),
        };
        for r in rows {
            c.statement.push(r.statement_id);
            c.raw_digest.push(r.raw_digest.as_deref());
            c.bank_id.push(r.bank_id.as_deref());
            c.pending_id.push(r.pending_id);
            c.repaired.push(r.text_repaired);
            c.possible.push(r.possible_duplicate);
            c.journal.push(r.journal_id);
            c.account.push(r.bank_account_id);
            c.booking.push(r.booking_date);
            c.value.push(r.value_date);
            c.amount.push(r.amount);
            c.currency.push(r.currency.as_str());
            c.description.push(r.description.as_str());
            c.payee.push(r.payee.as_deref());
            c.iban.push(r.counterparty_iban.as_deref());
            c.se_id.push(r.saltedge_id.as_str());
            c.fp.push(r.fingerprint.as_str());
            c.hash.push(r.content_hash.as_str());
            c.extra.push(&*r.extra);
        }
        c
    }
}

/// Rule 7's bookkeeping for a page's rows: each row's occurrence — after the account's
/// highest so far for its fingerprint (`base`), the n-th row of the page with it (rows that
/// are lines already keep theirs: the upsert ignores these) — and the account's first line
/// with that fingerprint before this page, if any.
fn occurrences(rows: &[Row], base: &Identities) -> (Vec<i32>, Vec<Option<i64>>) {
    let mut seen_fp: HashMap<(Uuid, &str), i32> = HashMap::new();
    let (mut occurrence, mut first) = (
        Vec::with_capacity(rows.len()),
        Vec::with_capacity(rows.len()),
    );
    for r in rows {
        let known = if base.is_empty() {
            None
        } else {
            base.get(&(r.bank_account_id, r.fingerprint.clone()))
        };
        let k = seen_fp
            .entry((r.bank_account_id, r.fingerprint.as_str()))
            .or_insert(0);
        occurrence.push(known.map_or(0, |b| b.1 + 1) + *k);
        first.push(known.map(|b| b.0));
        *k += 1;
    }
    (occurrence, first)
}

/// Rule 1: one bulk upsert per page. Rule 7 rides
/// along: each new line looks up the oldest earlier line of its account with its fingerprint.
async fn upsert(
    db: &mut sqlx::Transaction<'_, Postgres>,
    rows: &[Row],
    run_id: Uuid,
    base: &Identities,
    fresh: bool,
) -> Result<Upserted> {
    if rows.is_empty() {
        return Ok(Upserted {
            inserted: HashMap::new(),
            updated: HashMap::new(),
            flagged: vec![],
            look_alikes_flagged: true,
        });
    }
    let (occurrence, first) = occurrences(rows, base);
    let possible_any = rows.iter().any(|r| r.possible_duplicate);
    // One statement text, two endings: a page that cannot hold a line already stored (a
    // first import) is a plain INSERT — no speculative insertion, ~15 % faster on the bench;
    // the upsert is the fallback when that assumption fails (a unique violation, rolled back
    // to a savepoint).
    macro_rules! insert_lines {
        (plain) => {
            insert_lines!("")
        };
        (upsert) => {
            insert_lines!(r#"ON CONFLICT (bank_account_id, saltedge_transaction_id) DO UPDATE SET
             booking_date = EXCLUDED.booking_date, value_date = EXCLUDED.value_date, amount = EXCLUDED.amount,
             currency = EXCLUDED.currency, description = EXCLUDED.description, payee = EXCLUDED.payee,
             counterparty_iban = EXCLUDED.counterparty_iban, extra = EXCLUDED.extra,
             bank_transaction_id = coalesce(EXCLUDED.bank_transaction_id, l.bank_transaction_id), sync_run_id = EXCLUDED.sync_run_id, content_hash = EXCLUDED.content_hash,
             text_repaired = EXCLUDED.text_repaired, raw_digest = EXCLUDED.raw_digest, updated_at = now()
         WHERE l.content_hash IS DISTINCT FROM EXCLUDED.content_hash"#)
        };
        ($tail:literal) => {{
            // The statement's arrays, built only where a statement is sent (not for `COPY`).
            let c = Columns::of(rows);
            sqlx::query!(
        r#"INSERT INTO statement_lines AS l (company_id, journal_id, bank_account_id, booking_date, value_date, amount, currency, description,
             payee, counterparty_iban, saltedge_transaction_id, pending_transaction_id, fingerprint, extra, sync_run_id, suspect_duplicate_of,
             content_hash, text_repaired, occurrence, bank_transaction_id, created_run_id, statement_id, raw_digest)
         SELECT (SELECT r.company_id FROM sync_runs r WHERE r.id = $14), u.journal_id, u.bank_account_id, u.booking_date, u.value_date, u.amount, u.currency, u.description,
                u.payee, u.counterparty_iban, u.saltedge_transaction_id, u.pending_id, u.fp, u.extra::jsonb, $14,
                coalesce(
                    u.first,
                    CASE WHEN u.possible THEN
                        (SELECT o.id FROM statement_lines o WHERE o.bank_account_id = u.bank_account_id
                           AND o.booking_date = u.booking_date AND o.amount = u.amount AND o.currency = u.currency
                         ORDER BY o.id LIMIT 1) END),
                u.hash, u.repaired, u.occurrence, u.bank_id, $14, u.statement_id, u.raw_digest
         FROM UNNEST($1::uuid[], $2::uuid[], $3::date[], $4::date[], $5::numeric[], $6::text[], $7::text[], $8::text[],
                     $9::text[], $10::text[], $12::text[], $13::text[], $15::text[], $16::bool[], $17::bool[], $11::bigint[],
                     $18::int4[], $19::text[], $20::bigint[], $21::bigint[], $22::bytea[])
              AS u(journal_id, bank_account_id, booking_date, value_date, amount, currency, description, payee,
                   counterparty_iban, saltedge_transaction_id, fp, extra, hash, repaired, possible, pending_id, occurrence,
                   bank_id, statement_id, first, raw_digest) "# + $tail + r#"
         RETURNING l.id, (l.xmax = 0) AS "inserted!", (l.suspect_duplicate_of IS NOT NULL) AS "suspect!", l.saltedge_transaction_id"#,
        &c.journal,
        &c.account,
        &c.booking,
        &c.value as &[Option<NaiveDate>],
        &c.amount,
        &c.currency as &[&str],
        &c.description as &[&str],
        &c.payee as &[Option<&str>],
        &c.iban as &[Option<&str>],
        &c.se_id as &[&str],
        &c.pending_id as &[Option<i64>],
        &c.fp as &[&str],
        &c.extra as &[&str],
        run_id,
        &c.hash as &[&str],
        &c.repaired,
        &c.possible,
        &occurrence,
        &c.bank_id as &[Option<&str>],
        &c.statement as &[Option<i64>],
        &first as &[Option<i64>],
        &c.raw_digest as &[Option<&[u8]>]
    )
    .fetch_all(&mut **db)
    .await
    .map(|rows| {
        rows.into_iter()
            .map(|r| (r.id, r.inserted, r.suspect, r.saltedge_transaction_id))
            .collect::<Vec<_>>()
    })
        }};
    }
    let mut copied = false;
    let returned: Vec<(i64, bool, bool, String)> = if fresh {
        sqlx::query("SAVEPOINT plain_insert")
            .execute(&mut **db)
            .await?;
        // A page with no look-alike hint (its only per-row look-up) is copied in: `COPY`
        // batches heap and WAL writes, which no `INSERT` does.
        let plain = if possible_any {
            insert_lines!(plain)
        } else {
            copied = true;
            copy_lines(db, rows, run_id, &occurrence, &first).await
        };
        match plain {
            Ok(rows) => rows,
            Err(e)
                if e.as_database_error()
                    .is_some_and(|d| d.is_unique_violation()) =>
            {
                sqlx::query("ROLLBACK TO SAVEPOINT plain_insert")
                    .execute(&mut **db)
                    .await?;
                copied = false;
                insert_lines!(upsert)?
            }
            Err(e) => return Err(e.into()),
        }
    } else {
        insert_lines!(upsert)?
    };
    let mut up = Upserted {
        inserted: HashMap::with_capacity(returned.len()),
        updated: HashMap::new(),
        flagged: vec![],
        look_alikes_flagged: copied,
    };
    for (id, was_inserted, suspect, se_id) in returned {
        if was_inserted {
            if suspect {
                up.flagged.push(id);
            }
            up.inserted.insert(se_id, id);
        } else {
            up.updated.insert(se_id, id);
        }
    }
    Ok(up)
}

/// Rule 7 within one page: look-alikes inserted together cannot see each other in the upsert,
/// so later ones are pointed at the first here.
async fn flag_look_alikes_in_page(
    db: &mut sqlx::Transaction<'_, Postgres>,
    rows: &[Row],
    inserted: &HashMap<String, i64>,
) -> Result<Vec<i64>> {
    let mut first: HashMap<(Uuid, &str), i64> = HashMap::new();
    let (mut ids, mut of) = (vec![], vec![]);
    for r in rows {
        let Some(&id) = inserted.get(&r.saltedge_id) else {
            continue;
        };
        match first.get(&(r.bank_account_id, r.fingerprint.as_str())) {
            Some(&o) => {
                ids.push(id);
                of.push(o);
            }
            None => {
                first.insert((r.bank_account_id, r.fingerprint.as_str()), id);
            }
        }
    }
    if ids.is_empty() {
        return Ok(vec![]);
    }
    Ok(sqlx::query_scalar!("UPDATE statement_lines l SET suspect_duplicate_of = u.of FROM UNNEST($1::bigint[], $2::bigint[]) AS u(id, of)
         WHERE l.id = u.id AND l.suspect_duplicate_of IS NULL RETURNING l.id", &ids, &of)
    .fetch_all(&mut **db)
    .await?)
}

/// Rule 8: after a complete posted listing that started at `from_id` (`None`: the whole
/// history) and held the ids in `seen`, every posted line of the connection whose id the
/// listing covered but did not hold is gone at Salt Edge. Where a line flagged as its
/// look-alike came in that listing, the bank re-issued the transaction: the old line takes
/// the new id and content (its line id stays), the new line is removed. Returns how many
/// lines were re-keyed. Lines a bookkeeper confirmed as duplicates are not "gone": Salt Edge
/// lists them under `/transactions/duplicates`.
pub async fn rekey_reissued(
    pool: &PgPool,
    run_id: Uuid,
    connection_id: Uuid,
    from_id: Option<&str>,
    seen: &SeenIds,
) -> Result<i32> {
    let covered_from: Option<u64> = match from_id {
        Some(f) => match canonical_number(f) {
            Some(v) => Some(v),
            None => return Ok(0),
        },
        None => None,
    };
    // Flagged look-alikes the listing covers (a re-issue is in the listing, so at or above
    // its `from_id`: an incremental listing's few recent ones) and the earlier lines they
    // resemble. For each gone line the newest look-alike is
    // taken: a re-issue gets a newer id than a genuine twin seen before it (and any of them
    // carries the same date, amount, text and payee). With each pair: both bank ids, when
    // the old line's transaction was last listed, and when the new one was first stored.
    let pairs = sqlx::query!(
        r#"WITH n AS MATERIALIZED (
             SELECT n.id, n.bank_account_id, n.fingerprint, n.suspect_duplicate_of, n.saltedge_transaction_id,
                    n.bank_transaction_id, n.imported_at
             FROM statement_lines n JOIN bank_accounts a ON a.id = n.bank_account_id
             WHERE a.connection_id = $1 AND n.suspect_duplicate_of IS NOT NULL AND n.duplicate_confirmed_at IS NULL
               AND (length(n.saltedge_transaction_id), n.saltedge_transaction_id) >= (length($2), $2))
         SELECT l.id AS "old_line!", l.saltedge_transaction_id AS "old_id!", l.bank_transaction_id AS old_bank_id,
                ll.listed_at AS "old_listed_at?",
                n.id AS "new_line!", n.saltedge_transaction_id AS "new_id!", n.bank_transaction_id AS new_bank_id,
                n.imported_at AS new_imported_at
         FROM n CROSS JOIN LATERAL (
             SELECT o.id, o.saltedge_transaction_id, o.bank_transaction_id FROM statement_lines o
             WHERE o.bank_account_id = n.bank_account_id AND o.fingerprint = n.fingerprint AND o.id < n.id
               AND o.duplicate_confirmed_at IS NULL AND o.gone_at_bank_at IS NULL
             UNION
             SELECT o.id, o.saltedge_transaction_id, o.bank_transaction_id FROM statement_lines o
             WHERE o.id = n.suspect_duplicate_of AND o.id < n.id AND o.duplicate_confirmed_at IS NULL
               AND o.gone_at_bank_at IS NULL) l
         LEFT JOIN line_listings ll ON ll.line_id = l.id
         ORDER BY l.id, n.id DESC"#,
        connection_id,
        from_id.unwrap_or("")
    )
    .fetch_all(pool)
    .await?;
    // Covered: the listing started at or below the old id (a non-numeric id cannot be placed).
    let covered = |id: &str| match (covered_from, id.parse::<u64>()) {
        (None, _) => true,
        (Some(from), Ok(id)) => id >= from,
        (Some(_), Err(_)) => false,
    };
    // This complete listing, recorded for every line of these groups that it holds: a
    // fact the next listings decide by ("listed together").
    let mut listed: Vec<i64> = pairs
        .iter()
        .flat_map(|p| {
            [
                (p.old_line, p.old_id.as_str()),
                (p.new_line, p.new_id.as_str()),
            ]
        })
        .filter(|(_, id)| seen.contains(id))
        .map(|(line, _)| line)
        .collect();
    listed.sort_unstable();
    listed.dedup();
    record_listing(pool, run_id, &listed).await?;
    let mut used: HashSet<i64> = HashSet::new();
    let mut rekeyed = 0;
    for p in pairs {
        let (old_line, old_id, new_line, new_id) = (p.old_line, p.old_id, p.new_line, p.new_id);
        if used.contains(&old_line)
            || used.contains(&new_line)
            || seen.contains(&old_id)
            || !seen.contains(&new_id)
            || !covered(&old_id)
        {
            continue;
        }
        // Two transactions the bank tells apart by its own ids are two transactions.
        if let (Some(a), Some(b)) = (&p.old_bank_id, &p.new_bank_id) {
            if a != b {
                continue;
            }
        }
        // Listed together after the new one was first stored: genuine twins, whatever
        // happens to one of them later.
        if p.old_listed_at.is_some_and(|t| t >= p.new_imported_at) {
            continue;
        }
        used.insert(old_line);
        used.insert(new_line);
        let mut tx = pool.begin().await?;
        // The re-issue was taken for a pending transaction's posting when it arrived (rule 2
        // runs first): it is the old line's transaction, so that pending one did not post.
        sqlx::query!(
            "UPDATE pending_transactions SET state = 'expired', posted_line_id = NULL, updated_at = now()
             WHERE posted_line_id = $1",
            new_line
        )
        .execute(&mut *tx)
        .await?;
        let new = sqlx::query!(
            "DELETE FROM statement_lines WHERE id = $1
             RETURNING saltedge_transaction_id, booking_date, value_date, amount, description, payee, counterparty_iban,
                       extra, content_hash, text_repaired, bank_transaction_id",
            new_line
        )
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query!("UPDATE statement_lines SET saltedge_transaction_id = $2, booking_date = $3, value_date = $4, amount = $5,
                 description = $6, payee = $7, counterparty_iban = $8, bank_transaction_id = coalesce($9, bank_transaction_id),
                 extra = $10, content_hash = $11, text_repaired = $12, sync_run_id = $13, rekeyed_from = saltedge_transaction_id,
                 rekeyed_at = now(), updated_at = now()
             WHERE id = $1", old_line, new.saltedge_transaction_id, new.booking_date, new.value_date, new.amount, new.description,
             new.payee, new.counterparty_iban, new.bank_transaction_id, new.extra, new.content_hash, new.text_repaired, run_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "UPDATE statement_lines SET suspect_duplicate_of = $1 WHERE suspect_duplicate_of = $2",
            old_line,
            new_line
        )
        .execute(&mut *tx)
        .await?;
        crate::history::record(
            &mut *tx,
            old_line,
            Some(run_id),
            crate::history::EventKind::Rekeyed,
            serde_json::json!({ "from": old_id, "to": new_id, "reason": "reissued", "replaced_line": new_line }),
        )
        .await?;
        tx.commit().await?;
        tracing::info!(line = old_line, from = %old_id, to = %new_id, "re-keyed a re-issued transaction");
        rekeyed += 1;
    }
    Ok(rekeyed)
}

/// The bank's removals, after a complete listing (and after [`rekey_reissued`], so that a
/// re-issue is never taken for a removal): each line of the connection whose Salt Edge id
/// the listing covers (at or above its `from_id`) but does not hold is flagged
/// `gone_at_bank` (time, sync run; its history records it); a flagged line whose
/// transaction is listed again is cleared, recorded. Confirmed duplicates are not "gone".
/// Reads the lines the listing covers only: an incremental listing's few recent ones.
/// Returns how many lines were flagged.
pub async fn flag_gone_at_bank(
    pool: &PgPool,
    run_id: Uuid,
    connection_id: Uuid,
    from_id: Option<&str>,
    seen: &SeenIds,
) -> Result<i32> {
    let from = match from_id {
        Some(f) => match canonical_number(f) {
            Some(_) => Some(f),
            None => return Ok(0),
        },
        None => None,
    };
    let accounts: Vec<Uuid> = sqlx::query_scalar!(
        "SELECT id FROM bank_accounts WHERE connection_id = $1",
        connection_id
    )
    .fetch_all(pool)
    .await?;
    // Salt Edge ids are decimal numbers: in (length, text) order they are in number order.
    // Written as "same length and not smaller, or longer", each half is an index range
    // whose size the planner estimates from statistics (the unique key's for the first,
    // `statement_lines_numeric_id` for the second); as one row comparison it was estimated
    // at the whole account and scanned it (0.4 s a night over 1,000,000 lines). Two
    // statements, so that full and incremental listings keep plans of their own.
    let covered: Vec<Covered> = match from {
        Some(from) => sqlx::query_as!(
            Covered,
            r#"SELECT l.id AS "id!", l.saltedge_transaction_id AS "saltedge_transaction_id!", l.gone_at_bank_at IS NOT NULL AS "flagged!"
               FROM statement_lines l
               WHERE l.bank_account_id = ANY($1) AND l.duplicate_confirmed_at IS NULL
                 AND ((length(l.saltedge_transaction_id) = length($2) AND l.saltedge_transaction_id >= $2)
                      OR length(l.saltedge_transaction_id) > length($2))
               UNION
               SELECT l.id, l.saltedge_transaction_id, true
               FROM statement_lines l
               WHERE l.bank_account_id = ANY($1) AND l.gone_at_bank_at IS NOT NULL"#,
            &accounts,
            from
        )
        .fetch_all(pool)
        .await?,
        None => sqlx::query_as!(
            Covered,
            r#"SELECT l.id AS "id!", l.saltedge_transaction_id AS "saltedge_transaction_id!",
                      l.gone_at_bank_at IS NOT NULL AS "flagged!"
               FROM statement_lines l
               WHERE l.bank_account_id = ANY($1)
                 AND (l.duplicate_confirmed_at IS NULL OR l.gone_at_bank_at IS NOT NULL)"#,
            &accounts
        )
        .fetch_all(pool)
        .await?,
    };
    let covers = |id: &str| match (from.and_then(canonical_number), canonical_number(id)) {
        (None, _) => true,
        (Some(f), Some(n)) => n >= f,
        (Some(_), None) => false,
    };
    let (mut gone, mut back) = (vec![], vec![]);
    for l in covered {
        let listed = seen.contains(&l.saltedge_transaction_id);
        if !l.flagged && !listed && covers(&l.saltedge_transaction_id) {
            gone.push(l.id);
        } else if l.flagged && listed {
            back.push(l.id);
        }
    }
    if gone.is_empty() && back.is_empty() {
        return Ok(0);
    }
    let mut tx = pool.begin().await?;
    // One update and one history entry per line, gone or back.
    // The history entry first: a line that comes back records the bookkeeper's answer it
    // drops (a confirmed removal returns the line to the books).
    sqlx::query!(
        "INSERT INTO line_events (company_id, line_id, sync_run_id, kind, detail)
         SELECT company_id, id, $3, CASE WHEN id = ANY($1) THEN 'gone_at_bank' ELSE 'back_at_bank' END,
                jsonb_strip_nulls(jsonb_build_object('saltedge_transaction_id', saltedge_transaction_id,
                    'answer_dropped', CASE WHEN removal_confirmed_at IS NOT NULL THEN 'removal_confirmed'
                                           WHEN removal_kept_at IS NOT NULL THEN 'removal_kept' END))
         FROM statement_lines WHERE id = ANY($1) OR id = ANY($2)",
        &gone,
        &back,
        run_id
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "UPDATE statement_lines
         SET gone_at_bank_at = CASE WHEN id = ANY($1) THEN now() END,
             gone_at_bank_run_id = CASE WHEN id = ANY($1) THEN $3::uuid END,
             removal_confirmed_at = NULL, removal_kept_at = NULL
         WHERE id = ANY($1) OR id = ANY($2)",
        &gone,
        &back,
        run_id
    )
    .execute(&mut *tx)
    .await?;
    // A line that is back was no one's re-issue: undecided proposals against it stand down.
    sqlx::query!(
        "UPDATE statement_lines SET reissue_of = NULL, updated_at = now()
         WHERE reissue_of = ANY($1) AND reissue_dismissed_at IS NULL",
        &back
    )
    .execute(&mut *tx)
    .await?;
    let proposed = propose_reissues(&mut tx, run_id, &gone).await?;
    let company: Option<Uuid> = sqlx::query_scalar!(
        "SELECT company_id FROM connections WHERE id = $1",
        connection_id
    )
    .fetch_optional(&mut *tx)
    .await?;
    if let (Some(company), false) = (company, gone.is_empty()) {
        crate::webhooks::emit(
            &mut tx,
            company,
            Some(connection_id),
            "lines.flagged",
            &serde_json::json!({ "connection_id": connection_id, "sync_run_id": run_id,
                                 "reason": "gone_at_bank", "line_ids": gone }),
        )
        .await?;
    }
    if let (Some(company), false) = (company, proposed.is_empty()) {
        crate::webhooks::emit(
            &mut tx,
            company,
            Some(connection_id),
            "lines.flagged",
            &serde_json::json!({ "connection_id": connection_id, "sync_run_id": run_id,
                                 "reason": "possible_reissue", "line_ids": proposed }),
        )
        .await?;
    }
    sqlx::query!(
        "UPDATE sync_runs SET gone_at_bank = gone_at_bank + $2, possible_reissues = possible_reissues + $3 WHERE id = $1",
        run_id,
        gone.len() as i32,
        proposed.len() as i32
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(gone.len() as i32)
}

/// Days apart, at most, of a line that vanished and a possible re-issue of it.
const REISSUE_DAYS: i32 = 3;

/// Possible re-issues with changed content (rule 8's other half): for each line this
/// listing found gone, a line of the same account and currency that the same run stored
/// new, without bank id, booked at most [`REISSUE_DAYS`] apart, with an amount of the same
/// sign that differs by at most 1.00 or 2 % of the old one (whichever is more), not a
/// look-alike (those are rule 8's), is flagged `reissue_of` the gone line — the closest in
/// amount, then date, each new line at most once. Nothing merges until the bookkeeper
/// says so. Returns the flagged lines.
async fn propose_reissues(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    run_id: Uuid,
    gone: &[i64],
) -> Result<Vec<i64>> {
    if gone.is_empty() {
        return Ok(vec![]);
    }
    let pairs = sqlx::query!(
        r#"SELECT o.id AS "old!", n.id AS "new!"
           FROM statement_lines o
           JOIN statement_lines n ON n.bank_account_id = o.bank_account_id AND n.currency = o.currency
           WHERE o.id = ANY($1) AND n.sync_run_id = $2
             AND n.imported_at >= (SELECT started_at FROM sync_runs WHERE id = $2)
             AND n.id > o.id AND n.bank_transaction_id IS NULL AND n.reissue_of IS NULL
             AND n.suspect_duplicate_of IS NULL AND n.rekeyed_from IS NULL
             AND n.duplicate_confirmed_at IS NULL AND n.gone_at_bank_at IS NULL
             AND abs(n.booking_date - o.booking_date) <= $3
             AND sign(n.amount) = sign(o.amount)
             AND abs(n.amount - o.amount) <= greatest(1.00, abs(o.amount) * 0.02)
           ORDER BY abs(n.amount - o.amount), abs(n.booking_date - o.booking_date), o.id, n.id"#,
        gone,
        run_id,
        REISSUE_DAYS
    )
    .fetch_all(&mut **tx)
    .await?;
    let (mut olds, mut news) = (HashSet::new(), vec![]);
    let mut pick = vec![];
    for p in pairs {
        if olds.contains(&p.old) || news.contains(&p.new) {
            continue;
        }
        olds.insert(p.old);
        news.push(p.new);
        pick.push((p.new, p.old));
    }
    let (new, old): (Vec<i64>, Vec<i64>) = pick.into_iter().unzip();
    sqlx::query!(
        "UPDATE statement_lines l SET reissue_of = p.old, updated_at = now()
         FROM unnest($1::bigint[], $2::bigint[]) AS p(new, old) WHERE l.id = p.new",
        &new,
        &old
    )
    .execute(&mut **tx)
    .await?;
    sqlx::query!(
        "INSERT INTO line_events (company_id, line_id, sync_run_id, kind, detail)
         SELECT l.company_id, l.id, $3, 'possible_reissue', jsonb_build_object('reissue_of', p.old)
         FROM unnest($1::bigint[], $2::bigint[]) AS p(new, old) JOIN statement_lines l ON l.id = p.new",
        &new,
        &old,
        run_id
    )
    .execute(&mut **tx)
    .await?;
    Ok(new)
}

/// A line a complete listing covers, and whether it is flagged gone already.
struct Covered {
    id: i64,
    saltedge_transaction_id: String,
    flagged: bool,
}

/// Records that the complete listing of `run_id` held the transactions of `lines` (rule 8's
/// "listed together"): one row per line, in a table of its own so that no line changes.
async fn record_listing(pool: &PgPool, run_id: Uuid, lines: &[i64]) -> Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    sqlx::query!(
        "INSERT INTO line_listings (line_id, company_id, sync_run_id, listed_at)
         SELECT l.id, l.company_id, $2, now() FROM statement_lines l WHERE l.id = ANY($1)
         ON CONFLICT (line_id) DO UPDATE SET sync_run_id = EXCLUDED.sync_run_id, listed_at = EXCLUDED.listed_at",
        lines,
        run_id
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Rule 3: the connection's pending transactions that Salt Edge no longer lists expire.
/// Returns how many did.
pub async fn expire_vanished_pending(
    pool: &PgPool,
    connection_id: Uuid,
    still_pending: &[String],
) -> Result<i32> {
    Ok(sqlx::query!(
        "UPDATE pending_transactions p SET state = 'expired', resolved_at = now(), updated_at = now()
         FROM bank_accounts a
         WHERE p.bank_account_id = a.id AND a.connection_id = $1 AND p.state = 'pending'
           AND NOT (p.saltedge_transaction_id = ANY($2))",
        connection_id,
        still_pending
    )
    .execute(pool)
    .await?
    .rows_affected() as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_ids_tell_numbers_and_text_apart() {
        let mut seen = SeenIds::default();
        for id in [
            "300",
            "100",
            "200",
            "0100",
            "abc",
            "0",
            "+5",
            "18446744073709551616",
        ] {
            seen.insert(id);
        }
        seen.finish();
        for id in [
            "100",
            "200",
            "300",
            "0100",
            "abc",
            "0",
            "+5",
            "18446744073709551616",
        ] {
            assert!(seen.contains(id), "{id}");
        }
        // "0100" is not "100", "5" is not "+5": each id is kept the way it was written.
        for id in ["101", "5", "00", "ABC", "", "01"] {
            assert!(!seen.contains(id), "{id}");
        }
    }

    #[test]
    fn the_fingerprint_filter_has_no_false_negatives_and_few_false_positives() {
        let mut f = FingerprintFilter::default();
        assert!(!f.may_contain(42), "empty");
        let h = |i: u64| {
            use std::hash::{Hash, Hasher};
            let mut s = std::collections::hash_map::DefaultHasher::new();
            i.hash(&mut s);
            s.finish()
        };
        for i in 0..200_000 {
            f.insert(h(i));
        }
        assert!((0..200_000).all(|i| f.may_contain(h(i))));
        let false_positives = (200_000..300_000).filter(|&i| f.may_contain(h(i))).count();
        assert!(false_positives < 100, "{false_positives} of 100000");
    }

    #[test]
    fn descriptions_normalise_and_compare() {
        assert_eq!(
            normalise_description("COFFEE SHOP REF4711 12/03"),
            "coffee shop"
        );
        assert_eq!(similarity("Coffee Shop", "COFFEE SHOP REF4711"), 1.0);
        assert!(similarity("Coffee Shop", "Rent City Flats") < 0.1);
        // As it always was (fingerprints must not change): words lower-cased by
        // `str::to_lowercase` (final sigma included), joined by one space.
        for text in [
            "ΟΔΟΣ Müller-STRAẞE 7b",
            "  a--B  ",
            "",
            "İstanbul ÇAY",
            "x\u{FFFD}y",
        ] {
            let reference = text
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty() && !w.chars().any(|c| c.is_numeric()))
                .map(|w| w.to_lowercase())
                .collect::<Vec<_>>()
                .join(" ");
            assert_eq!(normalise_description(text), reference, "{text:?}");
        }
        assert!(normalise_description("ΟΔΟΣ").ends_with('ς'));
    }

    /// `extra` read from its text gives what reading its tree gave: typed fields, the
    /// posting date, the bank's id and the repaired flag, for every shape a bank sends.
    #[test]
    fn extra_read_from_text_matches_the_tree() {
        use saltedge_client::models::RawJson;
        let cases = [
            "null",
            r#""just text""#,
            "[1,2]",
            "{}",
            r#"{"payee":"Bean There","posting_date":"2026-03-01","id":"  REF-1 ","original_amount":-12.5}"#,
            r#"{"posting_date":"not a date","payee":"x"}"#,
            r#"{"posting_date":20260301,"id":77}"#,
            r#"{"payee":12,"id":"B-9","posting_date":"2026-03-02"}"#,
            r#"{"id":{"nested":true},"information":"caf\u00e9"}"#,
            r#"{"id":"   "}"#,
            r#"{"information":"broken \ufffd text"}"#,
            r#"{"information":"broken \uFFFD text"}"#,
            r#"{"information":"a literal \\ufffd, not a repair"}"#,
            "{\"k\u{FFFD}\":\"key repaired\"}",
            "{\"additional\":\"x\u{FFFD}\"}",
            r#"{ "payee" : "spaced" ,
                "possible_duplicate": true }"#,
        ];
        for text in cases {
            let raw: RawJson = serde_json::from_str(text).unwrap();
            let tree: serde_json::Value = serde_json::from_str(text).unwrap();
            let read = ExtraRead::of(&raw);
            // The former reading, from the tree.
            let typed = if tree.is_null() {
                TransactionExtra::default()
            } else {
                use serde::Deserialize;
                TransactionExtra::deserialize(&tree).unwrap_or_default()
            };
            let posting = tree
                .get("posting_date")
                .and_then(|v| v.as_str())
                .and_then(|s| s.parse::<NaiveDate>().ok());
            assert_eq!(read.typed, typed, "{text}");
            assert_eq!(read.posting, posting, "{text}");
            assert_eq!(read.bank_id, bank_transaction_id(tree.get("id")), "{text}");
            assert_eq!(read.repaired, holds_replacement(&tree), "{text}");
        }
    }

    /// Fingerprints and content hashes are stored: their text stays byte for byte what
    /// `format!` made when they were introduced, or every known line would look changed.
    #[test]
    fn fingerprints_and_content_hashes_keep_their_stored_form() {
        use chrono::TimeZone;
        let date = NaiveDate::from_ymd_opt(2026, 3, 9).unwrap();
        for (amount, description, counterparty) in [
            ("-12.50", "CARD 4711 Bean There Café", Some("  Bean There ")),
            ("1000", "Σ salary", None),
            ("0.000100", "", Some("ÜBER gmbh")),
        ] {
            let amount: Decimal = amount.parse().unwrap();
            let old = crate::digest::sha256_hex(
                format!(
                    "{date}|{}|EUR|{}|{}",
                    amount.normalize(),
                    normalise_description(description),
                    counterparty.unwrap_or("").trim().to_lowercase()
                ),
                16,
            );
            assert_eq!(
                fingerprint(date, amount, "EUR", description, counterparty),
                old
            );
            for updated_at in [
                None,
                Some(chrono::Utc.with_ymd_and_hms(2026, 3, 10, 8, 0, 1).unwrap()),
                Some(
                    chrono::Utc
                        .timestamp_opt(1_773_000_000, 250_000_000)
                        .unwrap(),
                ),
            ] {
                let t: Transaction = serde_json::from_value(serde_json::json!({
                    "id": "1", "account_id": "2", "status": "posted", "made_on": date,
                    "amount": amount, "currency_code": "EUR", "description": description,
                    "updated_at": updated_at,
                }))
                .unwrap();
                for posting in [None, Some(date)] {
                    let old = crate::digest::sha256_hex(
                        format!(
                            "{}|{:?}|{}|{}|{}|{}|{:?}",
                            t.made_on,
                            t.updated_at,
                            t.amount.normalize(),
                            t.currency_code,
                            t.description,
                            LineStatus::Posted.as_str(),
                            posting
                        ),
                        16,
                    );
                    assert_eq!(content_hash(&t, LineStatus::Posted, posting), old);
                }
            }
        }
    }

    #[test]
    fn fingerprint_ignores_case_and_references_but_not_amount() {
        let d = NaiveDate::from_ymd_opt(2026, 1, 2).unwrap();
        let a = fingerprint(
            d,
            Decimal::new(-350, 2),
            "EUR",
            "Coffee Shop 123",
            Some("Bean There"),
        );
        assert_eq!(
            a,
            fingerprint(
                d,
                Decimal::new(-3500, 3),
                "EUR",
                "COFFEE SHOP 999",
                Some("bean there")
            )
        );
        assert_ne!(
            a,
            fingerprint(
                d,
                Decimal::new(-351, 2),
                "EUR",
                "Coffee Shop",
                Some("Bean There")
            )
        );
        assert_ne!(
            a,
            fingerprint(
                d,
                Decimal::new(-350, 2),
                "USD",
                "Coffee Shop",
                Some("Bean There")
            )
        );
    }

    #[test]
    fn copy_text_escapes_what_copy_reads_specially() {
        let mut buf = String::new();
        copy_text(&mut buf, Some("Müller\\GmbH\tRef\n1\r€"));
        copy_text(&mut buf, Some("plain"));
        copy_text(&mut buf, None);
        assert_eq!(buf, "Müller\\\\GmbH\\tRef\\n1\\r€\tplain\t\\N\t");
    }

    #[test]
    fn fingerprint_digests_tell_accounts_and_fingerprints_apart() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let fp = fingerprint(NaiveDate::default(), Decimal::ONE, "EUR", "Coffee", None);
        assert_eq!(fingerprint_digest(a, &fp), fingerprint_digest(a, &fp));
        assert_ne!(fingerprint_digest(a, &fp), fingerprint_digest(b, &fp));
        assert_ne!(
            fingerprint_digest(a, &fp),
            fingerprint_digest(a, "not hex at all, ü")
        );
    }

    #[test]
    fn ibans_are_recognised() {
        assert!(looks_like_iban("DE89 3704 0044 0532 0130 00"));
        assert!(!looks_like_iban("Bean There"));
        // Multi-byte text never panics (this payee stopped connections for good once).
        for s in [
            "Müller Consulting GmbH",
            "ÄÖ12345678901234",
            "€€€€€€€€€€€€€€€€",
            "D€12345678901234567",
            "🏦🏦🏦🏦🏦🏦🏦🏦",
            "",
            "é",
        ] {
            assert!(!looks_like_iban(s), "{s}");
        }
    }
}
