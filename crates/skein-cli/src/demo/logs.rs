//! The demo services' log lines, sent to the collector as OTLP logs: a `tracing` layer turns
//! each event into a log record carrying the current activity's trace and span ids, and a
//! task posts them in batches to `/v1/logs`. The application never waits: when the queue is
//! full, records are dropped and counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use skein::Activity;
use tokio::sync::mpsc;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

const QUEUE: usize = 4096;
const BATCH: usize = 512;

/// The `tracing` layer; its records go to the exporter task made by [`pipeline`].
pub struct OtlpLogLayer {
    queue: mpsc::Sender<LogRecord>,
    dropped: Arc<AtomicU64>,
    /// Records queued or being sent.
    pending: Arc<AtomicU64>,
}

/// The task sending queued records.
pub struct LogExporter {
    pending: Arc<AtomicU64>,
}

impl LogExporter {
    /// Waits until what was logged so far has been sent, at most `timeout`.
    pub async fn shutdown(self, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.pending.load(Ordering::Acquire) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A layer and the task exporting what it records to `{endpoint}/v1/logs`, under the same
/// resource as the service's spans.
pub fn pipeline(endpoint: &str, resource: &skein_export::Resource) -> (OtlpLogLayer, LogExporter) {
    let (queue, mut records) = mpsc::channel::<LogRecord>(QUEUE);
    let dropped = Arc::new(AtomicU64::new(0));
    let pending = Arc::new(AtomicU64::new(0));
    let sent_count = pending.clone();
    let url = format!("{}/v1/logs", endpoint.trim_end_matches('/'));
    let resource = Resource {
        attributes: skein_export::otlp::attributes(resource.attributes()),
        ..Default::default()
    };
    tokio::spawn(async move {
        let client = reqwest::Client::new();
        let mut batch = Vec::with_capacity(BATCH);
        while records.recv_many(&mut batch, BATCH).await > 0 {
            let count = batch.len() as u64;
            let request = ExportLogsServiceRequest {
                resource_logs: vec![ResourceLogs {
                    resource: Some(resource.clone()),
                    scope_logs: vec![ScopeLogs {
                        scope: Some(InstrumentationScope {
                            name: "skein.demo".into(),
                            ..Default::default()
                        }),
                        log_records: std::mem::take(&mut batch),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
            };
            let sent = client
                .post(&url)
                .header("content-type", "application/x-protobuf")
                .body(request.encode_to_vec())
                .timeout(Duration::from_secs(5))
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => eprintln!("skein demo: the collector refused logs: {}", r.status()),
                Err(e) => eprintln!("skein demo: cannot send logs: {e}"),
            }
            sent_count.fetch_sub(count, Ordering::AcqRel);
        }
    });
    (
        OtlpLogLayer {
            queue,
            dropped,
            pending: pending.clone(),
        },
        LogExporter { pending },
    )
}

/// The event's message (the body) and its other fields (attributes).
#[derive(Default)]
struct Fields {
    message: String,
    attributes: Vec<KeyValue>,
}

impl Fields {
    fn push(&mut self, field: &Field, value: any_value::Value) {
        self.attributes.push(KeyValue {
            key: field.name().into(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        });
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.push(field, any_value::Value::StringValue(format!("{value:?}")));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            self.push(field, any_value::Value::StringValue(value.to_owned()));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, any_value::Value::IntValue(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, any_value::Value::IntValue(value as i64));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, any_value::Value::DoubleValue(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, any_value::Value::BoolValue(value));
    }
}

fn severity(level: &Level) -> (i32, &'static str) {
    match *level {
        Level::TRACE => (1, "TRACE"),
        Level::DEBUG => (5, "DEBUG"),
        Level::INFO => (9, "INFO"),
        Level::WARN => (13, "WARN"),
        Level::ERROR => (17, "ERROR"),
    }
}

impl<S: Subscriber> Layer<S> for OtlpLogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let (number, text) = severity(event.metadata().level());
        // Correlation: the activity current where the line was logged.
        let (trace_id, span_id) = Activity::current()
            .map(|a| (a.trace_id().to_bytes().to_vec(), a.span_id().to_bytes().to_vec()))
            .unwrap_or_default();
        let record = LogRecord {
            time_unix_nano: now,
            observed_time_unix_nano: now,
            severity_number: number,
            severity_text: text.into(),
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue(fields.message)),
            }),
            attributes: fields.attributes,
            trace_id,
            span_id,
            ..Default::default()
        };
        self.pending.fetch_add(1, Ordering::AcqRel);
        if self.queue.try_send(record).is_err() {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            if self.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                eprintln!("skein demo: the log queue is full; log records are being dropped");
            }
        }
    }
}
