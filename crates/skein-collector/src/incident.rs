//! Internal failures: the details go to the collector's log under a number, and clients get
//! only that number (storage errors name files and SQL, which are not theirs to see).

use std::sync::atomic::{AtomicU64, Ordering};

static NEXT: AtomicU64 = AtomicU64::new(1);

/// Logs `detail` under a new incident number; returns the message for the client.
pub(crate) fn report(detail: &str) -> String {
    let number = NEXT.fetch_add(1, Ordering::Relaxed);
    eprintln!("skein: internal error #{number}: {detail}");
    format!("internal error #{number}; the collector's log has the details")
}
