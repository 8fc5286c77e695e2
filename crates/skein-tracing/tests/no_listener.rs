//! With the bridge installed but no listener for a target, that target's spans and events
//! allocate nothing (counted by a global allocator; own test binary).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use tracing_subscriber::layer::SubscriberExt;

struct Counting;
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn work(order: u64) {
    let span = tracing::info_span!(target: "nobody_listens", "checkout", order.id = order, customer.tier = "gold");
    let _entered = span.enter();
    tracing::info!(target: "nobody_listens", items = 3, "order accepted");
}

fn allocations_for_100_spans() -> u64 {
    for n in 0..10 {
        work(n); // callsite registration, slab pages, thread-locals
    }
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for n in 0..100 {
        work(n);
    }
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

#[test]
fn an_unheard_target_costs_no_allocation() {
    // A listener exists, for another source: the bridge must still skip this target.
    let exporter = skein_export::InMemoryExporter::default();
    let _export = skein_export::ExportPipeline::new()
        .with_sources(["someone_else"])
        .simple(exporter.clone())
        .install();
    let subscriber = tracing_subscriber::registry().with(skein_tracing::SkeinLayer::new());
    let allocations = tracing::subscriber::with_default(subscriber, allocations_for_100_spans);
    assert_eq!(allocations, 0);
    assert!(exporter.finished().is_empty());
}
