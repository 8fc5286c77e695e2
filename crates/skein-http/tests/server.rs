//! The server layer with axum on real loopback sockets and a real HTTP client.

use std::future::Future as _;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use skein::*;
use skein_http::TraceLayer;

mod common;
use common::{serve, tag};

/// The stopped activities whose `url.path` starts with `prefix`, waiting briefly for them.
async fn stopped(prefix: &str, count: usize) -> Vec<Activity> {
    for _ in 0..200 {
        let found: Vec<Activity> = common::stopped()
            .iter()
            .filter(|a| {
                a.tag("url.path")
                    .and_then(|v| v.as_str().map(|s| s.starts_with(prefix)))
                    == Some(true)
            })
            .cloned()
            .collect();
        if found.len() >= count {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("expected {count} activities under {prefix}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continues_the_callers_trace_with_route_tags_and_baggage() {
    let app = Router::new()
        .route(
            "/orders/{id}",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(5)).await;
                // Current across the await, with the caller's baggage.
                let current = Activity::current().expect("the request activity is current");
                format!(
                    "{}|{}",
                    current.display_name(),
                    current.baggage_item("tier").unwrap_or_default()
                )
            }),
        )
        .layer(TraceLayer::new());
    let addr = serve(app).await;
    let body = common::text(
        reqwest::Client::new()
            .get(format!("http://{addr}/orders/42"))
            .header("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
            .header("tracestate", "vendor=1")
            .header("baggage", "tier=gold")
            .header("user-agent", "skein-test/1")
            .send(),
    )
    .await;
    assert_eq!(body, "GET /orders/{id}|gold");
    let a = &stopped("/orders/", 1).await[0];
    assert_eq!(a.display_name(), "GET /orders/{id}");
    assert_eq!(a.kind(), ActivityKind::Server);
    assert_eq!(a.trace_id().to_hex(), "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(a.parent_span_id().to_hex(), "b7ad6b7169203331");
    assert!(a.has_remote_parent() && a.recorded());
    assert_eq!(a.trace_state().header(), "vendor=1");
    assert_eq!(tag(a, "http.request.method"), "GET");
    assert_eq!(tag(a, "url.path"), "/orders/42");
    assert_eq!(tag(a, "url.scheme"), "http");
    assert_eq!(tag(a, "http.route"), "/orders/{id}");
    assert_eq!(tag(a, "http.response.status_code"), "200");
    assert_eq!(tag(a, "server.address"), "127.0.0.1");
    assert_eq!(tag(a, "server.port"), addr.port().to_string());
    assert_eq!(tag(a, "network.protocol.version"), "1.1");
    assert_eq!(tag(a, "user_agent.original"), "skein-test/1");
    assert_eq!(a.status(), ActivityStatusCode::Unset);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_and_panics_are_errors_client_errors_are_not() {
    let app = Router::new()
        .route(
            "/status/fail",
            get(|| async { (axum::http::StatusCode::SERVICE_UNAVAILABLE, "down") }),
        )
        .route(
            "/status/panic",
            get(|| async {
                if std::hint::black_box(true) {
                    panic!("handler bug");
                }
                "unreachable"
            }),
        )
        .layer(TraceLayer::new());
    let addr = serve(app).await;
    let client = reqwest::Client::new();
    let fail = client.get(format!("http://{addr}/status/fail")).send().await.unwrap();
    assert_eq!(fail.status(), 503);
    let missing = client
        .get(format!("http://{addr}/status/missing"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    // A panicking handler closes the connection: the client sees an error.
    assert!(client.get(format!("http://{addr}/status/panic")).send().await.is_err());

    let all = stopped("/status/", 3).await;
    let by_path = |p: &str| all.iter().find(|a| tag(a, "url.path") == p).unwrap().clone();
    let fail = by_path("/status/fail");
    assert_eq!(fail.status(), ActivityStatusCode::Error);
    assert_eq!(tag(&fail, "error.type"), "503");
    let missing = by_path("/status/missing");
    assert_eq!(missing.status(), ActivityStatusCode::Unset, "4xx is the client's error");
    assert_eq!(tag(&missing, "http.response.status_code"), "404");
    assert_eq!(missing.display_name(), "GET", "no route matched");
    let panicked = by_path("/status/panic");
    assert_eq!(panicked.status(), ActivityStatusCode::Error);
    assert_eq!(tag(&panicked, "error.type"), "panic");
}

/// Two chunks 60 ms apart.
struct SlowBody {
    step: u8,
    sleep: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl http_body::Body for SlowBody {
    type Data = axum::body::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        use std::task::Poll;
        match self.step {
            0 => {
                self.step = 1;
                Poll::Ready(Some(Ok(http_body::Frame::data("a".into()))))
            }
            1 => {
                let sleep = self
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(Duration::from_millis(60))));
                std::task::ready!(sleep.as_mut().poll(cx));
                self.step = 2;
                Poll::Ready(Some(Ok(http_body::Frame::data("b".into()))))
            }
            _ => Poll::Ready(None),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_activity_lasts_until_the_body_is_sent() {
    let app = Router::new()
        .route(
            "/stream/slow",
            get(|| async { axum::body::Body::new(SlowBody { step: 0, sleep: None }) }),
        )
        .layer(TraceLayer::new());
    let addr = serve(app).await;
    let body = common::text(reqwest::get(format!("http://{addr}/stream/slow"))).await;
    assert_eq!(body, "ab");
    let a = &stopped("/stream/", 1).await[0];
    assert!(
        a.duration() >= Duration::from_millis(50),
        "ended with the body, not the headers: {:?}",
        a.duration()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_id_parents_filters_and_bad_headers() {
    let app = Router::new()
        .route("/misc/legacy", get(|| async { "ok" }))
        .route("/misc/health", get(|| async { "ok" }))
        .route("/misc/garbage", get(|| async { "ok" }))
        .layer(TraceLayer::new().with_filter(|parts| parts.uri.path() != "/misc/health"));
    let addr = serve(app).await;
    let client = reqwest::Client::new();
    client
        .get(format!("http://{addr}/misc/legacy"))
        .header("Request-Id", "|abc.1.")
        .header("Correlation-Context", "tier=silver")
        .send()
        .await
        .unwrap();
    client.get(format!("http://{addr}/misc/health")).send().await.unwrap();
    client
        .get(format!("http://{addr}/misc/garbage"))
        .header("traceparent", "00-not-a-valid-header")
        .send()
        .await
        .unwrap();
    let all = stopped("/misc/", 2).await;
    assert!(all.iter().all(|a| tag(a, "url.path") != "/misc/health"), "filtered out");
    let legacy = all.iter().find(|a| tag(a, "url.path") == "/misc/legacy").unwrap();
    assert_eq!(legacy.id_format(), ActivityIdFormat::Hierarchical);
    assert!(legacy.id().unwrap().starts_with("|abc.1."));
    assert_eq!(legacy.baggage_item("tier").as_deref(), Some("silver"));
    let garbage = all.iter().find(|a| tag(a, "url.path") == "/misc/garbage").unwrap();
    assert!(
        !garbage.parent_span_id().is_valid() && !garbage.has_remote_parent(),
        "a fresh trace"
    );
}

/// How the server must treat an incoming header set.
enum Expect {
    /// Continues trace `0af7…319c` under `b7ad…3331`, with this trace state ("" for none).
    Continue(&'static str),
    /// Starts a fresh trace.
    NewTrace,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_class_of_incoming_header_continues_or_restarts_the_trace_without_failing() {
    const TP: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let app = Router::new()
        .route("/hdr/{case}", get(|| async { "ok" }))
        .layer(TraceLayer::new());
    let addr = serve(app).await;
    let members: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
    let members = members.join(",");
    let too_many_members = [("traceparent", TP), ("tracestate", members.as_str())];
    let cases: Vec<(&[(&str, &str)], Expect)> = vec![
        (&[("traceparent", TP)], Expect::Continue("")),
        (&[("TraceParent", TP), ("TRACESTATE", "a=1")], Expect::Continue("a=1")),
        // hyper trims the whitespace around a field value.
        (
            &[(
                "traceparent",
                "  00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\t",
            )],
            Expect::Continue(""),
        ),
        // A higher version is read by its version-00 prefix.
        (
            &[(
                "traceparent",
                "cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            )],
            Expect::Continue(""),
        ),
        // Split and repeated tracestate headers are one list.
        (
            &[("traceparent", TP), ("tracestate", "a=1"), ("tracestate", "b=2")],
            Expect::Continue("a=1,b=2"),
        ),
        // A repeated key is tolerated (the first kept), as the W3C suite expects.
        (
            &[("traceparent", TP), ("tracestate", "a=1,a=2")],
            Expect::Continue("a=1"),
        ),
        // Invalid trace state is dropped whole, the parent kept.
        (&[("traceparent", TP), ("tracestate", "UPPER=1")], Expect::Continue("")),
        (&[("traceparent", TP), ("tracestate", "a=x=y")], Expect::Continue("")),
        (&too_many_members, Expect::Continue("")),
        // Each malformed traceparent class starts a new trace.
        (
            &[("traceparent", "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")],
            Expect::NewTrace,
        ),
        (
            &[(
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-",
            )],
            Expect::NewTrace,
        ),
        (
            &[("traceparent", "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01")],
            Expect::NewTrace,
        ),
        (
            &[("traceparent", "00-00000000000000000000000000000000-b7ad6b7169203331-01")],
            Expect::NewTrace,
        ),
        (
            &[("traceparent", "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01")],
            Expect::NewTrace,
        ),
        (
            &[("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01")],
            Expect::NewTrace,
        ),
        (
            &[("traceparent", "00_0af7651916cd43dd8448eb211c80319c_b7ad6b7169203331_01")],
            Expect::NewTrace,
        ),
        (
            &[("traceparent", "00-0af7651916cd43dd8448eb211c80319g-b7ad6b7169203331-01")],
            Expect::NewTrace,
        ),
        (
            &[("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0x")],
            Expect::NewTrace,
        ),
        (&[("traceparent", "")], Expect::NewTrace),
        // Two parents are no parent.
        (
            &[
                ("traceparent", TP),
                ("traceparent", "00-11111111111111111111111111111111-2222222222222222-01"),
            ],
            Expect::NewTrace,
        ),
        // An invalid Request-Id is ignored too.
        (&[("Request-Id", "|bad id with spaces.")], Expect::NewTrace),
    ];
    let client = reqwest::Client::new();
    for (i, (headers, _)) in cases.iter().enumerate() {
        let mut request = client.get(format!("http://{addr}/hdr/{i}"));
        for (name, value) in headers.iter() {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200, "case {i}");
    }
    let all = stopped("/hdr/", cases.len()).await;
    for (i, (headers, expect)) in cases.iter().enumerate() {
        let a = all
            .iter()
            .find(|a| tag(a, "url.path") == format!("/hdr/{i}"))
            .unwrap_or_else(|| panic!("case {i}: no activity"));
        match expect {
            Expect::Continue(state) => {
                assert_eq!(
                    a.trace_id().to_hex(),
                    "0af7651916cd43dd8448eb211c80319c",
                    "case {i}: {headers:?}"
                );
                assert_eq!(a.parent_span_id().to_hex(), "b7ad6b7169203331", "case {i}");
                assert!(a.has_remote_parent(), "case {i}");
                assert_eq!(a.trace_state().header(), *state, "case {i}: {headers:?}");
            }
            Expect::NewTrace => {
                assert!(!a.parent_span_id().is_valid(), "case {i}: {headers:?}");
                assert!(!a.has_remote_parent(), "case {i}");
                assert_ne!(a.trace_id().to_hex(), "0af7651916cd43dd8448eb211c80319c", "case {i}");
                assert!(a.recorded(), "case {i}: a new root is sampled by the listener");
            }
        }
    }
}
