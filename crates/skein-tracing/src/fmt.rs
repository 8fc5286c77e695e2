//! Log lines that carry the current activity's trace and span ids.

use std::fmt;

use skein::Activity;
use tracing_core::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Wraps a `tracing_subscriber::fmt` event format and adds `trace_id` and `span_id` of the
/// current activity to each line: ` trace_id=… span_id=…` at the end of a text line, two more
/// members of a JSON object. Lines logged outside any activity are left as they are. Works for
/// `log` records too once they reach `tracing` (tracing-subscriber installs the `log`
/// bridge in `init()` when its `tracing-log` feature is on).
///
/// ```
/// use tracing_subscriber::layer::SubscriberExt;
/// let format = skein_tracing::WithTraceIds::new(tracing_subscriber::fmt::format());
/// let subscriber = tracing_subscriber::registry()
///     .with(skein_tracing::layer())
///     .with(tracing_subscriber::fmt::layer().event_format(format));
/// # drop(subscriber);
/// ```
///
/// A text line then reads
/// `2026-11-21T10:00:00.000000Z  INFO checkout: order accepted order.id=42 trace_id=4bf92f3577b34da6a3ce929d0e0e4736 span_id=00f067aa0ba902b7`.
#[derive(Clone, Debug, Default)]
pub struct WithTraceIds<F> {
    inner: F,
}

impl<F> WithTraceIds<F> {
    /// Adds the ids to what `inner` writes.
    pub fn new(inner: F) -> Self {
        WithTraceIds { inner }
    }
}

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let Some(activity) = Activity::current() else {
            return self.inner.format_event(ctx, writer, event);
        };
        let (trace_id, span_id) = (activity.trace_id(), activity.span_id());
        let mut line = String::new();
        self.inner.format_event(ctx, Writer::new(&mut line), event)?;
        let body = line.trim_end_matches('\n');
        match body.strip_suffix('}').filter(|_| body.starts_with('{')) {
            Some(object) => writeln!(
                writer,
                "{object},\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\"}}"
            ),
            None => writeln!(writer, "{body} trace_id={trace_id} span_id={span_id}"),
        }
    }
}
