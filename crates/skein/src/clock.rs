//! Cheap wall-clock timestamps: a TSC-backed monotonic clock anchored to the system clock
//! once per process, so a timestamp costs a few nanoseconds instead of a system call.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn anchor() -> &'static fastant::Anchor {
    static ANCHOR: OnceLock<fastant::Anchor> = OnceLock::new();
    ANCHOR.get_or_init(fastant::Anchor::new)
}

/// Nanoseconds since the Unix epoch, now.
#[inline]
pub(crate) fn now_unix_nanos() -> u64 {
    fastant::Instant::now().as_unix_nanos(anchor())
}

pub(crate) fn to_unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

pub(crate) fn from_unix_nanos(nanos: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(nanos)
}

#[cfg(test)]
mod tests {
    #[test]
    fn close_to_system_time() {
        let ours = super::now_unix_nanos() as i128;
        let sys = super::to_unix_nanos(std::time::SystemTime::now()) as i128;
        assert!((ours - sys).abs() < 50_000_000, "{ours} vs {sys}");
    }
}
