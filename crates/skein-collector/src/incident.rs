//! Internal failures: the details go to the collector's log under a number, and clients get
//! only that number (storage errors name files and SQL, which are not theirs to see).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static NEXT: AtomicU64 = AtomicU64::new(1);

/// Logs `detail` under a new incident number; returns the message for the client.
pub(crate) fn report(detail: &str) -> String {
    let number = NEXT.fetch_add(1, Ordering::Relaxed);
    eprintln!("skein: internal error #{number}: {detail}");
    format!("internal error #{number}; the collector's log has the details")
}

/// How often one kind of recurring trouble is logged at most.
const QUIET_FOR: Duration = Duration::from_secs(60);

/// Logs `message` unless the same `kind` of trouble was logged less than a minute ago; the
/// next line says how many were left out (a full disk fails every write: one line a minute,
/// not one per request). True if it logged.
pub(crate) fn warn_now_and_then(kind: &'static str, message: &str) -> bool {
    static LAST: Mutex<Option<HashMap<&'static str, (Instant, u64)>>> = Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    let seen = last
        .get_or_insert_with(HashMap::new)
        .entry(kind)
        .or_insert((Instant::now() - QUIET_FOR, 0));
    if seen.0.elapsed() >= QUIET_FOR {
        let left_out = std::mem::take(&mut seen.1);
        seen.0 = Instant::now();
        if left_out > 0 {
            eprintln!("skein: {message} ({left_out} more like it in the last minute)");
        } else {
            eprintln!("skein: {message}");
        }
        true
    } else {
        seen.1 += 1;
        false
    }
}

#[cfg(test)]
mod tests {
    /// Issue: a full disk logged the same failure 219 times.
    #[test]
    fn recurring_trouble_is_logged_once_a_minute() {
        let logged = (0..219)
            .filter(|_| super::warn_now_and_then("test-kind", "disk full"))
            .count();
        assert_eq!(logged, 1);
        assert!(super::warn_now_and_then("test-other-kind", "another trouble"));
    }
}
