//! Skein's export pipelines: they take stopped, recorded activities and log records
//! ([`skein::logs`]) off the application's threads and ship them to a backend — any
//! OpenTelemetry collector, Jaeger, Grafana Tempo or the Skein collector over OTLP (gRPC, HTTP
//! protobuf, HTTP JSON), or the console and memory during development and tests. The
//! instrumented thread never blocks and never waits on I/O: it hands the item to a bounded
//! queue (dropping and counting when it is full), and a dedicated export thread per signal —
//! not a task on the application's runtime — batches and sends, retrying what may pass.
//! Failures are typed ([`ExportError`], [`ConfigError`]) and go to the application's handler
//! ([`set_error_handler`]) or, rate-limited, to standard error. It works in programs with no
//! async runtime and inside any tokio runtime alike.
//!
//! ```no_run
//! // Reads OTEL_TRACES_EXPORTER, OTEL_LOGS_EXPORTER, OTEL_EXPORTER_OTLP_*, OTEL_SERVICE_NAME…
//! let _guard = skein_export::init().expect("valid OTEL_* configuration");
//! // … instrumented code runs; dropping the guard flushes what is queued.
//! ```

mod console;
mod error;
mod logs;
mod memory;
pub mod otlp;
mod pipeline;
mod report;
mod resource;
mod worker;

pub use console::{ConsoleExporter, ConsoleFormat};
pub use error::{ConfigError, ErrorSource, ExportError, Signal};
pub use logs::{LogExporter, LogGuard, LogPipeline};
pub use memory::{InMemoryExporter, InMemoryLogExporter};
pub use pipeline::{BatchConfig, ExportGuard, ExportPipeline, SourceFilter};
pub use report::{clear_error_handler, set_error_handler};
pub use resource::Resource;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use skein::Activity;

/// Sends batches of stopped activities somewhere. Runs on the pipeline's export thread (never
/// on an application thread), so it may block — within its own timeout.
pub trait ActivityExporter: Send + 'static {
    /// Exports one batch.
    fn export(&mut self, batch: &[Activity]) -> Result<(), ExportError>;

    /// Called once when the pipeline shuts down.
    fn shutdown(&mut self) {}

    /// The longest one export may take (the pipeline's export timeout). Exporters that do I/O
    /// cap their requests with it, unless they were given a timeout of their own.
    fn set_export_timeout(&mut self, _timeout: std::time::Duration) {}

    /// Tells the exporter when its pipeline starts shutting down: exporters that retry stop
    /// retrying then, so that an application exiting beside a backend that is down is not
    /// held up by backoff.
    fn watch_shutdown(&mut self, _notice: ShutdownNotice) {}
}

/// Set once a pipeline starts shutting down (see [`ActivityExporter::watch_shutdown`]).
#[derive(Clone, Debug, Default)]
pub struct ShutdownNotice(Arc<AtomicBool>);

impl ShutdownNotice {
    /// True once the pipeline is shutting down.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    pub(crate) fn set(&self) {
        self.0.store(true, Ordering::Release);
    }
}

mod config;
pub use config::{init, sampler_from_env};
