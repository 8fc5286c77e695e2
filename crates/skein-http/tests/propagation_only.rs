//! A service that records nothing still continues its callers' traces downstream: with
//! `OTEL_TRACES_EXPORTER=none`, `OTEL_SDK_DISABLED=true` or an always-off sampler, an incoming
//! `traceparent` goes on to the next service with the same trace id and flags `-00` (a
//! propagation-only activity, as OpenTelemetry's SDKs make a non-recording span). Before the
//! fix nothing was created, and the downstream service started a trace of its own.

use axum::http::HeaderMap;
use axum::routing::get;
use axum::Router;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

async fn serve(app: Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// The `traceparent` the downstream service received when the middle one (instrumented, as
/// configured by `vars`) was called with the caller's context.
fn downstream_traceparent(vars: &[(&str, &str)]) -> String {
    for (name, value) in vars {
        // SAFETY (edition 2024 spelling aside): set before any thread of this test starts.
        std::env::set_var(name, value);
    }
    let guard = skein_export::init().expect("valid configuration");
    for (name, _) in vars {
        std::env::remove_var(name);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let seen = runtime.block_on(async {
        let downstream = serve(Router::new().route(
            "/",
            get(|headers: HeaderMap| async move {
                headers
                    .get("traceparent")
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default()
            }),
        ))
        .await;
        let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(skein_http::SkeinMiddleware)
            .build();
        let middle = serve(
            Router::new()
                .route(
                    "/",
                    get(move || {
                        let client = client.clone();
                        async move {
                            let answer = client.get(format!("http://{downstream}/")).send().await.unwrap();
                            answer.text().await.unwrap()
                        }
                    }),
                )
                .layer(skein_http::TraceLayer::new()),
        )
        .await;
        reqwest::Client::new()
            .get(format!("http://{middle}/"))
            .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN}-01"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    drop(runtime);
    drop(guard);
    seen
}

#[test]
fn a_service_that_records_nothing_still_continues_the_trace() {
    for vars in [
        &[("OTEL_TRACES_EXPORTER", "none")][..],
        &[("OTEL_SDK_DISABLED", "true")][..],
        &[
            ("OTEL_TRACES_EXPORTER", "console"),
            ("OTEL_TRACES_SAMPLER", "always_off"),
        ][..],
    ] {
        let seen = downstream_traceparent(vars);
        let parts: Vec<&str> = seen.split('-').collect();
        assert_eq!(parts.len(), 4, "{vars:?}: downstream saw {seen:?}");
        assert_eq!(parts[1], TRACE_ID, "{vars:?}: the caller's trace goes on");
        assert_ne!(parts[2], CALLER_SPAN, "{vars:?}: the middle service's own span id");
        assert_eq!(parts[3], "00", "{vars:?}: not recorded here, so not sampled downstream");
    }
}
