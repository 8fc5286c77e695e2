//! The log pipeline: a [`skein::logs::LogProcessor`] that queues records (bounded, never
//! blocking the thread that logs) and an export thread of its own that batches and sends them,
//! so a slow log backend never delays spans, nor spans logs.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::{JoinHandle, Thread};
use std::time::Duration;

use skein::logs::{self, LogProcessor, LogProcessorRegistration, LogRecord, Severity};

use crate::report::report;
use crate::worker::{self, Control, Sleep, Step};
use crate::{BatchConfig, ExportError, ShutdownNotice, Signal};

/// Sends batches of log records somewhere. Runs on the log pipeline's export thread, so it may
/// block — within its own timeout.
pub trait LogExporter: Send + 'static {
    /// Exports one batch.
    fn export(&mut self, batch: &[LogRecord]) -> Result<(), ExportError>;

    /// Called once when the pipeline shuts down.
    fn shutdown(&mut self) {}

    /// The longest one export may take (see [`crate::ActivityExporter::set_export_timeout`]).
    fn set_export_timeout(&mut self, _timeout: Duration) {}

    /// See [`crate::ActivityExporter::watch_shutdown`].
    fn watch_shutdown(&mut self, _notice: ShutdownNotice) {}
}

impl LogExporter for Box<dyn LogExporter> {
    fn export(&mut self, batch: &[LogRecord]) -> Result<(), ExportError> {
        (**self).export(batch)
    }
    fn shutdown(&mut self) {
        (**self).shutdown()
    }
    fn set_export_timeout(&mut self, timeout: Duration) {
        (**self).set_export_timeout(timeout)
    }
    fn watch_shutdown(&mut self, notice: ShutdownNotice) {
        (**self).watch_shutdown(notice)
    }
}

/// Builds and installs the log pipeline: records that logging libraries hand to
/// [`skein::logs::emit`] (the `tracing` bridge of `skein-tracing` does) are batched and
/// exported.
///
/// ```
/// use skein::logs::Severity;
/// use skein_export::{BatchConfig, InMemoryLogExporter, LogPipeline};
///
/// let guard = LogPipeline::new(InMemoryLogExporter::default())
///     .with_batch_config(BatchConfig::for_logs())
///     .with_min_severity(Severity::DEBUG)
///     .install();
/// drop(guard); // exports what is queued
/// ```
pub struct LogPipeline {
    exporter: Box<dyn LogExporter>,
    config: BatchConfig,
    min_severity: Severity,
}

impl LogPipeline {
    /// A pipeline exporting to `exporter` with the log defaults ([`BatchConfig::for_logs`])
    /// and records of INFO and above.
    pub fn new(exporter: impl LogExporter) -> Self {
        LogPipeline {
            exporter: Box::new(exporter),
            config: BatchConfig::for_logs(),
            min_severity: Severity::INFO,
        }
    }

    /// Replaces the batch settings.
    pub fn with_batch_config(mut self, config: BatchConfig) -> Self {
        self.config = config;
        self
    }

    /// Exports records of `severity` and above (default INFO). Less severe records are not
    /// even made: the `tracing` bridge asks [`skein::logs::enabled`] first.
    pub fn with_min_severity(mut self, severity: Severity) -> Self {
        self.min_severity = severity;
        self
    }

    /// Starts the export thread and adds the processor. Dropping the guard removes it and
    /// exports what is queued.
    pub fn install(self) -> LogGuard {
        let LogPipeline {
            mut exporter,
            config,
            min_severity,
        } = self;
        let max_queue = config.max_queue_size.max(1);
        let batch_size = config.max_export_batch_size.clamp(1, max_queue);
        let (sender, records) = mpsc::sync_channel::<LogRecord>(max_queue);
        let (control, control_rx) = mpsc::channel::<Control>();
        let notice = ShutdownNotice::default();
        exporter.set_export_timeout(config.export_timeout);
        exporter.watch_shutdown(notice.clone());
        let counters = Arc::new(Counters::default());
        let worker_counters = counters.clone();
        let worker_config = config.clone();
        let thread = std::thread::Builder::new()
            .name("skein-export-logs".into())
            .spawn(move || {
                // The exporter's libraries neither record spans nor log into the export.
                let _quiet = skein::suppress_instrumentation();
                run(exporter, worker_config, records, control_rx, &worker_counters);
            })
            .expect("spawning the log export thread");
        let processor = Arc::new(QueueProcessor {
            sender,
            min_severity,
            batch_size,
            worker: thread.thread().clone(),
            counters: counters.clone(),
        });
        let registration = logs::add_log_processor(processor);
        LogGuard {
            registration: Some(registration),
            control,
            thread: Some(thread),
            counters,
            notice,
            shutdown_timeout: config.export_timeout,
        }
    }
}

#[derive(Default)]
struct Counters {
    /// Records toward the export thread's next full batch (it is nudged once there is one).
    queued: AtomicUsize,
    dropped: AtomicU64,
    sleep: Sleep,
}

struct QueueProcessor {
    sender: SyncSender<LogRecord>,
    min_severity: Severity,
    batch_size: usize,
    worker: Thread,
    counters: Arc<Counters>,
}

impl LogProcessor for QueueProcessor {
    fn min_severity(&self) -> Severity {
        self.min_severity
    }

    fn emit(&self, record: LogRecord) {
        match self.sender.try_send(record) {
            Ok(()) => {
                let queued = self.counters.queued.fetch_add(1, Ordering::Relaxed) + 1;
                // Woken once a batch is waiting, not per record (a wake-up is a system call),
                // and from a nap once two are (once: the record that makes it two).
                if queued == 2 * self.batch_size {
                    self.counters.sleep.hurry(&self.worker, true);
                } else if queued >= self.batch_size {
                    self.counters.sleep.nudge(&self.worker);
                }
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn run(
    mut exporter: Box<dyn LogExporter>,
    config: BatchConfig,
    records: Receiver<LogRecord>,
    control: Receiver<Control>,
    counters: &Counters,
) {
    let batch_size = config.max_export_batch_size.clamp(1, config.max_queue_size.max(1));
    let mut batch: Vec<LogRecord> = Vec::with_capacity(batch_size);
    let mut drops = worker::DropReport::default();
    // Exports what is queued (only full batches if `only_full`); says whether a batch was full.
    let mut export_queued = |exporter: &mut Box<dyn LogExporter>, only_full: bool| {
        let mut full = false;
        loop {
            while batch.len() < batch_size {
                match records.try_recv() {
                    Ok(record) => batch.push(record),
                    Err(_) => break,
                }
            }
            // The producers count toward the next full batch from what this thread holds now
            // (a full batch is about to go). A count lost to a concurrent increment only
            // delays a nudge; the schedule bounds it.
            let held = if batch.len() >= batch_size { 0 } else { batch.len() };
            counters.queued.store(held, Ordering::Relaxed);
            full |= batch.len() >= batch_size;
            if batch.is_empty() || (only_full && batch.len() < batch_size) {
                break;
            }
            if let Err(e) = exporter.export(&batch) {
                report(e);
            }
            batch.clear();
        }
        drops.update(counters.dropped.load(Ordering::Relaxed), Signal::Logs);
        worker::Looked {
            full,
            waiting: batch.len(),
            batch_size,
        }
    };
    worker::drive(config.scheduled_delay, control, &counters.sleep, |step| {
        let looked = export_queued(&mut exporter, step == Step::Early);
        if step == Step::Last {
            exporter.shutdown();
        }
        looked
    });
}

/// Keeps the log pipeline installed. Dropping it stops taking records, exports what is queued
/// (waiting up to the export timeout, `OTEL_BLRP_EXPORT_TIMEOUT`) and stops the export thread.
#[must_use = "dropping the guard uninstalls the log pipeline at once"]
pub struct LogGuard {
    registration: Option<LogProcessorRegistration>,
    control: mpsc::Sender<Control>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
    notice: ShutdownNotice,
    shutdown_timeout: Duration,
}

impl LogGuard {
    fn request(&self, make: impl FnOnce(mpsc::Sender<()>) -> Control, timeout: Duration) -> Result<(), ExportError> {
        let thread = self.thread.as_ref().map(|t| t.thread());
        worker::request(&self.control, thread, make, timeout, Signal::Logs)
    }

    /// Exports every record queued so far and waits for it, up to `timeout`.
    pub fn force_flush(&self, timeout: Duration) -> Result<(), ExportError> {
        self.request(Control::Flush, timeout)
    }

    /// Records dropped because the queue was full.
    pub fn dropped_count(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    /// Stops taking records, exports what is queued (one attempt, no retries) and stops the
    /// export thread, waiting up to `timeout`.
    pub fn shutdown(mut self, timeout: Duration) -> Result<(), ExportError> {
        self.shutdown_inner(timeout)
    }

    fn shutdown_inner(&mut self, timeout: Duration) -> Result<(), ExportError> {
        drop(self.registration.take());
        self.notice.set();
        worker::shut_down(&self.control, &mut self.thread, timeout, Signal::Logs)
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        if self.registration.is_some() {
            let _ = self.shutdown_inner(self.shutdown_timeout);
        }
    }
}
