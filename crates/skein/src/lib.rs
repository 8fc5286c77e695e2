//! The Activity model of Skein: .NET-style distributed tracing for Rust.
//!
//! Instrumented code creates [`Activity`]s (spans) from named [`ActivitySource`]s. Nothing is
//! allocated unless an [`ActivityListener`] wants the source, and the listeners' sampling
//! decides how much is recorded ([`ActivitySamplingResult`]). [`Activity::current`] flows
//! through synchronous calls, and across `.await`s and into spawned tasks and threads with
//! [`FutureExt`] and [`with_current`]. Ids are W3C Trace Context by default, hierarchical
//! `Request-Id`s on request; [`propagation`] moves contexts and baggage across processes, and
//! [`diagnostics`] lets instrumentation publish raw objects to subscribers, and [`logs`] carries
//! log records, stamped with the current trace, from logging libraries to log exporters. This
//! crate knows
//! nothing of HTTP or export: those live in `skein-http` and `skein-export`.
//!
//! ```
//! use skein::*;
//!
//! static SOURCE: ActivitySource = ActivitySource::new("quickstart");
//!
//! struct Print;
//! impl ActivityListener for Print {
//!     fn should_listen_to(&self, s: &ActivitySource) -> bool { s.name() == "quickstart" }
//!     fn sample(&self, _: &ActivityCreationOptions<'_, ActivityContext>) -> ActivitySamplingResult {
//!         ActivitySamplingResult::AllDataAndRecorded
//!     }
//!     fn on_stopped(&self, a: &Activity) {
//!         println!("{} {} parent={}", a.display_name(), a.span_id(), a.parent_span_id());
//!     }
//! }
//!
//! let _listener = ActivitySource::add_activity_listener(Print);
//! let parent = SOURCE.start_activity("parent", ActivityKind::Server).unwrap();
//! let child = SOURCE.start_activity("child", ActivityKind::Internal).unwrap();
//! assert_eq!(child.parent_span_id(), parent.span_id());
//! ```
//!
//! # Differences from .NET
//!
//! Skein follows `System.Diagnostics` except where .NET's behaviour would lose or corrupt data
//! in Rust programs, or where Rust gives a cheaper way to the same result:
//!
//! - **Stopping an activity that is not current** (on another thread, or out of order on
//!   the same one) leaves the current activity alone; .NET sets `Activity.Current` to the
//!   stopped activity's previous one wherever `Stop` runs, which cuts off whatever is running
//!   there. The thread (or task) where the stopped activity is still current makes its
//!   previous activity current when it next looks, so a stopped activity is never current
//!   again and never becomes a parent (.NET can hand one out).
//! - **Hierarchical activities also get W3C-shaped ids** (a trace id derived from the root of
//!   the `Request-Id`, a span id from the whole id), so that they export as one trace from
//!   every process; in .NET, `TraceId` and `SpanId` are empty for them.
//! - **Propagation-only activities are not `recorded`**: an activity sampled
//!   `PropagationData` carries trace flags `-00` downstream, as OpenTelemetry's SDKs propagate
//!   a dropped span; .NET copies the parent's `recorded` flag, which asks the services
//!   downstream to record a trace that has a hole here.
//! - **Activities end when dropped**: dropping a started activity stops it (Rust has no
//!   finalisers to rely on, and a forgotten `Stop` in .NET leaks the activity as current).
//! - **The current activity follows futures that ask for it**: .NET's `AsyncLocal` flows
//!   `Activity.Current` into every continuation by itself; Rust has no execution context to
//!   carry it, so async code wraps futures ([`FutureExt::with_current`],
//!   [`FutureExt::in_activity`]) and threads take it along ([`with_current`]).
//! - **Baggage travels in the W3C `baggage` header for W3C activities** (`Correlation-Context`
//!   only for hierarchical ones), as .NET 10's default propagator does; .NET's older
//!   `LegacyPropagator` sent `Correlation-Context` for both.
//! - **Listener callbacks may re-enter**: `should_listen_to`, samplers and notifications run
//!   with no lock of the crate held, so they may start activities, create sources and add or
//!   remove listeners.

#![warn(missing_docs)]

mod activity;
mod baggage_tags;
mod clock;
mod context;
mod current;
pub mod diagnostics;
pub mod hierarchical;
mod id;
mod inline_vec;
mod listener;
pub mod logs;
pub mod propagation;
pub mod sampler;
mod shared;
mod source;
mod sync;
mod tag;
mod trace_state;

pub use activity::{
    Activity, ActivityData, ActivityEvent, ActivityIdFormat, ActivityKind, ActivityLink, ActivityStatusCode,
};
pub use baggage_tags::BaggageTags;
pub use clock::Timestamp;
pub use context::ActivityContext;
pub use current::{with_current, CurrentGuard, FutureExt, WithActivity};
pub use id::{set_trace_id_generator, ActivityTraceFlags, ParseError, SpanId, TraceId};
pub use listener::{ActivityCreationOptions, ActivityListener, ActivitySamplingResult, LocalParentDecision};
pub use sampler::{AlwaysOffSampler, AlwaysOnSampler, ParentBasedSampler, Sampler, TraceIdRatioSampler};
pub use source::{
    on_listeners_changed, suppress_instrumentation, ActivityParent, ActivitySource, ActivityStartOptions,
    ListenerRegistration, SuppressedInstrumentation,
};
pub use tag::{IntoTagValue, Tag, TagText, TagValue};
pub use trace_state::TraceState;
