//! What the test binaries need: a listener recording every stopped `skein.http.*` and
//! `skein.net.*` activity
//! (each test looks only at its own paths), and ring as the process's rustls provider.
#![allow(dead_code)]

use std::sync::{Mutex, Once};

use skein::*;

static STOPPED: Mutex<Vec<Activity>> = Mutex::new(Vec::new());

struct Recorder;

impl ActivityListener for Recorder {
    fn should_listen_to(&self, source: &ActivitySource) -> bool {
        source.name().starts_with("skein.http.") || source.name().starts_with("skein.net.")
    }
    fn sample(&self, _: &ActivityCreationOptions<'_, ActivityContext>) -> ActivitySamplingResult {
        ActivitySamplingResult::AllDataAndRecorded
    }
    /// Hierarchical `Request-Id` callers too (they reach only listeners that read parent ids).
    fn sample_using_parent_id(&self, _: &ActivityCreationOptions<'_, &str>) -> Option<ActivitySamplingResult> {
        Some(ActivitySamplingResult::AllDataAndRecorded)
    }
    fn on_stopped(&self, activity: &Activity) {
        STOPPED.lock().unwrap().push(activity.clone());
    }
}

/// Starts recording (once per process) and installs ring for the tests' rustls configurations.
pub fn setup() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        ActivitySource::add_activity_listener(Recorder).keep_forever();
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A reqwest client instrumented with `SkeinMiddleware` (after [`setup`]).
pub fn traced_client() -> reqwest_middleware::ClientWithMiddleware {
    setup();
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(skein_http::SkeinMiddleware)
        .build()
}

/// Every activity stopped so far.
pub fn stopped() -> Vec<Activity> {
    STOPPED.lock().unwrap().clone()
}

/// A tag's value as text (empty when absent).
pub fn tag(a: &Activity, key: &str) -> String {
    a.tag(key).map(|v| v.to_string()).unwrap_or_default()
}

/// Serves `app` on an ephemeral loopback port (after [`setup`]).
pub async fn serve(app: axum::Router) -> std::net::SocketAddr {
    setup();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// The body of a sent request as text (a test wants it or fails).
pub async fn text<E: std::fmt::Debug>(sent: impl std::future::Future<Output = Result<reqwest::Response, E>>) -> String {
    sent.await.unwrap().text().await.unwrap()
}

/// Serves a hop at `path` that fetches `target` with the instrumented client and answers with
/// its body, behind the server layer (a front end or a proxy).
pub async fn serve_relay(path: &'static str, target: String) -> std::net::SocketAddr {
    let relay = axum::Router::new()
        .route(
            path,
            axum::routing::get(move || {
                let target = target.clone();
                async move { text(traced_client().get(target).send()).await }
            }),
        )
        .layer(skein_http::TraceLayer::new());
    serve(relay).await
}
