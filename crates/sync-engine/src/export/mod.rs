//! Statement exports: a bank account's (or a journal's) statements with their balances and
//! lines, as CAMT.053, MT940, OFX 2 or CSV, streamed one statement at a time.
//!
//! What goes in: the statements whose period meets `[from, to]`, in period order per
//! account, each with its opening and closing balance and its booked lines (lines confirmed
//! as duplicates are not in the books and not exported). A statement that carries a
//! correction (a change to a line of an already closed statement) exports it as one more
//! entry, so that opening + entries = closing holds in every format.
//!
//! Each format has limits; what a format cannot carry is refused before anything is sent
//! (`format_cannot_carry`, 422), what it can carry only shortened is shortened by a stated
//! rule (see each writer).

mod camt053;
mod csv;
mod mt940;
mod ofx;

pub use mt940::{free_text, transliterate};

use chrono::{DateTime, Days, NaiveDate, Utc};
use futures::Stream;
use rust_decimal::Decimal;
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::{Result, SyncError};
use crate::mapping::BankAccount;
use crate::statements::{self, Scope, Statement};

/// The export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// ISO 20022 bank-to-customer statement, `camt.053.001.08`.
    Camt053,
    /// SWIFT MT940 customer statement.
    Mt940,
    /// OFX 2.2 (XML) bank statement response.
    Ofx,
    /// CSV, one row per line (see [`csv`]).
    Csv,
}

crate::store::status::vocabulary_schema!(
    Format,
    "`camt053` (ISO 20022 camt.053.001.08), `mt940`, `ofx` (OFX 2.2) or `csv`."
);

impl Format {
    pub const ALL: [Format; 4] = [Format::Camt053, Format::Mt940, Format::Ofx, Format::Csv];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Camt053 => "camt053",
            Format::Mt940 => "mt940",
            Format::Ofx => "ofx",
            Format::Csv => "csv",
        }
    }

    pub fn parse(s: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.as_str() == s)
    }

    pub fn media_type(self) -> &'static str {
        match self {
            Format::Camt053 => "application/xml; charset=utf-8",
            Format::Mt940 => "text/plain; charset=us-ascii",
            Format::Ofx => "application/x-ofx; charset=utf-8",
            Format::Csv => "text/csv; charset=utf-8",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Camt053 => "xml",
            Format::Mt940 => "sta",
            Format::Ofx => "ofx",
            Format::Csv => "csv",
        }
    }
}

/// One entry of an exported statement: a line, or the statement's correction.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The line's id (stable), or `None` for the correction entry.
    pub line_id: Option<i64>,
    pub booking_date: NaiveDate,
    pub value_date: Option<NaiveDate>,
    pub amount: Decimal,
    pub description: String,
    pub payee: Option<String>,
    pub counterparty_iban: Option<String>,
    /// The bank's reference: its own transaction id where given, else Salt Edge's id.
    pub reference: String,
}

/// One statement as the writers see it.
#[derive(Debug, Clone)]
pub struct StatementExport {
    pub statement: Statement,
    pub account: BankAccount,
    pub entries: Vec<Entry>,
}

/// What a whole export is about (the writers' header and trailer).
#[derive(Debug, Clone)]
pub struct ExportHeader {
    /// Unique per export: the message id of CAMT, the OFX transaction uid.
    pub message_id: String,
    pub created_at: DateTime<Utc>,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
}

/// A format's writer: the header, each statement, the trailer, as text.
trait Writer: Send {
    fn start(&mut self, header: &ExportHeader) -> String;
    fn statement(&mut self, s: &StatementExport) -> String;
    fn finish(&mut self) -> String;
    /// The format's name, for refusals.
    fn name(&self) -> &'static str;
    /// Whether the format carries ISO 4217 currencies only (three capital letters).
    fn iso_currencies_only(&self) -> bool {
        true
    }
    /// Why this format cannot carry `account`'s statements, if it cannot.
    fn refuses(&self, a: &BankAccount) -> Option<String> {
        (self.iso_currencies_only() && !iso_currency(&a.currency)).then(|| {
            format!(
                "{} carries ISO 4217 currencies only (three letters); account {} is in {}",
                self.name(),
                a.id,
                a.currency
            )
        })
    }
    /// Why this format cannot carry amounts up to `largest` (absolute) with up to `scale`
    /// decimals, if it cannot.
    fn refuses_amounts(&self, _largest: Decimal, _scale: u32) -> Option<String> {
        None
    }
}

fn writer(format: Format) -> Box<dyn Writer> {
    match format {
        Format::Camt053 => Box::new(camt053::Camt053),
        Format::Mt940 => Box::new(mt940::Mt940),
        Format::Ofx => Box::new(ofx::Ofx::default()),
        Format::Csv => Box::new(csv::Csv),
    }
}

/// What to export.
#[derive(Debug, Clone, Copy)]
pub enum ExportScope {
    Account(Uuid),
    Journal(Uuid),
}

/// Checks the request (the account or journal is the company's, the format can carry its
/// currencies and amounts, `from` ≤ `to`) and returns the export as a stream of text
/// chunks: the header, one chunk per statement, the trailer. An error while streaming (the
/// database gone) ends the stream with that error.
pub async fn export(
    pool: &PgPool,
    company: Uuid,
    scope: ExportScope,
    format: Format,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> Result<impl Stream<Item = Result<String>> + Send + 'static> {
    if let (Some(f), Some(t)) = (from, to) {
        if f > t {
            return Err(SyncError::invalid("invalid_range", "`from` is after `to`"));
        }
    }
    let accounts: Vec<BankAccount> = match scope {
        ExportScope::Account(id) => vec![crate::mapping::account(pool, company, id).await?],
        ExportScope::Journal(id) => {
            crate::mapping::journal(pool, company, id).await?;
            crate::mapping::accounts_of_company(pool, company)
                .await?
                .into_iter()
                .filter(|a| a.journal_id == id)
                .collect()
        }
    };
    let mut w = writer(format);
    for a in &accounts {
        if let Some(why) = w.refuses(a) {
            return Err(SyncError::invalid("format_cannot_carry", why));
        }
    }
    let (largest, scale) = largest_amount(pool, company, &accounts).await?;
    if let Some(why) = w.refuses_amounts(largest, scale) {
        return Err(SyncError::invalid("format_cannot_carry", why));
    }
    let header = ExportHeader {
        message_id: format!("BANKSYNC-{}", Uuid::new_v4().simple()),
        created_at: Utc::now(),
        from,
        to,
    };
    let start = w.start(&header);
    let state = Walk {
        pool: pool.clone(),
        company,
        scope,
        accounts,
        from,
        to,
        // Weekly and monthly statements that started before `from` still meet it.
        after: from
            .and_then(|f| f.checked_sub_days(Days::new(31)))
            .map(|d| (d, i64::MAX)),
        queue: std::collections::VecDeque::new(),
        writer: w,
        pending: Some(start),
        exhausted: false,
        finished: false,
    };
    Ok(futures::stream::try_unfold(state, |mut s| async move {
        match s.next_chunk().await? {
            Some(chunk) => Ok(Some((chunk, s))),
            None => Ok(None),
        }
    }))
}

/// The stream's state: statements are read 50 at a time, lines one statement at a time.
struct Walk {
    pool: PgPool,
    company: Uuid,
    scope: ExportScope,
    accounts: Vec<BankAccount>,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    after: Option<(NaiveDate, i64)>,
    queue: std::collections::VecDeque<Statement>,
    writer: Box<dyn Writer>,
    pending: Option<String>,
    exhausted: bool,
    finished: bool,
}

impl Walk {
    async fn next_chunk(&mut self) -> Result<Option<String>> {
        if let Some(chunk) = self.pending.take() {
            return Ok(Some(chunk));
        }
        loop {
            if let Some(st) = self.queue.pop_front() {
                let Some(account) = self.accounts.iter().find(|a| a.id == st.bank_account_id)
                else {
                    continue;
                };
                let entries = entries(&self.pool, self.company, &st).await?;
                return Ok(Some(self.writer.statement(&StatementExport {
                    statement: st,
                    account: account.clone(),
                    entries,
                })));
            }
            if self.exhausted {
                if self.finished {
                    return Ok(None);
                }
                self.finished = true;
                return Ok(Some(self.writer.finish()));
            }
            let scope = match self.scope {
                ExportScope::Account(a) => Scope::Account(a),
                ExportScope::Journal(j) => Scope::Journal(j),
            };
            let page = statements::page(&self.pool, self.company, scope, self.after, 50).await?;
            self.exhausted = page.len() < 50
                || page
                    .last()
                    .is_some_and(|s| self.to.is_some_and(|t| s.period_start > t));
            self.after = page.last().map(|s| (s.period_start, s.id)).or(self.after);
            let (from, to) = (self.from, self.to);
            self.queue.extend(page.into_iter().filter(|s| {
                from.is_none_or(|f| s.period_end >= f) && to.is_none_or(|t| s.period_start <= t)
            }));
        }
    }
}

/// A statement's booked lines by booking date, and its correction as a last entry.
async fn entries(pool: &PgPool, company: Uuid, st: &Statement) -> Result<Vec<Entry>> {
    let mut out: Vec<Entry> = sqlx::query!(
        r#"SELECT id, booking_date, value_date, amount, description, payee, counterparty_iban,
                  coalesce(bank_transaction_id, saltedge_transaction_id) AS "reference!"
           FROM statement_lines
           WHERE company_id = $1 AND statement_id = $2 AND duplicate_confirmed_at IS NULL AND removal_confirmed_at IS NULL
           ORDER BY booking_date, id"#,
        company,
        st.id
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|r| Entry {
        line_id: Some(r.id),
        booking_date: r.booking_date,
        value_date: r.value_date,
        amount: r.amount,
        description: r.description,
        payee: r.payee,
        counterparty_iban: r.counterparty_iban,
        reference: r.reference,
    })
    .collect();
    if !st.corrections.is_zero() {
        out.push(Entry {
            line_id: None,
            booking_date: st.period_end,
            value_date: None,
            amount: st.corrections,
            description: "Correction to an earlier statement".into(),
            payee: None,
            counterparty_iban: None,
            reference: format!("CORRECTION-{}", st.id),
        });
    }
    Ok(out)
}

/// The largest absolute amount or balance the export could hold and the most decimals
/// any amount has (trailing zeros aside), to refuse up front what a format cannot write.
async fn largest_amount(
    pool: &PgPool,
    company: Uuid,
    accounts: &[BankAccount],
) -> Result<(Decimal, u32)> {
    let ids: Vec<Uuid> = accounts.iter().map(|a| a.id).collect();
    let r = sqlx::query!(
        r#"SELECT coalesce(max(x), 0) AS "largest!", coalesce(max(d), 0) AS "scale!" FROM (
             SELECT max(abs(amount)) AS x, max(scale(trim_scale(amount))) AS d FROM statement_lines
             WHERE company_id = $1 AND bank_account_id = ANY($2)
             UNION ALL
             SELECT max(greatest(abs(coalesce(opening_balance, 0)), abs(coalesce(closing_balance, 0)), abs(corrections))),
                    max(greatest(scale(trim_scale(coalesce(opening_balance, 0))), scale(trim_scale(coalesce(closing_balance, 0)))))
             FROM statements WHERE company_id = $1 AND bank_account_id = ANY($2)) m"#,
        company,
        &ids
    )
    .fetch_one(pool)
    .await?;
    Ok((r.largest, u32::try_from(r.scale).unwrap_or(u32::MAX)))
}

/// An IBAN as the formats want it: upper case, no spaces; `None` if it is not one.
pub(crate) fn iban(s: &str) -> Option<String> {
    let v: String = s
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_uppercase();
    let ok = v.len() >= 5
        && v.len() <= 34
        && v.chars().take(2).all(|c| c.is_ascii_uppercase())
        && v.chars().skip(2).take(2).all(|c| c.is_ascii_digit())
        && v.chars().skip(4).all(|c| c.is_ascii_alphanumeric());
    ok.then_some(v)
}

/// The first `n` characters of `s` (never splits a character).
pub(crate) fn chars(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// Text that XML 1.0 can carry, escaped: control characters other than tab and newline
/// become spaces.
pub(crate) fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' => out.push(' '),
            c if c.is_control() || ('\u{FFFE}'..='\u{FFFF}').contains(&c) => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// How many digits the integer part of `v` has.
pub(crate) fn int_digits(v: Decimal) -> u32 {
    v.trunc().abs().normalize().to_string().len() as u32
}

/// A currency that ISO 4217 formats can carry: three capital letters.
pub(crate) fn iso_currency(c: &str) -> bool {
    c.len() == 3 && c.chars().all(|c| c.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ibans_are_normalised_or_refused() {
        assert_eq!(
            iban("de89 3704 0044 0532 0130 00").as_deref(),
            Some("DE89370400440532013000")
        );
        assert_eq!(iban("12345678"), None);
        assert_eq!(iban("DE89 37ä0"), None);
    }

    #[test]
    fn xml_text_is_escaped_and_control_characters_dropped() {
        assert_eq!(xml("a<b & \"c\"\u{1}"), "a&lt;b &amp; &quot;c&quot; ");
        assert_eq!(chars("żółw", 2), "żó");
    }
}
