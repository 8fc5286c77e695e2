//! W3C trace and span identifiers, trace flags, and the fast per-thread id generator.

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Why an identifier or header did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseError(pub(crate) &'static str);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for ParseError {}

/// Decodes one lowercase hex digit; uppercase is rejected as W3C Trace Context requires.
#[inline]
pub(crate) fn lower_hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// Decodes `2 * N` lowercase hex characters into `N` bytes.
pub(crate) fn decode_lower_hex<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = (lower_hex_value(s[2 * i])? << 4) | lower_hex_value(s[2 * i + 1])?;
    }
    Some(out)
}

pub(crate) fn write_hex(bytes: &[u8], out: &mut [u8]) {
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = HEX[(b >> 4) as usize];
        out[2 * i + 1] = HEX[(b & 0xf) as usize];
    }
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $len:literal, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name([u8; $len]);

        impl $name {
            /// The all-zero id, which W3C Trace Context defines as invalid.
            pub const INVALID: $name = $name([0; $len]);

            /// Wraps raw bytes.
            pub const fn from_bytes(bytes: [u8; $len]) -> Self {
                $name(bytes)
            }

            /// The raw bytes.
            pub const fn to_bytes(self) -> [u8; $len] {
                self.0
            }

            /// True unless the id is all zeros.
            pub fn is_valid(&self) -> bool {
                self.0 != [0; $len]
            }

            /// Parses the lowercase hex form; uppercase, wrong length and the all-zero id are
            /// rejected.
            pub fn from_hex(hex: &str) -> Result<Self, ParseError> {
                match decode_lower_hex::<$len>(hex.as_bytes()) {
                    Some(bytes) if bytes != [0; $len] => Ok($name(bytes)),
                    Some(_) => Err(ParseError(concat!($what, " is all zeros"))),
                    None => Err(ParseError(concat!($what, " is not lowercase hex of the right length"))),
                }
            }

            /// The lowercase hex form.
            pub fn to_hex(&self) -> String {
                self.to_string()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut buf = [0u8; $len * 2];
                write_hex(&self.0, &mut buf);
                f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self)
            }
        }

        impl std::str::FromStr for $name {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, ParseError> {
                Self::from_hex(s)
            }
        }
    };
}

id_type!(
    /// A W3C trace id: 16 bytes shared by every activity of one trace.
    ///
    /// ```
    /// use skein::TraceId;
    /// let id: TraceId = "4bf92f3577b34da6a3ce929d0e0e4736".parse().unwrap();
    /// assert_eq!(id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
    /// assert!("4BF92F3577B34DA6A3CE929D0E0E4736".parse::<TraceId>().is_err());
    /// ```
    TraceId,
    16,
    "trace id"
);

id_type!(
    /// A W3C span id: 8 bytes naming one activity within its trace.
    SpanId,
    8,
    "span id"
);

impl TraceId {
    /// A new random trace id from the per-thread generator (never the invalid id).
    #[inline]
    pub fn random() -> Self {
        let hi = next_nonzero();
        let lo = next_nonzero();
        // Built as one integer: two 8-byte stores read back as one 16-byte load would stall
        // the caller's copy of the id (no store forwarding across the halves).
        TraceId::from_u128((u128::from(hi) << 64) | u128::from(lo))
    }

    /// The id as a big-endian integer.
    pub fn to_u128(self) -> u128 {
        u128::from_be_bytes(self.0)
    }

    /// Builds an id from a big-endian integer.
    pub fn from_u128(v: u128) -> Self {
        TraceId(v.to_be_bytes())
    }
}

impl SpanId {
    /// A new random span id from the per-thread generator (never the invalid id).
    pub fn random() -> Self {
        SpanId(next_nonzero().to_be_bytes())
    }

    /// The id as a big-endian integer.
    pub fn to_u64(self) -> u64 {
        u64::from_be_bytes(self.0)
    }

    /// Builds an id from a big-endian integer.
    pub fn from_u64(v: u64) -> Self {
        SpanId(v.to_be_bytes())
    }
}

/// The W3C trace flags byte.
///
/// ```
/// use skein::ActivityTraceFlags;
/// let flags = ActivityTraceFlags::RECORDED | ActivityTraceFlags::RANDOM;
/// assert!(flags.is_recorded() && flags.is_random());
/// assert_eq!(flags.bits(), 0x03);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ActivityTraceFlags(u8);

impl ActivityTraceFlags {
    /// No flag set.
    pub const NONE: Self = ActivityTraceFlags(0);
    /// The caller may have recorded trace data (W3C `sampled`).
    pub const RECORDED: Self = ActivityTraceFlags(0x01);
    /// The rightmost 7 bytes of the trace id are random (W3C Trace Context level 2).
    pub const RANDOM: Self = ActivityTraceFlags(0x02);
    /// The flags this implementation understands; children keep only these.
    pub const KNOWN: Self = ActivityTraceFlags(0x03);

    /// Wraps a raw flags byte.
    pub const fn from_bits(bits: u8) -> Self {
        ActivityTraceFlags(bits)
    }

    /// The raw flags byte.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// True if the `recorded` (sampled) flag is set.
    pub const fn is_recorded(self) -> bool {
        self.0 & 0x01 != 0
    }

    /// True if the level-2 `random` flag is set.
    pub const fn is_random(self) -> bool {
        self.0 & 0x02 != 0
    }

    /// True if every flag of `other` is set in `self`.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// These flags with the recorded bit set or cleared.
    pub const fn with_recorded(self, recorded: bool) -> Self {
        if recorded {
            ActivityTraceFlags(self.0 | 0x01)
        } else {
            ActivityTraceFlags(self.0 & !0x01)
        }
    }
}

impl std::ops::BitOr for ActivityTraceFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        ActivityTraceFlags(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for ActivityTraceFlags {
    fn bitor_assign(&mut self, rhs: Self) {
        self.0 |= rhs.0;
    }
}

impl std::ops::BitAnd for ActivityTraceFlags {
    type Output = Self;
    fn bitand(self, rhs: Self) -> Self {
        ActivityTraceFlags(self.0 & rhs.0)
    }
}

impl fmt::Debug for ActivityTraceFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ActivityTraceFlags({:02x})", self.0)
    }
}

impl fmt::Display for ActivityTraceFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}", self.0)
    }
}

// ---- per-thread random numbers (wyrand) ----

thread_local! {
    static RNG: Cell<u64> = const { Cell::new(0) };
}

fn seed() -> u64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded from the OS once per process and perturbed per instance, which is
    // all a per-thread id generator needs.
    let mut h = RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    );
    let local = 0u8;
    h.write_usize(&local as *const u8 as usize);
    h.finish() | 1
}

/// The next number of this thread's wyrand generator.
#[inline]
pub(crate) fn next_u64() -> u64 {
    RNG.with(|state| {
        let mut s = state.get();
        if s == 0 {
            s = seed();
        }
        s = s.wrapping_add(0xa076_1d64_78bd_642f);
        state.set(s);
        let t = (s as u128).wrapping_mul((s ^ 0xe703_7ed1_a0b4_28db) as u128);
        ((t >> 64) ^ t) as u64
    })
}

#[inline]
fn next_nonzero() -> u64 {
    loop {
        let v = next_u64();
        if v != 0 {
            return v;
        }
    }
}

// ---- pluggable trace-id generator ----

type Generator = Arc<dyn Fn() -> TraceId + Send + Sync>;

static HAS_GENERATOR: AtomicBool = AtomicBool::new(false);
static GENERATOR: RwLock<Option<Generator>> = RwLock::new(None);

/// Replaces how new trace ids are made for root activities (`None` restores the built-in
/// random generator). The built-in one marks its traces with the W3C level-2 `random` flag; a
/// custom one does not, since its ids need not be random.
///
/// ```
/// use skein::{set_trace_id_generator, TraceId};
/// set_trace_id_generator(Some(Box::new(|| TraceId::from_u128(42))));
/// set_trace_id_generator(None);
/// ```
pub fn set_trace_id_generator(generator: Option<Box<dyn Fn() -> TraceId + Send + Sync>>) {
    let previous = {
        let mut slot = GENERATOR.write().unwrap_or_else(|e| e.into_inner());
        HAS_GENERATOR.store(generator.is_some(), Ordering::Release);
        std::mem::replace(&mut *slot, generator.map(Arc::from))
    };
    // The previous generator's `Drop` is user code (it may start activities or install
    // another generator): it runs with the lock released.
    drop(previous);
}

/// A trace id for a new root, and whether it is random (for the level-2 flag).
#[inline(always)]
pub(crate) fn new_trace_id() -> (TraceId, bool) {
    if HAS_GENERATOR.load(Ordering::Acquire) {
        if let Some(id) = generated_trace_id() {
            return (id, false);
        }
    }
    (TraceId::random(), true)
}

/// The installed generator's id, if there is one and it made a valid id.
#[cold]
fn generated_trace_id() -> Option<TraceId> {
    let generator = GENERATOR.read().unwrap_or_else(|e| e.into_inner()).clone()?;
    Some(generator()).filter(TraceId::is_valid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_rejections() {
        let t = TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap();
        assert_eq!(t.to_hex(), "0af7651916cd43dd8448eb211c80319c");
        assert!(TraceId::from_hex("00000000000000000000000000000000").is_err());
        assert!(TraceId::from_hex("0AF7651916CD43DD8448EB211C80319C").is_err());
        assert!(TraceId::from_hex("0af7651916cd43dd8448eb211c80319").is_err());
        assert!(SpanId::from_hex("b7ad6b7169203331").is_ok());
        assert!(SpanId::from_hex("0000000000000000").is_err());
        assert!(SpanId::from_hex("b7ad6b716920333g").is_err());
    }

    #[test]
    fn random_ids_are_valid_and_distinct() {
        let a = TraceId::random();
        let b = TraceId::random();
        assert!(a.is_valid() && b.is_valid());
        assert_ne!(a, b);
        const COUNT: usize = if cfg!(miri) { 100 } else { 10_000 };
        let s: std::collections::HashSet<SpanId> = (0..COUNT).map(|_| SpanId::random()).collect();
        assert_eq!(s.len(), COUNT);
    }

    #[test]
    fn threads_get_different_sequences() {
        let a = std::thread::spawn(SpanId::random).join().unwrap();
        let b = std::thread::spawn(SpanId::random).join().unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn flags() {
        let f = ActivityTraceFlags::from_bits(0xff);
        assert!(f.is_recorded() && f.is_random());
        assert_eq!((f & ActivityTraceFlags::KNOWN).bits(), 3);
        assert!(!f.with_recorded(false).is_recorded());
        assert_eq!(ActivityTraceFlags::RECORDED.to_string(), "01");
    }
}
