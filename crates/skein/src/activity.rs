//! `Activity`: one unit of work in a trace (a span).

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::mem::ManuallyDrop;
use std::ptr::addr_of_mut;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::clock::Timestamp;
use crate::context::{format_traceparent, looks_like_w3c_id, parse_traceparent, ActivityContext};
use crate::current;
use crate::hierarchical;
use crate::id::{new_trace_id, ActivityTraceFlags, SpanId, TraceId};
use crate::listener::ActivitySamplingResult;
use crate::shared::Shared;
use crate::source::ActivitySource;
use crate::sync::{SetOnce, SpinGuard, SpinLock};
use crate::tag::{IntoTagValue, Tag, TagValue};
use crate::trace_state::TraceState;

use crate::inline_vec::{InlineVec, OwnsNothing};

/// What role an activity plays (OpenTelemetry span kind).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum ActivityKind {
    /// Work inside the process.
    #[default]
    Internal,
    /// Handling a request from a remote client.
    Server,
    /// A request to a remote server.
    Client,
    /// Sending a message to be processed later.
    Producer,
    /// Processing a message sent by a producer.
    Consumer,
}

/// The outcome of an activity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum ActivityStatusCode {
    /// Not set (the default).
    #[default]
    Unset,
    /// Completed successfully.
    Ok,
    /// Failed.
    Error,
}

/// The id scheme of an activity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum ActivityIdFormat {
    /// Not chosen yet: decided when the activity starts.
    #[default]
    Unknown = 0,
    /// The older `|root.1.2.` `Request-Id` format.
    Hierarchical = 1,
    /// W3C Trace Context (`00-{trace}-{span}-{flags}`), the default.
    W3C = 2,
}

impl ActivityIdFormat {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => ActivityIdFormat::Hierarchical,
            2 => ActivityIdFormat::W3C,
            _ => ActivityIdFormat::Unknown,
        }
    }
}

/// Bit 7 of the stored flags marks "chosen before start" (by the sampler or the caller).
const FLAGS_SET: u8 = 0x80;

/// `Inner::marks`, flags set once each and never cleared, read without the data lock. They
/// are set only while holding the data lock (or while no other thread can reach the
/// activity), so setting one is a plain load and store, not a read-modify-write.
///
/// The activity has a trace state of its own.
const LOCAL_TRACE_STATE: u8 = 1;
/// `Inner::marks`: the activity was stopped on a thread where it was not the current one.
/// Its saved previous activity is kept, and the thread (or task) where it is still current
/// makes that previous one current when it next looks (see `current.rs`).
const STOPPED_ELSEWHERE: u8 = 2;
/// `Inner::marks`: started without being made current (`ActivityStartOptions::detached`), so
/// stopping it leaves the current activity alone.
const DETACHED: u8 = 4;
/// `Inner::marks`: stopped (also in `ActivityData::stopped`): read without taking the lock.
const STOPPED: u8 = 8;
/// `Inner::marks`: the activity may hold heap memory (an owned name, ids or a trace state from
/// elsewhere, the boxed extra data, tags or events that own something or outgrew their inline
/// room): freeing it must run every field's drop code. Set when the activity is built or
/// started with such data, and by every change to its data that stores some (see
/// [`DataMut`]). Without it, freeing reads only the first cache line of the block (the count,
/// the marks and the parent), which matters because activities are usually freed long after
/// they ran, in batches, when their memory has gone cold.
const OWNS_HEAP: u8 = 16;

static DEFAULT_ID_FORMAT: AtomicU8 = AtomicU8::new(ActivityIdFormat::W3C as u8);
static FORCE_DEFAULT_ID_FORMAT: AtomicBool = AtomicBool::new(false);

/// A timestamped event inside an activity (e.g. a log line or an exception).
#[derive(Clone, Debug, PartialEq)]
pub struct ActivityEvent {
    /// The event name.
    pub name: Cow<'static, str>,
    /// When it happened.
    pub timestamp: Timestamp,
    /// Its tags: borrowed when the same ones recur (see
    /// [`with_static_tags`](Self::with_static_tags)), else owned.
    pub tags: Cow<'static, [Tag]>,
}

impl ActivityEvent {
    /// An event that happens now, without tags.
    #[inline]
    pub fn new(name: impl Into<Cow<'static, str>>) -> Self {
        ActivityEvent {
            name: name.into(),
            timestamp: Timestamp::now(),
            tags: Cow::Borrowed(&[]),
        }
    }

    /// Adds tags to the event.
    pub fn with_tags(mut self, tags: impl IntoIterator<Item = Tag>) -> Self {
        if self.tags.is_empty() {
            // Collecting a vector's own iterator keeps its allocation.
            self.tags = Cow::Owned(tags.into_iter().collect());
        } else {
            self.tags.to_mut().extend(tags);
        }
        self
    }

    /// Gives the event tags that many events share (an instrumentation's fixed tags for a
    /// call site, say), referenced rather than copied: an event with borrowed name and tags
    /// allocates nothing, and its activity is freed without running drop code. Tags added
    /// later with [`with_tags`](Self::with_tags) copy them first.
    #[inline]
    pub fn with_static_tags(mut self, tags: &'static [Tag]) -> Self {
        if self.tags.is_empty() {
            self.tags = Cow::Borrowed(tags);
        } else {
            self.tags.to_mut().extend_from_slice(tags);
        }
        self
    }

    /// Sets the event's timestamp (a [`SystemTime`] or a [`Timestamp`]).
    pub fn with_timestamp(mut self, timestamp: impl Into<Timestamp>) -> Self {
        self.timestamp = timestamp.into();
        self
    }
}

impl OwnsNothing for ActivityEvent {
    #[inline]
    fn owns_nothing(&self) -> bool {
        matches!(self.name, Cow::Borrowed(_)) && matches!(self.tags, Cow::Borrowed(_))
    }
}

/// A link from an activity to another activity's context, e.g. the connection a request
/// used or the messages a batch consumed.
#[derive(Clone, Debug, PartialEq)]
pub struct ActivityLink {
    /// The linked context.
    pub context: ActivityContext,
    /// Tags describing the link.
    pub tags: Vec<Tag>,
}

impl ActivityLink {
    /// A link without tags.
    pub fn new(context: ActivityContext) -> Self {
        ActivityLink {
            context,
            tags: Vec::new(),
        }
    }

    /// Adds tags to the link.
    pub fn with_tags(mut self, tags: impl IntoIterator<Item = Tag>) -> Self {
        if self.tags.is_empty() {
            // Collecting a vector's own iterator keeps its allocation.
            self.tags = tags.into_iter().collect();
        } else {
            self.tags.extend(tags);
        }
        self
    }
}

/// Where an activity's parent was given from outside the in-process chain.
#[derive(Clone, Debug, Default)]
pub(crate) enum RemoteParent {
    /// Use the current activity at start.
    #[default]
    Current,
    /// Explicitly no parent: a new trace.
    Root,
    /// A W3C context (remote or from another activity).
    Context(ActivityContext),
    /// An id string from another process that is not a usable W3C id (e.g. `Request-Id`).
    Id(Box<str>),
}

impl RemoteParent {
    /// True if a parent was given or set (a context or an id).
    fn is_set(&self) -> bool {
        matches!(self, RemoteParent::Context(_) | RemoteParent::Id(_))
    }

    /// The parent's id string (a context's as a `traceparent` with `flags`).
    fn id(&self, flags: ActivityTraceFlags) -> Option<String> {
        match self {
            RemoteParent::Id(id) => Some(id.to_string()),
            RemoteParent::Context(ctx) if ctx.is_valid() => Some(format_traceparent(ctx.trace_id, ctx.span_id, flags)),
            _ => None,
        }
    }

    /// The trace id and span id a child started under this parent takes from it (what
    /// `compute_start` does; invalid ones for no parent and a W3C-looking id that does not
    /// parse).
    fn ids(&self) -> (TraceId, SpanId) {
        match self {
            RemoteParent::Context(ctx) if ctx.is_valid() => (ctx.trace_id, ctx.span_id),
            RemoteParent::Id(id) if !looks_like_w3c_id(id) => {
                (hierarchical::derived_trace_id(id), hierarchical::derived_span_id(id))
            }
            _ => (TraceId::INVALID, SpanId::INVALID),
        }
    }
}

/// What is fixed when the activity starts. (Fields that own something first: see `Inner`.)
#[repr(C)]
struct Started {
    parent: Option<Activity>,
    /// The full id of a hierarchical activity.
    hierarchical_id: Option<Box<str>>,
    /// The trace state of the parent chain at start.
    inherited_trace_state: TraceState,
    /// The parent given from outside the in-process chain, and its flags.
    remote: RemoteParent,
    trace_id: TraceId,
    span_id: SpanId,
    parent_span_id: SpanId,
    format: ActivityIdFormat,
    parent_flags: ActivityTraceFlags,
}

/// Choices made before start, for activities created without starting them.
#[derive(Default)]
struct Pending {
    remote: RemoteParent,
    parent_flags: ActivityTraceFlags,
    requested_format: ActivityIdFormat,
    root_trace_id: Option<(TraceId, bool)>,
}

/// The less common data, boxed so that a typical activity stays small.
#[derive(Default)]
struct Extra {
    display_name: Option<Cow<'static, str>>,
    status_description: Option<Cow<'static, str>>,
    links: Vec<ActivityLink>,
    /// Local baggage, oldest first (lookups walk it backwards: `add_baggage` prepends).
    baggage: Vec<(Cow<'static, str>, Cow<'static, str>)>,
    trace_state: Option<TraceState>,
    custom_properties: Vec<(Cow<'static, str>, Arc<dyn Any + Send + Sync>)>,
    pending: Option<Pending>,
}

/// An activity's shared state. The layout is fixed so that what starting, stopping and
/// freeing an activity touch shares a few cache lines at the front (freeing often happens long
/// after the activity ran, when its memory has gone cold), and the inline room for tags and
/// events comes last.
#[repr(C)]
pub(crate) struct Inner {
    kind: ActivityKind,
    flags: AtomicU8,
    all_data: AtomicBool,
    /// [`LOCAL_TRACE_STATE`], [`STOPPED`], [`OWNS_HEAP`]…: set once each, never cleared.
    marks: AtomicU8,
    child_counter: AtomicU32,
    /// Right after the block's reference count, with the marks before it, so that freeing a
    /// plain activity (no [`OWNS_HEAP`]) reads only the parent reference besides them.
    started: SetOnce<Started>,
    source: &'static ActivitySource,
    operation_name: Cow<'static, str>,
    state: SpinLock<ActivityData>,
}

/// True if freeing an activity with these fields frees heap memory (see
/// [`Activity::owns_heap_memory`]); otherwise it holds nothing to drop but references to
/// other activities.
fn owns_heap_memory(operation_name_is_owned: bool, started: Option<&Started>, data: &ActivityData) -> bool {
    operation_name_is_owned || started.is_some_and(Started::owns_heap_memory) || data.owns_heap_memory()
}

impl Started {
    /// True if these start data hold heap memory (ids or a trace state from elsewhere).
    #[inline]
    fn owns_heap_memory(&self) -> bool {
        let remote = match &self.remote {
            RemoteParent::Id(_) => true,
            RemoteParent::Context(context) => !context.trace_state.is_empty(),
            RemoteParent::Current | RemoteParent::Root => false,
        };
        remote || self.hierarchical_id.is_some() || !self.inherited_trace_state.is_empty()
    }
}

impl Inner {
    /// How far into an `Inner` freeing an activity without [`OWNS_HEAP`] reads: its marks,
    /// whether it started, and its parent reference (the first field of its start data).
    pub(crate) const PLAIN_RELEASE_READS: usize = std::mem::offset_of!(Inner, started)
        + SetOnce::<Started>::VALUE_OFFSET
        + std::mem::size_of::<Option<Activity>>();

    /// Drops the activity at `this`, whose last reference is gone. The usual activity owns no
    /// heap memory: then only its references to its parent and previous activity are
    /// released, instead of running the drop code of every field.
    ///
    /// # Safety
    /// `this` must point to an initialised `Inner` that nothing else references; it is left
    /// dropped.
    pub(crate) unsafe fn release(this: *mut Inner) {
        // SAFETY: guaranteed by the caller.
        unsafe {
            let inner = &mut *this;
            let marks = *inner.marks.get_mut();
            if marks & OWNS_HEAP != 0 {
                std::ptr::drop_in_place(this);
                return;
            }
            // Everything else is static strings, numbers and empty containers, which need no
            // drop (`OWNS_HEAP` is what guarantees it).
            debug_assert!(
                !owns_heap_memory(
                    matches!(inner.operation_name, Cow::Owned(_)),
                    inner.started.get_mut().as_deref(),
                    inner.state.get_mut()
                ),
                "an activity holding heap memory lacks the OWNS_HEAP mark"
            );
            // A stopped activity gave its saved previous activity back when it stopped,
            // unless it stopped away from where it was current (which keeps it).
            if marks & STOPPED == 0 || marks & STOPPED_ELSEWHERE != 0 {
                std::ptr::drop_in_place(&mut inner.state.get_mut().previous);
            } else {
                debug_assert!(inner.state.get_mut().previous.is_none());
            }
            if let Some(started) = inner.started.get_mut() {
                std::ptr::drop_in_place(&mut started.parent);
            }
        }
    }

    /// Takes the parent reference out of the activity at `this`, whose last reference is
    /// gone (`release` then finds none to release).
    ///
    /// # Safety
    /// As for [`release`](Self::release), before it.
    pub(crate) unsafe fn take_parent(this: *mut Inner) -> Option<Activity> {
        // SAFETY: guaranteed by the caller: nothing else references the activity.
        unsafe { (*this).started.get_mut().and_then(|started| started.parent.take()) }
    }
}

/// Sets `flag` in `marks` (an activity's); the data lock is held (`_held` says so), which
/// makes a plain load and store enough (see [`LOCAL_TRACE_STATE`]).
#[inline]
fn set_mark(marks: &AtomicU8, flag: u8, _held: &ActivityData) {
    marks.store(marks.load(Ordering::Relaxed) | flag, Ordering::Release);
}

/// An activity's data locked for reading.
struct DataRef<'a>(SpinGuard<'a, ActivityData>);

impl std::ops::Deref for DataRef<'_> {
    type Target = ActivityData;
    #[inline]
    fn deref(&self) -> &ActivityData {
        &self.0
    }
}

/// An activity's data locked for a change. Every change goes through one, so that an
/// activity whose data come to hold heap memory is marked [`OWNS_HEAP`] before the lock is
/// released (the mark is what lets freeing skip the drop code of every field).
struct DataMut<'a> {
    guard: SpinGuard<'a, ActivityData>,
    marks: &'a AtomicU8,
}

impl std::ops::Deref for DataMut<'_> {
    type Target = ActivityData;
    #[inline]
    fn deref(&self) -> &ActivityData {
        &self.guard
    }
}

impl std::ops::DerefMut for DataMut<'_> {
    #[inline]
    fn deref_mut(&mut self) -> &mut ActivityData {
        &mut self.guard
    }
}

impl Drop for DataMut<'_> {
    #[inline]
    fn drop(&mut self) {
        // Before the guard (a later field) unlocks.
        if self.guard.owns_heap_memory() && self.marks.load(Ordering::Relaxed) & OWNS_HEAP == 0 {
            set_mark(self.marks, OWNS_HEAP, &self.guard);
        }
    }
}

/// The mutable data of an activity: read it all at once with [`Activity::with_data`]
/// (exporters do this once per stopped activity).
#[repr(C)]
pub struct ActivityData {
    start: Timestamp,
    end: Timestamp,
    previous: Option<Activity>,
    extra: Option<Box<Extra>>,
    status: ActivityStatusCode,
    stopped: bool,
    // Inline room for the common case keeps a typical activity to one allocation.
    events: InlineVec<ActivityEvent, 1>,
    tags: InlineVec<Tag, 4>,
}

impl ActivityData {
    /// True if these data hold heap memory (the extra data; tags or events that own
    /// something or outgrew their inline room).
    #[inline]
    fn owns_heap_memory(&self) -> bool {
        self.extra.is_some() || !self.tags.owns_nothing() || !self.events.owns_nothing()
    }

    fn extra(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Default::default)
    }

    /// The display name, if set (else the operation name is used).
    pub fn display_name(&self) -> Option<&str> {
        self.extra.as_ref()?.display_name.as_deref()
    }
    /// The status code.
    pub fn status(&self) -> ActivityStatusCode {
        self.status
    }
    /// The status description (only kept for `Error`).
    pub fn status_description(&self) -> Option<&str> {
        self.extra.as_ref()?.status_description.as_deref()
    }
    /// The tags, in insertion order.
    pub fn tags(&self) -> &[Tag] {
        &self.tags
    }
    /// The events, in insertion order.
    pub fn events(&self) -> &[ActivityEvent] {
        &self.events
    }
    /// The links, in insertion order.
    pub fn links(&self) -> &[ActivityLink] {
        self.extra.as_ref().map_or(&[], |e| &e.links)
    }
    /// The trace state set on this activity itself (not inherited).
    pub fn local_trace_state(&self) -> Option<&TraceState> {
        self.extra.as_ref()?.trace_state.as_ref()
    }
    /// Start time, nanoseconds since the Unix epoch (0 before start).
    pub fn start_time_unix_nanos(&self) -> u64 {
        self.start.unix_nanos()
    }
    /// End time, nanoseconds since the Unix epoch (0 while running).
    pub fn end_time_unix_nanos(&self) -> u64 {
        self.end.unix_nanos()
    }
}

/// One unit of work in a distributed trace (an OpenTelemetry span), with .NET `Activity`
/// semantics.
///
/// Activities are made by an [`ActivitySource`] when a listener wants them. The value returned
/// by `start_activity` *owns* the activity: dropping it stops the activity (like `using` in
/// C#). Clones — such as the one [`Activity::current`] returns — are references: dropping them
/// does nothing.
///
/// ```
/// use skein::{Activity, ActivityKind, ActivitySource};
///
/// static SOURCE: ActivitySource = ActivitySource::new("checkout").with_version("1.0");
///
/// // Without a listener nothing is created and nothing is allocated.
/// assert!(SOURCE.start_activity("charge", ActivityKind::Internal).is_none());
///
/// // A hand-made activity (as with `new Activity(name)` in .NET):
/// let activity = Activity::new("manual").start();
/// activity.set_tag("order.id", 42);
/// assert_eq!(Activity::current().unwrap().operation_name(), "manual");
/// drop(activity); // stops it and restores the previous current activity
/// assert!(Activity::current().is_none());
/// ```
pub struct Activity {
    inner: ManuallyDrop<Shared>,
    owner: bool,
}

impl Clone for Activity {
    /// A reference to the same activity; dropping it does not stop the activity.
    fn clone(&self) -> Self {
        Activity {
            inner: ManuallyDrop::new((*self.inner).clone()),
            owner: false,
        }
    }
}

impl Drop for Activity {
    fn drop(&mut self) {
        // SAFETY: `inner` is taken exactly once, here, and never used again.
        let inner = unsafe { ManuallyDrop::take(&mut self.inner) };
        // An owner stopped already (`stop()` called) has nothing left to do but let go: the
        // mark says so without the lock that stopping takes.
        if self.owner && inner.marks.load(Ordering::Acquire) & STOPPED == 0 && inner.started.get().is_some() {
            // The owner's reference goes to the last listener instead of being released
            // right after that listener took its own.
            let reference = Activity {
                inner: ManuallyDrop::new(inner),
                owner: false,
            };
            reference.stop_handing_over();
        }
    }
}

impl PartialEq for Activity {
    fn eq(&self, other: &Self) -> bool {
        Shared::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for Activity {}

impl fmt::Debug for Activity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Activity")
            .field("operation_name", &self.operation_name())
            .field("id", &self.id())
            .field("kind", &self.kind())
            .finish()
    }
}

/// Everything needed to build an activity; filled by the source after sampling.
pub(crate) struct NewActivity {
    pub source: &'static ActivitySource,
    pub name: Cow<'static, str>,
    pub kind: ActivityKind,
    pub parent: RemoteParent,
    pub tags: Vec<Tag>,
    pub links: Vec<ActivityLink>,
    pub start_time: Option<SystemTime>,
    pub id_format: ActivityIdFormat,
    pub flags: Option<ActivityTraceFlags>,
    pub all_data: bool,
    pub trace_state: Option<TraceState>,
    /// A trace id the samplers already made for a new root (so both agree).
    pub root_trace_id: Option<(TraceId, bool)>,
}

/// Separates the pieces of an `std::error::Error` for `add_exception`.
struct ErrorRef<'a, E: ?Sized>(&'a E);

impl<E: std::error::Error + ?Sized> fmt::Debug for ErrorRef<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0, f)
    }
}
impl<E: std::error::Error + ?Sized> fmt::Display for ErrorRef<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.0, f)
    }
}
impl<E: std::error::Error + ?Sized> std::error::Error for ErrorRef<'_, E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// When a new activity starts.
enum StartWith {
    /// Later: no start data yet, and these preset flags.
    Later(u8),
    /// Now, under the activity that was current (`previous`), which it replaces.
    Now,
    /// Now, under `previous` (a reference to the current activity, which stays current).
    NowDetached,
}

/// Allocates an activity and writes its fields in place: a started activity is published
/// complete, and nothing large is copied. An activity started (not detached) comes back with a
/// second reference, for the current-activity slot.
#[inline(always)]
fn allocate(new: &mut NewActivity, start_with: StartWith, mut previous: Option<Activity>) -> (Shared, Option<Shared>) {
    let parent_flags = match &new.parent {
        RemoteParent::Context(ctx) => ctx.trace_flags,
        _ => ActivityTraceFlags::NONE,
    };
    let started_now = matches!(start_with, StartWith::Now | StartWith::NowDetached);
    let detached = matches!(start_with, StartWith::NowDetached);
    let start = match new.start_time {
        Some(t) => Timestamp::from(t),
        None if started_now => Timestamp::now(),
        None => Timestamp::UNSET,
    };
    let remote = std::mem::take(&mut new.parent);
    let (pending_remote, pending_root) = if started_now {
        (RemoteParent::Current, None)
    } else {
        (remote.clone(), new.root_trace_id)
    };
    let extra = {
        let pending = (!started_now).then_some(Pending {
            parent_flags,
            remote: pending_remote,
            requested_format: new.id_format,
            root_trace_id: pending_root,
        });
        (pending.is_some() || !new.links.is_empty() || new.trace_state.is_some()).then(|| {
            Box::new(Extra {
                links: std::mem::take(&mut new.links),
                trace_state: new.trace_state.clone(),
                pending,
                ..Default::default()
            })
        })
    };
    let uninit = Shared::new_uninit();
    let p = uninit.as_mut_ptr();
    // SAFETY: `p` points to the new, unshared block; every field is written once here, then
    // the block is published with `assume_init`.
    unsafe {
        let (flags, started_owns_heap) = match start_with {
            StartWith::Now | StartWith::NowDetached => {
                let started = SetOnce::write_set_with(addr_of_mut!((*p).started));
                let flags = compute_start(
                    started,
                    &mut previous,
                    detached,
                    remote,
                    new.id_format,
                    parent_flags,
                    new.root_trace_id,
                    new.flags,
                );
                (flags.bits() | FLAGS_SET, (*started).owns_heap_memory())
            }
            StartWith::Later(preset) => {
                addr_of_mut!((*p).started).write(SetOnce::empty());
                (preset, false)
            }
        };
        write_fields(
            p,
            Fields {
                source: new.source,
                name: std::mem::take(&mut new.name),
                kind: new.kind,
                flags,
                all_data: new.all_data,
                has_local_trace_state: new.trace_state.is_some(),
                detached,
                started_owns_heap,
                tags: std::mem::take(&mut new.tags),
                start,
                // A detached activity took `previous` as its parent: nothing to restore.
                previous: if detached { None } else { previous },
                extra,
            },
        );
        if started_now && !detached {
            let (a, b) = uninit.assume_init_twice();
            (a, Some(b))
        } else {
            (uninit.assume_init(), None)
        }
    }
}

/// The fields of a new activity besides its start data.
struct Fields {
    source: &'static ActivitySource,
    name: Cow<'static, str>,
    kind: ActivityKind,
    /// The stored flags byte (with `FLAGS_SET`).
    flags: u8,
    all_data: bool,
    has_local_trace_state: bool,
    detached: bool,
    /// The start data written (if any) hold heap memory ([`Started::owns_heap_memory`]).
    started_owns_heap: bool,
    tags: Vec<Tag>,
    start: Timestamp,
    previous: Option<Activity>,
    extra: Option<Box<Extra>>,
}

/// Writes everything but `started` into a new activity's block.
///
/// # Safety
/// `p` must point to an unshared, uninitialised `Inner`.
#[inline(always)]
unsafe fn write_fields(p: *mut Inner, fields: Fields) {
    // SAFETY: guaranteed by the caller; each field is written once.
    unsafe {
        let owns_heap = fields.started_owns_heap || matches!(fields.name, Cow::Owned(_)) || fields.extra.is_some();
        addr_of_mut!((*p).source).write(fields.source);
        addr_of_mut!((*p).operation_name).write(fields.name);
        addr_of_mut!((*p).kind).write(fields.kind);
        addr_of_mut!((*p).flags).write(AtomicU8::new(fields.flags));
        addr_of_mut!((*p).all_data).write(AtomicBool::new(fields.all_data));
        addr_of_mut!((*p).child_counter).write(AtomicU32::new(0));
        let data = SpinLock::write_unlocked(addr_of_mut!((*p).state));
        let tags_own = if fields.tags.is_empty() {
            InlineVec::write_empty(addr_of_mut!((*data).tags));
            false
        } else {
            InlineVec::write_from_vec(addr_of_mut!((*data).tags), fields.tags);
            !(*data).tags.owns_nothing()
        };
        let marks = if fields.has_local_trace_state {
            LOCAL_TRACE_STATE
        } else {
            0
        } | if fields.detached { DETACHED } else { 0 }
            | if owns_heap || tags_own { OWNS_HEAP } else { 0 };
        addr_of_mut!((*p).marks).write(AtomicU8::new(marks));
        InlineVec::write_empty(addr_of_mut!((*data).events));
        addr_of_mut!((*data).start).write(fields.start);
        addr_of_mut!((*data).end).write(Timestamp::UNSET);
        addr_of_mut!((*data).status).write(ActivityStatusCode::Unset);
        addr_of_mut!((*data).stopped).write(false);
        addr_of_mut!((*data).previous).write(fields.previous);
        addr_of_mut!((*data).extra).write(fields.extra);
    }
}

/// The trace flags a sampling result sets whatever the parent's: `recorded` for
/// AllDataAndRecorded; for a propagation-only activity none, so that the services downstream
/// do not record a trace this one does not (as OpenTelemetry's SDKs propagate a dropped
/// span; .NET would pass the parent's `recorded` on); otherwise the parent's (`None`).
#[inline]
pub(crate) fn preset_flags(result: ActivitySamplingResult) -> Option<ActivityTraceFlags> {
    match result {
        ActivitySamplingResult::AllDataAndRecorded => Some(ActivityTraceFlags::RECORDED),
        ActivitySamplingResult::PropagationData => Some(ActivityTraceFlags::NONE),
        _ => None,
    }
}

/// The trace flags of an activity starting now: the sampler's (or caller's) `preset` made
/// before start, else the parent's `inherited` ones; the level-2 random bit always follows how
/// the trace id was made (`random_root`, or the parent's bit).
#[inline(always)]
fn start_flags(
    inherited: ActivityTraceFlags,
    preset: Option<ActivityTraceFlags>,
    random_root: bool,
) -> ActivityTraceFlags {
    let inherited = inherited & ActivityTraceFlags::KNOWN;
    let mut flags = preset.map_or(inherited, |p| p & ActivityTraceFlags::KNOWN);
    if random_root || inherited.is_random() {
        flags |= ActivityTraceFlags::RANDOM;
    }
    flags
}

/// True if an activity started now under `current` (or as a root when there is none), with
/// no format requested, gets a W3C id: what [`Activity::start_w3c_under_current`] handles.
#[inline]
pub(crate) fn next_under_is_w3c(current: Option<&Activity>) -> bool {
    let default_is_w3c = Activity::default_id_format() == ActivityIdFormat::W3C;
    match current {
        // A forced default applies to every activity, but a parent must still be started.
        Some(p) if Activity::force_default_id_format() => default_is_w3c && p.inner.started.get().is_some(),
        Some(p) => p.inner.started.get().is_some_and(|s| s.format == ActivityIdFormat::W3C),
        None => default_is_w3c,
    }
}

impl Activity {
    // ---- creation -------------------------------------------------------------------------

    /// The source's hot path: starts a W3C activity under the current activity (or a new
    /// root), without creation tags, links, an explicit time or sampler output, writing the
    /// block directly. Only when [`next_under_is_w3c`] holds for the current activity; the
    /// general path (`build_started`) makes the same activity, with more steps.
    #[inline(always)]
    pub(crate) fn start_w3c_under_current(
        source: &'static ActivitySource,
        name: Cow<'static, str>,
        kind: ActivityKind,
        result: ActivitySamplingResult,
        root_trace_id: Option<(TraceId, bool)>,
    ) -> Activity {
        let previous = current::take();
        let (trace_id, parent_span_id, inherited, inherited_trace_state, random_root) = match &previous {
            Some(p) => {
                let s = p.inner.started.get();
                let (trace_id, span_id) = s.map_or((TraceId::INVALID, SpanId::INVALID), |s| (s.trace_id, s.span_id));
                (trace_id, span_id, p.trace_flags(), p.trace_state(), false)
            }
            None => {
                let (id, random) = root_trace_id.unwrap_or_else(new_trace_id);
                (id, SpanId::INVALID, ActivityTraceFlags::NONE, TraceState::EMPTY, random)
            }
        };
        // `build` presets the flags (the general path does the same): `recorded` for
        // AllDataAndRecorded, none for propagation-only activities.
        let flags = start_flags(inherited, preset_flags(result), random_root);
        let start = Timestamp::now();
        let uninit = Shared::new_uninit();
        let p = uninit.as_mut_ptr();
        // SAFETY: `p` points to the new, unshared block; every field is written once here,
        // then the block is published with `assume_init_twice`.
        let started_owns_heap = !inherited_trace_state.is_empty();
        let (inner, slot) = unsafe {
            SetOnce::write_set_with(addr_of_mut!((*p).started)).write(Started {
                format: ActivityIdFormat::W3C,
                trace_id,
                span_id: SpanId::random(),
                parent_span_id,
                parent: previous.clone(),
                hierarchical_id: None,
                inherited_trace_state,
                remote: RemoteParent::Current,
                parent_flags: ActivityTraceFlags::NONE,
            });
            write_fields(
                p,
                Fields {
                    source,
                    name,
                    kind,
                    flags: flags.bits() | FLAGS_SET,
                    all_data: result >= ActivitySamplingResult::AllData,
                    has_local_trace_state: false,
                    detached: false,
                    started_owns_heap,
                    tags: Vec::new(),
                    start,
                    previous,
                    extra: None,
                },
            );
            uninit.assume_init_twice()
        };
        Activity::publish_started(inner, Some(slot))
    }

    /// The owner's handle of a just-built activity, after making `slot` (its second
    /// reference, if it was started) the thread's current activity.
    #[inline(always)]
    fn publish_started(inner: Shared, slot: Option<Shared>) -> Activity {
        current::set(slot.map(|inner| Activity {
            inner: ManuallyDrop::new(inner),
            owner: false,
        }));
        Activity {
            inner: ManuallyDrop::new(inner),
            owner: true,
        }
    }

    /// A new, not yet started activity from no source (as `new Activity(name)` in .NET): it
    /// requests all data and is reported to listeners of the unnamed source.
    pub fn new(operation_name: impl Into<Cow<'static, str>>) -> Activity {
        let source = ActivitySource::unnamed();
        // Registers the unnamed source on first use, so listeners that want it hear of it.
        source.has_listeners();
        Activity::build(&mut NewActivity {
            source,
            name: operation_name.into(),
            kind: ActivityKind::Internal,
            parent: RemoteParent::Current,
            tags: Vec::new(),
            links: Vec::new(),
            start_time: None,
            id_format: ActivityIdFormat::Unknown,
            flags: None,
            all_data: true,
            trace_state: None,
            root_trace_id: None,
        })
    }

    /// A not yet started activity.
    pub(crate) fn build(new: &mut NewActivity) -> Activity {
        let preset = new.flags.map_or(0, |f| f.bits() | FLAGS_SET);
        let (inner, _) = allocate(new, StartWith::Later(preset), None);
        Activity {
            inner: ManuallyDrop::new(inner),
            owner: true,
        }
    }

    /// Builds and starts an activity in one go (the source's hot path): the ids are made
    /// in place before the activity is published. The caller notifies the listeners.
    #[inline(always)]
    pub(crate) fn build_started(new: &mut NewActivity) -> Activity {
        let (inner, slot) = allocate(new, StartWith::Now, current::take());
        Activity::publish_started(inner, slot)
    }

    /// Builds and starts an activity under the current one without making it current.
    pub(crate) fn build_started_detached(new: &mut NewActivity) -> Activity {
        let (inner, _) = allocate(new, StartWith::NowDetached, current::get());
        Activity {
            inner: ManuallyDrop::new(inner),
            owner: true,
        }
    }

    /// Sets `flag` in the marks; the data lock is held (`_held` says so), which makes a plain
    /// load and store enough (see [`LOCAL_TRACE_STATE`]).
    #[inline]
    fn mark(&self, flag: u8, held: &ActivityData) {
        set_mark(&self.inner.marks, flag, held);
    }

    /// True if started without being made current; see [`DETACHED`].
    #[inline]
    pub(crate) fn is_detached(&self) -> bool {
        self.inner.marks.load(Ordering::Relaxed) & DETACHED != 0
    }

    /// The data, locked for reading.
    #[inline]
    fn data(&self) -> DataRef<'_> {
        DataRef(self.inner.state.lock())
    }

    /// The data, locked for a change (see [`DataMut`]).
    #[inline]
    fn data_mut(&self) -> DataMut<'_> {
        DataMut {
            guard: self.inner.state.lock(),
            marks: &self.inner.marks,
        }
    }

    /// Reads all mutable data under one lock.
    pub fn with_data<R>(&self, f: impl FnOnce(&ActivityData) -> R) -> R {
        f(&self.data())
    }

    // ---- identity ---------------------------------------------------------------------------

    /// The source that made this activity.
    pub fn source(&self) -> &'static ActivitySource {
        self.inner.source
    }

    /// The operation name given at creation.
    pub fn operation_name(&self) -> &str {
        &self.inner.operation_name
    }

    /// The display name: set explicitly, else the operation name.
    pub fn display_name(&self) -> String {
        self.data()
            .display_name()
            .unwrap_or(&self.inner.operation_name)
            .to_owned()
    }

    /// Changes the display name (e.g. `GET /orders/{id}` once a route matched).
    pub fn set_display_name(&self, name: impl Into<Cow<'static, str>>) -> &Self {
        self.data_mut().extra().display_name = Some(name.into());
        self
    }

    /// The kind.
    pub fn kind(&self) -> ActivityKind {
        self.inner.kind
    }

    fn with_pending<R>(&self, f: impl FnOnce(&mut Pending) -> R) -> Option<R> {
        if self.inner.started.get().is_some() {
            return None;
        }
        self.data_mut().extra.as_mut()?.pending.as_mut().map(f)
    }

    /// The id format (`Unknown` before start unless one was requested).
    pub fn id_format(&self) -> ActivityIdFormat {
        match self.inner.started.get() {
            Some(s) => s.format,
            None => self.with_pending(|p| p.requested_format).unwrap_or_default(),
        }
    }

    /// Chooses the id format before start (ignored once started).
    pub fn set_id_format(&self, format: ActivityIdFormat) -> &Self {
        self.with_pending(|p| p.requested_format = format);
        self
    }

    /// The full id: the W3C `traceparent` form, or the hierarchical id. `None` before start.
    pub fn id(&self) -> Option<String> {
        let s = self.inner.started.get()?;
        Some(match &s.hierarchical_id {
            Some(id) => id.to_string(),
            None => format_traceparent(s.trace_id, s.span_id, self.trace_flags()),
        })
    }

    /// The trace id. Hierarchical activities get one derived from their root id, so they can
    /// be exported and still join up across processes.
    ///
    /// Before start, the trace id the parent set with [`set_parent_id`](Self::set_parent_id)
    /// or [`set_parent_context`](Self::set_parent_context) gives (invalid if none).
    pub fn trace_id(&self) -> TraceId {
        match self.inner.started.get() {
            Some(s) => s.trace_id,
            None => self.with_pending(|p| p.remote.ids().0).unwrap_or(TraceId::INVALID),
        }
    }

    /// The span id (derived from the id for hierarchical activities).
    pub fn span_id(&self) -> SpanId {
        self.inner.started.get().map_or(SpanId::INVALID, |s| s.span_id)
    }

    /// The parent's span id (invalid for a root).
    /// Before start, the one of a parent set with [`set_parent_id`](Self::set_parent_id) or
    /// [`set_parent_context`](Self::set_parent_context).
    pub fn parent_span_id(&self) -> SpanId {
        match self.inner.started.get() {
            Some(s) => s.parent_span_id,
            None => self.with_pending(|p| p.remote.ids().1).unwrap_or(SpanId::INVALID),
        }
    }

    /// The in-process parent, if any.
    pub fn parent(&self) -> Option<Activity> {
        self.inner.started.get().and_then(|s| s.parent.clone())
    }

    /// The parent's id: the remote id it was started from, or the in-process parent's id.
    /// Before start, the parent id set with [`set_parent_id`](Self::set_parent_id) or
    /// [`set_parent_context`](Self::set_parent_context).
    pub fn parent_id(&self) -> Option<String> {
        let Some(s) = self.inner.started.get() else {
            return self.with_pending(|p| p.remote.id(p.parent_flags)).flatten();
        };
        s.remote
            .id(s.parent_flags)
            .or_else(|| s.parent.as_ref().and_then(Activity::id))
    }

    /// The root id: the trace id of a W3C activity, the root part of a hierarchical one.
    /// Before start, the root of the parent id, if one was set (as .NET).
    pub fn root_id(&self) -> Option<String> {
        let Some(s) = self.inner.started.get() else {
            return self.parent_id().map(|id| hierarchical::root_of(&id).to_owned());
        };
        Some(match &s.hierarchical_id {
            Some(id) => hierarchical::root_of(id).to_owned(),
            None => s.trace_id.to_hex(),
        })
    }

    /// True if the parent came from another process.
    pub fn has_remote_parent(&self) -> bool {
        let remote_is = |r: &RemoteParent| match r {
            RemoteParent::Context(ctx) => ctx.is_remote,
            RemoteParent::Id(_) => true,
            _ => false,
        };
        match self.inner.started.get() {
            Some(s) => remote_is(&s.remote),
            None => self.with_pending(|p| remote_is(&p.remote)).unwrap_or(false),
        }
    }

    /// Sets a remote parent id (`traceparent` or `Request-Id`) before start. As in .NET, it
    /// is ignored once started, when a parent was already given or set (the first one wins),
    /// and when empty.
    pub fn set_parent_id(&self, parent_id: &str) -> &Self {
        if parent_id.is_empty() {
            return self;
        }
        self.with_pending(|p| {
            if p.remote.is_set() {
                return;
            }
            p.remote = match parse_traceparent(parent_id) {
                Ok((trace_id, span_id, flags)) => {
                    p.parent_flags = flags;
                    RemoteParent::Context(ActivityContext::new(trace_id, span_id, flags, TraceState::EMPTY, true))
                }
                Err(_) => RemoteParent::Id(parent_id.into()),
            };
        });
        self
    }

    /// Sets a parent context before start; ignored like [`set_parent_id`](Self::set_parent_id)
    /// once started or when a parent was already given or set.
    pub fn set_parent_context(&self, context: ActivityContext) -> &Self {
        self.with_pending(|p| {
            if p.remote.is_set() {
                return;
            }
            p.parent_flags = context.trace_flags;
            p.remote = RemoteParent::Context(context);
        });
        self
    }

    /// The W3C context (ids, flags, trace state; `is_remote` false).
    #[inline]
    pub fn context(&self) -> ActivityContext {
        match self.inner.started.get() {
            Some(s) => ActivityContext::new(s.trace_id, s.span_id, self.trace_flags(), self.trace_state(), false),
            None => ActivityContext::default(),
        }
    }

    /// The W3C trace flags.
    pub fn trace_flags(&self) -> ActivityTraceFlags {
        ActivityTraceFlags::from_bits(self.inner.flags.load(Ordering::Relaxed) & !FLAGS_SET)
    }

    /// Replaces the W3C trace flags.
    pub fn set_trace_flags(&self, flags: ActivityTraceFlags) -> &Self {
        self.inner
            .flags
            .store(flags.bits() & !FLAGS_SET | FLAGS_SET, Ordering::Relaxed);
        self
    }

    /// True if the `recorded` (sampled) flag is set.
    pub fn recorded(&self) -> bool {
        self.trace_flags().is_recorded()
    }

    /// `Some(recorded)` for a started activity with a W3C id: a local parent whose recorded
    /// flag decides its children's sampling for listeners that say so
    /// ([`crate::ActivityListener::local_parent_decision`]).
    #[inline]
    pub(crate) fn local_w3c_recorded(&self) -> Option<bool> {
        let started = self.inner.started.get()?;
        let valid =
            started.format == ActivityIdFormat::W3C && started.trace_id.is_valid() && started.span_id.is_valid();
        valid.then(|| self.recorded())
    }

    /// True if listeners want tags, events and links (false for propagation-only activities:
    /// skip costly enrichment then).
    pub fn is_all_data_requested(&self) -> bool {
        self.inner.all_data.load(Ordering::Relaxed)
    }

    /// Changes whether all data is requested.
    pub fn set_is_all_data_requested(&self, value: bool) -> &Self {
        self.inner.all_data.store(value, Ordering::Relaxed);
        self
    }

    /// The W3C trace state: this activity's own, else the parent chain's.
    #[inline]
    pub fn trace_state(&self) -> TraceState {
        if self.inner.marks.load(Ordering::Acquire) & LOCAL_TRACE_STATE != 0 {
            if let Some(ts) = self.data().local_trace_state() {
                return ts.clone();
            }
        }
        self.inner
            .started
            .get()
            .map(|s| s.inherited_trace_state.clone())
            .unwrap_or_default()
    }

    /// Sets this activity's trace state (children inherit it).
    pub fn set_trace_state(&self, trace_state: TraceState) -> &Self {
        let mut data = self.data_mut();
        data.extra().trace_state = Some(trace_state);
        self.mark(LOCAL_TRACE_STATE, &data);
        self
    }

    // ---- status ---------------------------------------------------------------------------

    /// The status code.
    pub fn status(&self) -> ActivityStatusCode {
        self.data().status
    }

    /// The status description (kept only for `Error`).
    pub fn status_description(&self) -> Option<String> {
        self.data().status_description().map(str::to_owned)
    }

    /// Sets the status; a description is kept only with `Error`.
    pub fn set_status(&self, code: ActivityStatusCode, description: Option<impl Into<Cow<'static, str>>>) -> &Self {
        let mut data = self.data_mut();
        data.status = code;
        let description = match code {
            ActivityStatusCode::Error => description.map(Into::into),
            _ => None,
        };
        if description.is_some() || data.extra.is_some() {
            data.extra().status_description = description;
        }
        self
    }

    // ---- tags -------------------------------------------------------------------------------

    /// Appends a tag (duplicates are kept, as in .NET `AddTag`).
    #[inline]
    pub fn add_tag(&self, key: impl Into<Cow<'static, str>>, value: impl Into<TagValue>) -> &Self {
        let tag = Tag::new(key, value);
        self.data_mut().tags.push(tag);
        self
    }

    /// Appends several tags under one lock.
    #[inline]
    pub fn add_tags(&self, tags: impl IntoIterator<Item = Tag>) -> &Self {
        self.data_mut().tags.extend(tags);
        self
    }

    /// Replaces the first tag named `key`, or appends it; `None` removes it (.NET `SetTag`).
    ///
    /// ```
    /// use skein::Activity;
    /// let a = Activity::new("op");
    /// a.add_tag("k", 1).add_tag("k", 2);
    /// a.set_tag("k", 3);
    /// assert_eq!(a.tags().iter().map(|t| t.value.to_string()).collect::<Vec<_>>(), ["3", "2"]);
    /// a.set_tag("k", None::<i64>);
    /// assert_eq!(a.tag("k").unwrap().to_string(), "2");
    /// ```
    pub fn set_tag(&self, key: impl Into<Cow<'static, str>>, value: impl IntoTagValue) -> &Self {
        let key = key.into();
        let value = value.into_tag_value();
        let mut data = self.data_mut();
        let pos = data.tags.iter().position(|t| t.key == key);
        match (pos, value) {
            (Some(i), Some(v)) => data.tags[i].value = v,
            (Some(i), None) => {
                data.tags.remove(i);
            }
            (None, Some(v)) => data.tags.push(Tag { key, value: v }),
            (None, None) => {}
        }
        self
    }

    /// Removes the first tag named `key`.
    pub fn remove_tag(&self, key: &str) -> &Self {
        let mut data = self.data_mut();
        if let Some(i) = data.tags.iter().position(|t| t.key == key) {
            data.tags.remove(i);
        }
        self
    }

    /// The value of the first tag named `key`.
    pub fn tag(&self, key: &str) -> Option<TagValue> {
        self.data().tags.iter().find(|t| t.key == key).map(|t| t.value.clone())
    }

    /// All tags, in insertion order.
    pub fn tags(&self) -> Vec<Tag> {
        self.data().tags.to_vec()
    }

    // ---- events, links, exceptions --------------------------------------------------------

    /// Adds an event.
    #[inline]
    pub fn add_event(&self, event: ActivityEvent) -> &Self {
        self.data_mut().events.push(event);
        self
    }

    /// The events, in insertion order.
    pub fn events(&self) -> Vec<ActivityEvent> {
        self.data().events.to_vec()
    }

    /// Adds a link (e.g. to the connection a request used, once it is known).
    pub fn add_link(&self, link: ActivityLink) -> &Self {
        self.data_mut().extra().links.push(link);
        self
    }

    /// The links, in insertion order.
    pub fn links(&self) -> Vec<ActivityLink> {
        self.data().links().to_vec()
    }

    /// Records an error as an `exception` event with `exception.type`, `exception.message`
    /// and `exception.stacktrace` (the source chain, plus a backtrace when `RUST_BACKTRACE`
    /// enables one). Listeners' [`on_exception`](crate::ActivityListener::on_exception) may
    /// add tags first.
    ///
    /// ```
    /// use skein::Activity;
    /// let a = Activity::new("op");
    /// let err = std::fs::read("/definitely/not/here").unwrap_err();
    /// a.add_exception(&err);
    /// let event = &a.events()[0];
    /// assert_eq!(event.name, "exception");
    /// assert_eq!(event.tags[0].value.to_string(), "std::io::error::Error");
    /// ```
    pub fn add_exception<E: std::error::Error + ?Sized>(&self, error: &E) -> &Self {
        self.add_exception_with_tags(error, Vec::new())
    }

    /// [`add_exception`](Self::add_exception) with extra tags on the event.
    pub fn add_exception_with_tags<E: std::error::Error + ?Sized>(&self, error: &E, extra: Vec<Tag>) -> &Self {
        let type_name = std::any::type_name::<E>();
        let type_name = type_name.strip_prefix("dyn ").unwrap_or(type_name);
        let message = error.to_string();
        let mut stacktrace = format!("{type_name}: {message}");
        let mut source = error.source();
        while let Some(cause) = source {
            stacktrace.push_str("\nCaused by: ");
            stacktrace.push_str(&cause.to_string());
            source = cause.source();
        }
        let backtrace = std::backtrace::Backtrace::capture();
        if backtrace.status() == std::backtrace::BacktraceStatus::Captured {
            stacktrace.push('\n');
            stacktrace.push_str(&backtrace.to_string());
        }
        let mut tags = vec![
            Tag::new("exception.type", type_name.to_owned()),
            Tag::new("exception.message", message),
            Tag::new("exception.stacktrace", stacktrace),
        ];
        tags.extend(extra);
        let wrapped = ErrorRef(error);
        self.inner.source.notify_exception(self, &wrapped, &mut tags);
        self.add_event(ActivityEvent::new("exception").with_tags(tags))
    }

    // ---- baggage ----------------------------------------------------------------------------

    /// Adds a baggage item in front of the existing ones (it flows to children and, through
    /// the propagators, to other processes).
    pub fn add_baggage(&self, key: impl Into<Cow<'static, str>>, value: impl Into<Cow<'static, str>>) -> &Self {
        self.data_mut().extra().baggage.push((key.into(), value.into()));
        self
    }

    /// Replaces this activity's own item `key` (or adds it); `None` removes it.
    pub fn set_baggage(&self, key: impl Into<Cow<'static, str>>, value: Option<impl Into<Cow<'static, str>>>) -> &Self {
        let key = key.into();
        let mut data = self.data_mut();
        let baggage = &mut data.extra().baggage;
        let pos = baggage.iter().rposition(|(k, _)| *k == key);
        match (pos, value) {
            (Some(i), Some(v)) => baggage[i].1 = v.into(),
            (Some(i), None) => {
                baggage.remove(i);
            }
            (None, Some(v)) => baggage.push((key, v.into())),
            (None, None) => {}
        }
        self
    }

    /// All baggage: this activity's items (newest first), then each in-process parent's.
    pub fn baggage(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut next = Some(self.clone());
        while let Some(activity) = next {
            if let Some(extra) = &activity.data().extra {
                out.extend(extra.baggage.iter().rev().map(|(k, v)| (k.to_string(), v.to_string())));
            }
            next = activity.parent();
        }
        out
    }

    /// The first baggage item named `key`, looking at this activity then its parents.
    pub fn baggage_item(&self, key: &str) -> Option<String> {
        let mut next = Some(self.clone());
        while let Some(activity) = next {
            if let Some(extra) = &activity.data().extra {
                if let Some((_, v)) = extra.baggage.iter().rev().find(|(k, _)| k == key) {
                    return Some(v.to_string());
                }
            }
            next = activity.parent();
        }
        None
    }

    // ---- custom properties ----------------------------------------------------------------

    /// Attaches any value under `name` (`None` removes it); listeners and enrichment hooks use
    /// this to pass objects along with the activity.
    pub fn set_custom_property(
        &self,
        name: impl Into<Cow<'static, str>>,
        value: Option<Arc<dyn Any + Send + Sync>>,
    ) -> &Self {
        let name = name.into();
        let mut data = self.data_mut();
        let properties = &mut data.extra().custom_properties;
        let pos = properties.iter().position(|(k, _)| *k == name);
        match (pos, value) {
            (Some(i), Some(v)) => properties[i].1 = v,
            (Some(i), None) => {
                properties.remove(i);
            }
            (None, Some(v)) => properties.push((name, v)),
            (None, None) => {}
        }
        self
    }

    /// The value attached under `name`.
    pub fn custom_property(&self, name: &str) -> Option<Arc<dyn Any + Send + Sync>> {
        let data = self.data();
        let extra = data.extra.as_ref()?;
        extra
            .custom_properties
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }

    // ---- time -------------------------------------------------------------------------------

    /// The start time (the Unix epoch before start).
    pub fn start_time(&self) -> SystemTime {
        self.data().start.to_system_time()
    }

    /// Sets the start time (before start, or to correct it afterwards).
    pub fn set_start_time(&self, start: SystemTime) -> &Self {
        self.data_mut().start = start.into();
        self
    }

    /// Sets the end time, which `stop` then keeps.
    pub fn set_end_time(&self, end: SystemTime) -> &Self {
        let mut data = self.data_mut();
        // An end not after the start still counts as set (1 ns long), as in .NET.
        data.end = Timestamp::from(end).at_least_after(data.start);
        self
    }

    /// The end time, once set or stopped.
    pub fn end_time(&self) -> Option<SystemTime> {
        let end = self.data().end;
        end.is_set().then(|| end.to_system_time())
    }

    /// The duration: end − start once stopped, zero while running.
    pub fn duration(&self) -> Duration {
        let data = self.data();
        if data.end.is_set() {
            Duration::from_nanos(data.end.unix_nanos().saturating_sub(data.start.unix_nanos()))
        } else {
            Duration::ZERO
        }
    }

    /// True if freeing this activity returns memory to the global allocator (owned strings,
    /// more tags or events than fit inline, links, ids from other processes…) rather than
    /// only to Skein's own pool. An exporter can use it to free such activities on the threads that
    /// allocated them, which keeps threads from contending inside the allocator.
    pub fn owns_heap_memory(&self) -> bool {
        owns_heap_memory(
            matches!(self.inner.operation_name, Cow::Owned(_)),
            self.inner.started.get(),
            &self.data(),
        )
    }

    /// True once stopped.
    pub fn is_stopped(&self) -> bool {
        self.inner.marks.load(Ordering::Acquire) & STOPPED != 0
    }

    // ---- current activity -------------------------------------------------------------------

    /// The activity current on this thread or task, if any.
    pub fn current() -> Option<Activity> {
        current::get()
    }

    /// True if there is a current activity and it wants all data (.NET
    /// `Activity.Current?.IsAllDataRequested == true`). Asks without taking a reference to it
    /// (no reference count change), for code that decides whether to make an event at all.
    pub fn is_current_all_data_requested() -> bool {
        current::with(|c| c.is_some_and(Activity::is_all_data_requested))
    }

    /// Adds `event` to the current activity if there is one that wants all data (.NET
    /// `Activity.Current?.AddEvent(e)`), without taking a reference to it; otherwise gives the
    /// event back.
    pub fn add_event_to_current(event: ActivityEvent) -> Result<(), ActivityEvent> {
        // `add_event` runs no user code (it stores the event), so the current activity cannot
        // change while it is borrowed.
        current::with(|c| match c {
            Some(activity) if activity.is_all_data_requested() => {
                activity.add_event(event);
                Ok(())
            }
            _ => Err(event),
        })
    }

    /// Sets the current activity and returns the one it replaces (.NET `Activity.Current = x`).
    /// Prefer [`Activity::enter`], which restores the previous one for you.
    ///
    /// A stopped or never-started activity is not made current (as in .NET): nothing changes
    /// and the current activity is returned, so that restoring it is harmless.
    pub fn set_current(activity: Option<&Activity>) -> Option<Activity> {
        if activity.is_some_and(|a| !a.is_running()) {
            return current::get();
        }
        current::replace(activity.cloned())
    }

    /// [`set_current`](Self::set_current) taking a reference instead of cloning one: for
    /// putting back what `set_current` returned. An owning handle passed here becomes a plain
    /// reference (dropping it no longer stops the activity). As with `set_current`, a stopped
    /// or never-started activity is not made current (the reference is dropped and what is
    /// current now is returned).
    pub fn replace_current(activity: Option<Activity>) -> Option<Activity> {
        match activity.map(Activity::into_reference) {
            Some(a) if !a.is_running() => {
                drop(a);
                current::get()
            }
            other => current::replace(other),
        }
    }

    /// This handle as a plain reference: an owner's stopping on drop is given up.
    fn into_reference(mut self) -> Activity {
        self.owner = false;
        self
    }

    /// Started and not yet stopped.
    pub(crate) fn is_running(&self) -> bool {
        self.inner.started.get().is_some() && !self.is_stopped()
    }

    /// Makes this activity current until the guard is dropped (e.g. at the top of a thread
    /// the activity was handed to). A stopped or never-started activity is not made current.
    pub fn enter(&self) -> current::CurrentGuard {
        current::CurrentGuard::new(Some(self))
    }

    // ---- default id format ------------------------------------------------------------------

    /// The format for activities without a parent (W3C unless changed).
    pub fn default_id_format() -> ActivityIdFormat {
        ActivityIdFormat::from_u8(DEFAULT_ID_FORMAT.load(Ordering::Relaxed))
    }

    /// Changes the default format; `Unknown` is ignored.
    pub fn set_default_id_format(format: ActivityIdFormat) {
        if format != ActivityIdFormat::Unknown {
            DEFAULT_ID_FORMAT.store(format as u8, Ordering::Relaxed);
        }
    }

    /// True if every new activity uses the default format, whatever its parent's.
    pub fn force_default_id_format() -> bool {
        FORCE_DEFAULT_ID_FORMAT.load(Ordering::Relaxed)
    }

    /// Makes every new activity use the default format, whatever its parent's.
    pub fn set_force_default_id_format(force: bool) {
        FORCE_DEFAULT_ID_FORMAT.store(force, Ordering::Relaxed);
    }

    // ---- lifecycle ----------------------------------------------------------------------------

    /// Starts the activity: remembers the current activity, takes it as parent unless one was
    /// given, sets the start time, makes the ids, becomes current and notifies listeners.
    /// Starting twice does nothing.
    pub fn start(self) -> Activity {
        self.start_ref();
        self
    }

    pub(crate) fn start_ref(&self) {
        // Taking the pending choices out under the lock makes a second `start` a no-op.
        let pending = match self.inner.started.get() {
            Some(_) => None,
            None => self.data_mut().extra.as_mut().and_then(|e| e.pending.take()),
        };
        let Some(pending) = pending else {
            return; // started already
        };
        let mut previous = current::take();
        let preset = self.inner.flags.load(Ordering::Relaxed);
        let preset = (preset & FLAGS_SET != 0).then(|| ActivityTraceFlags::from_bits(preset & !FLAGS_SET));
        let mut started = std::mem::MaybeUninit::<Started>::uninit();
        // SAFETY: `compute_start` writes the whole value.
        let (started, flags) = unsafe {
            let flags = compute_start(
                started.as_mut_ptr(),
                &mut previous,
                false,
                pending.remote,
                pending.requested_format,
                pending.parent_flags,
                pending.root_trace_id,
                preset,
            );
            (started.assume_init(), flags)
        };
        self.inner.flags.store(flags.bits() | FLAGS_SET, Ordering::Relaxed);
        {
            let mut data = self.data_mut();
            if !data.start.is_set() {
                data.start = Timestamp::now();
            }
            data.previous = previous;
            // No `OWNS_HEAP` to set for `started`: an activity built before its start has
            // its pending choices boxed in the extra data, which marked it then.
        }
        self.inner.started.set(started);
        current::set(Some(self.clone()));
        self.inner.source.notify_started(self);
    }

    /// Stops the activity: sets the end time (unless set), notifies listeners while it is
    /// still current, then restores the activity that was current when it started. Stopping
    /// again, or stopping an activity never started, does nothing.
    pub fn stop(&self) {
        if let Some(previous) = self.mark_stopped(false) {
            self.inner.source.notify_stopped_and_restore(self, previous);
        }
    }

    /// Where this activity is current, makes `previous` current and returns the current
    /// slot's reference to this activity; elsewhere puts back what was current and leaves
    /// `previous` for the thread where this activity is current.
    #[inline]
    pub(crate) fn restore_here_or_leave(&self, previous: Option<Activity>) -> Option<Activity> {
        if self.is_detached() {
            return None; // it never replaced the current activity (`previous` is `None`)
        }
        match current::replace(previous) {
            Some(slot) if slot.ptr_eq(self) => Some(slot),
            other => {
                let previous = current::replace(other);
                self.leave_previous_for_its_thread(previous);
                None
            }
        }
    }

    /// Stopped where it is not current: this thread's current activity stays as it is, and
    /// `previous` is kept for the thread (or task) where this activity is still current,
    /// which makes it current again when it next looks (a stopped activity is never handed
    /// out as a parent).
    pub(crate) fn leave_previous_for_its_thread(&self, previous: Option<Activity>) {
        if self.is_detached() {
            return; // nothing to restore anywhere
        }
        let mut data = self.data_mut();
        data.previous = previous;
        self.mark(STOPPED_ELSEWHERE, &data);
    }

    /// True if stopped on a thread where it was not current; see
    /// [`leave_previous_for_its_thread`](Self::leave_previous_for_its_thread).
    #[inline]
    pub(crate) fn stopped_elsewhere(&self) -> bool {
        self.inner.marks.load(Ordering::Acquire) & STOPPED_ELSEWHERE != 0
    }

    /// Takes the activity that was current when this one started.
    pub(crate) fn take_saved_previous(&self) -> Option<Activity> {
        self.data_mut().previous.take()
    }

    /// `stop`, handing this reference to the last listener.
    fn stop_handing_over(mut self) {
        let unshared = self.unshared();
        if let Some(previous) = self.mark_stopped(unshared) {
            self.inner.source.notify_stopped_owned(self, previous);
        }
    }

    /// Makes `previous` current again, taking this activity out of the current slot if it is
    /// there: that reference is merged into this one, without an atomic update when the two
    /// are the only references (`&mut self`: this handle is borrowed nowhere else).
    pub(crate) fn restore_previous(&mut self, previous: Option<Activity>) {
        if let Some(slot) = self.restore_here_or_leave(previous) {
            let mut slot = ManuallyDrop::new(slot);
            // SAFETY: `slot` is never used again (and never dropped as an `Activity`).
            let reference = unsafe { ManuallyDrop::take(&mut slot.inner) };
            Shared::merge(&mut self.inner, reference);
        }
    }

    /// True if no other thread can reach this activity: this reference, held by value (so
    /// not borrowed anywhere), is the only one, or the only other is this thread's current
    /// activity slot (the common case: an owner dropped where it was started).
    #[inline]
    fn unshared(&mut self) -> bool {
        match Shared::count(&self.inner) {
            1 => true,
            2 => {
                let this: &Activity = self;
                current::with(|c| c.is_some_and(|c| c.ptr_eq(this) && !std::ptr::eq(c, this)))
            }
            _ => false,
        }
    }

    /// Marks the activity stopped and returns what was current before it, or `None` if it
    /// was not running. `unshared`: as returned by [`unshared`](Self::unshared).
    fn mark_stopped(&self, unshared: bool) -> Option<Option<Activity>> {
        self.inner.started.get()?;
        let previous = {
            let mut data = if unshared {
                // SAFETY: no other thread can reach the activity (see `unshared`).
                unsafe { self.inner.state.lock_unshared() }
            } else {
                // Not through `data_mut`: stopping stores nothing that owns heap memory.
                self.inner.state.lock()
            };
            if data.stopped {
                return None;
            }
            data.stopped = true;
            self.mark(STOPPED, &data);
            if !data.end.is_set() {
                data.end = Timestamp::now().at_least_after(data.start);
            }
            data.previous.take()
        };
        Some(previous)
    }

    /// The activity that was current when this one started.
    pub(crate) fn saved_previous(&self) -> Option<Activity> {
        self.data().previous.clone()
    }

    /// Drops every handle, as dropping each in turn would, with fewer atomic updates:
    /// activities released together that share a parent (siblings exported in one batch)
    /// lower the parent's reference count once for all of them. For exporters and pipelines
    /// that let go of batches.
    pub fn drop_all(activities: impl IntoIterator<Item = Activity>) {
        // A parent reference still to release, and how many more references to it were
        // handed back meanwhile.
        let mut pending: Option<(Activity, usize)> = None;
        let mut activities = activities.into_iter().peekable();
        while let Some(activity) = activities.next() {
            // Released long after they ran: their memory has left this core's first-level
            // cache. Asking for the next one now overlaps its misses with this one's work.
            if let Some(next) = activities.peek() {
                Shared::prefetch_release(&next.inner);
            }
            if activity.owner {
                drop(activity); // stops it: not the usual batch
                continue;
            }
            let mut activity = ManuallyDrop::new(activity);
            // SAFETY: `inner` is taken once; `activity` is never used or dropped again.
            let inner = unsafe { ManuallyDrop::take(&mut activity.inner) };
            let Some(parent) = inner.drop_keeping_parent() else {
                continue;
            };
            match &mut pending {
                Some((held, more)) if held.ptr_eq(&parent) => {
                    *more += 1;
                    // Counted in `more`: released with `held`.
                    let mut parent = ManuallyDrop::new(parent);
                    // SAFETY: taken once, never used again; the reference lives on in `more`.
                    std::mem::forget(unsafe { ManuallyDrop::take(&mut parent.inner) });
                }
                _ => {
                    if let Some((held, more)) = pending.replace((parent, 0)) {
                        Shared::release_more(&held.inner, more);
                        drop(held);
                    }
                }
            }
        }
        if let Some((held, more)) = pending {
            Shared::release_more(&held.inner, more);
            drop(held);
        }
    }

    /// True if both handles refer to the same activity.
    pub fn ptr_eq(&self, other: &Activity) -> bool {
        Shared::ptr_eq(&self.inner, &other.inner)
    }
}

/// Chooses the id format and makes the ids of an activity starting now, with `previous` the
/// current activity (its parent unless a remote parent was given). Writes the fixed start data
/// to `out` and returns the trace flags.
///
/// # Safety
/// `out` must be valid for writes.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn compute_start(
    out: *mut Started,
    previous: &mut Option<Activity>,
    take_previous: bool,
    remote: RemoteParent,
    requested: ActivityIdFormat,
    parent_flags: ActivityTraceFlags,
    root_trace_id: Option<(TraceId, bool)>,
    preset: Option<ActivityTraceFlags>,
) -> ActivityTraceFlags {
    let parent = match remote {
        RemoteParent::Current if take_previous => previous.take(),
        RemoteParent::Current => previous.clone(),
        _ => None,
    };

    let format = if requested != ActivityIdFormat::Unknown {
        requested
    } else if Activity::force_default_id_format() {
        Activity::default_id_format()
    } else if let Some(p) = &parent {
        p.id_format()
    } else {
        match &remote {
            RemoteParent::Context(ctx) if ctx.is_valid() => ActivityIdFormat::W3C,
            RemoteParent::Id(id) if looks_like_w3c_id(id) => ActivityIdFormat::W3C,
            RemoteParent::Id(_) => ActivityIdFormat::Hierarchical,
            _ => Activity::default_id_format(),
        }
    };

    // A W3C-looking id that does not parse (bad hex) gives no ids, as in .NET: the activity
    // starts a new trace rather than one hashed from garbage.
    let from_remote = remote.ids();
    let (trace_id, parent_span_id, random_root) = match &parent {
        Some(p) => (p.trace_id(), p.span_id(), false),
        None if from_remote.0.is_valid() => (from_remote.0, from_remote.1, false),
        None => {
            let (id, random) = root_trace_id.unwrap_or_else(new_trace_id);
            (id, SpanId::INVALID, random)
        }
    };

    let inherited = match (&parent, &remote) {
        (Some(p), _) => p.trace_flags(),
        (None, RemoteParent::Context(ctx)) if ctx.is_valid() => parent_flags,
        _ => ActivityTraceFlags::NONE,
    };
    let flags = start_flags(inherited, preset, random_root);

    let (hierarchical_id, span_id) = match format {
        ActivityIdFormat::Hierarchical => {
            let id = match (&parent, &remote) {
                (Some(p), _) => {
                    let n = p.inner.child_counter.fetch_add(1, Ordering::Relaxed) + 1;
                    hierarchical::child_id(&p.id().unwrap_or_default(), u64::from(n))
                }
                (None, RemoteParent::Id(id)) => hierarchical::external_child_id(id),
                (None, RemoteParent::Context(ctx)) if ctx.is_valid() => {
                    hierarchical::external_child_id(&format_traceparent(ctx.trace_id, ctx.span_id, parent_flags))
                }
                _ => hierarchical::root_id(),
            };
            let span_id = hierarchical::derived_span_id(&id);
            (Some(id.into_boxed_str()), span_id)
        }
        _ => (None, SpanId::random()),
    };
    // A hierarchical root's trace id comes from its own root id, so other processes that
    // receive it derive the same one.
    let trace_id = match (&hierarchical_id, &parent, &remote) {
        (Some(id), None, RemoteParent::Current | RemoteParent::Root) => hierarchical::derived_trace_id(id),
        _ => trace_id,
    };

    let inherited_trace_state = match (&parent, &remote) {
        (Some(p), _) => p.trace_state(),
        (None, RemoteParent::Context(ctx)) => ctx.trace_state.clone(),
        _ => TraceState::EMPTY,
    };

    // SAFETY: guaranteed by the caller.
    unsafe {
        out.write(Started {
            format,
            trace_id,
            span_id,
            parent_span_id,
            parent,
            hierarchical_id,
            inherited_trace_state,
            remote,
            parent_flags,
        });
    }
    flags
}
