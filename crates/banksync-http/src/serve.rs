//! Serving the router over plain HTTP (behind a TLS-terminating proxy) or over HTTPS with
//! rustls, with graceful shutdown either way. Salt Edge requires HTTPS callbacks for live
//! clients.
//!
//! Facing the Internet, a connection is bounded at every step: the TLS handshake
//! ([`ServeOptions::tls_handshake`]), each request's headers, and the idle wait between
//! requests on a kept-alive connection ([`ServeOptions::header_read`]: since hyper 1.6 the
//! header-read timer also runs while a connection waits for its next request,
//! hyperium/hyper#3828). A request's handling and body are bounded by the router's request
//! timeout. A client that opens connections and sends nothing, or sends headers a byte at a
//! time, is cut off instead of holding a socket and a task for ever.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum::Router;

/// Certificate chain and private key, both PEM files.
#[derive(Debug, Clone)]
pub struct Tls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// How long the server waits for a client at each step, and for in-flight requests on
/// shutdown.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// In-flight requests get this long to finish once shutdown begins.
    pub grace: Duration,
    /// A request's headers must arrive within this; an idle kept-alive connection is closed
    /// after it.
    pub header_read: Duration,
    /// A TLS handshake must complete within this.
    pub tls_handshake: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            grace: Duration::from_secs(20),
            header_read: Duration::from_secs(10),
            tls_handshake: Duration::from_secs(10),
        }
    }
}

/// Serves until `shutdown` resolves, then lets in-flight requests finish within
/// `options.grace`.
pub async fn serve(
    listener: std::net::TcpListener,
    app: Router,
    tls: Option<&Tls>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    options: ServeOptions,
) -> std::io::Result<()> {
    let handle = axum_server::Handle::new();
    let h = handle.clone();
    let grace = options.grace;
    tokio::spawn(async move {
        shutdown.await;
        h.graceful_shutdown(Some(grace));
    });
    // Until the first request is dispatched, hyper's protocol detection has no timer of its
    // own: the first-request bound covers a connection that sends nothing at all.
    let mut server = axum_server::from_tcp(listener)?
        .handle(handle)
        .first_request_timeout(options.header_read);
    server
        .http_builder()
        .http1()
        .header_read_timeout(options.header_read);
    let service = app.into_make_service_with_connect_info::<SocketAddr>();
    match tls {
        None => server.serve(service).await,
        Some(t) => {
            // ring is the provider compiled in; make it the process default once.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let config =
                axum_server::tls_rustls::RustlsConfig::from_pem_file(&t.cert_file, &t.key_file)
                    .await
                    .map_err(|e| {
                        std::io::Error::new(
                            e.kind(),
                            format!(
                                "TLS certificate or key ({}, {}): {e}",
                                t.cert_file.display(),
                                t.key_file.display()
                            ),
                        )
                    })?;
            let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(config)
                .handshake_timeout(options.tls_handshake);
            server.acceptor(acceptor).serve(service).await
        }
    }
}

/// [`serve`] over plain HTTP on its own task, until `stop` turns true (the in-process
/// stacks: the demo and the benches).
pub fn spawn_plain(
    listener: std::net::TcpListener,
    app: Router,
    mut stop: tokio::sync::watch::Receiver<bool>,
    grace: Duration,
) -> tokio::task::JoinHandle<std::io::Result<()>> {
    tokio::spawn(async move {
        let stopped = async move {
            let _ = stop.wait_for(|v| *v).await;
        };
        let options = ServeOptions {
            grace,
            ..Default::default()
        };
        serve(listener, app, None, stopped, options).await
    })
}
