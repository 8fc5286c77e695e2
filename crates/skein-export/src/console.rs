//! A console exporter for development: each finished trace as an indented tree, or one JSON
//! line per activity.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write;
use std::time::Duration;

use skein::{Activity, ActivityKind, ActivityStatusCode, SpanId, TraceId};

use crate::{ActivityExporter, ExportError};

/// How the console exporter writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ConsoleFormat {
    /// Each trace as an indented tree once its local root has stopped.
    #[default]
    Tree,
    /// One JSON object per activity and line, as it arrives.
    JsonLines,
}

/// Activities waiting for their local root before a tree is printed; past this, the oldest
/// trace is printed as it is.
const MAX_PENDING: usize = 10_000;

/// Writes exported activities to stdout (or any writer) in a human-readable form.
///
/// ```text
/// trace 4bf92f3577b34da6a3ce929d0e0e4736
/// GET /checkout  [server]  35.7ms  ok  http.request.method=GET
///   load cart  [client]  16.8ms  db.system.name=sqlite
///   charge card  [client]  12.0ms  ERROR card declined
/// ```
pub struct ConsoleExporter {
    format: ConsoleFormat,
    out: Box<dyn Write + Send>,
    /// Finished activities of traces whose local root has not finished yet, by trace.
    pending: HashMap<TraceId, Vec<Activity>>,
    pending_len: usize,
    order: Vec<TraceId>,
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
            out: Box::new(out),
            pending: HashMap::new(),
            pending_len: 0,
            order: Vec::new(),
        }
    }

    fn print_tree(&mut self, trace: TraceId, activities: Vec<Activity>) {
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
    for tag in node.tags().iter().take(8) {
        let _ = write!(text, "  {}={}", tag.key, tag.value);
    }
    for event in node.events() {
        let _ = write!(text, "  !{}", event.name);
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
            let _ = self.out.write_all(text.as_bytes());
            let _ = self.out.flush();
            return Ok(());
        }
        for activity in batch {
            let trace = activity.trace_id();
            let is_local_root = activity.parent().is_none();
            let entry = self.pending.entry(trace).or_insert_with(|| {
                self.order.push(trace);
                Vec::new()
            });
            entry.push(activity.clone());
            self.pending_len += 1;
            if is_local_root {
                let done = self.pending.remove(&trace).unwrap_or_default();
                self.pending_len -= done.len();
                self.order.retain(|t| *t != trace);
                self.print_tree(trace, done);
            }
        }
        while self.pending_len > MAX_PENDING && !self.order.is_empty() {
            let oldest = self.order.remove(0);
            let done = self.pending.remove(&oldest).unwrap_or_default();
            self.pending_len -= done.len();
            self.print_tree(oldest, done);
        }
        Ok(())
    }

    fn shutdown(&mut self) {
        for trace in std::mem::take(&mut self.order) {
            if let Some(done) = self.pending.remove(&trace) {
                self.print_tree(trace, done);
            }
        }
        self.pending_len = 0;
    }
}
