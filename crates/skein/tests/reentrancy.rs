//! User code run by the crate (a listener's `Drop`, its callbacks) may start activities
//! itself: the crate must hold no borrow or lock across it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use skein::*;

/// The tests of this file change listeners and sources, which invalidates every thread's
/// listener cache; the first one needs the cache to stay put between two of its steps, so
/// they run one at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Listens to one source; when dropped, starts activities of sources nobody has used yet
/// (user code re-entering the crate from `Drop`; each new source also changes the listener
/// generation and takes a higher index in the threads' listener caches).
struct StartsOnDrop {
    listens_to: &'static str,
    drops: Arc<AtomicUsize>,
}

const LATE_SOURCES: usize = 100;

impl ActivityListener for StartsOnDrop {
    fn should_listen_to(&self, source: &ActivitySource) -> bool {
        source.name() == self.listens_to
    }
    fn sample(&self, _: &ActivityCreationOptions<'_, ActivityContext>) -> ActivitySamplingResult {
        ActivitySamplingResult::AllData
    }
}

impl Drop for StartsOnDrop {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
        for i in 0..LATE_SOURCES {
            let source = ActivitySource::get_or_create(&format!("reentrancy.filler.late.{i}"), None, Vec::new());
            let _a = source.start_activity("from drop", ActivityKind::Internal);
        }
    }
}

/// Listens to every source whose name starts with a prefix and counts what stops.
struct Counts {
    prefix: &'static str,
    stopped: AtomicUsize,
}

impl ActivityListener for Counts {
    fn should_listen_to(&self, source: &ActivitySource) -> bool {
        source.name().starts_with(self.prefix)
    }
    fn sample(&self, _: &ActivityCreationOptions<'_, ActivityContext>) -> ActivitySamplingResult {
        ActivitySamplingResult::AllData
    }
    fn on_stopped(&self, _: &Activity) {
        self.stopped.fetch_add(1, Ordering::SeqCst);
    }
}

/// The per-thread listener cache drops the last reference to a detached listener when it
/// notices the change; the listener's `Drop` starts activities of new sources, whose higher
/// cache indices make the nested starts grow the cache while it is being cleared. Before the
/// fix the cache was cleared through a `&mut` that the nested starts aliased: Miri reports
/// undefined behaviour, and without Miri the clear went on dropping the elements of a buffer
/// the nested start had freed.
#[test]
fn a_listener_dropped_by_the_cache_may_start_activities_in_its_drop() {
    let _serial = one_at_a_time();
    static WATCHED: ActivitySource = ActivitySource::new("reentrancy.watched");
    static FILLERS: [ActivitySource; 8] = [
        ActivitySource::new("reentrancy.filler.0"),
        ActivitySource::new("reentrancy.filler.1"),
        ActivitySource::new("reentrancy.filler.2"),
        ActivitySource::new("reentrancy.filler.3"),
        ActivitySource::new("reentrancy.filler.4"),
        ActivitySource::new("reentrancy.filler.5"),
        ActivitySource::new("reentrancy.filler.6"),
        ActivitySource::new("reentrancy.filler.7"),
    ];

    let counts = Arc::new(Counts {
        prefix: "reentrancy.filler",
        stopped: AtomicUsize::new(0),
    });
    let _counts = ActivitySource::add_activity_listener(counts.clone());
    let drops = Arc::new(AtomicUsize::new(0));
    let registration = ActivitySource::add_activity_listener(StartsOnDrop {
        listens_to: "reentrancy.watched",
        drops: drops.clone(),
    });

    // Register every source first (each registration invalidates the caches), the watched
    // one before the fillers so that the fillers sit after it in the cache.
    assert!(WATCHED.has_listeners());
    assert!(FILLERS.iter().all(|s| s.has_listeners()));
    // Now this thread caches all their sets in one generation.
    drop(
        WATCHED
            .start_activity("cached", ActivityKind::Internal)
            .expect("listened to"),
    );
    for source in &FILLERS {
        drop(
            source
                .start_activity("filler", ActivityKind::Internal)
                .expect("listened to"),
        );
    }
    let stopped_before = counts.stopped.load(Ordering::SeqCst);

    // Detach: the last reference to the listener is now in this thread's cache.
    drop(registration);
    assert_eq!(drops.load(Ordering::SeqCst), 0, "the cache still holds the listener");

    // The next start through the cache sees the new generation and releases the cached sets.
    assert!(WATCHED.start_activity("after", ActivityKind::Internal).is_none());
    drop(
        FILLERS[0]
            .start_activity("after", ActivityKind::Internal)
            .expect("listened to"),
    );
    assert_eq!(drops.load(Ordering::SeqCst), 1, "the listener was dropped by the cache");
    assert_eq!(
        counts.stopped.load(Ordering::SeqCst),
        stopped_before + LATE_SOURCES + 1,
        "the activities started in Drop reached their listener"
    );

    // Everything still works afterwards.
    for source in &FILLERS {
        drop(
            source
                .start_activity("filler again", ActivityKind::Internal)
                .expect("listened to"),
        );
    }
    assert_eq!(
        counts.stopped.load(Ordering::SeqCst),
        stopped_before + LATE_SOURCES + 1 + FILLERS.len()
    );
}

/// `should_listen_to` may start activities, create sources and add or remove listeners: the
/// registry asks it with no lock held. Before the fix, creating a source or adding a
/// listener from it deadlocked on the registry's lock (the test hung).
#[test]
fn should_listen_to_may_create_sources_and_add_or_remove_listeners() {
    let _serial = one_at_a_time();
    use std::sync::Mutex;

    struct Inner;
    impl ActivityListener for Inner {
        fn should_listen_to(&self, source: &ActivitySource) -> bool {
            source.name() == "reentrancy.registry.made"
        }
        fn sample(&self, _: &ActivityCreationOptions<'_, ActivityContext>) -> ActivitySamplingResult {
            ActivitySamplingResult::AllData
        }
    }

    struct Busy {
        inner: Mutex<Option<ListenerRegistration>>,
        asked: AtomicUsize,
    }
    impl ActivityListener for Busy {
        fn should_listen_to(&self, source: &ActivitySource) -> bool {
            if source.name() != "reentrancy.registry.asked" {
                return false;
            }
            self.asked.fetch_add(1, Ordering::SeqCst);
            // Each of these takes the registry's lock.
            let made = ActivitySource::get_or_create("reentrancy.registry.made", None, Vec::new());
            let previous = self
                .inner
                .lock()
                .unwrap()
                .replace(ActivitySource::add_activity_listener(Inner));
            drop(previous); // removes a listener
            let _ = made.start_activity("from should_listen_to", ActivityKind::Internal);
            true
        }
        fn sample(&self, _: &ActivityCreationOptions<'_, ActivityContext>) -> ActivitySamplingResult {
            ActivitySamplingResult::AllData
        }
    }

    static ASKED: ActivitySource = ActivitySource::new("reentrancy.registry.asked");
    let busy = Arc::new(Busy {
        inner: Mutex::new(None),
        asked: AtomicUsize::new(0),
    });
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let in_thread = busy.clone();
    let thread = std::thread::spawn(move || {
        // The source registers first (no listener yet), then the listener is asked for it
        // when added; a second listener is asked when the first one adds it.
        assert!(!ASKED.has_listeners());
        let registration = ActivitySource::add_activity_listener(in_thread.clone());
        let started = ASKED.start_activity("asked", ActivityKind::Internal).is_some();
        let made = ActivitySource::get_or_create("reentrancy.registry.made", None, Vec::new());
        let made_listened = made.start_activity("made", ActivityKind::Internal).is_some();
        drop(registration);
        done_tx.send((started, made_listened)).unwrap();
    });
    let (started, made_listened) = done_rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("deadlocked in the registry");
    thread.join().unwrap();
    assert!(started, "the listener that said yes is attached");
    assert!(made_listened, "the listener added from should_listen_to is attached");
    assert_eq!(busy.asked.load(Ordering::SeqCst), 1);
}

/// Replacing the trace-id generator drops the previous one, whose `Drop` (user code) may
/// start a root activity, which reads the generator. Before the fix it ran under the
/// generator's write lock, and the read deadlocked.
#[test]
fn a_trace_id_generators_drop_may_start_activities() {
    let _serial = one_at_a_time();
    static ROOTS: ActivitySource = ActivitySource::new("reentrancy.generator");
    struct StartsRoot;
    impl Drop for StartsRoot {
        fn drop(&mut self) {
            let root = ROOTS.start_activity_with(
                "from generator drop",
                ActivityKind::Internal,
                ActivityStartOptions {
                    parent: ActivityParent::Root,
                    ..Default::default()
                },
            );
            assert_eq!(root.expect("listened to").trace_id(), TraceId::from_u128(8));
        }
    }
    let _listener = ActivitySource::add_activity_listener(Counts {
        prefix: "reentrancy.generator",
        stopped: AtomicUsize::new(0),
    });
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let guard = StartsRoot;
        set_trace_id_generator(Some(Box::new(move || {
            let _ = &guard;
            TraceId::from_u128(7)
        })));
        // Replaced by another generator: the root started in `Drop` asks the new one.
        set_trace_id_generator(Some(Box::new(|| TraceId::from_u128(8))));
        set_trace_id_generator(None);
        done_tx.send(()).unwrap();
    });
    done_rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("deadlocked on the generator's lock");
    thread.join().unwrap();
}
