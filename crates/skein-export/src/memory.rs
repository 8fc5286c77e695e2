//! An exporter that keeps activities in memory, for tests.

use std::sync::{Arc, Mutex, MutexGuard};

use skein::Activity;

use crate::{ActivityExporter, ExportError};

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
