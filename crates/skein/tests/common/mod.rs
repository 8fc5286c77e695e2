//! A listener that records what it sees, for the integration tests.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use skein::*;

/// Records started and stopped activities of sources whose name starts with a prefix, and
/// answers `sample` with a fixed result.
pub struct Recorder {
    pub prefix: &'static str,
    pub result: Mutex<ActivitySamplingResult>,
    pub started: Mutex<Vec<Activity>>,
    pub stopped: Mutex<Vec<Activity>>,
    /// (operation name, parent context seen by `sample`)
    pub sampled: Mutex<Vec<(String, ActivityContext)>>,
    pub by_parent_id: Mutex<Option<ActivitySamplingResult>>,
    pub parent_ids_seen: Mutex<Vec<String>>,
    /// Asserted at stop: the stopping activity must still be current.
    pub current_at_stop: Mutex<Vec<bool>>,
}

impl Recorder {
    pub fn new(prefix: &'static str, result: ActivitySamplingResult) -> Arc<Recorder> {
        Arc::new(Recorder {
            prefix,
            result: Mutex::new(result),
            started: Mutex::default(),
            stopped: Mutex::default(),
            sampled: Mutex::default(),
            by_parent_id: Mutex::new(None),
            parent_ids_seen: Mutex::default(),
            current_at_stop: Mutex::default(),
        })
    }

    pub fn stopped_names(&self) -> Vec<String> {
        self.stopped.lock().unwrap().iter().map(|a| a.display_name()).collect()
    }
}

impl ActivityListener for Recorder {
    fn should_listen_to(&self, source: &ActivitySource) -> bool {
        source.name().starts_with(self.prefix)
    }

    fn sample(&self, options: &ActivityCreationOptions<'_, ActivityContext>) -> ActivitySamplingResult {
        self.sampled
            .lock()
            .unwrap()
            .push((options.name().to_owned(), options.parent().clone()));
        *self.result.lock().unwrap()
    }

    fn sample_using_parent_id(&self, options: &ActivityCreationOptions<'_, &str>) -> Option<ActivitySamplingResult> {
        let answer = *self.by_parent_id.lock().unwrap();
        if answer.is_some() {
            self.parent_ids_seen.lock().unwrap().push(options.parent().to_string());
        }
        answer
    }

    fn on_started(&self, activity: &Activity) {
        self.started.lock().unwrap().push(activity.clone());
    }

    fn on_stopped(&self, activity: &Activity) {
        let is_current = Activity::current().is_some_and(|c| c.ptr_eq(activity));
        self.current_at_stop.lock().unwrap().push(is_current);
        self.stopped.lock().unwrap().push(activity.clone());
    }

    fn on_exception(&self, _activity: &Activity, error: &(dyn std::error::Error + '_), tags: &mut Vec<Tag>) {
        tags.push(Tag::new("recorder.saw", error.to_string()));
    }
}
