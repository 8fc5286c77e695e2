//! Cheap wall-clock timestamps: a TSC-backed monotonic clock anchored to the system clock
//! once per process, so a timestamp costs a few nanoseconds instead of a system call. The
//! hot path keeps the raw clock reading; the conversion to wall-clock time happens when the
//! time is read (typically on an exporter's thread).

use std::fmt;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[cfg(not(miri))]
use fastant::{Anchor, Instant};

/// Under Miri (which cannot run the TSC calibration's CPUID) the clock is `std::time`.
#[cfg(miri)]
mod std_clock {
    use std::time::{SystemTime, UNIX_EPOCH};

    pub(super) struct Anchor {
        instant: std::time::Instant,
        unix_nanos: u64,
    }

    impl Anchor {
        pub(super) fn new() -> Self {
            Anchor {
                instant: std::time::Instant::now(),
                unix_nanos: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64),
            }
        }
    }

    #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    pub(super) struct Instant(std::time::Instant);

    impl Instant {
        pub(super) fn now() -> Self {
            Instant(std::time::Instant::now())
        }

        pub(super) fn as_unix_nanos(self, anchor: &Anchor) -> u64 {
            match self.0.checked_duration_since(anchor.instant) {
                Some(after) => anchor.unix_nanos + after.as_nanos() as u64,
                None => anchor.unix_nanos - anchor.instant.duration_since(self.0).as_nanos() as u64,
            }
        }
    }
}
#[cfg(miri)]
use std_clock::{Anchor, Instant};

fn anchor() -> &'static Anchor {
    static ANCHOR: OnceLock<Anchor> = OnceLock::new();
    ANCHOR.get_or_init(Anchor::new)
}

/// A point in wall-clock time, as activities and events record it.
///
/// [`Timestamp::now`] keeps the raw reading of a fast monotonic clock and converts it to
/// Unix time only when asked, so taking one on the application's thread costs a clock read
/// and nothing more. Timestamps made from a [`SystemTime`] keep that time exactly.
///
/// ```
/// use std::time::{Duration, SystemTime, UNIX_EPOCH};
/// use skein::Timestamp;
///
/// let now = Timestamp::now();
/// let system = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
/// assert!(now.unix_nanos().abs_diff(system) < 50_000_000);
///
/// let fixed = Timestamp::from(UNIX_EPOCH + Duration::from_secs(1));
/// assert_eq!(fixed.unix_nanos(), 1_000_000_000);
/// assert_eq!(fixed.to_system_time(), UNIX_EPOCH + Duration::from_secs(1));
/// ```
#[derive(Clone, Copy)]
pub struct Timestamp(Repr);

#[derive(Clone, Copy)]
enum Repr {
    /// A reading of the process's monotonic clock.
    Clock(Instant),
    /// Nanoseconds since the Unix epoch (0: not set).
    Unix(u64),
}

impl Timestamp {
    /// "Not set": the Unix epoch.
    pub(crate) const UNSET: Timestamp = Timestamp(Repr::Unix(0));

    /// Now.
    #[inline]
    pub fn now() -> Timestamp {
        Timestamp(Repr::Clock(Instant::now()))
    }

    /// The time `nanos` nanoseconds after the Unix epoch.
    pub const fn from_unix_nanos(nanos: u64) -> Timestamp {
        Timestamp(Repr::Unix(nanos))
    }

    /// Nanoseconds since the Unix epoch.
    #[inline]
    pub fn unix_nanos(self) -> u64 {
        match self.0 {
            Repr::Clock(instant) => instant.as_unix_nanos(anchor()),
            Repr::Unix(nanos) => nanos,
        }
    }

    /// The same time as a [`SystemTime`].
    pub fn to_system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.unix_nanos())
    }

    /// False for [`UNSET`](Self::UNSET) (the epoch, which activities use for "no time yet").
    #[inline]
    pub(crate) fn is_set(self) -> bool {
        !matches!(self.0, Repr::Unix(0))
    }

    /// This time, or 1 ns after `start` if it is not later than `start` (an activity lasts at
    /// least 1 ns, as in .NET). Two clock readings compare without converting either.
    #[inline]
    pub(crate) fn at_least_after(self, start: Timestamp) -> Timestamp {
        match (self.0, start.0) {
            (Repr::Clock(end), Repr::Clock(begin)) if end > begin => self,
            _ => {
                let (end, begin) = (self.unix_nanos(), start.unix_nanos());
                if end > begin {
                    self
                } else {
                    Timestamp::from_unix_nanos(begin + 1)
                }
            }
        }
    }
}

impl From<SystemTime> for Timestamp {
    fn from(time: SystemTime) -> Self {
        Timestamp::from_unix_nanos(time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64))
    }
}

impl From<Timestamp> for SystemTime {
    fn from(time: Timestamp) -> Self {
        time.to_system_time()
    }
}

impl PartialEq for Timestamp {
    fn eq(&self, other: &Self) -> bool {
        self.unix_nanos() == other.unix_nanos()
    }
}

impl Eq for Timestamp {}

impl PartialOrd for Timestamp {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Timestamp {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.unix_nanos().cmp(&other.unix_nanos())
    }
}

impl std::hash::Hash for Timestamp {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.unix_nanos().hash(state);
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({})", self.unix_nanos())
    }
}

#[cfg(test)]
mod tests {
    use super::Timestamp;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    #[test]
    fn close_to_system_time() {
        let ours = Timestamp::now().unix_nanos() as i128;
        let sys = Timestamp::from(SystemTime::now()).unix_nanos() as i128;
        assert!((ours - sys).abs() < 50_000_000, "{ours} vs {sys}");
    }

    #[test]
    fn clock_readings_and_explicit_times_compare_by_wall_clock_time() {
        let earlier = Timestamp::from(SystemTime::now() - Duration::from_secs(5));
        let now = Timestamp::now();
        assert!(earlier < now);
        assert_eq!(Timestamp::from_unix_nanos(now.unix_nanos()), now);
        assert!(!Timestamp::from(UNIX_EPOCH).is_set());
        assert!(now.is_set());
    }

    #[test]
    fn an_end_is_at_least_one_nanosecond_after_its_start() {
        let start = Timestamp::now();
        assert_eq!(start.at_least_after(start).unix_nanos(), start.unix_nanos() + 1);
        let before = Timestamp::from_unix_nanos(start.unix_nanos() - 10);
        assert_eq!(before.at_least_after(start).unix_nanos(), start.unix_nanos() + 1);
        let later = Timestamp::now();
        std::thread::sleep(Duration::from_millis(1));
        let end = Timestamp::now();
        assert_eq!(end.at_least_after(later), end);
    }
}
