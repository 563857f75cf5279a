//! Topic names and topic filters: validation, shared subscriptions, matching
//! (MQTT 5.0 §4.7 and §4.8.2; the same rules hold in 3.1.1 §4.7).
//!
//! Levels are separated by `/`; empty levels (`a//b`, `/a`, `a/`) are
//! valid. In a filter `+` must fill a whole level and `#` must fill the
//! whole last level. `$share/{group}/{filter}` is a shared subscription.

/// Why a topic name or filter is invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("topic is empty")]
    Empty,
    #[error("topic is longer than 65,535 bytes")]
    TooLong,
    #[error("topic contains U+0000")]
    NullCharacter,
    #[error("wildcard in a topic name")]
    WildcardInName,
    #[error("'#' is not the last level or not alone in its level")]
    MultiLevelWildcardMisplaced,
    #[error("'+' not alone in its level")]
    SingleLevelWildcardMisplaced,
    #[error("shared subscription malformed ($share/{{group}}/{{filter}})")]
    SharedMalformed,
    #[error("topic has more levels than allowed")]
    TooManyLevels,
}

/// Longest topic name or filter: a UTF-8 string field.
pub const MAX_TOPIC_LEN: usize = crate::wire::MAX_FIELD_LEN;

const SHARE_PREFIX: &str = "$share/";

fn check_common(s: &str) -> Result<(), TopicError> {
    if s.is_empty() {
        return Err(TopicError::Empty);
    }
    if s.len() > MAX_TOPIC_LEN {
        return Err(TopicError::TooLong);
    }
    if s.as_bytes().contains(&0) {
        return Err(TopicError::NullCharacter);
    }
    Ok(())
}

fn level_count(s: &str) -> usize {
    s.bytes().filter(|&b| b == b'/').count() + 1
}

/// Validates a topic name (PUBLISH, will topic): non-empty, at most 65,535
/// bytes, no `+`/`#`, no U+0000.
pub fn validate_name(name: &str) -> Result<(), TopicError> {
    check_common(name)?;
    if name.bytes().any(|b| b == b'+' || b == b'#') {
        return Err(TopicError::WildcardInName);
    }
    Ok(())
}

/// [`validate_name`] plus a limit on the number of levels (a broker's
/// defence against pathological topics).
///
/// One pass over the bytes (it runs for every PUBLISH a broker receives;
/// three scans cost some 400 instructions on a short topic), with the same
/// errors in the same order of precedence as [`validate_name`] followed by
/// the level count.
pub fn validate_name_with_limit(name: &str, max_levels: usize) -> Result<(), TopicError> {
    if name.is_empty() {
        return Err(TopicError::Empty);
    }
    if name.len() > MAX_TOPIC_LEN {
        return Err(TopicError::TooLong);
    }
    let (mut levels, mut null, mut wildcard) = (1usize, false, false);
    for &b in name.as_bytes() {
        match b {
            b'/' => levels += 1,
            0 => null = true,
            b'+' | b'#' => wildcard = true,
            _ => {}
        }
    }
    if null {
        return Err(TopicError::NullCharacter);
    }
    if wildcard {
        return Err(TopicError::WildcardInName);
    }
    if levels > max_levels {
        return Err(TopicError::TooManyLevels);
    }
    Ok(())
}

/// Validates the wildcard placement of a plain (non-shared) filter.
fn check_levels(filter: &str) -> Result<(), TopicError> {
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.contains('#') && (level != "#" || levels.peek().is_some()) {
            return Err(TopicError::MultiLevelWildcardMisplaced);
        }
        if level.contains('+') && level != "+" {
            return Err(TopicError::SingleLevelWildcardMisplaced);
        }
    }
    Ok(())
}

/// Validates a topic filter (SUBSCRIBE, UNSUBSCRIBE), including the
/// `$share/{group}/{filter}` form: the group is non-empty without `+`, `#`
/// or `/`, and the filter after it is non-empty and valid.
pub fn validate_filter(filter: &str) -> Result<(), TopicError> {
    check_common(filter)?;
    if let Some(rest) = filter.strip_prefix(SHARE_PREFIX) {
        let (group, inner) = rest.split_once('/').ok_or(TopicError::SharedMalformed)?;
        if group.is_empty() || group.contains(['+', '#']) || inner.is_empty() {
            return Err(TopicError::SharedMalformed);
        }
        return check_levels(inner);
    }
    check_levels(filter)
}

/// [`validate_filter`] plus a limit on the number of levels (of the filter
/// proper, after any `$share/{group}/`).
pub fn validate_filter_with_limit(filter: &str, max_levels: usize) -> Result<(), TopicError> {
    validate_filter(filter)?;
    let inner = parse_shared(filter).map_or(filter, |(_, f)| f);
    if level_count(inner) > max_levels {
        return Err(TopicError::TooManyLevels);
    }
    Ok(())
}

/// Splits `$share/{group}/{filter}` into (group, filter); `None` if the filter
/// is not a shared subscription. Only the shape is looked at: call
/// [`validate_filter`] first.
pub fn parse_shared(filter: &str) -> Option<(&str, &str)> {
    filter.strip_prefix(SHARE_PREFIX)?.split_once('/')
}

/// True when `topic` (a valid name) matches `filter` (a valid, non-shared
/// filter); topics starting with `$` are not matched by a leading wildcard.
/// `a/#` matches `a` as well as everything below it; `+` matches one level,
/// an empty one included.
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(fl), Some(tl)) if fl == tl => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let ok = [
            "a", "/", "a/b", "a//b", "/a", "a/", "$SYS/x", " ", "ü/€", "a b",
        ];
        for n in ok {
            assert_eq!(validate_name(n), Ok(()), "{n:?}");
        }
        let bad = [
            ("", TopicError::Empty),
            ("a/+", TopicError::WildcardInName),
            ("#", TopicError::WildcardInName),
            ("a+b", TopicError::WildcardInName),
            ("a\0b", TopicError::NullCharacter),
        ];
        for (n, e) in bad {
            assert_eq!(validate_name(n), Err(e), "{n:?}");
        }
        let long = "a".repeat(MAX_TOPIC_LEN + 1);
        assert_eq!(validate_name(&long), Err(TopicError::TooLong));
        assert_eq!(validate_name(&long[1..]), Ok(()));
        assert_eq!(validate_name_with_limit("a/b/c", 3), Ok(()));
        assert_eq!(
            validate_name_with_limit("a/b/c/", 3),
            Err(TopicError::TooManyLevels)
        );
    }

    proptest::proptest! {
        /// The one-pass check agrees with `validate_name` plus the level
        /// count, errors and their precedence included.
        #[test]
        fn name_with_limit_is_name_plus_levels(
            name in "[a/+#\\x00é]{0,12}",
            max in 0usize..6,
        ) {
            let two_step = validate_name(&name).and_then(|()| {
                if level_count(&name) > max {
                    Err(TopicError::TooManyLevels)
                } else {
                    Ok(())
                }
            });
            proptest::prop_assert_eq!(validate_name_with_limit(&name, max), two_step);
        }
    }

    #[test]
    fn filters() {
        let ok = [
            "#",
            "+",
            "a/#",
            "a/+/b",
            "+/+",
            "/+",
            "a//#",
            "+/#",
            "$SYS/#",
            "a/b",
            "$share/g/a/#",
            "$share/g/+",
            "$share/g//",
            "$share",
            "$share2/x/y",
            "$shared/g",
        ];
        for f in ok {
            assert_eq!(validate_filter(f), Ok(()), "{f:?}");
        }
        let bad = [
            ("", TopicError::Empty),
            ("a/#/b", TopicError::MultiLevelWildcardMisplaced),
            ("a#", TopicError::MultiLevelWildcardMisplaced),
            ("a/b#", TopicError::MultiLevelWildcardMisplaced),
            ("##", TopicError::MultiLevelWildcardMisplaced),
            ("a+", TopicError::SingleLevelWildcardMisplaced),
            ("a/+b/c", TopicError::SingleLevelWildcardMisplaced),
            ("++", TopicError::SingleLevelWildcardMisplaced),
            ("a\0", TopicError::NullCharacter),
            ("$share/", TopicError::SharedMalformed),
            ("$share/g", TopicError::SharedMalformed),
            ("$share/g/", TopicError::SharedMalformed),
            ("$share//a", TopicError::SharedMalformed),
            ("$share/g+/a", TopicError::SharedMalformed),
            ("$share/#/a", TopicError::SharedMalformed),
            ("$share/g/a#", TopicError::MultiLevelWildcardMisplaced),
        ];
        for (f, e) in bad {
            assert_eq!(validate_filter(f), Err(e), "{f:?}");
        }
        assert_eq!(validate_filter_with_limit("$share/g/a/b", 2), Ok(()));
        assert_eq!(
            validate_filter_with_limit("a/b/c", 2),
            Err(TopicError::TooManyLevels)
        );
    }

    #[test]
    fn shared() {
        assert_eq!(parse_shared("$share/g/a/b"), Some(("g", "a/b")));
        assert_eq!(parse_shared("$share/g//"), Some(("g", "/")));
        assert_eq!(parse_shared("$share/g"), None);
        assert_eq!(parse_shared("a/b"), None);
        assert_eq!(parse_shared("$sharex/g/a"), None);
    }

    #[test]
    fn matching_table() {
        let table: &[(&str, &str, bool)] = &[
            ("a/b", "a/b", true),
            ("a/b", "a/c", false),
            ("a/b", "a/b/c", false),
            ("a/b/c", "a/b", false),
            ("#", "a", true),
            ("#", "a/b/c", true),
            ("#", "/", true),
            ("a/#", "a", true),
            ("a/#", "a/", true),
            ("a/#", "a/b/c", true),
            ("a/#", "b", false),
            ("a/#", "ab", false),
            ("+", "a", true),
            ("+", "a/b", false),
            ("+", "/", false),
            ("+/+", "/", true),
            ("/+", "/a", true),
            ("+/b", "a/b", true),
            ("a/+", "a", false),
            ("a/+", "a/", true),
            ("a/+/c", "a//c", true),
            ("a/+/#", "a/b", true),
            ("a/+/#", "a", false),
            ("+/#", "a", true),
            // $-topics are not matched by a leading wildcard (MQTT-4.7.2-1).
            ("#", "$SYS/broker", false),
            ("+/broker", "$SYS/broker", false),
            ("+", "$SYS", false),
            ("$SYS/#", "$SYS/broker/load", true),
            ("$SYS/+", "$SYS/broker", true),
            ("$SYS", "$SYS", true),
            ("a/#", "a/$x", true),
            // Case matters; no normalisation.
            ("A", "a", false),
            ("a/b/", "a/b", false),
        ];
        for (f, t, want) in table {
            assert_eq!(matches(f, t), *want, "{f:?} vs {t:?}");
        }
    }
}
