//! The client against Salt Edge's own material in `conformance/` at the repository root (the
//! simulator reads the same files): the request-signing vectors, a real signed callback and the v5 payload
//! corpus. The simulator is checked against the same files in its own crate.

use std::path::PathBuf;

use saltedge_client::models::*;
use saltedge_client::signature::request_signing_string;
use saltedge_client::{Signer, Verifier};
use serde_json::Value;

fn conformance() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../conformance")
}

fn read_json(path: PathBuf) -> Value {
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_signing_vector_gives_the_exact_string_and_signature() {
    let v = read_json(conformance().join("saltedge-request-signing.json"));
    let signer = Signer::from_pem(v["private_key_pem"].as_str().unwrap()).unwrap();
    let verifier = Verifier::from_pem(v["public_key_pem"].as_str().unwrap()).unwrap();
    let cases = v["cases"].as_array().unwrap();
    assert!(cases.len() >= 7);
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let (exp, method, url, body) = (
            c["expires_at"].as_i64().unwrap(),
            c["method"].as_str().unwrap(),
            c["url"].as_str().unwrap(),
            c["body"].as_str().unwrap(),
        );
        let file = c.get("file_sha256").and_then(Value::as_str);
        let string = request_signing_string(exp, method, url, body, file);
        assert_eq!(string, c["string_to_sign"].as_str().unwrap(), "{name}");
        let want = c["signature"].as_str().unwrap();
        assert_eq!(signer.sign(string.as_bytes()), want, "{name}");
        if file.is_none() {
            assert_eq!(signer.sign_request(exp, method, url, body), want, "{name}");
        }
        verifier.verify(string.as_bytes(), want).unwrap();
        // The old, wrong shape (a trailing bar) must not verify.
        assert!(
            verifier
                .verify(format!("{string}|").as_bytes(), want)
                .is_err(),
            "{name}"
        );
    }
}

#[test]
fn the_real_callback_verifies_and_a_changed_byte_does_not() {
    let v = read_json(conformance().join("saltedge-callback-v5.json"));
    let key = Verifier::from_pem(v["saltedge_public_key_pem"].as_str().unwrap()).unwrap();
    let (url, body, sig) = (
        v["callback_url"].as_str().unwrap(),
        v["body"].as_str().unwrap(),
        v["signature"].as_str().unwrap(),
    );
    key.verify_callback(url, body.as_bytes(), sig).unwrap();
    assert!(
        key.verify_callback(url.trim_end_matches('/'), body.as_bytes(), sig)
            .is_err(),
        "the URL is signed exactly as registered"
    );
    assert!(key
        .verify_callback(url, body.replacen('5', "6", 1).as_bytes(), sig)
        .is_err());
    assert!(key
        .verify_callback(&url.replace("success", "fail"), body.as_bytes(), sig)
        .is_err());
    assert!(key.verify_callback(url, body.as_bytes(), "").is_err());
    assert!(key
        .verify_callback(url, body.as_bytes(), "not base64!")
        .is_err());
    let parsed: CallbackBody = serde_json::from_str(body).unwrap();
    assert_eq!(parsed.data.connection_id, "349600516445047165");
    assert_eq!(parsed.data.stage, None);
}

/// Parses one corpus file by its name; panics with the file name on failure.
fn parse_corpus_file(name: &str, text: &str) {
    let kind = name.split('.').next().unwrap();
    let r: Result<(), serde_json::Error> = match kind {
        "accounts-list" => serde_json::from_str::<Envelope<Vec<Account>>>(text).map(|e| {
            for a in &e.data {
                a.extra_typed()
                    .unwrap_or_else(|err| panic!("{name}: account extra: {err}"));
            }
        }),
        k if k.starts_with("callback-") => serde_json::from_str::<CallbackBody>(text).map(drop),
        "connect-session-create" => {
            serde_json::from_str::<Envelope<ConnectSession>>(text).map(drop)
        }
        "connection-show" => serde_json::from_str::<Envelope<Connection>>(text).map(drop),
        "connections-list" => serde_json::from_str::<Envelope<Vec<Connection>>>(text).map(drop),
        "customer-show" => serde_json::from_str::<Envelope<Customer>>(text).map(drop),
        "customer-delete" => serde_json::from_str::<Envelope<RemovedCustomer>>(text).map(drop),
        k if k.starts_with("error-") => {
            serde_json::from_str::<saltedge_client::error::ErrorBody>(text).map(drop)
        }
        "provider-show" => serde_json::from_str::<Provider>(text).map(drop),
        "transaction" => serde_json::from_str::<Transaction>(text).map(|t| {
            t.extra_typed()
                .unwrap_or_else(|err| panic!("{name}: extra: {err}"));
        }),
        "transactions-list" | "transactions-pending" => {
            serde_json::from_str::<Envelope<Vec<Transaction>>>(text).map(|e| {
                for t in &e.data {
                    t.extra_typed()
                        .unwrap_or_else(|err| panic!("{name}: extra: {err}"));
                }
            })
        }
        other => {
            panic!("{name}: no parser for payload kind {other:?}; teach this test the new kind")
        }
    };
    r.unwrap_or_else(|e| panic!("{name}: {e}"));
}

#[test]
fn the_client_parses_every_file_of_the_payload_corpus() {
    let dir = conformance().join("saltedge-v5-payloads");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        parse_corpus_file(&name, &std::fs::read_to_string(&path).unwrap());
        n += 1;
    }
    assert!(n >= 20, "only {n} payload files found in {}", dir.display());
}

#[test]
fn corpus_values_are_read_exactly() {
    let dir = conformance().join("saltedge-v5-payloads");
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();

    let txs: Envelope<Vec<Transaction>> =
        serde_json::from_str(&read("transactions-list.1.json")).unwrap();
    assert_eq!(txs.data[0].amount.to_string(), "-200.0");
    assert_eq!(
        txs.data[0]
            .extra_typed()
            .unwrap()
            .original_amount
            .unwrap()
            .to_string(),
        "-3974.60"
    );
    assert_eq!(txs.meta.unwrap().next_id.as_deref(), Some("990"));
    let t2: Envelope<Vec<Transaction>> =
        serde_json::from_str(&read("transactions-list.2.json")).unwrap();
    assert_eq!(t2.data[0].amount.to_string(), "10000");

    // A real connection that reached stage `finish` and failed.
    let c: Envelope<Connection> = serde_json::from_str(&read("connection-show.1.json")).unwrap();
    match c.data.last_outcome() {
        AttemptOutcome::Failed { class, .. } => assert_eq!(class, "ProviderAccessNotGranted"),
        other => panic!("expected a failed attempt, got {other:?}"),
    }
    assert_eq!(
        c.data
            .last_attempt
            .as_ref()
            .unwrap()
            .last_stage
            .as_ref()
            .unwrap()
            .name,
        "finish"
    );
    let ok: Envelope<Vec<Connection>> =
        serde_json::from_str(&read("connections-list.2.json")).unwrap();
    assert!(matches!(
        ok.data[0].last_outcome(),
        AttemptOutcome::Succeeded { .. }
    ));

    // The credit card with its available balance and limit.
    let accounts: Envelope<Vec<Account>> =
        serde_json::from_str(&read("accounts-list.1.json")).unwrap();
    let card = accounts
        .data
        .iter()
        .find(|a| a.nature == "credit_card")
        .unwrap();
    assert_eq!(card.balance.to_string(), "-2008.13");
    let extra = card.extra_typed().unwrap();
    assert_eq!(extra.credit_limit.unwrap().to_string(), "10000.0");
    assert_eq!(extra.available_amount.unwrap().to_string(), "7978.87");
    assert_eq!(extra.blocked_amount.unwrap().to_string(), "13.0");

    // Callbacks: milliseconds or not, with or without `stage`, interactive fields kept.
    let s1: CallbackBody = serde_json::from_str(&read("callback-success.1.json")).unwrap();
    assert_eq!(s1.data.stage.as_deref(), Some("finish"));
    assert_eq!(s1.meta.time.timestamp_subsec_millis(), 233);
    let i: CallbackBody = serde_json::from_str(&read("callback-interactive.1.json")).unwrap();
    assert_eq!(
        i.data.html.as_deref(),
        Some("<p>Please select accounts from the list:</p>")
    );
    assert_eq!(
        i.data.interactive_fields_names.as_deref(),
        Some(&["accounts".to_string()][..])
    );
    assert!(i.data.session_expires_at.is_some());
    assert_eq!(
        i.data.interactive_fields_options.as_ref().unwrap()["accounts"][1]["option_value"],
        "service_acc_guid2"
    );

    // The German bank's transaction: payee only in `payee_information`, text with a leading space.
    let t: Transaction = serde_json::from_str(&read("transaction.1.fragment.json")).unwrap();
    assert_eq!(t.description, " garantierte Debitkartenzahlung");
    assert_eq!(
        t.extra_typed()
            .unwrap()
            .account_balance_snapshot
            .unwrap()
            .to_string(),
        "100.00"
    );
}

#[test]
fn nulls_and_missing_lists_are_tolerated() {
    let t: Transaction = serde_json::from_str(
        r#"{"id":"1","account_id":"2","status":"posted","made_on":"2024-01-02","amount":-1,"currency_code":"EUR",
            "description":null,"category":null,"mode":null,"duplicated":null,"extra":null}"#,
    )
    .unwrap();
    assert_eq!(t.description, "");
    let a: Attempt =
        serde_json::from_str(r#"{"id":"1","fetch_scopes":null,"finished":null}"#).unwrap();
    assert!(a.fetch_scopes.is_empty());
    assert_eq!(a.outcome(), AttemptOutcome::InProgress);
}
