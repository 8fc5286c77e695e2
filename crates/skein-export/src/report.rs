//! Where export failures go: the application's handler if it set one, otherwise standard
//! error — each kind of failure at once the first time, then at most once per
//! [`LOG_INTERVAL`] with the number of similar failures in between, so a backend that is down
//! for an hour neither floods the log nor goes quiet after the first line.

use std::collections::HashMap;
use std::mem::discriminant;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::{ExportError, Signal};

type Handler = Arc<dyn Fn(&ExportError) + Send + Sync>;

static HANDLER: RwLock<Option<Handler>> = RwLock::new(None);

/// The shortest time between two log lines of one kind of failure.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Sends every export failure of every pipeline to `handler` instead of standard error (one
/// call per failure: a failed export after its retries, a partial rejection, items dropped
/// from a full queue, a flush that missed its deadline). It runs on the export thread, or on
/// the thread that called a flush; keep it short. Replaces any handler set before.
///
/// ```
/// skein_export::set_error_handler(|error| {
///     if !error.is_transient() {
///         eprintln!("telemetry is being lost: {error}");
///     }
/// });
/// ```
pub fn set_error_handler(handler: impl Fn(&ExportError) + Send + Sync + 'static) {
    *HANDLER.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(handler));
}

/// Goes back to logging failures on standard error.
pub fn clear_error_handler() {
    *HANDLER.write().unwrap_or_else(|e| e.into_inner()) = None;
}

/// One kind of failure: the variant and the signal it concerns.
type Kind = (std::mem::Discriminant<ExportError>, Option<Signal>);

struct Logged {
    last: Instant,
    since: u64,
}

static LOGGED: Mutex<Option<HashMap<Kind, Logged>>> = Mutex::new(None);

fn signal_of(error: &ExportError) -> Option<Signal> {
    match error {
        ExportError::PartiallyRejected { signal, .. }
        | ExportError::QueueFull { signal, .. }
        | ExportError::NotDoneInTime { signal, .. } => Some(*signal),
        _ => None,
    }
}

/// Reports one failure.
pub(crate) fn report(error: ExportError) {
    let handler = HANDLER.read().unwrap_or_else(|e| e.into_inner()).clone();
    if let Some(handler) = handler {
        // Outside the lock: the handler may set another handler.
        handler(&error);
        return;
    }
    if let Some(line) = log_line(&error, Instant::now()) {
        eprintln!("{line}");
    }
}

/// The line to log for `error` now, or `None` if one of its kind was logged less than
/// [`LOG_INTERVAL`] ago.
fn log_line(error: &ExportError, now: Instant) -> Option<String> {
    let mut logged = LOGGED.lock().unwrap_or_else(|e| e.into_inner());
    let logged = logged.get_or_insert_with(HashMap::new);
    let kind = (discriminant(error), signal_of(error));
    match logged.get_mut(&kind) {
        Some(entry) if now.saturating_duration_since(entry.last) < LOG_INTERVAL => {
            entry.since += 1;
            None
        }
        Some(entry) => {
            let similar = std::mem::take(&mut entry.since);
            entry.last = now;
            Some(if similar > 0 {
                format!("skein-export: {error} ({similar} similar failure(s) since the last report)")
            } else {
                format!("skein-export: {error}")
            })
        }
        None => {
            logged.insert(kind, Logged { last: now, since: 0 });
            Some(format!("skein-export: {error}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_is_logged_at_once_then_at_most_once_per_interval_with_a_count() {
        // A variant no other test reports, so the shared state is this test's alone.
        let t0 = Instant::now();
        let shutdown = ExportError::Shutdown;
        assert_eq!(
            log_line(&shutdown, t0).as_deref(),
            Some("skein-export: the exporter is shut down")
        );
        assert_eq!(log_line(&shutdown, t0 + Duration::from_secs(1)), None);
        assert_eq!(log_line(&shutdown, t0 + Duration::from_secs(9)), None);
        let later = log_line(&shutdown, t0 + LOG_INTERVAL).unwrap();
        assert!(later.contains("2 similar failure(s)"), "{later}");
        // Another kind is not held back by the first.
        let queue = ExportError::QueueFull {
            signal: Signal::Logs,
            dropped: 3,
        };
        assert!(log_line(&queue, t0 + Duration::from_secs(1)).is_some());
    }
}
