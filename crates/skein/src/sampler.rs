//! Built-in samplers for listeners: always on, always off, parent-based and trace-id ratio.

use std::fmt;

use crate::context::ActivityContext;
use crate::listener::{ActivityCreationOptions, ActivitySamplingResult, LocalParentDecision};

/// A sampling policy a listener can delegate its `sample` callback to.
pub trait Sampler: Send + Sync {
    /// The decision for an activity about to be created.
    fn should_sample(&self, options: &ActivityCreationOptions<'_, ActivityContext>) -> ActivitySamplingResult;

    /// `Some` if [`should_sample`](Sampler::should_sample) decides every activity under a
    /// local parent from whether that parent is recorded alone, adding nothing to the options
    /// (see [`ActivityListener::local_parent_decision`](crate::ActivityListener::local_parent_decision),
    /// which a listener delegating to this sampler can answer with it). Default: `None`.
    fn local_parent_decision(&self) -> Option<LocalParentDecision> {
        None
    }

    /// `Some` if [`should_sample`](Sampler::should_sample) answers every root (no parent)
    /// with this, adding nothing to the options (see
    /// [`ActivityListener::root_decision`](crate::ActivityListener::root_decision)). Default:
    /// `None`.
    fn root_decision(&self) -> Option<ActivitySamplingResult> {
        None
    }
}

impl<S: Sampler + ?Sized> Sampler for Box<S> {
    fn should_sample(&self, options: &ActivityCreationOptions<'_, ActivityContext>) -> ActivitySamplingResult {
        (**self).should_sample(options)
    }
    fn local_parent_decision(&self) -> Option<LocalParentDecision> {
        (**self).local_parent_decision()
    }
    fn root_decision(&self) -> Option<ActivitySamplingResult> {
        (**self).root_decision()
    }
}

impl<S: Sampler + ?Sized> Sampler for std::sync::Arc<S> {
    fn should_sample(&self, options: &ActivityCreationOptions<'_, ActivityContext>) -> ActivitySamplingResult {
        (**self).should_sample(options)
    }
    fn local_parent_decision(&self) -> Option<LocalParentDecision> {
        (**self).local_parent_decision()
    }
    fn root_decision(&self) -> Option<ActivitySamplingResult> {
        (**self).root_decision()
    }
}

/// Records everything (`AllDataAndRecorded`).
#[derive(Clone, Copy, Debug, Default)]
pub struct AlwaysOnSampler;

impl Sampler for AlwaysOnSampler {
    fn should_sample(&self, _: &ActivityCreationOptions<'_, ActivityContext>) -> ActivitySamplingResult {
        ActivitySamplingResult::AllDataAndRecorded
    }
    fn local_parent_decision(&self) -> Option<LocalParentDecision> {
        Some(LocalParentDecision::always(ActivitySamplingResult::AllDataAndRecorded))
    }
    fn root_decision(&self) -> Option<ActivitySamplingResult> {
        Some(ActivitySamplingResult::AllDataAndRecorded)
    }
}

/// Records nothing (`None`).
#[derive(Clone, Copy, Debug, Default)]
pub struct AlwaysOffSampler;

impl Sampler for AlwaysOffSampler {
    fn should_sample(&self, _: &ActivityCreationOptions<'_, ActivityContext>) -> ActivitySamplingResult {
        ActivitySamplingResult::None
    }
    fn local_parent_decision(&self) -> Option<LocalParentDecision> {
        Some(LocalParentDecision::always(ActivitySamplingResult::None))
    }
    fn root_decision(&self) -> Option<ActivitySamplingResult> {
        Some(ActivitySamplingResult::None)
    }
}

/// Records a fixed share of traces, decided by the trace id alone so every service makes the
/// same decision for the same trace — the same decision as OpenTelemetry's
/// `TraceIdRatioBased` sampler.
#[derive(Clone, Copy, Debug)]
pub struct TraceIdRatioSampler {
    ratio: f64,
    upper_bound: u64,
}

impl TraceIdRatioSampler {
    /// A sampler recording `ratio` of traces (clamped to 0..=1).
    pub fn new(ratio: f64) -> Self {
        let ratio = if ratio.is_nan() { 0.0 } else { ratio.clamp(0.0, 1.0) };
        TraceIdRatioSampler {
            ratio,
            upper_bound: (ratio * (1u64 << 63) as f64) as u64,
        }
    }

    /// The configured ratio.
    pub fn ratio(&self) -> f64 {
        self.ratio
    }

    /// The decision for a trace id: its low 8 bytes (big-endian) shifted right once, compared
    /// with `ratio × 2^63`.
    pub fn samples(&self, trace_id: crate::TraceId) -> bool {
        if self.ratio >= 1.0 {
            return true;
        }
        let low = u64::from_be_bytes(trace_id.to_bytes()[8..].try_into().unwrap_or([0; 8]));
        (low >> 1) < self.upper_bound
    }
}

impl Sampler for TraceIdRatioSampler {
    fn should_sample(&self, options: &ActivityCreationOptions<'_, ActivityContext>) -> ActivitySamplingResult {
        if self.samples(options.trace_id()) {
            ActivitySamplingResult::AllDataAndRecorded
        } else {
            ActivitySamplingResult::None
        }
    }
}

/// Follows the parent's `recorded` flag, and asks `root` for activities without a parent.
///
/// When it declines an activity that has a parent, it answers `PropagationData` rather than
/// `None`: the activity still exists to carry the trace's ids (and the "not recorded" flag)
/// to downstream services, so they do not start unrelated traces of their own.
pub struct ParentBasedSampler {
    root: Delegate,
    remote_parent_sampled: Delegate,
    remote_parent_not_sampled: Delegate,
    local_parent_sampled: Delegate,
    local_parent_not_sampled: Delegate,
}

/// One of the parent-based sampler's choices. The built-in constant samplers are answered
/// inline: they are the defaults, asked for every activity.
enum Delegate {
    AlwaysOn,
    AlwaysOff,
    Other(Box<dyn Sampler>),
}

impl Delegate {
    fn new<S: Sampler + 'static>(sampler: S) -> Self {
        let any: &dyn std::any::Any = &sampler;
        if any.is::<AlwaysOnSampler>() {
            Delegate::AlwaysOn
        } else if any.is::<AlwaysOffSampler>() {
            Delegate::AlwaysOff
        } else {
            Delegate::Other(Box::new(sampler))
        }
    }

    #[inline]
    fn should_sample(&self, options: &ActivityCreationOptions<'_, ActivityContext>) -> ActivitySamplingResult {
        match self {
            Delegate::AlwaysOn => ActivitySamplingResult::AllDataAndRecorded,
            Delegate::AlwaysOff => ActivitySamplingResult::None,
            Delegate::Other(sampler) => sampler.should_sample(options),
        }
    }

    /// The constant answer, for the built-in constant samplers.
    fn constant(&self) -> Option<ActivitySamplingResult> {
        match self {
            Delegate::AlwaysOn => Some(ActivitySamplingResult::AllDataAndRecorded),
            Delegate::AlwaysOff => Some(ActivitySamplingResult::None),
            Delegate::Other(_) => None,
        }
    }
}

impl fmt::Debug for ParentBasedSampler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ParentBasedSampler")
    }
}

impl ParentBasedSampler {
    /// Parent-based with `root` for roots, always-on for recorded parents and always-off for
    /// unrecorded ones (the OpenTelemetry defaults).
    pub fn new(root: impl Sampler + 'static) -> Self {
        ParentBasedSampler {
            root: Delegate::new(root),
            remote_parent_sampled: Delegate::AlwaysOn,
            remote_parent_not_sampled: Delegate::AlwaysOff,
            local_parent_sampled: Delegate::AlwaysOn,
            local_parent_not_sampled: Delegate::AlwaysOff,
        }
    }

    /// Replaces the sampler for recorded remote parents.
    pub fn with_remote_parent_sampled(mut self, s: impl Sampler + 'static) -> Self {
        self.remote_parent_sampled = Delegate::new(s);
        self
    }
    /// Replaces the sampler for unrecorded remote parents.
    pub fn with_remote_parent_not_sampled(mut self, s: impl Sampler + 'static) -> Self {
        self.remote_parent_not_sampled = Delegate::new(s);
        self
    }
    /// Replaces the sampler for recorded local parents.
    pub fn with_local_parent_sampled(mut self, s: impl Sampler + 'static) -> Self {
        self.local_parent_sampled = Delegate::new(s);
        self
    }
    /// Replaces the sampler for unrecorded local parents.
    pub fn with_local_parent_not_sampled(mut self, s: impl Sampler + 'static) -> Self {
        self.local_parent_not_sampled = Delegate::new(s);
        self
    }
}

impl Sampler for ParentBasedSampler {
    fn should_sample(&self, options: &ActivityCreationOptions<'_, ActivityContext>) -> ActivitySamplingResult {
        let parent = options.parent();
        if !parent.is_valid() {
            return self.root.should_sample(options);
        }
        let delegate = match (parent.is_remote, parent.trace_flags.is_recorded()) {
            (true, true) => &self.remote_parent_sampled,
            (true, false) => &self.remote_parent_not_sampled,
            (false, true) => &self.local_parent_sampled,
            (false, false) => &self.local_parent_not_sampled,
        };
        delegate
            .should_sample(options)
            .max(ActivitySamplingResult::PropagationData)
    }

    /// Known when both local-parent choices are the built-in constant samplers (the
    /// defaults), with the same floor as `should_sample`.
    fn local_parent_decision(&self) -> Option<LocalParentDecision> {
        let floor = ActivitySamplingResult::PropagationData;
        Some(LocalParentDecision {
            recorded: self.local_parent_sampled.constant()?.max(floor),
            not_recorded: self.local_parent_not_sampled.constant()?.max(floor),
        })
    }

    /// Known when the root sampler is a built-in constant one.
    fn root_decision(&self) -> Option<ActivitySamplingResult> {
        self.root.constant()
    }
}
