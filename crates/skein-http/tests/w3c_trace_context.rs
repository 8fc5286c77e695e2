//! The cases of the W3C Trace Context test suite (level 2, strict) that Skein failed, run
//! against the same test service (`examples/w3c_test_service.rs`) over loopback: the service
//! receives headers and calls back a harness, which checks what was propagated. The suite
//! itself (Python) passes 41/41 against the example; see the example's docs for running it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
use axum::routing::post;
use axum::Router;

#[path = "../examples/w3c_test_service.rs"]
#[allow(dead_code)]
mod service;

const PARENT: &str = "00-12345678901234567890123456789012-1234567890123456-00";

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

struct Harness {
    service: SocketAddr,
    callback: SocketAddr,
    received: Arc<Mutex<Vec<HeaderMap>>>,
}

impl Harness {
    async fn start() -> Harness {
        let received = Arc::new(Mutex::new(Vec::new()));
        let store = received.clone();
        let callback = serve(Router::new().route(
            "/callback",
            post(move |headers: HeaderMap| {
                let store = store.clone();
                async move {
                    store.lock().unwrap().push(headers);
                    "ok"
                }
            }),
        ))
        .await;
        Harness {
            service: serve(service::router()).await,
            callback,
            received,
        }
    }

    /// Sends `headers` to the service and returns the (traceparent, tracestate) of its
    /// callback.
    async fn propagated(&self, headers: &[(&str, &str)]) -> (String, String) {
        self.received.lock().unwrap().clear();
        let mut request = reqwest::Client::new()
            .post(format!("http://{}/test", self.service))
            .header("content-type", "application/json")
            .body(format!(
                r#"[{{"url": "http://{}/callback", "arguments": []}}]"#,
                self.callback
            ));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        assert_eq!(request.send().await.unwrap().status(), 200);
        let received = self.received.lock().unwrap();
        let headers = received.first().expect("the service called back");
        let get = |name| {
            headers
                .get_all(name)
                .iter()
                .map(|v| v.to_str().unwrap().to_owned())
                .collect::<Vec<_>>()
                .join(",")
        };
        (get("traceparent"), get("tracestate"))
    }
}

fn trace_id(traceparent: &str) -> &str {
    traceparent.split('-').nth(1).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suites_tracestate_and_level_2_cases() {
    let _export = skein_export::ExportPipeline::new()
        .with_sources(["skein.http.*"])
        .simple(skein_export::InMemoryExporter::default())
        .install();
    let harness = Harness::start().await;

    // Duplicated keys are tolerated: the header is kept (the first value here).
    for tracestate in [&["foo=1,foo=2"][..], &["foo=1", "foo=2"][..]] {
        let mut headers = vec![("traceparent", PARENT)];
        headers.extend(tracestate.iter().map(|t| ("tracestate", *t)));
        let (traceparent, state) = harness.propagated(&headers).await;
        assert_eq!(trace_id(&traceparent), "12345678901234567890123456789012");
        assert!(
            state.contains("foo=1") || state.contains("foo=2"),
            "{tracestate:?} -> {state:?}"
        );
    }

    // Keys with `@` anywhere but first are keys; `@foo` discards the whole header.
    for (tracestate, kept) in [
        ("foo@=1,bar=2", true),
        ("foo@@bar=1,bar=2", true),
        ("foo@bar@baz=1,bar=2", true),
        ("123@456=1,bar=2", true),
        ("1start=1,bar=2", true),
        ("@foo=1,bar=2", false),
    ] {
        let (_, state) = harness
            .propagated(&[("traceparent", PARENT), ("tracestate", tracestate)])
            .await;
        assert_eq!(state.contains("bar=2"), kept, "{tracestate} -> {state:?}");
        if kept {
            assert!(state.starts_with(tracestate.split(',').next().unwrap()), "{state}");
        }
    }

    // Key lengths: 256 characters in all, wherever the `@` is.
    for (key, kept) in [
        ("z".repeat(256), true),
        ("z".repeat(257), false),
        (format!("{}@{}", "t".repeat(241), "v".repeat(14)), true),
        (format!("{}@v", "t".repeat(242)), true),
        (format!("t@{}", "v".repeat(15)), true),
    ] {
        let member = format!("{key}=1");
        let (_, state) = harness
            .propagated(&[
                ("traceparent", PARENT),
                ("tracestate", "foo=1"),
                ("tracestate", &member),
            ])
            .await;
        assert_eq!(state.contains("foo=1"), kept, "{} characters -> {state:?}", key.len());
        assert_eq!(state.contains(&member), kept);
    }

    // Level 2: the random flag goes on with the trace; a future version's extra fields are
    // accepted; two traceparent headers start a new trace.
    let (traceparent, _) = harness
        .propagated(&[("traceparent", "00-12345678901234567890123456789012-1234567890123456-02")])
        .await;
    assert_eq!(trace_id(&traceparent), "12345678901234567890123456789012");
    let flags = u8::from_str_radix(traceparent.rsplit('-').next().unwrap(), 16).unwrap();
    assert_eq!(flags & 2, 2, "{traceparent}");
    let (traceparent, _) = harness
        .propagated(&[(
            "traceparent",
            "cc-12345678901234567890123456789012-1234567890123456-01-what-the-future-will-be-like",
        )])
        .await;
    assert_eq!(trace_id(&traceparent), "12345678901234567890123456789012");
    let (traceparent, _) = harness
        .propagated(&[
            ("traceparent", "00-12345678901234567890123456789011-1234567890123456-01"),
            ("traceparent", "00-12345678901234567890123456789012-1234567890123456-01"),
        ])
        .await;
    assert!(
        !traceparent.contains("1234567890123456789012345678901"),
        "{traceparent}"
    );
}
