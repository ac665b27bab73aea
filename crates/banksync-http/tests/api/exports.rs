//! Statement exports, checked by independent tools (`scripts/py-check`: the official
//! camt.053.001.08 XSD, the `mt-940` parser, `ofxtools`, Python's csv) and compared with
//! the account's statements and lines as the API shows them.

use super::support::*;
use rust_decimal::Decimal;
use std::str::FromStr;

const FORMATS: [&str; 4] = ["camt053", "mt940", "ofx", "csv"];

/// The export as bytes, with its content type.
async fn download(s: &Stack, path: &str) -> (StatusCode, String, Vec<u8>) {
    let r = s
        .http
        .get(format!("{}{path}", s.base))
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap();
    let st = r.status();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (st, ct, r.bytes().await.unwrap().to_vec())
}

/// What the independent tools parsed from `body` in `format`.
fn parsed(format: &str, body: &[u8]) -> Vec<Value> {
    let dir = std::env::temp_dir().join(format!("banksync-export-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("export.{format}"));
    std::fs::write(&file, body).unwrap();
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let out = std::process::Command::new("bash")
        .arg(format!("{root}/scripts/py-check"))
        .arg(format)
        .arg(&file)
        .output()
        .expect("scripts/py-check runs");
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        out.status.success(),
        "{format} rejected by its independent checker: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(body)
            .chars()
            .take(3000)
            .collect::<String>()
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["statements"].as_array().unwrap().clone()
}

fn dec(v: &Value) -> Decimal {
    Decimal::from_str(v.as_str().unwrap()).unwrap().normalize()
}

/// The account's statements with their booked lines, from the API.
async fn books(s: &Stack, aid: &str) -> Vec<(Value, Vec<Value>)> {
    let mut out = vec![];
    for st in all_of(
        s,
        &format!("/api/v1/bank-accounts/{aid}/statements?limit=100"),
    )
    .await
    {
        let (_, full) = s
            .call(
                Method::GET,
                &format!("/api/v1/statements/{}", st["id"]),
                None,
            )
            .await;
        let lines: Vec<Value> = full["lines"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["in_journal"] == true)
            .cloned()
            .collect();
        out.push((st, lines));
    }
    out
}

fn chars(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// Every format: the file passes its tool, and what the tool read is the API's statements —
/// balances, amounts, dates, references, counterparties, text (within the format's limits).
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn every_format_round_trips_through_an_independent_parser(pool: PgPool) {
    let s = stack(pool.clone()).await;
    let conn = linked(&s, "fake_client_xf").await;
    let (_, c) = s
        .call(Method::GET, &format!("/api/v1/connections/{conn}"), None)
        .await;
    let account = c["accounts"][0].clone();
    let (aid, jid) = (
        account["id"].as_str().unwrap().to_string(),
        account["journal_id"].as_str().unwrap().to_string(),
    );
    // Hostile text on a few lines: formulas, markup, accents, delimiters, control characters.
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM statement_lines WHERE bank_account_id = $1::uuid ORDER BY id LIMIT 3",
    )
    .bind(&aid)
    .fetch_all(&pool)
    .await
    .unwrap();
    for (id, description, payee) in [
        (
            ids[0],
            "=HYPERLINK(\"http://x\",\"y\")",
            "-Straße & Söhne <b>",
        ),
        (
            ids[1],
            "Zürich: café\u{7} -- \"quoted\", line\nbreak",
            "@ACME/Ltd",
        ),
        (ids[2], &"Long text 😀 ".repeat(40) as &str, "Łódź Café"),
    ] {
        sqlx::query("UPDATE statement_lines SET description = $2, payee = $3 WHERE id = $1")
            .bind(id)
            .bind(description)
            .bind(payee)
            .execute(&pool)
            .await
            .unwrap();
    }
    let books = books(&s, &aid).await;
    assert!(books.len() > 10, "statements to export");
    let iban = account["iban"].as_str().map(|i| i.replace(' ', ""));

    for format in FORMATS {
        let (st, ct, body) = download(
            &s,
            &format!("/api/v1/bank-accounts/{aid}/export?format={format}"),
        )
        .await;
        assert_eq!(st, 200, "{format}: {}", String::from_utf8_lossy(&body));
        let want_ct = match format {
            "camt053" => "application/xml",
            "mt940" => "text/plain",
            "ofx" => "application/x-ofx",
            _ => "text/csv",
        };
        assert!(ct.starts_with(want_ct), "{format}: {ct}");
        let got = parsed(format, &body);
        assert_eq!(got.len(), books.len(), "{format}: one statement each");
        let mut previous_closing: Option<Decimal> = None;
        for (p, (st, lines)) in got.iter().zip(&books) {
            let ctx = format!("{format}, statement {}", st["id"]);
            assert_eq!(p["currency"], st["currency"], "{ctx}");
            if let (Some(i), "camt053" | "mt940" | "csv") = (&iban, format) {
                assert_eq!(p["account"].as_str(), Some(i.as_str()), "{ctx}");
            }
            let closing = dec(&st["closing_balance"]);
            assert_eq!(dec(&p["closing"]), closing, "{ctx}");
            let opening = match format {
                // OFX carries no opening balance: the previous statement's closing is it.
                "ofx" => previous_closing.unwrap_or(dec(&st["opening_balance"])),
                _ => dec(&p["opening"]),
            };
            assert_eq!(opening, dec(&st["opening_balance"]), "{ctx}");
            previous_closing = Some(closing);
            let entries = p["entries"].as_array().unwrap();
            let sum: Decimal = entries.iter().map(|e| dec(&e["amount"])).sum();
            assert_eq!(opening + sum, closing, "{ctx}: opening + entries = closing");
            let corrections = dec(&st["corrections"]);
            assert_eq!(
                entries.len(),
                lines.len() + usize::from(!corrections.is_zero()),
                "{ctx}"
            );
            for (e, l) in entries.iter().zip(lines) {
                let ctx = format!("{ctx}, line {}", l["id"]);
                assert_eq!(dec(&e["amount"]), dec(&l["amount"]), "{ctx}");
                assert_eq!(e["date"], l["booking_date"], "{ctx}");
                let reference = l["bank_transaction_id"]
                    .as_str()
                    .or(l["saltedge_transaction_id"].as_str())
                    .unwrap();
                let description = l["description"].as_str().unwrap();
                let payee = l["payee"].as_str();
                match format {
                    "camt053" => {
                        assert_eq!(e["ref"], chars(reference, 35), "{ctx}");
                        assert_eq!(e["name"].as_str(), payee.map(|p| p.trim()), "{ctx}");
                        let want: String = description
                            .trim()
                            .chars()
                            .map(|c| if c.is_control() { ' ' } else { c })
                            .collect();
                        assert_eq!(e["text"], want, "{ctx}");
                        assert_eq!(e["value_date"], l["value_date"], "{ctx}");
                    }
                    "mt940" => {
                        // Bank and payer text inside :86: is free text: no '/', no
                        // runs of '-' (they could fake sub-fields or end the message).
                        let t = sync_engine::export::free_text;
                        assert_eq!(e["ref"], t(reference), "{ctx}");
                        assert_eq!(e["name"].as_str(), payee.map(t).as_deref(), "{ctx}");
                        let text = e["text"].as_str().unwrap();
                        let want = t(description);
                        assert!(
                            !text.is_empty() && want.starts_with(text),
                            "{ctx}: {text:?} is {want:?}, shortened at most"
                        );
                        assert_eq!(e["customer_reference"], l["id"].to_string(), "{ctx}");
                    }
                    "ofx" => {
                        assert_eq!(e["fitid"], l["id"].to_string(), "{ctx}");
                        assert_eq!(e["ref"], chars(reference, 32), "{ctx}");
                        assert_eq!(
                            e["name"].as_str(),
                            payee.map(|p| chars(p.trim(), 32)).as_deref(),
                            "{ctx}"
                        );
                        assert_eq!(e["value_date"], l["value_date"], "{ctx}");
                    }
                    _ => {
                        assert_eq!(e["line_id"], l["id"].to_string(), "{ctx}");
                        assert_eq!(e["ref"], reference, "{ctx}");
                        assert_eq!(e["iban"], l["counterparty_iban"], "{ctx}");
                        // Formula-looking text comes back with its defusing quote, and only then.
                        let defused = description.starts_with(['=', '+', '-', '@']);
                        let text = e["text"].as_str().unwrap();
                        assert_eq!(
                            text,
                            if defused {
                                format!("'{description}")
                            } else {
                                description.to_string()
                            },
                            "{ctx}"
                        );
                        let name = e["name"].as_str();
                        if let Some(p) = payee {
                            let want = if p.starts_with(['=', '+', '-', '@']) {
                                format!("'{p}")
                            } else {
                                p.to_string()
                            };
                            assert_eq!(name, Some(want.as_str()), "{ctx}");
                        }
                    }
                }
            }
        }
        // A journal's export holds its accounts' statements: here, the one account's.
        let (st, _, of_journal) = download(
            &s,
            &format!("/api/v1/journals/{jid}/export?format={format}"),
        )
        .await;
        assert_eq!(st, 200);
        let journal_parsed = parsed(format, &of_journal);
        let strip = |v: &[Value]| -> Vec<Value> {
            v.iter()
                .map(|st| {
                    serde_json::json!([st["account"], st["opening"], st["closing"], st["entries"]])
                })
                .collect()
        };
        assert_eq!(
            strip(&journal_parsed),
            strip(&got),
            "{format}: journal = its account"
        );
    }

    // A period: only the statements that meet it.
    let (from, to) = (
        books[2].0["period_start"].as_str().unwrap().to_string(),
        books[5].0["period_end"].as_str().unwrap().to_string(),
    );
    let want = books
        .iter()
        .filter(|(st, _)| {
            st["period_end"].as_str().unwrap() >= from.as_str()
                && st["period_start"].as_str().unwrap() <= to.as_str()
        })
        .count();
    for format in FORMATS {
        let (st, _, body) = download(
            &s,
            &format!("/api/v1/bank-accounts/{aid}/export?format={format}&from={from}&to={to}"),
        )
        .await;
        assert_eq!(st, 200);
        assert_eq!(
            parsed(format, &body).len(),
            want,
            "{format} from {from} to {to}"
        );
    }
}

/// What a format cannot carry is refused before anything is sent; bad requests get clear
/// errors; another company's account is not found.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn exports_refuse_what_they_cannot_carry(pool: PgPool) {
    let s = stack(pool.clone()).await;
    let conn = linked(&s, "fake_client_xf").await;
    let (_, c) = s
        .call(Method::GET, &format!("/api/v1/connections/{conn}"), None)
        .await;
    let aid = c["accounts"][0]["id"].as_str().unwrap().to_string();
    let path = |q: &str| format!("/api/v1/bank-accounts/{aid}/export?{q}");
    let (st, body) = s.call(Method::GET, &path("format=xls"), None).await;
    assert_eq!(
        (st.as_u16(), body["code"].as_str()),
        (422, Some("invalid_format"))
    );
    let (st, body) = s
        .call(
            Method::GET,
            &path("format=csv&from=2026-02-01&to=2026-01-01"),
            None,
        )
        .await;
    assert_eq!(
        (st.as_u16(), body["code"].as_str()),
        (422, Some("invalid_range"))
    );
    let (st, _) = s
        .call(
            Method::GET,
            &format!(
                "/api/v1/bank-accounts/{}/export?format=csv",
                uuid::Uuid::new_v4()
            ),
            None,
        )
        .await;
    assert_eq!(st, 404);
    // A currency outside ISO 4217 (Salt Edge lists crypto accounts): only CSV carries it.
    sqlx::query("UPDATE bank_accounts SET currency = 'USDT' WHERE id = $1::uuid")
        .bind(&aid)
        .execute(&pool)
        .await
        .unwrap();
    for format in ["camt053", "mt940", "ofx"] {
        let (st, body) = s
            .call(Method::GET, &path(&format!("format={format}")), None)
            .await;
        assert_eq!(st, 422, "{format}");
        assert_eq!(body["code"], "format_cannot_carry", "{format}");
        assert!(body["detail"].as_str().unwrap().contains("USDT"), "{body}");
    }
    let (st, _, body) = download(&s, &path("format=csv")).await;
    assert_eq!(st, 200);
    assert!(String::from_utf8(body).unwrap().contains(",USDT,"));
    // An amount with more decimals than CAMT.053 carries (5): refused, MT940 too long.
    sqlx::query(
        "UPDATE statement_lines SET amount = 1.1234567 WHERE id = (SELECT min(id) FROM statement_lines WHERE bank_account_id = $1::uuid)",
    )
    .bind(&aid)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("UPDATE bank_accounts SET currency = 'EUR' WHERE id = $1::uuid")
        .bind(&aid)
        .execute(&pool)
        .await
        .unwrap();
    let (st, body) = s.call(Method::GET, &path("format=camt053"), None).await;
    assert_eq!(
        (st.as_u16(), body["code"].as_str()),
        (422, Some("format_cannot_carry"))
    );
}
