//! The dashboard in a real headless Chromium: known traces and logs go in over OTLP/HTTP, then
//! the tests use the pages as a person would — search, open, fold, read details, follow links,
//! switch pages — and assert on what the pages show. Screenshots of each page are kept under
//! `target/tmp/dashboard-screenshots/`.

mod common;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fantoccini::key::Key;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use skein_browser_test::Browser;

const MS: u64 = 1_000_000;

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64
}

fn artefacts() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots")
}

fn text(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
        ..Default::default()
    }
}

/// One span of a fixture: times are milliseconds after the trace's start.
#[derive(Clone, Default)]
struct Fixture {
    service: &'static str,
    trace: [u8; 16],
    id: u64,
    parent: u64,
    name: &'static str,
    kind: span::SpanKind,
    start_ms: u64,
    end_ms: u64,
    attributes: Vec<KeyValue>,
    error: Option<&'static str>,
    events: Vec<span::Event>,
    links: Vec<span::Link>,
}

#[allow(clippy::too_many_arguments)]
fn fx(
    service: &'static str,
    trace: [u8; 16],
    id: u64,
    parent: u64,
    name: &'static str,
    kind: span::SpanKind,
    start_ms: u64,
    end_ms: u64,
) -> Fixture {
    Fixture {
        service,
        trace,
        id,
        parent,
        name,
        kind,
        start_ms,
        end_ms,
        ..Default::default()
    }
}

/// One OTLP request with a resource per service.
fn traces_request(base: u64, spans: &[Fixture]) -> Vec<u8> {
    let mut services: Vec<&str> = spans.iter().map(|s| s.service).collect();
    services.sort();
    services.dedup();
    let resource_spans = services
        .into_iter()
        .map(|service| ResourceSpans {
            resource: Some(Resource {
                attributes: vec![text("service.name", service), text("deployment.environment", "test")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: format!("{service}.instrumentation"),
                    version: "1.2.3".into(),
                    ..Default::default()
                }),
                spans: spans
                    .iter()
                    .filter(|s| s.service == service)
                    .map(|s| Span {
                        trace_id: s.trace.to_vec(),
                        span_id: s.id.to_be_bytes().to_vec(),
                        parent_span_id: if s.parent == 0 {
                            Vec::new()
                        } else {
                            s.parent.to_be_bytes().to_vec()
                        },
                        name: s.name.into(),
                        kind: s.kind as i32,
                        start_time_unix_nano: base + s.start_ms * MS,
                        end_time_unix_nano: base + s.end_ms * MS,
                        attributes: s.attributes.clone(),
                        events: s.events.clone(),
                        links: s.links.clone(),
                        status: s.error.map(|message| Status {
                            code: 2,
                            message: message.into(),
                        }),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest { resource_spans }.encode_to_vec()
}

/// A collector on loopback ports: its OTLP/HTTP address and the dashboard's URL.
struct Scene {
    running: common::Running,
    addr: std::net::SocketAddr,
    ui: String,
}

impl Scene {
    async fn start() -> Scene {
        let running = common::start().await;
        let addr = running.collector.otlp_http_addr();
        let ui = format!("http://{}", running.collector.ui_addr());
        Scene { running, addr, ui }
    }

    async fn end(running: common::Running, browser: Browser) {
        browser.close().await;
        running.collector.shutdown().await;
    }
}

const CHECKOUT: [u8; 16] = [0xa1; 16];
const CONNECTION: [u8; 16] = [0xb2; 16];
const PAYMENT: [u8; 16] = [0xc3; 16];

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn span_hex(id: u64) -> String {
    format!("{id:016x}")
}

/// The storefront story: a checkout whose time goes to the discount rule in `orders`, the
/// connection setup it links to, a failing payment, quick health checks, and their logs.
fn story(base: u64) -> (Vec<u8>, Vec<u8>) {
    use span::SpanKind::{Client, Internal, Server};
    let mut spans = Vec::new();
    let mut root = fx("storefront", CHECKOUT, 1, 0, "GET /checkout", Server, 0, 400);
    root.attributes = vec![
        text("http.request.method", "GET"),
        text("url.path", "/checkout"),
        text("customer.tier", "gold"),
    ];
    spans.push(root);
    let mut call_orders = fx("storefront", CHECKOUT, 2, 1, "POST orders", Client, 10, 392);
    call_orders.links = vec![span::Link {
        trace_id: CONNECTION.to_vec(),
        span_id: 21u64.to_be_bytes().to_vec(),
        attributes: vec![text("link.kind", "connection")],
        ..Default::default()
    }];
    spans.push(call_orders);
    spans.push(fx("orders", CHECKOUT, 3, 2, "POST /orders", Server, 12, 390));
    let mut rule = fx("orders", CHECKOUT, 4, 3, "evaluate discount rule", Internal, 20, 380);
    rule.attributes = vec![
        text("discount.rule", "loyalty-tier-3"),
        int("discount.candidates", 4096),
    ];
    rule.events = vec![span::Event {
        time_unix_nano: base + 200 * MS,
        name: "rule cache miss".into(),
        attributes: vec![text("cache", "rules")],
        ..Default::default()
    }];
    spans.push(rule);
    let mut insert = fx("orders", CHECKOUT, 5, 3, "INSERT orders", Client, 381, 388);
    insert.attributes = vec![
        text("db.system.name", "sqlite"),
        text("db.query.text", "INSERT INTO orders VALUES (?, ?)"),
    ];
    spans.push(insert);
    // In parallel with the orders call, so not on the critical path.
    spans.push(fx("storefront", CHECKOUT, 6, 1, "GET catalog", Client, 15, 60));
    spans.push(fx("catalog", CHECKOUT, 7, 6, "GET /items", Server, 16, 58));

    spans.push(fx(
        "storefront",
        CONNECTION,
        21,
        0,
        "HTTP connection_setup",
        Internal,
        0,
        30,
    ));
    spans.push(fx("storefront", CONNECTION, 22, 21, "dns", Internal, 0, 2));
    spans.push(fx("storefront", CONNECTION, 23, 21, "connect", Internal, 2, 6));
    spans.push(fx("storefront", CONNECTION, 24, 21, "tls handshake", Internal, 6, 30));

    let pay_base = 500;
    spans.push(fx(
        "storefront",
        PAYMENT,
        31,
        0,
        "POST /pay",
        Server,
        pay_base,
        pay_base + 120,
    ));
    let mut call_pay = fx(
        "storefront",
        PAYMENT,
        32,
        31,
        "POST payments",
        Client,
        pay_base + 5,
        pay_base + 110,
    );
    call_pay.attributes = vec![int("http.response.status_code", 503)];
    call_pay.error = Some("503 Service Unavailable");
    spans.push(call_pay);
    let mut charge = fx(
        "payments",
        PAYMENT,
        33,
        32,
        "POST /charge",
        Server,
        pay_base + 8,
        pay_base + 100,
    );
    charge.attributes = vec![int("http.response.status_code", 503), text("customer.tier", "silver")];
    charge.error = Some("card processor unavailable");
    charge.events = vec![span::Event {
        time_unix_nano: base + (pay_base + 90) * MS,
        name: "exception".into(),
        attributes: vec![
            text("exception.type", "ProcessorUnavailable"),
            text("exception.message", "card processor unavailable"),
            text(
                "exception.stacktrace",
                "at payments::charge (src/charge.rs:42)\nat payments::handler (src/main.rs:7)",
            ),
        ],
        ..Default::default()
    }];
    spans.push(charge);

    // Quick health checks, for the scatter plot and the statistics.
    for i in 0..12u64 {
        let mut trace = [0x10; 16];
        trace[15] = i as u8;
        let start = 700 + i * 20;
        spans.push(fx(
            "storefront",
            trace,
            100 + i,
            0,
            "GET /health",
            Server,
            start,
            start + 2 + i,
        ));
    }

    let log = |service: &str, severity: i32, level: &str, body: &str, trace: [u8; 16], span_id: u64| ResourceLogs {
        resource: Some(Resource {
            attributes: vec![text("service.name", service)],
            ..Default::default()
        }),
        scope_logs: vec![ScopeLogs {
            log_records: vec![LogRecord {
                time_unix_nano: base + 210 * MS,
                observed_time_unix_nano: base + 210 * MS,
                severity_number: severity,
                severity_text: level.into(),
                body: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(body.into())),
                }),
                attributes: vec![text("order.id", "o-17")],
                trace_id: trace.to_vec(),
                span_id: span_id.to_be_bytes().to_vec(),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let logs = ExportLogsServiceRequest {
        resource_logs: vec![
            log("storefront", 9, "INFO", "checkout started", CHECKOUT, 1),
            log("orders", 13, "WARN", "discount rule slow: 360 ms", CHECKOUT, 4),
            log(
                "payments",
                17,
                "ERROR",
                "charge failed: card processor unavailable",
                PAYMENT,
                33,
            ),
        ],
    };
    (traces_request(base, &spans), logs.encode_to_vec())
}

/// A collector holding the storefront story: (it, its UI's URL, the checkout's trace id, the
/// story's start).
async fn with_story() -> (common::Running, String, String, u64) {
    let running = common::start().await;
    let base = now() - 120_000 * MS;
    let (traces, logs) = story(base);
    post(running.collector.otlp_http_addr(), "/v1/traces", traces).await;
    post(running.collector.otlp_http_addr(), "/v1/logs", logs).await;
    let checkout = hex(&CHECKOUT);
    running.trace(&checkout, 7).await;
    let ui = format!("http://{}", running.collector.ui_addr());
    (running, ui, checkout, base)
}

async fn post(addr: std::net::SocketAddr, path: &str, body: Vec<u8>) {
    let (status, _, _) = common::post_path(addr, path, "application/x-protobuf", None, body).await;
    assert_eq!(status, 200, "{path}");
}

/// Rows in the waterfall as (span id, critical?) for the rendered rows.
async fn rendered_rows(browser: &Browser) -> Vec<(String, bool)> {
    let value = browser
        .eval("return [...document.querySelectorAll('.wf-row')].map(r => [r.dataset.spanId, r.dataset.critical === 'true']);")
        .await;
    serde_json::from_value(value).unwrap()
}

fn key(k: Key) -> String {
    char::from(k).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_developer_finds_the_slow_checkout_and_follows_it_everywhere() {
    let running = common::start().await;
    let base = now() - 120_000 * MS;
    let (traces, logs) = story(base);
    post(running.collector.otlp_http_addr(), "/v1/traces", traces).await;
    post(running.collector.otlp_http_addr(), "/v1/logs", logs).await;
    running.trace(&hex(&CHECKOUT), 7).await;
    let ui = format!("http://{}", running.collector.ui_addr());
    let browser = Browser::start(artefacts()).await;

    // Traces page: list and scatter plot.
    browser.goto(&format!("{ui}/")).await;
    browser.wait_for_text("#trace-list", "GET /checkout").await;
    assert_eq!(
        browser.location().await,
        "/traces",
        "the root redirects to the traces page"
    );
    let points = browser
        .eval("return document.querySelectorAll('#scatter-plot circle').length;")
        .await;
    assert_eq!(points, 15, "one point per trace");
    browser.screenshot("traces").await;

    // Search by attribute and duration: only the slow gold checkout matches.
    let form = browser.find("#trace-search").await;
    form.find(fantoccini::Locator::Css("input[name=attr]"))
        .await
        .unwrap()
        .send_keys("customer.tier=gold")
        .await
        .unwrap();
    form.find(fantoccini::Locator::Css("input[name=min_duration]"))
        .await
        .unwrap()
        .send_keys("300ms")
        .await
        .unwrap();
    browser.click("#trace-search button[type=submit]").await;
    browser
        .wait_until(
            "one result",
            "document.querySelectorAll('#trace-list tbody tr').length === 1",
        )
        .await;
    let row = browser.texts("#trace-list tbody tr").await;
    assert!(row[0].contains("GET /checkout") && row[0].contains("400 ms"), "{row:?}");
    let location = browser.location().await;
    assert!(
        location.contains("attr=customer.tier%3Dgold") && location.contains("min_duration=300ms"),
        "the search is in the URL: {location}"
    );

    // The same search from a deep link (a reload) gives the same result.
    browser.goto(&format!("{ui}{location}")).await;
    browser
        .wait_until(
            "one result after reload",
            "document.querySelectorAll('#trace-list tbody tr').length === 1",
        )
        .await;

    // Open the trace.
    browser.click("#trace-list tbody tr td a").await;
    browser.wait_for_text("#trace-title", "GET /checkout").await;
    assert_eq!(browser.location().await, format!("/traces/{}", hex(&CHECKOUT)));
    let rows = rendered_rows(&browser).await;
    assert_eq!(rows.len(), 7, "every span is a row: {rows:?}");
    // The critical path: the chain through orders and its discount rule, not the catalog call.
    let critical: Vec<_> = rows.iter().filter(|(_, c)| *c).map(|(id, _)| id.clone()).collect();
    assert_eq!(critical, [1, 2, 3, 4, 5].map(span_hex), "critical path rows");
    let where_time_went = browser.texts("#where-time-went .cp-item").await;
    assert!(
        where_time_went[0].trim().starts_with("evaluate discount rule 360 ms"),
        "{where_time_went:?}"
    );
    browser.screenshot("trace").await;

    // Collapse and expand the orders server span.
    let orders_toggle = format!(".wf-row[data-span-id='{}'] .toggle", span_hex(3));
    browser.click(&orders_toggle).await;
    browser
        .wait_until("orders collapsed", "document.querySelectorAll('.wf-row').length === 5")
        .await;
    browser
        .wait_for_text(&format!(".wf-row[data-span-id='{}']", span_hex(3)), "+2")
        .await;
    assert!(browser.location().await.contains(&format!("collapsed={}", span_hex(3))));
    browser.click(&orders_toggle).await;
    browser
        .wait_until("orders expanded", "document.querySelectorAll('.wf-row').length === 7")
        .await;

    // Span details: the business rule, its attributes, events, self time and logs.
    browser.click(&format!(".wf-row[data-span-id='{}']", span_hex(4))).await;
    browser.wait_for_text("#detail-name", "evaluate discount rule").await;
    browser.wait_for_text("#detail-attributes", "loyalty-tier-3").await;
    browser.wait_for_text("#detail-events", "rule cache miss").await;
    browser.wait_for_text("#detail-logs", "discount rule slow").await;
    assert_eq!(browser.texts("#detail-self").await, ["360 ms"]);
    assert!(browser.location().await.contains(&format!("span={}", span_hex(4))));

    // Keyboard: down moves to the next row (the INSERT), left goes back to the parent.
    let waterfall = browser.find("#waterfall").await;
    waterfall.send_keys(&key(Key::Down)).await.unwrap();
    browser.wait_for_text("#detail-name", "INSERT orders").await;
    waterfall.send_keys(&key(Key::Left)).await.unwrap();
    browser.wait_for_text("#detail-name", "POST /orders").await;

    // Search within the trace.
    let find = browser.find("#trace-find").await;
    find.send_keys("sqlite").await.unwrap();
    browser.wait_for_text("#match-info", "1 match").await;
    let matched = browser
        .eval("return [...document.querySelectorAll('.wf-row.match')].map(r => r.dataset.spanId);")
        .await;
    assert_eq!(matched, serde_json::json!([span_hex(5)]));
    find.clear().await.unwrap();
    find.send_keys(" ").await.unwrap();

    // Zoom: to the selected span and back.
    browser.click(&format!(".wf-row[data-span-id='{}']", span_hex(6))).await;
    browser.click("#zoom-span").await;
    browser
        .wait_until("zoom in the URL", "location.search.includes('zoom=')")
        .await;
    browser.click("#zoom-reset").await;
    browser
        .wait_until("zoom reset", "!location.search.includes('zoom=')")
        .await;

    // Follow the link from the storefront's client span to the connection-setup trace, and back.
    browser.click(&format!(".wf-row[data-span-id='{}']", span_hex(2))).await;
    browser.wait_for_text("#detail-links", "link.kind").await;
    browser.click("#detail-links a.span-link").await;
    browser.wait_for_text("#trace-title", "HTTP connection_setup").await;
    assert_eq!(
        browser.location().await,
        format!("/traces/{}?span={}", hex(&CONNECTION), span_hex(21))
    );
    browser.wait_for_text("#detail-name", "HTTP connection_setup").await;
    browser
        .wait_for_text("#detail-linked-from .linked-from-entry", "storefront")
        .await;
    browser.screenshot("connection-setup").await;
    browser.click("#detail-linked-from .linked-from-entry a").await;
    browser.wait_for_text("#trace-title", "GET /checkout").await;
    browser.client().back().await.unwrap();
    browser.wait_for_text("#trace-title", "HTTP connection_setup").await;

    // Errors only: the failing payment, with its exception and stack text.
    browser.goto(&format!("{ui}/traces?errors=true")).await;
    browser
        .wait_until(
            "one error trace",
            "document.querySelectorAll('#trace-list tbody tr').length === 1",
        )
        .await;
    browser.wait_for_text("#trace-list", "2 errors").await;
    browser.click("#trace-list tbody tr td a").await;
    browser.wait_for_text("#trace-title", "POST /pay").await;
    browser
        .click(&format!(".wf-row[data-span-id='{}']", span_hex(33)))
        .await;
    browser
        .wait_for_text("#detail-exceptions", "ProcessorUnavailable")
        .await;
    browser
        .wait_for_text("#detail-exceptions pre", "src/charge.rs:42")
        .await;

    // Services page: the map with calls and errors on the edges, statistics per operation.
    browser.goto(&format!("{ui}/services")).await;
    browser.find("#dependency-map svg").await;
    let services = browser
        .eval("return [...document.querySelectorAll('#dependency-map .node')].map(n => n.dataset.service).sort();")
        .await;
    assert_eq!(
        services,
        serde_json::json!(["catalog", "orders", "payments", "storefront"])
    );
    let edge = browser
        .texts("#dependency-map [data-edge='storefront->payments']")
        .await;
    assert_eq!(edge, ["1 call · 1 error"]);
    browser.wait_for_text("#stats-table", "evaluate discount rule").await;
    let health = browser.texts("#stats-table tr[data-operation='GET /health'] td").await;
    assert_eq!(health[1], "12", "calls of GET /health: {health:?}");
    browser.screenshot("services").await;
    browser
        .client()
        .find(fantoccini::Locator::Css("#dependency-map .node[data-service='orders']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait_until("orders traces", "location.search.includes('service=orders')")
        .await;
    browser.wait_for_text("#trace-list", "GET /checkout").await;

    // Logs page: filter by level, then open the trace of a record.
    browser.goto(&format!("{ui}/logs")).await;
    browser.wait_for_text("#log-table", "discount rule slow").await;
    assert_eq!(browser.texts("#log-table tbody tr").await.len(), 3);
    browser.screenshot("logs").await;
    browser
        .find("#log-search select[name=min_severity]")
        .await
        .select_by_value("error")
        .await
        .unwrap();
    browser.click("#log-search button[type=submit]").await;
    browser
        .wait_until(
            "only the error log",
            "document.querySelectorAll('#log-table tbody tr').length === 1",
        )
        .await;
    browser.wait_for_text("#log-table", "charge failed").await;
    assert!(browser.location().await.contains("min_severity=error"));
    browser.click("#log-table a.trace-link").await;
    browser.wait_for_text("#trace-title", "POST /pay").await;
    browser.wait_for_text("#detail-name", "POST /charge").await;

    // Dark theme and UTC stay chosen across pages.
    browser.click("#theme-toggle").await;
    browser.click("#tz-toggle").await;
    browser
        .goto(&format!("{ui}/traces/{}?span={}", hex(&CHECKOUT), span_hex(4)))
        .await;
    browser.wait_for_text("#detail-name", "evaluate discount rule").await;
    let theme = browser.eval("return document.documentElement.dataset.theme;").await;
    let light_default = browser
        .eval("return matchMedia('(prefers-color-scheme: dark)').matches;")
        .await;
    assert_eq!(theme, if light_default == true { "light" } else { "dark" });
    browser.wait_for_text(".trace-head", "UTC").await;
    browser.screenshot("trace-theme-toggled").await;

    // API errors are shown, not swallowed.
    browser.goto(&format!("{ui}/traces?min_duration=fast")).await;
    browser
        .wait_for_text(".error-box", "min_duration: \"fast\" is not a duration")
        .await;
    browser.goto(&format!("{ui}/traces/{}", "ee".repeat(16))).await;
    browser.wait_for_text(".error-box", "no trace").await;

    browser.close().await;
    running.collector.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_live_evicted_and_huge_traces() {
    let running = common::start_with(|c| {
        c.retention = Duration::from_secs(3600);
        c.retention_interval = Duration::from_millis(200);
    })
    .await;
    let addr = running.collector.otlp_http_addr();
    let ui = format!("http://{}", running.collector.ui_addr());
    let browser = Browser::start(artefacts()).await;

    // Nothing received yet: the page says where to send OTLP.
    browser.goto(&format!("{ui}/traces")).await;
    browser
        .wait_for_text("#empty-state", &format!("No traces yet — send OTLP to {addr}"))
        .await;
    browser.screenshot("empty").await;

    // Live mode: a trace sent while the page is open appears without a reload.
    browser.goto(&format!("{ui}/traces?live=1")).await;
    browser.find("#empty-state").await;
    let base = now();
    let live = [0x5e; 16];
    let mut span = fx("storefront", live, 1, 0, "GET /live", span::SpanKind::Server, 0, 5);
    span.attributes = vec![text("url.path", "/live")];
    post(addr, "/v1/traces", traces_request(base, &[span])).await;
    browser.wait_for_text("#trace-list", "GET /live").await;

    // Pause holds new traces back and counts them.
    browser.click("#live-pause").await;
    let paused = [0x5f; 16];
    post(
        addr,
        "/v1/traces",
        traces_request(
            base,
            &[fx(
                "storefront",
                paused,
                1,
                0,
                "GET /paused",
                span::SpanKind::Server,
                0,
                5,
            )],
        ),
    )
    .await;
    browser.wait_for_text("#live-pause", "Resume (1 new)").await;
    assert!(!browser.texts("#trace-list").await[0].contains("GET /paused"));
    browser.click("#live-pause").await;
    browser.wait_for_text("#trace-list", "GET /paused").await;

    // A trace of 10,001 spans: the waterfall renders only what is on screen and still reaches
    // the last span.
    let huge = [0x77; 16];
    let mut spans = vec![fx("loadgen", huge, 1, 0, "batch", span::SpanKind::Internal, 0, 10_000)];
    for i in 0..100u64 {
        spans.push(fx(
            "loadgen",
            huge,
            2 + i,
            1,
            "chunk",
            span::SpanKind::Internal,
            i * 100,
            i * 100 + 100,
        ));
        for j in 0..99u64 {
            let start = i * 100 + j;
            spans.push(fx(
                "worker",
                huge,
                1000 + i * 100 + j,
                2 + i,
                "item",
                span::SpanKind::Internal,
                start,
                start + 1,
            ));
        }
    }
    assert_eq!(spans.len(), 10_001);
    for part in spans.chunks(2500) {
        post(addr, "/v1/traces", traces_request(base, part)).await;
    }
    running.trace(&hex(&huge), 10_001).await;
    browser.goto(&format!("{ui}/traces/{}", hex(&huge))).await;
    browser.wait_for_text(".trace-head", "10001 spans").await;
    let rendered = browser
        .eval("return document.querySelectorAll('.wf-row').length;")
        .await;
    let rendered = rendered.as_u64().unwrap();
    assert!(
        rendered > 10 && rendered < 200,
        "virtualised: {rendered} rows in the DOM"
    );
    let waterfall = browser.find("#waterfall").await;
    waterfall.send_keys(&key(Key::End)).await.unwrap();
    browser.wait_for_text("#detail-name", "item").await;
    let last = browser
        .eval("return new URLSearchParams(location.search).get('span');")
        .await;
    assert_eq!(
        last,
        serde_json::json!(span_hex(1000 + 99 * 100 + 98)),
        "the last row is selected"
    );
    browser.screenshot("huge-trace").await;

    // Retention evicts an old trace: the banner says so.
    let day = 24 * 3600 * 1000 * MS;
    let old = [0x01; 16];
    post(
        addr,
        "/v1/traces",
        traces_request(
            now() - 2 * day,
            &[fx("storefront", old, 1, 0, "GET /old", span::SpanKind::Server, 0, 5)],
        ),
    )
    .await;
    running
        .search_until("/api/v1/status", |s| s["evicted"]["spans"].as_u64() > Some(0))
        .await;
    browser.goto(&format!("{ui}/services")).await;
    // (Its summary may still be on its way to the store, so the trace count is not asserted.)
    let notice = browser
        .wait_for_text("#retention-notice", "(1 span) since the collector started")
        .await;
    assert!(notice.starts_with("Retention removed"), "{notice}");

    browser.close().await;
    running.collector.shutdown().await;
}

/// Services that call each other with no service calling them first (`web → api → web`, and
/// `web → db`) once left the map's first column empty: its layout read `NaN` everywhere and
/// the map did not draw. Every service is placed, callers left of what they call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_map_lays_out_services_that_call_each_other() {
    let Scene { running, addr, ui } = Scene::start().await;
    let base = now();
    let (cycle, to_db) = ([0xd1; 16], [0xd2; 16]);
    let spans = [
        fx("web", cycle, 1, 0, "GET /a", span::SpanKind::Server, 0, 30),
        fx("api", cycle, 2, 1, "GET /b", span::SpanKind::Server, 5, 25),
        fx("web", cycle, 3, 2, "GET /callback", span::SpanKind::Server, 10, 20),
        fx("web", to_db, 11, 0, "GET /c", span::SpanKind::Server, 0, 10),
        fx("db", to_db, 12, 11, "SELECT", span::SpanKind::Server, 2, 8),
        // The lowest service calls one beside it: an edge curving below every box.
        fx("api", to_db, 13, 12, "GET /notify", span::SpanKind::Server, 3, 6),
    ];
    post(addr, "/v1/traces", traces_request(base, &spans)).await;
    running
        .search_until("/api/v1/dependencies", |d| {
            d["dependencies"].as_array().is_some_and(|edges| edges.len() >= 4)
        })
        .await;

    let browser = Browser::start(artefacts()).await;
    browser.goto(&format!("{ui}/services")).await;
    browser.find("#dependency-map .node[data-service='db']").await;
    let markup = browser
        .eval("return document.querySelector('#dependency-map svg').outerHTML;")
        .await;
    assert!(!markup.as_str().unwrap().contains("NaN"), "{markup}");
    let placed = browser
        .eval(
            "return Object.fromEntries([...document.querySelectorAll('#dependency-map .node')].map((g) => {
                const r = g.querySelector('rect');
                return [g.dataset.service, [Number(r.getAttribute('x')), Number(r.getAttribute('y'))]];
            }));",
        )
        .await;
    let at = |service: &str| -> (f64, f64) {
        let p = &placed[service];
        (p[0].as_f64().unwrap(), p[1].as_f64().unwrap())
    };
    let (web, api, db) = (at("web"), at("api"), at("db"));
    assert!(
        web.0 < api.0 && web.0 < db.0,
        "web calls both, so it comes first: {placed}"
    );
    assert_eq!(api.0, db.0, "api and db are both one call from web: {placed}");
    assert_ne!(api.1, db.1, "one column, two rows: {placed}");
    let edges = browser
        .eval("return document.querySelectorAll('#dependency-map path.edge').length;")
        .await;
    assert_eq!(edges, serde_json::json!(4));
    // Every edge and its label is drawn inside the map (the edge back to web curves below the
    // boxes: its label fell off the bottom).
    let outside = browser
        .eval(
            "const svg = document.querySelector('#dependency-map svg');
             const view = svg.viewBox.baseVal;
             return [...svg.querySelectorAll('path.edge, text.edge-label')].map((el) => [el.textContent, el.getBBox()])
               .filter(([, b]) => b.x < view.x || b.y < view.y || b.x + b.width > view.x + view.width || b.y + b.height > view.y + view.height)
               .map(([t, b]) => `${t || 'edge'} at ${b.x},${b.y} ${b.width}x${b.height}`);",
        )
        .await;
    assert_eq!(outside, serde_json::json!([]), "drawn outside the map");
    browser.screenshot("service-map-cycle").await;
    Scene::end(running, browser).await;
}

/// The same steady load once read 242/min on 5 minutes, 33/min on an hour and 1.48/min on a
/// day: the rate was divided by the range chosen, not by the time the data covers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_per_minute_is_over_the_time_the_data_covers() {
    let Scene { running, addr, ui } = Scene::start().await;
    // 10 calls in each of the 4 whole minutes before this one.
    let minute = 60_000 * MS;
    let this_minute = now() / minute * minute;
    let tick = [0xe1; 16];
    for m in 1..=4u64 {
        for k in 0..10u64 {
            let at = (this_minute - m * minute) + k * 5_000 * MS;
            let mut one = fx(
                "steady",
                tick,
                m * 100 + k + 1,
                0,
                "GET /tick",
                span::SpanKind::Server,
                0,
                2,
            );
            one.trace[0] = (m * 16 + k) as u8; // a trace each
            post(addr, "/v1/traces", traces_request(at, &[one])).await;
        }
    }
    running
        .search_until("/api/v1/stats?service=steady", |s| s["operations"][0]["calls"] == 40)
        .await;

    let browser = Browser::start(artefacts()).await;
    for range in ["?range=5m", "", "?range=6h", "?range=24h"] {
        browser.goto(&format!("{ui}/services{range}")).await;
        browser.find("#stats-table tr[data-operation='GET /tick']").await;
        let rate = browser
            .eval(
                "return document.querySelector(\"#stats-table tr[data-operation='GET /tick']\").cells[2].textContent;",
            )
            .await;
        let rate: f64 = rate.as_str().unwrap().parse().unwrap();
        // 40 calls over 4 minutes and the part of this one gone by: 8 to 10 a minute.
        assert!((7.9..=10.1).contains(&rate), "range {range:?}: {rate}/min");
    }
    Scene::end(running, browser).await;
}

/// Service colours came from a hash of the name: `py-middle` and `rust-back`, `loadgen` and
/// `orders` were near-identical, and some services were red, the colour of errors. Every
/// service of a view now has a colour of its own, none red.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_of_a_view_has_its_own_colour_and_none_is_red() {
    let Scene { running, addr, ui } = Scene::start().await;
    let names = [
        "py-middle",
        "rust-back",
        "loadgen",
        "orders",
        "catalog",
        "payments",
        "storefront",
        "auth",
        "search",
        "billing",
        "inventory",
        "shipping",
    ];
    let spans: Vec<Fixture> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let mut trace = [0xf0; 16];
            trace[15] = i as u8;
            fx(name, trace, 1, 0, "GET /", span::SpanKind::Server, 0, 3)
        })
        .collect();
    post(addr, "/v1/traces", traces_request(now(), &spans)).await;
    running
        .search_until("/api/v1/stats", |s| {
            s["operations"].as_array().is_some_and(|ops| ops.len() >= names.len())
        })
        .await;

    let browser = Browser::start(artefacts()).await;
    browser.goto(&format!("{ui}/services")).await;
    browser.find("#stats-table .svc-head .dot").await;
    let colours = browser
        .eval(
            "return [...document.querySelectorAll('#stats-table .svc-head .chip')].map((chip) => {
                const [r, g, b] = getComputedStyle(chip.querySelector('.dot')).backgroundColor.match(/\\d+/g).map(Number);
                return [chip.textContent, r, g, b];
            });",
        )
        .await;
    let colours: Vec<(String, [f64; 3])> = colours
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let rgb = [1, 2, 3].map(|i| c[i].as_f64().unwrap());
            (c[0].as_str().unwrap().trim().to_owned(), rgb)
        })
        .collect();
    assert_eq!(colours.len(), names.len(), "{colours:?}");
    for (i, (a, ca)) in colours.iter().enumerate() {
        // Red: a strong red channel over weak green and blue.
        assert!(
            !(ca[0] > 150.0 && ca[1] < 110.0 && ca[2] < 110.0),
            "{a} is drawn in red, the colour of errors: {ca:?}"
        );
        for (b, cb) in &colours[i + 1..] {
            let distance = ca.iter().zip(cb).map(|(x, y)| (x - y).powi(2)).sum::<f64>().sqrt();
            assert!(distance > 40.0, "{a} {ca:?} and {b} {cb:?} look alike ({distance:.0})");
        }
    }
    browser.screenshot("service-colours").await;
    Scene::end(running, browser).await;
}

/// An attribute filter that is a bare key (`customer.tier`) was dropped without a word and the
/// search ran unfiltered; it now finds the traces with that attribute, whatever its value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_attribute_key_finds_the_traces_that_have_it() {
    let Scene { running, addr, ui } = Scene::start().await;
    let mut gold = fx("shop", [0xa7; 16], 1, 0, "GET /gold", span::SpanKind::Server, 0, 5);
    gold.attributes = vec![text("customer.tier", "gold")];
    let mut silver = fx("shop", [0xa8; 16], 1, 0, "GET /silver", span::SpanKind::Server, 0, 5);
    silver.attributes = vec![text("customer.tier", "silver")];
    let anonymous = fx("shop", [0xa9; 16], 1, 0, "GET /anonymous", span::SpanKind::Server, 0, 5);
    post(addr, "/v1/traces", traces_request(now(), &[gold, silver, anonymous])).await;
    running
        .search_until("/api/v1/traces?service=shop", |r| {
            r["traces"].as_array().is_some_and(|t| t.len() == 3)
        })
        .await;

    let browser = Browser::start(artefacts()).await;
    browser.goto(&format!("{ui}/traces?service=shop")).await;
    browser.wait_for_text("#trace-list", "GET /anonymous").await;
    browser
        .find("#trace-search input[name=attr]")
        .await
        .send_keys("customer.tier")
        .await
        .unwrap();
    browser.click("#trace-search button[type=submit]").await;
    browser
        .wait_until(
            "two results",
            "document.querySelectorAll('#trace-list tbody tr').length === 2",
        )
        .await;
    let rows = browser.texts("#trace-list tbody tr").await.join("\n");
    assert!(rows.contains("GET /gold") && rows.contains("GET /silver"), "{rows}");
    assert!(!rows.contains("GET /anonymous"), "{rows}");
    let location = browser.location().await;
    assert!(
        location.contains("attr=customer.tier"),
        "the filter is in the URL: {location}"
    );
    // And kept in the form as typed.
    let typed = browser
        .eval("return document.querySelector('#trace-search input[name=attr]').value;")
        .await;
    assert_eq!(typed, serde_json::json!("customer.tier"));
    Scene::end(running, browser).await;
}

/// With UTC chosen, the custom time range was still typed and read as local time (a user in
/// New York asking for 03:04 UTC got 08:04 UTC), and the inputs started empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_time_ranges_are_in_the_zone_shown_and_start_as_the_range_on_screen() {
    let running = common::start().await;
    let ui = format!("http://{}", running.collector.ui_addr());
    let browser = Browser::start_in_time_zone(artefacts(), "America/New_York").await;
    browser.goto(&format!("{ui}/traces")).await;
    browser
        .eval("localStorage.setItem('skein.tz', 'utc'); return true;")
        .await;

    browser
        .goto(&format!(
            "{ui}/traces?start=2026-01-02T03:04:05.000Z&end=2026-01-02T04:04:05.000Z"
        ))
        .await;
    browser.find("#trace-search input[name=start]").await;
    let shown = browser
        .eval("return ['start', 'end'].map((n) => document.querySelector(`#trace-search input[name=${n}]`).value);")
        .await;
    assert_eq!(shown, serde_json::json!(["2026-01-02T03:04:05", "2026-01-02T04:04:05"]));
    let label = browser.texts("#trace-search label").await.join(" | ");
    assert!(label.contains("From (UTC)"), "{label}");
    // Searching again keeps the range as it is.
    browser.click("#trace-search button[type=submit]").await;
    browser
        .wait_until("the search is done", "location.search.includes('start=')")
        .await;
    let location = browser.location().await;
    assert!(
        location.contains("start=2026-01-02T03%3A04%3A05.000Z")
            && location.contains("end=2026-01-02T04%3A04%3A05.000Z"),
        "{location}"
    );

    // A preset range: the custom inputs start as that range, in UTC.
    browser.goto(&format!("{ui}/traces?range=6h")).await;
    browser.find("#trace-search input[name=start]").await;
    let (start, end) = {
        let v = browser
            .eval("return ['start', 'end'].map((n) => Date.parse(document.querySelector(`#trace-search input[name=${n}]`).value + 'Z'));")
            .await;
        (v[0].as_f64().unwrap(), v[1].as_f64().unwrap())
    };
    let now_ms = now() as f64 / 1e6;
    assert!((end - now_ms).abs() < 120_000.0, "the end is now: {end} vs {now_ms}");
    assert!(
        (end - start - 6.0 * 3600e3).abs() < 2_000.0,
        "six hours: {start}..{end}"
    );
    Scene::end(running, browser).await;
}

/// A bar that starts at the left edge and ends near the right one had its duration drawn to
/// its left, over the span names. Every duration label is now within the bars' column.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duration_labels_never_cover_the_span_names() {
    let Scene { running, addr, ui } = Scene::start().await;
    let trace = [0xb7; 16];
    let spans = [
        fx("shop", trace, 1, 0, "GET /whole", span::SpanKind::Server, 0, 100),
        fx("shop", trace, 2, 1, "load everything", span::SpanKind::Internal, 0, 99),
        fx("shop", trace, 3, 1, "late", span::SpanKind::Internal, 50, 95),
        fx("shop", trace, 4, 1, "early", span::SpanKind::Internal, 0, 10),
    ];
    post(addr, "/v1/traces", traces_request(now(), &spans)).await;
    running.trace(&hex(&trace), 4).await;

    let browser = Browser::start(artefacts()).await;
    browser.goto(&format!("{ui}/traces/{}", hex(&trace))).await;
    browser.wait_for_text(".trace-head", "4 spans").await;
    let placed = browser
        .eval(
            "return [...document.querySelectorAll('.wf-row')].map((row) => {
                const column = row.querySelector('.bar-col').getBoundingClientRect();
                const names = row.querySelector('.name-col').getBoundingClientRect();
                const label = row.querySelector('.bar-label').getBoundingClientRect();
                return [row.querySelector('.op').textContent, label.left, label.right, column.left, column.right, names.right];
            });",
        )
        .await;
    let rows = placed.as_array().unwrap();
    assert_eq!(rows.len(), 4, "{placed}");
    for row in rows {
        let [label_left, column_left, names_right] = [1, 3, 5].map(|i| row[i].as_f64().unwrap());
        assert!(
            label_left >= column_left - 0.5 && label_left >= names_right - 0.5,
            "the duration of {} is drawn over the names: {row}",
            row[0]
        );
    }
    browser.screenshot("duration-labels").await;
    Scene::end(running, browser).await;
}

/// Indentation was 14 px a level inside the names' column: below ~26 levels the bars' column
/// moved right, bars shrank to nothing and names vanished (854 px of padding at depth 60). The
/// column now has one width for every row, deep levels are compressed and marked, every bar is
/// on the ruler's axis, and the column can be resized.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sixty_deep_trace_keeps_its_names_and_its_bars_on_the_axis() {
    let Scene { running, addr, ui } = Scene::start().await;
    let trace = [0xc9; 16];
    let spans: Vec<Fixture> = (1..=61u64)
        .map(|id| {
            fx(
                "deep",
                trace,
                id,
                id - 1,
                "nested call",
                span::SpanKind::Internal,
                id,
                200 - id,
            )
        })
        .collect();
    post(addr, "/v1/traces", traces_request(now(), &spans)).await;
    running.trace(&hex(&trace), 61).await;

    let browser = Browser::start(artefacts()).await;
    browser.goto(&format!("{ui}/traces/{}", hex(&trace))).await;
    browser.wait_for_text(".trace-head", "61 spans").await;
    let measure = "return {
        ruler: document.querySelector('#ruler').getBoundingClientRect().left,
        rows: [...document.querySelectorAll('.wf-row')].map((row) => ({
            depth: Number(row.querySelector('.depth')?.textContent || 0),
            bars: row.querySelector('.bar-col').getBoundingClientRect().left,
            bar: row.querySelector('.bar').getBoundingClientRect().width,
            name: row.querySelector('.op').getBoundingClientRect().width,
        })),
    };";
    let check = |layout: &serde_json::Value| {
        let ruler = layout["ruler"].as_f64().unwrap();
        let rows = layout["rows"].as_array().unwrap();
        assert!(rows.len() > 20, "{layout}");
        for row in rows {
            assert!(
                (row["bars"].as_f64().unwrap() - ruler).abs() < 1.0,
                "a row's bars are off the axis ({ruler}): {row}"
            );
            assert!(row["bar"].as_f64().unwrap() > 1.0, "a bar shrank to nothing: {row}");
            assert!(row["name"].as_f64().unwrap() > 40.0, "a name has no room: {row}");
        }
    };
    check(&browser.eval(measure).await);
    // The deepest rows (scrolled to) say how deep they are.
    let waterfall = browser.find("#waterfall").await;
    waterfall.send_keys(&key(Key::End)).await.unwrap();
    browser
        .wait_until(
            "the last row",
            "[...document.querySelectorAll('.wf-row .depth')].some((d) => d.textContent === '60')",
        )
        .await;
    check(&browser.eval(measure).await);

    // Dragging the column's edge resizes it for the axis and every row alike.
    let before = browser
        .eval("return document.querySelector('#ruler').getBoundingClientRect().left;")
        .await;
    browser
        .eval(
            "const handle = document.querySelector('#name-col-handle');
             const x = handle.getBoundingClientRect().left + 2;
             handle.dispatchEvent(new MouseEvent('mousedown', { clientX: x, bubbles: true }));
             document.dispatchEvent(new MouseEvent('mousemove', { clientX: x + 120, bubbles: true }));
             document.dispatchEvent(new MouseEvent('mouseup', { clientX: x + 120, bubbles: true }));
             return true;",
        )
        .await;
    let after = browser.eval(measure).await;
    let moved = after["ruler"].as_f64().unwrap() - before.as_f64().unwrap();
    assert!((moved - 120.0).abs() < 2.0, "the column grew by {moved} px");
    check(&after);
    browser.screenshot("deep-trace").await;
    Scene::end(running, browser).await;
}

/// Live and pause: "Resume (N new)" counted updates (a trace arriving in three requests was
/// three, traces the filters exclude counted too); a trace whose root was still on its way was
/// called "missing root"; an empty page waited for a reload to show the first trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_pause_counts_new_matching_traces_and_the_empty_page_wakes_up() {
    let Scene { running, addr, ui } = Scene::start().await;
    let browser = Browser::start(artefacts()).await;

    // An empty page, not live: the first trace shows by itself.
    browser.goto(&format!("{ui}/traces")).await;
    browser.find("#empty-state").await;
    let base = now();
    let first = [0x91; 16];
    post(
        addr,
        "/v1/traces",
        traces_request(
            base,
            &[fx("web", first, 1, 0, "GET /first", span::SpanKind::Server, 0, 5)],
        ),
    )
    .await;
    browser.wait_for_text("#trace-list", "GET /first").await;

    // Live, filtered to web, paused: one new web trace in three requests, one trace of another
    // service. One new trace matches.
    browser.goto(&format!("{ui}/traces?live=1&service=web")).await;
    browser.wait_for_text("#trace-list", "GET /first").await;
    browser.click("#live-pause").await;
    let busy = [0x92; 16];
    for (id, parent, name) in [(3u64, 2u64, "SELECT"), (2, 1, "load cart"), (1, 0, "GET /busy")] {
        post(
            addr,
            "/v1/traces",
            traces_request(base, &[fx("web", busy, id, parent, name, span::SpanKind::Server, 0, 5)]),
        )
        .await;
    }
    post(
        addr,
        "/v1/traces",
        traces_request(
            base,
            &[fx(
                "other",
                [0x93; 16],
                1,
                0,
                "GET /elsewhere",
                span::SpanKind::Server,
                0,
                5,
            )],
        ),
    )
    .await;
    browser.wait_for_text("#live-pause", "Resume (1 new)").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(browser.texts("#live-pause").await, ["Resume (1 new)"], "still one");
    browser.click("#live-pause").await;
    browser.wait_for_text("#trace-list", "GET /busy").await;
    assert!(!browser.texts("#trace-list").await[0].contains("GET /elsewhere"));

    // A trace whose root has not come yet, a moment ago: arriving, not missing.
    let partial = [0x94; 16];
    post(
        addr,
        "/v1/traces",
        traces_request(
            base,
            &[fx(
                "web",
                partial,
                2,
                1,
                "GET /partial child",
                span::SpanKind::Internal,
                0,
                5,
            )],
        ),
    )
    .await;
    browser
        .wait_for_text("#trace-list", "(its root span may still come)")
        .await;
    let text = browser.texts("#trace-list").await.join("\n");
    assert!(text.contains("arriving…") && !text.contains("missing root"), "{text}");
    Scene::end(running, browser).await;
}

/// Find in trace matched every span at every keystroke (152 ms each at 50,000 spans) and left a
/// match at the edge of the view; it now waits for typing to pause and brings the match to
/// the middle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_in_trace_waits_for_typing_and_centres_the_match() {
    let Scene { running, addr, ui } = Scene::start().await;
    let trace = [0xe7; 16];
    let mut spans = vec![fx("shop", trace, 1, 0, "GET /long", span::SpanKind::Server, 0, 1000)];
    for i in 0..400u64 {
        let name = if i == 300 { "needle in the haystack" } else { "hay" };
        spans.push(fx("shop", trace, 2 + i, 1, name, span::SpanKind::Internal, i, i + 1));
    }
    post(addr, "/v1/traces", traces_request(now(), &spans)).await;
    running.trace(&hex(&trace), 401).await;

    let browser = Browser::start(artefacts()).await;
    browser.goto(&format!("{ui}/traces/{}", hex(&trace))).await;
    browser.wait_for_text(".trace-head", "401 spans").await;
    browser
        .eval(
            "window.findPasses = 0;
             new MutationObserver(() => window.findPasses++).observe(document.querySelector('#match-info'), { childList: true, characterData: true, subtree: true });
             return true;",
        )
        .await;
    let find = browser.find("#trace-find").await;
    find.send_keys("needle").await.unwrap();
    browser.wait_for_text("#match-info", "1 match").await;
    let passes = browser.eval("return window.findPasses;").await;
    assert!(passes.as_u64().unwrap() <= 2, "matched {passes} times for one word");

    find.send_keys(&key(Key::Enter)).await.unwrap();
    browser.wait_for_text("#detail-name", "needle in the haystack").await;
    let offset = browser
        .eval(
            "const scroller = document.querySelector('#waterfall').getBoundingClientRect();
             const row = document.querySelector('.wf-row.selected').getBoundingClientRect();
             return (row.top + row.height / 2) - (scroller.top + scroller.height / 2);",
        )
        .await;
    assert!(
        offset.as_f64().unwrap().abs() < 30.0,
        "the match is {offset} px from the middle"
    );
    Scene::end(running, browser).await;
}

/// "Duration ↓" sorted only the newest 50 traces in the page: the slowest trace of the hour,
/// older than those 50, never showed. The store now sorts every match in the range, by
/// duration or by span count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sorting_covers_every_trace_in_the_range_not_the_newest_page() {
    let Scene { running, addr, ui } = Scene::start().await;
    let start = now() - 30 * 60_000 * MS;
    // The slowest (9 s) and the biggest (40 spans) traces come first, then 80 quick ones.
    let slow = fx("shop", [0x51; 16], 1, 0, "GET /slow", span::SpanKind::Server, 0, 9_000);
    let mut big = vec![fx("shop", [0x52; 16], 1, 0, "GET /big", span::SpanKind::Server, 0, 50)];
    for i in 2..=40 {
        big.push(fx("shop", [0x52; 16], i, 1, "SELECT", span::SpanKind::Client, 1, 2));
    }
    post(addr, "/v1/traces", traces_request(start, &[slow])).await;
    post(addr, "/v1/traces", traces_request(start + 1_000 * MS, &big)).await;
    let mut quick = Vec::new();
    for i in 0..80u8 {
        let mut trace = [0x60; 16];
        trace[15] = i;
        quick.push(fx(
            "shop",
            trace,
            1,
            0,
            "GET /quick",
            span::SpanKind::Server,
            u64::from(i) * 1000,
            u64::from(i) * 1000 + 20,
        ));
    }
    post(addr, "/v1/traces", traces_request(start + 60_000 * MS, &quick)).await;
    running
        .search_until("/api/v1/traces?service=shop&limit=100", |r| {
            r["traces"].as_array().is_some_and(|t| t.len() == 82)
        })
        .await;

    let browser = Browser::start(artefacts()).await;
    browser.goto(&format!("{ui}/traces?service=shop")).await;
    browser.wait_for_text("#trace-list", "GET /quick").await;
    let rows = browser.texts("#trace-list tbody tr").await.join("\n");
    assert!(!rows.contains("GET /slow"), "the newest 50 are quick ones: {rows}");
    browser.click("#trace-list thead a[href*='sort=duration']").await;
    browser
        .wait_for_text("#trace-list tbody tr:first-child", "GET /slow")
        .await;
    assert!(browser.location().await.contains("sort=duration"));
    browser.goto(&format!("{ui}/traces?service=shop")).await;
    browser.wait_for_text("#trace-list", "GET /quick").await;
    browser.click("#trace-list thead a[href*='sort=spans']").await;
    browser
        .wait_for_text("#trace-list tbody tr:first-child", "GET /big")
        .await;
    let first = browser.texts("#trace-list tbody tr:first-child").await.join("");
    assert!(first.contains("40"), "the span count shows: {first}");
    Scene::end(running, browser).await;
}

/// Backlinks were an unbounded wall of bare trace ids above the waterfall (383 after eight
/// minutes of the demo). They now show on the span they point to, as "Linked from (N)", newest
/// first, 20 at a time, each naming the linking span, its service and time, and opening it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backlinks_show_on_the_linked_span_newest_first_and_paged() {
    let Scene { running, addr, ui } = Scene::start().await;
    let base = now() - 10 * 60_000 * MS;
    let pool = [0x70; 16];
    let setup = fx(
        "db-pool",
        pool,
        1,
        0,
        "connection setup",
        span::SpanKind::Internal,
        0,
        30,
    );
    let handshake = fx("db-pool", pool, 2, 1, "TLS handshake", span::SpanKind::Client, 5, 25);
    post(addr, "/v1/traces", traces_request(base, &[setup, handshake])).await;
    let link_to = |span: u64| span::Link {
        trace_id: pool.to_vec(),
        span_id: span.to_be_bytes().to_vec(),
        ..Default::default()
    };
    // 25 requests link to the setup, one second apart; one links to the handshake.
    for i in 0..25u64 {
        let mut trace = [0x71; 16];
        trace[15] = i as u8;
        let mut request = fx(
            "checkout",
            trace,
            100 + i,
            0,
            "POST /order",
            span::SpanKind::Server,
            0,
            10,
        );
        request.links = vec![link_to(1)];
        post(
            addr,
            "/v1/traces",
            traces_request(base + (i + 1) * 1_000 * MS, &[request]),
        )
        .await;
    }
    let mut retry = fx(
        "worker",
        [0x72; 16],
        200,
        0,
        "retry job",
        span::SpanKind::Consumer,
        0,
        10,
    );
    retry.links = vec![link_to(2)];
    post(addr, "/v1/traces", traces_request(base + 60_000 * MS, &[retry])).await;
    let pool_hex = hex(&pool);
    running
        .search_until("/api/v1/traces?service=checkout&limit=100", |r| {
            r["traces"].as_array().is_some_and(|t| t.len() == 25)
        })
        .await;

    let browser = Browser::start(artefacts()).await;
    browser
        .goto(&format!("{ui}/traces/{pool_hex}?span={}", span_hex(1)))
        .await;
    // (textContent: the heading is upper-cased by the style sheet.)
    browser
        .wait_until(
            "Linked from (25)",
            "document.querySelector('#detail-linked-from h4')?.textContent === 'Linked from (25)'",
        )
        .await;
    browser
        .wait_until(
            "the first page",
            "document.querySelectorAll('#detail-linked-from .linked-from-entry').length === 20",
        )
        .await;
    assert!(
        browser.texts("#linked-from").await.is_empty(),
        "no wall of ids above the waterfall"
    );
    let entries = browser.texts("#detail-linked-from .linked-from-entry").await;
    assert!(
        entries
            .iter()
            .all(|e| e.contains("checkout") && e.contains("POST /order")),
        "{entries:?}"
    );
    // Newest first: the last request (trace …18, 25 s after the setup) leads.
    let first_href = browser
        .eval("return document.querySelector('#detail-linked-from .linked-from-entry a').getAttribute('href');")
        .await;
    let mut newest = [0x71; 16];
    newest[15] = 24;
    assert_eq!(
        first_href,
        serde_json::json!(format!("/traces/{}?span={}", hex(&newest), span_hex(124)))
    );
    browser.click("#detail-linked-from .linked-from-more").await;
    browser
        .wait_until(
            "the second page",
            "document.querySelectorAll('#detail-linked-from .linked-from-entry').length === 25",
        )
        .await;
    browser
        .wait_until(
            "no third page",
            "document.querySelector('#detail-linked-from .linked-from-more').style.display === 'none'",
        )
        .await;
    // The handshake has its own one.
    browser.click(&format!(".wf-row[data-span-id='{}']", span_hex(2))).await;
    browser
        .wait_until(
            "Linked from (1)",
            "document.querySelector('#detail-linked-from h4')?.textContent === 'Linked from (1)'",
        )
        .await;
    browser
        .wait_for_text("#detail-linked-from .linked-from-entry", "retry job")
        .await;
    // Following an entry opens the linking span.
    browser.click("#detail-linked-from .linked-from-entry a").await;
    browser.wait_for_text("#detail-name", "retry job").await;
    assert!(browser
        .location()
        .await
        .starts_with(&format!("/traces/{}", hex(&[0x72; 16]))));
    Scene::end(running, browser).await;
}

/// A page whose request answered after the user had moved on drew into the next page (the
/// trace's waterfall under the services page, its keyboard handlers left behind). Each render
/// now has its own container and generation, and a page left while loading draws nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_left_while_loading_draws_nothing_into_the_next() {
    let Scene { running, addr, ui } = Scene::start().await;
    let slow = fx(
        "shop",
        [0x81; 16],
        1,
        0,
        "GET /slowly-loaded",
        span::SpanKind::Server,
        0,
        5,
    );
    post(addr, "/v1/traces", traces_request(now(), &[slow])).await;
    running
        .search_until("/api/v1/traces?service=shop", |r| {
            r["traces"].as_array().is_some_and(|t| t.len() == 1)
        })
        .await;

    let browser = Browser::start(artefacts()).await;
    browser.goto(&format!("{ui}/traces?service=shop")).await;
    browser.wait_for_text("#trace-list", "GET /slowly-loaded").await;
    // The trace's answer now takes 1.5 s to come.
    browser
        .eval(
            "const fetchNow = window.fetch;
             window.fetch = (url, options) => String(url).includes('/api/v1/traces/')
               ? new Promise((done) => setTimeout(done, 1500)).then(() => fetchNow(url, options))
               : fetchNow(url, options);
             return true;",
        )
        .await;
    browser.click("#trace-list tbody tr a").await;
    browser.click("nav a[data-nav=services]").await;
    browser
        .wait_until("the services page", "location.pathname === '/services'")
        .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let leftovers = browser
        .eval("return [!!document.querySelector('#waterfall'), !!document.querySelector('#trace-title'), document.title];")
        .await;
    assert_eq!(leftovers[0], false, "no waterfall on the services page: {leftovers}");
    assert_eq!(leftovers[1], false, "no trace header on the services page: {leftovers}");
    assert!(leftovers[2].as_str().unwrap().starts_with("Services"), "{leftovers}");
    Scene::end(running, browser).await;
}

/// A malformed %-escape in a trace address threw before any page drew: a blank page. It is now
/// said what is wrong.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_address_is_shown_as_an_error() {
    let Scene { running, addr: _, ui } = Scene::start().await;
    let browser = Browser::start(artefacts()).await;
    browser.goto(&format!("{ui}/traces/%E0%A4%A")).await;
    let shown = browser.wait_for_text(".error-box", "malformed").await;
    assert!(shown.contains("%E0%A4%A"), "{shown}");
    Scene::end(running, browser).await;
}

/// A service with thousands of operations: the services table rendered all 6,820 rows (3–4 s)
/// and the operation dropdown held 5,809 entries with no way to type. The table now draws
/// only the rows in sight as it scrolls, and the operation is typed with suggestions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_operations_scroll_and_are_typed_not_scrolled_through() {
    let Scene { running, addr, ui } = Scene::start().await;
    const OPERATIONS: usize = 7_000;
    let names: Vec<&'static str> = (0..OPERATIONS)
        .map(|i| &*Box::leak(format!("op-{i:04}").into_boxed_str()))
        .collect();
    let base = now() - 5 * 60_000 * MS;
    for chunk in 0..OPERATIONS / 1000 {
        let spans: Vec<Fixture> = (chunk * 1000..(chunk + 1) * 1000)
            .map(|i| {
                let mut trace = [0x90; 16];
                trace[14..].copy_from_slice(&(i as u16).to_be_bytes());
                fx("big", trace, 1, 0, names[i], span::SpanKind::Server, 0, 3)
            })
            .collect();
        post(addr, "/v1/traces", traces_request(base, &spans)).await;
    }
    running
        .search_until("/api/v1/stats?service=big", |s| {
            s["operations"].as_array().is_some_and(|o| o.len() == OPERATIONS)
        })
        .await;

    let browser = Browser::start(artefacts()).await;
    browser.goto(&format!("{ui}/services")).await;
    browser.wait_for_text("#stats-table tbody", "op-0000").await;
    let rendered = "return document.querySelectorAll('#stats-table tbody tr[data-operation]').length;";
    let count = browser.eval(rendered).await.as_u64().unwrap();
    assert!((10..200).contains(&count), "{count} of {OPERATIONS} rows in the page");
    let head = browser.texts("#stats-table tbody tr.svc-head").await.join("");
    assert!(head.contains("big") && head.contains("7000 calls"), "{head}");
    // Scrolled to the end: the last operations are drawn, still only a window of rows.
    browser
        .eval("const box = document.querySelector('#stats-scroll'); box.scrollTop = box.scrollHeight; return true;")
        .await;
    browser.wait_for_text("#stats-table tbody", "op-6999").await;
    let count = browser.eval(rendered).await.as_u64().unwrap();
    assert!(count < 200, "{count} rows in the page after scrolling");
    assert!(browser
        .texts("#stats-table tbody tr[data-operation='op-0000']")
        .await
        .is_empty());
    // A row still opens its traces.
    browser.click("#stats-table tbody tr[data-operation='op-6999'] a").await;
    browser.wait_for_text("#trace-list", "op-6999").await;

    // The operation is typed: a few suggestions, not seven thousand options.
    browser.goto(&format!("{ui}/traces?service=big")).await;
    browser.wait_for_text("#trace-list", "op-").await;
    browser
        .wait_until(
            "operations loaded",
            "document.querySelector('#trace-search input[name=operation]').placeholder.includes('7000')",
        )
        .await;
    browser
        .find("#trace-search input[name=operation]")
        .await
        .send_keys("op-424")
        .await
        .unwrap();
    let suggestions = browser
        .wait_until(
            "suggestions",
            "[...document.querySelectorAll('#operation-suggestions option')].map(o => o.value).join(',') || ''",
        )
        .await;
    let suggestions: Vec<&str> = suggestions.as_str().unwrap().split(',').collect();
    assert_eq!(suggestions.len(), 10, "{suggestions:?}");
    assert!(suggestions.iter().all(|s| s.starts_with("op-424")), "{suggestions:?}");
    browser
        .find("#trace-search input[name=operation]")
        .await
        .send_keys("2")
        .await
        .unwrap();
    browser.click("#trace-search button[type=submit]").await;
    browser
        .wait_until("searched", "location.search.includes('operation=op-4242')")
        .await;
    browser.wait_for_text("#trace-list tbody", "op-4242").await;
    let rows = browser.texts("#trace-list tbody tr").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    Scene::end(running, browser).await;
}

/// A 50,001-span trace shows, with only the rows in sight in the page, and find and scrolling
/// reach its last span. (How long it took is printed for the record, not asserted: timings in
/// tests only measure the machine's load.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifty_thousand_span_trace_shows_and_stays_virtualised() {
    let Scene { running, addr, ui } = Scene::start().await;
    let trace = [0x5a; 16];
    let base = now() - 60_000 * MS;
    let mut spans = vec![fx(
        "loadgen",
        trace,
        1,
        0,
        "bulk import",
        span::SpanKind::Internal,
        0,
        50_000,
    )];
    for i in 0..500u64 {
        spans.push(fx(
            "loadgen",
            trace,
            2 + i,
            1,
            "batch",
            span::SpanKind::Internal,
            i * 100,
            i * 100 + 100,
        ));
        for j in 0..99u64 {
            let start = i * 100 + j;
            let name = if i == 499 && j == 98 {
                "the very last row"
            } else {
                "row"
            };
            spans.push(fx(
                "worker",
                trace,
                1000 + i * 100 + j,
                2 + i,
                name,
                span::SpanKind::Internal,
                start,
                start + 1,
            ));
        }
    }
    assert_eq!(spans.len(), 50_001);
    for part in spans.chunks(5000) {
        post(addr, "/v1/traces", traces_request(base, part)).await;
    }
    running.trace(&hex(&trace), 50_001).await;

    let browser = Browser::start(artefacts()).await;
    let started = std::time::Instant::now();
    browser.goto(&format!("{ui}/traces/{}", hex(&trace))).await;
    browser.wait_for_text(".trace-head", "50001 spans").await;
    browser.find(".wf-row").await;
    let shown = started.elapsed();
    let rendered = browser
        .eval("return document.querySelectorAll('.wf-row').length;")
        .await;
    assert!(
        rendered.as_u64().unwrap() < 200,
        "virtualised: {rendered} rows in the DOM"
    );
    let started = std::time::Instant::now();
    browser
        .find("#trace-find")
        .await
        .send_keys("the very last")
        .await
        .unwrap();
    browser
        .find("#trace-find")
        .await
        .send_keys(&key(Key::Enter))
        .await
        .unwrap();
    browser.wait_for_text("#detail-name", "the very last row").await;
    let found = started.elapsed();
    let rendered = browser
        .eval("return document.querySelectorAll('.wf-row').length;")
        .await;
    assert!(rendered.as_u64().unwrap() < 200, "still virtualised: {rendered} rows");
    eprintln!(
        "50,001-span trace: shown after {:.2} s, the last span found and selected after {:.2} s",
        shown.as_secs_f64(),
        found.as_secs_f64()
    );
    Scene::end(running, browser).await;
}

/// From a trace to its logs and back: the header says how many log records the trace has and
/// opens them on the Logs page; a log line in the trace panel opens the span that logged it.
/// The waterfall marks spans with links, events and logs, and names and bars say in full
/// what a truncated row hides. The top bar opens any trace by id; `?` lists the shortcuts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_leads_to_its_logs_and_back_with_markers_ids_and_shortcuts() {
    let (running, ui, checkout, _) = with_story().await;

    let browser = Browser::start(artefacts()).await;
    browser.goto(&format!("{ui}/traces/{checkout}")).await;
    browser.wait_for_text("#trace-title", "GET /checkout").await;
    // Markers: the client span links to its connection; the root and the rule logged; the
    // rule has an event.
    let row = |id: u64| format!(".wf-row[data-span-id='{}']", span_hex(id));
    browser.find(&format!("{} .marker-links", row(2))).await;
    browser.find(&format!("{} .marker-logs", row(1))).await;
    browser.find(&format!("{} .marker-logs", row(4))).await;
    browser.find(&format!("{} .marker-events", row(4))).await;
    assert!(browser.texts(&format!("{} .marker", row(7))).await.is_empty());
    // Titles carry what a narrow row cuts off.
    let titles = browser
        .eval(&format!(
            "const r = document.querySelector(\"{}\"); return [r.querySelector('.op').title, r.querySelector('.bar').title];",
            row(4)
        ))
        .await;
    assert_eq!(titles[0], "orders · evaluate discount rule (360 ms)");
    assert!(
        titles[1]
            .as_str()
            .unwrap()
            .starts_with("evaluate discount rule: 360 ms, from +20"),
        "{titles}"
    );

    // The trace's logs: a line opens its span; the header opens the Logs page.
    let top = browser.wait_for_text("#trace-logs-top", "Logs (2)").await;
    assert_eq!(top, "Logs (2)");
    browser
        .click("#trace-logs .log-line.opens-span[data-span-id='0000000000000004']")
        .await;
    browser.wait_for_text("#detail-name", "evaluate discount rule").await;
    assert!(browser.location().await.contains(&format!("span={}", span_hex(4))));
    browser.click("#trace-logs-top").await;
    browser.wait_for_text("#log-results", "discount rule slow").await;
    browser.wait_for_text("#log-results", "checkout started").await;
    assert_eq!(browser.location().await, format!("/logs?trace_id={checkout}"));
    assert!(!browser.texts("#log-results").await.join("").contains("charge failed"));

    // Any trace by its id from the top bar; a wrong one is said so and goes nowhere.
    let id_box = browser.find("#trace-id-box").await;
    id_box.send_keys("not-an-id\n").await.unwrap();
    let message = browser
        .eval("return document.querySelector('#trace-id-box').validationMessage;")
        .await;
    assert!(message.as_str().unwrap().contains("hexadecimal"), "{message}");
    assert!(browser.location().await.starts_with("/logs"));
    browser
        .eval("document.querySelector('#trace-id-box').value = ''; return true;")
        .await;
    browser
        .find("#trace-id-box")
        .await
        .send_keys(&format!("{}\n", hex(&PAYMENT)))
        .await
        .unwrap();
    browser.wait_for_text("#trace-title", "POST /pay").await;

    // `?` opens the shortcuts, Escape closes them.
    browser.find("body").await.send_keys("?").await.unwrap();
    browser
        .wait_until("the shortcuts", "document.querySelector('#shortcuts').open")
        .await;
    assert!(browser
        .texts("#shortcuts")
        .await
        .join("")
        .contains("zoom to the selected span"));
    browser
        .find("#shortcuts")
        .await
        .send_keys(&key(Key::Escape))
        .await
        .unwrap();
    browser
        .wait_until("closed", "!document.querySelector('#shortcuts').open")
        .await;
    running.collector.shutdown().await;
}

/// A fan-out trace (a hundred `SELECT`s one after another): the critical-path summary showed a
/// hundred chips of 1% each, the top five of them; it now adds them up per service and
/// operation. The statistics view gives per service and operation the count, total and self
/// time, min/avg/max and critical-path share, as Jaeger's does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_traces_sum_up_per_operation_with_statistics() {
    let Scene { running, addr, ui } = Scene::start().await;
    let report = [0xd4; 16];
    let mut spans = vec![fx("api", report, 1, 0, "GET /report", span::SpanKind::Server, 0, 1_010)];
    for i in 0..100u64 {
        spans.push(fx(
            "db",
            report,
            2 + i,
            1,
            "SELECT",
            span::SpanKind::Client,
            5 + i * 10,
            15 + i * 10,
        ));
    }
    post(addr, "/v1/traces", traces_request(now() - 60_000 * MS, &spans)).await;
    running.trace(&hex(&report), 101).await;

    let browser = Browser::start(artefacts()).await;
    browser.goto(&format!("{ui}/traces/{}", hex(&report))).await;
    browser.wait_for_text("#trace-title", "GET /report").await;
    let chips = browser.texts("#where-time-went .cp-item").await;
    assert!(chips[0].contains("SELECT 1 s (99.0%) db ×100"), "{chips:?}");
    assert_eq!(chips.len(), 2, "SELECTs and the report's own time: {chips:?}");
    browser.click("#trace-stats-toggle").await;
    browser.wait_for_text("#trace-stats", "SELECT").await;
    assert!(browser.location().await.contains("stats=1"));
    let select = browser.texts("#trace-stats tr[data-operation='SELECT'] td").await;
    assert_eq!(
        select[1..8],
        ["SELECT", "100", "1 s", "1 s", "10 ms", "10 ms", "10 ms"].map(String::from),
        "{select:?}"
    );
    assert!(select[8].contains("99.0%"), "{select:?}");
    browser.screenshot_for_docs("trace-statistics").await;
    let report_row = browser.texts("#trace-stats tr[data-operation='GET /report'] td").await;
    assert_eq!(report_row[2], "1", "{report_row:?}");
    assert_eq!(report_row[4], "10 ms", "self time: {report_row:?}");
    // Kept on reload.
    browser.client().refresh().await.unwrap();
    browser.wait_for_text("#trace-stats", "SELECT").await;
    Scene::end(running, browser).await;
}

/// A trace goes from one dashboard to another as a file: downloaded as OTLP JSON, imported by
/// file picker into a fresh collector, stored there like any other trace and opened. A file
/// that is not OTLP JSON is said so. A span can be copied as JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_downloaded_from_one_dashboard_imports_into_another() {
    let (sender, _, checkout, _) = with_story().await;

    let browser = Browser::start(artefacts()).await;
    browser
        .goto(&format!("http://{}/traces/{checkout}", sender.collector.ui_addr()))
        .await;
    browser.wait_for_text("#trace-title", "GET /checkout").await;
    // Downloads are caught in the page: the file's name and its text.
    browser
        .eval(
            "window.saved = null;
             const click = HTMLAnchorElement.prototype.click;
             HTMLAnchorElement.prototype.click = function () {
               if (!this.download) return click.call(this);
               fetch(this.href).then((r) => r.text()).then((text) => { window.saved = [this.download, text]; });
             };
             return true;",
        )
        .await;
    browser.click("#trace-download").await;
    let saved = browser.wait_until("the download", "window.saved").await;
    assert_eq!(saved[0], format!("trace-{checkout}.json"));
    let file_text = saved[1].as_str().unwrap().to_owned();
    let otlp: serde_json::Value = serde_json::from_str(&file_text).unwrap();
    let spans: Vec<&serde_json::Value> = otlp["resourceSpans"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["scopeSpans"].as_array().unwrap())
        .flat_map(|s| s["spans"].as_array().unwrap())
        .collect();
    assert_eq!(spans.len(), 7);
    assert!(spans.iter().all(|s| s["traceId"] == checkout.as_str()), "ids in hex");
    // A span copies as JSON.
    browser.click(&format!(".wf-row[data-span-id='{}']", span_hex(4))).await;
    browser.click("#copy-span-json").await;
    browser.wait_for_text("#copy-span-json", "copied").await;
    sender.collector.shutdown().await;

    // Into a fresh collector through the file picker.
    let receiver = common::start().await;
    let files = tempfile::tempdir().unwrap();
    let file = files.path().join(format!("trace-{checkout}.json"));
    std::fs::write(&file, &file_text).unwrap();
    let not_otlp = files.path().join("notes.json");
    std::fs::write(&not_otlp, "these are my notes").unwrap();
    let ui = format!("http://{}", receiver.collector.ui_addr());
    browser.goto(&format!("{ui}/traces")).await;
    browser.find("#import-open").await;
    browser
        .find("#import-file")
        .await
        .send_keys(not_otlp.to_str().unwrap())
        .await
        .unwrap();
    browser.wait_for_text("#import-note", "notes.json is not JSON").await;
    browser.goto(&format!("{ui}/traces")).await;
    browser
        .find("#import-file")
        .await
        .send_keys(file.to_str().unwrap())
        .await
        .unwrap();
    browser.wait_for_text("#trace-title", "GET /checkout").await;
    browser.wait_for_text(".trace-head", "7 spans").await;
    assert_eq!(browser.location().await, format!("/traces/{checkout}"));
    // Stored like any other trace: searches find it.
    receiver
        .search_until("/api/v1/traces?service=orders", |r| {
            r["traces"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t["trace_id"] == checkout.as_str()))
        })
        .await;
    receiver.collector.shutdown().await;
}

/// Filter from anywhere: an attribute in span details filters traces by it (or is copied); a
/// p95 cell on the Services page opens that operation's traces at least that slow; a bar of
/// a per-minute chart opens the traces of that minute, slowest first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attributes_p95_cells_and_chart_bars_open_the_matching_traces() {
    let (running, ui, checkout, base) = with_story().await;
    running
        .search_until("/api/v1/stats?service=orders", |s| {
            s["operations"].as_array().is_some_and(|o| o.len() >= 3)
        })
        .await;
    let browser = Browser::start(artefacts()).await;

    // An attribute of the INSERT span: filter traces by it.
    browser
        .goto(&format!("{ui}/traces/{checkout}?span={}", span_hex(5)))
        .await;
    let row = "#detail-attributes tr[data-key='db.system.name']";
    browser.wait_for_text(row, "sqlite").await;
    browser.click(&format!("{row} .copy-attr")).await;
    browser.wait_for_text(&format!("{row} .copy-attr"), "copied").await;
    browser.click(&format!("{row} a.filter-by")).await;
    browser.wait_for_text("#trace-list", "GET /checkout").await;
    let location = browser.location().await;
    assert!(
        location.contains("attr=db.system.name%3Dsqlite") && location.contains("service=orders"),
        "{location}"
    );
    let form_attr = browser
        .eval("return document.querySelector('#trace-search input[name=attr]').value;")
        .await;
    assert_eq!(form_attr, "db.system.name=sqlite");

    // Or exclude it: the traces none of whose spans has it.
    browser
        .goto(&format!("{ui}/traces/{checkout}?span={}", span_hex(5)))
        .await;
    browser.wait_for_text(row, "sqlite").await;
    browser.click(&format!("{row} a.exclude")).await;
    browser.wait_for_text("#trace-list", "POST /pay").await;
    let listed = browser.texts("#trace-list tbody tr").await.join("\n");
    assert!(
        !listed.contains("GET /checkout"),
        "the checkout has a sqlite span: {listed}"
    );
    let form_attr = browser
        .eval("return document.querySelector('#trace-search input[name=attr]').value;")
        .await;
    assert_eq!(form_attr, "-db.system.name=sqlite", "shown as an exclusion");
    // Submitted again from the form, it stays an exclusion.
    browser.click("#trace-search button[type=submit]").await;
    browser
        .wait_until("kept", "location.search.includes('exclude=db.system.name')")
        .await;
    browser.wait_for_text("#trace-list", "POST /pay").await;
    assert!(!browser
        .texts("#trace-list tbody")
        .await
        .join("")
        .contains("GET /checkout"));

    // The p95 of the discount rule: its traces at least that slow, slowest first.
    browser.goto(&format!("{ui}/services")).await;
    let op = "#stats-table tr[data-operation='evaluate discount rule']";
    browser.wait_for_text(op, "evaluate discount rule").await;
    browser.click(&format!("{op} td.p95 a")).await;
    browser.wait_for_text("#trace-list", "GET /checkout").await;
    let location = browser.location().await;
    assert!(
        location.contains("operation=evaluate+discount+rule")
            || location.contains("operation=evaluate%20discount%20rule"),
        "{location}"
    );
    assert!(
        location.contains("min_duration=") && location.contains("sort=duration"),
        "{location}"
    );

    // A bar of its calls per minute: the traces of that minute.
    browser.goto(&format!("{ui}/services")).await;
    browser.wait_for_text(op, "evaluate discount rule").await;
    browser.click(&format!("{op} svg rect.calls.pick")).await;
    browser.wait_for_text("#trace-list", "GET /checkout").await;
    let location = browser.location().await;
    assert!(
        location.contains("start=") && location.contains("end=") && location.contains("sort=duration"),
        "{location}"
    );
    // The minute holds the checkout: its start is within the range.
    let range = browser
        .eval("const p = new URLSearchParams(location.search); return [Date.parse(p.get('start')), Date.parse(p.get('end'))];")
        .await;
    let (from, to) = (range[0].as_f64().unwrap(), range[1].as_f64().unwrap());
    let at = ((base + 20 * MS) / 1_000_000) as f64;
    // (An hour's chart has 60 bars for its 61 minutes: a bar is one or two whole minutes.)
    assert!(
        from <= at && at < to && to - from <= 120_000.0 && from % 60_000.0 == 0.0,
        "{from} {at} {to}"
    );
    running.collector.shutdown().await;
}

/// Attribute discovery: the keys seen in the range are offered as you type, then a key's
/// values with how many spans carry each, most used first; `!=`, `>` and `<` filter too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attribute_keys_and_values_are_offered_with_counts_and_compared() {
    let Scene { running, addr, ui } = Scene::start().await;
    let tiers = [
        "gold", "gold", "gold", "gold", "gold", "gold", "silver", "silver", "silver", "bronze",
    ];
    let spans: Vec<Fixture> = tiers
        .iter()
        .enumerate()
        .map(|(i, tier)| {
            let mut trace = [0xe7; 16];
            trace[15] = i as u8;
            let mut one = fx("shop", trace, 1, 0, "GET /cart", span::SpanKind::Server, 0, 5);
            one.attributes = vec![text("customer.tier", tier), int("retries", i as i64 % 4)];
            one
        })
        .collect();
    post(addr, "/v1/traces", traces_request(now() - 60_000 * MS, &spans)).await;
    running
        .search_until("/api/v1/traces?service=shop", |r| {
            r["traces"].as_array().is_some_and(|t| t.len() == 10)
        })
        .await;
    let (_, keys) = running.get("/api/v1/attributes?service=shop").await;
    let tier = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key"] == "customer.tier")
        .unwrap();
    assert_eq!(
        (tier["count"].as_u64(), tier["values"].as_u64()),
        (Some(10), Some(3)),
        "{keys}"
    );

    let browser = Browser::start(artefacts()).await;
    browser.goto(&format!("{ui}/traces?service=shop")).await;
    browser.wait_for_text("#trace-list", "GET /cart").await;
    let input = "#trace-search input[name=attr]";
    browser.find(input).await.send_keys("cust").await.unwrap();
    let offered = browser.wait_for_text("#attr-suggest", "customer.tier").await;
    assert!(offered.contains("(10)"), "{offered}");
    browser
        .click("#attr-suggest .suggestion[data-word='customer.tier=']")
        .await;
    browser.wait_for_text("#attr-suggest", "silver").await;
    let values = browser.texts("#attr-suggest .suggestion").await;
    assert_eq!(values, ["gold (6)", "silver (3)", "bronze (1)"], "most used first");
    browser.screenshot_for_docs("attribute-suggestions").await;
    browser
        .click("#attr-suggest .suggestion[data-word='customer.tier=silver ']")
        .await;
    let typed = browser
        .eval(&format!("return document.querySelector('{input}').value;"))
        .await;
    assert_eq!(typed, "customer.tier=silver ");
    browser.click("#trace-search button[type=submit]").await;
    browser
        .wait_until(
            "three silver",
            "document.querySelectorAll('#trace-list tbody tr').length === 3",
        )
        .await;

    // Other comparisons, typed.
    for (filter, expected) in [("customer.tier!=gold", 4), ("retries>1", 4), ("retries<1", 3)] {
        browser.goto(&format!("{ui}/traces?service=shop")).await;
        browser.wait_for_text("#trace-list", "GET /cart").await;
        browser.find(input).await.send_keys(filter).await.unwrap();
        browser.click("#trace-search button[type=submit]").await;
        browser
            .wait_until(
                &format!("{filter}: {expected} traces"),
                &format!("location.search.includes('attr=') && document.querySelectorAll('#trace-list tbody tr').length === {expected}"),
            )
            .await;
    }
    Scene::end(running, browser).await;
}

/// The flame graph merges a trace's call paths (a hundred `SELECT`s are one node a hundred
/// times as wide); comparing two traces matches their paths by service and operation and
/// marks what differs in count and time, and what only one has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flame_graph_merges_call_paths_and_two_traces_compare_by_path() {
    let Scene { running, addr, ui } = Scene::start().await;
    let fan_out = |trace: [u8; 16], selects: u64, each: u64, commit: bool| {
        let mut spans = vec![fx(
            "api",
            trace,
            1,
            0,
            "GET /report",
            span::SpanKind::Server,
            0,
            10 + selects * each,
        )];
        for i in 0..selects {
            spans.push(fx(
                "db",
                trace,
                2 + i,
                1,
                "SELECT",
                span::SpanKind::Client,
                5 + i * each,
                5 + (i + 1) * each,
            ));
        }
        if commit {
            spans.push(fx(
                "db",
                trace,
                999,
                1,
                "COMMIT",
                span::SpanKind::Client,
                5 + selects * each,
                8 + selects * each,
            ));
        }
        spans
    };
    let (a, b) = ([0xf1; 16], [0xf2; 16]);
    post(
        addr,
        "/v1/traces",
        traces_request(now() - 60_000 * MS, &fan_out(a, 100, 10, false)),
    )
    .await;
    post(
        addr,
        "/v1/traces",
        traces_request(now() - 50_000 * MS, &fan_out(b, 120, 12, true)),
    )
    .await;
    running.trace(&hex(&a), 101).await;
    running.trace(&hex(&b), 122).await;

    let browser = Browser::start(artefacts()).await;
    browser.goto(&format!("{ui}/traces/{}", hex(&a))).await;
    browser.wait_for_text("#trace-title", "GET /report").await;
    browser.click("#trace-flame-toggle").await;
    browser.wait_for_text("#flame", "SELECT ×100").await;
    let nodes = browser
        .eval(
            "return [...document.querySelectorAll('#flame .flame-node')].map(n => [n.textContent, parseFloat(n.style.width), n.title]);",
        )
        .await;
    let nodes = nodes.as_array().unwrap();
    assert_eq!(nodes.len(), 2, "{nodes:?}");
    let select = nodes.iter().find(|n| n[0] == "SELECT ×100").unwrap();
    let width = select[1].as_f64().unwrap();
    assert!((98.9..99.1).contains(&width), "1000 of 1010 ms: {width}%");
    assert_eq!(select[2], "db: SELECT — ×100, 1 s in all, 1 s self");
    assert!(browser.location().await.contains("flame=1"));
    browser.screenshot_for_docs("flame-graph").await;

    // Compare with the second trace.
    browser
        .find("#compare-with")
        .await
        .send_keys(&format!("{}\n", hex(&b)))
        .await
        .unwrap();
    browser.wait_for_text("#compare-table", "SELECT").await;
    assert_eq!(
        browser.location().await,
        format!("/compare?a={}&b={}", hex(&a), hex(&b))
    );
    let row = |path: &str| format!("#compare-table tr[data-key=\"{path}\"]");
    let select = browser
        .texts(&format!("{} td", row("api: GET /report › db: SELECT")))
        .await;
    assert_eq!(
        select[1..6],
        ["100", "120", "1 s", "1.44 s", "+440 ms"].map(String::from),
        "{select:?}"
    );
    let class = browser
        .eval(&format!(
            "return document.querySelector('{}').className;",
            row("api: GET /report › db: SELECT")
        ))
        .await;
    assert_eq!(class, "differs");
    let commit = browser
        .texts(&format!("{} td", row("api: GET /report › db: COMMIT")))
        .await;
    assert_eq!(commit[5], "only in B", "{commit:?}");
    browser.screenshot_for_docs("compare").await;
    Scene::end(running, browser).await;
}

/// One log record as an OTLP request (no trace when `trace` is all zeros).
fn log_request(
    service: &str,
    time: u64,
    severity: i32,
    body: &str,
    attributes: Vec<KeyValue>,
    trace: [u8; 16],
) -> Vec<u8> {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![text("service.name", service), text("host.name", "node-3")],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "app.cache".into(),
                    version: "2.1.0".into(),
                    ..Default::default()
                }),
                log_records: vec![LogRecord {
                    time_unix_nano: time,
                    observed_time_unix_nano: time,
                    severity_number: severity,
                    body: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(body.into())),
                    }),
                    attributes,
                    trace_id: if trace == [0; 16] { Vec::new() } else { trace.to_vec() },
                    span_id: if trace == [0; 16] {
                        Vec::new()
                    } else {
                        1u64.to_be_bytes().to_vec()
                    },
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

/// The Logs page as a first-class view: time range, text in the message or in attributes,
/// attribute filters with comparisons, the short trace ids it shows accepted as filters, a
/// drawer with a record's resource, scope and attributes, and a live tail that pauses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_logs_page_filters_opens_records_and_tails() {
    let Scene { running, addr, ui } = Scene::start().await;
    let base = now() - 120_000 * MS;
    let (traces, logs) = story(base);
    post(addr, "/v1/traces", traces).await;
    post(addr, "/v1/logs", logs).await;
    post(
        addr,
        "/v1/logs",
        log_request(
            "cache",
            base + 1_000 * MS,
            9,
            "cache warmed",
            vec![int("cache.size", 512)],
            [0; 16],
        ),
    )
    .await;
    post(
        addr,
        "/v1/logs",
        log_request(
            "cache",
            base + 2_000 * MS,
            13,
            "cache evicted",
            vec![int("cache.size", 64), text("user.name", "Ada Lovelace")],
            [0; 16],
        ),
    )
    .await;
    post(
        addr,
        "/v1/logs",
        log_request("cache", now() - 2 * 3_600_000 * MS, 9, "an old record", vec![], [0; 16]),
    )
    .await;
    running
        .search_until("/api/v1/logs", |r| r["logs"].as_array().is_some_and(|l| l.len() == 6))
        .await;

    let browser = Browser::start(artefacts()).await;
    let rows = "document.querySelectorAll('#log-table tbody tr').length";
    let shows = |n: usize| format!("{rows} === {n}");
    // The last hour by default: the old record only over six hours.
    browser.goto(&format!("{ui}/logs")).await;
    browser.wait_until("five records", &shows(5)).await;
    browser.goto(&format!("{ui}/logs?range=6h")).await;
    browser.wait_until("six records", &shows(6)).await;
    // Text in an attribute, an attribute comparison, and the short trace id shown.
    browser.goto(&format!("{ui}/logs?q=lovelace")).await;
    browser.wait_until("the evicted record", &shows(1)).await;
    browser.wait_for_text("#log-table", "cache evicted").await;
    browser.goto(&format!("{ui}/logs")).await;
    browser.wait_until("five records", &shows(5)).await;
    // The records' attribute keys and values are offered with their counts.
    browser
        .find("#log-search input[name=attr]")
        .await
        .send_keys("cache")
        .await
        .unwrap();
    let offered = browser.wait_for_text("#log-attr-suggest", "cache.size").await;
    assert!(offered.contains("cache.size (2)"), "{offered}");
    browser
        .click("#log-attr-suggest .suggestion[data-word='cache.size=']")
        .await;
    browser.wait_for_text("#log-attr-suggest", "512").await;
    let values = browser.texts("#log-attr-suggest .suggestion").await;
    assert_eq!(values.len(), 2, "{values:?}");
    browser
        .eval("document.querySelector('#log-search input[name=attr]').value = ''; return true;")
        .await;
    browser
        .find("#log-search input[name=attr]")
        .await
        .send_keys("cache.size>100")
        .await
        .unwrap();
    browser.click("#log-search button[type=submit]").await;
    browser
        .wait_until(
            "the warmed record",
            &format!("location.search.includes('attr=') && {}", shows(1)),
        )
        .await;
    browser.wait_for_text("#log-table", "cache warmed").await;
    browser.goto(&format!("{ui}/logs")).await;
    browser.wait_until("five records", &shows(5)).await;
    let short = browser
        .eval("return [...document.querySelectorAll('#log-table a.trace-link')].map(a => a.textContent).find(t => t.startsWith('a1a1'));")
        .await;
    let short = short.as_str().unwrap().trim_end_matches('…').to_owned();
    assert_eq!(short.len(), 12);
    browser
        .find("#log-search input[name=trace_id]")
        .await
        .send_keys(&short)
        .await
        .unwrap();
    browser.click("#log-search button[type=submit]").await;
    browser
        .wait_until(
            "the checkout's two",
            &format!("location.search.includes('trace_id=') && {}", shows(2)),
        )
        .await;

    // The drawer.
    browser.click("#log-table tbody tr:first-child td.body").await;
    browser.wait_for_text("#log-drawer-attributes", "order.id").await;
    browser.wait_for_text("#log-drawer-resource", "service.name").await;
    browser.find("#log-drawer a.mono").await;
    browser.screenshot_for_docs("log-record").await;
    // A record's attribute filters the records by itself.
    browser
        .click("#log-drawer-attributes tr[data-key='order.id'] a.filter-by")
        .await;
    browser
        .wait_until("records of that order", "location.search.includes('attr=order.id')")
        .await;
    browser.wait_until("three with o-17", &shows(3)).await;

    // Live: a new record comes in; paused, it waits and is counted.
    browser.goto(&format!("{ui}/logs?live=1&service=cache")).await;
    browser.wait_until("two cache records", &shows(2)).await;
    post(
        addr,
        "/v1/logs",
        log_request("cache", now(), 9, "cache refilled", vec![], [0; 16]),
    )
    .await;
    browser
        .wait_for_text("#log-table tbody tr:first-child", "cache refilled")
        .await;
    browser.click("#logs-pause").await;
    post(
        addr,
        "/v1/logs",
        log_request("cache", now(), 17, "cache on fire", vec![], [0; 16]),
    )
    .await;
    browser.wait_for_text("#logs-pause", "Resume (1 new)").await;
    assert!(!browser.texts("#log-table").await.join("").contains("cache on fire"));
    browser.click("#logs-pause").await;
    browser
        .wait_for_text("#log-table tbody tr:first-child", "cache on fire")
        .await;
    Scene::end(running, browser).await;
}

/// Per-minute charts that read: three minutes of data in an hour's range are three or four
/// bars, not sixty mostly empty ones; the chart has time and value axes, each bar says its
/// figures on hover and opens its traces, the p95 line is drawn; any operation can be charted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_minute_charts_adapt_to_the_data_and_have_axes_and_values() {
    let Scene { running, addr, ui } = Scene::start().await;
    let minute = 60_000 * MS;
    let this_minute = now() / minute * minute;
    for m in 0..3u64 {
        for k in 0..(5 + m * 5) {
            let mut one = fx(
                "checkout",
                [0x3c; 16],
                1,
                0,
                "POST /buy",
                span::SpanKind::Server,
                0,
                20 + m * 100,
            );
            one.trace[0] = (m * 16 + k) as u8;
            if k == 0 {
                one.error = Some("declined");
            }
            post(
                addr,
                "/v1/traces",
                traces_request(this_minute - (2 - m) * minute + k * MS, &[one]),
            )
            .await;
        }
    }
    let mut quiet = fx(
        "checkout",
        [0x3d; 16],
        1,
        0,
        "GET /health",
        span::SpanKind::Server,
        0,
        1,
    );
    quiet.trace[1] = 1;
    post(addr, "/v1/traces", traces_request(this_minute - minute, &[quiet])).await;
    running
        .search_until("/api/v1/stats?service=checkout", |s| {
            s["operations"].as_array().is_some_and(|o| o.len() == 2)
        })
        .await;

    let browser = Browser::start(artefacts()).await;
    browser.goto(&format!("{ui}/services")).await;
    browser.wait_for_text("#op-chart-title", "POST /buy").await;
    let chart = browser
        .eval(
            "const c = document.querySelector('#op-chart');
             return [c.querySelectorAll('rect.hover').length, [...c.querySelectorAll('text.time-axis')].map(t => t.textContent),
                     [...c.querySelectorAll('text.calls-axis')].map(t => t.textContent),
                     c.querySelector('polyline.p95-line').getAttribute('points').split(' ').length,
                     getComputedStyle(c.querySelector('polyline.p95-line')).strokeWidth,
                     [...c.querySelectorAll('rect.hover title')].map(t => t.textContent)];",
        )
        .await;
    let buckets = chart[0].as_u64().unwrap();
    assert!((3..=4).contains(&buckets), "three minutes of data: {buckets} bars");
    assert!(chart[1].as_array().unwrap().len() >= 2, "time axis: {}", chart[1]);
    assert_eq!(
        chart[2],
        serde_json::json!(["0", "15"]),
        "calls axis up to the busiest minute"
    );
    assert!(chart[3].as_u64().unwrap() >= 3, "a p95 point per minute with calls");
    assert_eq!(chart[4], "2px");
    let titles: Vec<String> = serde_json::from_value(chart[5].clone()).unwrap();
    assert!(
        titles.iter().any(|t| t.contains("15 calls, 1 errors, p95")),
        "hover values: {titles:?}"
    );
    // A bar opens its minute's traces, slowest first.
    browser.click("#op-chart rect.hover:last-of-type").await;
    browser.wait_for_text("#trace-list", "POST /buy").await;
    assert!(browser.location().await.contains("sort=duration"));
    // Another operation, charted.
    browser.goto(&format!("{ui}/services")).await;
    browser
        .click("#stats-table tr[data-operation='GET /health'] button.chart-op")
        .await;
    browser.wait_for_text("#op-chart-title", "GET /health").await;
    assert!(browser.location().await.contains("chart=checkout%2FGET"));
    Scene::end(running, browser).await;
}
