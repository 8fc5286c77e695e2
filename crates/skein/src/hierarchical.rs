//! The hierarchical (`Request-Id`) id format: `|root.1.2_3.` style ids.
//!
//! A root id is `|{counter}-{process random}.`; an in-process child appends `{n}.` (the
//! parent's child counter); a child of an id received from another process appends
//! `{counter}_`. Ids are capped at 1024 characters: an id that would be longer is cut back to
//! its last `.` or `_` boundary and ends with 8 random hex digits and `#`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use crate::id::{next_u64, SpanId, TraceId};

/// The longest hierarchical id, as in .NET (`RequestIdMaxLength`).
pub const REQUEST_ID_MAX_LENGTH: usize = 1024;

fn root_counter() -> &'static AtomicU64 {
    static COUNTER: OnceLock<AtomicU64> = OnceLock::new();
    // Start at a random point so two processes started together rarely share root ids.
    COUNTER.get_or_init(|| AtomicU64::new(next_u64() & 0xffff_ffff))
}

fn unique_suffix() -> &'static str {
    static SUFFIX: OnceLock<String> = OnceLock::new();
    SUFFIX.get_or_init(|| format!("-{:x}.", next_u64()))
}

/// A new root id: `|{counter:x}-{random:x}.`.
pub fn root_id() -> String {
    let n = root_counter().fetch_add(1, Ordering::Relaxed) + 1;
    format!("|{n:x}{}", unique_suffix())
}

/// The id of the `n`th in-process child of `parent_id`.
pub fn child_id(parent_id: &str, n: u64) -> String {
    append_suffix(parent_id, &n.to_string(), '.')
}

/// The id of a child of an id received from another process. The external id is sanitised
/// (a leading `|` and a trailing `.` are added when missing) but never changed in place.
pub fn external_child_id(parent_id: &str) -> String {
    if parent_id.is_empty() {
        return root_id();
    }
    let mut parent = String::with_capacity(parent_id.len() + 2);
    if !parent_id.starts_with('|') {
        parent.push('|');
    }
    parent.push_str(parent_id);
    if !parent.ends_with('.') && !parent.ends_with('_') {
        parent.push('.');
    }
    let n = root_counter().fetch_add(1, Ordering::Relaxed) + 1;
    append_suffix(&parent, &format!("{n:x}"), '_')
}

/// Appends `suffix` + `delimiter`, applying the 1024-character overflow rule.
pub fn append_suffix(parent_id: &str, suffix: &str, delimiter: char) -> String {
    if parent_id.len() + suffix.len() < REQUEST_ID_MAX_LENGTH {
        let mut id = String::with_capacity(parent_id.len() + suffix.len() + 1);
        id.push_str(parent_id);
        id.push_str(suffix);
        id.push(delimiter);
        return id;
    }
    // Overflow: cut back to a '.' or '_' boundary leaving room for 8 hex digits and '#'.
    let bytes = parent_id.as_bytes();
    let mut trim = (REQUEST_ID_MAX_LENGTH - 9).min(bytes.len());
    while trim > 1 {
        if bytes[trim - 1] == b'.' || bytes[trim - 1] == b'_' {
            break;
        }
        trim -= 1;
    }
    if trim <= 1 {
        // Not a hierarchical id at all: start a proper one.
        return root_id();
    }
    format!("{}{:08x}#", &parent_id[..trim], next_u64() as u32)
}

/// The root part of an id: the trace id of a W3C id, else the text between a leading `|` and
/// the first `.`.
///
/// ```
/// assert_eq!(skein::hierarchical::root_of("|abc-1.2.3_"), "abc-1");
/// assert_eq!(skein::hierarchical::root_of("plain"), "plain");
/// assert_eq!(
///     skein::hierarchical::root_of("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
///     "0af7651916cd43dd8448eb211c80319c"
/// );
/// ```
pub fn root_of(id: &str) -> &str {
    if crate::context::looks_like_w3c_id(id) {
        return &id[3..35];
    }
    let start = usize::from(id.starts_with('|'));
    let end = id.find('.').unwrap_or(id.len()).max(start);
    &id[start..end]
}

// Hierarchical activities still need W3C-shaped ids to be exported over OTLP. They are derived
// from the id strings with a fixed hash, so every process derives the same trace id from the
// same root and the same span id from the same Request-Id: the exported spans join up.

fn fnv1a64(seed: u64, data: &[u8]) -> u64 {
    let mut h = seed;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // A final avalanche (splitmix64) so similar ids give unrelated hashes.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The trace id a hierarchical id maps to (a hash of its root).
pub fn derived_trace_id(id: &str) -> TraceId {
    let root = root_of(id).as_bytes();
    let hi = fnv1a64(0xcbf2_9ce4_8422_2325, root);
    let lo = fnv1a64(0x84222325_cbf29ce4, root);
    let v = (u128::from(hi) << 64) | u128::from(lo);
    TraceId::from_u128(if v == 0 { 1 } else { v })
}

/// The span id a hierarchical id maps to (a hash of the whole id).
pub fn derived_span_id(id: &str) -> SpanId {
    let v = fnv1a64(0xcbf2_9ce4_8422_2325, id.as_bytes());
    SpanId::from_u64(if v == 0 { 1 } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_children() {
        let root = root_id();
        assert!(root.starts_with('|') && root.ends_with('.'));
        assert_eq!(child_id(&root, 1), format!("{root}1."));
        let other = root_id();
        assert_ne!(root, other);
    }

    #[test]
    fn external_parent_is_sanitised() {
        let id = external_child_id("abc");
        assert!(id.starts_with("|abc.") && id.ends_with('_'), "{id}");
        let id = external_child_id("|abc.1.");
        assert!(id.starts_with("|abc.1.") && id.ends_with('_'), "{id}");
        let id = external_child_id("|abc.1_");
        assert!(id.starts_with("|abc.1_") && id.ends_with('_'), "{id}");
    }

    #[test]
    fn overflow_cuts_back_to_a_boundary() {
        let mut parent = String::from("|root.");
        while parent.len() < 1030 {
            parent.push_str("12345.");
        }
        let id = child_id(&parent, 7);
        assert!(id.len() <= REQUEST_ID_MAX_LENGTH, "{}", id.len());
        assert!(id.ends_with('#'));
        let body = &id[..id.len() - 9];
        assert!(body.ends_with('.') || body.ends_with('_'));
        assert!(parent.starts_with(body));
        assert!(id[id.len() - 9..id.len() - 1].bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn overflow_without_boundary_starts_a_new_root() {
        let parent = format!("|{}", "x".repeat(1100));
        let id = child_id(&parent, 1);
        assert!(id.len() < 64 && id.starts_with('|') && id.ends_with('.'), "{id}");
    }

    #[test]
    fn derived_ids_are_stable_per_root() {
        assert_eq!(derived_trace_id("|a.1."), derived_trace_id("|a.2_3."));
        assert_ne!(derived_trace_id("|a.1."), derived_trace_id("|b.1."));
        assert_ne!(derived_span_id("|a.1."), derived_span_id("|a.2."));
    }
}
