//! Baggage as tags: OpenTelemetry's BaggageSpanProcessor for activities. Baggage travels with
//! the request to every service but is not part of any span; copying chosen entries onto the
//! activities as tags makes them searchable in the backend ("every slow request of a gold
//! customer", in every service).

use std::borrow::Cow;

use crate::activity::Activity;
use crate::context::ActivityContext;
use crate::listener::{ActivityCreationOptions, ActivityListener, ActivitySamplingResult};
use crate::source::ActivitySource;

/// Which baggage entries become tags, and the listener that copies them onto every activity
/// as it starts (the activity's own baggage and its in-process parents', so a server
/// activity's baggage reaches all its children). It never changes what is sampled: it only
/// adds tags to activities other listeners record.
///
/// ```
/// use skein::{ActivityKind, ActivitySource, BaggageTags};
/// # use skein::*;
/// # struct All;
/// # impl ActivityListener for All {
/// #     fn should_listen_to(&self, _: &ActivitySource) -> bool { true }
/// #     fn sample(&self, _: &ActivityCreationOptions<'_, ActivityContext>) -> ActivitySamplingResult {
/// #         ActivitySamplingResult::AllDataAndRecorded
/// #     }
/// # }
/// # let _recording = ActivitySource::add_activity_listener(All);
/// static SOURCE: ActivitySource = ActivitySource::new("doc.baggage_tags");
///
/// let _tags = ActivitySource::add_activity_listener(BaggageTags::keys(["customer.tier"]));
/// let request = SOURCE.start_activity("GET /checkout", ActivityKind::Server).unwrap();
/// request.add_baggage("customer.tier", "gold").add_baggage("session.secret", "s3cr3t");
/// let child = SOURCE.start_activity("charge card", ActivityKind::Internal).unwrap();
/// assert_eq!(child.tag("customer.tier").unwrap().to_string(), "gold");
/// assert!(child.tag("session.secret").is_none());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaggageTags {
    keys: Keys,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Keys {
    All,
    Named(Vec<Cow<'static, str>>),
    Prefixed(Cow<'static, str>),
}

impl BaggageTags {
    /// Every baggage entry (mind what callers may put in baggage: it arrives from outside).
    pub fn all() -> Self {
        BaggageTags { keys: Keys::All }
    }

    /// The entries named exactly so.
    pub fn keys<K: Into<Cow<'static, str>>>(keys: impl IntoIterator<Item = K>) -> Self {
        BaggageTags {
            keys: Keys::Named(keys.into_iter().map(Into::into).collect()),
        }
    }

    /// The entries whose names start with `prefix` (`app.`).
    pub fn with_prefix(prefix: impl Into<Cow<'static, str>>) -> Self {
        BaggageTags {
            keys: Keys::Prefixed(prefix.into()),
        }
    }

    /// Whether the entry named `key` becomes a tag.
    pub fn matches(&self, key: &str) -> bool {
        match &self.keys {
            Keys::All => true,
            Keys::Named(names) => names.iter().any(|n| n == key),
            Keys::Prefixed(prefix) => key.starts_with(&**prefix),
        }
    }

    /// Sets the matching baggage entries of `activity` (its own, then its parents', the
    /// nearest winning) as its tags, if it records data.
    pub fn apply(&self, activity: &Activity) {
        if !activity.is_all_data_requested() {
            return;
        }
        let mut seen: Vec<String> = Vec::new();
        for (key, value) in activity.baggage() {
            if self.matches(&key) && !seen.contains(&key) {
                activity.set_tag(key.clone(), value);
                seen.push(key);
            }
        }
    }
}

impl ActivityListener for BaggageTags {
    fn should_listen_to(&self, _source: &ActivitySource) -> bool {
        true
    }

    /// Never asks for an activity: what is recorded is the other listeners' choice.
    fn sample(&self, _options: &ActivityCreationOptions<'_, ActivityContext>) -> ActivitySamplingResult {
        ActivitySamplingResult::None
    }

    fn on_started(&self, activity: &Activity) {
        self.apply(activity);
    }
}
