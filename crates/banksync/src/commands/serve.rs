//! `banksync serve`: the REST API, callback receivers and the job worker in one process.
//! Several replicas may run over one database.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use banksync_http::Application;
use sync_engine::worker::Worker;
use sync_engine::{catalogue, jobs};

use crate::settings::Settings;

#[derive(clap::Args)]
pub struct Args {}

pub async fn run(_: Args) -> anyhow::Result<()> {
    let s = Settings::load()?;
    let refused = s.unsafe_reasons();
    if !refused.is_empty() {
        anyhow::bail!("refusing to serve with an unsafe configuration:\n  - {}\n(`banksync config check` shows every check)", refused.join("\n  - "));
    }
    let pool = crate::db::connect(&s).await?;
    let client = s.client(&pool)?;
    let health = Arc::new(sync_engine::worker::Health::default());
    let app = Application::build(
        pool.clone(),
        client.clone(),
        s.callback_verifier()?,
        s.callback_urls()?,
        &s.http_config(),
        (s.worker.concurrency > 0).then(|| health.clone()),
    );
    let state = app.state.clone();
    banksync_http::spawn_metrics_refresher(&state, Duration::from_secs(15));
    if catalogue::is_empty(&pool).await.unwrap_or(false) {
        jobs::queue(&pool, &jobs::RefreshCatalogue {}).await?;
    }
    // The scheduler's first tick; each tick queues the next (one queued at a time).
    jobs::start_schedule(&pool).await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let worker = {
        let mut w = Worker::new(pool.clone(), client);
        w.lease = Duration::from_secs(s.worker.lease_secs);
        w.schedule = s.schedule_config()?;
        w.retention = s.retention.engine()?;
        w.health = health;
        let grace = Duration::from_secs(s.worker.shutdown_grace_secs);
        let n = s.worker.concurrency;
        let rx = stop_rx.clone();
        tokio::spawn(async move {
            if n > 0 {
                w.run(n, rx, grace).await
            }
        })
    };
    // Webhook deliveries and consent reminders, beside the job worker.
    let deliverer = {
        let key = s.webhook_key()?;
        // Secrets stored in clear before sealing existed are sealed now.
        let sealed = sync_engine::webhooks::seal::seal_clear_rows(&pool, &key).await?;
        if sealed > 0 {
            tracing::info!(
                endpoints = sealed,
                key = key.id(),
                "webhook secrets sealed at rest"
            );
        }
        let d = sync_engine::webhooks::Deliverer::new(pool.clone(), s.webhooks.delivery(key)?);
        tokio::spawn(d.run(stop_rx.clone()))
    };
    let listener = std::net::TcpListener::bind(s.server.bind)
        .with_context(|| format!("cannot listen on {}", s.server.bind))?;
    let tls = s.server.tls();
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(addr = %s.server.bind, scheme, callbacks = ?state.callbacks.all().iter().map(|c| &c.registered).collect::<Vec<_>>(), "banksync serving");
    println!(
        "banksync listening on {scheme}://{}  (callbacks: {})",
        s.server.bind,
        state.callbacks.url("success").unwrap_or_default()
    );
    if let Some(addr) = s.server.metrics_bind {
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on server.metrics_bind {addr}"))?;
        let m = banksync_http::metrics_router(state.clone());
        tokio::spawn(async move { axum::serve(l, m).await });
        println!("metrics on http://{addr}/metrics");
    }
    let app = app.router;
    let mut http_stop = stop_rx.clone();
    let options = s
        .server
        .serve_options(Duration::from_secs(s.worker.shutdown_grace_secs));
    let server = tokio::spawn(async move {
        let stop = async move {
            let _ = http_stop.wait_for(|v| *v).await;
        };
        banksync_http::serve::serve(listener, app, tls.as_ref(), stop, options).await
    });
    shutdown_signal().await;
    tracing::info!("shutdown requested: no new jobs; in-flight work gets the grace period");
    let _ = stop_tx.send(true);
    server.await??;
    let _ = worker.await;
    let _ = deliverer.await;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
