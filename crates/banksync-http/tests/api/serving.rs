//! The listener facing the Internet: a client that holds a connection without sending a
//! request (slow headers, nothing at all, an idle keep-alive, a TLS handshake never begun)
//! is cut off after the configured bound, while a prompt client is served.

use super::support::*;
use banksync_http::serve::{serve, ServeOptions, Tls};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BOUND: Duration = Duration::from_secs(1);
/// Far above the bound: a connection still open then was never going to be closed.
const PATIENCE: Duration = Duration::from_secs(8);

/// Serves a one-route router with 1 s bounds; its address.
async fn server(tls: Option<Tls>) -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
    let options = ServeOptions {
        grace: Duration::from_secs(1),
        header_read: BOUND,
        tls_handshake: BOUND,
    };
    tokio::spawn(async move {
        serve(listener, app, tls.as_ref(), std::future::pending(), options)
            .await
            .unwrap()
    });
    addr
}

/// Reads until the server closes the connection (or `PATIENCE` runs out); what it sent.
async fn until_closed(c: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            match c.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(PATIENCE, read).await.ok().map(|_| got)
}

#[tokio::test]
async fn slow_headers_and_silent_connections_are_cut_off() {
    let addr = server(None).await;

    // Headers begun and never finished.
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // Nothing sent at all.
    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    // One request answered, then idle on a kept-alive connection.
    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();

    let (slow, silent, idle) = tokio::join!(
        until_closed(&mut slow),
        until_closed(&mut silent),
        until_closed(&mut idle)
    );
    assert!(slow.is_some(), "slow headers were never cut off");
    assert!(silent.is_some(), "a silent connection was never closed");
    let idle = idle.expect("an idle kept-alive connection was never closed");
    assert!(
        String::from_utf8_lossy(&idle).starts_with("HTTP/1.1 200"),
        "the prompt request was served first"
    );
}

#[tokio::test]
async fn a_tls_handshake_never_begun_is_cut_off() {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = std::env::temp_dir().join(format!("banksync-tls-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let tls = Tls {
        cert_file: dir.join("cert.pem"),
        key_file: dir.join("key.pem"),
    };
    std::fs::write(&tls.cert_file, ck.cert.pem()).unwrap();
    std::fs::write(&tls.key_file, ck.key_pair.serialize_pem()).unwrap();
    let addr = server(Some(tls)).await;

    let mut stalled = tokio::net::TcpStream::connect(addr).await.unwrap();
    // A ClientHello's first bytes, and then nothing.
    stalled.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
    assert!(
        until_closed(&mut stalled).await.is_some(),
        "a stalled TLS handshake was never cut off"
    );

    // A prompt client is served over the same listener.
    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ck.cert.pem().as_bytes()).unwrap())
        .resolve("localhost", addr)
        .build()
        .unwrap();
    let r = https
        .get(format!("https://localhost:{}/", addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "ok");
    let _ = std::fs::remove_dir_all(dir);
}
