//! The bridge layer: `tracing` spans become activities of a source named after their target.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasherDefault;
use std::sync::{Arc, LazyLock, RwLock};
use std::thread::LocalKey;

use skein::logs::{LogRecord, Severity};
use skein::{
    Activity, ActivityEvent, ActivityKind, ActivityLink, ActivityParent, ActivitySource, ActivityStartOptions,
    ActivityStatusCode, CurrentGuard, Tag, TagText, TagValue,
};
use tracing_core::callsite::Identifier;
use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{Event, Interest, Level, Metadata, Subscriber};
use tracing_subscriber::filter::Filtered;
use tracing_subscriber::layer::{Context, Filter, Layer as _};
use tracing_subscriber::registry::{LookupSpan, SpanRef};

/// A [`tracing_subscriber::Layer`] that turns `tracing` spans into Skein activities.
///
/// Each span's activity comes from the [`ActivitySource`] named after the span's target
/// (`my_app::orders`, or the module path for `#[instrument]`), so listeners choose by target
/// as with any source; for a target nobody listens to the layer does nothing more than look
/// the source up. Fields become tags (typed); `otel.name`, `otel.kind`, `otel.status_code`,
/// `otel.status_description` and `error` fields set the name, kind and status; `follows_from`
/// becomes a link; events become activity events (an event with an `error` field sets Error
/// status). When a log pipeline is installed (`skein_export::init()` sets one up), every
/// event of a severity it wants — inside an activity or not, and `log` records through
/// `tracing-log` — is also a log record ([`skein::logs`]) carrying the trace and span ids of
/// the activity it happened in, so its trace shows its logs. While a span is entered its activity is [`Activity::current`], so Skein
/// activities started inside it are its children, and a span opened while a Skein activity
/// is current is that activity's child — both ways, across `.await`s with
/// `tracing::Instrument`.
///
/// ```
/// use tracing_subscriber::layer::SubscriberExt;
/// let subscriber = tracing_subscriber::registry().with(skein_tracing::SkeinLayer::new());
/// tracing::subscriber::with_default(subscriber, || {
///     let span = tracing::info_span!("checkout", order.id = 42);
///     let _entered = span.enter();
///     // With a listener for this crate's target, `span` is an activity and current here.
/// });
/// ```
#[derive(Default)]
pub struct SkeinLayer {
    sources: Arc<SourceCache>,
}

/// The source of each span callsite, looked up once.
#[derive(Default)]
struct SourceCache(RwLock<HashMap<Identifier, &'static ActivitySource, BuildHasherDefault<CallsiteHasher>>>);

/// Callsite identifiers are addresses of statics: distinct, and hashed by one multiplication
/// (the default SipHash costs more than the rest of the lookup).
#[derive(Default)]
struct CallsiteHasher(u64);

impl std::hash::Hasher for CallsiteHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(byte)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.0 = (self.0 ^ n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type CallsiteMap<V> = HashMap<Identifier, V, BuildHasherDefault<CallsiteHasher>>;

thread_local! {
    /// This thread's copy of the callsites' sources: asked twice per span (the filter, then
    /// the layer), so it is read without the shared lock's two atomic updates. A callsite's
    /// source is the one named after its target whichever layer asks, so one copy serves all.
    static THREAD_SOURCES: RefCell<CallsiteMap<&'static ActivitySource>> = RefCell::new(HashMap::default());
}

impl SourceCache {
    fn source(&self, metadata: &Metadata<'_>) -> &'static ActivitySource {
        kept_per_callsite(&THREAD_SOURCES, &self.0, metadata.callsite(), || {
            ActivitySource::get_or_create(metadata.target(), None, Vec::new())
        })
    }
}

/// The value kept for callsite `id` in `shared`, made by `make` the first time, and read from
/// this thread's copy in `thread` after this thread's first look (without the shared lock's
/// atomic updates).
fn kept_per_callsite<V: Copy>(
    thread: &'static LocalKey<RefCell<CallsiteMap<V>>>,
    shared: &RwLock<CallsiteMap<V>>,
    id: Identifier,
    make: impl FnOnce() -> V,
) -> V {
    if let Ok(Some(value)) = thread.try_with(|kept| kept.borrow().get(&id).copied()) {
        return value;
    }
    let found = shared.read().unwrap_or_else(|e| e.into_inner()).get(&id).copied();
    let value = found.unwrap_or_else(|| {
        // Made with no borrow or lock held: creating a source asks the listeners (user code).
        // Threads that raced both made one; the first kept is everyone's.
        let made = make();
        *shared
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(id.clone())
            .or_insert(made)
    });
    let _ = thread.try_with(|kept| kept.borrow_mut().insert(id, value));
    value
}

/// Event messages without arguments (`info!("cart emptied")`) are the same text every time:
/// the first one seen at a callsite is kept (once per process, if short) and later events
/// there that say the same borrow it instead of allocating their own copy.
mod messages {
    use std::borrow::Cow;
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::fmt::{self, Write as _};
    use std::sync::{LazyLock, RwLock};

    use tracing_core::callsite::Identifier;

    use super::CallsiteMap;

    /// Longer first messages are not kept.
    const MAX_KEPT: usize = 256;

    static KEPT: LazyLock<RwLock<CallsiteMap<&'static str>>> = LazyLock::new(|| RwLock::new(HashMap::default()));

    thread_local! {
        /// The text this thread expects at each callsite; `None` once it was seen to vary.
        static EXPECTED: RefCell<CallsiteMap<Option<&'static str>>> = RefCell::new(HashMap::default());
        /// Where messages are written, reused.
        static BUFFER: RefCell<String> = const { RefCell::new(String::new()) };
    }

    /// The message `value` formats to, borrowed from the kept text when it is the same.
    pub(super) fn text(callsite: &Identifier, value: &dyn fmt::Debug) -> Cow<'static, str> {
        // No borrow is held while `value` formats: its `Debug` may log in turn.
        let mut buffer = BUFFER
            .try_with(|b| std::mem::take(&mut *b.borrow_mut()))
            .unwrap_or_default();
        buffer.clear();
        let _ = write!(buffer, "{value:?}");
        let expected = EXPECTED.try_with(|e| e.borrow().get(callsite).copied()).ok().flatten();
        let result = match expected {
            Some(Some(kept)) if kept == buffer => Cow::Borrowed(kept),
            Some(Some(_)) => {
                let _ = EXPECTED.try_with(|e| e.borrow_mut().insert(callsite.clone(), None));
                Cow::Owned(buffer.clone())
            }
            Some(None) => Cow::Owned(buffer.clone()),
            None => {
                let kept = keep(callsite, &buffer);
                let _ = EXPECTED.try_with(|e| e.borrow_mut().insert(callsite.clone(), kept.filter(|k| *k == buffer)));
                match kept {
                    Some(kept) if kept == buffer => Cow::Borrowed(kept),
                    _ => Cow::Owned(buffer.clone()),
                }
            }
        };
        let _ = BUFFER.try_with(|b| *b.borrow_mut() = buffer);
        result
    }

    /// The text kept for `callsite`, keeping `first` if there is none yet.
    fn keep(callsite: &Identifier, first: &str) -> Option<&'static str> {
        if let Some(kept) = KEPT.read().unwrap_or_else(|e| e.into_inner()).get(callsite) {
            return Some(kept);
        }
        if first.len() > MAX_KEPT {
            return None;
        }
        let mut kept = KEPT.write().unwrap_or_else(|e| e.into_inner());
        Some(
            kept.entry(callsite.clone())
                .or_insert_with(|| Box::leak(first.to_owned().into_boxed_str())),
        )
    }
}

/// A per-layer filter for [`SkeinLayer`]: spans of targets a listener wants and events inside
/// an activity. Interest in a span callsite follows the listeners (`tracing`'s interest cache
/// is rebuilt whenever a listener is added or removed), so where no other layer wants the
/// span, `tracing` does not even create it and a target nobody listens to costs almost
/// nothing; other layers (`fmt`) still see everything they enable.
/// [`skein_tracing::layer()`](crate::layer()) installs the layer with it.
#[derive(Clone, Default)]
pub struct ListenedTargets {
    sources: Arc<SourceCache>,
}

impl<S> Filter<S> for ListenedTargets
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn callsite_enabled(&self, metadata: &'static Metadata<'static>) -> Interest {
        if !metadata.is_span() {
            return Interest::sometimes(); // events: decided by where they happen
        }
        // Asked again when listeners change (see `layer()`). "Sometimes", not "always", for
        // a listened target: with "always" `tracing` skips `enabled`, and tracing-subscriber
        // then decides from whatever filter call came before (tracing-log's `log_enabled!`
        // checks, for one), dropping spans this layer wants (tokio-rs/tracing#2519).
        if self.sources.source(metadata).has_listeners() {
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        if !metadata.is_span() {
            return true; // events: `event_enabled` looks at where they happen
        }
        self.sources.source(metadata).has_listeners()
    }

    fn event_enabled(&self, event: &Event<'_>, cx: &Context<'_, S>) -> bool {
        if skein::logs::enabled(severity(event.metadata().level())) {
            return true; // a log pipeline wants it, in an activity or not
        }
        match event.parent() {
            Some(parent) => nearest_activity(cx.span(parent)).is_some(),
            None if event.is_root() => false,
            // Without a reference count change: this runs for every event.
            None => Activity::is_current_all_data_requested(),
        }
    }
}

/// [`SkeinLayer`] with its [`ListenedTargets`] filter: what to add to a
/// `tracing_subscriber::registry()`.
///
/// ```
/// use tracing_subscriber::layer::SubscriberExt;
/// let subscriber = tracing_subscriber::registry().with(skein_tracing::layer());
/// tracing::subscriber::with_default(subscriber, || {
///     // Nobody listens to this target: `tracing` does not create the span at all.
///     let span = tracing::info_span!(target: "nobody_listens", "checkout");
///     assert!(span.is_disabled());
/// });
/// ```
pub fn layer<S>() -> Filtered<SkeinLayer, ListenedTargets, S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    static REBUILD_ON_CHANGE: std::sync::Once = std::sync::Once::new();
    REBUILD_ON_CHANGE.call_once(|| skein::on_listeners_changed(tracing_core::callsite::rebuild_interest_cache));
    let layer = SkeinLayer::new();
    let filter = ListenedTargets {
        sources: layer.sources.clone(),
    };
    layer.with_filter(filter)
}

/// The activity of a span, kept in the span's extensions.
struct SpanActivity(Activity);

thread_local! {
    /// The entered spans that have activities, innermost last, each with what was current
    /// before it: exiting needs no look-up in the registry.
    static ENTERED: RefCell<Vec<(Id, Option<Activity>)>> = const { RefCell::new(Vec::new()) };

    /// The span this thread created last, with a reference to its activity: most spans are
    /// entered right after they are made (`info_span!(…).entered()`, `in_scope`,
    /// `#[instrument]`), and entering one found here needs no look-up in the registry (a
    /// slab look-up and the extensions' lock, four atomic updates). Keyed by the layer too,
    /// as span ids are per subscriber.
    static JUST_CREATED: RefCell<Option<JustCreated>> = const { RefCell::new(None) };
}

/// See [`JUST_CREATED`].
struct JustCreated {
    layer: usize,
    id: Id,
    activity: Activity,
}

impl SkeinLayer {
    /// A layer; add it to a `tracing_subscriber::registry()`.
    pub fn new() -> Self {
        SkeinLayer::default()
    }

    fn source(&self, metadata: &Metadata<'_>) -> &'static ActivitySource {
        self.sources.source(metadata)
    }

    /// This layer's key in [`JUST_CREATED`]: its cache's address, which stays put while the
    /// layer lives (and while its spans do).
    fn key(&self) -> usize {
        Arc::as_ptr(&self.sources) as usize
    }

    /// The activity of span `id` if this thread just created it. Only a running activity is
    /// taken: one that stopped belongs to a closed span whose id was given out again (a span
    /// being entered is open, and closing a span stops its activity).
    fn take_just_created(&self, id: &Id) -> Option<Activity> {
        let key = self.key();
        let taken = JUST_CREATED
            .try_with(|slot| {
                let mut slot = slot.borrow_mut();
                let found = slot.as_ref().is_some_and(|j| j.layer == key && j.id == *id);
                if found {
                    slot.take()
                } else {
                    None
                }
            })
            .ok()
            .flatten()?;
        // Dropped (if stale) with no borrow held: the last reference may free it.
        (!taken.activity.is_stopped()).then_some(taken.activity)
    }
}

/// The activity of a span or of its nearest ancestor that has one.
fn nearest_activity<S: for<'a> LookupSpan<'a>>(span: Option<SpanRef<'_, S>>) -> Option<Activity> {
    span?
        .scope()
        .find_map(|s| s.extensions().get::<SpanActivity>().map(|a| a.0.clone()))
}

fn activity_of<S: Subscriber + for<'a> LookupSpan<'a>>(id: &Id, ctx: &Context<'_, S>) -> Option<Activity> {
    ctx.span(id)?.extensions().get::<SpanActivity>().map(|a| a.0.clone())
}

impl<S> tracing_subscriber::Layer<S> for SkeinLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if metadata.is_span() {
            self.source(metadata);
        }
        Interest::always()
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let metadata = attrs.metadata();
        let source = self.source(metadata);
        if !source.has_listeners() {
            return;
        }
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        let name = fields.name.take().map_or(Cow::Borrowed(metadata.name()), Cow::Owned);
        let kind = fields.kind.unwrap_or(ActivityKind::Internal);
        // An explicit parent (or none) wins; otherwise the current activity, which is the
        // innermost of the entered spans and the Skein activities started inside them.
        let explicit_parent = match attrs.parent() {
            Some(parent) => Some(nearest_activity(ctx.span(parent))),
            None if attrs.is_root() => Some(None),
            None => None,
        };
        // Detached: a span is current only while entered (`on_enter`), not from its creation.
        let activity = {
            let _parent = explicit_parent.as_ref().map(|p| CurrentGuard::new(p.as_ref()));
            source.start_activity_with(
                name,
                kind,
                ActivityStartOptions {
                    parent: ActivityParent::Current,
                    tags: std::mem::take(&mut fields.tags),
                    detached: true,
                    ..Default::default()
                },
            )
        };
        let Some(activity) = activity else { return };
        fields.apply_status(&activity);
        let Some(span) = ctx.span(id) else { return };
        let just_created = JustCreated {
            layer: self.key(),
            id: id.clone(),
            activity: activity.clone(),
        };
        span.extensions_mut().insert(SpanActivity(activity));
        drop(span);
        // What it replaces is dropped after the borrow ends (it may be the last reference).
        let replaced = JUST_CREATED.try_with(|slot| slot.borrow_mut().replace(just_created));
        drop(replaced);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(activity) = activity_of(id, &ctx) else { return };
        if !activity.is_all_data_requested() {
            return;
        }
        let mut fields = Fields::default();
        values.record(&mut fields);
        for tag in fields.tags.drain(..) {
            activity.set_tag(tag.key, tag.value);
        }
        if let Some(name) = fields.name.take() {
            activity.set_display_name(name);
        }
        fields.apply_status(&activity);
    }

    fn on_follows_from(&self, id: &Id, follows: &Id, ctx: Context<'_, S>) {
        let (Some(activity), Some(other)) = (activity_of(id, &ctx), activity_of(follows, &ctx)) else {
            return;
        };
        activity.add_link(ActivityLink::new(other.context()));
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let metadata = event.metadata();
        let severity = severity(metadata.level());
        let log = skein::logs::enabled(severity);
        let in_current = event.parent().is_none() && !event.is_root();
        if in_current && !log {
            // The usual case, with no reference to the current activity taken (two atomic
            // updates per event otherwise).
            if !Activity::is_current_all_data_requested() {
                return;
            }
            let mut fields = event_fields(event);
            if fields.status.is_some() {
                if let Some(activity) = Activity::current() {
                    fields.apply_status(&activity);
                }
            }
            let message = fields.message.take();
            // Added to whatever is current now: recording the fields ran their `Debug`.
            let _ = Activity::add_event_to_current(activity_event(metadata, message, fields.tags));
            return;
        }
        let activity = match event.parent() {
            Some(parent) => nearest_activity(ctx.span(parent)),
            None if event.is_root() => None,
            None => Activity::current(),
        };
        let span_event = activity.as_ref().filter(|a| a.is_all_data_requested());
        if !log && span_event.is_none() {
            return;
        }
        let mut fields = event_fields(event);
        let message = fields.message.take();
        if log {
            skein::logs::emit(log_record(
                metadata,
                severity,
                activity.as_ref(),
                message.clone(),
                &fields.tags,
            ));
        }
        let Some(activity) = span_event else { return };
        fields.apply_status(activity);
        activity.add_event(activity_event(metadata, message, fields.tags));
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        let previous = if let Some(activity) = self.take_just_created(id) {
            // The slot takes the reference kept for this.
            Activity::replace_current(Some(activity))
        } else {
            let Some(span) = ctx.span(id) else { return };
            // Made current from the span's own handle (the slot takes its own reference).
            let Some(previous) = span
                .extensions()
                .get::<SpanActivity>()
                .map(|activity| Activity::set_current(Some(&activity.0)))
            else {
                return;
            };
            previous
        };
        let _ = ENTERED.try_with(|stack| stack.borrow_mut().push((id.clone(), previous)));
    }

    fn on_exit(&self, id: &Id, _ctx: Context<'_, S>) {
        // Activities are dropped only once the stack is no longer borrowed: a drop may stop
        // an activity and run listeners, which may enter spans in turn.
        let exited = ENTERED.try_with(|stack| {
            let mut stack = stack.borrow_mut();
            let at = stack.iter().rposition(|(entered, _)| entered == id)?;
            let (_, previous) = stack.remove(at);
            Some(if at == stack.len() {
                // The innermost: what was current before it is current again.
                (Some(previous), None)
            } else {
                // Exited out of order: the span entered after it now goes back, when it
                // exits, to what was current before this one.
                let replaced = std::mem::replace(&mut stack[at].1, previous);
                (None, replaced)
            })
        });
        if let Ok(Some((restore, replaced))) = exited {
            if let Some(previous) = restore {
                // Handed back, not cloned; the span's reference that comes out is dropped.
                drop(Activity::replace_current(previous));
            }
            drop(replaced);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        // A span closed unentered leaves no reference behind to keep its memory.
        drop(self.take_just_created(&id));
        let Some(span) = ctx.span(&id) else { return };
        let Some(SpanActivity(activity)) = span.extensions_mut().remove::<SpanActivity>() else {
            return;
        };
        // Dropped (stopped) with no lock held: listeners run. The activity is detached, so
        // stopping it leaves this thread's current activity alone.
        drop(span);
        drop(activity);
    }
}

/// An event's fields.
fn event_fields(event: &Event<'_>) -> Fields {
    let mut fields = Fields {
        event_callsite: Some(event.metadata().callsite()),
        ..Fields::default()
    };
    event.record(&mut fields);
    fields
}

/// The activity event of a `tracing` event: its message, or its target if it has none (its
/// metadata name is only the source location), with its level, target and other fields as
/// tags.
fn activity_event(
    metadata: &'static Metadata<'static>,
    message: Option<Cow<'static, str>>,
    fields: Vec<Tag>,
) -> ActivityEvent {
    let name = message.unwrap_or(Cow::Borrowed(metadata.target()));
    let fixed = call_site_tags(metadata);
    let event = ActivityEvent::new(name);
    if fields.is_empty() {
        event.with_static_tags(fixed)
    } else {
        event.with_tags(fixed.iter().cloned().chain(fields))
    }
}

/// The `level` and `target` tags of an event call site, made once per call site and shared
/// by its events: an event with no other fields then allocates nothing.
fn call_site_tags(metadata: &'static Metadata<'static>) -> &'static [Tag] {
    static KEPT: LazyLock<RwLock<CallsiteMap<&'static [Tag]>>> = LazyLock::new(Default::default);
    thread_local! {
        static THREAD_KEPT: RefCell<CallsiteMap<&'static [Tag]>> = RefCell::new(HashMap::default());
    }
    // Call sites are statics, so this is bounded by the program's event call sites (and the
    // threads that raced to make a call site's pair first).
    kept_per_callsite(&THREAD_KEPT, &KEPT, metadata.callsite(), || {
        Box::leak(Box::new([
            Tag::new_static_str("level", metadata.level().as_str()),
            Tag::new_static_str("target", metadata.target()),
        ]))
    })
}

/// OpenTelemetry's severity for a `tracing` level.
fn severity(level: &Level) -> Severity {
    match *level {
        Level::TRACE => Severity::TRACE,
        Level::DEBUG => Severity::DEBUG,
        Level::INFO => Severity::INFO,
        Level::WARN => Severity::WARN,
        Level::ERROR => Severity::ERROR,
    }
}

/// The log record of an event: its message as the body, its other fields as attributes, its
/// target as the scope, in the trace of `activity`. `log` records arriving through
/// `tracing-log` carry their logger in `log.target` (the event's own target is then `log`)
/// and their source location in `log.*` fields, which are metadata, not attributes.
fn log_record(
    metadata: &'static Metadata<'static>,
    severity: Severity,
    activity: Option<&Activity>,
    message: Option<Cow<'static, str>>,
    tags: &[Tag],
) -> LogRecord {
    let now = skein::Timestamp::now();
    let mut scope = Cow::Borrowed(metadata.target());
    let mut attributes = Vec::with_capacity(tags.len());
    for tag in tags {
        match &*tag.key {
            "log.target" => scope = Cow::Owned(tag.value.to_string()),
            "log.module_path" | "log.file" | "log.line" => {}
            _ => attributes.push(tag.clone()),
        }
    }
    let mut record = LogRecord {
        timestamp: now,
        observed_timestamp: now,
        severity,
        severity_text: Cow::Borrowed(metadata.level().as_str()),
        body: message,
        attributes,
        trace_id: skein::TraceId::INVALID,
        span_id: skein::SpanId::INVALID,
        trace_flags: skein::ActivityTraceFlags::NONE,
        scope,
    };
    if let Some(activity) = activity {
        record.set_activity(activity);
    }
    record
}

/// Field values collected into tags, with the `otel.*`, `error` and `message` fields taken
/// out.
#[derive(Default)]
struct Fields {
    tags: Vec<Tag>,
    name: Option<String>,
    kind: Option<ActivityKind>,
    status: Option<ActivityStatusCode>,
    status_description: Option<String>,
    message: Option<Cow<'static, str>>,
    /// The event's callsite, for its message (see [`messages`]); `None` for spans.
    event_callsite: Option<Identifier>,
}

impl Fields {
    fn apply_status(&mut self, activity: &Activity) {
        if let Some(code) = self.status.take() {
            activity.set_status(code, self.status_description.take());
        }
    }

    fn record(&mut self, field: &Field, value: TagValue) {
        match field.name() {
            "otel.name" => self.name = Some(text(value)),
            "otel.kind" => {
                self.kind = match text(value).to_ascii_lowercase().as_str() {
                    "server" => Some(ActivityKind::Server),
                    "client" => Some(ActivityKind::Client),
                    "producer" => Some(ActivityKind::Producer),
                    "consumer" => Some(ActivityKind::Consumer),
                    "internal" => Some(ActivityKind::Internal),
                    _ => self.kind,
                }
            }
            "otel.status_code" => {
                self.status = match text(value).to_ascii_lowercase().as_str() {
                    "ok" => Some(ActivityStatusCode::Ok),
                    "error" => Some(ActivityStatusCode::Error),
                    "unset" => Some(ActivityStatusCode::Unset),
                    _ => self.status,
                }
            }
            "otel.status_description" | "otel.status_message" => self.status_description = Some(text(value)),
            "error" => {
                let description = text(value);
                self.status = Some(ActivityStatusCode::Error);
                self.tags.push(Tag::new("exception.message", description.clone()));
                self.status_description = Some(description);
            }
            "message" => self.message = Some(Cow::Owned(text(value))),
            name => self.tags.push(Tag::new(name, value)),
        }
    }
}

fn text(value: TagValue) -> String {
    match value {
        TagValue::Str(s) => s.into_string(),
        other => other.to_string(),
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            if let Some(callsite) = &self.event_callsite {
                self.message = Some(messages::text(callsite, value));
                return;
            }
        }
        // Short text moves inline (see `TagText`): the activity then owns no heap memory.
        self.record(field, TagValue::from(format!("{value:?}")));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        // Copied inline when short: no allocation.
        self.record(field, TagValue::Str(TagText::copy(value)));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.record(field, TagValue::I64(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        // Beyond i64 the exact digits matter more than the type.
        let value = i64::try_from(value).map_or_else(|_| TagValue::Str(value.to_string().into()), TagValue::I64);
        self.record(field, value);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.record(field, TagValue::F64(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.record(field, TagValue::Bool(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        // The source chain, as `add_exception` writes it.
        let mut message = value.to_string();
        let mut source = value.source();
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        self.record(field, TagValue::Str(message.into()));
    }
}
