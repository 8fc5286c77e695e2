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
    format_list(items, ",", |k, v| {
        is_token(k).then(|| format!("{k}={}", percent_encode(v)))
    })
}

/// Joins `key=value` members with `separator` within the limits, counted on what is written:
/// a member that would pass 64 members or 8192 bytes (separators included) is left out whole.
fn format_list<'a>(
    items: impl IntoIterator<Item = (&'a str, &'a str)>,
    separator: &str,
    member: impl Fn(&str, &str) -> Option<String>,
) -> String {
    let mut out = String::new();
    let mut count = 0;
    for (k, v) in items {
        let Some(member) = member(k, v) else { continue };
        let separator = if out.is_empty() { "" } else { separator };
        if count == BAGGAGE_MAX_MEMBERS || out.len() + separator.len() + member.len() > BAGGAGE_MAX_BYTES {
            break;
        }
        out.push_str(separator);
        out.push_str(&member);
        count += 1;
    }
    out
}

/// `WebUtility.UrlEncode`, which .NET uses for `Correlation-Context`: letters, digits and
/// `-_.!*()` stand for themselves, a space is `+`, every other byte `%XX`.
fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'!' | b'*' | b'(' | b')' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(char::from(b"0123456789ABCDEF"[(b >> 4) as usize]));
                out.push(char::from(b"0123456789ABCDEF"[(b & 0xf) as usize]));
            }
        }
    }
    out
}

/// `WebUtility.UrlDecode`: `+` is a space, `%XX` a byte; `None` if the bytes are not UTF-8
/// or an escape is broken.
fn url_decode(text: &str) -> Option<String> {
    percent_decode(&text.replace('+', " "))
}

/// Parses a `Correlation-Context` header as .NET does: `key=value` members separated by
/// commas, URL-encoded (`+` is a space), keys and values trimmed; a value ends at `;` (the
/// properties after it are ignored); members without a key or with an empty value are
/// skipped, as are undecodable ones; the W3C baggage limits apply. In header order.
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
        let v = v.split(';').next().unwrap_or_default();
        if let (Some(k), Some(v)) = (url_decode(trim_ows(k)), url_decode(trim_ows(v))) {
            let (k, v) = (trim_ows(&k), trim_ows(&v));
            if !k.is_empty() && !v.is_empty() {
                out.push((k.to_owned(), v.to_owned()));
            }
        }
    }
    out
}

/// Formats key/value pairs as a `Correlation-Context` header as .NET does: URL-encoded keys
/// and values, members joined with `", "`, within the W3C baggage limits.
pub fn format_correlation_context<'a>(items: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    format_list(items, ", ", |k, v| {
        (!k.is_empty()).then(|| format!("{}={}", url_encode(k), url_encode(v)))
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
        let header = format_correlation_context([("a b", "1,2"), ("c", "3 + 4")]);
        assert_eq!(
            header, "a+b=1%2C2, c=3+%2B+4",
            "as WebUtility.UrlEncode, joined with \", \""
        );
        assert_eq!(
            parse_correlation_context(&header),
            [("a b".into(), "1,2".into()), ("c".into(), "3 + 4".into())]
        );
        assert_eq!(
            parse_correlation_context(" x = 1 , junk, =2, y=, z=%20v%20;p=1, w=a+b"),
            [
                ("x".into(), "1".into()),
                ("z".into(), "v".into()),
                ("w".into(), "a b".into())
            ]
        );
    }

    #[test]
    fn limits_count_the_separators_written() {
        // Members of 133 bytes joined with ", ": 61 would fit with one-byte separators
        // (8173 bytes), but only 60 fit with the two bytes written.
        let value = "v".repeat(129);
        let items: Vec<(String, String)> = (0..64).map(|i| (format!("k{i:02}"), value.clone())).collect();
        let header = format_correlation_context(items.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        assert!(header.len() <= BAGGAGE_MAX_BYTES, "{}", header.len());
        assert_eq!(parse_correlation_context(&header).len(), 60);
    }

    #[test]
    fn w3c_baggage_accepts_whitespace_around_separators() {
        let parsed = parse_baggage("a = 1 ,\tb=2 ; p = q ,c =3");
        let pairs: Vec<_> = parsed.iter().map(|m| (m.key.as_str(), m.value.as_str())).collect();
        assert_eq!(pairs, [("a", "1"), ("b", "2"), ("c", "3")]);
        assert_eq!(parsed[1].properties[0].value.as_deref(), Some("q"));
    }
}
