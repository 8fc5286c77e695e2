//! Shutting down beside a backend that is down, and timeouts the application set itself.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{closed_port, http_exporter, start_receiver};
use skein::{ActivityKind, ActivitySource};
use skein_export::{BatchConfig, ExportPipeline};

static REFUSED: ActivitySource = ActivitySource::new("shutdown.refused");
static SLOW: ActivitySource = ActivitySource::new("shutdown.slow");

#[test]
fn dropping_the_guard_beside_a_backend_that_refuses_connections_returns_promptly() {
    let guard = ExportPipeline::new()
        .with_sources([REFUSED.name()])
        .batch(
            http_exporter(closed_port()),
            BatchConfig {
                scheduled_delay: Duration::from_millis(10),
                ..BatchConfig::default()
            },
        )
        .install();
    drop(REFUSED.start_activity("exported while the backend is down", ActivityKind::Internal));
    // The export thread is now retrying with backoff.
    std::thread::sleep(Duration::from_millis(300));
    drop(REFUSED.start_activity("left for the last export", ActivityKind::Internal));
    let started = Instant::now();
    drop(guard);
    // Before: the guard always waited its full 5 s (the export thread kept retrying).
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "dropping the guard took {took:?}");
}

#[test]
fn an_exporter_timeout_set_by_the_application_outlasts_the_pipelines_export_timeout() {
    let (addr, received) = start_receiver();
    received.delay_ms.store(600, Ordering::SeqCst); // a backend slower than the pipeline's cap
    let guard = ExportPipeline::new()
        .with_sources([SLOW.name()])
        .batch(
            // As OTEL_EXPORTER_OTLP_TIMEOUT=45000 does.
            http_exporter(addr).with_timeout(Duration::from_secs(45)),
            BatchConfig {
                export_timeout: Duration::from_millis(200),
                ..BatchConfig::default()
            },
        )
        .install();
    drop(SLOW.start_activity("slow to deliver", ActivityKind::Internal));
    guard.force_flush(Duration::from_secs(10)).unwrap();
    // Before: the pipeline's 200 ms replaced the exporter's 45 s and every attempt timed out.
    assert_eq!(
        received.spans().len(),
        1,
        "attempts: {}",
        received.attempts.load(Ordering::SeqCst)
    );
    drop(guard);
}
