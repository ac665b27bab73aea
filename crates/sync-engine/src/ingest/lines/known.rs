//! What is already stored: ids seen in a listing, fingerprints, items held byte for byte (rules 1, 5).

use std::collections::HashMap;
use std::collections::HashSet;

use serde_json::value::RawValue;
use sqlx::PgPool;
use uuid::Uuid;

use super::{AccountTarget, Row};
use crate::error::Result;

/// An (account, fingerprint) pair as 64 bits for [`FingerprintFilter`]: a fingerprint is
/// already a SHA-256 in hex, so its first 16 digits are taken as they are (no hashing again).
pub(super) fn fingerprint_digest(account: Uuid, fingerprint: &str) -> u64 {
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
pub(super) struct FingerprintFilter {
    pub(super) bits: Vec<u64>,
}

impl FingerprintFilter {
    pub(super) const BITS: u64 = 1 << 24;

    pub(super) fn positions(h: u64) -> [u64; 3] {
        // Double hashing: h1 + i·h2 (h2 odd), over the filter's 2^24 bits.
        let h2 = h.rotate_left(32).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        [0u64, 1, 2].map(|i| h.wrapping_add(i.wrapping_mul(h2)) & (Self::BITS - 1))
    }

    pub(super) fn insert(&mut self, h: u64) {
        if self.bits.is_empty() {
            self.bits = vec![0; (Self::BITS / 64) as usize];
        }
        for b in Self::positions(h) {
            self.bits[(b / 64) as usize] |= 1u64 << (b % 64);
        }
    }

    pub(super) fn may_contain(&self, h: u64) -> bool {
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
    pub(super) numeric: Vec<u64>,
    pub(super) sorted: bool,
    pub(super) other: HashSet<String>,
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

    pub(super) fn contains(&self, id: &str) -> bool {
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
pub(super) fn canonical_number(id: &str) -> Option<u64> {
    let digits = !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit());
    if !digits || (id.len() > 1 && id.starts_with('0')) {
        return None;
    }
    id.parse().ok()
}

/// A page's raw items with what [`held_verbatim`] needs of each: its account and Salt Edge
/// id (where they can be read and the account is the connection's) and its
/// [`crate::digest::raw16`]. CPU work only: the sync does it on the fetching task.
pub struct KeyedPage {
    pub(super) items: Vec<Box<RawValue>>,
    pub(super) keys: Vec<ItemKey>,
}

/// An item's (account, Salt Edge id), where they can be read, and its digest.
pub(super) type ItemKey = (Option<(Uuid, String)>, Vec<u8>);

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
pub(super) fn one_stretch<'a>(ids: &[&'a str]) -> Option<(&'a str, &'a str)> {
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
pub(super) async fn known_lines<'e>(
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
