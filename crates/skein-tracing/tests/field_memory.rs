//! What a `tracing` span's activity keeps on the heap: short string fields are kept inline
//! and events without fields share their call site's tags, so a typical span's activity owns
//! no heap memory (no allocation for it, and it is freed without running drop code); long
//! values still do, and read back whole.

use skein::{
    Activity, ActivityContext, ActivityCreationOptions, ActivityListener, ActivitySamplingResult, ActivitySource,
};
use std::sync::{Arc, Mutex};
use tracing_subscriber::layer::SubscriberExt;

/// Keeps every stopped activity of this test's target.
#[derive(Default)]
struct Keep(Mutex<Vec<Activity>>);
impl ActivityListener for Keep {
    fn should_listen_to(&self, source: &ActivitySource) -> bool {
        source.name() == module_path!()
    }
    fn sample(&self, _: &ActivityCreationOptions<'_, ActivityContext>) -> ActivitySamplingResult {
        ActivitySamplingResult::AllDataAndRecorded
    }
    fn on_stopped(&self, activity: &Activity) {
        self.0.lock().unwrap().push(activity.clone());
    }
}

#[test]
fn short_fields_and_plain_events_leave_the_activity_owning_no_heap_memory() {
    let kept = Arc::new(Keep::default());
    let _listener = ActivitySource::add_activity_listener(kept.clone());
    let subscriber = tracing_subscriber::registry().with(skein_tracing::layer());
    let tier = String::from("gold");
    let long = "a customer tier name well past the inline room";
    tracing::subscriber::with_default(subscriber, || {
        for customer in [tier.as_str(), long] {
            let span = tracing::info_span!("checkout", order.id = 42i64, customer, region = ?"eu-west");
            let _entered = span.enter();
            tracing::info!("event");
        }
    });
    let kept = kept.0.lock().unwrap();
    let [short, long_field] = &kept[..] else {
        panic!("two activities, got {}", kept.len())
    };
    let text = |activity: &Activity, key: &str| activity.tag(key).and_then(|v| v.as_str().map(str::to_owned));
    assert_eq!(text(short, "customer").as_deref(), Some("gold"));
    assert_eq!(text(short, "region").as_deref(), Some("\"eu-west\""));
    assert_eq!(short.events().len(), 1);
    assert_eq!(short.events()[0].tags.len(), 2, "level and target");
    assert!(!short.owns_heap_memory());
    assert_eq!(text(long_field, "customer").as_deref(), Some(long));
    assert!(long_field.owns_heap_memory());
}
