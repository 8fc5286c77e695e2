//! The console exporter's output.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use skein::*;
use skein_export::{ConsoleExporter, ConsoleFormat, ExportPipeline};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);
impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

fn run(source: &'static ActivitySource, format: ConsoleFormat) -> String {
    let out = Captured::default();
    let guard = ExportPipeline::new()
        .with_sources([source.name()])
        .simple(ConsoleExporter::to_writer(format, out.clone()))
        .install();
    {
        let root = source.start_activity("GET /checkout", ActivityKind::Server).unwrap();
        root.set_tag("http.request.method", "GET");
        {
            let child = source.start_activity("charge card", ActivityKind::Client).unwrap();
            child.set_status(ActivityStatusCode::Error, Some("card declined"));
            let _grandchild = source.start_activity("dns", ActivityKind::Internal).unwrap();
        }
        drop(root);
    }
    guard.shutdown(Duration::from_secs(5)).unwrap();
    out.text()
}

#[test]
fn a_finished_trace_prints_as_an_indented_tree() {
    static SOURCE: ActivitySource = ActivitySource::new("test.console.tree");
    let text = run(&SOURCE, ConsoleFormat::Tree);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("trace "), "{text}");
    assert!(lines[1].starts_with("GET /checkout  [server]  "), "{text}");
    assert!(lines[1].contains("http.request.method=GET"), "{text}");
    assert!(
        lines[2].starts_with("  charge card  [client]  ") && lines[2].contains("ERROR card declined"),
        "{text}"
    );
    assert!(lines[3].starts_with("    dns  [internal]  "), "{text}");
    assert_eq!(lines.len(), 4, "one trace, printed once: {text}");
}

#[test]
fn json_lines_give_one_object_per_activity() {
    static SOURCE: ActivitySource = ActivitySource::new("test.console.json");
    let text = run(&SOURCE, ConsoleFormat::JsonLines);
    let objects: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(objects.len(), 3);
    let names: Vec<&str> = objects.iter().map(|o| o["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["dns", "charge card", "GET /checkout"]);
    assert_eq!(objects[1]["status"], "error");
    assert_eq!(objects[1]["parentSpanId"], objects[2]["spanId"]);
    assert_eq!(objects[2]["tags"]["http.request.method"], "GET");
}

#[test]
fn stragglers_print_with_their_trace_and_remote_rooted_traces_print_when_quiet() {
    use skein_export::ActivityExporter;
    static SOURCE: ActivitySource = ActivitySource::new("test.console.stragglers");
    let _listener = ActivitySource::add_activity_listener(RecordAll("test.console.stragglers"));
    let out = Captured::default();
    let mut exporter = ConsoleExporter::to_writer(ConsoleFormat::Tree, out.clone());

    let root = SOURCE.start_activity("caller", ActivityKind::Internal).unwrap();
    let late = SOURCE.start_activity("late server work", ActivityKind::Server).unwrap();
    let _ = Activity::set_current(None);
    root.stop();
    // The root arrives first, its child a moment later (inside the grace period).
    exporter.export(std::slice::from_ref(&root)).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    late.stop();
    exporter.export(std::slice::from_ref(&late)).unwrap();

    // A trace whose root is in another process: printed once nothing more came for a while.
    let remote = SOURCE
        .start_activity_with(
            "GET /remote",
            ActivityKind::Server,
            ActivityStartOptions {
                parent: ActivityParent::Id("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
                ..Default::default()
            },
        )
        .unwrap();
    remote.stop();
    exporter.export(std::slice::from_ref(&remote)).unwrap();

    std::thread::sleep(Duration::from_millis(400));
    let text = out.text();
    assert_eq!(
        text.matches("trace ").count(),
        1,
        "the remote-rooted trace waits: {text}"
    );
    assert!(
        text.contains("caller  [internal]") && text.contains("\n  late server work  [server]"),
        "{text}"
    );
    std::thread::sleep(Duration::from_millis(1200));
    let text = out.text();
    assert!(
        text.contains("trace 0af7651916cd43dd8448eb211c80319c\nGET /remote  [server]"),
        "{text}"
    );
    drop(exporter);
}

struct RecordAll(&'static str);
impl ActivityListener for RecordAll {
    fn should_listen_to(&self, source: &ActivitySource) -> bool {
        source.name() == self.0
    }
    fn sample(&self, _: &ActivityCreationOptions<'_, ActivityContext>) -> ActivitySamplingResult {
        ActivitySamplingResult::AllDataAndRecorded
    }
}
