//! OFX 2.2 (XML), one `STMTTRNRS` per statement in one `BANKMSGSRSV1`: the statement's
//! period as `DTSTART`/`DTEND`, its lines as `STMTTRN` (`FITID` = the line id, stable;
//! `NAME` = the payee, shortened to 32 characters; `MEMO` = the description, to 255;
//! `REFNUM` = the bank's reference, to 32) and its closing balance as `LEDGERBAL` at the
//! period's end. OFX has no opening balance: it is the previous statement's `LEDGERBAL`.
//! The account: `ACCTID` is the IBAN (or account number) when it fits 22 characters, else
//! its last 22; `BANKID` is the IBAN's bank code part (9 characters) or `000000000`;
//! `ACCTTYPE` is `SAVINGS` for savings accounts, `CREDITLINE` for cards and credit
//! accounts, `CHECKING` otherwise. Currencies: ISO 4217.

use std::fmt::Write;

use rust_decimal::Decimal;

use super::{chars, iban, xml, ExportHeader, StatementExport, Writer};
use crate::mapping::BankAccount;

#[derive(Default)]
pub struct Ofx {
    n: u64,
}

fn account_type(nature: &str) -> &'static str {
    match nature {
        "savings" => "SAVINGS",
        "card" | "credit_card" | "credit" | "debit_card" => "CREDITLINE",
        _ => "CHECKING",
    }
}

fn ids(a: &BankAccount) -> (String, String) {
    let i = a.iban.as_deref().and_then(iban);
    let bank = i
        .as_deref()
        .map(|i| chars(&i.chars().skip(4).collect::<String>(), 9))
        .unwrap_or_else(|| "000000000".into());
    let acct = i
        .or_else(|| {
            a.account_number
                .as_deref()
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_string)
        })
        .unwrap_or_else(|| a.saltedge_id.clone());
    let n = acct.chars().count();
    let acct: String = acct.chars().skip(n.saturating_sub(22)).collect();
    (bank, acct)
}

fn amount(v: Decimal) -> String {
    v.normalize().to_string()
}

impl Writer for Ofx {
    fn start(&mut self, h: &ExportHeader) -> String {
        let now = h.created_at.format("%Y%m%d%H%M%S");
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n<?OFX OFXHEADER=\"200\" VERSION=\"220\" SECURITY=\"NONE\" OLDFILEUID=\"NONE\" NEWFILEUID=\"NONE\"?>\n<OFX><SIGNONMSGSRSV1><SONRS><STATUS><CODE>0</CODE><SEVERITY>INFO</SEVERITY></STATUS><DTSERVER>{now}[0:UTC]</DTSERVER><LANGUAGE>ENG</LANGUAGE></SONRS></SIGNONMSGSRSV1><BANKMSGSRSV1>\n"
        )
    }

    fn statement(&mut self, s: &StatementExport) -> String {
        self.n += 1;
        let st = &s.statement;
        let (bank, acct) = ids(&s.account);
        let mut out = String::with_capacity(512 + 400 * s.entries.len());
        let _ = write!(
            out,
            "<STMTTRNRS><TRNUID>{}</TRNUID><STATUS><CODE>0</CODE><SEVERITY>INFO</SEVERITY></STATUS><STMTRS><CURDEF>{}</CURDEF><BANKACCTFROM><BANKID>{}</BANKID><ACCTID>{}</ACCTID><ACCTTYPE>{}</ACCTTYPE></BANKACCTFROM>",
            st.id,
            s.account.currency,
            xml(&bank),
            xml(&acct),
            account_type(&s.account.nature)
        );
        let _ = write!(
            out,
            "<BANKTRANLIST><DTSTART>{}</DTSTART><DTEND>{}</DTEND>",
            st.period_start.format("%Y%m%d"),
            st.period_end.format("%Y%m%d")
        );
        for e in &s.entries {
            let kind = if e.amount.is_sign_negative() && !e.amount.is_zero() {
                "DEBIT"
            } else {
                "CREDIT"
            };
            let fitid = e
                .line_id
                .map_or_else(|| format!("CORRECTION-{}", st.id), |id| id.to_string());
            let _ = write!(
                out,
                "<STMTTRN><TRNTYPE>{kind}</TRNTYPE><DTPOSTED>{}</DTPOSTED>",
                e.booking_date.format("%Y%m%d")
            );
            if let Some(v) = e.value_date {
                let _ = write!(out, "<DTAVAIL>{}</DTAVAIL>", v.format("%Y%m%d"));
            }
            let _ = write!(
                out,
                "<TRNAMT>{}</TRNAMT><FITID>{fitid}</FITID>",
                amount(e.amount)
            );
            let reference = chars(e.reference.trim(), 32);
            if !reference.is_empty() {
                let _ = write!(out, "<REFNUM>{}</REFNUM>", xml(&reference));
            }
            let payee = e.payee.as_deref().map(str::trim).unwrap_or("");
            if !payee.is_empty() {
                let _ = write!(out, "<NAME>{}</NAME>", xml(&chars(payee, 32)));
            }
            let memo = e.description.trim();
            if !memo.is_empty() {
                let _ = write!(out, "<MEMO>{}</MEMO>", xml(&chars(memo, 255)));
            }
            out.push_str("</STMTTRN>");
        }
        let _ = writeln!(
            out,
            "</BANKTRANLIST><LEDGERBAL><BALAMT>{}</BALAMT><DTASOF>{}</DTASOF></LEDGERBAL></STMTRS></STMTTRNRS>",
            amount(st.closing_balance),
            st.period_end.format("%Y%m%d")
        );
        out
    }

    fn finish(&mut self) -> String {
        "</BANKMSGSRSV1></OFX>\n".into()
    }

    fn name(&self) -> &'static str {
        "OFX"
    }
}
