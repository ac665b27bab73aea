//! CSV, one row per line (a statement without lines has one row with the line columns
//! empty), UTF-8, comma-separated, `.` as decimal separator, RFC 4180 quoting, a header
//! row. Columns, in order:
//!
//! `statement_id, statement_sequence, bank_account_id, account_iban, account_number,
//! currency, period_start, period_end, opening_balance, closing_balance, line_id,
//! booking_date, value_date, amount, description, payee, counterparty_iban, reference`
//!
//! Text cells (names, descriptions, references) that start with `=`, `+`, `-`, `@`, a tab
//! or a carriage return are prefixed with `'` so that a spreadsheet does not run them as a
//! formula. Numbers (amounts, balances) are written by banksync as plain decimals and are
//! never prefixed: their leading `-` is a minus sign. Any currency is carried.

use std::fmt::Write;

use super::{ExportHeader, StatementExport, Writer};

pub struct Csv;

pub const COLUMNS: &str = "statement_id,statement_sequence,bank_account_id,account_iban,account_number,currency,period_start,period_end,opening_balance,closing_balance,line_id,booking_date,value_date,amount,description,payee,counterparty_iban,reference";

/// A text cell: defused against formula injection, quoted when it must be.
pub fn text(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

impl Writer for Csv {
    fn start(&mut self, _h: &ExportHeader) -> String {
        format!("{COLUMNS}\r\n")
    }

    fn statement(&mut self, s: &StatementExport) -> String {
        let st = &s.statement;
        let a = &s.account;
        let head = format!(
            "{},{},{},{},{},{},{},{},{},{}",
            st.id,
            st.sequence.map(|n| n.to_string()).unwrap_or_default(),
            a.id,
            text(a.iban.as_deref().unwrap_or("")),
            text(a.account_number.as_deref().unwrap_or("")),
            text(&a.currency),
            st.period_start,
            st.period_end,
            st.opening_balance.normalize(),
            st.closing_balance.normalize()
        );
        let mut out = String::with_capacity(256 * (1 + s.entries.len()));
        if s.entries.is_empty() {
            let _ = write!(out, "{head},,,,,,,,\r\n");
        }
        for e in &s.entries {
            let _ = write!(
                out,
                "{head},{},{},{},{},{},{},{},{}\r\n",
                e.line_id.map(|n| n.to_string()).unwrap_or_default(),
                e.booking_date,
                e.value_date.map(|d| d.to_string()).unwrap_or_default(),
                e.amount.normalize(),
                text(&e.description),
                text(e.payee.as_deref().unwrap_or("")),
                text(e.counterparty_iban.as_deref().unwrap_or("")),
                text(&e.reference)
            );
        }
        out
    }

    fn finish(&mut self) -> String {
        String::new()
    }

    fn name(&self) -> &'static str {
        "CSV"
    }

    fn iso_currencies_only(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_defused_and_quoted() {
        assert_eq!(text("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(text("+1"), "'+1");
        assert_eq!(text("-5 coffee"), "'-5 coffee");
        assert_eq!(text("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(text("Coffee, milk"), "\"Coffee, milk\"");
        assert_eq!(text("plain"), "plain");
    }
}
