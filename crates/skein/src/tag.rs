//! Typed tag values (OpenTelemetry attribute types).

use std::borrow::Cow;
use std::fmt;

/// A tag value: string, bool, 64-bit integer, 64-bit float, or a homogeneous array of those.
#[derive(Clone, Debug, PartialEq)]
pub enum TagValue {
    /// A string.
    Str(Cow<'static, str>),
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
    &'static str => Cow::Borrowed,
    String => Cow::Owned,
    Cow<'static, str> => |v| v,
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
            value: TagValue::Str(Cow::Borrowed(value)),
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
        matches!(self.key, Cow::Borrowed(_))
            && matches!(
                self.value,
                TagValue::Str(Cow::Borrowed(_)) | TagValue::Bool(_) | TagValue::I64(_) | TagValue::F64(_)
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
