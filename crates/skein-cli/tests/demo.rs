//! `skein demo` end to end: runs the real binary (collector, dashboard and five service
//! processes exporting over OTLP), then checks through the query API that the story the demo
//! tells is there — one trace per checkout across every service and the database, the linked
//! connection setup, baggage turned into tags, the Request-Id hop, the slow business rule,
//! the 503s as error traces, logs tied to their traces — and that the dashboard's pages load
//! in headless Chromium (screenshots under `target/tmp/demo-screenshots/`). Ctrl-C (SIGINT)
//! stops it cleanly.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use skein_browser_test::Browser;

struct Demo {
    child: Child,
    ui: String,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Demo {
    let mut child = Command::new(env!("CARGO_BIN_EXE_skein"))
        .args(["demo", "--port", "0", "--rate", "20", "--duration", "5m"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().expect("the demo prints its dashboard URL").unwrap();
    let ui = first
        .strip_prefix("Skein demo: dashboard at ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_owned();
    // Keep draining what it prints so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Demo { child, ui }
}

async fn get(demo: &Demo, path: &str) -> Value {
    let response = reqwest::get(format!("{}{path}", demo.ui)).await.unwrap();
    assert!(response.status().is_success(), "{path}: {}", response.status());
    response.json().await.unwrap()
}

/// Polls a search until it returns at least one trace.
async fn search(demo: &Demo, query: &str) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let found = get(demo, &format!("/api/v1/traces?{query}")).await;
        let traces = found["traces"].as_array().cloned().unwrap_or_default();
        if !traces.is_empty() {
            return traces;
        }
        assert!(started.elapsed() < Duration::from_secs(90), "no trace for {query}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn spans(trace: &Value) -> &Vec<Value> {
    trace["spans"].as_array().unwrap()
}

fn find<'a>(trace: &'a Value, service: &str, name: &str) -> &'a Value {
    spans(trace)
        .iter()
        .find(|s| s["service"] == service && s["name"].as_str().is_some_and(|n| n.starts_with(name)))
        .unwrap_or_else(|| panic!("no {service} span {name} in {}", summary(trace)))
}

fn parent<'a>(trace: &'a Value, span: &Value) -> &'a Value {
    spans(trace)
        .iter()
        .find(|s| s["span_id"] == span["parent_span_id"])
        .unwrap_or_else(|| panic!("the parent of {} is not in the trace", span["name"]))
}

fn summary(trace: &Value) -> String {
    spans(trace)
        .iter()
        .map(|s| format!("{}:{}", s["service"].as_str().unwrap(), s["name"].as_str().unwrap()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A trace once it has every `(service, name prefix)` asked for (each process exports on its
/// own schedule).
async fn whole_trace(demo: &Demo, id: &str, wanted: &[(&str, &str)]) -> Value {
    let started = Instant::now();
    loop {
        let trace = get(demo, &format!("/api/v1/traces/{id}")).await;
        let has = |(service, name): &(&str, &str)| {
            spans(&trace)
                .iter()
                .any(|s| s["service"] == *service && s["name"].as_str().is_some_and(|n| n.starts_with(name)))
        };
        if wanted.iter().all(has) {
            return trace;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "trace {id}: {}",
            summary(&trace)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The spans of a checkout that reached payments.
const CHECKOUT: [(&str, &str); 7] = [
    ("loadgen", "customer checkout"),
    ("storefront", "GET /checkout"),
    ("catalog", "GET /items/{sku}"),
    ("orders", "POST /orders"),
    ("orders", "evaluate discount rule"),
    ("orders", "INSERT orders"),
    ("payments", "POST /charge"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_tells_the_whole_story() {
    let demo = start();

    // A checkout that reached the database: one trace from the load generator through
    // storefront, catalog, orders (rule + SQLite) and payments.
    let stored = search(&demo, "service=orders&operation=INSERT%20orders&limit=20").await;
    let id = stored[0]["trace_id"].as_str().unwrap().to_owned();
    let trace = whole_trace(&demo, &id, &CHECKOUT).await;
    let root = find(&trace, "loadgen", "customer checkout");
    assert_eq!(root["parent_span_id"], "", "the load generator starts the trace");
    let front = find(&trace, "storefront", "GET /checkout");
    assert_eq!(front["kind"], "server");
    assert_eq!(parent(&trace, front)["kind"], "client");
    let orders = find(&trace, "orders", "POST /orders");
    assert_eq!(orders["kind"], "server");
    let call = parent(&trace, orders);
    assert_eq!(
        (call["service"].as_str(), call["kind"].as_str()),
        (Some("storefront"), Some("client"))
    );
    let insert = find(&trace, "orders", "INSERT orders");
    assert_eq!(insert["kind"], "client");
    assert_eq!(insert["attributes"]["db.system.name"], "sqlite");
    assert_eq!(parent(&trace, insert)["span_id"], orders["span_id"]);
    let rule = find(&trace, "orders", "evaluate discount rule");
    assert_eq!(rule["attributes"]["rule.name"], "loyalty-discount");
    find(&trace, "catalog", "GET /items/{sku}");
    let charge = find(&trace, "payments", "POST /charge");
    assert_eq!(charge["kind"], "server");
    // Baggage from the load generator became tags in every service.
    let tier = root["attributes"]["customer.tier"].clone();
    assert!(tier.is_string(), "{root}");
    for span in [front, orders, charge] {
        assert_eq!(span["attributes"]["customer.tier"], tier, "{}", span["name"]);
    }
    assert_eq!(rule["attributes"]["customer.tier"], tier);

    // HTTPS to payments: connection setup traces (DNS, connect, TLS) that requests link to.
    let setups = search(&demo, "service=storefront&limit=200").await;
    let setup = setups
        .iter()
        .find(|t| {
            t["root_name"]
                .as_str()
                .is_some_and(|n| n.starts_with("HTTP connection_setup"))
        })
        .expect("a connection setup trace");
    let setup = whole_trace(
        &demo,
        setup["trace_id"].as_str().unwrap(),
        &[
            ("storefront", "DNS lookup"),
            ("storefront", "socket connect"),
            ("storefront", "TLS client handshake"),
        ],
    )
    .await;
    // The request that links here ends (and is exported) after its connection's setup.
    let setup_id = setup["trace_id"].as_str().unwrap().to_owned();
    let started = Instant::now();
    let linking = loop {
        let now = get(&demo, &format!("/api/v1/traces/{setup_id}")).await;
        if let Some(first) = now["linked_from"].as_array().and_then(|l| l.first()) {
            let span = first["span_id"].as_str().unwrap();
            let page = get(
                &demo,
                &format!("/api/v1/traces/{setup_id}/linked_from?span={span}&limit=1"),
            )
            .await;
            break page["links"][0]["trace_id"].as_str().unwrap().to_owned();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "a request links to its connection"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let linked = whole_trace(&demo, &linking, &[("storefront", "POST")]).await;
    let linker = spans(&linked)
        .iter()
        .find(|s| {
            s["links"]
                .as_array()
                .is_some_and(|l| l.iter().any(|l| l["trace_id"] == setup["trace_id"]))
        })
        .expect("the linking span");
    assert_eq!(linker["service"], "storefront");

    // The Request-Id hop: an old client speaking hierarchical ids, joined to catalog.
    let legacy = search(&demo, "operation=legacy%20catalog%20browse&limit=5").await;
    let legacy = whole_trace(
        &demo,
        legacy[0]["trace_id"].as_str().unwrap(),
        &[("loadgen", "legacy catalog browse"), ("catalog", "GET /items")],
    )
    .await;
    let items = find(&legacy, "catalog", "GET /items");
    assert_eq!(items["kind"], "server");
    assert_eq!(parent(&legacy, items)["service"], "loadgen");

    // The slow business rule, found by duration.
    let slow = search(
        &demo,
        "service=orders&operation=evaluate%20discount%20rule&min_duration=300ms&limit=5",
    )
    .await;
    let slow_id = slow[0]["trace_id"].as_str().unwrap().to_owned();
    let slow_trace = whole_trace(&demo, &slow_id, &CHECKOUT).await;
    let slow_rule = find(&slow_trace, "orders", "evaluate discount rule");
    assert_eq!(slow_rule["attributes"]["rule.cache"], "miss");
    assert!(slow_rule["duration_nano"].as_u64().unwrap() >= 300_000_000);

    // Payments' 503s are error traces, and their logs are tied to them.
    let failed = search(&demo, "service=payments&errors=true&limit=5").await;
    let failed_id = failed[0]["trace_id"].as_str().unwrap().to_owned();
    let failed_trace = whole_trace(&demo, &failed_id, &CHECKOUT).await;
    let charge = find(&failed_trace, "payments", "POST /charge");
    assert_eq!(charge["status"]["code"], "error");
    assert_eq!(charge["attributes"]["http.response.status_code"], 503);
    assert_eq!(
        find(&failed_trace, "storefront", "GET /checkout")["status"]["code"],
        "error"
    );
    let started = Instant::now();
    let logs = loop {
        let with_logs = get(&demo, &format!("/api/v1/traces/{failed_id}")).await;
        let logs = with_logs["logs"].as_array().cloned().unwrap_or_default();
        if logs.iter().any(|l| l["service"] == "payments") && logs.iter().any(|l| l["service"] == "storefront") {
            break logs;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "logs of {failed_id}: {logs:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let payment_log = logs.iter().find(|l| l["service"] == "payments").unwrap();
    assert_eq!(payment_log["severity_text"], "ERROR");
    assert_eq!(payment_log["span_id"], charge["span_id"], "the log line names its span");

    // The dashboard's pages load in a real browser.
    let artefacts = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("demo-screenshots");
    let browser = Browser::start(artefacts).await;
    browser.goto(&format!("{}/traces", demo.ui)).await;
    browser.wait_for_text("#trace-list", "customer checkout").await;
    browser.screenshot_for_docs("traces").await;
    browser.goto(&format!("{}/traces/{slow_id}", demo.ui)).await;
    browser
        .wait_for_text("#where-time-went", "evaluate discount rule")
        .await;
    browser.screenshot_for_docs("trace").await;
    browser.goto(&format!("{}/services", demo.ui)).await;
    browser
        .wait_until(
            "five services on the map",
            "document.querySelectorAll('#dependency-map .node').length === 5",
        )
        .await;
    browser.wait_for_text("#stats-table", "evaluate discount rule").await;
    browser.screenshot_for_docs("services").await;
    // Spike → traces → logs, a click each: the chart's latest minute opens its traces,
    // slowest first; the slowest opens; its header opens its logs on the Logs page.
    browser.click("#op-chart rect.hover:last-of-type").await;
    browser.wait_for_text("#trace-list", "ms").await;
    assert!(browser.location().await.contains("sort=duration"));
    browser.click("#trace-list tbody tr:first-child td a").await;
    let logs_link = browser.wait_for_text("#trace-logs-top", "Logs (").await;
    let count: usize = logs_link
        .trim_start_matches("Logs (")
        .trim_end_matches(')')
        .parse()
        .unwrap();
    browser.click("#trace-logs-top").await;
    browser
        .wait_until(
            "the trace's logs",
            "location.pathname === '/logs' && location.search.includes('trace_id=')",
        )
        .await;
    if count > 0 {
        browser
            .wait_until(
                &format!("{count} log records"),
                &format!("document.querySelectorAll('#log-table tbody tr').length === {count}"),
            )
            .await;
    } else {
        browser.wait_for_text("#empty-state", "No log records match").await;
    }
    browser.goto(&format!("{}/logs", demo.ui)).await;
    browser.wait_for_text("#log-table", "checkout").await;
    browser.screenshot_for_docs("logs").await;
    browser.close().await;

    // Ctrl-C stops every process and the collector cleanly.
    // SAFETY: kill(2) on the demo's pid, a child not reaped yet.
    assert_eq!(unsafe { libc::kill(demo.child.id() as libc::pid_t, libc::SIGINT) }, 0);
    let mut demo = demo;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = demo.child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the demo did not stop");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "{status}");
}
