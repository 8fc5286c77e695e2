//! An activity nobody records costs no heap allocation. A counting global allocator watches
//! this thread only, so other test threads cannot disturb the count.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use skein::*;

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
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
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during(f: impl FnOnce()) -> usize {
    ALLOCATIONS.with(|a| a.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.with(|a| a.get())
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
