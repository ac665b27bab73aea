use std::net::SocketAddr;

use anyhow::Context;
use saltedge_sim::{ClientStatus, DataConfig, FaultRule, SimConfig, Simulator};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 8700)]
    pub port: u16,
    #[arg(long, default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,
    /// Seed for the generated bank data.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Where callbacks go, e.g. http://127.0.0.1:8080/callbacks/saltedge/
    #[arg(long)]
    pub callback_base_url: Option<url::Url>,
    /// PEM file with the client's public key (defaults to the test key pair).
    #[arg(long)]
    pub client_public_key: Option<std::path::PathBuf>,
    /// test: signatures checked when sent; live: every request must be signed.
    #[arg(long, default_value = "test", value_parser = ["pending", "test", "live"])]
    pub status: String,
    #[arg(long, default_value_t = 2)]
    pub accounts: u32,
    #[arg(long, default_value_t = 40)]
    pub transactions: u32,
    /// Pending transactions per account.
    #[arg(long, default_value_t = 3)]
    pub pending: u32,
    /// Genuine look-alike twins per account (Salt Edge's `possible_duplicate` hint).
    #[arg(long, default_value_t = 1)]
    pub twins: u32,
    /// Transactions re-issued under a new id on each fetch.
    #[arg(long, default_value_t = 1)]
    pub reissued: u32,
    /// New posted transactions per account on each fetch after the first.
    #[arg(long, default_value_t = 4)]
    pub new_per_fetch: u32,
    /// Days of history the transactions spread over.
    #[arg(long, default_value_t = 90)]
    pub history_days: u32,
    /// Fault rule, repeatable: ACTION[@path][#skip][xtimes][%fraction], where ACTION is
    /// drop, delay=MS, an HTTP status or an error class. E.g. 500@transactions#2x1.
    #[arg(long = "fault")]
    pub faults: Vec<String>,
}

pub async fn run(a: Args) -> anyhow::Result<()> {
    let mut cfg = SimConfig {
        callback_base_url: a.callback_base_url,
        client_status: match a.status.as_str() {
            "pending" => ClientStatus::Pending,
            "live" => ClientStatus::Live,
            _ => ClientStatus::Test,
        },
        data: DataConfig {
            seed: a.seed,
            accounts_per_connection: a.accounts,
            transactions_per_account: a.transactions,
            pending_per_account: a.pending,
            twins_per_account: a.twins,
            reissued_per_fetch: a.reissued,
            history_days: a.history_days,
            new_transactions_per_fetch: a.new_per_fetch,
            ..Default::default()
        },
        ..Default::default()
    };
    if let Some(path) = a.client_public_key {
        cfg.client_public_key_pem = Some(
            std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?,
        );
    }
    for f in &a.faults {
        cfg.faults
            .push(FaultRule::parse_cli(f).map_err(anyhow::Error::msg)?);
    }
    let (app_id, secret) = (cfg.app_id.clone(), cfg.secret.clone());
    let sim = Simulator::start_on(cfg, SocketAddr::new(a.host, a.port))
        .await
        .context("cannot start the simulator")?;
    println!("Salt Edge simulator listening");
    println!("  API base:     {}", sim.api_base());
    println!("  App-id:       {app_id}   Secret: {secret}   (test credentials)");
    println!(
        "  ground truth: {}sim/ground_truth/<connection_id>",
        sim.base_url()
    );
    println!("Ctrl-C stops it.");
    tokio::signal::ctrl_c().await?;
    sim.stop().await;
    Ok(())
}
