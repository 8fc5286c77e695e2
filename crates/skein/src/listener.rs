//! `ActivityListener`: how collectors choose sources, sample, and observe activities.

use std::cell::{Cell, RefCell};
use std::error::Error;
use std::mem::ManuallyDrop;
use std::sync::Arc;

use crate::activity::{Activity, ActivityIdFormat, ActivityKind, ActivityLink};
use crate::context::{parse_traceparent, ActivityContext};
use crate::hierarchical;
use crate::id::{new_trace_id, TraceId};
use crate::source::ActivitySource;
use crate::tag::{Tag, TagValue};
use crate::trace_state::TraceState;

/// How much of an activity a listener wants. Several listeners on one source: the largest
/// answer wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum ActivitySamplingResult {
    /// No activity is created.
    #[default]
    None,
    /// The activity exists to carry ids and baggage (so propagation keeps working), but tags,
    /// events and links need not be filled (`is_all_data_requested` is false).
    PropagationData,
    /// All data is wanted; the trace is not marked as recorded.
    AllData,
    /// All data is wanted and the `recorded` (sampled) flag is set.
    AllDataAndRecorded,
}

/// A sampling decision for activities started under a local parent (an activity of this
/// process with a W3C id, current where the new one starts) that depends only on whether that
/// parent is recorded: see [`ActivityListener::local_parent_decision`] and
/// [`Sampler::local_parent_decision`](crate::Sampler::local_parent_decision).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LocalParentDecision {
    /// The answer under a recorded parent.
    pub recorded: ActivitySamplingResult,
    /// The answer under a parent that is not recorded.
    pub not_recorded: ActivitySamplingResult,
}

impl LocalParentDecision {
    /// The same answer under any local parent.
    pub const fn always(result: ActivitySamplingResult) -> Self {
        LocalParentDecision {
            recorded: result,
            not_recorded: result,
        }
    }
}

/// What a sampler sees about an activity about to be created: its source, name, kind,
/// parent (a context, or a parent id string for [`ActivityListener::sample_using_parent_id`]),
/// creation tags and links. Samplers may add tags and set the trace state.
pub struct ActivityCreationOptions<'a, P> {
    source: &'static ActivitySource,
    name: &'a str,
    kind: ActivityKind,
    parent: P,
    tags: &'a [Tag],
    links: &'a [ActivityLink],
    id_format: ActivityIdFormat,
    trace_id: Cell<Option<(TraceId, bool)>>,
    /// What samplers added; boxed so that the common "nothing" costs one word to drop.
    output: ManuallyDrop<RefCell<Option<Box<SamplerOutput>>>>,
}

impl<P> Drop for ActivityCreationOptions<'_, P> {
    #[inline]
    fn drop(&mut self) {
        if self.output.get_mut().is_some() {
            // SAFETY: dropped once, here.
            unsafe { ManuallyDrop::drop(&mut self.output) };
        }
    }
}

#[derive(Default)]
struct SamplerOutput {
    tags: Vec<Tag>,
    trace_state: Option<TraceState>,
}

impl<'a, P> ActivityCreationOptions<'a, P> {
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub(crate) fn new(
        source: &'static ActivitySource,
        name: &'a str,
        kind: ActivityKind,
        parent: P,
        tags: &'a [Tag],
        links: &'a [ActivityLink],
        id_format: ActivityIdFormat,
        trace_id: Option<(TraceId, bool)>,
    ) -> Self {
        ActivityCreationOptions {
            source,
            name,
            kind,
            parent,
            tags,
            links,
            id_format,
            trace_id: Cell::new(trace_id),
            output: ManuallyDrop::new(RefCell::new(None)),
        }
    }

    /// The source creating the activity.
    pub fn source(&self) -> &'static ActivitySource {
        self.source
    }
    /// The operation name.
    pub fn name(&self) -> &str {
        self.name
    }
    /// The kind.
    pub fn kind(&self) -> ActivityKind {
        self.kind
    }
    /// The parent: an [`ActivityContext`] (invalid for a root), or the parent id string.
    pub fn parent(&self) -> &P {
        &self.parent
    }
    /// Tags given at creation (samplers decide on these).
    pub fn tags(&self) -> &[Tag] {
        self.tags
    }
    /// Links given at creation.
    pub fn links(&self) -> &[ActivityLink] {
        self.links
    }
    /// The id format requested by the caller (`Unknown` if none).
    pub fn id_format(&self) -> ActivityIdFormat {
        self.id_format
    }
    /// Adds a tag to the activity if it is created (e.g. the sampling probability).
    pub fn add_sampling_tag(&self, key: impl Into<std::borrow::Cow<'static, str>>, value: impl Into<TagValue>) {
        let mut output = self.output.borrow_mut();
        output
            .get_or_insert_with(Default::default)
            .tags
            .push(Tag::new(key, value));
    }
    /// Sets the trace state the activity will carry.
    pub fn set_trace_state(&self, trace_state: TraceState) {
        let mut output = self.output.borrow_mut();
        output.get_or_insert_with(Default::default).trace_state = Some(trace_state);
    }

    /// True if a sampler added tags or a trace state.
    #[inline]
    pub(crate) fn has_output(&mut self) -> bool {
        self.output.get_mut().is_some()
    }

    /// The trace id made for a new root, if a sampler asked for it.
    #[inline]
    pub(crate) fn root_trace_id(&self) -> Option<(TraceId, bool)> {
        self.trace_id.get()
    }

    pub(crate) fn take_results(&mut self) -> (Vec<Tag>, Option<TraceState>, Option<(TraceId, bool)>) {
        let trace_id = self.trace_id.get();
        match self.output.get_mut().take() {
            Some(output) => (output.tags, output.trace_state, trace_id),
            None => (Vec::new(), None, trace_id),
        }
    }

    fn cached_trace_id(&self, make: impl FnOnce() -> (TraceId, bool)) -> TraceId {
        if let Some((id, _)) = self.trace_id.get() {
            return id;
        }
        let made = make();
        self.trace_id.set(Some(made));
        made.0
    }
}

impl ActivityCreationOptions<'_, ActivityContext> {
    /// The trace id the activity will have: the parent's, or for a root a new one, made once
    /// and then used by the activity (so ratio samplers and the activity agree).
    pub fn trace_id(&self) -> TraceId {
        if self.parent.trace_id.is_valid() {
            return self.parent.trace_id;
        }
        self.cached_trace_id(new_trace_id)
    }
}

impl ActivityCreationOptions<'_, &str> {
    /// Asks `sample` about this activity as if it had no parent, with the trace id of the
    /// parent id (derived from a hierarchical root): a way for a listener's
    /// [`sample_using_parent_id`](ActivityListener::sample_using_parent_id) to treat a
    /// hierarchical caller like a new trace. Tags and trace state `sample` adds are kept.
    pub fn sample_as_root(
        &self,
        sample: impl FnOnce(&ActivityCreationOptions<'_, ActivityContext>) -> ActivitySamplingResult,
    ) -> ActivitySamplingResult {
        let mut as_root = ActivityCreationOptions::new(
            self.source,
            self.name,
            self.kind,
            ActivityContext::default(),
            self.tags,
            self.links,
            self.id_format,
            Some((self.trace_id(), false)),
        );
        let result = sample(&as_root);
        let (tags, trace_state, _) = as_root.take_results();
        if !tags.is_empty() || trace_state.is_some() {
            let mut output = self.output.borrow_mut();
            let output = output.get_or_insert_with(Default::default);
            output.tags.extend(tags);
            if trace_state.is_some() {
                output.trace_state = trace_state;
            }
        }
        result
    }

    /// The trace id of the parent id: from a W3C id, or derived from a hierarchical root.
    pub fn trace_id(&self) -> TraceId {
        let parent = self.parent;
        self.cached_trace_id(|| match parse_traceparent(parent) {
            Ok((trace_id, _, _)) => (trace_id, false),
            Err(_) => (hierarchical::derived_trace_id(parent), false),
        })
    }
}

/// Collects activities: chooses sources, samples, and is told when activities start and stop.
///
/// Register one with [`ActivitySource::add_activity_listener`]. Callbacks run on the thread
/// that starts or stops the activity, so keep them short and never block there: queue the
/// activity for a background exporter instead (handing over the `Activity` clones a pointer,
/// not its data).
///
/// ```
/// use skein::*;
/// use std::sync::{Arc, Mutex};
///
/// struct Collect(Mutex<Vec<String>>);
/// impl ActivityListener for Collect {
///     fn should_listen_to(&self, source: &ActivitySource) -> bool {
///         source.name() == "shop"
///     }
///     fn sample(&self, _: &ActivityCreationOptions<'_, ActivityContext>) -> ActivitySamplingResult {
///         ActivitySamplingResult::AllDataAndRecorded
///     }
///     fn on_stopped(&self, activity: &Activity) {
///         self.0.lock().unwrap().push(activity.display_name());
///     }
/// }
///
/// static SHOP: ActivitySource = ActivitySource::new("shop");
/// let collected = Arc::new(Collect(Mutex::new(Vec::new())));
/// let _registration = ActivitySource::add_activity_listener(collected.clone());
/// drop(SHOP.start_activity("checkout", ActivityKind::Server));
/// assert_eq!(collected.0.lock().unwrap().as_slice(), ["checkout"]);
/// ```
pub trait ActivityListener: Send + Sync + 'static {
    /// Whether to attach to `source` (asked once per source, when either is registered).
    fn should_listen_to(&self, source: &ActivitySource) -> bool;

    /// How much of the activity to create, given its parent context (invalid for a root).
    fn sample(&self, options: &ActivityCreationOptions<'_, ActivityContext>) -> ActivitySamplingResult;

    /// `Some` if this listener's [`sample`] answer for every activity started under a local
    /// parent (an activity of this process with a W3C id, current where the new one starts)
    /// depends only on whether that parent is recorded, as with a parent-based sampler and its
    /// default choices for local parents, and adds no tags or trace state. The source then
    /// answers from it instead of reading the parent's context and calling [`sample`] for such
    /// activities (most activities are children: this is most of what sampling costs them).
    /// Asked once, when the listener is attached. Default: `None` (always ask `sample`).
    ///
    /// [`sample`]: ActivityListener::sample
    fn local_parent_decision(&self) -> Option<LocalParentDecision> {
        None
    }

    /// `Some` if this listener's [`sample`] answer for every root activity (no parent) is this
    /// one, whatever the options, and adds no tags or trace state: the source then answers
    /// from it instead of calling `sample` (a listener that declines everything makes a
    /// declined start a few loads). Asked once, when the listener is attached. Default: `None`.
    ///
    /// [`sample`]: ActivityListener::sample
    fn root_decision(&self) -> Option<ActivitySamplingResult> {
        None
    }

    /// How much to create when the parent is an id string (e.g. from a `Request-Id` header).
    /// `None` (the default) means "not provided": for a W3C id the source then calls
    /// [`sample`] with the parsed context; a hierarchical (non-W3C) id is not offered to
    /// [`sample`] at all, and this listener's answer is `None` (as in .NET). A listener that
    /// wants hierarchical requests decides here, for instance as for a root with
    /// [`ActivityCreationOptions::sample_as_root`].
    ///
    /// [`sample`]: ActivityListener::sample
    fn sample_using_parent_id(&self, _options: &ActivityCreationOptions<'_, &str>) -> Option<ActivitySamplingResult> {
        None
    }

    /// Called when an attached source's activity starts (it is already current), if
    /// [`wants_started_activities`](ActivityListener::wants_started_activities) says so.
    fn on_started(&self, _activity: &Activity) {}

    /// False if this listener has no use for [`on_started`](ActivityListener::on_started)
    /// (as a .NET listener that leaves `ActivityStarted` unset): it is then never called, and
    /// when no listener of a source wants it, starting an activity skips the pass over the
    /// listeners that calls it. Asked once, when the listener is attached. Default: true.
    fn wants_started_activities(&self) -> bool {
        true
    }

    /// Called when an attached source's activity stops (it is still current).
    fn on_stopped(&self, _activity: &Activity) {}

    /// [`on_stopped`](ActivityListener::on_stopped) with a reference the listener may keep:
    /// when an activity stops because its owner was dropped, the last attached listener gets
    /// the owner's reference, which saves the reference-count updates of cloning one. A
    /// listener that queues stopped activities should implement this; the default calls
    /// `on_stopped`.
    fn on_stopped_owned(&self, activity: Activity) {
        self.on_stopped(&activity)
    }

    /// True if this listener keeps the activities [`on_stopped_owned`] gives it (queues them
    /// for export, say) and has no use for the stopped activity being current while it runs.
    /// `on_stopped_owned` is then called just after the activity that was current before it
    /// is restored, which saves an atomic reference-count update per activity; otherwise (the
    /// default) it runs while the stopped activity is still current, as `on_stopped` does.
    /// Asked once, when the listener is attached.
    ///
    /// [`on_stopped_owned`]: ActivityListener::on_stopped_owned
    fn keeps_stopped_activities(&self) -> bool {
        false
    }

    /// Called by [`Activity::add_exception`] before the event is added, to add tags.
    fn on_exception(&self, _activity: &Activity, _error: &(dyn Error + '_), _tags: &mut Vec<Tag>) {}

    /// The listener as the shared handle the sources keep. Not for implementations to
    /// override: the one for `Arc` hands over the `Arc` itself, so that a listener registered
    /// as an `Arc` is called directly instead of through a second pointer and a forwarding call.
    #[doc(hidden)]
    fn into_shared(self) -> Arc<dyn ActivityListener>
    where
        Self: Sized,
    {
        Arc::new(self)
    }
}

/// Forwards every callback; see [`ActivityListener::into_shared`].
macro_rules! forward_listener {
    () => {
        fn should_listen_to(&self, source: &ActivitySource) -> bool {
            (**self).should_listen_to(source)
        }
        fn sample(&self, options: &ActivityCreationOptions<'_, ActivityContext>) -> ActivitySamplingResult {
            (**self).sample(options)
        }
        fn local_parent_decision(&self) -> Option<LocalParentDecision> {
            (**self).local_parent_decision()
        }
        fn root_decision(&self) -> Option<ActivitySamplingResult> {
            (**self).root_decision()
        }
        fn sample_using_parent_id(
            &self,
            options: &ActivityCreationOptions<'_, &str>,
        ) -> Option<ActivitySamplingResult> {
            (**self).sample_using_parent_id(options)
        }
        fn on_started(&self, activity: &Activity) {
            (**self).on_started(activity)
        }
        fn on_stopped(&self, activity: &Activity) {
            (**self).on_stopped(activity)
        }
        fn on_stopped_owned(&self, activity: Activity) {
            (**self).on_stopped_owned(activity)
        }
        fn wants_started_activities(&self) -> bool {
            (**self).wants_started_activities()
        }
        fn keeps_stopped_activities(&self) -> bool {
            (**self).keeps_stopped_activities()
        }
        fn on_exception(&self, activity: &Activity, error: &(dyn Error + '_), tags: &mut Vec<Tag>) {
            (**self).on_exception(activity, error, tags)
        }
    };
}

impl<T: ActivityListener> ActivityListener for Arc<T> {
    forward_listener!();

    fn into_shared(self) -> Arc<dyn ActivityListener> {
        self
    }
}

impl ActivityListener for Arc<dyn ActivityListener> {
    forward_listener!();

    fn into_shared(self) -> Arc<dyn ActivityListener> {
        self
    }
}
