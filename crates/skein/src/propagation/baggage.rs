//! W3C Baggage and the older `Correlation-Context` header.

/// The most members a W3C baggage header may carry.
pub const BAGGAGE_MAX_MEMBERS: usize = 64;
/// The most bytes a W3C baggage header may take.
pub const BAGGAGE_MAX_BYTES: usize = 8192;

/// One `key=value;properties` member of a W3C `baggage` header (value percent-decoded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaggageMember {
    /// The key (an RFC 7230 token).
    pub key: String,
    /// The decoded value.
    pub value: String,
    /// Metadata after the value: `key` or `key=value` properties, in order.
    pub properties: Vec<BaggageProperty>,
}

/// A property of a baggage member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaggageProperty {
    /// The property key.
    pub key: String,
    /// The decoded value, if the property has one.
    pub value: Option<String>,
}

fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

/// An RFC 7230 token, as W3C Baggage requires for keys.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

/// Characters that stand for themselves in a baggage value (`baggage-octet`, minus `%`).
fn is_plain_value_byte(c: u8) -> bool {
    matches!(c, 0x21 | 0x23..=0x24 | 0x26..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e)
}

/// Percent-encodes everything that is not a plain baggage octet (UTF-8 bytes included).
pub fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        if is_plain_value_byte(b) {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[(b >> 4) as usize]));
            out.push(char::from(b"0123456789ABCDEF"[(b & 0xf) as usize]));
        }
    }
    out
}

/// Decodes `%XX` escapes; `None` for a broken escape or bytes that are not UTF-8.
pub fn percent_decode(value: &str) -> Option<String> {
    let b = value.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            let hi = (hex[0] as char).to_digit(16)?;
            let lo = (hex[1] as char).to_digit(16)?;
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn trim_ows(s: &str) -> &str {
    s.trim_matches(|c| c == ' ' || c == '\t')
}

fn parse_value(raw: &str) -> Option<String> {
    let raw = trim_ows(raw);
    if !raw.bytes().all(|c| is_plain_value_byte(c) || c == b'%') {
        return None;
    }
    percent_decode(raw)
}

fn parse_member(raw: &str) -> Option<BaggageMember> {
    let mut parts = raw.split(';');
    let (key, value) = parts.next()?.split_once('=')?;
    let key = trim_ows(key);
    if !is_token(key) {
        return None;
    }
    let value = parse_value(value)?;
    let mut properties = Vec::new();
    for property in parts {
        let property = trim_ows(property);
        if property.is_empty() {
            continue;
        }
        let (k, v) = match property.split_once('=') {
            Some((k, v)) => (trim_ows(k), Some(parse_value(v)?)),
            None => (property, None),
        };
        if !is_token(k) {
            return None;
        }
        properties.push(BaggageProperty {
            key: k.to_owned(),
            value: v,
        });
    }
    Some(BaggageMember {
        key: key.to_owned(),
        value,
        properties,
    })
}

/// Parses a W3C `baggage` header. Invalid members are skipped; members past the 64-member or
/// 8192-byte limits are dropped whole (never cut in half). Never fails.
///
/// ```
/// use skein::propagation::parse_baggage;
/// let members = parse_baggage("tier=gold, note=hello%20world;ttl=60, bad key=x");
/// assert_eq!(members.len(), 2);
/// assert_eq!(members[1].value, "hello world");
/// assert_eq!(members[1].properties[0].key, "ttl");
/// ```
pub fn parse_baggage(header: &str) -> Vec<BaggageMember> {
    let mut out = Vec::new();
    let mut used = 0usize;
    for raw in header.split(',') {
        if trim_ows(raw).is_empty() {
            continue;
        }
        if out.len() == BAGGAGE_MAX_MEMBERS {
            break;
        }
        used += raw.len() + usize::from(used > 0);
        if used > BAGGAGE_MAX_BYTES {
            break;
        }
        if let Some(member) = parse_member(raw) {
            out.push(member);
        }
    }
    out
}

/// Formats key/value pairs as a W3C `baggage` header within the limits: pairs with a key
/// that is not a token are skipped, and members that would pass 64 members or 8192 bytes are
/// left out whole.
pub fn format_baggage<'a>(items: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    format_list(items, |k| is_token(k).then(|| k.to_owned()))
}

fn format_list<'a>(
    items: impl IntoIterator<Item = (&'a str, &'a str)>,
    key: impl Fn(&str) -> Option<String>,
) -> String {
    let mut out = String::new();
    let mut count = 0;
    for (k, v) in items {
        let Some(k) = key(k) else { continue };
        let member = format!("{k}={}", percent_encode(v));
        let extra = member.len() + usize::from(!out.is_empty());
        if count == BAGGAGE_MAX_MEMBERS || out.len() + extra > BAGGAGE_MAX_BYTES {
            break;
        }
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(&member);
        count += 1;
    }
    out
}

/// Parses a `Correlation-Context` header (`k=v,k2=v2`, percent-encoded), skipping invalid
/// members and applying the same limits as W3C baggage.
pub fn parse_correlation_context(header: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut used = 0usize;
    for raw in header.split(',') {
        let raw = trim_ows(raw);
        if raw.is_empty() {
            continue;
        }
        used += raw.len() + 1;
        if out.len() == BAGGAGE_MAX_MEMBERS || used > BAGGAGE_MAX_BYTES {
            break;
        }
        let Some((k, v)) = raw.split_once('=') else { continue };
        match (percent_decode(trim_ows(k)), percent_decode(trim_ows(v))) {
            (Some(k), Some(v)) if !k.is_empty() => out.push((k, v)),
            _ => {}
        }
    }
    out
}

/// Formats key/value pairs as a `Correlation-Context` header (keys percent-encoded too).
pub fn format_correlation_context<'a>(items: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    // `=` is a plain baggage octet, but in a key it would end the key early.
    format_list(items, |k| {
        (!k.is_empty()).then(|| percent_encode(k).replace('=', "%3D"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_encoding() {
        let header = format_baggage([("a", "x y,z;%"), ("b", "ünï")]);
        assert_eq!(header, "a=x%20y%2Cz%3B%25,b=%C3%BCn%C3%AF");
        let parsed = parse_baggage(&header);
        assert_eq!(parsed[0].value, "x y,z;%");
        assert_eq!(parsed[1].value, "ünï");
    }

    #[test]
    fn skips_invalid_members() {
        let parsed = parse_baggage("a=1,=2,b c=3,d=%zz,e=\"q\",f=ok ; p ; q = 1 ,g");
        let keys: Vec<_> = parsed.iter().map(|m| m.key.as_str()).collect();
        assert_eq!(keys, ["a", "f"]);
        assert_eq!(parsed[1].properties.len(), 2);
        assert_eq!(parsed[1].properties[1].value.as_deref(), Some("1"));
    }

    #[test]
    fn limits_drop_whole_members() {
        let many: Vec<String> = (0..70).map(|i| format!("k{i}=v")).collect();
        assert_eq!(parse_baggage(&many.join(",")).len(), 64);
        let big = "x".repeat(5000);
        let header = format!("a={big},b={big}");
        let parsed = parse_baggage(&header);
        assert_eq!(parsed.len(), 1);
        let items: Vec<(String, String)> = (0..3).map(|i| (format!("k{i}"), big.clone())).collect();
        let out = format_baggage(items.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        assert!(out.len() <= BAGGAGE_MAX_BYTES);
        assert_eq!(parse_baggage(&out).len(), 1);
        let many: Vec<(String, String)> = (0..100).map(|i| (format!("k{i}"), "v".to_owned())).collect();
        let out = format_baggage(many.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        assert_eq!(parse_baggage(&out).len(), 64);
    }

    #[test]
    fn correlation_context() {
        let header = format_correlation_context([("a b", "1,2"), ("c", "3")]);
        assert_eq!(
            parse_correlation_context(&header),
            [("a b".into(), "1,2".into()), ("c".into(), "3".into())]
        );
        assert_eq!(
            parse_correlation_context(" x = 1 , junk, =2"),
            [("x".into(), "1".into())]
        );
    }
}
