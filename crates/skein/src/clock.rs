//! Cheap wall-clock timestamps. The hot path keeps a raw reading of a fast monotonic clock
//! and converts it to wall-clock time only when the time is read (typically on an exporter's
//! thread).
//!
//! The clock is the CPU's time-stamp counter where it is trustworthy — x86_64 Linux with an
//! invariant TSC that the kernel itself uses as its clock source (so it is synchronised
//! across cores) — and `std::time::Instant` everywhere else (aarch64, macOS, Windows, virtual
//! machines without the invariant flag, Miri), which is monotonic too. Nothing is calibrated
//! at start-up: the TSC's rate is measured against `Instant` between the first reading and
//! the first conversion (at least a millisecond apart), and refined with every re-anchoring.
//! Conversion goes through an anchor — a (reading, wall-clock time) pair and the rate — taken
//! again every second of readings, so wall time follows the system clock (NTP slewing and
//! steps included) and rate errors cannot build up with uptime.
//!
//! The only `unsafe` here is the `RDTSC` instruction (through `core::arch`), which reads a
//! counter and touches no memory.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const UNDECIDED: u8 = 0;
/// Readings are TSC ticks.
const TSC: u8 = 1;
/// Readings are nanoseconds since [`ORIGIN`]'s `Instant`.
const MONOTONIC: u8 = 2;

static MODE: AtomicU8 = AtomicU8::new(UNDECIDED);

/// The first reading of the process and the `Instant` taken with it: the long baseline the
/// TSC's rate is measured over.
struct Origin {
    reading: u64,
    instant: Instant,
}

static ORIGIN: OnceLock<Origin> = OnceLock::new();

/// How readings convert to Unix time: `unix_nanos + (reading - reading_at) × nanos_per_tick`.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Anchor {
    reading: u64,
    unix_nanos: u64,
    nanos_per_tick: f64,
    /// Readings later than this take a new anchor first (one second on).
    refresh_after: u64,
}

/// The current anchor, read without a lock or a reference count (exporters convert several
/// timestamps per activity): a sequence lock over atomics. `seq` is 0 before the first
/// anchor, odd while one is written (readers retry), even otherwise.
struct AnchorCell {
    seq: AtomicU64,
    reading: AtomicU64,
    unix_nanos: AtomicU64,
    nanos_per_tick: AtomicU64,
    refresh_after: AtomicU64,
}

impl AnchorCell {
    const fn new() -> Self {
        AnchorCell {
            seq: AtomicU64::new(0),
            reading: AtomicU64::new(0),
            unix_nanos: AtomicU64::new(0),
            nanos_per_tick: AtomicU64::new(0),
            refresh_after: AtomicU64::new(0),
        }
    }

    fn load(&self) -> Option<Anchor> {
        loop {
            let before = self.seq.load(Ordering::Acquire);
            if before == 0 {
                return None;
            }
            if before & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let anchor = Anchor {
                reading: self.reading.load(Ordering::Relaxed),
                unix_nanos: self.unix_nanos.load(Ordering::Relaxed),
                nanos_per_tick: f64::from_bits(self.nanos_per_tick.load(Ordering::Relaxed)),
                refresh_after: self.refresh_after.load(Ordering::Relaxed),
            };
            std::sync::atomic::fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == before {
                return Some(anchor);
            }
        }
    }

    /// One writer at a time: callers hold [`ANCHORING`].
    fn store(&self, anchor: Anchor) {
        let seq = self.seq.load(Ordering::Relaxed);
        self.seq.store(seq + 1, Ordering::Relaxed);
        std::sync::atomic::fence(Ordering::Release);
        self.reading.store(anchor.reading, Ordering::Relaxed);
        self.unix_nanos.store(anchor.unix_nanos, Ordering::Relaxed);
        self.nanos_per_tick
            .store(anchor.nanos_per_tick.to_bits(), Ordering::Relaxed);
        self.refresh_after.store(anchor.refresh_after, Ordering::Relaxed);
        self.seq.store(seq + 2, Ordering::Release);
    }
}

static ANCHOR: AnchorCell = AnchorCell::new();
/// Held while a new anchor is taken (others keep converting with the current one).
static ANCHORING: Mutex<()> = Mutex::new(());

/// A reading of the process's clock.
#[inline]
fn read() -> u64 {
    // Acquire (a plain load on x86): the origin is set before the mode is published.
    match MODE.load(Ordering::Acquire) {
        TSC => rdtsc(),
        MONOTONIC => monotonic_nanos(),
        _ => first_read(),
    }
}

#[cold]
fn first_read() -> u64 {
    // Every thread that gets here decides the same; the origin is set before the mode is
    // published, so a reading never exists without it.
    let mode = if tsc_is_trustworthy() { TSC } else { MONOTONIC };
    ORIGIN.get_or_init(|| Origin {
        instant: Instant::now(),
        reading: if mode == TSC { rdtsc() } else { 0 },
    });
    let _ = MODE.compare_exchange(UNDECIDED, mode, Ordering::AcqRel, Ordering::Acquire);
    read()
}

fn monotonic_nanos() -> u64 {
    let origin = ORIGIN.get().map_or_else(Instant::now, |o| o.instant);
    origin.elapsed().as_nanos() as u64
}

#[cfg(all(target_arch = "x86_64", target_os = "linux", not(miri)))]
#[inline]
fn rdtsc() -> u64 {
    // SAFETY: RDTSC exists on every x86_64 CPU; it reads the time-stamp counter and accesses
    // no memory.
    unsafe { std::arch::x86_64::_rdtsc() }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux", not(miri))))]
#[inline]
fn rdtsc() -> u64 {
    monotonic_nanos() // never used: `tsc_is_trustworthy` is false here
}

/// An invariant TSC (CPUID 0x8000_0007, EDX bit 8) that the kernel uses as its clock source:
/// Linux chooses `tsc` only after checking that the cores' counters agree.
#[cfg(all(target_arch = "x86_64", target_os = "linux", not(miri)))]
fn tsc_is_trustworthy() -> bool {
    use std::arch::x86_64::__cpuid;
    let invariant = __cpuid(0x8000_0000).eax >= 0x8000_0007 && __cpuid(0x8000_0007).edx & (1 << 8) != 0;
    invariant
        && std::fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource")
            .is_ok_and(|source| source.trim() == "tsc")
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux", not(miri))))]
fn tsc_is_trustworthy() -> bool {
    false
}

fn system_unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A reading and `sample` taken at (nearly) the same moment: the sample between two readings,
/// the pair with the smallest gap of a few tries (a preemption in between would skew it).
fn paired<T>(sample: impl Fn() -> T) -> (u64, T) {
    let mut best: Option<(u64, u64, T)> = None;
    for _ in 0..5 {
        let before = read();
        let value = sample();
        let after = read();
        let gap = after.saturating_sub(before);
        if best.as_ref().is_none_or(|(g, _, _)| gap < *g) {
            best = Some((gap, before + gap / 2, value));
        }
    }
    let (_, reading, value) = best.expect("five tries");
    (reading, value)
}

/// The anchor for converting `reading`, taking a new one when `reading` is past the current
/// one's second.
fn anchor_for(reading: u64) -> Anchor {
    if let Some(anchor) = ANCHOR.load() {
        if reading <= anchor.refresh_after {
            return anchor;
        }
        // Someone else is taking one: the current anchor is good for a while longer.
        let Ok(_taking) = ANCHORING.try_lock() else {
            return anchor;
        };
        return take_anchor();
    }
    let _taking = ANCHORING.lock().unwrap_or_else(|e| e.into_inner());
    match ANCHOR.load() {
        Some(anchor) => anchor,
        None => take_anchor(),
    }
}

/// Takes a new anchor; the caller holds [`ANCHORING`].
#[cold]
fn take_anchor() -> Anchor {
    // Make sure the clock has been read once (the origin exists).
    read();
    let origin = ORIGIN.get().expect("set by the first reading");
    let tsc = MODE.load(Ordering::Acquire) == TSC;
    let nanos_per_tick = if tsc {
        // The rate over everything since the first reading; at least a millisecond of it, so
        // the first conversion right after start-up waits that long once.
        let minimum = Duration::from_millis(1);
        let waited = origin.instant.elapsed();
        if waited < minimum {
            std::thread::sleep(minimum - waited);
        }
        let (reading, instant) = paired(Instant::now);
        let nanos = instant.duration_since(origin.instant).as_nanos() as f64;
        nanos / reading.saturating_sub(origin.reading).max(1) as f64
    } else {
        1.0
    };
    let (reading, unix_nanos) = paired(system_unix_nanos);
    let anchor = Anchor {
        reading,
        unix_nanos,
        nanos_per_tick,
        refresh_after: reading.saturating_add((1e9 / nanos_per_tick) as u64),
    };
    ANCHOR.store(anchor);
    anchor
}

fn reading_to_unix_nanos(reading: u64) -> u64 {
    match ANCHOR.load() {
        Some(anchor) if reading <= anchor.refresh_after => anchor.convert(reading),
        _ => anchor_for(reading).convert(reading),
    }
}

impl Anchor {
    /// 64-bit arithmetic only: converting between f64 and i128 is a library call, which made
    /// exporting (three conversions per activity) a fifth slower.
    #[inline]
    fn convert(&self, reading: u64) -> u64 {
        let ticks = reading.wrapping_sub(self.reading) as i64;
        let nanos = (ticks as f64 * self.nanos_per_tick) as i64;
        (self.unix_nanos as i64).saturating_add(nanos).max(1) as u64
    }
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
    Clock(u64),
    /// Nanoseconds since the Unix epoch (0: not set).
    Unix(u64),
}

impl Timestamp {
    /// "Not set": the Unix epoch.
    pub(crate) const UNSET: Timestamp = Timestamp(Repr::Unix(0));

    /// Now.
    #[inline]
    pub fn now() -> Timestamp {
        Timestamp(Repr::Clock(read()))
    }

    /// The time `nanos` nanoseconds after the Unix epoch.
    pub const fn from_unix_nanos(nanos: u64) -> Timestamp {
        Timestamp(Repr::Unix(nanos))
    }

    /// Nanoseconds since the Unix epoch.
    #[inline]
    pub fn unix_nanos(self) -> u64 {
        match self.0 {
            Repr::Clock(reading) => reading_to_unix_nanos(reading),
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
    use super::*;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    #[test]
    fn readings_are_monotonic_on_every_thread() {
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    let mut last = Timestamp::now();
                    for _ in 0..if cfg!(miri) { 50 } else { 100_000 } {
                        let now = Timestamp::now();
                        assert!(matches!((last.0, now.0), (Repr::Clock(a), Repr::Clock(b)) if b >= a));
                        last = now;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }

    /// Conversions re-anchor once a reading is a second past the anchor, so the wall time
    /// follows the system clock and the rate is measured again over a longer baseline.
    #[test]
    fn a_reading_a_second_past_the_anchor_takes_a_new_one() {
        let first = anchor_for(read());
        assert!(
            anchor_for(first.refresh_after).reading == first.reading,
            "still within its second"
        );
        // Another test's conversion may be taking one at this moment: then the current one
        // is used, and the next conversion takes the new one.
        let later = (0..1000)
            .map(|_| anchor_for(first.refresh_after + 1))
            .find(|a| *a != first)
            .expect("a new anchor");
        assert!(later.reading >= first.reading);
        // Its own second starts from when it was taken.
        assert!(later.refresh_after > later.reading);
        if MODE.load(Ordering::Acquire) == MONOTONIC {
            assert_eq!(later.nanos_per_tick, 1.0, "monotonic readings are nanoseconds");
        } else {
            // A TSC runs at 0.1 to 10 GHz.
            assert!((0.1..10.0).contains(&later.nanos_per_tick), "{}", later.nanos_per_tick);
        }
    }

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
