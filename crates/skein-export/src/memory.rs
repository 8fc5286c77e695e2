//! Exporters that keep activities and log records in memory, for tests.

use std::sync::{Arc, Mutex, MutexGuard};

use skein::logs::LogRecord;
use skein::Activity;

use crate::{ActivityExporter, ExportError, LogExporter};

/// Collects exported activities; clones share the same storage, so a test keeps one clone and
/// gives the other to the pipeline.
///
/// ```
/// use skein::{ActivityKind, ActivitySource};
/// use skein_export::{ExportPipeline, InMemoryExporter};
///
/// static SOURCE: ActivitySource = ActivitySource::new("doc.memory");
/// let exporter = InMemoryExporter::default();
/// let guard = ExportPipeline::new().simple(exporter.clone()).install();
/// drop(SOURCE.start_activity("op", ActivityKind::Internal));
/// assert_eq!(exporter.finished()[0].display_name(), "op");
/// drop(guard);
/// ```
#[derive(Clone, Default)]
pub struct InMemoryExporter {
    finished: Arc<Mutex<Vec<Activity>>>,
}

impl InMemoryExporter {
    fn lock(&self) -> MutexGuard<'_, Vec<Activity>> {
        self.finished.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The activities exported so far, in export order.
    pub fn finished(&self) -> Vec<Activity> {
        self.lock().clone()
    }

    /// Forgets what was exported.
    pub fn reset(&self) {
        self.lock().clear();
    }
}

impl ActivityExporter for InMemoryExporter {
    fn export(&mut self, batch: &[Activity]) -> Result<(), ExportError> {
        self.lock().extend(batch.iter().cloned());
        Ok(())
    }
}

/// Collects exported log records; clones share the same storage, as with
/// [`InMemoryExporter`].
///
/// ```
/// use skein::logs::{self, LogRecord, Severity};
/// use skein_export::{InMemoryLogExporter, LogPipeline};
///
/// let exporter = InMemoryLogExporter::default();
/// let guard = LogPipeline::new(exporter.clone()).install();
/// logs::emit(LogRecord::new(Severity::WARN, "disk almost full").with_scope("doc.memory"));
/// guard.force_flush(std::time::Duration::from_secs(5)).unwrap();
/// assert!(exporter.records().iter().any(|r| r.body.as_deref() == Some("disk almost full")));
/// ```
#[derive(Clone, Default)]
pub struct InMemoryLogExporter {
    records: Arc<Mutex<Vec<LogRecord>>>,
}

impl InMemoryLogExporter {
    /// The records exported so far, in export order.
    pub fn records(&self) -> Vec<LogRecord> {
        self.records.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl LogExporter for InMemoryLogExporter {
    fn export(&mut self, batch: &[LogRecord]) -> Result<(), ExportError> {
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(batch.iter().cloned());
        Ok(())
    }
}
