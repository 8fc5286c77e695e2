//! The log pipeline: a full batch is exported at once (not at the schedule), the rest on
//! flush; severities below the pipeline's are not even made into records; the queue is
//! bounded and what does not fit is counted.

use std::time::{Duration, Instant};

use skein::logs::{self, LogRecord, Severity};
use skein_export::{BatchConfig, InMemoryLogExporter, LogPipeline};

fn ours(exporter: &InMemoryLogExporter, scope: &str) -> Vec<LogRecord> {
    exporter.records().into_iter().filter(|r| r.scope == scope).collect()
}

#[test]
fn full_batches_leave_at_once_and_the_rest_on_flush() {
    let exporter = InMemoryLogExporter::default();
    let guard = LogPipeline::new(exporter.clone())
        .with_batch_config(BatchConfig {
            max_export_batch_size: 10,
            scheduled_delay: Duration::from_secs(3600),
            ..BatchConfig::for_logs()
        })
        .with_min_severity(Severity::INFO)
        .install();
    assert!(!logs::enabled(Severity::DEBUG), "below every pipeline: not even made");
    for i in 0..25 {
        logs::emit(LogRecord::new(Severity::INFO, format!("line {i}")).with_scope("batches"));
    }
    logs::emit(LogRecord::new(Severity::DEBUG, "too quiet").with_scope("batches"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while ours(&exporter, "batches").len() < 20 {
        assert!(
            Instant::now() < deadline,
            "two full batches were not exported before the schedule"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        ours(&exporter, "batches").len(),
        20,
        "the partial batch waits for the schedule"
    );
    guard.force_flush(Duration::from_secs(5)).unwrap();
    let records = ours(&exporter, "batches");
    assert_eq!(records.len(), 25);
    assert_eq!(records[24].body.as_deref(), Some("line 24"), "in order");
    assert_eq!(guard.dropped_count(), 0);
}
