//! `ActivitySource`: named producers of activities, and the registry that attaches listeners.

use std::borrow::Cow;
use std::cell::{Cell, UnsafeCell};
use std::error::Error;
use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::SystemTime;

use arc_swap::ArcSwapOption;

use crate::activity::{
    next_under_is_w3c, preset_flags, Activity, ActivityIdFormat, ActivityKind, ActivityLink, NewActivity, RemoteParent,
};
use crate::context::{parse_traceparent, ActivityContext};
use crate::current;
use crate::id::ActivityTraceFlags;
use crate::listener::{ActivityCreationOptions, ActivityListener, ActivitySamplingResult, LocalParentDecision};
use crate::tag::Tag;
use crate::trace_state::TraceState;

/// Bumped whenever any source's listener set changes; threads' caches check it.
static GENERATION: AtomicU64 = AtomicU64::new(1);
static NEXT_INDEX: AtomicU32 = AtomicU32::new(0);

/// Each thread's copy of the listener sets it uses, by source index. Reading it costs no
/// atomic read-modify-write (unlike a shared `Arc` or `ArcSwap` load), which is what keeps a
/// declined activity at a few nanoseconds. A stale copy is never used (the generation
/// moved); it is released when the thread next starts an activity.
struct ListenerCache {
    generation: Cell<u64>,
    /// Nesting depth of callbacks running from this cache. The vector is only changed at
    /// depth 0, so the sets lent out to running callbacks stay alive and in place.
    depth: Cell<u32>,
    sets: UnsafeCell<Vec<Option<Arc<ListenerSet>>>>,
    /// Live [`SuppressedInstrumentation`] guards on this thread: no activity is created.
    suppressed: Cell<u32>,
}

thread_local! {
    static CACHE: ListenerCache = const {
        ListenerCache {
            generation: Cell::new(0),
            depth: Cell::new(0),
            sets: UnsafeCell::new(Vec::new()),
            suppressed: Cell::new(0),
        }
    };
}

/// While it lives, this thread creates no activities: `start_activity`, `start_activity_with`
/// and `create_activity` of every source return `None` (activities already running stop and
/// reach their listeners as usual). Exporters hold one while they send, so that the spans of
/// the HTTP and gRPC libraries they use are not recorded and exported in turn (a feedback
/// loop), as OpenTelemetry SDKs suppress their own telemetry.
///
/// ```
/// use skein::{ActivityKind, ActivitySource};
/// static SOURCE: ActivitySource = ActivitySource::new("my_exporter.http");
/// let _quiet = skein::suppress_instrumentation();
/// assert!(SOURCE.start_activity("POST /v1/traces", ActivityKind::Client).is_none());
/// ```
pub fn suppress_instrumentation() -> SuppressedInstrumentation {
    // During thread teardown the cache is gone and nothing can be started anyway.
    let _ = CACHE.try_with(|cache| cache.suppressed.set(cache.suppressed.get() + 1));
    SuppressedInstrumentation {
        _not_send: std::marker::PhantomData,
    }
}

/// True while a [`SuppressedInstrumentation`] guard lives on this thread (and during thread
/// teardown, when nothing can be recorded anyway).
#[inline]
pub(crate) fn instrumentation_suppressed() -> bool {
    CACHE.try_with(|cache| cache.suppressed.get() > 0).unwrap_or(true)
}

/// See [`suppress_instrumentation`]; dropping it ends the suppression (guards nest).
#[must_use = "instrumentation is suppressed only while the guard lives"]
pub struct SuppressedInstrumentation {
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Drop for SuppressedInstrumentation {
    fn drop(&mut self) {
        let _ = CACHE.try_with(|cache| cache.suppressed.set(cache.suppressed.get().saturating_sub(1)));
    }
}

/// Restores the cache depth when a callback returns or unwinds.
struct DepthGuard<'a>(&'a Cell<u32>);

/// A source's listeners lent out by [`ActivitySource::lend_listeners`]: from this thread's
/// cache (whose depth it holds raised, so the cache keeps the set in place), or a set of its
/// own.
struct LentListeners {
    /// The cache's depth, lowered on drop; null for an owned set.
    depth: *const Cell<u32>,
    set: *const [Attached],
    _owned: Option<Arc<ListenerSet>>,
}

impl std::ops::Deref for LentListeners {
    type Target = [Attached];
    fn deref(&self) -> &[Attached] {
        // SAFETY: the set is kept alive and in place by the raised depth (the cache's
        // vector is only changed at depth 0) or by `_owned`.
        unsafe { &*self.set }
    }
}

impl Drop for LentListeners {
    fn drop(&mut self) {
        if !self.depth.is_null() {
            // SAFETY: the cache is this thread's, alive while the thread runs this.
            let depth = unsafe { &*self.depth };
            depth.set(depth.get() - 1);
        }
    }
}
impl Drop for DepthGuard<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

const UNREGISTERED: u8 = 0;
const NO_LISTENERS: u8 = 1;
const HAS_LISTENERS: u8 = 2;
/// In the registry; its listeners are being asked whether they want it.
const REGISTERING: u8 = 3;

/// What `start_under_current` saw of the current activity.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ParentSeen {
    /// None: a root.
    None,
    /// A local activity with a W3C id, recorded.
    LocalRecorded,
    /// A local activity with a W3C id, not recorded.
    LocalNotRecorded,
    /// Another parent (not started, or with a hierarchical id).
    Other,
}

impl ParentSeen {
    /// What this thread's current activity is, as a parent.
    #[inline]
    fn current() -> ParentSeen {
        current::with(|c| match c {
            None => ParentSeen::None,
            Some(p) => match p.local_w3c_recorded() {
                Some(true) => ParentSeen::LocalRecorded,
                Some(false) => ParentSeen::LocalNotRecorded,
                None => ParentSeen::Other,
            },
        })
    }
}

/// An attached listener, with its trait-object pointer resolved once (calling through an
/// `Arc<dyn _>` recomputes where the value sits from the vtable on every call).
#[derive(Clone)]
pub(crate) struct Attached {
    listener: *const dyn ActivityListener,
    keep: Arc<dyn ActivityListener>,
    /// [`ActivityListener::keeps_stopped_activities`], asked once.
    pub(crate) keeps_stopped: bool,
    /// [`ActivityListener::wants_started_activities`], asked once.
    wants_started: bool,
    /// [`ActivityListener::local_parent_decision`], asked once.
    local_parent: Option<LocalParentDecision>,
    /// [`ActivityListener::root_decision`], asked once.
    root: Option<ActivitySamplingResult>,
}

// SAFETY: `listener` points into `keep`, which is `Send + Sync` and lives as long as `self`.
unsafe impl Send for Attached {}
unsafe impl Sync for Attached {}

impl Attached {
    fn new(keep: Arc<dyn ActivityListener>) -> Self {
        Attached {
            listener: Arc::as_ptr(&keep),
            keeps_stopped: keep.keeps_stopped_activities(),
            wants_started: keep.wants_started_activities(),
            local_parent: keep.local_parent_decision(),
            root: keep.root_decision(),
            keep,
        }
    }

    fn is(&self, other: &Arc<dyn ActivityListener>) -> bool {
        Arc::ptr_eq(&self.keep, other)
    }
}

impl std::ops::Deref for Attached {
    type Target = dyn ActivityListener;
    #[inline]
    fn deref(&self) -> &(dyn ActivityListener + 'static) {
        // SAFETY: see the `Send`/`Sync` impls.
        unsafe { &*self.listener }
    }
}

type ListenerSet = Vec<Attached>;

/// A named producer of activities (a library, a component). Declare it as a `static`; it
/// registers itself the first time it is used.
///
/// Starting an activity first reads one atomic: with no listener attached, nothing else
/// happens — no allocation, no clock read.
///
/// ```
/// use skein::{ActivityKind, ActivitySource, Tag};
///
/// static DB_TAGS: [Tag; 1] = [Tag::new_static_str("db.system.name", "sqlite")];
/// static DB: ActivitySource = ActivitySource::new("my_app.db")
///     .with_version("2.1.0")
///     .with_tags(&DB_TAGS);
///
/// assert!(!DB.has_listeners());
/// assert!(DB.start_activity("SELECT orders", ActivityKind::Client).is_none());
/// ```
pub struct ActivitySource {
    name: &'static str,
    version: Option<&'static str>,
    tags: &'static [Tag],
    state: AtomicU8,
    /// What the attached listeners decide together without being asked, for roots and under
    /// local parents, when every one says and none wants `on_started` (see
    /// [`combined_decisions`]). Kept with the set, so that such activities are decided
    /// without looking the set up or calling a sampler.
    decisions: AtomicU8,
    /// Position in the threads' listener caches, assigned at registration.
    index: AtomicU32,
    listeners: ArcSwapOption<ListenerSet>,
}

/// `ActivitySource::decisions`: known under a local parent (bits 2-3 when it is recorded,
/// bits 0-1 when not).
const LOCAL_PARENT_KNOWN: u8 = 0x80;
/// `ActivitySource::decisions`: known for a root (bits 4-5).
const ROOT_KNOWN: u8 = 0x40;

/// Two bits for a sampling result.
fn result_bits(result: ActivitySamplingResult) -> u8 {
    result as u8
}

/// The result in the low two bits of `bits`.
#[inline]
fn result_of(bits: u8) -> ActivitySamplingResult {
    match bits & 3 {
        0 => ActivitySamplingResult::None,
        1 => ActivitySamplingResult::PropagationData,
        2 => ActivitySamplingResult::AllData,
        _ => ActivitySamplingResult::AllDataAndRecorded,
    }
}

/// The decision `decisions` holds for an activity whose parent is `parent`, if known.
#[inline]
fn known_decision(decisions: u8, parent: ParentSeen) -> Option<ActivitySamplingResult> {
    match parent {
        ParentSeen::None if decisions & ROOT_KNOWN != 0 => Some(result_of(decisions >> 4)),
        ParentSeen::LocalRecorded if decisions & LOCAL_PARENT_KNOWN != 0 => Some(result_of(decisions >> 2)),
        ParentSeen::LocalNotRecorded if decisions & LOCAL_PARENT_KNOWN != 0 => Some(result_of(decisions)),
        _ => None,
    }
}

/// What the listeners of `set` decide together (the largest answer, as when asked) without
/// being asked, where every one of them says and none wants `on_started` (which a start
/// without the set could not call).
fn combined_decisions(set: &[Attached]) -> u8 {
    if set.is_empty() || set.iter().any(|l| l.wants_started) {
        return 0;
    }
    let mut decisions = 0;
    let roots: Option<Vec<_>> = set.iter().map(|l| l.root).collect();
    if let Some(root) = roots.and_then(|r| r.into_iter().max()) {
        decisions |= ROOT_KNOWN | result_bits(root) << 4;
    }
    let locals: Option<Vec<_>> = set.iter().map(|l| l.local_parent).collect();
    if let Some(locals) = locals {
        let recorded = locals.iter().map(|d| d.recorded).max().unwrap_or_default();
        let not_recorded = locals.iter().map(|d| d.not_recorded).max().unwrap_or_default();
        decisions |= LOCAL_PARENT_KNOWN | result_bits(recorded) << 2 | result_bits(not_recorded);
    }
    decisions
}

impl fmt::Debug for ActivitySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActivitySource")
            .field("name", &self.name)
            .field("version", &self.version)
            .finish()
    }
}

/// The parent of a new activity.
#[derive(Clone, Debug, Default)]
pub enum ActivityParent<'a> {
    /// The current activity, if any (the default).
    #[default]
    Current,
    /// No parent: start a new trace even if an activity is current.
    Root,
    /// A context, typically extracted from an incoming request.
    Context(ActivityContext),
    /// A parent id string: a W3C `traceparent` or a hierarchical `Request-Id`.
    Id(&'a str),
}

/// When `build` starts the activity it makes.
enum Start {
    /// Now, making it current.
    Now,
    /// Now, leaving the current activity as it is.
    NowDetached,
    /// Later (`Activity::start`).
    Later,
}

/// The full set of choices for [`ActivitySource::start_activity_with`].
///
/// ```
/// use skein::{ActivityParent, ActivityStartOptions, Tag};
/// let options = ActivityStartOptions {
///     parent: ActivityParent::Id("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
///     tags: vec![Tag::new("http.request.method", "GET")],
///     ..Default::default()
/// };
/// ```
#[derive(Clone, Debug, Default)]
pub struct ActivityStartOptions<'a> {
    /// The parent (default: the current activity).
    pub parent: ActivityParent<'a>,
    /// Creation tags: samplers see them.
    pub tags: Vec<Tag>,
    /// Links to other contexts.
    pub links: Vec<ActivityLink>,
    /// The start time (default: now).
    pub start_time: Option<SystemTime>,
    /// The id format (default: chosen from the parent).
    pub id_format: ActivityIdFormat,
    /// Trace state to use with an [`ActivityParent::Id`] parent (from a `tracestate` header).
    pub trace_state: Option<&'a str>,
    /// Start without making the activity current (as OpenTelemetry's `Tracer::start`, where
    /// .NET's `StartActivity` always does): its parent is chosen as for any other, activities
    /// started meanwhile are not its children unless it is made current, and stopping it
    /// leaves the current activity alone. For bridges whose spans are entered and exited on
    /// their own (the `tracing` layer). `create_activity` ignores it: [`Activity::start`]
    /// makes the activity current.
    pub detached: bool,
}

struct Registry {
    sources: Vec<&'static ActivitySource>,
    listeners: Vec<Arc<dyn ActivityListener>>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    sources: Vec::new(),
    listeners: Vec::new(),
});

fn registry() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// Signalled (with the registry's lock) when a source finishes registering.
static REGISTERED: Condvar = Condvar::new();

thread_local! {
    /// How many `should_listen_to` calls this thread is inside. Such a thread never waits for
    /// another thread's registration: that one may be waiting for this one's callback.
    static ASKING: Cell<u32> = const { Cell::new(0) };
}

/// Asks `listener` whether it wants `source`, counted in [`ASKING`].
fn ask_should_listen_to(listener: &dyn ActivityListener, source: &ActivitySource) -> bool {
    struct Asking;
    impl Drop for Asking {
        fn drop(&mut self) {
            ASKING.with(|a| a.set(a.get() - 1));
        }
    }
    ASKING.with(|a| a.set(a.get() + 1));
    let _asking = Asking;
    listener.should_listen_to(source)
}

/// Keeps a listener attached; dropping it detaches the listener from every source.
#[must_use = "dropping the registration detaches the listener at once"]
pub struct ListenerRegistration {
    listener: Option<Arc<dyn ActivityListener>>,
}

impl ListenerRegistration {
    /// Keeps the listener attached for the rest of the process.
    pub fn keep_forever(mut self) {
        self.listener = None;
    }
}

impl Drop for ListenerRegistration {
    fn drop(&mut self) {
        if let Some(listener) = self.listener.take() {
            {
                let mut reg = registry();
                reg.listeners.retain(|l| !Arc::ptr_eq(l, &listener));
                for source in &reg.sources {
                    source.update_listeners(|set| set.retain(|l| !l.is(&listener)));
                }
            }
            notify_listeners_changed();
        }
    }
}

type ChangeCallback = Arc<dyn Fn() + Send + Sync>;

static ON_LISTENERS_CHANGED: Mutex<Vec<ChangeCallback>> = Mutex::new(Vec::new());

/// Calls `callback` after every listener is added or removed (with no lock of the crate
/// held), for the rest of the process: for bridges that cache which sources anyone listens
/// to, such as `skein-tracing`'s per-callsite interest in `tracing`.
pub fn on_listeners_changed(callback: impl Fn() + Send + Sync + 'static) {
    ON_LISTENERS_CHANGED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Arc::new(callback));
}

fn notify_listeners_changed() {
    let callbacks = ON_LISTENERS_CHANGED.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for callback in callbacks {
        callback();
    }
}

impl ActivitySource {
    /// A source named `name` (e.g. the crate or component), usable in a `static`.
    pub const fn new(name: &'static str) -> Self {
        ActivitySource {
            name,
            version: None,
            tags: &[],
            state: AtomicU8::new(UNREGISTERED),
            decisions: AtomicU8::new(0),
            index: AtomicU32::new(u32::MAX),
            listeners: ArcSwapOption::const_empty(),
        }
    }

    /// The same source with a version.
    pub const fn with_version(mut self, version: &'static str) -> Self {
        self.version = Some(version);
        self
    }

    /// The same source with tags (reported as instrumentation-scope attributes).
    pub const fn with_tags(mut self, tags: &'static [Tag]) -> Self {
        self.tags = tags;
        self
    }

    /// The source registered under `name` and `version`, created (and kept for the rest of
    /// the process) if there is none: for sources named at run time, such as one per
    /// `tracing` target.
    pub fn get_or_create(name: &str, version: Option<&str>, tags: Vec<Tag>) -> &'static ActivitySource {
        {
            let reg = registry();
            if let Some(found) = reg.sources.iter().find(|s| s.name == name && s.version == version) {
                return found;
            }
        }
        // Sources live for the whole process, like statics.
        let source: &'static ActivitySource = Box::leak(Box::new(ActivitySource {
            name: Box::leak(name.into()),
            version: version.map(|v| &*Box::leak(v.into())),
            tags: Box::leak(tags.into_boxed_slice()),
            state: AtomicU8::new(UNREGISTERED),
            decisions: AtomicU8::new(0),
            index: AtomicU32::new(u32::MAX),
            listeners: ArcSwapOption::const_empty(),
        }));
        source.register();
        source
    }

    /// The source of activities made with [`Activity::new`].
    pub fn unnamed() -> &'static ActivitySource {
        static UNNAMED: ActivitySource = ActivitySource::new("");
        &UNNAMED
    }

    /// The name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The version, if any.
    pub fn version(&self) -> Option<&'static str> {
        self.version
    }

    /// The source's tags.
    pub fn tags(&self) -> &'static [Tag] {
        self.tags
    }

    /// True if any listener is attached (check before costly preparation).
    #[inline]
    pub fn has_listeners(&'static self) -> bool {
        match self.state.load(Ordering::Acquire) {
            HAS_LISTENERS => true,
            NO_LISTENERS => false,
            _ => self.register(),
        }
    }

    /// Attaches a listener to every source it wants, now and in the future. It stays attached
    /// while the returned registration lives.
    pub fn add_activity_listener(listener: impl ActivityListener) -> ListenerRegistration {
        let listener = listener.into_shared();
        let sources = {
            let mut reg = registry();
            reg.listeners.push(listener.clone());
            reg.sources.clone()
        };
        // `should_listen_to` is user code: asked with no lock held, so it may start
        // activities, create sources and add or remove listeners. A source registered from
        // now on asks this listener itself (it is in the registry already), so nothing is
        // attached twice.
        let wanted: Vec<&'static ActivitySource> = sources
            .into_iter()
            .filter(|source| ask_should_listen_to(&*listener, source))
            .collect();
        {
            let _reg = registry();
            for source in wanted {
                source.update_listeners(|set| set.push(Attached::new(listener.clone())));
            }
        }
        notify_listeners_changed();
        ListenerRegistration {
            listener: Some(listener),
        }
    }

    fn update_listeners(&self, change: impl FnOnce(&mut ListenerSet)) {
        let mut set: ListenerSet = self.listeners.load().as_deref().cloned().unwrap_or_default();
        change(&mut set);
        let has = !set.is_empty();
        self.decisions.store(combined_decisions(&set), Ordering::Release);
        self.listeners.store(has.then(|| Arc::new(set)));
        GENERATION.fetch_add(1, Ordering::AcqRel);
        // A registering source keeps that state until its own listeners are attached.
        if self.state.load(Ordering::Acquire) != REGISTERING {
            self.state
                .store(if has { HAS_LISTENERS } else { NO_LISTENERS }, Ordering::Release);
        }
    }

    /// Registers on first use; returns whether listeners are attached.
    #[cold]
    fn register(&'static self) -> bool {
        let listeners = {
            let mut reg = registry();
            if self.state.load(Ordering::Acquire) == REGISTERING && ASKING.with(Cell::get) == 0 {
                // Another thread is asking the listeners: an activity started here must reach
                // the listeners added before it, so wait for the answers. (A thread inside
                // `should_listen_to` does not wait: the registration may be its own, or wait
                // for its callback. It sees "no listeners" for now, as before registration.)
                while self.state.load(Ordering::Acquire) == REGISTERING {
                    reg = REGISTERED.wait(reg).unwrap_or_else(|e| e.into_inner());
                }
            }
            if self.state.load(Ordering::Acquire) != UNREGISTERED {
                return self.state.load(Ordering::Acquire) == HAS_LISTENERS;
            }
            self.index
                .store(NEXT_INDEX.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
            self.state.store(REGISTERING, Ordering::Release);
            reg.sources.push(self);
            reg.listeners.clone()
        };
        // `should_listen_to` is user code: asked with no lock held. A listener added from
        // now on asks this source itself (it is in the registry already).
        let wanted: Vec<Arc<dyn ActivityListener>> = listeners
            .iter()
            .filter(|listener| ask_should_listen_to(&***listener, self))
            .cloned()
            .collect();
        {
            let reg = registry();
            // Listeners removed meanwhile are not attached.
            let attach: ListenerSet = wanted
                .iter()
                .filter(|l| reg.listeners.iter().any(|r| Arc::ptr_eq(r, l)))
                .map(|l| Attached::new(l.clone()))
                .collect();
            self.update_listeners(|set| set.extend(attach));
            let has = self.listeners.load().is_some();
            self.state
                .store(if has { HAS_LISTENERS } else { NO_LISTENERS }, Ordering::Release);
            REGISTERED.notify_all();
        }
        // `listeners` and `wanted` may hold the last references to listeners removed
        // meanwhile: they are dropped here, with no lock held (their `Drop` is user code).
        drop(wanted);
        drop(listeners);
        self.state.load(Ordering::Acquire) == HAS_LISTENERS
    }

    /// Runs `f` with this source's listeners (`None` if there are none, or if `CREATING` and
    /// this thread suppresses instrumentation).
    #[inline]
    fn with_listeners<const CREATING: bool, R>(&'static self, f: impl FnOnce(&[Attached]) -> R) -> Option<R> {
        let index = self.index.load(Ordering::Relaxed) as usize;
        let mut f = Some(f);
        let from_cache = CACHE.try_with(|cache| {
            if CREATING && cache.suppressed.get() != 0 {
                f = None;
                return None;
            }
            let generation = GENERATION.load(Ordering::Acquire);
            let depth = cache.depth.get();
            if depth == 0 {
                self.refresh_cache(cache, index, generation)?;
            } else if cache.generation.get() != generation {
                return None; // nested and stale: use the slow path below
            }
            // SAFETY: the vector is not changed while depth > 0, so this borrow stays valid
            // for the callback, however deeply it nests.
            let sets: &Vec<Option<Arc<ListenerSet>>> = unsafe { &*cache.sets.get() };
            let set: &ListenerSet = sets.get(index)?.as_deref()?;
            cache.depth.set(depth + 1);
            let _guard = DepthGuard(&cache.depth);
            f.take().map(|f| f(set))
        });
        match (from_cache, f) {
            (Ok(Some(result)), _) => Some(result),
            // The thread is shutting down, or a nested callback met a changed generation.
            (_, Some(f)) => {
                let set = self.listeners.load_full()?;
                Some(f(&set))
            }
            (_, None) => None,
        }
    }

    /// Starts an activity whose parent is the current activity. Returns `None` when no
    /// listener wants it. Drop the returned activity (or call `stop`) to end it.
    #[inline]
    pub fn start_activity(&'static self, name: impl Into<Cow<'static, str>>, kind: ActivityKind) -> Option<Activity> {
        if self.state.load(Ordering::Relaxed) == NO_LISTENERS {
            return None;
        }
        match name.into() {
            Cow::Borrowed(name) => self.start_under_current(name, kind),
            // A name made at run time: the general path.
            name => self.create(name, kind, ActivityStartOptions::default(), true),
        }
    }

    /// The common case kept small: a static name, the current activity as parent; sample,
    /// and build only when some listener wants the activity.
    ///
    /// The name stays a `&str` (two registers) until it is written into the activity, and
    /// the samplers' results are read where they are used, not moved out first: a `Cow` or a
    /// tuple is passed in memory, and a value read back right after it was written, with
    /// loads wider than its stores, waits for the stores to reach the cache (no store
    /// forwarding), which on this path was a stall per activity.
    #[inline(never)]
    fn start_under_current(&'static self, name: &'static str, kind: ActivityKind) -> Option<Activity> {
        if !self.has_listeners() {
            return None;
        }
        // No parent, or a local W3C parent's recorded flag, may be all the listeners need to
        // decide (see `ActivityListener::root_decision` and `local_parent_decision`). (What
        // the look returns is one byte, in a register: an enum carrying the parent's context
        // would be written to memory and read back at once, a stall per activity.)
        if let Some(result) = known_decision(self.decisions.load(Ordering::Acquire), ParentSeen::current()) {
            if result == ActivitySamplingResult::None || instrumentation_suppressed() {
                return None;
            }
            let mut options = ActivityCreationOptions::new(
                self,
                name,
                kind,
                ActivityContext::default(),
                &[],
                &[],
                ActivityIdFormat::Unknown,
                None,
            );
            return Some(self.start_sampled(&[], name, kind, result, &mut options));
        }
        let parent_context = current::with(|c| c.map(Activity::context)).unwrap_or_default();
        let mut options = ActivityCreationOptions::new(
            self,
            name,
            kind,
            parent_context,
            &[],
            &[],
            ActivityIdFormat::Unknown,
            None,
        );
        // Sampling alone in this closure: declining stays as cheap as it can be.
        let (result, wants_started) = self.with_listeners::<true, _>(|listeners| {
            let mut result = ActivitySamplingResult::None;
            let mut wants_started = false;
            for listener in listeners {
                result = result.max(listener.sample(&options));
                wants_started |= listener.wants_started;
            }
            (result, wants_started)
        })?;
        if result == ActivitySamplingResult::None {
            return None;
        }
        if !wants_started {
            // Nobody to tell: no second pass over the listeners.
            return Some(self.start_sampled(&[], name, kind, result, &mut options));
        }
        self.with_listeners::<false, _>(|listeners| self.start_sampled(listeners, name, kind, result, &mut options))
    }

    /// The rest of `start_under_current` once a listener wants the activity: build, then
    /// notify `listeners`. Kept out of line, so that declining costs only the sampling.
    #[inline(never)]
    fn start_sampled(
        &'static self,
        listeners: &[Attached],
        name: &'static str,
        kind: ActivityKind,
        result: ActivitySamplingResult,
        options: &mut ActivityCreationOptions<'_, ActivityContext>,
    ) -> Activity {
        let activity = if !options.has_output() && current::with(next_under_is_w3c) {
            Activity::start_w3c_under_current(self, Cow::Borrowed(name), kind, result, options.root_trace_id())
        } else {
            let (sampling_tags, trace_state, root_trace_id) = options.take_results();
            self.build(
                Cow::Borrowed(name),
                kind,
                RemoteParent::Current,
                sampling_tags,
                Vec::new(),
                (None, ActivityIdFormat::Unknown),
                result,
                trace_state,
                root_trace_id,
                Start::Now,
            )
        };
        for listener in listeners.iter().filter(|l| l.wants_started) {
            listener.on_started(&activity);
        }
        activity
    }

    /// Starts an activity with an explicit parent, tags, links, start time or id format.
    #[inline]
    pub fn start_activity_with(
        &'static self,
        name: impl Into<Cow<'static, str>>,
        kind: ActivityKind,
        options: ActivityStartOptions<'_>,
    ) -> Option<Activity> {
        if self.state.load(Ordering::Relaxed) == NO_LISTENERS {
            return None;
        }
        self.create(name.into(), kind, options, true)
    }

    /// Creates an activity without starting it (call [`Activity::start`] later); the parent
    /// is chosen at start unless given here.
    pub fn create_activity(
        &'static self,
        name: impl Into<Cow<'static, str>>,
        kind: ActivityKind,
        options: ActivityStartOptions<'_>,
    ) -> Option<Activity> {
        if self.state.load(Ordering::Relaxed) == NO_LISTENERS {
            return None;
        }
        self.create(name.into(), kind, options, false)
    }

    /// Asks every listener with `options` and returns the largest answer.
    fn sample<P>(
        &'static self,
        options: &ActivityCreationOptions<'_, P>,
        ask: impl Fn(&dyn ActivityListener, &ActivityCreationOptions<'_, P>) -> ActivitySamplingResult,
    ) -> ActivitySamplingResult {
        self.with_listeners::<true, _>(|listeners| {
            listeners
                .iter()
                .map(|l| ask(&**l, options))
                .max()
                .unwrap_or(ActivitySamplingResult::None)
        })
        .unwrap_or(ActivitySamplingResult::None)
    }

    fn create(
        &'static self,
        name: Cow<'static, str>,
        kind: ActivityKind,
        mut options: ActivityStartOptions<'_>,
        start: bool,
    ) -> Option<Activity> {
        if !self.has_listeners() {
            return None;
        }
        let tags = std::mem::take(&mut options.tags);
        let links = std::mem::take(&mut options.links);
        let id_format = options.id_format;
        let by_context =
            |options: &ActivityCreationOptions<'_, ActivityContext>| self.sample(options, |l, o| l.sample(o));
        let mut decided = false;
        let (result, remote, sampling_tags, sampled_trace_state, root_trace_id) = match options.parent.clone() {
            ActivityParent::Id(id) => {
                let context = parse_traceparent(id).ok().map(|(trace_id, span_id, flags)| {
                    let ts = options
                        .trace_state
                        .and_then(|s| TraceState::parse(s).ok())
                        .unwrap_or_default();
                    ActivityContext::new(trace_id, span_id, flags, ts, true)
                });
                let mut by_id = ActivityCreationOptions::new(self, &name, kind, id, &tags, &links, id_format, None);
                let mut with_context = ActivityCreationOptions::new(
                    self,
                    &name,
                    kind,
                    context.clone().unwrap_or_default(),
                    &tags,
                    &links,
                    id_format,
                    None,
                );
                // As in .NET: a W3C id goes to `sample` (parsed) unless a listener reads the
                // id itself; a hierarchical id only to listeners that read it.
                let result = self.sample(&by_id, |l, o| match l.sample_using_parent_id(o) {
                    Some(r) => r,
                    None if context.is_some() => l.sample(&with_context),
                    None => ActivitySamplingResult::None,
                });
                let (mut t1, ts1, _) = by_id.take_results();
                let (t2, ts2, _) = with_context.take_results();
                t1.extend(t2);
                let remote = match context {
                    Some(ctx) => RemoteParent::Context(ctx),
                    None => RemoteParent::Id(id.into()),
                };
                (result, remote, t1, ts1.or(ts2), None)
            }
            ActivityParent::Context(ctx) if ctx.is_valid() => {
                let mut opts =
                    ActivityCreationOptions::new(self, &name, kind, ctx.clone(), &tags, &links, id_format, None);
                let result = by_context(&opts);
                let (t, ts, _) = opts.take_results();
                (result, RemoteParent::Context(ctx), t, ts, None)
            }
            ActivityParent::Root => {
                let mut opts = ActivityCreationOptions::new(
                    self,
                    &name,
                    kind,
                    ActivityContext::default(),
                    &tags,
                    &links,
                    id_format,
                    None,
                );
                let result = by_context(&opts);
                let (t, ts, id) = opts.take_results();
                (result, RemoteParent::Root, t, ts, id)
            }
            // The current activity (an invalid context means the same, as in .NET). A created
            // but not started activity takes its parent at start; sampling sees today's.
            ActivityParent::Current | ActivityParent::Context(_)
                if let Some(result) = known_decision(self.decisions.load(Ordering::Acquire), ParentSeen::current()) =>
            {
                // Decided without asking (see `start_under_current`): no parent context to
                // build, no sampler to call, and nobody wants `on_started`.
                if result == ActivitySamplingResult::None || instrumentation_suppressed() {
                    return None;
                }
                decided = true;
                (result, RemoteParent::Current, Vec::new(), None, None)
            }
            ActivityParent::Current | ActivityParent::Context(_) => {
                let parent_context = current::with(|c| c.map(Activity::context)).unwrap_or_default();
                let mut opts =
                    ActivityCreationOptions::new(self, &name, kind, parent_context, &tags, &links, id_format, None);
                let result = by_context(&opts);
                let (t, ts, id) = opts.take_results();
                (result, RemoteParent::Current, t, ts, id)
            }
        };
        if result == ActivitySamplingResult::None {
            return None;
        }
        let mut tags = tags;
        tags.extend(sampling_tags);
        let activity = self.build(
            name,
            kind,
            remote,
            tags,
            links,
            (options.start_time, options.id_format),
            result,
            sampled_trace_state,
            root_trace_id,
            match (start, options.detached) {
                (false, _) => Start::Later,
                (true, false) => Start::Now,
                (true, true) => Start::NowDetached,
            },
        );
        if start && !decided {
            self.notify_started(&activity);
        }
        Some(activity)
    }

    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    fn build(
        &'static self,
        name: Cow<'static, str>,
        kind: ActivityKind,
        remote: RemoteParent,
        tags: Vec<Tag>,
        links: Vec<ActivityLink>,
        (start_time, id_format): (Option<SystemTime>, ActivityIdFormat),
        result: ActivitySamplingResult,
        trace_state: Option<TraceState>,
        root_trace_id: Option<(crate::id::TraceId, bool)>,
        start: Start,
    ) -> Activity {
        // As in .NET: a context parent's flags are taken over, and AllDataAndRecorded adds
        // `recorded`; otherwise flags are inherited at start. Unlike .NET, a propagation-only
        // activity is never `recorded` (see `preset_flags`).
        let flags = match (&remote, preset_flags(result)) {
            (RemoteParent::Context(ctx), preset) => Some(
                ctx.trace_flags
                    .with_recorded(preset.map_or(ctx.trace_flags.is_recorded(), ActivityTraceFlags::is_recorded)),
            ),
            (_, preset) => preset,
        };
        let mut new = NewActivity {
            source: self,
            name,
            kind,
            parent: remote,
            tags,
            links,
            start_time,
            id_format,
            flags,
            all_data: result >= ActivitySamplingResult::AllData,
            trace_state,
            root_trace_id,
        };
        match start {
            Start::Now => Activity::build_started(&mut new),
            Start::NowDetached => Activity::build_started_detached(&mut new),
            Start::Later => Activity::build(&mut new),
        }
    }

    pub(crate) fn notify_started(&'static self, activity: &Activity) {
        self.with_listeners::<false, _>(|listeners| {
            for listener in listeners.iter().filter(|l| l.wants_started) {
                listener.on_started(activity);
            }
        });
    }

    /// `stop`'s notification: the listeners hear of `activity` while it is still current,
    /// then `previous` is made current again. A last listener that keeps stopped activities
    /// gets them after that, and is handed the current slot's reference to `activity` (which
    /// would be released otherwise) instead of a new one.
    pub(crate) fn notify_stopped_and_restore(&'static self, activity: &Activity, previous: Option<Activity>) {
        let mut previous = Some(previous);
        self.with_listeners::<false, _>(|listeners| {
            let Some(previous) = previous.take() else {
                return;
            };
            match listeners.split_last() {
                Some((last, rest)) => {
                    for listener in rest {
                        listener.on_stopped(activity);
                    }
                    if last.keeps_stopped {
                        let slot = activity.restore_here_or_leave(previous);
                        last.on_stopped_owned(slot.unwrap_or_else(|| activity.clone()));
                    } else {
                        last.on_stopped(activity);
                        drop(activity.restore_here_or_leave(previous));
                    }
                }
                None => drop(activity.restore_here_or_leave(previous)),
            }
        });
        // Every listener detached meanwhile.
        if let Some(previous) = previous {
            drop(activity.restore_here_or_leave(previous));
        }
    }

    /// `notify_stopped`, then makes `previous` current again; `activity` (a reference nobody
    /// else will use) goes to the last listener. A last listener that keeps stopped activities
    /// gets it after `previous` is restored, which lets the current slot's reference be
    /// merged into this one without an atomic update.
    pub(crate) fn notify_stopped_owned(&'static self, mut activity: Activity, previous: Option<Activity>) {
        // Lent rather than passed to a closure: the activity and `previous` stay in this
        // function's registers instead of being stored into a closure and read back at once.
        let Some(listeners) = self.lend_listeners() else {
            activity.restore_previous(previous);
            return;
        };
        match listeners.split_last() {
            Some((last, rest)) => {
                for listener in rest {
                    listener.on_stopped(&activity);
                }
                if last.keeps_stopped {
                    activity.restore_previous(previous);
                    last.on_stopped_owned(activity);
                } else if !activity.is_detached() && current::with(|c| c.is_some_and(|c| c.ptr_eq(&activity))) {
                    last.on_stopped_owned(activity);
                    current::set(previous);
                } else {
                    activity.leave_previous_for_its_thread(previous);
                    last.on_stopped_owned(activity);
                }
            }
            None => activity.restore_previous(previous),
        }
    }

    /// At depth 0 (no set lent out): drops the cached sets if the generation moved, and
    /// caches this source's set if it is missing. `None` if the source has no listeners.
    #[inline]
    fn refresh_cache(&'static self, cache: &ListenerCache, index: usize, generation: u64) -> Option<()> {
        let sets = cache.sets.get();
        if cache.generation.get() != generation {
            // Dropping stale sets may drop the last reference to a detached listener, whose
            // `Drop` is user code that may start activities and so re-enter this cache: take
            // the vector out first and drop it with no borrow held.
            // SAFETY: at depth 0 no set is lent out, only this thread reaches `sets`, and the
            // `&mut` ends with the `take`.
            let stale = std::mem::take(unsafe { &mut *sets });
            cache.generation.set(generation);
            drop(stale);
        }
        // SAFETY: at depth 0 no set is lent out and only this thread reaches `sets`. Nothing
        // below runs user code while this borrow lives: loading a set, growing the vector
        // with `None`s and writing into an empty slot drop nothing.
        let sets = unsafe { &mut *sets };
        if sets.get(index).is_none_or(Option::is_none) {
            let set = self.listeners.load_full()?;
            if index >= sets.len() {
                sets.resize(index + 1, None);
            }
            sets[index] = Some(set);
        }
        Some(())
    }

    /// This source's listeners, lent until the returned value is dropped (`None` if there
    /// are none): [`with_listeners`](Self::with_listeners) without a closure. At depth 0 it
    /// refreshes the cache as `with_listeners` does: activities decided without the listeners
    /// (`decisions`) meet them first when they stop.
    #[inline]
    fn lend_listeners(&'static self) -> Option<LentListeners> {
        let index = self.index.load(Ordering::Relaxed) as usize;
        let cached = CACHE.try_with(|cache| {
            let generation = GENERATION.load(Ordering::Acquire);
            let depth = cache.depth.get();
            if depth == 0 {
                self.refresh_cache(cache, index, generation)?;
            } else if cache.generation.get() != generation {
                return None; // nested and stale: the source's own set below
            }
            // SAFETY: only this thread reaches `sets`; it is changed only at depth 0, and
            // the depth is raised below for as long as the set is lent.
            let sets: &Vec<Option<Arc<ListenerSet>>> = unsafe { &*cache.sets.get() };
            let set = sets.get(index)?.as_deref()?;
            cache.depth.set(depth + 1);
            Some(LentListeners {
                depth: &cache.depth,
                set: set.as_slice(),
                _owned: None,
            })
        });
        match cached {
            Ok(Some(lent)) => Some(lent),
            // Not cached, stale, or the thread is shutting down: the source's own set.
            _ => {
                let owned = self.listeners.load_full()?;
                Some(LentListeners {
                    depth: std::ptr::null(),
                    set: owned.as_slice(),
                    _owned: Some(owned),
                })
            }
        }
    }

    pub(crate) fn notify_exception(&'static self, activity: &Activity, error: &(dyn Error + '_), tags: &mut Vec<Tag>) {
        self.with_listeners::<false, _>(|listeners| {
            for listener in listeners {
                listener.on_exception(activity, error, tags);
            }
        });
    }
}
