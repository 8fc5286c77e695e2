//! A console exporter for development: each finished trace as an indented tree, or one JSON
//! line per activity; log records one line each.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use skein::logs::LogRecord;
use skein::{Activity, ActivityKind, ActivityStatusCode, SpanId, TraceId};

use crate::{ActivityExporter, ExportError, LogExporter};

/// How the console exporter writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ConsoleFormat {
    /// Each trace as an indented tree once its local root has stopped.
    #[default]
    Tree,
    /// One JSON object per activity and line, as it arrives.
    JsonLines,
}

/// Activities waiting to be printed; past this, the oldest trace is printed as it is.
const MAX_PENDING: usize = 10_000;
/// How long a trace waits after its root arrived, for stragglers from the same process (a
/// server activity whose response body finished a moment after the caller's root).
const ROOT_GRACE: Duration = Duration::from_millis(100);
/// How long a trace whose root is in another process waits for more of its activities.
const QUIET: Duration = Duration::from_secs(1);
/// How often waiting traces are looked at.
const TICK: Duration = Duration::from_millis(50);

/// Writes exported activities to stdout (or any writer) in a human-readable form.
///
/// In tree mode a trace is printed shortly after its root finishes (or, when its root is in
/// another process, once no more of it arrived for a second), so the activities of one
/// request print together even when they finish in any order.
///
/// ```text
/// trace 4bf92f3577b34da6a3ce929d0e0e4736
/// GET /checkout  [server]  35.7ms  ok  http.request.method=GET
///   load cart  [client]  16.8ms  db.system.name=sqlite
///   charge card  [client]  12.0ms  ERROR card declined
/// ```
pub struct ConsoleExporter {
    format: ConsoleFormat,
    state: Arc<Mutex<TreeState>>,
}

struct PendingTrace {
    activities: Vec<Activity>,
    last_arrival: Instant,
    root_arrived: bool,
}

struct TreeState {
    out: Box<dyn Write + Send>,
    /// Finished activities by trace, in order of first arrival.
    pending: HashMap<TraceId, PendingTrace>,
    order: Vec<TraceId>,
    pending_len: usize,
    ticker: bool,
}

impl ConsoleExporter {
    /// An exporter writing to stdout.
    pub fn new(format: ConsoleFormat) -> Self {
        Self::to_writer(format, std::io::stdout())
    }

    /// An exporter writing to `out`.
    pub fn to_writer(format: ConsoleFormat, out: impl Write + Send + 'static) -> Self {
        ConsoleExporter {
            format,
            state: Arc::new(Mutex::new(TreeState {
                out: Box::new(out),
                pending: HashMap::new(),
                order: Vec::new(),
                pending_len: 0,
                ticker: false,
            })),
        }
    }

    fn state(&self) -> MutexGuard<'_, TreeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts the thread that prints traces once they are due (it ends with the exporter).
    fn start_ticker(&self) {
        let weak = Arc::downgrade(&self.state);
        let started = std::thread::Builder::new()
            .name("skein-console".into())
            .spawn(move || loop {
                std::thread::sleep(TICK);
                let Some(state) = weak.upgrade() else { return };
                state
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .print_due(Instant::now());
            });
        // Without the thread, traces still print at shutdown.
        self.state().ticker = started.is_ok();
    }
}

impl TreeState {
    fn add(&mut self, activity: &Activity, now: Instant) {
        let trace = activity.trace_id();
        let entry = self.pending.entry(trace).or_insert_with(|| {
            self.order.push(trace);
            PendingTrace {
                activities: Vec::new(),
                last_arrival: now,
                root_arrived: false,
            }
        });
        entry.activities.push(activity.clone());
        entry.last_arrival = now;
        entry.root_arrived |= !activity.parent_span_id().is_valid();
        self.pending_len += 1;
        while self.pending_len > MAX_PENDING && !self.order.is_empty() {
            let oldest = self.order[0];
            self.print(oldest);
        }
    }

    fn print_due(&mut self, now: Instant) {
        let due: Vec<TraceId> = self
            .order
            .iter()
            .filter(|t| {
                self.pending.get(t).is_some_and(|p| {
                    let waited = now.saturating_duration_since(p.last_arrival);
                    waited >= QUIET || (p.root_arrived && waited >= ROOT_GRACE)
                })
            })
            .copied()
            .collect();
        for trace in due {
            self.print(trace);
        }
    }

    fn print_all(&mut self) {
        while let Some(&trace) = self.order.first() {
            self.print(trace);
        }
    }

    fn print(&mut self, trace: TraceId) {
        self.order.retain(|t| *t != trace);
        let Some(done) = self.pending.remove(&trace) else {
            return;
        };
        self.pending_len -= done.activities.len();
        let activities = done.activities;
        let mut text = format!("trace {trace}\n");
        let ids: Vec<SpanId> = activities.iter().map(Activity::span_id).collect();
        let mut roots: Vec<&Activity> = activities
            .iter()
            .filter(|a| !ids.contains(&a.parent_span_id()))
            .collect();
        roots.sort_by_key(|a| a.start_time());
        for root in roots {
            write_subtree(&mut text, &activities, root, 0);
        }
        let _ = self.out.write_all(text.as_bytes());
        let _ = self.out.flush();
    }
}

fn kind_name(kind: ActivityKind) -> &'static str {
    match kind {
        ActivityKind::Internal => "internal",
        ActivityKind::Server => "server",
        ActivityKind::Client => "client",
        ActivityKind::Producer => "producer",
        ActivityKind::Consumer => "consumer",
    }
}

fn millis(d: Duration) -> String {
    format!("{:.1}ms", d.as_secs_f64() * 1000.0)
}

fn write_subtree(text: &mut String, all: &[Activity], node: &Activity, depth: usize) {
    let _ = write!(
        text,
        "{:indent$}{}  [{}]  {}",
        "",
        node.display_name(),
        kind_name(node.kind()),
        millis(node.duration()),
        indent = depth * 2
    );
    match node.status() {
        ActivityStatusCode::Ok => text.push_str("  ok"),
        ActivityStatusCode::Error => {
            let _ = write!(text, "  ERROR {}", node.status_description().unwrap_or_default());
        }
        ActivityStatusCode::Unset => {}
    }
    for tag in node.tags().iter().take(12) {
        let _ = write!(text, "  {}={}", tag.key, tag.value);
    }
    for event in node.events() {
        let _ = write!(text, "  !{}", event.name);
    }
    for link in node.links() {
        // Points at another trace (e.g. the connection setup a request used).
        let _ = write!(
            text,
            "  ~> trace {} span {}",
            link.context.trace_id, link.context.span_id
        );
    }
    text.push('\n');
    let mut children: Vec<&Activity> = all.iter().filter(|a| a.parent_span_id() == node.span_id()).collect();
    children.sort_by_key(|a| a.start_time());
    for child in children {
        write_subtree(text, all, child, depth + 1);
    }
}

fn json_line(a: &Activity) -> String {
    let tags: serde_json::Map<String, serde_json::Value> = a
        .tags()
        .iter()
        .map(|t| (t.key.to_string(), serde_json::Value::String(t.value.to_string())))
        .collect();
    let event_names: Vec<String> = a.events().iter().map(|e| e.name.to_string()).collect();
    let status = match a.status() {
        ActivityStatusCode::Unset => "unset",
        ActivityStatusCode::Ok => "ok",
        ActivityStatusCode::Error => "error",
    };
    serde_json::json!({
        "traceId": a.trace_id().to_hex(),
        "spanId": a.span_id().to_hex(),
        "parentSpanId": if a.parent_span_id().is_valid() { a.parent_span_id().to_hex() } else { String::new() },
        "name": a.display_name(),
        "kind": kind_name(a.kind()),
        "source": a.source().name(),
        "startTime": a.with_data(|d| d.start_time_unix_nanos()),
        "durationMs": a.duration().as_secs_f64() * 1000.0,
        "status": status,
        "statusDescription": a.status_description(),
        "tags": tags,
        "events": event_names,
    })
    .to_string()
}

impl ActivityExporter for ConsoleExporter {
    fn export(&mut self, batch: &[Activity]) -> Result<(), ExportError> {
        if self.format == ConsoleFormat::JsonLines {
            let mut text = String::new();
            for a in batch {
                text.push_str(&json_line(a));
                text.push('\n');
            }
            let mut state = self.state();
            let _ = state.out.write_all(text.as_bytes());
            let _ = state.out.flush();
            return Ok(());
        }
        if !self.state().ticker {
            self.start_ticker();
        }
        let now = Instant::now();
        let mut state = self.state();
        for activity in batch {
            state.add(activity, now);
        }
        Ok(())
    }

    fn shutdown(&mut self) {
        self.state().print_all();
    }
}

/// `HH:MM:SS.mmm` (UTC) of a Unix time in nanoseconds.
fn clock_time(unix_nanos: u64) -> String {
    let millis = unix_nanos / 1_000_000;
    let seconds = millis / 1000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        seconds / 3600 % 24,
        seconds / 60 % 60,
        seconds % 60,
        millis % 1000
    )
}

/// One log record, as a line: in tree mode `12:00:01.250Z WARN  [trace/span] scope: body
/// key=value`, in JSON mode an object.
fn log_line(format: ConsoleFormat, record: &LogRecord) -> String {
    let body = record.body.as_deref().unwrap_or("");
    match format {
        ConsoleFormat::JsonLines => {
            let attributes: serde_json::Map<String, serde_json::Value> = record
                .attributes
                .iter()
                .map(|t| (t.key.to_string(), serde_json::Value::String(t.value.to_string())))
                .collect();
            serde_json::json!({
                "time": record.timestamp.unix_nanos(),
                "severity": record.severity_text,
                "severityNumber": record.severity.number(),
                "body": body,
                "scope": record.scope,
                "traceId": if record.trace_id.is_valid() { record.trace_id.to_hex() } else { String::new() },
                "spanId": if record.span_id.is_valid() { record.span_id.to_hex() } else { String::new() },
                "attributes": attributes,
            })
            .to_string()
        }
        ConsoleFormat::Tree => {
            let mut line = format!(
                "{}Z {:<5} ",
                clock_time(record.timestamp.unix_nanos()),
                record.severity_text
            );
            if record.trace_id.is_valid() {
                let _ = write!(line, "[{}/{}] ", record.trace_id, record.span_id);
            }
            if !record.scope.is_empty() {
                let _ = write!(line, "{}: ", record.scope);
            }
            line.push_str(body);
            for tag in &record.attributes {
                let _ = write!(line, "  {}={}", tag.key, tag.value);
            }
            line
        }
    }
}

impl LogExporter for ConsoleExporter {
    fn export(&mut self, batch: &[LogRecord]) -> Result<(), ExportError> {
        let mut text = String::new();
        for record in batch {
            text.push_str(&log_line(self.format, record));
            text.push('\n');
        }
        let mut state = self.state();
        let _ = state.out.write_all(text.as_bytes());
        let _ = state.out.flush();
        Ok(())
    }
}
