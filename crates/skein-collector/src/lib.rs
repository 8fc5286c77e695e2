//! Skein's collector: one process that receives OTLP traces and logs from any OpenTelemetry
//! SDK (gRPC on 4317, HTTP on 4318, protobuf or JSON), stores them durably in an embedded
//! SQLite database under a data directory (an acknowledged span survives `kill -9`), and
//! answers queries — the native JSON API the dashboard reads (`/api/v1/…`) — on the UI address
//! (127.0.0.1:18888). It is the embedded default for development; teams that outgrow one
//! machine point their SDKs at Tempo, Jaeger or an OpenTelemetry Collector instead.
//!
//! ```no_run
//! # async fn run() -> Result<(), skein_collector::CollectorError> {
//! let collector = skein_collector::Collector::start(skein_collector::CollectorConfig::default()).await?;
//! println!("OTLP/HTTP on {}", collector.otlp_http_addr());
//! collector.shutdown().await;
//! # Ok(()) }
//! ```

pub mod api;
mod bloom;
pub mod browser;
mod compress;
pub mod forward;
mod histogram;
mod incident;
pub mod ingest;
pub mod jaeger;
mod logs;
pub mod model;
pub mod receiver;
pub mod search;
mod secret;
pub mod serve;
pub mod store;
mod trace_index;
pub mod ui;
pub mod validate;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use receiver::{Limits, Receiver};
use store::{Store, StoreConfig, StoreError};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Everything `skein dashboard` can be told.
#[derive(Clone, Debug)]
pub struct CollectorConfig {
    /// Where the database lives.
    pub data_dir: PathBuf,
    /// OTLP/gRPC listen address.
    pub otlp_grpc: SocketAddr,
    /// OTLP/HTTP listen address.
    pub otlp_http: SocketAddr,
    /// Query API (and web UI) listen address.
    pub ui: SocketAddr,
    /// Traces older than this are deleted.
    pub retention: Duration,
    /// The database is kept under this size.
    pub max_disk_bytes: u64,
    /// Receiver limits.
    pub limits: Limits,
    /// Ingest requests waiting for the store at most before "retry later" answers.
    pub queue_requests: usize,
    /// Required on ingest when set.
    pub api_key: Option<String>,
    /// Required on queries when set.
    pub query_token: Option<String>,
    /// Listen on non-loopback addresses without a key and token.
    pub allow_unauthenticated_public: bool,
    /// How often retention runs.
    pub retention_interval: Duration,
    /// Also send everything received to this OTLP/HTTP endpoint (`http://host:4318`).
    pub forward: Option<String>,
    /// Most bytes waiting for the upstream; beyond, the oldest requests are dropped.
    pub forward_buffer_bytes: u64,
    /// Connection caps and timeouts of every listener.
    pub connections: serve::ConnectionLimits,
    /// Host names the UI port answers besides IP literals and loopback names (a reverse
    /// proxy's public name): see [`browser`].
    pub ui_hosts: Vec<String>,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            data_dir: PathBuf::from(".skein"),
            otlp_grpc: SocketAddr::from(([127, 0, 0, 1], 4317)),
            otlp_http: SocketAddr::from(([127, 0, 0, 1], 4318)),
            ui: SocketAddr::from(([127, 0, 0, 1], 18888)),
            retention: Duration::from_secs(7 * 24 * 3600),
            max_disk_bytes: 10 << 30,
            limits: Limits::default(),
            queue_requests: 256,
            api_key: None,
            query_token: None,
            allow_unauthenticated_public: false,
            retention_interval: Duration::from_secs(60),
            forward: None,
            forward_buffer_bytes: 256 << 20,
            connections: serve::ConnectionLimits::default(),
            ui_hosts: Vec::new(),
        }
    }
}

/// Why the collector could not start.
#[derive(Debug)]
pub enum CollectorError {
    /// A listen address is taken or not allowed.
    Listen(SocketAddr, std::io::Error),
    /// A public address without authentication.
    Unprotected(String),
    /// The store could not open.
    Store(StoreError),
    /// The forwarding endpoint is not usable.
    Forward(String),
    /// A setting is out of its range.
    Config(String),
}

impl std::fmt::Display for CollectorError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CollectorError::Listen(addr, e) => write!(f, "cannot listen on {addr}: {e}"),
            CollectorError::Unprotected(m) => f.write_str(m),
            CollectorError::Store(e) => write!(f, "{e}"),
            CollectorError::Forward(m) | CollectorError::Config(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for CollectorError {}

/// How long the servers may take to finish their requests when the collector stops.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(1500);

/// A running collector.
pub struct Collector {
    store: Arc<Store>,
    otlp_grpc: SocketAddr,
    otlp_http: SocketAddr,
    ui: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), CollectorError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| CollectorError::Listen(addr, e))?;
    let bound = listener.local_addr().map_err(|e| CollectorError::Listen(addr, e))?;
    Ok((listener, bound))
}

impl Collector {
    /// Opens the store, binds the three addresses and starts serving.
    pub async fn start(config: CollectorConfig) -> Result<Collector, CollectorError> {
        Self::start_with_progress(config, &|_| {}).await
    }

    /// [`Collector::start`], telling `progress` what happens while a large store opens.
    pub async fn start_with_progress(
        config: CollectorConfig,
        progress: &(dyn Fn(&str) + Sync),
    ) -> Result<Collector, CollectorError> {
        for (what, secret) in [("--api-key", &config.api_key), ("--query-token", &config.query_token)] {
            if secret.as_deref().is_some_and(|s| s.trim().is_empty()) {
                // An empty secret would let anyone in who sends an empty header.
                return Err(CollectorError::Unprotected(format!(
                    "{what} is empty: give it a value, or leave it out"
                )));
            }
        }
        if config.limits.max_body_bytes > receiver::MAX_BODY_BYTES {
            // Frames are read with a fixed limit that no request under this can reach.
            return Err(CollectorError::Config(format!(
                "--max-body is at most {} MiB",
                receiver::MAX_BODY_BYTES >> 20
            )));
        }
        for (what, addr, protected) in [
            ("--otlp-grpc", config.otlp_grpc, config.api_key.is_some()),
            ("--otlp-http", config.otlp_http, config.api_key.is_some()),
            ("--ui", config.ui, config.query_token.is_some()),
        ] {
            if !addr.ip().is_loopback() && !protected && !config.allow_unauthenticated_public {
                return Err(CollectorError::Unprotected(format!(
                    "{what} {addr} is reachable from other machines: set {} or pass --allow-public",
                    if what == "--ui" { "--query-token" } else { "--api-key" }
                )));
            }
        }
        let store_config = StoreConfig {
            data_dir: config.data_dir.clone(),
            queue_requests: config.queue_requests,
            retention: config.retention,
            max_disk_bytes: config.max_disk_bytes,
        };
        let store =
            tokio::task::block_in_place(|| Store::open(store_config, progress)).map_err(CollectorError::Store)?;
        let (grpc_listener, otlp_grpc) = bind(config.otlp_grpc).await?;
        let (http_listener, otlp_http) = bind(config.otlp_http).await?;
        let (ui_listener, ui) = bind(config.ui).await?;
        let (stop, stopped) = watch::channel(false);
        let forwarder = match &config.forward {
            Some(url) => {
                Some(forward::Forwarder::start(url, config.forward_buffer_bytes).map_err(CollectorError::Forward)?)
            }
            None => None,
        };
        let receiver = Receiver {
            store: store.clone(),
            limits: config.limits.clone(),
            api_key: config.api_key.as_deref().map(Arc::from),
            forwarder: forwarder.clone(),
            trace_spans: Arc::default(),
        };
        let api = api::Api {
            store: store.clone(),
            token: config.query_token.as_deref().map(Arc::from),
            forwarder,
            stopping: stopped.clone(),
            otlp_http,
            otlp_grpc,
        };
        let mut tasks = Vec::new();
        let until_stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let limits = config.connections.clone();
        let http = receiver::http_router(receiver.clone(), limits.request_timeout);
        tasks.push(tokio::spawn({
            let stop = until_stopped(stopped.clone());
            let limits = limits.clone();
            async move {
                serve::serve(serve::Gate::new(http_listener, &limits), http, &limits, stop).await;
            }
        }));
        let grpc = receiver::grpc_routes(receiver.clone());
        tasks.push(tokio::spawn({
            let stop = until_stopped(stopped.clone());
            let limits = limits.clone();
            async move {
                let incoming = serve::Gate::new(grpc_listener, &limits).incoming();
                let _ = tonic::transport::Server::builder()
                    .timeout(limits.request_timeout)
                    .http2_keepalive_interval(Some(Duration::from_secs(30)))
                    .http2_keepalive_timeout(Some(Duration::from_secs(20)))
                    .layer(tower::util::MapResponseLayer::new(
                        receiver::oversized_is_resource_exhausted,
                    ))
                    .add_routes(grpc)
                    .serve_with_incoming_shutdown(incoming, stop)
                    .await;
            }
        }));
        let import = receiver::import_router(
            Receiver {
                api_key: config.query_token.as_deref().map(Arc::from),
                ..receiver.clone()
            },
            limits.request_timeout,
        );
        let allowed_hosts = Arc::new(browser::AllowedHosts::new(config.ui_hosts.iter().cloned()));
        let ui_router = api::router(api)
            .merge(import)
            .merge(ui::router())
            .layer(axum::middleware::from_fn_with_state(allowed_hosts, browser::guard));
        tasks.push(tokio::spawn({
            let stop = until_stopped(stopped.clone());
            async move {
                serve::serve(serve::Gate::new(ui_listener, &limits), ui_router, &limits, stop).await;
            }
        }));
        tasks.push(tokio::spawn({
            let store = store.clone();
            let interval = config.retention_interval;
            let mut stopped = stopped.clone();
            async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(interval) => {}
                        _ = store.retention_due.notified() => {}
                        _ = stopped.wait_for(|s| *s) => return,
                    }
                    let store = store.clone();
                    let result = tokio::task::spawn_blocking(move || store.enforce_retention()).await;
                    if let Ok(Err(e)) = result {
                        crate::incident::warn_now_and_then("retention", &format!("retention failed: {e}"));
                    }
                }
            }
        }));
        Ok(Collector {
            store,
            otlp_grpc,
            otlp_http,
            ui,
            stop,
            tasks,
        })
    }

    /// Where OTLP/gRPC is served.
    pub fn otlp_grpc_addr(&self) -> SocketAddr {
        self.otlp_grpc
    }

    /// Where OTLP/HTTP is served.
    pub fn otlp_http_addr(&self) -> SocketAddr {
        self.otlp_http
    }

    /// Where the query API (and UI) is served.
    pub fn ui_addr(&self) -> SocketAddr {
        self.ui
    }

    /// The store, for in-process queries.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Stops accepting, finishes what was accepted (every acknowledged span is committed) and
    /// closes the store, within about two seconds: connections still open when the servers'
    /// grace period ends (idle keep-alive connections, live feeds, slow clients) are closed.
    /// Requests cut off that way were not acknowledged; what they queued is still committed.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        for task in self.tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout_at(deadline, task).await.is_err() {
                abort.abort();
            }
        }
        let store = self.store.clone();
        let _ = tokio::task::spawn_blocking(move || store.close()).await;
    }
}
