//! `tracing` log lines (and `log` records) from an instrumented axum service reach a real
//! `skein dashboard` through `skein_export::init()` over every OTLP transport, and show on
//! their trace with the right span ids and severities.
//!
//! `init()` reads the process environment, so each service is a process of its own: this test
//! runs itself again with `SKEIN_LOGS_TEST_ROLE=service` and the transport's `OTEL_*`
//! variables (it has no test harness, hence the `main`).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Dashboard;
use serde_json::Value;

const ROLE: &str = "SKEIN_LOGS_TEST_ROLE";

fn main() {
    if std::env::var(ROLE).as_deref() == Ok("service") {
        service();
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let dashboard = Dashboard::start(data.path());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for (protocol, endpoint) in [
        ("grpc", format!("http://{}", dashboard.otlp_grpc)),
        ("http/protobuf", format!("http://{}", dashboard.otlp_http)),
        ("http/json", format!("http://{}", dashboard.otlp_http)),
    ] {
        runtime.block_on(logs_reach_their_trace(&dashboard, protocol, &endpoint));
        println!("logs over {protocol}: ok");
    }
}

/// The instrumented service, set up as the README says: `init()`, `skein_tracing::layer()`,
/// `TraceLayer`. It serves until its stdin closes, then drops the guard (which flushes).
fn service() {
    use axum::{routing::get, Router};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let guard = skein_export::init().expect("valid OTEL_* configuration");
    tracing_subscriber::registry().with(skein_tracing::layer()).init();
    runtime.block_on(async {
        let app = Router::new()
            .route(
                "/pay",
                get(|| async {
                    tracing::info!(order.id = 7, "charging card");
                    tracing::warn!(order.id = 7, limit = u64::MAX, "payment declined");
                    log::error!(target: "payments.gateway", "gateway timed out");
                    tracing::debug!("below the exported severity");
                    "declined"
                }),
            )
            .layer(skein_http::TraceLayer::new());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("ready {}", listener.local_addr().unwrap().port());
        let stdin_closed = async {
            use tokio::io::AsyncReadExt;
            let mut stdin = tokio::io::stdin();
            let mut buffer = [0u8; 16];
            while matches!(stdin.read(&mut buffer).await, Ok(n) if n > 0) {}
        };
        axum::serve(listener, app)
            .with_graceful_shutdown(stdin_closed)
            .await
            .unwrap();
    });
    drop(guard);
}

async fn logs_reach_their_trace(dashboard: &Dashboard, protocol: &str, endpoint: &str) {
    let service_name = format!("logs-{}", protocol.replace('/', "-"));
    let mut service = Command::new(std::env::current_exe().unwrap())
        .env(ROLE, "service")
        .env("OTEL_SERVICE_NAME", &service_name)
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env("OTEL_BLRP_SCHEDULE_DELAY", "100")
        .env_remove("OTEL_TRACES_EXPORTER")
        .env_remove("OTEL_LOGS_EXPORTER")
        .env_remove("OTEL_SDK_DISABLED")
        .env_remove("SKEIN_LOGS_MIN_SEVERITY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let ready = BufReader::new(service.stdout.take().unwrap())
        .lines()
        .next()
        .unwrap()
        .unwrap();
    let port = ready.strip_prefix("ready ").unwrap();

    // The caller's trace, so the test knows which trace to read.
    let trace_id = skein::TraceId::random().to_hex();
    let client = reqwest::Client::new();
    let answer = client
        .get(format!("http://127.0.0.1:{port}/pay"))
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.text().await.unwrap(), "declined");

    let deadline = Instant::now() + Duration::from_secs(30);
    let trace = loop {
        let response = client
            .get(format!("{}/api/v1/traces/{trace_id}", dashboard.ui))
            .send()
            .await
            .unwrap();
        if response.status().is_success() {
            let trace: Value = response.json().await.unwrap();
            if trace["logs"].as_array().is_some_and(|l| l.len() >= 3) {
                break trace;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{protocol}: the trace and its 3 logs did not arrive"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    drop(service.stdin.take()); // the service stops and flushes
    let status = service.wait().unwrap();
    assert!(status.success(), "{protocol}: the service exited with {status}");

    let server = trace["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "server")
        .unwrap_or_else(|| panic!("{protocol}: no server span in {trace}"));
    let logs = trace["logs"].as_array().unwrap();
    assert_eq!(
        logs.len(),
        3,
        "{protocol}: debug lines are below the default severity: {logs:?}"
    );
    let find = |body: &str| {
        logs.iter()
            .find(|l| l["body"] == body)
            .unwrap_or_else(|| panic!("{protocol}: no log {body:?} in {logs:?}"))
    };
    for (body, severity_text, severity_number, scope) in [
        ("charging card", "INFO", 9, "logs_export"),
        ("payment declined", "WARN", 13, "logs_export"),
        ("gateway timed out", "ERROR", 17, "payments.gateway"),
    ] {
        let log = find(body);
        assert_eq!(log["severity_text"], severity_text, "{protocol}: {log}");
        assert_eq!(log["severity_number"], severity_number, "{protocol}: {log}");
        assert_eq!(
            log["span_id"], server["span_id"],
            "{protocol}: the line names its span: {log}"
        );
        assert_eq!(log["trace_id"], trace_id.as_str(), "{protocol}: {log}");
        assert_eq!(
            log["service"],
            service_name.as_str(),
            "{protocol}: the spans' resource: {log}"
        );
        assert_eq!(log["scope"]["name"], scope, "{protocol}: {log}");
    }
    let declined = find("payment declined").to_string();
    assert!(
        declined.contains("order.id"),
        "{protocol}: typed attributes: {declined}"
    );
    assert!(
        declined.contains("18446744073709551615"),
        "{protocol}: u64 above i64::MAX keeps its digits: {declined}"
    );
    let _ = std::io::stdout().flush();
}
