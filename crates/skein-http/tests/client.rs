//! Client instrumentation (reqwest middleware, tower layer over hyper-util) against an
//! instrumented axum server on loopback: one trace across the hop.

use std::net::SocketAddr;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use http_body_util::BodyExt;
use skein::*;
use skein_http::{ClientTraceLayer, TraceLayer};

mod common;
use common::tag;

/// Stopped (client, server) activities whose URL mentions `marker`.
async fn hop(marker: &str, servers: usize) -> (Activity, Vec<Activity>) {
    for _ in 0..200 {
        let all = common::stopped();
        let client = all
            .iter()
            .find(|a| a.kind() == ActivityKind::Client && tag(a, "url.full").contains(marker))
            .cloned();
        let server: Vec<Activity> = all
            .iter()
            .filter(|a| a.kind() == ActivityKind::Server && tag(a, "url.path").contains(marker))
            .cloned()
            .collect();
        if let Some(client) = client {
            if server.len() >= servers {
                return (client, server);
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no client activity for {marker}");
}

async fn server() -> SocketAddr {
    let app = Router::new()
        .route("/hop/{name}", get(|| async { "pong" }))
        .route(
            "/fail/{name}",
            get(|| async { (axum::http::StatusCode::SERVICE_UNAVAILABLE, "down") }),
        )
        .layer(TraceLayer::new());
    common::serve(app).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reqwest_requests_continue_into_the_server_as_one_trace() {
    let addr = server().await;
    let body = common::text(
        common::traced_client()
            .get(format!("http://user:secret@{addr}/hop/reqwest?token=abc&page=2"))
            .send(),
    )
    .await;
    assert_eq!(body, "pong");
    let (client, servers) = hop("/hop/reqwest", 1).await;
    let server = &servers[0];
    assert_eq!(server.trace_id(), client.trace_id(), "one trace across the hop");
    assert_eq!(server.parent_span_id(), client.span_id());
    assert_eq!(client.display_name(), "GET");
    assert_eq!(tag(&client, "http.request.method"), "GET");
    assert_eq!(tag(&client, "server.address"), "127.0.0.1");
    assert_eq!(tag(&client, "server.port"), addr.port().to_string());
    assert_eq!(
        tag(&client, "url.full"),
        format!("http://{addr}/hop/reqwest?token=REDACTED&page=REDACTED"),
        "no credentials, no query values"
    );
    assert_eq!(tag(&client, "http.response.status_code"), "200");
    assert_eq!(client.status(), ActivityStatusCode::Unset);
    assert!(
        client.end_time().unwrap() >= server.end_time().unwrap(),
        "ends after the server answered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consecutive_calls_are_siblings_under_the_callers_activity() {
    static APP: ActivitySource = ActivitySource::new("skein.http.test.app");
    let addr = server().await;
    async {
        let parent = APP.start_activity("checkout", ActivityKind::Internal).unwrap();
        let client = common::traced_client();
        for path in ["/hop/sibling-a", "/hop/sibling-b"] {
            let response = client.get(format!("http://{addr}{path}")).send().await.unwrap();
            assert!(
                Activity::current().unwrap().ptr_eq(&parent),
                "the caller's activity is still current"
            );
            drop(response.text().await);
        }
        let (a, _) = hop("/hop/sibling-a", 1).await;
        let (b, _) = hop("/hop/sibling-b", 1).await;
        assert_eq!(a.parent_span_id(), parent.span_id());
        assert_eq!(b.parent_span_id(), parent.span_id(), "not a child of the first call");
    }
    .with_current()
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_set_headers_are_not_overwritten() {
    let addr = server().await;
    common::traced_client()
        .get(format!("http://{addr}/hop/preset"))
        .header("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        .send()
        .await
        .unwrap();
    let (_, servers) = hop("/hop/preset", 1).await;
    assert_eq!(servers[0].parent_span_id().to_hex(), "b7ad6b7169203331");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_statuses_and_connection_failures() {
    let addr = server().await;
    let response = common::traced_client()
        .get(format!("http://{addr}/fail/503"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    drop(response.text().await);
    let (client, _) = hop("/fail/503", 1).await;
    assert_eq!(client.status(), ActivityStatusCode::Error);
    assert_eq!(tag(&client, "error.type"), "503");

    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    assert!(common::traced_client()
        .get(format!("http://{closed}/refused/x"))
        .send()
        .await
        .is_err());
    let (client, _) = hop("/refused/x", 0).await;
    assert_eq!(client.status(), ActivityStatusCode::Error);
    assert_eq!(tag(&client, "error.type"), "connection_error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hyper_util_client_through_the_tower_layer() {
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    use tower_service::Service;

    let addr = server().await;
    let client: Client<_, http_body_util::Empty<bytes::Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut traced = tower_layer::Layer::layer(&ClientTraceLayer, client);
    std::future::poll_fn(|cx| traced.poll_ready(cx)).await.unwrap();
    let request = http::Request::get(format!("http://{addr}/hop/hyper"))
        .body(http_body_util::Empty::new())
        .unwrap();
    let response = traced.call(request).await.unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"pong");
    let (client, servers) = hop("/hop/hyper", 1).await;
    assert_eq!(servers[0].parent_span_id(), client.span_id());
    assert_eq!(tag(&client, "network.protocol.version"), "1.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_enrich_activities_through_the_diagnostic_listener() {
    use skein::diagnostics::{subscribe_all_listeners, DiagnosticObserver};
    use std::any::Any;

    /// Tags every activity from the request/response objects it is shown.
    struct Enricher;
    impl DiagnosticObserver for Enricher {
        fn on_next(&self, name: &str, payload: &dyn Any) {
            let Some(current) = Activity::current() else { return };
            if let Some(request) = payload.downcast_ref::<http::request::Parts>() {
                if request.uri.path().contains("/hop/enriched") {
                    current.set_tag(format!("enriched.{name}"), request.method.as_str().to_owned());
                }
            } else if let Some(response) = payload.downcast_ref::<http::response::Parts>() {
                current.set_tag(format!("enriched.{name}"), i64::from(response.status.as_u16()));
            }
        }
    }
    let _all = subscribe_all_listeners(|listener| {
        if listener.name() == skein_http::diagnostics::DIAGNOSTIC_LISTENER_NAME {
            listener.subscribe(Enricher).keep_forever();
        }
    });
    let addr = server().await;
    drop(
        common::traced_client()
            .get(format!("http://{addr}/hop/enriched"))
            .send()
            .await
            .unwrap()
            .text()
            .await,
    );
    let (client, servers) = hop("/hop/enriched", 1).await;
    assert_eq!(tag(&client, "enriched.skein.http.client.request"), "GET");
    assert_eq!(tag(&client, "enriched.skein.http.client.response"), "200");
    assert_eq!(tag(&servers[0], "enriched.skein.http.server.request"), "GET");
    assert_eq!(tag(&servers[0], "enriched.skein.http.server.response"), "200");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hops_through_two_servers_are_one_trace_with_baggage_and_trace_state() {
    // Back end: reports the baggage and trace state it sees.
    let back = Router::new()
        .route(
            "/chain/back",
            get(|| async {
                let current = Activity::current().unwrap();
                format!(
                    "{}|{}",
                    current.baggage_item("tier").unwrap_or_default(),
                    current.trace_state().header()
                )
            }),
        )
        .layer(TraceLayer::new());
    let back = common::serve(back).await;
    // Front end: calls the back end with the instrumented client.
    let front = common::serve_relay("/chain/front", format!("http://{back}/chain/back")).await;

    let root = Activity::new("test caller").start();
    root.set_trace_state(TraceState::parse("vendor=7").unwrap());
    root.add_baggage("tier", "gold");
    let body = common::text(
        common::traced_client()
            .get(format!("http://{front}/chain/front"))
            .send()
            .with_current(),
    )
    .await;
    root.stop();
    assert_eq!(body, "gold|vendor=7", "baggage and trace state reach the second server");

    let (client1, front_servers) = hop("/chain/front", 1).await;
    let (client2, back_servers) = hop("/chain/back", 1).await;
    let chain = [&client1, &front_servers[0], &client2, &back_servers[0]];
    let kinds: Vec<ActivityKind> = chain.iter().map(|a| a.kind()).collect();
    assert_eq!(
        kinds,
        [
            ActivityKind::Client,
            ActivityKind::Server,
            ActivityKind::Client,
            ActivityKind::Server
        ]
    );
    assert_eq!(client1.parent_span_id(), root.span_id());
    let mut parent = client1.span_id();
    for a in &chain[1..] {
        assert_eq!(a.trace_id(), root.trace_id(), "one trace");
        assert_eq!(
            a.parent_span_id(),
            parent,
            "{} is the child of the previous hop",
            a.display_name()
        );
        parent = a.span_id();
    }
    assert_eq!(front_servers[0].display_name(), "GET /chain/front");
    assert_eq!(back_servers[0].display_name(), "GET /chain/back");
    assert_eq!(back_servers[0].baggage_item("tier").as_deref(), Some("gold"));
    assert_eq!(back_servers[0].trace_state().header(), "vendor=7");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_activities_end_with_the_body_and_4xx_answers_are_errors() {
    let addr = server().await;
    let response = common::traced_client()
        .get(format!("http://{addr}/hop/slow-reader"))
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(60)).await;
    let early = common::stopped()
        .into_iter()
        .any(|a| a.kind() == ActivityKind::Client && tag(&a, "url.full").contains("/hop/slow-reader"));
    assert!(!early, "still running while the body is unread");
    assert_eq!(response.text().await.unwrap(), "pong");
    let (client, _) = hop("/hop/slow-reader", 1).await;
    assert!(
        client.duration() >= Duration::from_millis(60),
        "{:?}",
        client.duration()
    );

    let response = common::traced_client()
        .get(format!("http://{addr}/no/such/route"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    drop(response.text().await);
    let (client, _) = hop("/no/such/route", 0).await;
    assert_eq!(tag(&client, "error.type"), "404");
    assert_eq!(client.status(), ActivityStatusCode::Error);
}
