//! `banksync config check`: loads the layered configuration and checks every key, URL and
//! PEM file, saying what is wrong and how to fix it. Secrets are never printed.

use crate::settings::Settings;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(clap::Subcommand)]
pub enum Cmd {
    /// Validate the configuration (exit status 1 when something is wrong).
    Check,
}

struct Report {
    errors: usize,
}

impl Report {
    fn ok(&self, what: &str) {
        println!("  ✓ {what}");
    }
    fn warn(&self, what: &str) {
        println!("  ! {what}");
    }
    fn err(&mut self, what: &str) {
        self.errors += 1;
        println!("  ✗ {what}");
    }
}

fn local(url: &url::Url) -> bool {
    matches!(
        url.host_str(),
        Some("127.0.0.1") | Some("localhost") | Some("::1")
    )
}

pub async fn run(a: Args) -> anyhow::Result<()> {
    let Cmd::Check = a.cmd;
    let dir = std::env::var("BANKSYNC_CONFIG_DIR").unwrap_or_else(|_| "config".into());
    println!("checking configuration from {dir}/ (+ BANKSYNC_ENV file and BANKSYNC__* variables)");
    let mut r = Report { errors: 0 };
    let s = match Settings::load() {
        Ok(s) => {
            r.ok("configuration files parse and every required key is present");
            s
        }
        Err(e) => {
            r.err(&format!("{e:#}"));
            anyhow::bail!("fix the configuration above");
        }
    };
    // The same checks `serve` refuses to start on.
    for reason in s.unsafe_reasons() {
        r.err(&reason);
    }
    match url::Url::parse(s.database.url.expose()) {
        Ok(u) if matches!(u.scheme(), "postgres" | "postgresql") => {
            r.ok("database.url is a Postgres URL")
        }
        _ => r.err("database.url is not a postgres:// URL"),
    }
    if s.saltedge.base_url.scheme() != "https" && !local(&s.saltedge.base_url) {
        r.err("saltedge.base_url must be https (https://www.saltedge.com/api/v5/)");
    } else {
        r.ok(&format!("saltedge.base_url {}", s.saltedge.base_url));
    }
    if s.saltedge.app_id.trim().is_empty() {
        r.err("saltedge.app_id is empty");
    } else {
        r.ok("saltedge.app_id is set");
    }
    match s.saltedge_secret() {
        Ok(x) if !x.is_empty() => r.ok("Salt Edge secret is set (not shown)"),
        Ok(_) => r.err("the Salt Edge secret is empty"),
        Err(e) => r.err(&format!("{e:#}")),
    }
    match s.signer() {
        Ok(Some(_)) => {
            r.ok("saltedge.private_key_file is an RSA private key (requests will be signed)")
        }
        Ok(None) => r.warn(
            "no saltedge.private_key_file: requests are not signed, which only test clients may do",
        ),
        Err(e) => r.err(&format!("{e:#}")),
    }
    match s.callback_verifier() {
        Ok(_) => r.ok("saltedge.callback_public_key_file is an RSA public key"),
        Err(e) => r.err(&format!("{e:#}")),
    }
    // A bad or missing v6 key where v6 is used is among the unsafe reasons above.
    match s.callback_verifier_v6() {
        Ok(Some(_)) => r.ok("saltedge.callback_public_key_v6_file is an RSA public key"),
        Ok(None) => r.ok("no v6 callback key: v6 callbacks are refused"),
        Err(_) => {}
    }
    match s.callback_urls() {
        Ok(urls) => {
            for c in urls.all() {
                let b = url::Url::parse(&c.registered).expect("checked when built");
                if b.scheme() == "https" {
                    r.ok(&format!("{} callbacks at {}", c.kind, c.registered));
                } else if local(&b) {
                    r.warn(&format!("{} callbacks at {}: fine for the simulator; live Salt Edge clients need https", c.kind, c.registered));
                } else {
                    r.err(&format!("{} callbacks at {} are not https: Salt Edge requires https for live clients", c.kind, c.registered));
                }
            }
        }
        Err(e) => r.err(&format!("{e:#}")),
    }
    match s.server.tls() {
        Some(t) => {
            for (what, p) in [
                ("tls_cert_file", &t.cert_file),
                ("tls_key_file", &t.key_file),
            ] {
                match std::fs::read_to_string(p) {
                    Ok(text) if text.contains("-----BEGIN") => {
                        r.ok(&format!("server.{what} {} is PEM", p.display()))
                    }
                    Ok(_) => r.err(&format!("server.{what} {} is not PEM", p.display())),
                    Err(e) => r.err(&format!("server.{what} {}: {e}", p.display())),
                }
            }
        }
        None if s
            .server
            .tls_cert_file
            .as_ref()
            .is_some_and(|p| !p.as_os_str().is_empty())
            || s.server
                .tls_key_file
                .as_ref()
                .is_some_and(|p| !p.as_os_str().is_empty()) =>
        {
            r.err("set both server.tls_cert_file and server.tls_key_file, or neither")
        }
        None => r.ok("plain HTTP (put a TLS proxy in front for live Salt Edge callbacks)"),
    }
    match s.schedule_config() {
        Ok(_) => r.ok("scheduler settings are valid"),
        Err(e) => r.err(&format!("{e:#}")),
    }
    if r.errors > 0 {
        anyhow::bail!("{} problem(s) found", r.errors);
    }
    println!("configuration OK");
    Ok(())
}
