//! The listener that feeds exporters: sampling, the bounded queue, the export thread.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

use skein::{
    Activity, ActivityContext, ActivityCreationOptions, ActivityListener, ActivitySamplingResult, ActivitySource,
    AlwaysOffSampler, AlwaysOnSampler, ListenerRegistration, LocalParentDecision, ParentBasedSampler, Sampler,
};

use crate::report::report;
use crate::worker::{self, Control, Sleep, Step};
use crate::{ActivityExporter, ExportError, LogGuard, ShutdownNotice, Signal};

/// Batch settings; the defaults and the `OTEL_BSP_*` (spans) and `OTEL_BLRP_*` (logs)
/// variables follow the OpenTelemetry specification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchConfig {
    /// Most items waiting for export in the whole process; more are dropped and counted
    /// (default 2048), and the application never waits.
    ///
    /// What a span pipeline may hold, at most: the queued activities (about 650 bytes each,
    /// plus whatever their tags, events and links own on the heap) and the batch being
    /// exported; a ring of 16 bytes (one `Activity` handle) per queue slot in each thread that
    /// has stopped a recorded activity (32 KiB at the default size); and, in the core, 256 free
    /// activity blocks per thread and 4,096 shared (2.5 MiB); and up to 4,096 exported
    /// activities on their way back to the application threads to be freed there (2.5 MiB and
    /// their heap memory, in at most 16 vectors of `max_export_batch_size` handles of 16 bytes,
    /// kept for reuse).
    /// With the defaults and 8 recording threads: about 1.6 MiB of queued activities, 256 KiB
    /// of rings, 1.3 MiB of per-thread pools and 5 MiB shared. (`tests/memory_bound.rs` holds
    /// a stalled exporter to it.)
    pub max_queue_size: usize,
    /// Longest wait between two exports (default 5 s for spans, 1 s for logs).
    pub scheduled_delay: Duration,
    /// Most items per export; a full batch is exported without waiting (default 512).
    pub max_export_batch_size: usize,
    /// Longest an export may take (default 30 s): given to the exporter unless it has a
    /// timeout of its own (`OTEL_EXPORTER_OTLP_TIMEOUT`), and the longest dropping the guard
    /// waits for the last export.
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
    /// The defaults for log records (a shorter delay: logs are read as they happen).
    pub fn for_logs() -> Self {
        BatchConfig {
            scheduled_delay: Duration::from_millis(1000),
            ..BatchConfig::default()
        }
    }

    /// The span defaults, overridden by `OTEL_BSP_MAX_QUEUE_SIZE`, `OTEL_BSP_SCHEDULE_DELAY`,
    /// `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` and `OTEL_BSP_EXPORT_TIMEOUT` (milliseconds).
    pub fn from_env() -> Result<Self, crate::ConfigError> {
        Self::from_lookup("OTEL_BSP", BatchConfig::default(), |k| std::env::var(k).ok())
    }

    /// The log defaults, overridden by the `OTEL_BLRP_*` variables of the same names.
    pub fn logs_from_env() -> Result<Self, crate::ConfigError> {
        Self::from_lookup("OTEL_BLRP", BatchConfig::for_logs(), |k| std::env::var(k).ok())
    }

    pub(crate) fn from_lookup(
        prefix: &str,
        mut config: BatchConfig,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, crate::ConfigError> {
        let number = |suffix: &str| -> Result<Option<u64>, crate::ConfigError> {
            let name = format!("{prefix}_{suffix}");
            match var(&name) {
                None => Ok(None),
                Some(v) if v.trim().is_empty() => Ok(None),
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .map(Some)
                    .map_err(|_| crate::ConfigError::variable(&name, &v, "a whole number")),
            }
        };
        if let Some(v) = number("MAX_QUEUE_SIZE")? {
            config.max_queue_size = v.max(1) as usize;
        }
        if let Some(v) = number("SCHEDULE_DELAY")? {
            config.scheduled_delay = Duration::from_millis(v);
        }
        if let Some(v) = number("MAX_EXPORT_BATCH_SIZE")? {
            config.max_export_batch_size = v.max(1) as usize;
        }
        if let Some(v) = number("EXPORT_TIMEOUT")? {
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
    sampler: PipelineSampler,
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
            sampler: PipelineSampler::new(ParentBasedSampler::new(AlwaysOnSampler)),
            sources: SourceFilter::All,
            processor: None,
        }
    }

    /// Replaces the sampler.
    pub fn with_sampler(mut self, sampler: impl Sampler + 'static) -> Self {
        self.sampler = PipelineSampler::new(sampler);
        self
    }

    /// The sampler `init` read from the environment: `None` for always-off.
    pub(crate) fn with_configured_sampler(mut self, sampler: Option<Box<dyn Sampler>>) -> Self {
        self.sampler = match sampler {
            None => PipelineSampler::AlwaysOff,
            Some(sampler) => PipelineSampler::Other(sampler),
        };
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

    /// Starts listening. Dropping the guard stops listening and flushes what is queued.
    pub fn install(self) -> ExportGuard {
        let notice = ShutdownNotice::default();
        let mut shutdown_timeout = BatchConfig::default().export_timeout;
        let (sink, worker) = match self.processor {
            None => (Sink::Discard, None),
            Some(Processor::Simple(mut exporter)) => {
                exporter.watch_shutdown(notice.clone());
                (Sink::Simple(Mutex::new(exporter)), None)
            }
            Some(Processor::Batch(exporter, config)) => {
                shutdown_timeout = config.export_timeout;
                let (queue, worker) = Worker::spawn(exporter, config, notice.clone());
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
            notice,
            shutdown_timeout,
            logs: None,
        }
    }
}

enum Sink {
    Discard,
    Simple(Mutex<Box<dyn ActivityExporter>>),
    Batch(Queue),
}

/// The pipeline's sampler. Always-off is answered inline: a sampled-out activity costs a
/// few nanoseconds, and an indirect call is a noticeable share of them.
enum PipelineSampler {
    AlwaysOff,
    Other(Box<dyn Sampler>),
}

impl PipelineSampler {
    fn new<S: Sampler + 'static>(sampler: S) -> Self {
        let any: &dyn std::any::Any = &sampler;
        if any.is::<AlwaysOffSampler>() {
            return PipelineSampler::AlwaysOff;
        }
        PipelineSampler::Other(Box::new(sampler))
    }

    #[inline]
    fn should_sample(&self, options: &ActivityCreationOptions<'_, ActivityContext>) -> ActivitySamplingResult {
        match self {
            PipelineSampler::AlwaysOff => ActivitySamplingResult::None,
            PipelineSampler::Other(sampler) => sampler.should_sample(options),
        }
    }

    fn local_parent_decision(&self) -> Option<LocalParentDecision> {
        match self {
            PipelineSampler::AlwaysOff => Some(LocalParentDecision::always(ActivitySamplingResult::None)),
            PipelineSampler::Other(sampler) => sampler.local_parent_decision(),
        }
    }

    fn root_decision(&self) -> Option<ActivitySamplingResult> {
        match self {
            PipelineSampler::AlwaysOff => Some(ActivitySamplingResult::None),
            PipelineSampler::Other(sampler) => sampler.root_decision(),
        }
    }
}

struct PipelineListener {
    sampler: PipelineSampler,
    sources: SourceFilter,
    sink: Sink,
}

impl ActivityListener for PipelineListener {
    fn should_listen_to(&self, source: &ActivitySource) -> bool {
        self.sources.matches(source)
    }

    fn sample(&self, options: &ActivityCreationOptions<'_, ActivityContext>) -> ActivitySamplingResult {
        match self.sampler.should_sample(options) {
            // Not recorded here, but the caller's trace goes on downstream: a propagation-only
            // activity (flags `-00`), as OpenTelemetry's SDKs make a non-recording span. A
            // sampled-out root makes nothing (no trace to continue; nothing allocated).
            ActivitySamplingResult::None if options.parent().is_valid() => ActivitySamplingResult::PropagationData,
            result => result,
        }
    }

    /// The sampler's, with `sample`'s floor: a local parent is a valid one.
    fn local_parent_decision(&self) -> Option<LocalParentDecision> {
        let decision = self.sampler.local_parent_decision()?;
        let floor = |result| match result {
            ActivitySamplingResult::None => ActivitySamplingResult::PropagationData,
            result => result,
        };
        Some(LocalParentDecision {
            recorded: floor(decision.recorded),
            not_recorded: floor(decision.not_recorded),
        })
    }

    /// The sampler's: `sample` keeps a root's answer as it is.
    fn root_decision(&self) -> Option<ActivitySamplingResult> {
        self.sampler.root_decision()
    }

    /// A hierarchical `Request-Id` caller: decided as a new trace (the id's root gives the
    /// trace id), so those requests are recorded like any other. W3C ids go to `sample`.
    fn sample_using_parent_id(&self, options: &ActivityCreationOptions<'_, &str>) -> Option<ActivitySamplingResult> {
        if skein::ActivityContext::parse(options.parent(), None).is_ok() {
            return None;
        }
        Some(options.sample_as_root(|root| self.sampler.should_sample(root)))
    }

    fn on_stopped(&self, activity: &Activity) {
        self.on_stopped_owned(activity.clone());
    }

    fn keeps_stopped_activities(&self) -> bool {
        true
    }

    fn wants_started_activities(&self) -> bool {
        false
    }

    fn on_stopped_owned(&self, activity: Activity) {
        if !activity.recorded() {
            return; // propagation-only and unrecorded activities are never exported
        }
        match &self.sink {
            Sink::Discard => {}
            Sink::Simple(exporter) => {
                // The exporter's own HTTP/gRPC spans are not recorded (no feedback loop).
                let _quiet = skein::suppress_instrumentation();
                let mut exporter = lock(exporter);
                if let Err(e) = exporter.export(std::slice::from_ref(&activity)) {
                    crate::report::report(e);
                }
            }
            Sink::Batch(queue) => queue.push(activity),
        }
    }
}

/// Exported activities on their way back to the application's threads to be freed there.
///
/// Freeing on the export thread memory that application threads allocated makes the two
/// threads fight over the allocator's locks (with glibc, a futex wake per contended free),
/// which cost the instrumented thread more than the whole activity. And an activity released
/// on the export thread is written there (its reference count, the pool's links), so the next
/// activity started in that memory waits for its cache lines to come back from the export
/// thread's core; released by an application thread, the lines were only read elsewhere
/// (measured: a root with 10 children through the pipeline, ~1,200 ns with pool-only
/// activities released on the export thread, ~1,000 ns with all of them returned).
/// Application threads free a returned batch (up to `max_export_batch_size` activities) now
/// and then as they queue new ones; the export thread frees what nobody picked up for a whole
/// export interval. Measured, root + 10 children: ~915 ns freeing 32 copied out every 16
/// queued, ~870 ns with 128 every 64, ~4% less again taking whole batches.
struct Returned {
    /// Exported batches, as the export thread handed them over (newest last).
    batches: Mutex<Vec<Vec<Activity>>>,
    /// Emptied batch vectors, for the export thread to fill again.
    spare: Mutex<Vec<Vec<Activity>>>,
    /// Activities waiting in `batches`.
    len: AtomicUsize,
}

/// Most exported activities waiting to be freed by the application.
const RETURN_CAPACITY: usize = 4096;
/// Most batches waiting (each keeps its vector's room for a full batch), and most emptied
/// vectors kept for reuse.
const RETURN_BATCHES: usize = 8;
/// How often (in activities queued) a thread looks for a returned batch to free. A whole
/// batch is taken at once, by swapping vectors under the lock: the lock, whose cache line the
/// export thread also takes, is held for a moment, and a batch's siblings come out together
/// (`Activity::drop_all` then updates their parent's count once).
const RELEASE_EVERY: usize = 64;

impl Returned {
    fn new() -> Self {
        Returned {
            batches: Mutex::new(Vec::new()),
            spare: Mutex::new(Vec::new()),
            len: AtomicUsize::new(0),
        }
    }

    /// Called by the export thread with an exported batch: it goes back whole while there is
    /// room (`batch` is given an empty vector in its place); otherwise it is freed here.
    fn give_back(&self, batch: &mut Vec<Activity>) {
        let mut batches = lock(&self.batches);
        if batches.len() >= RETURN_BATCHES || self.len.load(Ordering::Relaxed) + batch.len() > RETURN_CAPACITY {
            drop(batches);
            Activity::drop_all(batch.drain(..)); // no room left: freed here after all
            return;
        }
        let capacity = batch.capacity();
        let empty = lock(&self.spare).pop().unwrap_or_else(|| Vec::with_capacity(capacity));
        let full = std::mem::replace(batch, empty);
        self.len.fetch_add(full.len(), Ordering::Relaxed);
        batches.push(full);
    }

    /// Called by an application thread: frees the newest returned batch, if it can take it
    /// without waiting.
    fn release_some(&self) {
        let Ok(mut batches) = self.batches.try_lock() else {
            return;
        };
        let Some(mut batch) = batches.pop() else {
            return;
        };
        self.len.fetch_sub(batch.len(), Ordering::Relaxed);
        drop(batches);
        // Outside the lock; siblings share one update of their parent's count.
        Activity::drop_all(batch.drain(..));
        let mut spare = lock(&self.spare);
        if spare.len() < RETURN_BATCHES {
            spare.push(batch);
        }
    }

    /// Called by the export thread when the application has gone quiet.
    fn release_all(&self) {
        let all = std::mem::take(&mut *lock(&self.batches));
        self.len.store(0, Ordering::Relaxed);
        Activity::drop_all(all.into_iter().flatten());
    }
}

/// Locks `mutex`, also when a thread panicked while holding it (the data stays usable).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The application side of the batch processor.
///
/// Each application thread queues into a ring of its own (single producer, single consumer:
/// the export thread), so queuing an activity writes a slot and publishes it with a release
/// store. A queue shared by all threads would make every push a read-modify-write on cache
/// lines that the other producers and the export thread keep taking away.
///
/// The bound is process-wide all the same (`max_queue_size` activities waiting in all rings
/// together, as `OTEL_BSP_MAX_QUEUE_SIZE` means in other SDKs): a thread takes room from a
/// shared budget a few slots at a time ([`Rings::reserve`]), and the export thread gives room
/// back as it takes activities out.
struct Queue {
    /// Tells this pipeline's rings apart in the threads' ring lists.
    id: u64,
    rings: Arc<Rings>,
    returned: Arc<Returned>,
    worker: Thread,
    sleep: Arc<Sleep>,
    /// Activities a thread queues between two nudges of the export thread.
    wake_every: usize,
}

/// The export thread's ends of the application threads' rings.
struct Rings {
    consumers: Mutex<Vec<ConsumerEnd>>,
    /// Activities queued while their thread was exiting (its ring is gone by then).
    orphans: Mutex<Vec<Activity>>,
    /// Each ring's room: one thread may hold the whole queue.
    capacity: usize,
    /// Room left in the whole queue, not yet reserved by any thread.
    budget: AtomicUsize,
    /// Room a thread reserves at a time.
    reserve_chunk: usize,
    /// Activities dropped by threads that are gone, or that were exiting.
    dropped_elsewhere: AtomicU64,
}

/// The export thread's end of one thread's ring.
struct ConsumerEnd {
    ring: rtrb::Consumer<Activity>,
    /// What the thread dropped, the ring being full. Only that thread writes it, so counting
    /// is a plain store, not a read-modify-write.
    dropped: Arc<AtomicU64>,
}

impl Rings {
    fn new(capacity: usize) -> Self {
        Rings {
            consumers: Mutex::new(Vec::new()),
            orphans: Mutex::new(Vec::new()),
            capacity,
            budget: AtomicUsize::new(capacity),
            // Small next to the queue, so that threads holding unused room cannot starve the
            // others; large enough that reserving is rare (one read-modify-write per chunk).
            reserve_chunk: (capacity / 64).clamp(1, 64),
            dropped_elsewhere: AtomicU64::new(0),
        }
    }

    /// Takes up to `reserve_chunk` slots of room from the budget; 0 when the queue is full.
    fn reserve(&self) -> usize {
        let mut available = self.budget.load(Ordering::Relaxed);
        loop {
            let take = available.min(self.reserve_chunk);
            if take == 0 {
                return 0;
            }
            match self
                .budget
                .compare_exchange_weak(available, available - take, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return take,
                Err(now) => available = now,
            }
        }
    }

    /// Takes one slot of room; false when the queue is full.
    fn take_one(&self) -> bool {
        self.budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    }

    /// Gives back room: activities taken out for export, or a thread's unused reservation.
    fn give_back_room(&self, slots: usize) {
        if slots > 0 {
            self.budget.fetch_add(slots, Ordering::Relaxed);
        }
    }

    /// Activities dropped so far because a ring was full.
    fn dropped(&self) -> u64 {
        let consumers = lock(&self.consumers);
        consumers.iter().map(|c| c.dropped.load(Ordering::Relaxed)).sum::<u64>()
            + self.dropped_elsewhere.load(Ordering::Relaxed)
    }

    /// Moves queued activities into `batch` until it holds `max`, taking from each thread's
    /// ring in turn; rings whose thread has exited are dropped once empty.
    fn drain_into(&self, batch: &mut Vec<Activity>, max: usize) {
        let start = batch.len();
        let mut orphans = lock(&self.orphans);
        let room = max.saturating_sub(batch.len()).min(orphans.len());
        batch.extend(orphans.drain(..room));
        drop(orphans);
        let mut consumers = lock(&self.consumers);
        loop {
            let before = batch.len();
            for consumer in consumers.iter_mut() {
                // A share per ring and round, so one busy thread cannot starve the others;
                // taken as one chunk, which hands the slots back with one store.
                let share = (max.saturating_sub(batch.len()) / 4).max(1).min(consumer.ring.slots());
                if let Ok(chunk) = consumer.ring.read_chunk(share) {
                    batch.extend(chunk);
                }
            }
            if batch.len() >= max || batch.len() == before {
                break;
            }
        }
        self.give_back_room(batch.len() - start);
        consumers.retain(|c| {
            let gone = c.ring.is_abandoned() && c.ring.is_empty();
            if gone {
                // The thread has exited: its count moves to the total of gone threads.
                let dropped = c.dropped.load(Ordering::Relaxed);
                self.dropped_elsewhere.fetch_add(dropped, Ordering::Relaxed);
            }
            !gone
        });
    }
}

/// The rings this thread queues into, one per installed pipeline.
struct ThreadRing {
    queue: u64,
    ring: rtrb::Producer<Activity>,
    /// Activities queued since this thread last woke the export thread: waking once per
    /// batch instead of once per activity keeps the instrumented thread away from system
    /// calls.
    since_wake: usize,
    /// What this thread dropped (see `ConsumerEnd::dropped`).
    dropped: Arc<AtomicU64>,
    /// Room reserved from the pipeline's budget and not used yet.
    room: usize,
    rings: Arc<Rings>,
}

impl Drop for ThreadRing {
    fn drop(&mut self) {
        // The thread is exiting or the pipeline is gone: its unused room goes back.
        self.rings.give_back_room(self.room);
    }
}

thread_local! {
    static RINGS: RefCell<Vec<ThreadRing>> = const { RefCell::new(Vec::new()) };
}

static NEXT_QUEUE_ID: AtomicU64 = AtomicU64::new(1);

/// What pushing into this thread's ring did.
enum Pushed {
    /// Queued; the count since the export thread was last woken by this thread.
    Queued(usize),
    /// The ring was full.
    Full(Activity),
}

impl Queue {
    fn push(&self, activity: Activity) {
        // Taken by reference into the closure, and dropped (if it must be) outside the
        // thread's ring list: freeing an activity may run arbitrary drop code.
        let mut activity = Some(activity);
        let pushed = RINGS.try_with(|rings| {
            let mut rings = rings.borrow_mut();
            let index = match rings.iter().position(|r| r.queue == self.id) {
                Some(index) => index,
                None => self.add_ring(&mut rings),
            };
            let thread_ring = &mut rings[index];
            if thread_ring.room == 0 {
                thread_ring.room = self.rings.reserve();
                // A quarter of the whole queue taken: wake the export thread if it is napping
                // until a slow batch fills, or asleep (`Sleep::hurry` runs no user code: fine
                // under the borrow). Looked at once per reservation, on the process-wide
                // budget: with several threads queuing, the queue fills before any one
                // thread's ring does. And not left to the nap's timer alone: on a virtual
                // machine a timer waking an idle core was seen to fire milliseconds late, and
                // at ~600,000 activities a second the default queue (2,048) fills in 3.4 ms
                // (measured, two paced threads: 3 of 12 runs dropped some when woken at half
                // the queue, none of 12 at a quarter). Three quarters taken: even from a nap
                // between full batches.
                let budget = self.rings.budget.load(Ordering::Relaxed);
                let capacity = self.rings.capacity;
                if budget < capacity - capacity / 4 {
                    self.sleep.hurry(&self.worker, budget < capacity / 4);
                }
            }
            if thread_ring.room == 0 {
                // The whole queue is full.
                let dropped = &thread_ring.dropped;
                dropped.store(dropped.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
                return Some(Pushed::Full(activity.take()?));
            }
            match thread_ring.ring.push(activity.take()?) {
                Ok(()) => {
                    thread_ring.room -= 1;
                    thread_ring.since_wake += 1;
                    let since_wake = thread_ring.since_wake;
                    if since_wake >= self.wake_every {
                        thread_ring.since_wake = 0;
                    }
                    Some(Pushed::Queued(since_wake))
                }
                Err(rtrb::PushError::Full(activity)) => {
                    let dropped = &thread_ring.dropped;
                    dropped.store(dropped.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
                    Some(Pushed::Full(activity))
                }
            }
        });
        match pushed {
            Ok(Some(Pushed::Queued(since_wake))) => {
                if since_wake >= self.wake_every {
                    self.sleep.nudge(&self.worker);
                }
                let release_turn = since_wake % RELEASE_EVERY == 0 || since_wake >= self.wake_every;
                if release_turn && self.returned.len.load(Ordering::Relaxed) > 0 {
                    self.returned.release_some();
                }
            }
            // Counted; the export thread reports it (no I/O on the application's thread).
            Ok(Some(Pushed::Full(activity))) => drop(activity),
            // The thread is exiting and its ring list is gone (the closure did not run, so
            // the activity is still here).
            Ok(None) | Err(_) => {
                if let Some(activity) = activity {
                    let mut orphans = lock(&self.rings.orphans);
                    if self.rings.take_one() {
                        orphans.push(activity);
                    } else {
                        drop(orphans);
                        drop(activity);
                        self.rings.dropped_elsewhere.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }

    /// Gives this thread a ring into this pipeline (and forgets rings of pipelines that are
    /// gone); returns its index.
    #[cold]
    fn add_ring(&self, rings: &mut Vec<ThreadRing>) -> usize {
        rings.retain(|r| !r.ring.is_abandoned());
        let (producer, consumer) = rtrb::RingBuffer::new(self.rings.capacity);
        let dropped = Arc::new(AtomicU64::new(0));
        lock(&self.rings.consumers).push(ConsumerEnd {
            ring: consumer,
            dropped: dropped.clone(),
        });
        rings.push(ThreadRing {
            queue: self.id,
            ring: producer,
            since_wake: 0,
            dropped,
            room: 0,
            rings: self.rings.clone(),
        });
        rings.len() - 1
    }
}

/// The export thread.
struct Worker {
    control: Sender<Control>,
    thread: Option<JoinHandle<()>>,
    rings: Arc<Rings>,
}

impl Worker {
    fn spawn(mut exporter: Box<dyn ActivityExporter>, config: BatchConfig, notice: ShutdownNotice) -> (Queue, Worker) {
        let rings = Arc::new(Rings::new(config.max_queue_size));
        let worker_rings = rings.clone();
        let (control_tx, control_rx) = mpsc::channel::<Control>();
        let sleep = Arc::new(Sleep::default());
        let worker_sleep = sleep.clone();
        exporter.set_export_timeout(config.export_timeout);
        exporter.watch_shutdown(notice);
        // A thread nudges the export thread each time it has queued a batch: waiting longer
        // (for most of a large queue) lets tens of thousands of finished activities pile up,
        // out of every cache and out of the memory pools, and the producers then pay for
        // fresh memory. A nudge costs a system call only when the export thread is asleep,
        // not while batches keep it busy.
        let wake_every = config.max_export_batch_size.min(config.max_queue_size).max(1);
        let returned = Arc::new(Returned::new());
        let worker_returned = returned.clone();
        let thread = std::thread::Builder::new()
            .name("skein-export".into())
            .spawn(move || {
                // Spans that the exporter's HTTP/gRPC libraries open here are not recorded:
                // exporting them would make more of them (a feedback loop).
                let _quiet = skein::suppress_instrumentation();
                run(
                    exporter,
                    config,
                    &worker_rings,
                    control_rx,
                    &worker_sleep,
                    worker_returned,
                )
            })
            .expect("spawning the export thread");
        let queue = Queue {
            id: NEXT_QUEUE_ID.fetch_add(1, Ordering::Relaxed),
            rings: rings.clone(),
            returned,
            worker: thread.thread().clone(),
            sleep,
            wake_every,
        };
        let worker = Worker {
            control: control_tx,
            thread: Some(thread),
            rings,
        };
        (queue, worker)
    }

    fn request(&self, make: impl FnOnce(Sender<()>) -> Control, timeout: Duration) -> Result<(), ExportError> {
        let thread = self.thread.as_ref().map(|t| t.thread());
        worker::request(&self.control, thread, make, timeout, Signal::Traces)
    }
}

fn run(
    mut exporter: Box<dyn ActivityExporter>,
    config: BatchConfig,
    rings: &Rings,
    control: Receiver<Control>,
    sleep: &Sleep,
    returned: Arc<Returned>,
) {
    let mut batch: Vec<Activity> = Vec::with_capacity(config.max_export_batch_size);
    let mut drops = worker::DropReport::default();
    // Exports what is queued (only full batches if `only_full`); says whether a batch was full.
    let mut export_all = |exporter: &mut Box<dyn ActivityExporter>, only_full: bool| {
        let mut full = false;
        loop {
            rings.drain_into(&mut batch, config.max_export_batch_size);
            full |= batch.len() >= config.max_export_batch_size;
            if batch.is_empty() || (only_full && batch.len() < config.max_export_batch_size) {
                break;
            }
            if let Err(e) = exporter.export(&batch) {
                report(e);
            }
            returned.give_back(&mut batch);
        }
        drops.update(rings.dropped(), Signal::Traces);
        worker::Looked {
            full,
            waiting: batch.len(),
            batch_size: config.max_export_batch_size,
        }
    };
    let mut returned_at_last_tick = 0;
    let mut export = |step: Step| {
        if step == Step::Due {
            // Nothing taken back for a whole interval: the application is idle.
            let waiting = returned.len.load(Ordering::Relaxed);
            if waiting > 0 && waiting == returned_at_last_tick {
                returned.release_all();
            }
        }
        // Woken early: export only full batches, keep the rest for the timer.
        let looked = export_all(&mut exporter, step == Step::Early);
        if step == Step::Due {
            returned_at_last_tick = returned.len.load(Ordering::Relaxed);
        }
        if step == Step::Last {
            exporter.shutdown();
        }
        looked
    };
    worker::drive(config.scheduled_delay, control, sleep, &mut export);
}

/// Keeps the pipeline installed (and, from [`crate::init`], the log pipeline too). Dropping it
/// stops listening, exports what is queued — waiting up to the export timeout
/// (`OTEL_BSP_EXPORT_TIMEOUT`, 30 s by default), one attempt per batch with no retries, so a
/// backend that is down does not hold the application up — and stops the export thread.
#[must_use = "dropping the guard uninstalls the pipeline at once"]
pub struct ExportGuard {
    registration: Option<ListenerRegistration>,
    listener: Arc<PipelineListener>,
    worker: Option<Worker>,
    notice: ShutdownNotice,
    shutdown_timeout: Duration,
    logs: Option<LogGuard>,
}

impl ExportGuard {
    /// Also keeps `logs` installed, flushed and shut down with the spans.
    pub fn with_logs(mut self, logs: LogGuard) -> Self {
        self.logs = Some(logs);
        self
    }

    /// The log pipeline this guard keeps, if any.
    pub fn logs(&self) -> Option<&LogGuard> {
        self.logs.as_ref()
    }

    /// Exports everything queued so far (spans, and log records if this guard has a log
    /// pipeline) and waits for it, up to `timeout` for each.
    pub fn force_flush(&self, timeout: Duration) -> Result<(), ExportError> {
        let spans = match &self.worker {
            Some(worker) => worker.request(Control::Flush, timeout),
            None => Ok(()),
        };
        let logs = self.logs.as_ref().map_or(Ok(()), |l| l.force_flush(timeout));
        spans.and(logs)
    }

    /// Activities dropped because the queue was full.
    pub fn dropped_count(&self) -> u64 {
        self.worker.as_ref().map_or(0, |w| w.rings.dropped())
    }

    /// Stops listening, exports what is queued (one attempt per batch, no retries) and stops
    /// the export thread(s), waiting up to `timeout` (the thread is left to finish on its own
    /// after that).
    pub fn shutdown(mut self, timeout: Duration) -> Result<(), ExportError> {
        self.shutdown_inner(timeout)
    }

    fn shutdown_inner(&mut self, timeout: Duration) -> Result<(), ExportError> {
        let started = Instant::now();
        drop(self.registration.take());
        self.notice.set();
        let spans = match self.worker.take() {
            None => {
                if let Sink::Simple(exporter) = &self.listener.sink {
                    let _quiet = skein::suppress_instrumentation();
                    lock(exporter).shutdown();
                }
                Ok(())
            }
            Some(mut worker) => worker::shut_down(&worker.control, &mut worker.thread, timeout, Signal::Traces),
        };
        let logs = match self.logs.take() {
            Some(logs) => logs.shutdown(timeout.saturating_sub(started.elapsed())),
            None => Ok(()),
        };
        spans.and(logs)
    }
}

impl Drop for ExportGuard {
    fn drop(&mut self) {
        if self.registration.is_some() {
            let _ = self.shutdown_inner(self.shutdown_timeout);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reference to a new activity and a token that tells when the activity is freed.
    fn activity() -> (Activity, Arc<()>) {
        let activity = Activity::new("returned");
        let token = Arc::new(());
        activity.set_custom_property("token", Some(token.clone()));
        (activity, token)
    }

    #[test]
    fn threads_that_fill_the_queue_together_wake_the_export_thread() {
        const CAPACITY: usize = 2048;
        let queue = Arc::new(Queue {
            id: NEXT_QUEUE_ID.fetch_add(1, Ordering::Relaxed),
            rings: Arc::new(Rings::new(CAPACITY)),
            returned: Arc::new(Returned::new()),
            worker: std::thread::current(),
            sleep: Arc::new(Sleep::default()),
            // No nudges from batch counts: only the queue's filling may wake it here.
            wake_every: usize::MAX,
        });
        queue.sleep.set_napping_for_test();
        // Three threads, each queuing a fifth of the queue: no ring is even a quarter full
        // past its own share, but together they hold 60% of the queue.
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let queue = queue.clone();
                std::thread::spawn(move || {
                    let activities: Vec<_> = (0..CAPACITY / 5).map(|_| activity().0).collect();
                    for activity in activities {
                        queue.push(activity);
                    }
                    // Held until the checks are done: an exiting thread gives back its room.
                    std::thread::park();
                })
            })
            .collect();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while queue.rings.budget.load(Ordering::Relaxed) > CAPACITY - 3 * (CAPACITY / 5) {
            assert!(std::time::Instant::now() < deadline, "the threads queued");
            std::thread::yield_now();
        }
        assert!(queue.sleep.was_hurried_for_test(), "the export thread was woken");
        for thread in threads {
            thread.thread().unpark();
            thread.join().unwrap();
        }
    }

    #[test]
    fn returned_batches_are_bounded_in_number_and_freed_whole() {
        let returned = Returned::new();
        let mut tokens = Vec::new();
        // Twenty one-activity exports (a quiet application, timer-driven exports): only
        // RETURN_BATCHES of them wait, each keeping a vector; the others are freed at once.
        for _ in 0..20 {
            let (a, token) = activity();
            tokens.push(token);
            let mut batch = Vec::with_capacity(512);
            batch.push(a);
            returned.give_back(&mut batch);
            assert!(batch.is_empty());
        }
        assert_eq!(lock(&returned.batches).len(), RETURN_BATCHES);
        assert_eq!(returned.len.load(Ordering::Relaxed), RETURN_BATCHES);
        let freed = |tokens: &[Arc<()>]| tokens.iter().filter(|t| Arc::strong_count(t) == 1).count();
        assert_eq!(freed(&tokens), 20 - RETURN_BATCHES);
        // An application thread frees the newest batch whole, and its vector is kept.
        returned.release_some();
        assert_eq!(freed(&tokens), 20 - RETURN_BATCHES + 1);
        assert_eq!(returned.len.load(Ordering::Relaxed), RETURN_BATCHES - 1);
        assert_eq!(lock(&returned.spare).len(), 1);
        // The export thread frees the rest when the application has gone quiet.
        returned.release_all();
        assert_eq!(freed(&tokens), 20);
        assert_eq!(returned.len.load(Ordering::Relaxed), 0);
    }
}
