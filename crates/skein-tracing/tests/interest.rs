//! Issue: `SkeinLayer` declared interest in every callsite, so `tracing` created every span
//! (about 230 ns each) even for targets nobody listens to. With its per-layer filter
//! (`skein_tracing::layer()`), a span is created only when a listener wants its target or
//! another layer wants it, and listeners added later are honoured at once.

use skein::{
    Activity, ActivityContext, ActivityCreationOptions, ActivityListener, ActivitySamplingResult, ActivitySource,
};
use tracing_subscriber::layer::SubscriberExt;

struct Wants(&'static str);

impl ActivityListener for Wants {
    fn should_listen_to(&self, source: &ActivitySource) -> bool {
        source.name() == self.0
    }
    fn sample(&self, _: &ActivityCreationOptions<'_, ActivityContext>) -> ActivitySamplingResult {
        ActivitySamplingResult::AllDataAndRecorded
    }
}

#[test]
fn spans_exist_only_where_someone_listens_and_other_layers_keep_theirs() {
    let alone = tracing_subscriber::registry().with(skein_tracing::layer());
    tracing::subscriber::with_default(alone, || {
        let span = tracing::info_span!(target: "interest_nobody", "unheard");
        assert!(span.is_disabled(), "nobody listens: not created");

        // A listener attached later is honoured by the next span of the same callsite.
        let registration = ActivitySource::add_activity_listener(Wants("interest_later"));
        for round in 0..2 {
            let span = tracing::info_span!(target: "interest_later", "heard", round);
            assert!(!span.is_disabled(), "round {round}");
            let _entered = span.enter();
            let current = Activity::current().expect("the span's activity is current");
            assert_eq!(current.operation_name(), "heard");
            tracing::info!(target: "interest_nobody", "an event inside an activity is recorded");
            assert_eq!(current.events().len(), 1);
        }
        drop(registration);
        let span = tracing::info_span!(target: "interest_later", "heard", round = 2);
        assert!(span.is_disabled(), "the listener is gone");
    });

    // Beside a layer that wants everything, the span exists for that layer, without an
    // activity.
    let with_fmt = tracing_subscriber::registry()
        .with(skein_tracing::layer())
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::sink));
    tracing::subscriber::with_default(with_fmt, || {
        let span = tracing::info_span!(target: "interest_nobody", "for fmt only");
        assert!(!span.is_disabled());
        let _entered = span.enter();
        assert!(Activity::current().is_none());
    });
}
