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

/// Longest nap while items keep arriving more slowly than a batch per [`BUSY_NAP`]: the
/// export thread then naps until a batch should be full at the rate it saw, instead of
/// sleeping until an application thread wakes it with a system call for every batch (in a
/// virtual machine a wake-up costs the waker microseconds: ~5% of a `tracing` span through
/// the bridge, measured). A batch that takes longer to fill is waited for asleep (its
/// wake-up is rare). An application thread that finds a quarter of the queue taken wakes it
/// from such a nap anyway ([`Sleep::hurry`]), so a burst after a lull, or a late timer, does
/// not drop activities.
const FLOWING_NAP_MAX: Duration = Duration::from_millis(2);

/// Items arriving at a batch per this or faster: the export thread sleeps until the
/// application thread that fills a batch wakes it, rather than napping (measured: root + 10
/// children ~750 ns that way, ~860 ns napping, as more finished activities wait).
const FLOWING_NAP_MIN: Duration = Duration::from_micros(150);

/// What a look at the queue found (see [`drive`]).
pub(crate) struct Looked {
    /// A full batch was waiting (and went).
    pub(crate) full: bool,
    /// Items left waiting for a full batch.
    pub(crate) waiting: usize,
    /// The size of a full batch.
    pub(crate) batch_size: usize,
}

/// Whether the export thread is asleep until woken, as the application threads see it.
#[derive(Default)]
pub(crate) struct Sleep {
    asleep: AtomicBool,
    /// Napping until a slowly filling batch should be full ([`FLOWING_NAP_MAX`] at most), as
    /// the application threads see it: [`Sleep::hurry`] cuts such a nap short.
    dozing: AtomicBool,
    /// Napping between full batches ([`BUSY_NAP`]): only an urgent [`Sleep::hurry`] (the
    /// queue nearly full) cuts it short. Waking the export thread from these naps whenever
    /// the queue was a quarter full cost a third of the activities delivered when producers
    /// outran it (measured), but a nap's timer firing milliseconds late on an idle virtual
    /// core must not drop activities either.
    busy_napping: AtomicBool,
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

    /// Called by an application thread that finds the queue filling up (spans: a quarter of
    /// the process-wide queue taken; logs: two batches): wakes the export thread if it is
    /// asleep or napping until a slow batch fills, and if `urgent` (spans: three quarters
    /// taken) also from a nap between full batches (a system call then, once per nap).
    #[cold]
    pub(crate) fn hurry(&self, thread: &Thread, urgent: bool) {
        let take = |flag: &AtomicBool| flag.load(Ordering::Relaxed) && flag.swap(false, Ordering::AcqRel);
        if take(&self.dozing) || take(&self.asleep) || (urgent && take(&self.busy_napping)) {
            thread.unpark();
        }
    }

    /// For tests: as if the export thread were napping until a batch fills.
    #[cfg(test)]
    pub(crate) fn set_napping_for_test(&self) {
        self.dozing.store(true, Ordering::Relaxed);
    }

    /// For tests: whether an application thread woke the export thread since
    /// [`set_napping_for_test`](Self::set_napping_for_test).
    #[cfg(test)]
    pub(crate) fn was_hurried_for_test(&self) -> bool {
        !self.dozing.load(Ordering::Relaxed)
    }
}

/// Runs until shutdown (asked for, or the application side gone), calling `export` at each
/// step; what `export` found decides the next wait: a full batch, a [`BUSY_NAP`]; items
/// arriving more slowly, a nap until a batch should be full ([`FLOWING_NAP_MAX`] at most);
/// nothing new, sleep until woken (or the schedule).
pub(crate) fn drive(
    scheduled_delay: Duration,
    control: Receiver<Control>,
    sleep: &Sleep,
    mut export: impl FnMut(Step) -> Looked,
) {
    let mut next_export = Instant::now() + scheduled_delay;
    let mut nap: Option<Duration> = None;
    let mut last_look = Instant::now();
    let mut waiting_then = 0;
    loop {
        let now = Instant::now();
        if now < next_export {
            if let Some(nap) = nap {
                let napping = if nap > BUSY_NAP {
                    &sleep.dozing
                } else {
                    &sleep.busy_napping
                };
                napping.store(true, Ordering::SeqCst);
                std::thread::park_timeout(nap.min(next_export - now));
                napping.store(false, Ordering::Relaxed);
            } else {
                sleep.asleep.store(true, Ordering::SeqCst);
                fence(Ordering::SeqCst);
                // A batch queued while this thread was deciding to sleep was nudged for when
                // it looked awake: look once more (see `Sleep::nudge`).
                let looked = export(Step::Early);
                if looked.full {
                    sleep.asleep.store(false, Ordering::Relaxed);
                    nap = Some(BUSY_NAP);
                    (last_look, waiting_then) = (Instant::now(), looked.waiting);
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
        let looked = if Instant::now() >= next_export {
            next_export = Instant::now() + scheduled_delay;
            export(Step::Due)
        } else {
            export(Step::Early)
        };
        let now = Instant::now();
        nap = next_nap(&looked, waiting_then, now - last_look);
        (last_look, waiting_then) = (now, looked.waiting);
    }
}

/// How long the export thread naps after a look that found `looked`, `waiting_then` items
/// having waited after the previous look, `since` ago; `None`: sleep until woken (or the
/// schedule).
fn next_nap(looked: &Looked, waiting_then: usize, since: Duration) -> Option<Duration> {
    if looked.full {
        return Some(BUSY_NAP);
    }
    if looked.waiting <= waiting_then {
        return None; // nothing new: idle
    }
    // Arriving, slower than a batch per nap. Quickly (a batch in less than `FLOWING_NAP_MIN`):
    // sleep, and the application thread that fills the batch wakes this one at once
    // (finished activities waiting longer cost the application more than that wake-up).
    // Slowly enough that a batch fills within `FLOWING_NAP_MAX`: nap until it should be full.
    // More slowly: sleep (the wake-ups are rare then).
    let arrived = (looked.waiting - waiting_then) as u32;
    let per_item = since / arrived;
    let missing = looked.batch_size.saturating_sub(looked.waiting) as u32;
    let until_full = (per_item * missing).max(BUSY_NAP);
    let flowing = per_item * looked.batch_size as u32 >= FLOWING_NAP_MIN && until_full <= FLOWING_NAP_MAX;
    flowing.then_some(until_full)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_urgent_hurry_cuts_a_nap_between_full_batches_short() {
        let sleep = Sleep::default();
        let me = std::thread::current();
        sleep.busy_napping.store(true, Ordering::Relaxed);
        sleep.hurry(&me, false);
        assert!(
            sleep.busy_napping.load(Ordering::Relaxed),
            "a quarter full: left napping"
        );
        sleep.hurry(&me, true);
        assert!(!sleep.busy_napping.load(Ordering::Relaxed), "nearly full: woken");
        sleep.dozing.store(true, Ordering::Relaxed);
        sleep.hurry(&me, false);
        assert!(!sleep.dozing.load(Ordering::Relaxed), "waiting for a slow batch: woken");
        sleep.asleep.store(true, Ordering::Relaxed);
        sleep.hurry(&me, false);
        assert!(!sleep.asleep.load(Ordering::Relaxed), "asleep: woken");
    }

    fn looked(full: bool, waiting: usize) -> Looked {
        Looked {
            full,
            waiting,
            batch_size: 512,
        }
    }

    #[test]
    fn the_export_thread_naps_only_while_items_flow_at_a_rate_worth_it() {
        let micros = Duration::from_micros;
        // A full batch went: look again soon.
        assert_eq!(next_nap(&looked(true, 100), 0, micros(80)), Some(BUSY_NAP));
        // Nothing new since the last look: idle, sleep until woken.
        assert_eq!(next_nap(&looked(false, 40), 40, micros(80)), None);
        // Fast (400 in 80 µs: a batch in ~100 µs): sleep, the thread that fills it wakes us.
        assert_eq!(next_nap(&looked(false, 400), 0, micros(80)), None);
        // Slow (an item per µs: a batch in 512 µs): nap until it should be full.
        assert_eq!(next_nap(&looked(false, 112), 32, micros(80)), Some(micros(400)));
        // Nearly full at that rate: at least the busy nap.
        assert_eq!(next_nap(&looked(false, 510), 430, micros(80)), Some(BUSY_NAP));
        // Very slow (an item per 100 µs): a batch takes 51 ms; sleep until woken.
        assert_eq!(next_nap(&looked(false, 2), 1, micros(100)), None);
    }
}
