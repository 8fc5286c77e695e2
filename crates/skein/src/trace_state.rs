//! The W3C `tracestate` list.

use std::fmt;
use std::sync::Arc;

use crate::id::ParseError;

/// The most list members W3C Trace Context allows.
pub const TRACE_STATE_MAX_MEMBERS: usize = 32;

/// A validated W3C `tracestate`: vendor-specific `key=value` members, most recent first.
///
/// Parsing is all or nothing: any invalid member, a duplicate key or more than 32 members
/// reject the whole header, as the W3C specification requires. Cloning is cheap (shared).
///
/// ```
/// use skein::TraceState;
/// let ts = TraceState::parse("congo=t61rcWkgMzE, rojo=00f067aa0ba902b7").unwrap();
/// assert_eq!(ts.get("rojo"), Some("00f067aa0ba902b7"));
/// let ts = ts.insert("skein", "1").unwrap();
/// assert_eq!(ts.header(), "skein=1,congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
/// assert!(TraceState::parse("Bad=1").is_err());
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct TraceState(Option<Arc<str>>);

fn is_key_char(c: u8) -> bool {
    matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'*' | b'/')
}

/// `simple-key` or `tenant@system`, per W3C Trace Context.
pub(crate) fn valid_key(key: &str) -> bool {
    let b = key.as_bytes();
    match key.find('@') {
        None => !b.is_empty() && b.len() <= 256 && b[0].is_ascii_lowercase() && b.iter().all(|&c| is_key_char(c)),
        Some(at) => {
            let (tenant, system) = (&b[..at], &b[at + 1..]);
            !tenant.is_empty()
                && tenant.len() <= 241
                && (tenant[0].is_ascii_lowercase() || tenant[0].is_ascii_digit())
                && tenant.iter().all(|&c| is_key_char(c))
                && !system.is_empty()
                && system.len() <= 14
                && system[0].is_ascii_lowercase()
                && system.iter().all(|&c| is_key_char(c))
        }
    }
}

/// `0*255(chr) nblk-chr`: printable ASCII without `,` and `=`, no trailing space.
pub(crate) fn valid_value(value: &str) -> bool {
    let b = value.as_bytes();
    !b.is_empty()
        && b.len() <= 256
        && b[b.len() - 1] != b' '
        && b.iter().all(|&c| (0x20..=0x7e).contains(&c) && c != b',' && c != b'=')
}

impl TraceState {
    /// The empty trace state.
    pub const EMPTY: TraceState = TraceState(None);

    /// Parses a `tracestate` header value (several headers may be joined with `,`).
    pub fn parse(header: &str) -> Result<TraceState, ParseError> {
        let mut members: Vec<(&str, &str)> = Vec::new();
        for raw in header.split(',') {
            let member = raw.trim_matches(|c| c == ' ' || c == '\t');
            if member.is_empty() {
                continue; // empty list members are allowed and ignored
            }
            let (key, value) = member
                .split_once('=')
                .ok_or(ParseError("tracestate member has no '='"))?;
            if !valid_key(key) {
                return Err(ParseError("tracestate key is invalid"));
            }
            if !valid_value(value) {
                return Err(ParseError("tracestate value is invalid"));
            }
            if members.iter().any(|(k, _)| *k == key) {
                return Err(ParseError("tracestate has a duplicate key"));
            }
            members.push((key, value));
            if members.len() > TRACE_STATE_MAX_MEMBERS {
                return Err(ParseError("tracestate has more than 32 members"));
            }
        }
        Ok(Self::from_valid_members(members.into_iter()))
    }

    fn from_valid_members<'a>(members: impl Iterator<Item = (&'a str, &'a str)>) -> TraceState {
        let mut out = String::new();
        for (k, v) in members {
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(k);
            out.push('=');
            out.push_str(v);
        }
        if out.is_empty() {
            TraceState(None)
        } else {
            TraceState(Some(out.into()))
        }
    }

    /// True if there are no members.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The canonical header value (`k=v,k2=v2`), empty when there are no members.
    pub fn header(&self) -> &str {
        self.0.as_deref().unwrap_or("")
    }

    /// The members, most recent first.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.header()
            .split(',')
            .filter(|m| !m.is_empty())
            .filter_map(|m| m.split_once('='))
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// A new state with `key=value` first (replacing an earlier value of `key`); the oldest
    /// member is dropped when the list would exceed 32 members.
    pub fn insert(&self, key: &str, value: &str) -> Result<TraceState, ParseError> {
        if !valid_key(key) {
            return Err(ParseError("tracestate key is invalid"));
        }
        if !valid_value(value) {
            return Err(ParseError("tracestate value is invalid"));
        }
        let rest = self.iter().filter(|(k, _)| *k != key);
        Ok(Self::from_valid_members(
            std::iter::once((key, value)).chain(rest).take(TRACE_STATE_MAX_MEMBERS),
        ))
    }

    /// A new state without `key`.
    pub fn remove(&self, key: &str) -> TraceState {
        Self::from_valid_members(self.iter().filter(|(k, _)| *k != key))
    }
}

impl fmt::Display for TraceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.header())
    }
}

impl fmt::Debug for TraceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceState({:?})", self.header())
    }
}

impl std::str::FromStr for TraceState {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        TraceState::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_with_whitespace_and_empty_members() {
        let ts = TraceState::parse(" a=1 ,\t,b@c=x y,  ").unwrap();
        assert_eq!(ts.header(), "a=1,b@c=x y");
        assert!(TraceState::parse("").unwrap().is_empty());
    }

    #[test]
    fn rejects_whole_header_on_any_bad_member() {
        for bad in [
            "a=1,B=2",
            "a=1,a=2",
            "a",
            "a=",
            "a=b=c",
            "a=x\ty",
            "1a=x",
            "t@=x",
            "@s=x",
            "a=\u{7f}",
            "t@system_too_long=x",
        ] {
            assert!(TraceState::parse(bad).is_err(), "{bad}");
        }
        let max: Vec<String> = (0..32).map(|i| format!("k{i}=v")).collect();
        assert!(TraceState::parse(&max.join(",")).is_ok());
        let over: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
        assert!(TraceState::parse(&over.join(",")).is_err());
    }

    #[test]
    fn multi_tenant_keys() {
        assert!(valid_key("0tenant@vendor"));
        assert!(valid_key("t@v"));
        assert!(!valid_key("t@0v"));
        assert!(valid_key(&"a".repeat(256)));
        assert!(!valid_key(&"a".repeat(257)));
    }

    #[test]
    fn insert_moves_to_front_and_caps() {
        let ts = TraceState::parse("a=1,b=2").unwrap();
        assert_eq!(ts.insert("b", "3").unwrap().header(), "b=3,a=1");
        assert_eq!(ts.remove("a").header(), "b=2");
        assert!(ts.insert("B", "3").is_err());
        let full: Vec<String> = (0..32).map(|i| format!("k{i}=v")).collect();
        let full = TraceState::parse(&full.join(",")).unwrap();
        let more = full.insert("new", "1").unwrap();
        assert_eq!(more.iter().count(), 32);
        assert_eq!(more.iter().next(), Some(("new", "1")));
        assert_eq!(more.get("k31"), None);
    }
}
