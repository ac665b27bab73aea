//! A first import's page `COPY`'d in, rendered ahead on the fetching task.

use std::collections::HashMap;

use sqlx::Postgres;
use uuid::Uuid;

use super::Row;

/// A first import's page of new lines through `COPY … FROM STDIN` (text format), with
/// what the `INSERT`'s `RETURNING` would give: (id, inserted, suspect, Salt Edge id). The
/// line ids are taken from the table's sequence first, so that nothing is read back and a
/// look-alike within the page (rule 7) is flagged as it is copied, not updated after.
pub(super) async fn copy_lines(
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
pub(super) async fn line_ids(
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
pub(super) fn render_lines(
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
pub(super) async fn send_copy(
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
pub(super) struct CopyIds {
    pub(super) company: Uuid,
    /// The run's id and its tab.
    pub(super) run: String,
    /// Per account: company, journal and account, each with its tab.
    pub(super) accounts: Vec<(Uuid, String)>,
}

impl CopyIds {
    pub(super) fn new(company: Uuid, run_id: Uuid) -> CopyIds {
        CopyIds {
            company,
            run: format!("{run_id}\t"),
            accounts: vec![],
        }
    }

    pub(super) fn account(&mut self, r: &Row) -> &str {
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
pub(super) fn copy_head(buf: &mut String, r: &Row, ids: &mut CopyIds) {
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
pub(super) fn copy_number(buf: &mut String, v: Option<i64>) {
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
pub(super) fn copy_text(buf: &mut String, v: Option<&str>) {
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
