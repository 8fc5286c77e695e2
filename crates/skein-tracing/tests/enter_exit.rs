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

#[test]
fn spans_of_two_subscribers_with_the_same_id_each_enter_their_own_activity() {
    let _listener = ActivitySource::add_activity_listener(All);
    let first = tracing::Dispatch::new(tracing_subscriber::registry().with(skein_tracing::layer()));
    let second = tracing::Dispatch::new(tracing_subscriber::registry().with(skein_tracing::layer()));
    let of_first = tracing::dispatcher::with_default(&first, || tracing::info_span!("of_first"));
    let of_second = tracing::dispatcher::with_default(&second, || tracing::info_span!("of_second"));
    // Span ids are per subscriber: both registries gave out their first one.
    assert_eq!(of_first.id(), of_second.id());
    // `of_second` was made last on this thread; entering `of_first` (through its own
    // subscriber) must still make `of_first`'s activity current.
    let entered = of_first.enter();
    assert_eq!(current_name().as_deref(), Some("of_first"));
    drop(entered);
    let entered = of_second.enter();
    assert_eq!(current_name().as_deref(), Some("of_second"));
    drop(entered);
    assert_eq!(current_name(), None);
}

#[test]
fn a_span_made_on_one_thread_and_entered_on_another_enters_its_own_activity() {
    let _listener = ActivitySource::add_activity_listener(All);
    let subscriber = tracing::Dispatch::new(tracing_subscriber::registry().with(skein_tracing::layer()));
    tracing::dispatcher::with_default(&subscriber, || {
        let made_here = tracing::info_span!("made_here");
        let elsewhere = {
            let subscriber = subscriber.clone();
            std::thread::spawn(move || {
                tracing::dispatcher::with_default(&subscriber, || tracing::info_span!("made_elsewhere"))
            })
            .join()
            .unwrap()
        };
        // Closed unentered, then entered in the other order than made.
        drop(tracing::info_span!("closed_unentered"));
        let entered = elsewhere.enter();
        assert_eq!(current_name().as_deref(), Some("made_elsewhere"));
        drop(entered);
        let entered = made_here.enter();
        assert_eq!(current_name().as_deref(), Some("made_here"));
        drop(entered);
        drop(made_here);
        // Made and entered at once, twice in a row (the second enter looks the span up).
        let span = tracing::info_span!("again");
        for _ in 0..2 {
            let entered = span.enter();
            assert_eq!(current_name().as_deref(), Some("again"));
            drop(entered);
        }
        assert_eq!(current_name(), None);
    });
}
