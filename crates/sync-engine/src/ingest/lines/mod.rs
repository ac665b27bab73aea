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
//!    ([`crate::ingest::lock`]); rule 1's unique key is the backstop.
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
//!    (`reissued::propose_reissues`). The bookkeeper answers both ([`crate::review`]).
//! 9. **Identity survives the bank.** A transaction with an unknown Salt Edge id whose bank
//!    id (`extra.id`) is a line's of the same account is that line: it is re-keyed at once
//!    (`identity::rekey_by_bank_id`). A line's content identity — its fingerprint, fixed when first
//!    stored, and its `occurrence` among the account's lines with that fingerprint — is
//!    unique per account; line ids never change. Every change after the first store is
//!    recorded in the line's history ([`crate::history`]) in the same transaction.
//! 10. **The same bank linked again imports nothing twice.** When an account is taken over
//!     by a new connection ([`crate::mapping`]: same IBAN or account number), each
//!     transaction with an unknown Salt Edge id claims the earliest unclaimed line imported
//!     before the takeover with its fingerprint, in occurrence order (`identity::claim_relinked`);
//!     only the rest are new lines.
//!
//! Each page is written in one database transaction, so a crash loses at most the page in
//! flight, which the next run fetches again.
//!
//! Speed, without bending a rule: a first import's page (the connection had no lines) is
//! `COPY`'d in (`copy::copy_lines`: the text of each row rendered ahead on the fetching task,
//! line ids taken from the sequence first so that look-alikes are flagged as they are
//! copied and nothing is read back), falling back to the upsert through a savepoint if it
//! does repeat a stored id; every line keeps the digest of its item's JSON as received, so a
//! re-sync sets aside the items a line holds byte for byte without parsing them
//! ([`held_verbatim`]), and compares the rest by content hash; a page that changes nothing
//! writes nothing.
//!
//! Where each rule lives (each file holds its functions' SQL) and the test that holds it
//! (`tests/engine/…`, `tests/api/…`):
//!
//! | Rule | File::function | Test |
//! |---|---|---|
//! | 1 | `insert::upsert`, `copy::copy_lines`, [`write_prepared`] | `dedup::rule1_resync_of_the_whole_history_changes_nothing` |
//! | 2 | `pending::link_pending`, `pending::match_pending`, `pending::propose_pending` | `dedup::rule2_*` |
//! | 3 | [`expire_vanished_pending`] | `dedup::rule3_vanished_pending_transactions_expire_lines_never` |
//! | 4 | [`prepare`] (counted in [`write_prepared`]) | `dedup::rule4_duplicated_transactions_are_counted_not_imported` |
//! | 5 | `known::known_lines`, [`held_verbatim`] | `dedup::rule5_incremental_and_overlapping_windows_never_double` |
//! | 6 | [`crate::ingest::lock`] | `dedup::rule6_two_concurrent_syncs_serialize` |
//! | 7 | `insert::flag_look_alikes_in_page`, `copy::render_lines` | `dedup::rule7_look_alikes_with_other_ids_are_flagged_not_dropped` |
//! | 8 | [`rekey_reissued`], [`flag_gone_at_bank`], `reissued::propose_reissues` | `dedup::rule8_*`, `dedup::a_line_the_bank_removed_is_flagged_and_cleared_when_it_returns` |
//! | 9 | `identity::rekey_by_bank_id`, `identity::identities_of` | `identity::the_banks_own_id_is_the_first_key_and_history_explains`, `identity::three_identical_coffees_stay_three_lines` |
//! | 10 | `identity::claim_relinked` | `accounting::the_same_bank_linked_again_after_a_delete` (API) |
//!
//! Text (descriptions, fingerprints, repaired characters) is `text`; a page's rows are made
//! on the fetching task in `prepare`; a first import's writes overlap in `pipeline`. Every
//! rule is also held by `contract::random_bank_histories_keep_the_contract_*`, which checks
//! random bank histories against an independent ledger.

use std::collections::HashMap;

use chrono::NaiveDate;
use saltedge_client::models::Transaction;
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::Result;

mod copy;
mod identity;
mod insert;
mod known;
mod pending;
mod pipeline;
mod prepare;
mod reissued;
mod text;
use copy::{copy_head, copy_lines, line_ids, render_lines, send_copy, CopyIds};
use identity::{claim_relinked, identities_of, rekey_by_bank_id, Identities};
use insert::{flag_look_alikes_in_page, occurrences, upsert};
use known::{canonical_number, fingerprint_digest, known_lines, FingerprintFilter};
pub use known::{held_verbatim, KeyedPage, SeenIds};
pub use pending::{expire_vanished_pending, PendingLines};
use pending::{
    link_pending, link_posted_pending, match_pending_rows, propose_pending, write_pending,
};
pub use pipeline::{ImportPipeline, WriteContext, WRITE_LOCK};
use prepare::Row;
pub use prepare::{prepare, prepare_digested, PreparedPage};
pub use reissued::{flag_gone_at_bank, rekey_reissued};
pub use text::{fingerprint, normalise_description, similarity};
use text::{looks_like_iban, ExtraRead};

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

#[cfg(test)]
mod tests {
    use rust_decimal::Decimal;
    use saltedge_client::models::TransactionExtra;

    use super::copy::copy_text;
    use super::prepare::content_hash;
    use super::text::{bank_transaction_id, holds_replacement};
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
