//! Diagnostic sources: instrumentation publishes raw objects (requests, responses, errors) by
//! name, and subscribers that know those names can read them — e.g. to enrich the current
//! activity without touching the application (.NET `DiagnosticListener`).
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use skein::diagnostics::{self, DiagnosticListener, DiagnosticObserver};
//!
//! struct Seen(Mutex<Vec<String>>);
//! impl DiagnosticObserver for Seen {
//!     fn on_next(&self, name: &str, payload: &dyn std::any::Any) {
//!         if let Some(path) = payload.downcast_ref::<&str>() {
//!             self.0.lock().unwrap().push(format!("{name} {path}"));
//!         }
//!     }
//! }
//!
//! let seen = Arc::new(Seen(Mutex::new(Vec::new())));
//! let subscriber = seen.clone();
//! let _all = diagnostics::subscribe_all_listeners(move |listener: &Arc<DiagnosticListener>| {
//!     if listener.name() == "my.http" {
//!         listener.subscribe(subscriber.clone()).keep_forever();
//!     }
//! });
//! let publisher = DiagnosticListener::new("my.http");
//! if publisher.is_enabled_for("Request") {
//!     publisher.write("Request", &"/orders");
//! }
//! assert_eq!(seen.0.lock().unwrap().as_slice(), ["Request /orders"]);
//! ```

use std::any::Any;
use std::sync::{Arc, Mutex, Weak};

use arc_swap::ArcSwap;

use crate::activity::Activity;

/// Receives what a [`DiagnosticListener`] publishes.
pub trait DiagnosticObserver: Send + Sync + 'static {
    /// Whether this observer wants events called `name` (default: all).
    fn is_enabled(&self, _name: &str) -> bool {
        true
    }

    /// One published event: its name and payload (downcast it to the documented type).
    fn on_next(&self, name: &str, payload: &dyn Any);
}

impl<T: DiagnosticObserver + ?Sized> DiagnosticObserver for Arc<T> {
    fn is_enabled(&self, name: &str) -> bool {
        (**self).is_enabled(name)
    }
    fn on_next(&self, name: &str, payload: &dyn Any) {
        (**self).on_next(name, payload)
    }
}

type Observers = Vec<Arc<dyn DiagnosticObserver>>;

/// A named publisher of diagnostic events.
pub struct DiagnosticListener {
    name: String,
    observers: ArcSwap<Observers>,
}

/// Keeps an observer subscribed; dropping it unsubscribes.
#[must_use = "dropping the subscription unsubscribes at once"]
pub struct DiagnosticSubscription {
    unsubscribe: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl DiagnosticSubscription {
    /// Stays subscribed for the rest of the process.
    pub fn keep_forever(mut self) {
        self.unsubscribe = None;
    }
}

impl Drop for DiagnosticSubscription {
    fn drop(&mut self) {
        if let Some(f) = self.unsubscribe.take() {
            f();
        }
    }
}

type AllObserver = Arc<dyn Fn(&Arc<DiagnosticListener>) + Send + Sync>;

struct AllListeners {
    listeners: Vec<Weak<DiagnosticListener>>,
    observers: Vec<AllObserver>,
}

static ALL: Mutex<AllListeners> = Mutex::new(AllListeners {
    listeners: Vec::new(),
    observers: Vec::new(),
});

fn all() -> std::sync::MutexGuard<'static, AllListeners> {
    ALL.lock().unwrap_or_else(|e| e.into_inner())
}

impl DiagnosticListener {
    /// A new publisher; every all-listeners observer is told about it.
    pub fn new(name: impl Into<String>) -> Arc<DiagnosticListener> {
        let listener = Arc::new(DiagnosticListener {
            name: name.into(),
            observers: ArcSwap::from_pointee(Vec::new()),
        });
        let observers = {
            let mut all = all();
            all.listeners.retain(|w| w.strong_count() > 0);
            all.listeners.push(Arc::downgrade(&listener));
            all.observers.clone()
        };
        // Outside the lock: observers usually subscribe right here.
        for observer in observers {
            observer(&listener);
        }
        listener
    }

    /// The publisher's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// True if anyone is subscribed.
    #[inline]
    pub fn is_enabled(&self) -> bool {
        !self.observers.load().is_empty()
    }

    /// True if a subscriber wants events called `name` (check before building a payload).
    pub fn is_enabled_for(&self, name: &str) -> bool {
        self.observers.load().iter().any(|o| o.is_enabled(name))
    }

    /// Publishes `payload` as `name` to every subscriber, newest first (as .NET). Whether a
    /// subscriber wants `name` is the publisher's question before it builds a payload
    /// ([`is_enabled_for`](Self::is_enabled_for)), not a filter on delivery.
    pub fn write(&self, name: &str, payload: &dyn Any) {
        for observer in self.observers.load().iter().rev() {
            observer.on_next(name, payload);
        }
    }

    /// Subscribes `observer` until the returned subscription is dropped.
    pub fn subscribe(self: &Arc<Self>, observer: impl DiagnosticObserver) -> DiagnosticSubscription {
        let observer: Arc<dyn DiagnosticObserver> = Arc::new(observer);
        self.observers.rcu(|current| {
            let mut next = (**current).clone();
            next.push(observer.clone());
            next
        });
        let weak = Arc::downgrade(self);
        DiagnosticSubscription {
            unsubscribe: Some(Box::new(move || {
                if let Some(listener) = weak.upgrade() {
                    listener.observers.rcu(|current| {
                        let mut next = (**current).clone();
                        next.retain(|o| !Arc::ptr_eq(o, &observer));
                        next
                    });
                }
            })),
        }
    }

    /// Starts `activity` and writes `payload` as `{operation name}.Start`.
    pub fn start_activity(&self, activity: Activity, payload: &dyn Any) -> Activity {
        let activity = activity.start();
        self.write(&format!("{}.Start", activity.operation_name()), payload);
        activity
    }

    /// Writes `payload` as `{operation name}.Stop` (the activity is still current then), and
    /// stops `activity`.
    pub fn stop_activity(&self, activity: &Activity, payload: &dyn Any) {
        self.write(&format!("{}.Stop", activity.operation_name()), payload);
        activity.stop();
    }
}

/// Calls `observer` with every existing publisher (newest first, as .NET replays them) and
/// every one created later, until the returned subscription is dropped (.NET
/// `DiagnosticListener.AllListeners.Subscribe`).
pub fn subscribe_all_listeners(
    observer: impl Fn(&Arc<DiagnosticListener>) + Send + Sync + 'static,
) -> DiagnosticSubscription {
    let observer: AllObserver = Arc::new(observer);
    let existing: Vec<Arc<DiagnosticListener>> = {
        let mut all = all();
        all.observers.push(observer.clone());
        all.listeners.iter().rev().filter_map(Weak::upgrade).collect()
    };
    for listener in &existing {
        observer(listener);
    }
    DiagnosticSubscription {
        unsubscribe: Some(Box::new(move || {
            all().observers.retain(|o| !Arc::ptr_eq(o, &observer));
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Names(Mutex<Vec<String>>, &'static str);
    impl DiagnosticObserver for Names {
        fn is_enabled(&self, name: &str) -> bool {
            name.starts_with(self.1)
        }
        fn on_next(&self, name: &str, _: &dyn Any) {
            self.0.lock().unwrap().push(name.to_owned());
        }
    }

    #[test]
    fn replays_existing_publishers_newest_first_and_writes_to_every_subscriber() {
        let early = DiagnosticListener::new("test.replay.early");
        let middle = DiagnosticListener::new("test.replay.middle");
        let names = Arc::new(Names(Mutex::new(Vec::new()), "Op"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (names2, seen2) = (names.clone(), seen.clone());
        let all = subscribe_all_listeners(move |l| {
            if l.name().starts_with("test.replay.") {
                seen2.lock().unwrap().push(l.name().to_owned());
                l.subscribe(names2.clone()).keep_forever();
            }
        });
        let late = DiagnosticListener::new("test.replay.late");
        assert_eq!(
            seen.lock().unwrap().as_slice(),
            ["test.replay.middle", "test.replay.early", "test.replay.late"]
        );
        assert!(early.is_enabled_for("Op.Start") && !early.is_enabled_for("Other"));
        let a = late.start_activity(Activity::new("Op"), &());
        // Not wanted by `is_enabled`, still delivered: the predicate is the publisher's.
        late.write("Other", &());
        late.stop_activity(&a, &());
        assert_eq!(names.0.lock().unwrap().as_slice(), ["Op.Start", "Other", "Op.Stop"]);
        assert!(a.is_stopped());
        drop(all);
        let _after = DiagnosticListener::new("test.replay.after");
        assert_eq!(seen.lock().unwrap().len(), 3);
        drop(middle);
    }

    #[test]
    fn unsubscribe_on_drop() {
        let l = DiagnosticListener::new("test.unsubscribe");
        let names = Arc::new(Names(Mutex::new(Vec::new()), ""));
        let sub = l.subscribe(names.clone());
        assert!(l.is_enabled());
        drop(sub);
        assert!(!l.is_enabled());
        l.write("x", &1);
        assert!(names.0.lock().unwrap().is_empty());
    }
}
