//! The upsert of a page's lines: occurrences, look-alike flags (rules 1, 7).

use std::collections::HashMap;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use sqlx::Postgres;
use uuid::Uuid;

use super::{copy_lines, Identities, Row};
use crate::error::Result;

pub(super) struct Upserted {
    /// Salt Edge id → line id of the lines inserted.
    pub(super) inserted: HashMap<String, i64>,
    /// Salt Edge id → line id of the lines Salt Edge changed.
    pub(super) updated: HashMap<String, i64>,
    /// Inserted lines that got `suspect_duplicate_of` (rule 7, against earlier lines).
    pub(super) flagged: Vec<i64>,
    /// Look-alikes within the page are flagged too (and in `flagged`): `COPY` did it.
    pub(super) look_alikes_flagged: bool,
}

/// The columns of an `INSERT` of rows, as arrays for `UNNEST`.
pub(super) struct Columns<'a> {
    pub(super) journal: Vec<Uuid>,
    pub(super) account: Vec<Uuid>,
    pub(super) booking: Vec<NaiveDate>,
    pub(super) value: Vec<Option<NaiveDate>>,
    pub(super) amount: Vec<Decimal>,
    pub(super) currency: Vec<&'a str>,
    pub(super) description: Vec<&'a str>,
    pub(super) payee: Vec<Option<&'a str>>,
    pub(super) iban: Vec<Option<&'a str>>,
    pub(super) se_id: Vec<&'a str>,
    pub(super) fp: Vec<&'a str>,
    pub(super) hash: Vec<&'a str>,
    pub(super) extra: Vec<&'a str>,
    pub(super) repaired: Vec<bool>,
    pub(super) possible: Vec<bool>,
    pub(super) pending_id: Vec<Option<i64>>,
    pub(super) bank_id: Vec<Option<&'a str>>,
    pub(super) statement: Vec<Option<i64>>,
    pub(super) raw_digest: Vec<Option<&'a [u8]>>,
}

impl<'a> Columns<'a> {
    pub(super) fn of(rows: &'a [Row]) -> Columns<'a> {
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
pub(super) fn occurrences(rows: &[Row], base: &Identities) -> (Vec<i32>, Vec<Option<i64>>) {
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
pub(super) async fn upsert(
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
pub(super) async fn flag_look_alikes_in_page(
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
