//! The loop both export threads (spans, logs) run: sleep until the schedule or a wake-up, and
//! answer flush and shutdown requests from the application. What is exported at each step is
//! the pipeline's business.

use std::sync::atomic::{AtomicBool, Ordering};
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

/// Runs until shutdown (asked for, or the application side gone), calling `export` at each
/// step.
pub(crate) fn drive(
    scheduled_delay: Duration,
    control: Receiver<Control>,
    wake: &AtomicBool,
    mut export: impl FnMut(Step),
) {
    let mut next_export = Instant::now() + scheduled_delay;
    loop {
        let now = Instant::now();
        if now < next_export && !wake.swap(false, Ordering::AcqRel) {
            std::thread::park_timeout(next_export - now);
        }
        wake.store(false, Ordering::Release);
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
        if Instant::now() >= next_export {
            export(Step::Due);
            next_export = Instant::now() + scheduled_delay;
        } else {
            export(Step::Early);
        }
    }
}

/// Sends `make`'s request to the export thread, wakes it, and waits for the answer up to
/// `timeout`.
pub(crate) fn request(
    control: &Sender<Control>,
    wake: &AtomicBool,
    thread: Option<&Thread>,
    make: impl FnOnce(Sender<()>) -> Control,
    timeout: Duration,
    signal: Signal,
) -> Result<(), ExportError> {
    let (tx, rx) = mpsc::channel();
    control.send(make(tx)).map_err(|_| ExportError::Shutdown)?;
    wake.store(true, Ordering::Release);
    if let Some(thread) = thread {
        thread.unpark();
    }
    rx.recv_timeout(timeout)
        .map_err(|_| ExportError::NotDoneInTime { signal, timeout })
}
