//! Log records and where they go: the bridge between logging libraries and log exporters, as
//! OpenTelemetry's Logs Bridge API is. A logging library (the `tracing` bridge in
//! `skein-tracing`, or your own) asks [`enabled`] and hands a [`LogRecord`] to [`emit`]; an
//! export pipeline (`skein-export`) adds a [`LogProcessor`] that batches and ships them. A
//! record made with [`LogRecord::new`] carries the current activity's trace id, span id and
//! flags, so every log line leads to its trace and back. With no processor added, [`enabled`]
//! is one atomic load and nothing else happens.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use skein::logs::{self, LogProcessor, LogRecord, Severity};
//!
//! #[derive(Default)]
//! struct Keep(Mutex<Vec<LogRecord>>);
//! impl LogProcessor for Keep {
//!     fn emit(&self, record: LogRecord) {
//!         self.0.lock().unwrap().push(record);
//!     }
//! }
//!
//! let keep = Arc::new(Keep::default());
//! let _added = logs::add_log_processor(keep.clone());
//! if logs::enabled(Severity::WARN) {
//!     logs::emit(LogRecord::new(Severity::WARN, "disk almost full").with_scope("my_app"));
//! }
//! assert_eq!(keep.0.lock().unwrap()[0].body.as_deref(), Some("disk almost full"));
//! ```

use std::borrow::Cow;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::activity::Activity;
use crate::clock::Timestamp;
use crate::id::{ActivityTraceFlags, SpanId, TraceId};
use crate::tag::Tag;

/// How severe a log record is: OpenTelemetry's `SeverityNumber` (1–24, in six ranges of four).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Severity(u8);

impl Severity {
    /// TRACE (1).
    pub const TRACE: Severity = Severity(1);
    /// DEBUG (5).
    pub const DEBUG: Severity = Severity(5);
    /// INFO (9).
    pub const INFO: Severity = Severity(9);
    /// WARN (13).
    pub const WARN: Severity = Severity(13);
    /// ERROR (17).
    pub const ERROR: Severity = Severity(17);
    /// FATAL (21).
    pub const FATAL: Severity = Severity(21);

    /// The severity numbered `number`, clamped to 1–24.
    pub const fn from_number(number: u8) -> Severity {
        Severity(if number == 0 {
            1
        } else if number > 24 {
            24
        } else {
            number
        })
    }

    /// OpenTelemetry's severity number.
    pub const fn number(self) -> u8 {
        self.0
    }

    /// The short name of the range this severity lies in (`INFO` for 9–12).
    pub const fn name(self) -> &'static str {
        match self.0 {
            0..=4 => "TRACE",
            5..=8 => "DEBUG",
            9..=12 => "INFO",
            13..=16 => "WARN",
            17..=20 => "ERROR",
            _ => "FATAL",
        }
    }
}

/// One log line: when, how severe, what, and in which trace.
#[derive(Clone, Debug)]
pub struct LogRecord {
    /// When the event happened.
    pub timestamp: Timestamp,
    /// When the logging library saw it (usually the same).
    pub observed_timestamp: Timestamp,
    /// How severe it is.
    pub severity: Severity,
    /// The severity as the logging library names it (`WARN`, `warning`, …).
    pub severity_text: Cow<'static, str>,
    /// The message.
    pub body: Option<Cow<'static, str>>,
    /// Typed attributes (the structured fields).
    pub attributes: Vec<Tag>,
    /// The trace it belongs to ([`TraceId::INVALID`] outside any activity).
    pub trace_id: TraceId,
    /// The activity it was logged in ([`SpanId::INVALID`] outside any activity).
    pub span_id: SpanId,
    /// That activity's trace flags.
    pub trace_flags: ActivityTraceFlags,
    /// Who logged it: the instrumentation scope (a `tracing` target, a logger name).
    pub scope: Cow<'static, str>,
}

impl LogRecord {
    /// A record of now, in the current activity's trace (if any), with no attributes and an
    /// empty scope name.
    pub fn new(severity: Severity, body: impl Into<Cow<'static, str>>) -> LogRecord {
        let now = Timestamp::now();
        let mut record = LogRecord {
            timestamp: now,
            observed_timestamp: now,
            severity,
            severity_text: Cow::Borrowed(severity.name()),
            body: Some(body.into()),
            attributes: Vec::new(),
            trace_id: TraceId::INVALID,
            span_id: SpanId::INVALID,
            trace_flags: ActivityTraceFlags::NONE,
            scope: Cow::Borrowed(""),
        };
        if let Some(activity) = Activity::current() {
            record.set_activity(&activity);
        }
        record
    }

    /// Puts the record in `activity`'s trace.
    pub fn set_activity(&mut self, activity: &Activity) {
        self.trace_id = activity.trace_id();
        self.span_id = activity.span_id();
        self.trace_flags = activity.trace_flags();
    }

    /// Sets the instrumentation scope.
    pub fn with_scope(mut self, scope: impl Into<Cow<'static, str>>) -> LogRecord {
        self.scope = scope.into();
        self
    }

    /// Adds an attribute.
    pub fn with_attribute(mut self, tag: Tag) -> LogRecord {
        self.attributes.push(tag);
        self
    }
}

/// Receives emitted log records: an export pipeline's end of the bridge. It runs on the thread
/// that logged, so it must not block (queue, and export elsewhere); it may log or start
/// activities in turn (no lock of this crate is held while it runs).
pub trait LogProcessor: Send + Sync + 'static {
    /// The least severe record it wants (asked once, when added).
    fn min_severity(&self) -> Severity {
        Severity::TRACE
    }

    /// One record.
    fn emit(&self, record: LogRecord);
}

impl<T: LogProcessor + ?Sized> LogProcessor for Arc<T> {
    fn min_severity(&self) -> Severity {
        (**self).min_severity()
    }
    fn emit(&self, record: LogRecord) {
        (**self).emit(record)
    }
}

struct Added {
    id: u64,
    min_severity: Severity,
    processor: Arc<dyn LogProcessor>,
}

struct Processors {
    /// The set emitters read (replaced whole on every change).
    current: ArcSwap<Vec<Arc<Added>>>,
    /// Serialises changes; never held while a processor runs.
    changing: Mutex<u64>,
}

static PROCESSORS: std::sync::LazyLock<Processors> = std::sync::LazyLock::new(|| Processors {
    current: ArcSwap::from_pointee(Vec::new()),
    changing: Mutex::new(0),
});

/// The least severe number any processor wants; `NONE_WANTED` with no processor.
static MIN_WANTED: AtomicU8 = AtomicU8::new(NONE_WANTED);
const NONE_WANTED: u8 = u8::MAX;

/// Adds a processor; it receives records until the registration is dropped.
pub fn add_log_processor(processor: impl LogProcessor) -> LogProcessorRegistration {
    let min_severity = processor.min_severity();
    // The replaced set is dropped after the lock is released (see `publish`).
    let (id, _replaced) = {
        let mut next_id = PROCESSORS.changing.lock().unwrap_or_else(|e| e.into_inner());
        *next_id += 1;
        let mut set = Vec::clone(&PROCESSORS.current.load());
        set.push(Arc::new(Added {
            id: *next_id,
            min_severity,
            processor: Arc::new(processor),
        }));
        (*next_id, publish(set))
    };
    LogProcessorRegistration { id }
}

/// Replaces the set (the caller holds `changing`) and returns the old one. Dropping it may
/// drop a processor, whose drop may add or remove processors and so wait on the lock the caller
/// holds: the caller drops it once it has let go.
#[must_use = "drop the replaced set after releasing the lock"]
fn publish(set: Vec<Arc<Added>>) -> Arc<Vec<Arc<Added>>> {
    let min = set.iter().map(|a| a.min_severity.number()).min().unwrap_or(NONE_WANTED);
    MIN_WANTED.store(min, Ordering::Relaxed);
    PROCESSORS.current.swap(Arc::new(set))
}

/// Keeps a processor added; dropping it removes the processor.
#[must_use = "dropping the registration removes the processor at once"]
pub struct LogProcessorRegistration {
    id: u64,
}

impl Drop for LogProcessorRegistration {
    fn drop(&mut self) {
        let replaced = {
            let _changing = PROCESSORS.changing.lock().unwrap_or_else(|e| e.into_inner());
            let set: Vec<_> = PROCESSORS
                .current
                .load()
                .iter()
                .filter(|a| a.id != self.id)
                .cloned()
                .collect();
            publish(set)
        };
        drop(replaced); // the lock is released
    }
}

/// Whether a record of `severity` would reach any processor from this thread (false while
/// [`suppress_instrumentation`](crate::suppress_instrumentation) is in effect, so an
/// exporter's own libraries do not log into the export).
#[inline]
pub fn enabled(severity: Severity) -> bool {
    severity.number() >= MIN_WANTED.load(Ordering::Relaxed) && !crate::source::instrumentation_suppressed()
}

/// Hands `record` to every processor that wants its severity.
pub fn emit(record: LogRecord) {
    if !enabled(record.severity) {
        return;
    }
    let set = PROCESSORS.current.load_full();
    let mut wanting = set.iter().filter(|a| record.severity >= a.min_severity).peekable();
    while let Some(added) = wanting.next() {
        if wanting.peek().is_some() {
            added.processor.emit(record.clone());
        } else {
            added.processor.emit(record);
            break;
        }
    }
}
