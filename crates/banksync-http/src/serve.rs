//! Serving the router over plain HTTP (behind a TLS-terminating proxy) or over HTTPS with
//! rustls, with graceful shutdown either way. Salt Edge requires HTTPS callbacks for live
//! clients.

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

/// Serves until `shutdown` resolves, then lets in-flight requests finish within `grace`.
pub async fn serve(
    listener: std::net::TcpListener,
    app: Router,
    tls: Option<&Tls>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    match tls {
        None => {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(shutdown)
            .await
        }
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
            let handle = axum_server::Handle::new();
            let h = handle.clone();
            tokio::spawn(async move {
                shutdown.await;
                h.graceful_shutdown(Some(grace));
            });
            axum_server::from_tcp_rustls(listener, config)?
                .handle(handle)
                .serve(app.into_make_service_with_connect_info::<SocketAddr>())
                .await
        }
    }
}
