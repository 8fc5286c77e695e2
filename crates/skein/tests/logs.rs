//! The logs bridge: records reach the processors that want them, stamped with the current
//! activity; processors may re-enter; exporters' own threads do not log into the export.
//! Processors are process-wide, so each test looks only at records of its own scope.

use std::sync::{Arc, Mutex};

use skein::logs::{self, LogProcessor, LogRecord, Severity};
use skein::{
    ActivityContext, ActivityCreationOptions, ActivityKind, ActivityListener, ActivitySamplingResult, ActivitySource,
};

#[derive(Default)]
struct Keep {
    scope: &'static str,
    min: Option<Severity>,
    records: Mutex<Vec<LogRecord>>,
}

impl Keep {
    fn new(scope: &'static str) -> Arc<Keep> {
        Arc::new(Keep {
            scope,
            ..Default::default()
        })
    }
    fn bodies(&self) -> Vec<String> {
        let records = self.records.lock().unwrap();
        records
            .iter()
            .map(|r| r.body.as_deref().unwrap_or("").to_owned())
            .collect()
    }
}

impl LogProcessor for Keep {
    fn min_severity(&self) -> Severity {
        self.min.unwrap_or(Severity::TRACE)
    }
    fn emit(&self, record: LogRecord) {
        if record.scope == self.scope {
            self.records.lock().unwrap().push(record);
        }
    }
}

struct All;
impl ActivityListener for All {
    fn should_listen_to(&self, source: &ActivitySource) -> bool {
        source.name() == "logs.test"
    }
    fn sample(&self, _: &ActivityCreationOptions<'_, ActivityContext>) -> ActivitySamplingResult {
        ActivitySamplingResult::AllDataAndRecorded
    }
}

static SOURCE: ActivitySource = ActivitySource::new("logs.test");

#[test]
fn records_carry_the_current_activity_and_reach_processors_by_severity() {
    let _listener = ActivitySource::add_activity_listener(All);
    let everything = Keep::new("t1");
    let warnings = Arc::new(Keep {
        scope: "t1",
        min: Some(Severity::WARN),
        ..Default::default()
    });
    let _a = logs::add_log_processor(everything.clone());
    let _b = logs::add_log_processor(warnings.clone());
    assert!(logs::enabled(Severity::TRACE));

    logs::emit(LogRecord::new(Severity::INFO, "outside").with_scope("t1"));
    let activity = SOURCE.start_activity("work", ActivityKind::Internal).unwrap();
    logs::emit(LogRecord::new(Severity::ERROR, "inside").with_scope("t1"));
    drop(activity.clone());

    assert_eq!(everything.bodies(), ["outside", "inside"]);
    assert_eq!(warnings.bodies(), ["inside"]);
    let records = everything.records.lock().unwrap();
    assert!(!records[0].trace_id.is_valid() && !records[0].span_id.is_valid());
    assert_eq!(records[1].trace_id, activity.trace_id());
    assert_eq!(records[1].span_id, activity.span_id());
    assert!(records[1].trace_flags.is_recorded());
    assert_eq!(records[1].severity_text, "ERROR");
    assert!(records[1].timestamp.unix_nanos() > 1_600_000_000_000_000_000);
}

#[test]
fn nothing_is_logged_where_instrumentation_is_suppressed() {
    let kept = Keep::new("t2");
    let _added = logs::add_log_processor(kept.clone());
    {
        let _quiet = skein::suppress_instrumentation();
        assert!(!logs::enabled(Severity::FATAL));
        logs::emit(LogRecord::new(Severity::FATAL, "from the exporter's libraries").with_scope("t2"));
    }
    logs::emit(LogRecord::new(Severity::INFO, "from the application").with_scope("t2"));
    assert_eq!(kept.bodies(), ["from the application"]);
}

/// Logs from its `emit`, adds a processor from its `emit` and another from its `drop`.
struct Reentrant {
    kept: Arc<Keep>,
    added: Mutex<Vec<logs::LogProcessorRegistration>>,
}

impl LogProcessor for Reentrant {
    fn emit(&self, record: LogRecord) {
        if record.scope == "t3" && record.body.as_deref() == Some("first") {
            logs::emit(LogRecord::new(Severity::INFO, "nested").with_scope("t3"));
            self.added
                .lock()
                .unwrap()
                .push(logs::add_log_processor(Keep::new("none")));
        }
        self.kept.emit(record);
    }
}

impl Drop for Reentrant {
    fn drop(&mut self) {
        let registration = logs::add_log_processor(Keep::new("none"));
        drop(registration);
        logs::emit(LogRecord::new(Severity::INFO, "from drop").with_scope("t3"));
    }
}

#[test]
fn processors_may_log_and_add_or_remove_processors_from_emit_and_drop() {
    let kept = Keep::new("t3");
    let witness = Keep::new("t3");
    let _witness = logs::add_log_processor(witness.clone());
    let registration = logs::add_log_processor(Reentrant {
        kept: kept.clone(),
        added: Mutex::new(Vec::new()),
    });
    logs::emit(LogRecord::new(Severity::INFO, "first").with_scope("t3"));
    drop(registration); // the processor's drop adds, removes and logs: no deadlock
    assert_eq!(kept.bodies(), ["nested", "first"]);
    assert_eq!(witness.bodies(), ["first", "nested", "from drop"]);
}

#[test]
fn severities_are_numbered_as_in_opentelemetry() {
    assert_eq!(Severity::INFO.number(), 9);
    assert_eq!(Severity::from_number(0), Severity::TRACE);
    assert_eq!(Severity::from_number(99).number(), 24);
    assert_eq!(Severity::from_number(14).name(), "WARN");
    assert!(Severity::ERROR > Severity::WARN);
}
