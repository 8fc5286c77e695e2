//! The loop both export threads (spans, logs) run: sleep until the schedule or a wake-up, and
//! answer flush and shutdown requests from the application. What is exported at each step is
//! the pipeline's business.

use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::thread::Thread;
use std::time::{Duration, Instant};

use crate::{ExportError, Signal};

/// A request from the application to the export thread; answered on the sender when done.
pub(crate) enum Control {
    Flush(Sender<()>),
    Shutdown(Sender<()>),
}

/// Why the export thread is exporting.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Woken before the schedule (a batch filled up): full batches only.
    Early,
    /// The scheduled delay passed: everything waiting.
    Due,
    /// A flush: everything waiting.
    Flush,
    /// The last export: everything waiting, then the exporter shuts down.
    Last,
}

/// How long the export thread naps between two looks while full batches keep coming: it then
/// takes them by itself, and the application threads make no system call to wake it. Short,
/// so that few finished activities wait at a time: they and their memory stay in the
/// producers' caches (measured: a root with 10 children through the pipeline ~970 ns with
/// 100 µs naps, ~915 ns with 30 µs, ~1,060 ns with 200 µs).
const BUSY_NAP: Duration = Duration::from_micros(30);

/// Whether the export thread is asleep until woken, as the application threads see it.
#[derive(Default)]
pub(crate) struct Sleep {
    asleep: AtomicBool,
}

impl Sleep {
    /// Called by an application thread that has queued a batch: wakes the export thread if it
    /// is asleep. While it is busy (napping between full batches) this is one load.
    #[inline]
    pub(crate) fn nudge(&self, thread: &Thread) {
        // What was just queued is visible before `asleep` is read: either this thread sees
        // the export thread asleep, or the export thread, having said so, sees the batch (it
        // looks once more after saying it).
        fence(Ordering::SeqCst);
        if self.asleep.load(Ordering::Relaxed) && self.asleep.swap(false, Ordering::AcqRel) {
            thread.unpark();
        }
    }
}

/// Runs until shutdown (asked for, or the application side gone), calling `export` at each
/// step; `export` says whether it found a full batch (the export thread then naps briefly
/// instead of sleeping until woken).
///
pub(crate) fn drive(
    scheduled_delay: Duration,
    control: Receiver<Control>,
    sleep: &Sleep,
    mut export: impl FnMut(Step) -> bool,
) {
    let mut next_export = Instant::now() + scheduled_delay;
    let mut busy = false;
    loop {
        let now = Instant::now();
        if now < next_export {
            if busy {
                std::thread::park_timeout(BUSY_NAP.min(next_export - now));
            } else {
                sleep.asleep.store(true, Ordering::SeqCst);
                fence(Ordering::SeqCst);
                // A batch queued while this thread was deciding to sleep was nudged for when
                // it looked awake: look once more (see `Sleep::nudge`).
                if export(Step::Early) {
                    sleep.asleep.store(false, Ordering::Relaxed);
                    busy = true;
                    continue;
                }
                std::thread::park_timeout(next_export - now);
                sleep.asleep.store(false, Ordering::SeqCst);
            }
        }
        match control.try_recv() {
            Ok(Control::Flush(done)) => {
                export(Step::Flush);
                let _ = done.send(());
            }
            Ok(Control::Shutdown(done)) => {
                export(Step::Last);
                let _ = done.send(());
                return;
            }
            Err(TryRecvError::Disconnected) => {
                export(Step::Last);
                return;
            }
            Err(TryRecvError::Empty) => {}
        }
        busy = if Instant::now() >= next_export {
            next_export = Instant::now() + scheduled_delay;
            export(Step::Due)
        } else {
            export(Step::Early)
        };
    }
}

/// Sends `make`'s request to the export thread, wakes it, and waits for the answer up to
/// `timeout`.
pub(crate) fn request(
    control: &Sender<Control>,
    thread: Option<&Thread>,
    make: impl FnOnce(Sender<()>) -> Control,
    timeout: Duration,
    signal: Signal,
) -> Result<(), ExportError> {
    let (tx, rx) = mpsc::channel();
    control.send(make(tx)).map_err(|_| ExportError::Shutdown)?;
    if let Some(thread) = thread {
        thread.unpark();
    }
    rx.recv_timeout(timeout)
        .map_err(|_| ExportError::NotDoneInTime { signal, timeout })
}

/// Asks the export thread to export what is queued and end, waits up to `timeout`, and joins
/// it; a thread that does not answer in time is reported and left to finish on its own.
pub(crate) fn shut_down(
    control: &Sender<Control>,
    thread: &mut Option<std::thread::JoinHandle<()>>,
    timeout: Duration,
    signal: Signal,
) -> Result<(), ExportError> {
    let result = request(
        control,
        thread.as_ref().map(|t| t.thread()),
        Control::Shutdown,
        timeout,
        signal,
    );
    match &result {
        Ok(()) => {
            if let Some(thread) = thread.take() {
                let _ = thread.join();
            }
        }
        Err(e) => crate::report::report(e.clone()),
    }
    result
}

/// Reports items dropped from a full queue: once each time the count has grown since.
#[derive(Default)]
pub(crate) struct DropReport {
    reported: u64,
}

impl DropReport {
    pub(crate) fn update(&mut self, dropped: u64, signal: Signal) {
        if dropped > self.reported {
            self.reported = dropped;
            crate::report::report(ExportError::QueueFull { signal, dropped });
        }
    }
}
