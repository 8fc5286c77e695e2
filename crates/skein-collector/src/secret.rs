//! Checking the ingest key and the query token: in constant time (the time to refuse must
//! not tell an attacker how much of a guess was right), with the `Bearer` scheme matched as
//! HTTP says (case-insensitively).

use subtle::ConstantTimeEq;

/// The credentials of `Authorization: Bearer <credentials>` (any case of `Bearer`).
pub(crate) fn bearer(authorization: &str) -> Option<&str> {
    let (scheme, credentials) = authorization.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| credentials.trim())
}

/// True if `given` is `expected`, compared in constant time (for equal lengths).
pub(crate) fn matches(expected: &str, given: Option<&str>) -> bool {
    given.is_some_and(|given| bool::from(expected.as_bytes().ct_eq(given.as_bytes())))
}

/// True if no secret is required, or the `Authorization: Bearer` credentials or the other
/// given value carry it.
pub(crate) fn presented(expected: Option<&str>, authorization: Option<&str>, other: Option<&str>) -> bool {
    let Some(expected) = expected else { return true };
    // Both are checked, whatever the first says: no shortcut to time.
    let by_bearer = matches(expected, authorization.and_then(bearer));
    let by_other = matches(expected, other);
    by_bearer | by_other
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer abc"), Some("abc"));
        assert_eq!(bearer("BEARER  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
    }

    #[test]
    fn secrets_match_exactly() {
        assert!(matches("s3cret", Some("s3cret")));
        assert!(!matches("s3cret", Some("s3cre")));
        assert!(!matches("s3cret", Some("s3cretx")));
        assert!(!matches("s3cret", Some("")));
        assert!(!matches("s3cret", None));
        assert!(presented(None, None, None));
        assert!(presented(Some("k"), Some("bearer k"), None));
        assert!(presented(Some("k"), None, Some("k")));
        assert!(!presented(Some("k"), Some("Bearer x"), Some("y")));
    }
}
