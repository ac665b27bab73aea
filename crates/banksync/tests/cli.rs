//! The `banksync` binary as an operator runs it, against Postgres and the simulator.

use std::path::PathBuf;
// tokio's Command: the simulator runs on this test's runtime and must keep answering.
use std::time::Duration;
use tokio::process::Command;

use saltedge_sim::{FaultAction, FaultRule, SimConfig, Simulator};
use sqlx::PgPool;
use sync_engine::{companies, connections};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The test database's URL: the harness's server with this test's database name.
fn db_url(pool: &PgPool) -> String {
    let mut url = url::Url::parse(&std::env::var("DATABASE_URL").expect("DATABASE_URL")).unwrap();
    url.set_path(&format!(
        "/{}",
        pool.connect_options().get_database().unwrap()
    ));
    url.to_string()
}

fn banksync(pool: &PgPool, sim: &Simulator) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_banksync"));
    c.current_dir(workspace())
        .env("DATABASE_URL", db_url(pool))
        .env("BANKSYNC_CONFIG_DIR", workspace().join("config"))
        // The simulator's layer (config/simulator.toml): its keys, set explicitly.
        .env("BANKSYNC_ENV", "simulator")
        .env("BANKSYNC__SALTEDGE__BASE_URL", sim.api_base().as_str())
        .env("BANKSYNC__SALTEDGE__SECRET", "sim-secret")
        .env("RUST_LOG", "warn");
    c
}

/// A connection seeded at the simulator for `name` and known locally for a new company:
/// (its Salt Edge id, the local record).
async fn seeded(pool: &PgPool, sim: &Simulator, name: &str) -> (String, connections::Connection) {
    let (_, se_conn) = sim.seed_connection(name, "fake_client_xf");
    let company = companies::create(pool, &format!("{name} Ltd"))
        .await
        .unwrap();
    let se = saltedge_client::Client::new(banksync_testkit::signed_config(sim))
        .unwrap()
        .show_connection(&se_conn)
        .await
        .unwrap();
    let conn = connections::upsert_from_saltedge(pool, company.id, &se)
        .await
        .unwrap();
    (se_conn, conn)
}

async fn line_count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM statement_lines")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn sigkill_mid_sync_then_restart_loses_and_doubles_nothing(pool: PgPool) {
    let mut cfg = SimConfig::default();
    cfg.data.transactions_per_account = 2500;
    let sim = Simulator::start(cfg).await.unwrap();
    let (se_conn, conn) = seeded(&pool, &sim, "kill").await;
    // A slow bank, so that the kill lands between pages.
    sim.set_faults(vec![
        FaultRule::new(FaultAction::Delay(400)).on_path("/transactions")
    ]);

    let mut child = banksync(&pool, &sim)
        .args(["sync", "--connection", &conn.id.to_string()])
        .spawn()
        .unwrap();
    let mut seen = 0;
    for _ in 0..200 {
        seen = line_count(&pool).await;
        if seen > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(seen > 0, "the sync started writing");
    child.kill().await.unwrap(); // SIGKILL
    let status = child.wait().await.unwrap();
    assert!(!status.success());
    let after_kill = line_count(&pool).await;
    assert!(
        after_kill < 5000 + 6,
        "killed mid-sync ({after_kill} lines)"
    );

    sim.set_faults(vec![]);
    let out = banksync(&pool, &sim)
        .args(["sync", "--connection", &se_conn])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("succeeded"), "{printed}");

    let truth = sim.ground_truth(&se_conn).unwrap();
    let mut expected: Vec<String> = truth
        .accounts
        .iter()
        .flat_map(|a| a.posted.iter().chain(&a.pending).map(|t| t.id.clone()))
        .collect();
    expected.sort();
    // Posted transactions are lines, pending ones open pending transactions.
    let mut got: Vec<String> =
        sqlx::query_scalar("SELECT saltedge_transaction_id FROM statement_lines UNION ALL SELECT saltedge_transaction_id FROM pending_transactions WHERE state = 'pending'")
            .fetch_all(&pool)
            .await
            .unwrap();
    got.sort();
    assert_eq!(got, expected, "each transaction exactly once");
    let runs: Vec<String> = sqlx::query_scalar("SELECT status FROM sync_runs ORDER BY started_at")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(
        runs,
        ["failed", "succeeded"],
        "the killed run is closed as interrupted"
    );
}

#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn cli_errors_name_the_fix(pool: PgPool) {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let out = banksync(&pool, &sim)
        .args(["sync", "--connection", "123456789012345678"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("link it through the API first, or pass --company"),
        "{err}"
    );

    // Adoption with a key Salt Edge does not have: the refusal is named, not "unknown".
    let (_, se_conn) = sim.seed_connection("adopt@x.example", "fake_client_xf");
    companies::create(&pool, "Adopter").await.unwrap();
    let out = banksync(&pool, &sim)
        .args(["sync", "--connection", &se_conn, "--company", "Adopter"])
        .env(
            "BANKSYNC__SALTEDGE__PRIVATE_KEY_FILE",
            workspace().join("crates/saltedge-sim/keys/simulator_private.pem"),
        )
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("SignatureNotMatch") && !err.contains("does not know"),
        "{err}"
    );
    let out = banksync(&pool, &sim)
        .args([
            "sync",
            "--connection",
            "999999999999999999",
            "--company",
            "Adopter",
        ])
        .output()
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("Salt Edge does not know connection 999999999999999999"));
    // A good adoption records the company's Salt Edge customer.
    let out = banksync(&pool, &sim)
        .args(["sync", "--connection", &se_conn, "--company", "Adopter"])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ident: String = sqlx::query_scalar("SELECT identifier FROM saltedge_customers")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(ident, "adopt@x.example");

    let out = banksync(&pool, &sim)
        .args(["token", "create", "--company", "Nobody"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("banksync company create"));

    let out = banksync(&pool, &sim)
        .args(["company", "create", "Somebody"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    let out = banksync(&pool, &sim)
        .args(["token", "create", "--company", "Somebody"])
        .output()
        .await
        .unwrap();
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(token.starts_with("bs_") && token.len() > 60);
    let stored: String = sqlx::query_scalar("SELECT token_hash FROM api_tokens")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_ne!(stored, token, "only the hash is stored");

    // config check: a missing secret is named with its fix, and the secret is never printed.
    let out = banksync(&pool, &sim)
        .args(["config", "check"])
        .env_remove("BANKSYNC__SALTEDGE__SECRET")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("export BANKSYNC__SALTEDGE__SECRET"));
    let out = banksync(&pool, &sim)
        .args(["config", "check"])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("sim-secret"));
}

/// `serve` refuses the simulator's public keys and secret unless the configuration says
/// Salt Edge is the simulator, refuses a secret written into TOML and keys under 2048 bits.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn serve_refuses_unsafe_configurations(pool: PgPool) {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let refuse = |out: std::process::Output, what: &str| {
        assert!(!out.status.success(), "{what}: started");
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(
            err.contains("refusing to serve") && err.contains(what),
            "{what}: {err}"
        );
        assert!(!err.contains("sim-secret"), "the secret is never printed");
    };
    let serve = || {
        let mut c = banksync(&pool, &sim);
        c.args(["serve"])
            .env("BANKSYNC__SALTEDGE__SIMULATOR", "false")
            .env("BANKSYNC__SERVER__BIND", "127.0.0.1:0");
        c
    };
    refuse(
        serve().output().await.unwrap(),
        "saltedge.private_key_file is the bundled client test key",
    );
    refuse(
        serve().output().await.unwrap(),
        "the Salt Edge secret is the simulator's",
    );
    refuse(
        serve().output().await.unwrap(),
        "saltedge.callback_public_key_v6_file is the simulator's v6 callback key",
    );

    // A secret in TOML, in a config folder of its own.
    let dir = std::env::temp_dir().join(format!("banksync-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let default = std::fs::read_to_string(workspace().join("config/default.toml")).unwrap();
    std::fs::write(
        dir.join("default.toml"),
        default.replace("secret_file = \"\"", "secret = \"from-toml\""),
    )
    .unwrap();
    refuse(
        serve()
            .env("BANKSYNC_CONFIG_DIR", &dir)
            .env_remove("BANKSYNC__SALTEDGE__SECRET")
            .output()
            .await
            .unwrap(),
        "contains a secret (saltedge.secret",
    );

    // A 1024-bit signing key.
    let weak = dir.join("weak.pem");
    let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 1024).unwrap();
    std::fs::write(
        &weak,
        rsa::pkcs8::EncodePrivateKey::to_pkcs8_pem(&key, Default::default())
            .unwrap()
            .as_bytes(),
    )
    .unwrap();
    let out = serve()
        .env("BANKSYNC__SALTEDGE__SIMULATOR", "true")
        .env("BANKSYNC__SALTEDGE__PRIVATE_KEY_FILE", &weak)
        .output()
        .await
        .unwrap();
    refuse(out, "under 2048 bits");
    std::fs::remove_dir_all(&dir).ok();
}

/// A configuration that is production-safe at heart: the defaults name nothing of the
/// simulator's; a v5-only configuration with real keys passes `config check` without any v6
/// setting; a bundled key is recognised by its material in any slot and encoding; the
/// simulator flag is refused with a Salt Edge that is not the simulator.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn production_defaults_are_safe(pool: PgPool) {
    use rsa::pkcs1::EncodeRsaPublicKey;
    use rsa::pkcs8::{DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding};
    let dir = std::env::temp_dir().join(format!("banksync-prod-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let default = std::fs::read_to_string(workspace().join("config/default.toml")).unwrap();
    for bundled in ["saltedge-sim", "sim-app-id", "sim-secret", "8700"] {
        assert!(!default.contains(bundled), "default.toml names {bundled}");
    }
    // Our own request key, and a stand-in for Salt Edge's v5 callback key.
    let ours = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    let theirs = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    let (key, callback) = (dir.join("ours.pem"), dir.join("saltedge.pem"));
    std::fs::write(&key, ours.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes()).unwrap();
    std::fs::write(
        &callback,
        theirs
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap(),
    )
    .unwrap();
    // Only the configuration folder, the database and the operator's own settings: no
    // simulator layer, no v6 setting.
    let production = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_banksync"));
        c.current_dir(&dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", db_url(&pool))
            .env("BANKSYNC_CONFIG_DIR", workspace().join("config"))
            .env("BANKSYNC__SALTEDGE__APP_ID", "live-app-id")
            .env("BANKSYNC__SALTEDGE__SECRET", "live-secret")
            .env("BANKSYNC__SALTEDGE__PRIVATE_KEY_FILE", &key)
            .env("BANKSYNC__SALTEDGE__CALLBACK_PUBLIC_KEY_FILE", &callback)
            .env(
                "BANKSYNC__WEBHOOKS__SECRET_KEY",
                "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=",
            )
            .env("RUST_LOG", "warn")
            .args(["config", "check"]);
        c
    };
    // Webhook secrets are sealed with a key of the operator's: without one, no start.
    let out = production()
        .env_remove("BANKSYNC__WEBHOOKS__SECRET_KEY")
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("webhooks.secret_key is not set"), "{text}");
    let out = production()
        .env(
            "BANKSYNC__WEBHOOKS__SECRET_KEY",
            "YmFua3N5bmMtZGV2ZWxvcG1lbnQtd2ViaG9vay1rZXk=",
        )
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("the public development key"), "{text}");

    let out = production().output().await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "v5-only real config: {text}");
    assert!(text.contains("v6 callbacks are refused"), "{text}");
    assert!(!text.contains("live-secret"));

    // The same on v6 needs Salt Edge's v6 key.
    let out = production()
        .env(
            "BANKSYNC__SALTEDGE__BASE_URL",
            "https://www.saltedge.com/api/v6/",
        )
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!out.status.success());
    assert!(
        text.contains("callback_public_key_v6_file is not set"),
        "{text}"
    );

    // The simulator's callback key, re-encoded (PKCS#1, CRLF), in the v6 slot.
    let sim_public =
        rsa::RsaPublicKey::from_public_key_pem(saltedge_sim::keys::SIMULATOR_PUBLIC_PEM).unwrap();
    let reencoded = dir.join("reencoded.pem");
    std::fs::write(
        &reencoded,
        sim_public
            .to_pkcs1_pem(LineEnding::CRLF)
            .unwrap()
            .as_bytes(),
    )
    .unwrap();
    let out = production()
        .env(
            "BANKSYNC__SALTEDGE__CALLBACK_PUBLIC_KEY_V6_FILE",
            &reencoded,
        )
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        !out.status.success(),
        "re-encoded simulator key accepted: {text}"
    );
    assert!(
        text.contains("callback_public_key_v6_file is the simulator's callback key"),
        "{text}"
    );

    // The simulator flag with the real Salt Edge (or any host that is not the simulator).
    for url in [
        "https://www.saltedge.com/api/v5/",
        "http://10.0.0.7:8700/api/v5/",
        "http://simulator.evil.example/api/v5/",
    ] {
        let out = production()
            .env("BANKSYNC__SALTEDGE__BASE_URL", url)
            .env("BANKSYNC__SALTEDGE__SIMULATOR", "true")
            .output()
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(!out.status.success(), "{url}: {text}");
        assert!(text.contains("is not the simulator"), "{url}: {text}");
    }
    // On loopback it is accepted.
    let out = production()
        .env(
            "BANKSYNC__SALTEDGE__BASE_URL",
            "http://127.0.0.1:8700/api/v5/",
        )
        .env("BANKSYNC__SALTEDGE__SIMULATOR", "true")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// `banksync bench ingest` runs end to end on a small history (its simulator child, its
/// scratch database) and prints its figures: a benchmark that no longer starts is caught
/// here, not when someone needs the numbers.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn bench_ingest_runs_and_reports(pool: PgPool) {
    let report = bench_report(&pool, &["ingest", "--transactions", "300"]).await;
    assert!(
        report["first_import_rows_per_s"]
            .as_f64()
            .is_some_and(|r| r > 0.0),
        "{report}"
    );
    assert!(report["pages"].as_i64().is_some_and(|p| p >= 1), "{report}");
}

/// Runs `banksync bench <args>` (with a simulator) and reads the JSON report it prints,
/// failing with its output if it does not succeed.
async fn bench_report(pool: &PgPool, args: &[&str]) -> serde_json::Value {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let out = banksync(pool, &sim)
        .arg("bench")
        .args(args)
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&text[text.find('{').unwrap_or(0)..]).expect("a JSON report")
}

/// `banksync bench load` runs end to end with a few requests: every signed callback is
/// accepted and stored once, every list request answered (its own HTTP client reads each
/// response whole, so a failure here is the server's or the client's, counted).
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn bench_load_runs_and_reports(pool: PgPool) {
    let report = bench_report(
        &pool,
        &[
            "load",
            "--callbacks",
            "200",
            "--list-requests",
            "50",
            "--concurrency",
            "8",
        ],
    )
    .await;
    assert_eq!(report["callbacks"]["ok"], 200, "{report}");
    assert_eq!(report["callbacks"]["failed"], 0, "{report}");
    assert_eq!(report["callbacks_stored_once"], true, "{report}");
    assert_eq!(report["statement_lines_list"]["ok"], 50, "{report}");
    assert_eq!(report["statement_lines_list"]["failed"], 0, "{report}");
}

/// `banksync demo --api-version 6` links, syncs and summarises over Salt Edge v6 (requests,
/// Connect, v6 callbacks): every transaction the simulator holds arrives.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn the_demo_runs_on_salt_edge_v6(pool: PgPool) {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let out = banksync(&pool, &sim)
        .args(["demo", "--api-version", "6", "--exit", "--port", "0"])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("/api/v6/ (API v6)"), "{text}");
    let counts = text
        .lines()
        .find(|l| l.contains("the simulator holds"))
        .expect("the summary's count line");
    let numbers: Vec<u64> = counts
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    assert!(
        numbers.len() >= 2 && numbers[0] > 0 && numbers[0] == numbers[1],
        "{counts}"
    );
}

/// `banksync version-check` with the v6 root configured: one JSON line per connection and
/// a summary.
#[sqlx::test(migrator = "sync_engine::MIGRATOR")]
async fn version_check_reports_each_connection(pool: PgPool) {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let (se_conn, _) = seeded(&pool, &sim, "move").await;
    let out = banksync(&pool, &sim)
        .env("BANKSYNC__SALTEDGE__BASE_URL", sim.api_base_v6().as_str())
        .arg("version-check")
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}\n{err}");
    let row: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(
        (row["saltedge_id"].as_str(), row["outcome"].as_str()),
        (Some(se_conn.as_str()), Some("over"))
    );
    assert!(
        err.contains("Salt Edge API v6: 1 connection(s) carry over"),
        "{err}"
    );
}
