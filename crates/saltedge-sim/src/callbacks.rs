//! Posts signed callbacks to the configured base URL, in order, like Salt Edge does:
//! `Signature` = base64 RSA-SHA256 of `callback_url|body` with the simulator's private key.

use std::sync::{Arc, Mutex};

use crate::sigs::SaltEdgeKey;
use crate::wire::CallbackData;
use chrono::Utc;
use serde::Serialize;
use tokio::sync::mpsc;
use url::Url;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallbackKind {
    Success,
    Fail,
    Notify,
    Interactive,
    Destroy,
    Service,
    /// v6: a provider changed (third-party sources; the simulator does not send it).
    ProviderChanges,
    /// v6: a connection's consent changed (sent on revoke by a v6 simulator).
    ConsentChanges,
}

impl CallbackKind {
    pub fn path(self) -> &'static str {
        match self {
            CallbackKind::Success => "success",
            CallbackKind::Fail => "fail",
            CallbackKind::Notify => "notify",
            CallbackKind::Interactive => "interactive",
            CallbackKind::Destroy => "destroy",
            CallbackKind::Service => "service",
            CallbackKind::ProviderChanges => "provider_changes",
            CallbackKind::ConsentChanges => "consent_changes",
        }
    }
}

/// One delivery attempt, kept for tests and the `/sim/callbacks` view.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub kind: CallbackKind,
    pub url: String,
    pub body: String,
    pub status: Option<u16>,
    pub error: Option<String>,
}

struct Outgoing {
    kind: CallbackKind,
    body: String,
    copies: u32,
}

/// How callbacks are sent: the key, `meta.version`, the `Signature-key-version` header.
pub struct Style {
    pub signer: SaltEdgeKey,
    pub version: &'static str,
    pub key_version: Option<String>,
}

#[derive(Clone)]
pub struct CallbackSender {
    version: &'static str,
    tx: mpsc::UnboundedSender<Outgoing>,
    pub log: Arc<Mutex<Vec<Delivery>>>,
    /// Deliver every callback this many times (redelivery tests); normally 1.
    pub copies: Arc<std::sync::atomic::AtomicU32>,
    /// URLs registered for single kinds, used exactly as given (they override the base).
    pub registered: Arc<Mutex<std::collections::HashMap<CallbackKind, String>>>,
    last_time: Arc<Mutex<Option<chrono::DateTime<Utc>>>>,
}

impl CallbackSender {
    pub fn start(base: Arc<Mutex<Option<Url>>>, style: Style) -> Self {
        let Style {
            signer,
            version,
            key_version,
        } = style;
        let (tx, mut rx) = mpsc::unbounded_channel::<Outgoing>();
        let log = Arc::new(Mutex::new(Vec::new()));
        let log2 = log.clone();
        let registered: Arc<Mutex<std::collections::HashMap<CallbackKind, String>>> =
            Arc::default();
        let registered2 = registered.clone();
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .expect("reqwest client");
        tokio::spawn(async move {
            while let Some(out) = rx.recv().await {
                // Salt Edge posts to the URL registered for the kind and signs that exact string.
                let explicit = registered2.lock().unwrap().get(&out.kind).cloned();
                let url = match explicit {
                    Some(u) => u,
                    None => {
                        let Some(base) = base.lock().unwrap().clone() else {
                            continue;
                        };
                        let Ok(url) = base.join(out.kind.path()) else {
                            continue;
                        };
                        url.to_string()
                    }
                };
                let sig = signer.sign_callback(&url, &out.body);
                for _ in 0..out.copies {
                    let mut req = http
                        .post(url.as_str())
                        .header("Content-Type", "application/json")
                        .header("Signature", &sig);
                    if let Some(v) = &key_version {
                        req = req.header("Signature-key-version", v);
                    }
                    let res = req.body(out.body.clone()).send().await;
                    let (status, error) = match res {
                        Ok(r) => (Some(r.status().as_u16()), None),
                        Err(e) => (None, Some(e.to_string())),
                    };
                    log2.lock().unwrap().push(Delivery {
                        kind: out.kind,
                        url: url.to_string(),
                        body: out.body.clone(),
                        status,
                        error,
                    });
                }
            }
        });
        CallbackSender {
            version,
            tx,
            log,
            copies: Arc::new(std::sync::atomic::AtomicU32::new(1)),
            registered,
            last_time: Arc::default(),
        }
    }

    pub fn send(&self, kind: CallbackKind, data: CallbackData) {
        // `meta.time` with milliseconds, as in Salt Edge's recorded callbacks; events in
        // sequence have increasing times (two events in one millisecond are still two).
        let time = {
            let mut last = self.last_time.lock().unwrap();
            let mut t = chrono::SubsecRound::trunc_subsecs(Utc::now(), 3);
            if let Some(l) = *last {
                if t <= l {
                    t = l + chrono::Duration::milliseconds(1);
                }
            }
            *last = Some(t);
            t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        };
        let body =
            serde_json::json!({ "data": data, "meta": { "version": self.version, "time": time } });
        let body = serde_json::to_string(&body).expect("callback serialises");
        let copies = self
            .copies
            .load(std::sync::atomic::Ordering::Relaxed)
            .max(1);
        let _ = self.tx.send(Outgoing { kind, body, copies });
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.log.lock().unwrap().clone()
    }
}
