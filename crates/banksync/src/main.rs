//! `banksync`: the command-line entry point. Each subcommand lives in `commands/`.

mod bundled_keys;
mod commands;
mod db;
mod settings;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "banksync",
    version,
    about = "Keeps accounting bank journals in step with bank accounts through Salt Edge"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the Salt Edge simulator as a standalone HTTP server.
    Simulator(commands::simulator::Args),
    /// Apply the database migrations.
    Migrate(commands::migrate::Args),
    /// Run the REST API, callback receivers and job worker.
    Serve(commands::serve::Args),
    /// Manage companies (tenants).
    Company(commands::admin::CompanyArgs),
    /// Manage API tokens.
    Token(commands::admin::TokenArgs),
    /// Configuration tools: `config check`.
    Config(commands::config::Args),
    /// Job history (newest first); dead jobs; re-run one.
    Jobs(commands::admin::JobsArgs),
    /// The audit log: state-changing API calls and admin commands.
    Audit(commands::admin::AuditArgs),
    /// Sync one connection now and print what it did.
    Sync(commands::sync::Args),
    /// Before moving to another Salt Edge API version: which connections carry over.
    VersionCheck(commands::version_check::Args),
    /// Benchmarks that print JSON figures.
    Bench(commands::bench::Args),
    /// Offline tour: simulator, a linked bank through the Connect page, data fetched.
    Demo(commands::demo::Args),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // The demo talks to a person: only warnings unless RUST_LOG asks for more.
    let default_level = if matches!(cli.command, Command::Demo(_) | Command::Bench(_)) {
        "warn"
    } else {
        "info"
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default_level.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Simulator(a) => commands::simulator::run(a).await,
        Command::Migrate(a) => commands::migrate::run(a).await,
        Command::Demo(a) => commands::demo::run(a).await,
        Command::Sync(a) => commands::sync::run(a).await,
        Command::VersionCheck(a) => commands::version_check::run(a).await,
        Command::Serve(a) => commands::serve::run(a).await,
        Command::Company(a) => commands::admin::company(a).await,
        Command::Token(a) => commands::admin::token(a).await,
        Command::Jobs(a) => commands::admin::jobs(a).await,
        Command::Audit(a) => commands::admin::audit_log(a).await,
        Command::Config(a) => commands::config::run(a).await,
        Command::Bench(a) => commands::bench::run(a).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
