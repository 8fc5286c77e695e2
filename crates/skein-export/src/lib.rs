//! Skein's export pipeline: it takes stopped, recorded activities off the application's threads
//! and ships them to a backend — any OpenTelemetry collector, Jaeger, Grafana Tempo or the Skein
//! collector over OTLP (HTTP protobuf, HTTP JSON), or the console and memory during
//! development and tests. The instrumented thread never blocks and never waits on I/O: it hands
//! the activity to a bounded queue (dropping and counting when it is full), and a dedicated
//! export thread — not a task on the application's runtime — batches and sends. It works in
//! programs with no async runtime and inside any tokio runtime alike.
//!
//! ```no_run
//! // Reads OTEL_TRACES_EXPORTER, OTEL_EXPORTER_OTLP_*, OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER…
//! let _guard = skein_export::init().expect("valid OTEL_* configuration");
//! // … instrumented code runs; dropping the guard flushes what is queued.
//! ```

mod console;
mod memory;
pub mod otlp;
mod pipeline;
mod resource;

pub use console::{ConsoleExporter, ConsoleFormat};
pub use memory::InMemoryExporter;
pub use pipeline::{BatchConfig, ExportGuard, ExportPipeline, SourceFilter};
pub use resource::Resource;

use std::fmt;

use skein::Activity;

/// Why an export failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportError {
    /// The backend could not be reached or did not answer in time; retried where allowed.
    Unavailable(String),
    /// The backend refused the data (a non-retryable answer).
    Rejected(String),
    /// The exporter was shut down.
    Shutdown,
}

impl fmt::Display for ExportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExportError::Unavailable(m) => write!(f, "backend unavailable: {m}"),
            ExportError::Rejected(m) => write!(f, "backend rejected the export: {m}"),
            ExportError::Shutdown => f.write_str("exporter is shut down"),
        }
    }
}

impl std::error::Error for ExportError {}

/// Sends batches of stopped activities somewhere. Runs on the pipeline's export thread (never
/// on an application thread), so it may block — within its own timeout.
pub trait ActivityExporter: Send + 'static {
    /// Exports one batch.
    fn export(&mut self, batch: &[Activity]) -> Result<(), ExportError>;

    /// Called once when the pipeline shuts down.
    fn shutdown(&mut self) {}

    /// The longest one export may take (the pipeline passes its export timeout). Exporters
    /// that do I/O cap their requests with it.
    fn set_export_timeout(&mut self, _timeout: std::time::Duration) {}
}

/// A configuration problem found by [`init`] or a builder: reported at start-up instead of
/// silently exporting nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

mod config;
pub use config::{init, sampler_from_env};
