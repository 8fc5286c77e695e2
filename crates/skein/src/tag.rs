//! Typed tag values (OpenTelemetry attribute types).

use std::borrow::Cow;
use std::fmt;

/// The text of a string tag value: a `&'static str` is referenced, a copy of up to
/// [`TagText::INLINE_CAPACITY`] bytes (most attribute values: methods, routes, names, tiers,
/// short ids) is kept inline, and only longer text owns heap memory. An activity whose tags
/// own no heap memory costs no allocation for them and is freed without running their drop
/// code.
#[derive(Clone)]
pub struct TagText(Text);

#[derive(Clone)]
enum Text {
    Static(&'static str),
    /// The first `len` bytes of `bytes` are UTF-8 (copied from a `str`).
    Inline {
        len: u8,
        bytes: [u8; TagText::INLINE_CAPACITY],
    },
    Owned(Box<str>),
}

impl TagText {
    /// The longest text kept inline, in bytes (the value is as large as a `String`).
    pub const INLINE_CAPACITY: usize = 22;

    /// Text referencing a static string.
    pub const fn from_static(text: &'static str) -> TagText {
        TagText(Text::Static(text))
    }

    /// A copy of `text`: inline when it fits, so a short value costs no allocation.
    #[inline]
    pub fn copy(text: &str) -> TagText {
        if text.len() <= TagText::INLINE_CAPACITY {
            let mut bytes = [0; TagText::INLINE_CAPACITY];
            bytes[..text.len()].copy_from_slice(text.as_bytes());
            TagText(Text::Inline {
                len: text.len() as u8,
                bytes,
            })
        } else {
            TagText(Text::Owned(text.into()))
        }
    }

    /// The text.
    #[inline]
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Text::Static(text) => text,
            // Copied from a `str` whole, so it is UTF-8: the check cannot fail (and is cheap
            // for text this short).
            Text::Inline { len, bytes } => std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default(),
            Text::Owned(text) => text,
        }
    }

    /// True if the text is on the heap (longer than [`TagText::INLINE_CAPACITY`] and not
    /// static).
    #[inline]
    pub fn is_heap_allocated(&self) -> bool {
        matches!(self.0, Text::Owned(_))
    }

    /// The text as a `String`.
    pub fn into_string(self) -> String {
        match self.0 {
            Text::Owned(text) => text.into_string(),
            _ => self.as_str().to_owned(),
        }
    }
}

impl std::ops::Deref for TagText {
    type Target = str;
    #[inline]
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for TagText {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for TagText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for TagText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq for TagText {
    fn eq(&self, other: &TagText) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for TagText {}

impl PartialEq<str> for TagText {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for TagText {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl From<&'static str> for TagText {
    #[inline]
    fn from(text: &'static str) -> TagText {
        TagText::from_static(text)
    }
}

impl From<String> for TagText {
    /// Short text moves inline (the string is freed); longer text keeps its allocation.
    fn from(text: String) -> TagText {
        if text.len() <= TagText::INLINE_CAPACITY {
            TagText::copy(&text)
        } else {
            TagText(Text::Owned(text.into_boxed_str()))
        }
    }
}

impl From<Cow<'static, str>> for TagText {
    fn from(text: Cow<'static, str>) -> TagText {
        match text {
            Cow::Borrowed(text) => TagText::from_static(text),
            Cow::Owned(text) => TagText::from(text),
        }
    }
}

/// A tag value: string, bool, 64-bit integer, 64-bit float, or a homogeneous array of those.
#[derive(Clone, Debug, PartialEq)]
pub enum TagValue {
    /// A string.
    Str(TagText),
    /// A boolean.
    Bool(bool),
    /// A signed 64-bit integer.
    I64(i64),
    /// A 64-bit float.
    F64(f64),
    /// An array of strings.
    StrArray(Vec<Cow<'static, str>>),
    /// An array of booleans.
    BoolArray(Vec<bool>),
    /// An array of integers.
    I64Array(Vec<i64>),
    /// An array of floats.
    F64Array(Vec<f64>),
}

impl TagValue {
    /// The string, if this is a string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            TagValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is an integer value.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            TagValue::I64(v) => Some(*v),
            _ => None,
        }
    }

    /// The float, if this is a float value.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            TagValue::F64(v) => Some(*v),
            _ => None,
        }
    }

    /// The boolean, if this is a boolean value.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            TagValue::Bool(v) => Some(*v),
            _ => None,
        }
    }
}

fn join<T: fmt::Display>(f: &mut fmt::Formatter<'_>, items: &[T]) -> fmt::Result {
    f.write_str("[")?;
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        item.fmt(f)?;
    }
    f.write_str("]")
}

impl fmt::Display for TagValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TagValue::Str(s) => f.write_str(s),
            TagValue::Bool(v) => v.fmt(f),
            TagValue::I64(v) => v.fmt(f),
            TagValue::F64(v) => v.fmt(f),
            TagValue::StrArray(v) => join(f, v),
            TagValue::BoolArray(v) => join(f, v),
            TagValue::I64Array(v) => join(f, v),
            TagValue::F64Array(v) => join(f, v),
        }
    }
}

macro_rules! from_value {
    ($variant:ident: $($t:ty => $conv:expr),* $(,)?) => {$(
        impl From<$t> for TagValue {
            #[inline]
            fn from(v: $t) -> Self {
                #[allow(clippy::redundant_closure_call)]
                TagValue::$variant(($conv)(v))
            }
        }
    )*};
}

from_value!(Str:
    &'static str => TagText::from_static,
    String => TagText::from,
    Cow<'static, str> => TagText::from,
    TagText => |v| v,
);
from_value!(Bool: bool => |v| v);
from_value!(I64:
    i64 => |v| v,
    i32 => i64::from,
    i16 => i64::from,
    i8 => i64::from,
    u32 => i64::from,
    u16 => i64::from,
    u8 => i64::from,
);
from_value!(F64: f64 => |v| v, f32 => f64::from);
from_value!(StrArray:
    Vec<&'static str> => |v: Vec<&'static str>| v.into_iter().map(Cow::Borrowed).collect(),
    Vec<String> => |v: Vec<String>| v.into_iter().map(Cow::Owned).collect(),
    Vec<Cow<'static, str>> => |v| v,
);
from_value!(BoolArray: Vec<bool> => |v| v);
from_value!(I64Array: Vec<i64> => |v| v);
from_value!(F64Array: Vec<f64> => |v| v);

/// Unsigned values above `i64::MAX` become strings rather than wrap around.
impl From<u64> for TagValue {
    fn from(v: u64) -> Self {
        i64::try_from(v).map_or_else(|_| TagValue::Str(v.to_string().into()), TagValue::I64)
    }
}

impl From<usize> for TagValue {
    fn from(v: usize) -> Self {
        TagValue::from(v as u64)
    }
}

/// A named tag (`key`, typed value).
#[derive(Clone, Debug, PartialEq)]
pub struct Tag {
    /// The tag name (an OpenTelemetry semantic-convention name where one exists).
    pub key: Cow<'static, str>,
    /// The value.
    pub value: TagValue,
}

impl Tag {
    /// A tag from anything that converts to a key and a value.
    ///
    /// ```
    /// use skein::{Tag, TagValue};
    /// let tag = Tag::new("http.response.status_code", 200);
    /// assert_eq!(tag.value, TagValue::I64(200));
    /// ```
    pub fn new(key: impl Into<Cow<'static, str>>, value: impl Into<TagValue>) -> Self {
        Tag {
            key: key.into(),
            value: value.into(),
        }
    }

    /// A tag usable in `const` and `static` items, e.g. an `ActivitySource`'s tags.
    pub const fn new_static_str(key: &'static str, value: &'static str) -> Self {
        Tag {
            key: Cow::Borrowed(key),
            value: TagValue::Str(TagText::from_static(value)),
        }
    }
}

impl<K: Into<Cow<'static, str>>, V: Into<TagValue>> From<(K, V)> for Tag {
    fn from((k, v): (K, V)) -> Self {
        Tag::new(k, v)
    }
}

/// A value for [`Activity::set_tag`](crate::Activity::set_tag): any tag value, or an `Option`
/// of one where `None` removes the tag (as `SetTag(key, null)` does in .NET).
pub trait IntoTagValue {
    /// The value, or `None` to remove.
    fn into_tag_value(self) -> Option<TagValue>;
}

macro_rules! into_tag_value {
    ($($t:ty),* $(,)?) => {$(
        impl IntoTagValue for $t {
            #[inline]
            fn into_tag_value(self) -> Option<TagValue> {
                Some(self.into())
            }
        }
        impl IntoTagValue for Option<$t> {
            #[inline]
            fn into_tag_value(self) -> Option<TagValue> {
                self.map(Into::into)
            }
        }
    )*};
}

into_tag_value!(
    TagValue,
    &'static str,
    String,
    Cow<'static, str>,
    bool,
    i64,
    i32,
    i16,
    i8,
    u64,
    u32,
    u16,
    u8,
    usize,
    f64,
    f32,
    Vec<&'static str>,
    Vec<String>,
    Vec<Cow<'static, str>>,
    Vec<bool>,
    Vec<i64>,
    Vec<f64>,
);

impl crate::inline_vec::OwnsNothing for Tag {
    #[inline]
    fn owns_nothing(&self) -> bool {
        let value_owns_nothing = match &self.value {
            TagValue::Str(text) => !text.is_heap_allocated(),
            TagValue::Bool(_) | TagValue::I64(_) | TagValue::F64(_) => true,
            TagValue::StrArray(_) | TagValue::BoolArray(_) | TagValue::I64Array(_) | TagValue::F64Array(_) => false,
        };
        matches!(self.key, Cow::Borrowed(_)) && value_owns_nothing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_kept_inline_up_to_its_capacity_and_reads_back_the_same() {
        let fits = "a".repeat(TagText::INLINE_CAPACITY);
        let longer = "a".repeat(TagText::INLINE_CAPACITY + 1);
        // Multi-byte characters up to the last byte that fits.
        let accented = "é".repeat(TagText::INLINE_CAPACITY / 2);
        for text in [&*fits, &*longer, &*accented, "", "gold"] {
            let copied = TagText::copy(text);
            let moved = TagText::from(text.to_owned());
            assert_eq!(copied.as_str(), text);
            assert_eq!(moved.as_str(), text);
            let heap = text.len() > TagText::INLINE_CAPACITY;
            assert_eq!(copied.is_heap_allocated(), heap, "{text:?}");
            assert_eq!(moved.is_heap_allocated(), heap, "{text:?}");
            assert_eq!(copied, moved);
            assert_eq!(copied.clone().into_string(), text);
            assert_eq!(format!("{copied}"), text);
            assert_eq!(format!("{copied:?}"), format!("{text:?}"));
        }
        let fixed = TagText::from_static("gold");
        assert!(!fixed.is_heap_allocated());
        assert_eq!(fixed, TagText::copy("gold"));
        assert_eq!(fixed, "gold");
        assert_ne!(fixed, TagText::copy("silver"));
        assert_eq!(TagText::from(Cow::Owned(longer.clone())).as_str(), longer);
    }

    #[test]
    fn tags_own_nothing_unless_their_text_is_on_the_heap() {
        use crate::inline_vec::OwnsNothing;
        let long = "x".repeat(TagText::INLINE_CAPACITY + 1);
        assert!(Tag::new("k", "static").owns_nothing());
        assert!(Tag::new("k", TagText::copy("short")).owns_nothing());
        assert!(Tag::new("k", String::from("short")).owns_nothing());
        assert!(Tag::new("k", 1).owns_nothing());
        assert!(!Tag::new("k", long).owns_nothing());
        assert!(!Tag::new(String::from("owned key"), 1).owns_nothing());
        assert!(!Tag::new("k", vec![1i64]).owns_nothing());
    }

    #[test]
    fn conversions() {
        assert_eq!(TagValue::from(7u8), TagValue::I64(7));
        assert_eq!(TagValue::from(u64::MAX), TagValue::Str(u64::MAX.to_string().into()));
        assert_eq!(TagValue::from(vec!["a", "b"]).to_string(), "[a, b]");
        assert_eq!(TagValue::from(1.5f32), TagValue::F64(1.5));
        assert_eq!(None::<i64>.into_tag_value(), None);
        assert_eq!(Some("x").into_tag_value(), Some(TagValue::Str("x".into())));
    }
}
