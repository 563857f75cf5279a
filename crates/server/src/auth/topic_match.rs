//! Topic matching as the ACL needs it: a filter against a topic name, a filter
//! inside another filter (for SUBSCRIBE), and the validity of an ACL filter.
//!
//! Kept here rather than borrowed from midge-proto because "filter inside a
//! filter" is an ACL question only, and the rules for `$` topics must be the
//! same in both checks.

/// True when the topic name `topic` matches the filter `filter`.
///
/// A topic starting with `$` is matched only by a filter starting with `$`
/// (MQTT 4.7.2, and Mosquitto's ACL rule), so `#` never grants `$SYS`.
pub fn matches(filter: &str, topic: &str) -> bool {
    // Byte by byte rather than with `split`: this runs once per delivery.
    // Valid filters are assumed (`#` alone and last, `+` alone in a level).
    let (f, t) = (filter.as_bytes(), topic.as_bytes());
    if t.first() == Some(&b'$') && f.first() != Some(&b'$') {
        return false;
    }
    let (mut i, mut j) = (0, 0);
    loop {
        // Here `i` and `j` are at the start of a level.
        match f.get(i) {
            Some(b'#') => return true,
            Some(b'+') => {
                i += 1;
                while j < t.len() && t[j] != b'/' {
                    j += 1;
                }
            }
            _ => {
                while i < f.len() && f[i] != b'/' {
                    if t.get(j) != Some(&f[i]) {
                        return false;
                    }
                    i += 1;
                    j += 1;
                }
                if j < t.len() && t[j] != b'/' {
                    return false;
                }
            }
        }
        // Both levels ended: at a '/' or at the end.
        match (i < f.len(), j < t.len()) {
            (true, true) => {
                i += 1;
                j += 1;
            }
            (false, false) => return true,
            // The topic ended: only a trailing `/#` still matches (`a/#` matches `a`).
            (true, false) => return &f[i..] == b"/#",
            (false, true) => return false,
        }
    }
}

/// True when every topic that `inner` can match is also matched by `outer`:
/// a subscription to `inner` stays within what `outer` grants (or denies).
pub fn covers(outer: &str, inner: &str) -> bool {
    if inner.starts_with('$') && !outer.starts_with('$') {
        return false;
    }
    let mut o = outer.split('/');
    let mut i = inner.split('/');
    loop {
        match (o.next(), i.next()) {
            (Some("#"), _) => return true,
            // `inner` reaches deeper (or wider) than `outer` can follow.
            (Some(_), Some("#")) => return false,
            (Some("+"), Some(_)) => {}
            (Some(_), Some("+")) => return false,
            (Some(ol), Some(il)) => {
                if ol != il {
                    return false;
                }
            }
            (None, None) => return true,
            (Some(_), None) | (None, Some(_)) => return false,
        }
    }
}

/// Why a filter in an ACL file is not a valid MQTT topic filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("empty topic filter")]
    Empty,
    #[error("topic filter longer than 65535 bytes")]
    TooLong,
    #[error("topic filter contains U+0000")]
    Null,
    #[error("'#' must be alone in the last level")]
    MultiLevel,
    #[error("'+' must be alone in its level")]
    SingleLevel,
}

/// Checks that `filter` is a valid topic filter (MQTT 4.7.1).
pub fn validate_filter(filter: &str) -> Result<(), FilterError> {
    if filter.is_empty() {
        return Err(FilterError::Empty);
    }
    if filter.len() > usize::from(u16::MAX) {
        return Err(FilterError::TooLong);
    }
    if filter.contains('\0') {
        return Err(FilterError::Null);
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.contains('#') && (level != "#" || levels.peek().is_some()) {
            return Err(FilterError::MultiLevel);
        }
        if level.contains('+') && level != "+" {
            return Err(FilterError::SingleLevel);
        }
    }
    Ok(())
}

/// The filter of a shared subscription `$share/{group}/{filter}`, or the
/// filter itself: the ACL judges what a subscription reads, not its group.
pub fn strip_shared(filter: &str) -> &str {
    filter
        .strip_prefix("$share/")
        .and_then(|rest| rest.split_once('/'))
        .map_or(filter, |(_group, inner)| inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_follows_mqtt_rules() {
        let yes = [
            ("#", "a"),
            ("#", "a/b/c"),
            ("a/#", "a"),
            ("a/#", "a/b/c"),
            ("a/+", "a/b"),
            ("a/+", "a/"),
            ("+/+", "/x"),
            ("+", "a"),
            ("a/b", "a/b"),
            ("$SYS/#", "$SYS/broker/uptime"),
            ("$SYS/+/uptime", "$SYS/broker/uptime"),
        ];
        for (f, t) in yes {
            assert!(matches(f, t), "{f} should match {t}");
        }
        let no = [
            ("a/+", "a"),
            ("a/+", "a/b/c"),
            ("a/b", "a/b/c"),
            ("a/b/c", "a/b"),
            ("a/b", "a/c"),
            ("#", "$SYS/broker"),
            ("+/broker", "$SYS/broker"),
            ("$SYS/#", "SYS/x"),
            ("+", "a/b"),
        ];
        for (f, t) in no {
            assert!(!matches(f, t), "{f} should not match {t}");
        }
    }

    /// The obvious level-by-level definition, to check the byte matcher.
    fn reference_matches(filter: &str, topic: &str) -> bool {
        if topic.starts_with('$') != filter.starts_with('$') {
            return false;
        }
        let f: Vec<&str> = filter.split('/').collect();
        let t: Vec<&str> = topic.split('/').collect();
        for (k, level) in f.iter().enumerate() {
            match *level {
                "#" => return true,
                "+" if k < t.len() => {}
                l if t.get(k) == Some(&l) => {}
                _ => return false,
            }
        }
        f.len() == t.len()
    }

    /// Every valid filter and topic of up to three levels over a small
    /// alphabet: the fast matcher agrees with the reference, and a filter
    /// that covers another matches at least what the other matches.
    #[test]
    fn matcher_agrees_with_reference_exhaustively() {
        fn build(levels: &[&str], depth: usize) -> Vec<String> {
            let mut out: Vec<String> = levels.iter().map(|l| l.to_string()).collect();
            let mut last = out.clone();
            for _ in 1..depth {
                let mut next = Vec::new();
                for prefix in &last {
                    for l in levels {
                        next.push(format!("{prefix}/{l}"));
                    }
                }
                out.extend(next.iter().cloned());
                last = next;
            }
            out
        }
        let filters: Vec<String> = build(&["a", "b", "", "+", "#", "$s", "ab"], 3)
            .into_iter()
            .filter(|f| validate_filter(f).is_ok())
            .collect();
        let topics: Vec<String> = build(&["a", "b", "", "$s", "ab"], 3)
            .into_iter()
            .filter(|t| !t.is_empty())
            .collect();
        let mut compared = 0;
        for f in &filters {
            for t in &topics {
                assert_eq!(
                    matches(f, t),
                    reference_matches(f, t),
                    "filter {f:?} topic {t:?}"
                );
                compared += 1;
            }
        }
        assert!(compared > 40_000, "{compared}");
        for outer in &filters {
            for inner in &filters {
                if covers(outer, inner) {
                    for t in &topics {
                        if matches(inner, t) {
                            assert!(matches(outer, t), "{outer} covers {inner} but misses {t}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn covers_is_containment_of_filters() {
        let yes = [
            ("#", "#"),
            ("#", "a/+/c"),
            ("a/#", "a"),
            ("a/#", "a/#"),
            ("a/#", "a/+/b/#"),
            ("a/+", "a/b"),
            ("a/+", "a/+"),
            ("+/+", "a/+"),
            ("a/b", "a/b"),
            ("$SYS/#", "$SYS/broker/#"),
        ];
        for (o, i) in yes {
            assert!(covers(o, i), "{o} should cover {i}");
        }
        let no = [
            ("a/+", "a/#"),
            ("a/b", "a/+"),
            ("a/b", "a/#"),
            ("a/+", "a"),
            ("a/b", "a"),
            ("a", "a/b"),
            ("a/#", "#"),
            ("a/#", "+/b"),
            ("#", "$SYS/#"),
            ("+/broker", "$SYS/broker"),
        ];
        for (o, i) in no {
            assert!(!covers(o, i), "{o} should not cover {i}");
        }
    }

    #[test]
    fn filter_validation() {
        for ok in ["#", "+", "a/#", "a/+/b", "/", "a//b", "$SYS/#", "+/+/#"] {
            assert_eq!(validate_filter(ok), Ok(()), "{ok}");
        }
        assert_eq!(validate_filter(""), Err(FilterError::Empty));
        assert_eq!(validate_filter("a/#/b"), Err(FilterError::MultiLevel));
        assert_eq!(validate_filter("a#"), Err(FilterError::MultiLevel));
        assert_eq!(validate_filter("a/b+"), Err(FilterError::SingleLevel));
        assert_eq!(validate_filter("a\0b"), Err(FilterError::Null));
        assert_eq!(
            validate_filter(&"x".repeat(70_000)),
            Err(FilterError::TooLong)
        );
    }

    #[test]
    fn shared_prefix_is_stripped() {
        assert_eq!(strip_shared("$share/g/a/b"), "a/b");
        assert_eq!(strip_shared("$share/g/#"), "#");
        assert_eq!(strip_shared("a/b"), "a/b");
        // Malformed shared filters are judged as written (and fail the ACL).
        assert_eq!(strip_shared("$share/g"), "$share/g");
    }
}
