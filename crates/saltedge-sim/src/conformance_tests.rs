//! The simulator against `conformance/` at the repository root (the client reads the same files): its own
//! signing code reproduces every request-signing vector exactly, and what it serialises
//! uses only keys that real Salt Edge payloads carry.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;

use crate::sigs::{request_string, ClientKey, SaltEdgeKey};
use crate::world::{DataConfig, World};

fn conformance() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../conformance")
}

fn read(rel: &str) -> Value {
    let p = conformance().join(rel);
    serde_json::from_str(
        &std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
    )
    .unwrap()
}

#[test]
fn the_simulator_signs_and_verifies_every_vector_by_its_own_code() {
    let v = read("saltedge-request-signing.json");
    let signer = SaltEdgeKey::from_pem(v["private_key_pem"].as_str().unwrap()).unwrap();
    let key = ClientKey::from_pem(v["public_key_pem"].as_str().unwrap()).unwrap();
    for c in v["cases"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let s = request_string(
            &c["expires_at"].as_i64().unwrap().to_string(),
            c["method"].as_str().unwrap(),
            c["url"].as_str().unwrap(),
            c["body"].as_str().unwrap(),
            c.get("file_sha256").and_then(Value::as_str),
        );
        assert_eq!(s, c["string_to_sign"].as_str().unwrap(), "{name}");
        let sig = c["signature"].as_str().unwrap();
        assert_eq!(signer.sign(s.as_bytes()), sig, "{name}");
        assert!(key.verifies(&s, sig), "{name}");
        assert!(
            !key.verifies(&format!("{s}|"), sig),
            "{name}: a trailing bar must not verify"
        );
    }
}

fn keys_of(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

/// Every key the simulator writes at this level must appear in the real payload's object.
fn assert_subset(what: &str, sim: &Value, real: &[&Value]) {
    let real_keys: BTreeSet<String> = real.iter().flat_map(|r| keys_of(r)).collect();
    let extra: Vec<_> = keys_of(sim).difference(&real_keys).cloned().collect();
    assert!(
        extra.is_empty(),
        "{what}: the simulator invents keys {extra:?}"
    );
}

#[test]
fn the_simulators_objects_use_only_keys_real_payloads_have() {
    let dir = "saltedge-v5-payloads/";
    let conn_real = read(&format!("{dir}connection-show.1.json"));
    let conns_real = read(&format!("{dir}connections-list.2.json"));
    let accounts_real = read(&format!("{dir}accounts-list.1.json"));
    let txs_real = read(&format!("{dir}transactions-list.1.json"));
    let tx_real = read(&format!("{dir}transaction.1.fragment.json"));
    let customer_real = read(&format!("{dir}customer-show.1.json"));

    let mut w = World::new(DataConfig {
        id_base: Some(100_000_000_000_000_000),
        ..Default::default()
    });
    let customer = w.create_customer("shape").unwrap();
    let conn_id = w
        .new_connection_shell(&customer.id, "fake_client_xf", Some("username"), true, None)
        .unwrap();
    w.succeed(
        &conn_id,
        Some(&crate::wire::ConsentRequest::standard()),
        false,
        false,
    )
    .unwrap();
    let rec = w.conn(&conn_id).unwrap();

    let conn = serde_json::to_value(&rec.conn).unwrap();
    let real_conns: Vec<&Value> = vec![&conn_real["data"], &conns_real["data"][0]];
    assert_subset("connection", &conn, &real_conns);
    let real_attempts: Vec<&Value> = real_conns.iter().map(|c| &c["last_attempt"]).collect();
    assert_subset("last_attempt", &conn["last_attempt"], &real_attempts);
    let real_stages: Vec<&Value> = real_attempts.iter().map(|a| &a["last_stage"]).collect();
    assert_subset(
        "last_stage",
        &conn["last_attempt"]["last_stage"],
        &real_stages,
    );

    let real_accounts: Vec<&Value> = accounts_real["data"].as_array().unwrap().iter().collect();
    for a in &rec.accounts {
        assert_subset("account", &serde_json::to_value(a).unwrap(), &real_accounts);
    }
    let mut real_txs: Vec<&Value> = txs_real["data"].as_array().unwrap().iter().collect();
    real_txs.push(&tx_real);
    for t in rec.posted.iter().take(5) {
        assert_subset("transaction", &serde_json::to_value(t).unwrap(), &real_txs);
    }
    assert_subset(
        "customer",
        &serde_json::to_value(&customer).unwrap(),
        &[&customer_real["data"]],
    );
}
