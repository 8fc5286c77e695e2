//! The batch pipeline's per-thread rings: whatever threads stop recorded activities, and
//! whether they are still alive when the export thread gets to them, every activity is either
//! exported or counted as dropped.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use skein::{Activity, ActivityKind, ActivitySource};
use skein_export::{ActivityExporter, BatchConfig, ExportError, ExportPipeline};

static SOURCE: ActivitySource = ActivitySource::new("export.threads");

/// Counts what it exports; its first export waits until the test opens the gate, so the
/// application threads fill their rings meanwhile.
struct Gated {
    exported: Arc<Mutex<usize>>,
    first_export: Option<Sender<()>>,
    gate: Option<Receiver<()>>,
}

impl ActivityExporter for Gated {
    fn export(&mut self, batch: &[Activity]) -> Result<(), ExportError> {
        if let (Some(started), Some(gate)) = (self.first_export.take(), self.gate.take()) {
            let _ = started.send(());
            let _ = gate.recv();
        }
        *self.exported.lock().unwrap() += batch.len();
        Ok(())
    }
}

#[test]
fn activities_of_exited_threads_are_exported_or_counted_as_dropped() {
    let exported = Arc::new(Mutex::new(0));
    let (first_export_tx, first_export) = channel();
    let (open_gate, gate) = channel();
    let guard = ExportPipeline::new()
        .with_sources([SOURCE.name()])
        .batch(
            Gated {
                exported: exported.clone(),
                first_export: Some(first_export_tx),
                gate: Some(gate),
            },
            BatchConfig {
                max_queue_size: 8,
                max_export_batch_size: 8,
                scheduled_delay: Duration::from_secs(60),
                ..BatchConfig::default()
            },
        )
        .install();

    // A thread queues a full batch (waking the export thread, whose export then waits at the
    // gate), then far more than its ring holds, and exits.
    let per_thread = 40;
    std::thread::spawn(move || {
        for _ in 0..per_thread {
            drop(SOURCE.start_activity("work", ActivityKind::Internal));
        }
    })
    .join()
    .unwrap();
    first_export
        .recv_timeout(Duration::from_secs(10))
        .expect("the export thread was woken");
    // Two more threads while the export still waits: the queue is full, they drop.
    let threads: Vec<_> = (0..2)
        .map(|_| {
            std::thread::spawn(move || {
                for _ in 0..per_thread {
                    drop(SOURCE.start_activity("work", ActivityKind::Internal));
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert!(guard.dropped_count() > 0, "full rings drop and count");

    open_gate.send(()).unwrap();
    guard.force_flush(Duration::from_secs(10)).unwrap();
    let exported = *exported.lock().unwrap();
    let dropped = guard.dropped_count();
    // The first batch waited at the gate; what the exited threads left queued behind it was
    // exported after it, and the queue never held more than its 8 slots in all (the bound is
    // process-wide, as OTEL_BSP_MAX_QUEUE_SIZE is in other SDKs).
    assert!(
        exported > 8,
        "an exited thread's ring was drained ({exported} exported)"
    );
    assert!(
        exported <= 8 + 8,
        "8 in the gated export + at most 8 queued ({exported} exported)"
    );
    assert_eq!(
        exported as u64 + dropped,
        3 * per_thread as u64,
        "{exported} exported, {dropped} dropped"
    );
}

/// Counts what it exports.
struct Counting(Arc<std::sync::atomic::AtomicUsize>);

impl ActivityExporter for Counting {
    fn export(&mut self, batch: &[Activity]) -> Result<(), ExportError> {
        self.0.fetch_add(batch.len(), std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

#[test]
fn threads_queuing_together_at_a_steady_pace_lose_nothing() {
    static STEADY: ActivitySource = ActivitySource::new("export.threads.steady");
    let exported = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let guard = ExportPipeline::new()
        .with_sources([STEADY.name()])
        .batch(
            Counting(exported.clone()),
            BatchConfig {
                max_queue_size: 2048,
                max_export_batch_size: 512,
                scheduled_delay: Duration::from_secs(60),
                ..BatchConfig::default()
            },
        )
        .install();
    // Four threads, 600 activities each at about 30 a millisecond: more than the queue holds
    // in all, arriving so slowly that the export thread sleeps between batches. The queue's
    // bound is process-wide, so it is half full long before any one thread has queued a
    // batch (which is when a thread wakes a sleeping export thread for its own batch).
    let threads: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(|| {
                for i in 0..600 {
                    drop(STEADY.start_activity("steady", ActivityKind::Internal));
                    if i % 30 == 29 {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    guard.force_flush(Duration::from_secs(30)).unwrap();
    assert_eq!(
        exported.load(std::sync::atomic::Ordering::Relaxed),
        4 * 600,
        "nothing dropped"
    );
}
