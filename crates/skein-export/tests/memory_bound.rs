//! Under an exporter that has stalled, the memory the pipeline holds stays within the bound
//! `BatchConfig` documents, however many threads keep recording: the queue bound is
//! process-wide, and what does not fit is dropped and counted.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use skein::{Activity, ActivityKind, ActivitySource};
use skein_export::{ActivityExporter, BatchConfig, ExportError, ExportPipeline};

/// Counts live heap bytes and their peak.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed) + layout.size() as isize;
        PEAK.fetch_max(live, Ordering::Relaxed);
        // SAFETY: forwarded as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

static SOURCE: ActivitySource = ActivitySource::new("memory_bound");

/// Takes the first batch and then waits at a gate: a backend that stopped answering.
struct Stalled {
    exported: Arc<AtomicUsize>,
    first: Option<Sender<()>>,
    gate: Mutex<Receiver<()>>,
}

impl ActivityExporter for Stalled {
    fn export(&mut self, batch: &[Activity]) -> Result<(), ExportError> {
        self.exported.fetch_add(batch.len(), Ordering::SeqCst);
        if let Some(first) = self.first.take() {
            let _ = first.send(());
            let _ = self.gate.lock().unwrap().recv();
        }
        Ok(())
    }
}

#[test]
fn a_stalled_exporter_holds_no_more_than_the_documented_bound() {
    const QUEUE: usize = 4000;
    const BATCH: usize = 500;
    const THREADS: usize = 8;
    const PER_THREAD: usize = 20_000;
    let exported = Arc::new(AtomicUsize::new(0));
    let (first_tx, first) = channel();
    let (open, gate) = channel();
    let guard = ExportPipeline::new()
        .with_sources([SOURCE.name()])
        .batch(
            Stalled {
                exported: exported.clone(),
                first: Some(first_tx),
                gate: Mutex::new(gate),
            },
            BatchConfig {
                max_queue_size: QUEUE,
                max_export_batch_size: BATCH,
                scheduled_delay: Duration::from_millis(10),
                ..BatchConfig::default()
            },
        )
        .install();
    // The first batch reaches the exporter, which then stalls.
    for _ in 0..BATCH {
        drop(SOURCE.start_activity("warm-up", ActivityKind::Internal));
    }
    first.recv_timeout(Duration::from_secs(10)).expect("the first export");
    let baseline = LIVE.load(Ordering::SeqCst);
    PEAK.store(baseline, Ordering::SeqCst);

    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..PER_THREAD {
                    if let Some(a) = SOURCE.start_activity("work", ActivityKind::Internal) {
                        a.set_tag("n", (t * PER_THREAD + i) as i64);
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let grown = PEAK.load(Ordering::SeqCst) - baseline;
    let dropped = guard.dropped_count();
    open.send(()).unwrap();
    guard.force_flush(Duration::from_secs(10)).unwrap();
    let exported = exported.load(Ordering::SeqCst);

    // Every activity is exported or counted as dropped, and at most the queue's worth (plus
    // the stalled batch) was waiting: the bound is for all threads together.
    assert_eq!(exported as u64 + dropped, (BATCH + THREADS * PER_THREAD) as u64);
    assert!(exported <= BATCH + QUEUE, "{exported} exported");
    assert!(
        exported > BATCH,
        "what was queued during the stall is exported after it"
    );

    // The documented bound (`BatchConfig::max_queue_size`): 1 KiB per queued activity
    // (its block and tags), 8 bytes per queue slot in each recording thread's ring, each
    // thread's pool of 256 free blocks, the process-wide spare list of 4,096 blocks, and
    // 4,096 exported activities waiting to be freed by the application threads.
    let bound = (QUEUE * 1024 + THREADS * (QUEUE * 8 + 256 * 1024) + 2 * 4096 * 1024) as isize;
    assert!(
        grown <= bound,
        "the heap grew by {grown} bytes while the exporter stalled; the bound is {bound}"
    );
    drop(guard);
}
