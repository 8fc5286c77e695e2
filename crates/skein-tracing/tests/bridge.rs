//! A program instrumented with `tracing` (`#[instrument]`, `info_span!`, events), Skein
//! activities and sqlx queries, recorded through the bridge into an in-memory exporter: the
//! exported tree is checked exactly, in both nesting directions and across spawned tasks,
//! and the log lines carry the ids of the activity that was current.

use std::io::Write;
use std::sync::{Arc, Mutex};

use skein::{Activity, ActivityKind, ActivitySource, ActivityStatusCode, FutureExt, TagValue};
use skein_export::{ExportPipeline, InMemoryExporter};
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

static APP: ActivitySource = ActivitySource::new("app");

/// Log output captured for the test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn lines(&self) -> Vec<String> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[derive(Debug)]
struct OutOfStock;
impl std::fmt::Display for OutOfStock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("out of stock")
    }
}
impl std::error::Error for OutOfStock {}

#[tracing::instrument(skip(db), fields(otel.kind = "server", order.items = items))]
async fn place_order(db: &skein_tracing::TracedPool<sqlx::Sqlite>, items: i64) -> Result<i64, sqlx::Error> {
    tracing::info!(order.items = items, "order received");
    // A Skein activity inside an entered tracing span is its child.
    let rule = APP.start_activity("evaluate discount rule", ActivityKind::Internal);
    let discount = {
        // A tracing span opened while a Skein activity is current is that activity's child.
        let span = tracing::info_span!("load customer tier", customer.tier = "gold");
        let _entered = span.enter();
        10
    };
    drop(rule);
    let id: (i64,) = sqlx::query_as("INSERT INTO orders(items, discount, note) VALUES (?, ?, 'rush') RETURNING id")
        .bind(items)
        .bind(discount)
        .fetch_one(db)
        .await?;
    // Work on a spawned task stays in the trace.
    tokio::spawn(
        async {
            tracing::warn!(error = %OutOfStock, "reservation failed");
        }
        .instrument(tracing::info_span!(
            "reserve stock",
            otel.name = "reserve stock for order"
        )),
    )
    .await
    .unwrap();
    Ok(id.0)
}

fn find<'a>(activities: &'a [Activity], name: &str) -> &'a Activity {
    activities.iter().find(|a| a.display_name() == name).unwrap_or_else(|| {
        panic!(
            "no {name} in {:?}",
            activities.iter().map(|a| a.display_name()).collect::<Vec<_>>()
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracing_spans_skein_activities_and_queries_make_one_trace() {
    let exporter = InMemoryExporter::default();
    let _export = ExportPipeline::new()
        .with_sources(["app", "bridge", "sqlx"])
        .simple(exporter.clone())
        .install();
    let text = Captured::default();
    let json = Captured::default();
    let subscriber = tracing_subscriber::registry()
        .with(skein_tracing::layer())
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .event_format(skein_tracing::WithTraceIds::new(tracing_subscriber::fmt::format()))
                .with_writer({
                    let text = text.clone();
                    move || text.clone()
                }),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
                .event_format(skein_tracing::WithTraceIds::new(
                    tracing_subscriber::fmt::format().json(),
                ))
                .with_writer({
                    let json = json.clone();
                    move || json.clone()
                }),
        );
    // Global, so the runtime's worker threads log through it too (one test in this binary).
    tracing::subscriber::set_global_default(subscriber).unwrap();
    // `log` records reach `tracing` through the bridge.
    tracing_log::LogTracer::init().unwrap();

    let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    sqlx::query("CREATE TABLE orders(id INTEGER PRIMARY KEY, items INTEGER, discount INTEGER, note TEXT)")
        .execute(&pool)
        .await
        .unwrap();
    let db = skein_tracing::TracedPool::new(pool);

    let request = APP.start_activity("POST /orders", ActivityKind::Server).unwrap();
    let request_context = request.context();
    let order = place_order(&db, 3).with_current().await.unwrap();
    assert_eq!(order, 1);
    // A failing query.
    let missing = sqlx::query("SELECT * FROM nowhere WHERE id = 7")
        .fetch_all(&db)
        .with_current()
        .await;
    assert!(missing.is_err());
    tracing::info!("request done");
    log::info!("logged through the log crate");
    drop(request);

    let activities = exporter.finished();
    let trace_id = request_context.trace_id;
    assert!(activities.iter().all(|a| a.trace_id() == trace_id), "one trace");
    let request = find(&activities, "POST /orders");
    let place = find(&activities, "place_order");
    assert_eq!(place.source().name(), "bridge");
    assert_eq!(place.kind(), ActivityKind::Server);
    assert_eq!(place.parent_span_id(), request.span_id());
    assert_eq!(place.tag("order.items"), Some(TagValue::I64(3)));
    assert_eq!(
        place.tag("items"),
        Some(TagValue::I64(3)),
        "#[instrument] records the arguments"
    );
    let received = &place.events()[0];
    assert_eq!(received.name, "order received");
    let event_tags = &received.tags;
    assert!(event_tags
        .iter()
        .any(|t| t.key == "level" && t.value.as_str() == Some("INFO")));
    assert!(event_tags
        .iter()
        .any(|t| t.key == "order.items" && t.value == TagValue::I64(3)));

    let rule = find(&activities, "evaluate discount rule");
    assert_eq!(rule.parent_span_id(), place.span_id());
    let tier = find(&activities, "load customer tier");
    assert_eq!(tier.parent_span_id(), rule.span_id());
    assert_eq!(
        tier.tag("customer.tier")
            .and_then(|v| v.as_str().map(str::to_owned))
            .as_deref(),
        Some("gold")
    );

    let insert = find(&activities, "INSERT orders");
    assert_eq!(insert.source().name(), "sqlx");
    assert_eq!(insert.kind(), ActivityKind::Client);
    assert_eq!(insert.parent_span_id(), place.span_id());
    let text_of = |a: &Activity, key: &str| a.tag(key).map(|v| v.to_string());
    assert_eq!(text_of(insert, "db.system.name").as_deref(), Some("sqlite"));
    assert_eq!(text_of(insert, "db.operation.name").as_deref(), Some("INSERT"));
    assert_eq!(text_of(insert, "db.collection.name").as_deref(), Some("orders"));
    assert_eq!(
        text_of(insert, "db.query.text").as_deref(),
        Some("INSERT INTO orders(items, discount, note) VALUES (?, ?, ?) RETURNING id")
    );
    assert_eq!(insert.tag("db.response.returned_rows"), Some(TagValue::I64(1)));
    assert!(insert.start_time() >= place.start_time() && insert.end_time() <= place.end_time());
    assert!(insert.duration() > std::time::Duration::ZERO);

    let reserve = find(&activities, "reserve stock for order");
    assert_eq!(reserve.parent_span_id(), place.span_id());
    assert_eq!(reserve.status(), ActivityStatusCode::Error);
    assert_eq!(reserve.status_description().as_deref(), Some("out of stock"));

    let failed = find(&activities, "SELECT nowhere");
    assert_eq!(failed.parent_span_id(), request.span_id());
    assert_eq!(failed.status(), ActivityStatusCode::Error);
    assert_eq!(
        text_of(failed, "error.type").as_deref(),
        Some("1"),
        "SQLite's generic error code"
    );
    assert_eq!(
        text_of(failed, "db.query.text").as_deref(),
        Some("SELECT * FROM nowhere WHERE id = ?")
    );
    assert_eq!(
        activities.len(),
        7,
        "{:?}",
        activities.iter().map(|a| a.display_name()).collect::<Vec<_>>()
    );

    // Every log line written inside the request carries the ids of the activity then current.
    let lines = text.lines();
    let line = |needle: &str| {
        lines
            .iter()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle} in {lines:#?}"))
            .clone()
    };
    assert!(line("order received").ends_with(&format!("trace_id={trace_id} span_id={}", place.span_id())));
    assert!(
        line("logged through the log crate").ends_with(&format!("trace_id={trace_id} span_id={}", request.span_id()))
    );
    assert!(line("request done").ends_with(&format!("trace_id={trace_id} span_id={}", request.span_id())));
    let json_lines = json.lines();
    let received: serde_json::Value =
        serde_json::from_str(json_lines.iter().find(|l| l.contains("order received")).unwrap()).unwrap();
    assert_eq!(received["trace_id"], trace_id.to_string());
    assert_eq!(received["span_id"], place.span_id().to_string());
    assert_eq!(received["fields"]["message"], "order received");
}
