//! An activity nobody records costs no heap allocation, and freeing a recorded one frees all
//! it allocated. A counting global allocator watches this thread only, so other test threads
//! cannot disturb the count.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use skein::*;

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
    static DEALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = COUNTING.try_with(|c| {
            if c.get() {
                ALLOCATIONS.with(|a| a.set(a.get() + 1));
            }
        });
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let _ = COUNTING.try_with(|c| {
            if c.get() {
                DEALLOCATIONS.with(|a| a.set(a.get() + 1));
            }
        });
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The tests here add and remove listeners, which makes every thread's listener cache drop
/// the sets it held (a free on the counting thread): they run one at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn allocations_during(f: impl FnOnce()) -> usize {
    allocations_and_frees_during(f).0
}

fn allocations_and_frees_during(f: impl FnOnce()) -> (usize, usize) {
    ALLOCATIONS.with(|a| a.set(0));
    DEALLOCATIONS.with(|a| a.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    (ALLOCATIONS.with(|a| a.get()), DEALLOCATIONS.with(|a| a.get()))
}

struct Decline;
impl ActivityListener for Decline {
    fn should_listen_to(&self, s: &ActivitySource) -> bool {
        s.name() == "alloc.declined"
    }
    fn sample(&self, _: &ActivityCreationOptions<'_, ActivityContext>) -> ActivitySamplingResult {
        ActivitySamplingResult::None
    }
}

struct Record;
impl ActivityListener for Record {
    fn should_listen_to(&self, s: &ActivitySource) -> bool {
        s.name() == "alloc.recorded"
    }
    fn sample(&self, _: &ActivityCreationOptions<'_, ActivityContext>) -> ActivitySamplingResult {
        ActivitySamplingResult::AllDataAndRecorded
    }
}

#[test]
fn unsampled_activities_do_not_allocate() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    static NOBODY: ActivitySource = ActivitySource::new("alloc.nobody");
    static DECLINED: ActivitySource = ActivitySource::new("alloc.declined");
    static RECORDED: ActivitySource = ActivitySource::new("alloc.recorded");
    let _d = ActivitySource::add_activity_listener(Decline);
    let _r = ActivitySource::add_activity_listener(Record);
    // Registration (first use) may allocate; warm up.
    assert!(NOBODY.start_activity("warm", ActivityKind::Internal).is_none());
    assert!(DECLINED.start_activity("warm", ActivityKind::Internal).is_none());
    drop(RECORDED.start_activity("warm", ActivityKind::Internal));

    let n = allocations_during(|| {
        for _ in 0..1000 {
            let a = NOBODY.start_activity("op", ActivityKind::Internal);
            assert!(a.is_none());
        }
    });
    assert_eq!(n, 0, "no listener");

    let n = allocations_during(|| {
        for _ in 0..1000 {
            let a = DECLINED.start_activity("op", ActivityKind::Internal);
            assert!(a.is_none());
        }
    });
    assert_eq!(n, 0, "a listener that samples None");

    // Also under a recorded parent, where the sampler sees the parent's context.
    let parent = RECORDED.start_activity("parent", ActivityKind::Internal).unwrap();
    let n = allocations_during(|| {
        for _ in 0..1000 {
            assert!(DECLINED.start_activity("op", ActivityKind::Internal).is_none());
        }
    });
    assert_eq!(n, 0, "sampling None under a parent");
    drop(parent);

    // The counter works: a recorded activity with an owned tag value allocates (the string).
    let n = allocations_during(|| {
        let a = RECORDED.start_activity("op", ActivityKind::Internal).unwrap();
        a.set_tag("owned", String::from("value"));
    });
    assert!(n > 0);
}

/// Activities of every shape, each stopped and freed before the next: static strings only
/// (freed by releasing their references alone), and owned names, tags, arrays, spilled tags,
/// events with tags, links, baggage, extra fields, hierarchical ids and remote parents.
fn activities_of_every_shape(source: &'static ActivitySource) {
    static SHARED_TAGS: [Tag; 2] = [
        Tag::new_static_str("level", "INFO"),
        Tag::new_static_str("target", "app"),
    ];
    let plain = source.start_activity("plain", ActivityKind::Internal).unwrap();
    plain.add_tag("k", 1).add_event(ActivityEvent::new("event"));
    plain.add_event(ActivityEvent::new("shared tags").with_static_tags(&SHARED_TAGS));
    let child = source.start_activity("child", ActivityKind::Internal).unwrap();
    drop(child);
    drop(plain);
    // Shared tags and more: copied, then owned.
    let extended = source.start_activity("extended", ActivityKind::Internal).unwrap();
    extended.add_event(
        ActivityEvent::new("shared and own tags")
            .with_static_tags(&SHARED_TAGS)
            .with_tags([Tag::new("own", 1)]),
    );
    drop(extended);

    let owned = source
        .start_activity(String::from("owned name"), ActivityKind::Server)
        .unwrap();
    owned.add_tag(String::from("owned.key"), String::from("owned value"));
    owned.add_tag("long", "a value longer than the inline room of a tag".to_owned());
    owned.add_tag("array", vec![1i64, 2, 3]);
    for i in 0..6 {
        owned.add_tag("spilled", i);
    }
    owned.add_event(ActivityEvent::new(String::from("owned event")).with_tags([Tag::new("t", "v")]));
    owned.add_event(ActivityEvent::new("second event"));
    owned.add_link(ActivityLink::new(ActivityContext::new(
        TraceId::random(),
        SpanId::random(),
        ActivityTraceFlags::RECORDED,
        TraceState::parse("a=b").unwrap(),
        true,
    )));
    owned.add_baggage("key", String::from("value"));
    owned.set_display_name(String::from("display"));
    owned.set_status(ActivityStatusCode::Error, Some(String::from("failed")));
    owned.set_custom_property("property", Some(std::sync::Arc::new(5u8)));
    drop(owned);

    let hierarchical = source
        .start_activity_with(
            "hierarchical",
            ActivityKind::Internal,
            ActivityStartOptions {
                id_format: ActivityIdFormat::Hierarchical,
                ..Default::default()
            },
        )
        .unwrap();
    drop(source.start_activity("hierarchical child", ActivityKind::Internal));
    drop(hierarchical);

    let remote = source
        .start_activity_with(
            "remote",
            ActivityKind::Server,
            ActivityStartOptions {
                parent: ActivityParent::Id("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
                trace_state: Some("vendor=value"),
                ..Default::default()
            },
        )
        .unwrap();
    drop(remote);
    drop(source.start_activity_with(
        "request id",
        ActivityKind::Server,
        ActivityStartOptions {
            parent: ActivityParent::Id("|abc.1."),
            ..Default::default()
        },
    ));

    // A child inheriting its parent's trace state; creation tags and links.
    let with_state = source.start_activity("with state", ActivityKind::Internal).unwrap();
    with_state.set_trace_state(TraceState::parse("k=v").unwrap());
    drop(source.start_activity("inherits the state", ActivityKind::Internal));
    drop(with_state);
    drop(source.start_activity_with(
        "creation tags",
        ActivityKind::Internal,
        ActivityStartOptions {
            tags: vec![Tag::new("owned", String::from("value")), Tag::new("static", "value")],
            links: vec![ActivityLink::new(ActivityContext::new(
                TraceId::random(),
                SpanId::random(),
                ActivityTraceFlags::RECORDED,
                TraceState::EMPTY,
                true,
            ))],
            ..Default::default()
        },
    ));

    // Created first and started later, under a remote parent with a trace state.
    let created = source
        .create_activity(
            "created",
            ActivityKind::Client,
            ActivityStartOptions {
                parent: ActivityParent::Id("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
                trace_state: Some("vendor=value"),
                ..Default::default()
            },
        )
        .unwrap();
    drop(created.start());

    // Data stored after the activity stopped, and tags replaced by owned values.
    let late = source.start_activity("late", ActivityKind::Internal).unwrap();
    late.add_tag("replaced", 1);
    late.set_tag("replaced", String::from("owned"));
    late.set_tag("replaced", "a value longer than the inline room of a tag".to_owned());
    late.stop();
    late.add_tags([Tag::new("after stop", String::from("owned"))]);
    late.add_event(ActivityEvent::new(String::from("after stop")));
    drop(late);
}

#[test]
fn freeing_recorded_activities_frees_what_they_allocated() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    static RECORDED: ActivitySource = ActivitySource::new("alloc.recorded");
    let _r = ActivitySource::add_activity_listener(Record);
    // The first round fills this thread's pool of activity blocks, which is kept for reuse.
    activities_of_every_shape(&RECORDED);
    let (allocations, frees) = allocations_and_frees_during(|| {
        for _ in 0..10 {
            activities_of_every_shape(&RECORDED);
        }
    });
    assert!(allocations > 100, "the shapes allocate ({allocations})");
    assert_eq!(allocations, frees, "every allocation is freed");
}

#[test]
fn recorded_activities_of_static_data_do_not_allocate() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    static STATIC_DATA: ActivitySource = ActivitySource::new("alloc.recorded");
    static SHARED_TAGS: [Tag; 2] = [
        Tag::new_static_str("level", "INFO"),
        Tag::new_static_str("target", "app"),
    ];
    let _r = ActivitySource::add_activity_listener(Record);
    let activity = || {
        let a = STATIC_DATA.start_activity("op", ActivityKind::Internal).unwrap();
        a.add_tag("k", 1).add_tag("static", "value");
        a.add_event(ActivityEvent::new("event").with_static_tags(&SHARED_TAGS));
    };
    // The first one fills this thread's pool of activity blocks.
    activity();
    let n = allocations_during(|| {
        for _ in 0..1000 {
            activity();
        }
    });
    assert_eq!(n, 0, "static names, tags and shared event tags");
}
