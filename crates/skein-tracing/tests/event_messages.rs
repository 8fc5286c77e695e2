//! Event messages become event names (and log bodies) exactly, whether a callsite always says
//! the same (its text is then shared, not copied) or says something different each time.

use skein::{ActivityEvent, ActivityKind, ActivitySource};
use skein_export::{ExportPipeline, InMemoryExporter};
use tracing_subscriber::layer::SubscriberExt;

static APP: ActivitySource = ActivitySource::new("event_messages");

/// Formats by logging: a message whose `Debug` logs while the layer formats it (no borrow
/// may be held then; `tracing` itself drops the inner event, as it does any event raised
/// while the subscriber is handling one).
struct Chatty(u32);
impl std::fmt::Debug for Chatty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        tracing::info!("from inside Debug");
        write!(f, "chatty {}", self.0)
    }
}

/// The events that `log` makes, with the bridge installed, inside an activity of `source`,
/// as exported.
fn events_exported(source: &'static ActivitySource, log: impl FnOnce()) -> Vec<ActivityEvent> {
    let exporter = InMemoryExporter::default();
    let _export = ExportPipeline::new()
        .with_sources([source.name()])
        .simple(exporter.clone())
        .install();
    let subscriber = tracing_subscriber::registry().with(skein_tracing::layer());
    tracing::subscriber::with_default(subscriber, || {
        let activity = source.start_activity("work", ActivityKind::Internal).unwrap();
        log();
        drop(activity);
    });
    exporter.finished()[0].events()
}

#[test]
fn constant_and_varying_messages_are_recorded_as_said() {
    let events = events_exported(&APP, || {
        for i in 0..3 {
            tracing::info!("cart emptied");
            tracing::info!("item {} removed", i);
        }
        tracing::info!("{:?}", Chatty(7));
    });
    let names: Vec<String> = events.iter().map(|e| e.name.to_string()).collect();
    assert_eq!(
        names,
        [
            "cart emptied",
            "item 0 removed",
            "cart emptied",
            "item 1 removed",
            "cart emptied",
            "item 2 removed",
            "chatty 7"
        ]
    );
}

#[test]
fn every_event_carries_its_own_call_sites_level_and_target() {
    static TAGGED: ActivitySource = ActivitySource::new("event_messages.tags");
    let events = events_exported(&TAGGED, || {
        for _ in 0..2 {
            tracing::info!("plain");
            tracing::warn!(target: "payments", "elsewhere");
            tracing::error!(attempt = 3, "with a field");
        }
    });
    let tags: Vec<Vec<String>> = events
        .iter()
        .map(|e| e.tags.iter().map(|t| format!("{}={}", t.key, t.value)).collect())
        .collect();
    let here = module_path!();
    let plain = vec!["level=INFO".to_string(), format!("target={here}")];
    let elsewhere = vec!["level=WARN".to_string(), "target=payments".to_string()];
    let with_field = vec![
        "level=ERROR".to_string(),
        format!("target={here}"),
        "attempt=3".to_string(),
    ];
    assert_eq!(
        tags,
        [
            plain.clone(),
            elsewhere.clone(),
            with_field.clone(),
            plain,
            elsewhere,
            with_field
        ]
    );
}
