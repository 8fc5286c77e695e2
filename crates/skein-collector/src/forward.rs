//! Forwarding: everything received is also sent on to an upstream OTLP/HTTP endpoint (Tempo,
//! Jaeger, an OpenTelemetry Collector), so this process can sit in front of a shared backend.
//! Requests wait in a bounded buffer while the upstream is down and are sent, oldest first,
//! once it is back; when the buffer is full the oldest are dropped and counted.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Notify;

/// What is forwarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Traces,
    Logs,
}

/// Counts visible in the status API.
#[derive(Debug, Default)]
pub struct ForwardCounters {
    pub forwarded_requests: AtomicU64,
    pub dropped_requests: AtomicU64,
    pub queued_bytes: AtomicU64,
}

/// The sending side, shared by the receivers.
pub struct Forwarder {
    queue: Mutex<VecDeque<(Signal, Bytes)>>,
    wake: Notify,
    max_bytes: u64,
    pub counters: ForwardCounters,
}

impl Forwarder {
    /// Starts forwarding to `base` (e.g. `http://tempo:4318`; `/v1/traces` and `/v1/logs` are
    /// appended), buffering at most `max_bytes`.
    pub fn start(base: &str, max_bytes: u64) -> Result<Arc<Forwarder>, String> {
        let base = base.trim_end_matches('/').to_owned();
        let uri: http::Uri = base.parse().map_err(|e| format!("--forward {base:?}: {e}"))?;
        if uri.scheme_str() != Some("http") || uri.host().is_none() {
            return Err(format!("--forward {base:?}: an http:// URL is needed"));
        }
        let forwarder = Arc::new(Forwarder {
            queue: Mutex::new(VecDeque::new()),
            wake: Notify::new(),
            max_bytes,
            counters: ForwardCounters::default(),
        });
        tokio::spawn(send_loop(forwarder.clone(), base));
        Ok(forwarder)
    }

    /// Queues an encoded OTLP request; never waits.
    pub fn enqueue(&self, signal: Signal, body: Bytes) {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let mut queued = self.counters.queued_bytes.load(Ordering::Relaxed) + body.len() as u64;
        while queued > self.max_bytes {
            let Some((_, oldest)) = queue.pop_front() else { break };
            queued -= oldest.len() as u64;
            self.counters.dropped_requests.fetch_add(1, Ordering::Relaxed);
        }
        if body.len() as u64 > self.max_bytes {
            self.counters.dropped_requests.fetch_add(1, Ordering::Relaxed);
            self.counters
                .queued_bytes
                .store(queued - body.len() as u64, Ordering::Relaxed);
            return;
        }
        queue.push_back((signal, body));
        self.counters.queued_bytes.store(queued, Ordering::Relaxed);
        drop(queue);
        self.wake.notify_one();
    }

    fn front(&self) -> Option<(Signal, Bytes)> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).front().cloned()
    }

    fn pop_sent(&self, sent: &Bytes) {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        // Dropped meanwhile by a full buffer? Then it is no longer at the front.
        if queue.front().is_some_and(|(_, b)| b.as_ptr() == sent.as_ptr()) {
            queue.pop_front();
            self.counters
                .queued_bytes
                .fetch_sub(sent.len() as u64, Ordering::Relaxed);
        }
    }
}

async fn send_loop(forwarder: Arc<Forwarder>, base: String) {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut backoff = Duration::from_millis(100);
    loop {
        let Some((signal, body)) = forwarder.front() else {
            forwarder.wake.notified().await;
            continue;
        };
        let path = match signal {
            Signal::Traces => "/v1/traces",
            Signal::Logs => "/v1/logs",
        };
        let request = http::Request::post(format!("{base}{path}"))
            .header(http::header::CONTENT_TYPE, "application/x-protobuf")
            .body(Full::new(body.clone()));
        let Ok(request) = request else {
            forwarder.pop_sent(&body);
            continue;
        };
        let outcome = tokio::time::timeout(Duration::from_secs(10), async {
            let response = client.request(request).await.map_err(|e| e.to_string())?;
            let status = response.status();
            let _ = response.into_body().collect().await;
            Ok::<_, String>(status)
        })
        .await;
        match outcome {
            Ok(Ok(status)) if status.is_success() => {
                forwarder.pop_sent(&body);
                forwarder.counters.forwarded_requests.fetch_add(1, Ordering::Relaxed);
                backoff = Duration::from_millis(100);
            }
            // A request the upstream refuses for good is not retried forever.
            Ok(Ok(status)) if status.is_client_error() && status != http::StatusCode::TOO_MANY_REQUESTS => {
                forwarder.pop_sent(&body);
                forwarder.counters.dropped_requests.fetch_add(1, Ordering::Relaxed);
            }
            // Down, overloaded or slow: wait and try the same request again.
            _ => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}
