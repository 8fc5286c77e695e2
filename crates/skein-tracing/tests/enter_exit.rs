//! Entering and exiting spans makes their activities current and restores what was, also when
//! spans are exited out of order (guards dropped in another order than taken).

use skein::{
    Activity, ActivityContext, ActivityCreationOptions, ActivityListener, ActivitySamplingResult, ActivitySource,
};
use tracing_subscriber::layer::SubscriberExt;

struct All;
impl ActivityListener for All {
    fn should_listen_to(&self, source: &ActivitySource) -> bool {
        source.name() == module_path!()
    }
    fn sample(&self, _: &ActivityCreationOptions<'_, ActivityContext>) -> ActivitySamplingResult {
        ActivitySamplingResult::AllDataAndRecorded
    }
}

fn current_name() -> Option<String> {
    Activity::current().map(|a| a.display_name())
}

#[test]
fn exiting_out_of_order_leaves_the_innermost_current_then_restores_the_outer() {
    let _listener = ActivitySource::add_activity_listener(All);
    let subscriber = tracing_subscriber::registry().with(skein_tracing::layer());
    tracing::subscriber::with_default(subscriber, || {
        let outer = tracing::info_span!("outer");
        let inner = tracing::info_span!("inner");
        let entered_outer = outer.enter();
        let entered_inner = inner.enter();
        assert_eq!(current_name().as_deref(), Some("inner"));
        drop(entered_outer); // out of order: "outer" is no longer entered
        assert_eq!(current_name().as_deref(), Some("inner"), "the innermost stays current");
        drop(entered_inner);
        assert_eq!(current_name(), None, "what was current before both");

        // In order, nested twice.
        let a = outer.enter();
        let b = inner.enter();
        drop(b);
        assert_eq!(current_name().as_deref(), Some("outer"));
        drop(a);
        assert_eq!(current_name(), None);
    });
}
