//! `ActivityContext`: the part of an activity that crosses process boundaries.

use std::fmt;

use crate::id::{decode_lower_hex, lower_hex_value, write_hex, ActivityTraceFlags, ParseError, SpanId, TraceId};
use crate::trace_state::TraceState;

/// The propagated identity of an activity: W3C trace id, span id, flags and trace state, and
/// whether it came from another process.
///
/// ```
/// use skein::ActivityContext;
/// let ctx = ActivityContext::parse(
///     "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
///     Some("congo=t61rcWkgMzE"),
/// )
/// .unwrap();
/// assert!(ctx.trace_flags.is_recorded() && ctx.is_remote);
/// assert_eq!(ctx.traceparent(), "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
/// assert!(ActivityContext::parse("ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", None).is_err());
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash, Debug)]
pub struct ActivityContext {
    /// The trace this activity belongs to.
    pub trace_id: TraceId,
    /// The activity's own span id.
    pub span_id: SpanId,
    /// W3C trace flags.
    pub trace_flags: ActivityTraceFlags,
    /// W3C trace state.
    pub trace_state: TraceState,
    /// True if the context was received from another process.
    pub is_remote: bool,
}

impl ActivityContext {
    /// A context from its parts.
    pub fn new(
        trace_id: TraceId,
        span_id: SpanId,
        trace_flags: ActivityTraceFlags,
        trace_state: TraceState,
        is_remote: bool,
    ) -> Self {
        ActivityContext {
            trace_id,
            span_id,
            trace_flags,
            trace_state,
            is_remote,
        }
    }

    /// True if both ids are valid (non-zero).
    pub fn is_valid(&self) -> bool {
        self.trace_id.is_valid() && self.span_id.is_valid()
    }

    /// Parses a W3C `traceparent` and an optional `tracestate` into a remote context.
    ///
    /// Version `00` must be exactly 55 characters; a higher version is read by its version-00
    /// prefix (the 56th character, if any, must be `-`); version `ff`, uppercase hex and
    /// all-zero ids are rejected. An invalid `tracestate` is dropped; the parent is kept.
    pub fn parse(traceparent: &str, tracestate: Option<&str>) -> Result<Self, ParseError> {
        let (trace_id, span_id, flags) = parse_traceparent(traceparent)?;
        let trace_state = tracestate.and_then(|s| TraceState::parse(s).ok()).unwrap_or_default();
        Ok(ActivityContext::new(trace_id, span_id, flags, trace_state, true))
    }

    /// The W3C `traceparent` value for this context.
    pub fn traceparent(&self) -> String {
        format_traceparent(self.trace_id, self.span_id, self.trace_flags)
    }
}

impl fmt::Display for ActivityContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.traceparent())
    }
}

/// The strict W3C `traceparent` parser.
pub(crate) fn parse_traceparent(s: &str) -> Result<(TraceId, SpanId, ActivityTraceFlags), ParseError> {
    let b = s.as_bytes();
    if b.len() < 55 {
        return Err(ParseError("traceparent is shorter than 55 characters"));
    }
    let version = (
        lower_hex_value(b[0]).ok_or(ParseError("traceparent version is not lowercase hex"))?,
        lower_hex_value(b[1]).ok_or(ParseError("traceparent version is not lowercase hex"))?,
    );
    match version {
        (0xf, 0xf) => return Err(ParseError("traceparent version ff is invalid")),
        (0, 0) if b.len() != 55 => return Err(ParseError("traceparent version 00 must be 55 characters")),
        _ if b.len() > 55 && b[55] != b'-' => {
            return Err(ParseError("traceparent of a higher version must continue with '-'"))
        }
        _ => {}
    }
    if b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
        return Err(ParseError("traceparent fields are not separated by '-'"));
    }
    let trace_id = decode_lower_hex::<16>(&b[3..35]).ok_or(ParseError("traceparent trace id is not lowercase hex"))?;
    let span_id = decode_lower_hex::<8>(&b[36..52]).ok_or(ParseError("traceparent parent id is not lowercase hex"))?;
    let flags = decode_lower_hex::<1>(&b[53..55]).ok_or(ParseError("traceparent flags are not lowercase hex"))?;
    let trace_id = TraceId::from_bytes(trace_id);
    let span_id = SpanId::from_bytes(span_id);
    if !trace_id.is_valid() {
        return Err(ParseError("traceparent trace id is all zeros"));
    }
    if !span_id.is_valid() {
        return Err(ParseError("traceparent parent id is all zeros"));
    }
    Ok((trace_id, span_id, ActivityTraceFlags::from_bits(flags[0])))
}

pub(crate) fn format_traceparent(trace_id: TraceId, span_id: SpanId, flags: ActivityTraceFlags) -> String {
    let mut buf = *b"00-00000000000000000000000000000000-0000000000000000-00";
    write_hex(&trace_id.to_bytes(), &mut buf[3..35]);
    write_hex(&span_id.to_bytes(), &mut buf[36..52]);
    write_hex(&[flags.bits()], &mut buf[53..55]);
    String::from_utf8_lossy(&buf).into_owned()
}

/// .NET's `IsW3CId`: 55 characters starting with a hex version other than `ff`. Used to
/// choose the id format of a child; the full parse decides whether it is a usable parent.
pub(crate) fn looks_like_w3c_id(id: &str) -> bool {
    let b = id.as_bytes();
    // ASCII only: callers slice it by byte positions (and .NET counts 55 characters).
    b.len() == 55
        && b.is_ascii()
        && b[0].is_ascii_hexdigit()
        && b[1].is_ascii_hexdigit()
        && !(b[0] == b'f' && b[1] == b'f')
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn parses_valid_and_round_trips() {
        let ctx = ActivityContext::parse(VALID, None).unwrap();
        assert_eq!(ctx.trace_id.to_hex(), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(ctx.span_id.to_hex(), "b7ad6b7169203331");
        assert_eq!(ctx.traceparent(), VALID);
        assert!(ctx.is_remote);
    }

    #[test]
    fn version_rules() {
        // version 00 must be exact
        assert!(parse_traceparent(&format!("{VALID}-extra")).is_err());
        // higher versions are read by prefix, with a dash after the flags
        let v = VALID.replacen("00", "01", 1);
        assert!(parse_traceparent(&v).is_ok());
        assert!(parse_traceparent(&format!("{v}-what-ever")).is_ok());
        assert!(parse_traceparent(&format!("{v}x")).is_err());
        assert!(parse_traceparent(&VALID.replacen("00", "ff", 1)).is_err());
        assert!(parse_traceparent(&VALID.replacen("00", "0G", 1)).is_err());
    }

    #[test]
    fn rejects_bad_ids_and_case() {
        assert!(parse_traceparent("00-00000000000000000000000000000000-b7ad6b7169203331-01").is_err());
        assert!(parse_traceparent("00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01").is_err());
        assert!(parse_traceparent("00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01").is_err());
        assert!(parse_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0G").is_err());
        assert!(parse_traceparent("00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").is_err());
        assert!(parse_traceparent("").is_err());
    }

    #[test]
    fn keeps_parent_when_tracestate_is_bad() {
        let ctx = ActivityContext::parse(VALID, Some("A=1")).unwrap();
        assert!(ctx.trace_state.is_empty());
        let ctx = ActivityContext::parse(VALID, Some("a=1")).unwrap();
        assert_eq!(ctx.trace_state.header(), "a=1");
    }

    #[test]
    fn w3c_id_shape() {
        assert!(looks_like_w3c_id(VALID));
        assert!(!looks_like_w3c_id("|abc.1."));
        assert!(!looks_like_w3c_id(&VALID.replacen("00", "ff", 1)));
    }
}
