//! Prometheus metrics. Request and callback counters are this process's; sync, job and line
//! gauges are read from Postgres by a timer ([`Metrics::refresh`], every 15 s), never per
//! scrape, so a scrape storm costs the database nothing. A handful of labelled counters do
//! not need a metrics framework.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

use sqlx::PgPool;

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    callbacks: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// The database gauges as last rendered by [`Metrics::refresh`].
    gauges: Mutex<String>,
}

impl Metrics {
    pub fn request(&self, method: &str, route: &str, status: u16) {
        *self
            .requests
            .lock()
            .unwrap()
            .entry((method.to_string(), route.to_string(), status))
            .or_default() += 1;
    }

    /// `verdict`: accepted, duplicate, missing_signature, invalid_signature, malformed, stale.
    pub fn callback(&self, kind: &str, verdict: &'static str) {
        *self
            .callbacks
            .lock()
            .unwrap()
            .entry((kind.to_string(), verdict))
            .or_default() += 1;
    }

    pub fn render(&self, worker: Option<&sync_engine::worker::Health>) -> String {
        let mut out = String::new();
        out.push_str("# HELP banksync_http_requests_total HTTP requests served by this process.\n# TYPE banksync_http_requests_total counter\n");
        for ((m, r, s), n) in self.requests.lock().unwrap().iter() {
            let _ = writeln!(
                out,
                "banksync_http_requests_total{{method=\"{m}\",route=\"{r}\",status=\"{s}\"}} {n}"
            );
        }
        out.push_str("# HELP banksync_callbacks_total Salt Edge callbacks received by this process, by kind and verdict.\n# TYPE banksync_callbacks_total counter\n");
        for ((k, v), n) in self.callbacks.lock().unwrap().iter() {
            let _ = writeln!(
                out,
                "banksync_callbacks_total{{kind=\"{k}\",verdict=\"{v}\"}} {n}"
            );
        }
        if let Some(h) = worker {
            out.push_str("# HELP banksync_worker_loop_restarts_total Job loops restarted after ending unexpectedly.\n# TYPE banksync_worker_loop_restarts_total counter\n");
            let _ = writeln!(
                out,
                "banksync_worker_loop_restarts_total {}",
                h.restarts.load(std::sync::atomic::Ordering::Relaxed)
            );
        }
        out.push_str(&self.gauges.lock().unwrap());
        out
    }

    /// Reads the database gauges (a few grouped counts; lines from the planner's estimate,
    /// no scan) and keeps them for the scrapes until the next refresh.
    pub async fn refresh(&self, pool: &PgPool) {
        let mut out = String::new();
        let g = match sync_engine::stats::gauges(pool).await {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!(error = %e, "metrics: database gauges not refreshed");
                return;
            }
        };
        out.push_str("# HELP banksync_sync_runs Sync runs in the database, by status.\n# TYPE banksync_sync_runs gauge\n");
        for (s, n) in g.sync_runs {
            let _ = writeln!(out, "banksync_sync_runs{{status=\"{s}\"}} {n}");
        }
        out.push_str("# HELP banksync_statement_lines Statement lines stored (the planner's estimate).\n# TYPE banksync_statement_lines gauge\n");
        let _ = writeln!(out, "banksync_statement_lines {}", g.statement_lines);
        out.push_str(
            "# HELP banksync_jobs Jobs in the queue, by status.\n# TYPE banksync_jobs gauge\n",
        );
        for (s, n) in g.jobs {
            let _ = writeln!(out, "banksync_jobs{{status=\"{s}\"}} {n}");
        }
        *self.gauges.lock().unwrap() = out;
    }
}
