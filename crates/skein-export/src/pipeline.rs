//! The listener that feeds exporters: sampling, the bounded queue, the export thread.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

use skein::{
    Activity, ActivityContext, ActivityCreationOptions, ActivityListener, ActivitySamplingResult, ActivitySource,
    AlwaysOnSampler, ListenerRegistration, ParentBasedSampler, Sampler,
};

use crate::{ActivityExporter, ExportError};

/// Batch settings; the defaults and the `OTEL_BSP_*` variables follow the OpenTelemetry
/// specification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchConfig {
    /// Most activities waiting for export; more are dropped and counted (default 2048).
    pub max_queue_size: usize,
    /// Longest wait between two exports (default 5 s).
    pub scheduled_delay: Duration,
    /// Most activities per export; a full batch is exported without waiting (default 512).
    pub max_export_batch_size: usize,
    /// Longest an export may take; given to the exporter (default 30 s).
    pub export_timeout: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_queue_size: 2048,
            scheduled_delay: Duration::from_millis(5000),
            max_export_batch_size: 512,
            export_timeout: Duration::from_millis(30000),
        }
    }
}

impl BatchConfig {
    /// The defaults, overridden by `OTEL_BSP_MAX_QUEUE_SIZE`, `OTEL_BSP_SCHEDULE_DELAY`,
    /// `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` and `OTEL_BSP_EXPORT_TIMEOUT` (milliseconds).
    pub fn from_env() -> Result<Self, crate::ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub(crate) fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, crate::ConfigError> {
        let number = |name: &str| -> Result<Option<u64>, crate::ConfigError> {
            match var(name) {
                None => Ok(None),
                Some(v) if v.trim().is_empty() => Ok(None),
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .map(Some)
                    .map_err(|_| crate::ConfigError(format!("{name}={v:?} is not a whole number"))),
            }
        };
        let mut config = BatchConfig::default();
        if let Some(v) = number("OTEL_BSP_MAX_QUEUE_SIZE")? {
            config.max_queue_size = v.max(1) as usize;
        }
        if let Some(v) = number("OTEL_BSP_SCHEDULE_DELAY")? {
            config.scheduled_delay = Duration::from_millis(v);
        }
        if let Some(v) = number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE")? {
            config.max_export_batch_size = v.max(1) as usize;
        }
        if let Some(v) = number("OTEL_BSP_EXPORT_TIMEOUT")? {
            config.export_timeout = Duration::from_millis(v);
        }
        // The specification: the batch size may not exceed the queue size.
        config.max_export_batch_size = config.max_export_batch_size.min(config.max_queue_size);
        Ok(config)
    }
}

/// Which activity sources the pipeline listens to.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum SourceFilter {
    /// Every source (the default).
    #[default]
    All,
    /// Sources named exactly, or by prefix when the name ends in `*` (`skein.http.*`).
    Names(Vec<String>),
}

impl SourceFilter {
    fn matches(&self, source: &ActivitySource) -> bool {
        match self {
            SourceFilter::All => true,
            SourceFilter::Names(names) => names.iter().any(|n| match n.strip_suffix('*') {
                Some(prefix) => source.name().starts_with(prefix),
                None => source.name() == n,
            }),
        }
    }
}

enum Processor {
    Simple(Box<dyn ActivityExporter>),
    Batch(Box<dyn ActivityExporter>, BatchConfig),
}

/// Builds and installs the listener that samples activities and feeds an exporter.
///
/// ```
/// use skein_export::{BatchConfig, ExportPipeline, InMemoryExporter};
/// use skein::TraceIdRatioSampler;
///
/// let exporter = InMemoryExporter::default();
/// let guard = ExportPipeline::new()
///     .with_sampler(TraceIdRatioSampler::new(0.25))
///     .with_sources(["my_app.*"])
///     .batch(exporter.clone(), BatchConfig::default())
///     .install();
/// guard.force_flush(std::time::Duration::from_secs(1)).unwrap();
/// ```
pub struct ExportPipeline {
    sampler: Box<dyn Sampler>,
    sources: SourceFilter,
    processor: Option<Processor>,
}

impl Default for ExportPipeline {
    fn default() -> Self {
        ExportPipeline::new()
    }
}

impl ExportPipeline {
    /// A pipeline listening to every source with a parent-based, always-on sampler.
    pub fn new() -> Self {
        ExportPipeline {
            sampler: Box::new(ParentBasedSampler::new(AlwaysOnSampler)),
            sources: SourceFilter::All,
            processor: None,
        }
    }

    /// Replaces the sampler.
    pub fn with_sampler(mut self, sampler: impl Sampler + 'static) -> Self {
        self.sampler = Box::new(sampler);
        self
    }

    pub(crate) fn with_boxed_sampler(mut self, sampler: Box<dyn Sampler>) -> Self {
        self.sampler = sampler;
        self
    }

    /// Listens only to these sources (a trailing `*` matches by prefix).
    pub fn with_sources<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.sources = SourceFilter::Names(names.into_iter().map(Into::into).collect());
        self
    }

    /// Exports each activity synchronously as it stops, on the stopping thread (for tests and
    /// examples; use [`batch`](Self::batch) in services).
    pub fn simple(mut self, exporter: impl ActivityExporter) -> Self {
        self.processor = Some(Processor::Simple(Box::new(exporter)));
        self
    }

    /// Exports in batches from a dedicated thread.
    pub fn batch(mut self, exporter: impl ActivityExporter, config: BatchConfig) -> Self {
        self.processor = Some(Processor::Batch(Box::new(exporter), config));
        self
    }

    pub(crate) fn batch_boxed(mut self, exporter: Box<dyn ActivityExporter>, config: BatchConfig) -> Self {
        self.processor = Some(Processor::Batch(exporter, config));
        self
    }

    /// Starts listening. Dropping the guard stops listening and flushes what is queued.
    pub fn install(self) -> ExportGuard {
        let (sink, worker) = match self.processor {
            None => (Sink::Discard, None),
            Some(Processor::Simple(exporter)) => (Sink::Simple(Mutex::new(exporter)), None),
            Some(Processor::Batch(exporter, config)) => {
                let (queue, worker) = Worker::spawn(exporter, config);
                (Sink::Batch(queue), Some(worker))
            }
        };
        let listener = Arc::new(PipelineListener {
            sampler: self.sampler,
            sources: self.sources,
            sink,
        });
        let registration = ActivitySource::add_activity_listener(listener.clone());
        ExportGuard {
            registration: Some(registration),
            listener,
            worker,
        }
    }
}

enum Sink {
    Discard,
    Simple(Mutex<Box<dyn ActivityExporter>>),
    Batch(Queue),
}

struct PipelineListener {
    sampler: Box<dyn Sampler>,
    sources: SourceFilter,
    sink: Sink,
}

impl ActivityListener for PipelineListener {
    fn should_listen_to(&self, source: &ActivitySource) -> bool {
        self.sources.matches(source)
    }

    fn sample(&self, options: &ActivityCreationOptions<'_, ActivityContext>) -> ActivitySamplingResult {
        self.sampler.should_sample(options)
    }

    fn on_stopped(&self, activity: &Activity) {
        self.on_stopped_owned(activity.clone());
    }

    fn on_stopped_owned(&self, activity: Activity) {
        if !activity.recorded() {
            return; // propagation-only and unrecorded activities are never exported
        }
        match &self.sink {
            Sink::Discard => {}
            Sink::Simple(exporter) => {
                let mut exporter = exporter.lock().unwrap_or_else(|e| e.into_inner());
                if let Err(e) = exporter.export(std::slice::from_ref(&activity)) {
                    report_once(&SIMPLE_FAILED, &format!("skein-export: export failed: {e}"));
                }
            }
            Sink::Batch(queue) => queue.push(activity),
        }
    }
}

static SIMPLE_FAILED: AtomicBool = AtomicBool::new(false);

fn report_once(flag: &AtomicBool, message: &str) {
    if !flag.swap(true, Ordering::Relaxed) {
        eprintln!("{message} (reported once)");
    }
}

enum Control {
    Flush(Sender<()>),
    Shutdown(Sender<()>),
}

/// Exported activities on their way back to the application's threads to be freed there.
///
/// Freeing on the export thread memory that application threads allocated makes the two
/// threads fight over the allocator's locks (with glibc, a futex wake per contended free),
/// which cost the instrumented thread more than the whole activity. Application threads
/// instead release a few returned activities now and then as they queue new ones; the export
/// thread frees what nobody picked up for a whole export interval.
struct Returned {
    activities: Mutex<Vec<Activity>>,
    len: AtomicUsize,
}

/// Most exported activities waiting to be freed by the application.
const RETURN_CAPACITY: usize = 4096;
/// How many activities a thread frees each time it looks (every `RELEASE_EVERY` pushes): twice
/// the rate it queues them, so the returns never pile up behind a busy thread.
const RELEASE_COUNT: usize = 32;
const RELEASE_EVERY: usize = 16;

impl Returned {
    fn new() -> Self {
        Returned {
            activities: Mutex::new(Vec::new()),
            len: AtomicUsize::new(0),
        }
    }

    /// Called by the export thread with an exported batch (left empty): the activities that
    /// own heap memory go back, the rest (whose memory is Skein's own pool) are freed here.
    fn give_back(&self, batch: &mut Vec<Activity>) {
        batch.retain(Activity::owns_heap_memory);
        {
            let mut returned = self.activities.lock().unwrap_or_else(|e| e.into_inner());
            let room = RETURN_CAPACITY.saturating_sub(returned.len()).min(batch.len());
            returned.extend(batch.drain(..room));
            self.len.store(returned.len(), Ordering::Relaxed);
        }
        batch.clear(); // no room left: freed here after all
    }

    /// Called by an application thread: frees a few returned activities, if it can without
    /// waiting.
    fn release_some(&self) {
        let Ok(mut returned) = self.activities.try_lock() else {
            return;
        };
        let keep = returned.len().saturating_sub(RELEASE_COUNT);
        let mut local: [Option<Activity>; RELEASE_COUNT] = [const { None }; RELEASE_COUNT];
        for (slot, activity) in local.iter_mut().zip(returned.drain(keep..)) {
            *slot = Some(activity);
        }
        self.len.store(returned.len(), Ordering::Relaxed);
        drop(returned);
        drop(local); // outside the lock
    }

    /// Called by the export thread when the application has gone quiet.
    fn release_all(&self) {
        let all = std::mem::take(&mut *self.activities.lock().unwrap_or_else(|e| e.into_inner()));
        self.len.store(0, Ordering::Relaxed);
        drop(all);
    }
}

/// The application side of the batch processor.
struct Queue {
    activities: SyncSender<Activity>,
    returned: Arc<Returned>,
    worker: Thread,
    wake: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
    dropped_warned: AtomicBool,
    batch_size: usize,
}

thread_local! {
    /// Activities this thread queued since it last woke the worker: waking once per batch
    /// instead of once per activity keeps the instrumented thread away from system calls.
    static QUEUED_SINCE_WAKE: Cell<usize> = const { Cell::new(0) };
}

impl Queue {
    fn push(&self, activity: Activity) {
        match self.activities.try_send(activity) {
            Ok(()) => {
                let queued = QUEUED_SINCE_WAKE
                    .try_with(|n| {
                        let queued = n.get() + 1;
                        n.set(if queued >= self.batch_size { 0 } else { queued });
                        queued
                    })
                    .unwrap_or(0);
                if queued >= self.batch_size && !self.wake.swap(true, Ordering::AcqRel) {
                    self.worker.unpark();
                }
                let release_turn = queued % RELEASE_EVERY == 0 || queued >= self.batch_size;
                if release_turn && self.returned.len.load(Ordering::Relaxed) > 0 {
                    self.returned.release_some();
                }
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                if !self.dropped_warned.swap(true, Ordering::Relaxed) {
                    eprintln!(
                        "skein-export: the export queue is full; activities are being dropped \
                         (see ExportGuard::dropped_count; raise OTEL_BSP_MAX_QUEUE_SIZE or check the backend)"
                    );
                }
            }
        }
    }
}

/// The export thread.
struct Worker {
    control: Sender<Control>,
    thread: Option<JoinHandle<()>>,
    wake: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
}

impl Worker {
    fn spawn(mut exporter: Box<dyn ActivityExporter>, config: BatchConfig) -> (Queue, Worker) {
        let (activities_tx, activities_rx) = mpsc::sync_channel::<Activity>(config.max_queue_size);
        let (control_tx, control_rx) = mpsc::channel::<Control>();
        let wake = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicU64::new(0));
        let worker_wake = wake.clone();
        exporter.set_export_timeout(config.export_timeout);
        let config_batch_size = config.max_export_batch_size;
        let returned = Arc::new(Returned::new());
        let worker_returned = returned.clone();
        let thread = std::thread::Builder::new()
            .name("skein-export".into())
            .spawn(move || {
                run(
                    exporter,
                    config,
                    activities_rx,
                    control_rx,
                    worker_wake,
                    worker_returned,
                )
            })
            .expect("spawning the export thread");
        let queue = Queue {
            activities: activities_tx,
            returned,
            worker: thread.thread().clone(),
            wake: wake.clone(),
            dropped: dropped.clone(),
            dropped_warned: AtomicBool::new(false),
            batch_size: config_batch_size,
        };
        let worker = Worker {
            control: control_tx,
            thread: Some(thread),
            wake,
            dropped,
        };
        (queue, worker)
    }

    fn request(&self, make: impl FnOnce(Sender<()>) -> Control, timeout: Duration) -> Result<(), ExportError> {
        let (tx, rx) = mpsc::channel();
        self.control.send(make(tx)).map_err(|_| ExportError::Shutdown)?;
        self.wake.store(true, Ordering::Release);
        if let Some(t) = &self.thread {
            t.thread().unpark();
        }
        rx.recv_timeout(timeout)
            .map_err(|_| ExportError::Unavailable(format!("not done within {timeout:?}")))
    }
}

fn run(
    mut exporter: Box<dyn ActivityExporter>,
    config: BatchConfig,
    activities: Receiver<Activity>,
    control: Receiver<Control>,
    wake: Arc<AtomicBool>,
    returned: Arc<Returned>,
) {
    let mut batch: Vec<Activity> = Vec::with_capacity(config.max_export_batch_size);
    let mut failed_reported = false;
    let mut export_all = |exporter: &mut Box<dyn ActivityExporter>, only_full: bool| loop {
        while batch.len() < config.max_export_batch_size {
            match activities.try_recv() {
                Ok(a) => batch.push(a),
                Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => break,
            }
        }
        if batch.is_empty() || (only_full && batch.len() < config.max_export_batch_size) {
            return;
        }
        if let Err(e) = exporter.export(&batch) {
            if !failed_reported {
                eprintln!("skein-export: export failed: {e} (further failures are not reported)");
                failed_reported = true;
            }
        }
        returned.give_back(&mut batch);
    };
    let mut returned_at_last_tick = 0;
    let mut next_export = Instant::now() + config.scheduled_delay;
    loop {
        let now = Instant::now();
        if now < next_export && !wake.swap(false, Ordering::AcqRel) {
            std::thread::park_timeout(next_export - now);
        }
        wake.store(false, Ordering::Release);
        match control.try_recv() {
            Ok(Control::Flush(done)) => {
                export_all(&mut exporter, false);
                let _ = done.send(());
            }
            Ok(Control::Shutdown(done)) => {
                export_all(&mut exporter, false);
                exporter.shutdown();
                let _ = done.send(());
                return;
            }
            Err(TryRecvError::Disconnected) => {
                export_all(&mut exporter, false);
                exporter.shutdown();
                return;
            }
            Err(TryRecvError::Empty) => {}
        }
        if Instant::now() >= next_export {
            // Nothing taken back for a whole interval: the application is idle.
            let waiting = returned.len.load(Ordering::Relaxed);
            if waiting > 0 && waiting == returned_at_last_tick {
                returned.release_all();
            }
            export_all(&mut exporter, false);
            returned_at_last_tick = returned.len.load(Ordering::Relaxed);
            next_export = Instant::now() + config.scheduled_delay;
        } else {
            // Woken early: export only full batches, keep the rest for the timer.
            export_all(&mut exporter, true);
        }
    }
}

/// Keeps the pipeline installed. Dropping it stops listening, exports what is queued (up to
/// 5 seconds) and stops the export thread.
#[must_use = "dropping the guard uninstalls the pipeline at once"]
pub struct ExportGuard {
    registration: Option<ListenerRegistration>,
    listener: Arc<PipelineListener>,
    worker: Option<Worker>,
}

impl ExportGuard {
    /// Exports everything queued so far and waits for it, up to `timeout`.
    pub fn force_flush(&self, timeout: Duration) -> Result<(), ExportError> {
        match &self.worker {
            Some(worker) => worker.request(Control::Flush, timeout),
            None => Ok(()),
        }
    }

    /// Activities dropped because the queue was full.
    pub fn dropped_count(&self) -> u64 {
        self.worker.as_ref().map_or(0, |w| w.dropped.load(Ordering::Relaxed))
    }

    /// Stops listening, exports what is queued and stops the export thread, waiting up to
    /// `timeout` (the thread is left to finish on its own after that).
    pub fn shutdown(mut self, timeout: Duration) -> Result<(), ExportError> {
        self.shutdown_inner(timeout)
    }

    fn shutdown_inner(&mut self, timeout: Duration) -> Result<(), ExportError> {
        drop(self.registration.take());
        let Some(mut worker) = self.worker.take() else {
            if let Sink::Simple(exporter) = &self.listener.sink {
                exporter.lock().unwrap_or_else(|e| e.into_inner()).shutdown();
            }
            return Ok(());
        };
        let result = worker.request(Control::Shutdown, timeout);
        if result.is_ok() {
            if let Some(thread) = worker.thread.take() {
                let _ = thread.join();
            }
        }
        result
    }
}

impl Drop for ExportGuard {
    fn drop(&mut self) {
        if self.registration.is_some() {
            let _ = self.shutdown_inner(Duration::from_secs(5));
        }
    }
}
