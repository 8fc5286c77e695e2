//! Id formats through a proxy: the pass-through propagator forwards the incoming context
//! unchanged, and hierarchical `Request-Id`s flow client → server → client → server. Both
//! change process-wide settings, so they live in this test binary of their own.

use std::net::SocketAddr;

use axum::http::HeaderMap;
use axum::routing::get;
use axum::Router;
use skein::propagation::{self, DefaultPropagator, PassThroughPropagator};
use skein::*;
use skein_http::TraceLayer;

mod common;
use common::tag;

/// A back end answering with the propagation headers it received, behind a proxy that calls
/// it with the instrumented client.
async fn proxy_and_back_end() -> SocketAddr {
    let back = Router::new()
        .route(
            "/fmt/back",
            get(|headers: HeaderMap| async move {
                let get = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-")
                        .to_owned()
                };
                format!(
                    "{}\n{}\n{}\n{}",
                    get("traceparent"),
                    get("tracestate"),
                    get("request-id"),
                    get("baggage")
                )
            }),
        )
        .layer(TraceLayer::new());
    let back = common::serve(back).await;
    common::serve_relay("/fmt/proxy", format!("http://{back}/fmt/back")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pass_through_proxies_and_hierarchical_ids() {
    let proxy = proxy_and_back_end().await;

    // A transparent proxy: the back end sees exactly what the proxy received.
    propagation::set_current(PassThroughPropagator);
    const TP: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let seen = common::text(
        reqwest::Client::new()
            .get(format!("http://{proxy}/fmt/proxy"))
            .header("traceparent", TP)
            .header("tracestate", "vendor=1")
            .header("baggage", "tier=gold")
            .send(),
    )
    .await;
    assert_eq!(seen, format!("{TP}\nvendor=1\n-\ntier=gold"));

    // Hierarchical ids across client → server → client → server.
    propagation::set_current(DefaultPropagator);
    static CALLER: ActivitySource = ActivitySource::new("skein.http.test-caller");
    let root = CALLER
        .start_activity_with(
            "hierarchical caller",
            ActivityKind::Internal,
            ActivityStartOptions {
                id_format: ActivityIdFormat::Hierarchical,
                ..Default::default()
            },
        )
        .unwrap();
    let root_id = root.id().unwrap();
    let seen = common::text(
        common::traced_client()
            .get(format!("http://{proxy}/fmt/proxy"))
            .send()
            .with_current(),
    )
    .await;
    root.stop();
    let parts: Vec<&str> = seen.split('\n').collect();
    assert_eq!(parts[0], "-", "no traceparent for hierarchical activities: {seen}");
    let request_id = parts[2];
    assert!(request_id.starts_with(&root_id), "{request_id} descends from {root_id}");
    assert!(request_id.len() > root_id.len() + 4, "three hops deeper: {request_id}");
    let servers: Vec<Activity> = common::stopped()
        .into_iter()
        .filter(|a| a.kind() == ActivityKind::Server && a.id().is_some_and(|id| id.starts_with(&root_id)))
        .collect();
    assert_eq!(servers.len(), 2, "proxy and back end continue the hierarchical trace");
    for server in &servers {
        assert_eq!(server.id_format(), ActivityIdFormat::Hierarchical);
        assert_eq!(server.root_id(), root.root_id());
        assert!(tag(server, "url.path").starts_with("/fmt/"));
    }
}
