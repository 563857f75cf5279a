//! Tests of the ACL: parsing, the access matrix, patterns, precedence.

use super::*;

fn acl(text: &str) -> Acl {
    match Acl::parse(Path::new("test.acl"), text.as_bytes()) {
        Ok(acl) => acl,
        Err(e) => panic!("ACL should parse: {e}"),
    }
}

fn line_error(text: &str) -> (usize, AclLineError) {
    match Acl::parse(Path::new("test.acl"), text.as_bytes()) {
        Err(AclError::Line { line, reason, .. }) => (line, reason),
        other => panic!("expected a line error, got {other:?}"),
    }
}

const SAMPLE: &str = "\
# anonymous clients
topic read public/#
topic write public/anon-inbox

user alice
topic readwrite alice/#
topic deny alice/secret/#
topic read shared/+/temp
topic write  spaced topic/with  blanks

user bob
topic bob/#
topic read $SYS/broker/uptime

# patterns: every client
pattern readwrite devices/%c/#
pattern read users/%u/inbox
pattern deny devices/%c/locked
";

#[test]
fn access_matrix() {
    let a = acl(SAMPLE);
    let anon = None;
    let alice = Some("alice");
    let bob = Some("bob");
    // (client, user, topic, publish, read)
    let cases: &[(&str, Option<&str>, &str, bool, bool)] = &[
        ("c1", anon, "public/news", false, true),
        ("c1", anon, "public/anon-inbox", true, true),
        ("c1", anon, "alice/x", false, false),
        ("c1", alice, "alice/x", true, true),
        ("c1", alice, "alice", true, true),
        ("c1", alice, "alice/secret/plans", false, false),
        ("c1", alice, "alice/secret", false, false),
        ("c1", alice, "public/news", false, false),
        ("c1", alice, "shared/kitchen/temp", false, true),
        ("c1", alice, "shared/kitchen/humidity", false, false),
        ("c1", alice, "spaced topic/with  blanks", true, false),
        ("c1", bob, "bob/a/b", true, true),
        ("c1", bob, "alice/x", false, false),
        ("c1", bob, "$SYS/broker/uptime", false, true),
        ("c1", bob, "$SYS/broker/load", false, false),
        // Patterns: %c for everyone, %u only with a username.
        ("dev7", anon, "devices/dev7/status", true, true),
        ("dev7", bob, "devices/dev7/a/b", true, true),
        ("dev7", bob, "devices/dev8/status", false, false),
        ("dev7", anon, "devices/dev7/locked", false, false),
        ("dev7", alice, "devices/dev7/locked", false, false),
        ("c1", bob, "users/bob/inbox", false, true),
        ("c1", bob, "users/alice/inbox", false, false),
        ("c1", Some("carol"), "users/carol/inbox", false, true),
        ("c1", Some("carol"), "carol/x", false, false),
    ];
    for &(client, user, topic, publish, read) in cases {
        assert_eq!(
            a.can_publish(client, user, topic),
            publish,
            "publish {client} {user:?} {topic}"
        );
        assert_eq!(
            a.can_read(client, user, topic),
            read,
            "read {client} {user:?} {topic}"
        );
    }
}

#[test]
fn subscribe_must_lie_within_a_readable_filter() {
    let a = acl(SAMPLE);
    let alice = Some("alice");
    let cases: &[(Option<&str>, &str, bool)] = &[
        (None, "public/#", true),
        (None, "public/+/x", true),
        (None, "#", false),
        (None, "+/news", false),
        (alice, "alice/#", true),
        (alice, "alice/+", true),
        (alice, "#", false),
        // Within a denied area as a whole: refused.
        (alice, "alice/secret/#", false),
        (alice, "alice/secret/x", false),
        // Overlaps the denied area only in part: accepted, filtered on delivery.
        (alice, "alice/+/x", true),
        (alice, "shared/+/temp", true),
        (alice, "shared/#", false),
        (alice, "$share/grp/alice/#", true),
        (alice, "$share/grp/#", false),
        (Some("bob"), "$SYS/broker/uptime", true),
        (Some("bob"), "$SYS/#", false),
        (Some("bob"), "devices/c9/#", true),
        (Some("bob"), "devices/+/x", false),
    ];
    for &(user, filter, ok) in cases {
        assert_eq!(
            a.can_subscribe("c9", user, filter),
            ok,
            "subscribe {user:?} {filter}"
        );
    }
}

#[test]
fn hash_subscription_delivers_only_readable_topics() {
    let a = acl("topic read #\ntopic deny secret/#\n");
    assert!(a.can_subscribe("c", None, "#"));
    assert!(a.can_read("c", None, "weather/today"));
    assert!(!a.can_read("c", None, "secret/plans"));
    assert!(!a.can_read("c", None, "secret"));
    // `#` does not reach `$` topics, for granting or for subscribing.
    assert!(!a.can_read("c", None, "$SYS/broker/uptime"));
    assert!(!a.can_subscribe("c", None, "$SYS/#"));
}

#[test]
fn deny_wins_whatever_the_order() {
    let before = acl("user u\ntopic deny a/b\ntopic readwrite a/#\n");
    let after = acl("user u\ntopic readwrite a/#\ntopic deny a/b\n");
    for a in [&before, &after] {
        assert!(!a.can_publish("c", Some("u"), "a/b"));
        assert!(!a.can_read("c", Some("u"), "a/b"));
        assert!(a.can_publish("c", Some("u"), "a/c"));
    }
    // A pattern's deny beats a user's own grant (stricter than Mosquitto).
    let a = acl("user u\ntopic readwrite a/#\npattern deny a/%u/#\n");
    assert!(!a.can_publish("c", Some("u"), "a/u/x"));
    assert!(a.can_publish("c", Some("u"), "a/v/x"));
    // A deny of one direction is a deny of both.
    let a = acl("topic read x\ntopic deny x\n");
    assert!(!a.can_read("c", None, "x"));
}

#[test]
fn access_kinds() {
    let a = acl("topic read r\ntopic write w\ntopic readwrite rw\ntopic both\n");
    assert!(a.can_read("c", None, "r") && !a.can_publish("c", None, "r"));
    assert!(!a.can_read("c", None, "w") && a.can_publish("c", None, "w"));
    assert!(a.can_read("c", None, "rw") && a.can_publish("c", None, "rw"));
    assert!(a.can_read("c", None, "both") && a.can_publish("c", None, "both"));
    // Mosquitto's reading of a lone word: it is the filter, readwrite.
    let a = acl("topic read\n");
    assert!(a.can_publish("c", None, "read"));
}

#[test]
fn patterns_skip_missing_or_empty_identities() {
    let a = acl("pattern readwrite u/%u/#\npattern deny d/%u\ntopic readwrite d/#\n");
    // No username: %u patterns do not apply, neither grant nor deny.
    assert!(!a.can_publish("c", None, "u//x"));
    assert!(a.can_publish("c", None, "d/x"));
    // An empty username is treated the same way.
    assert!(!a.can_publish("c", Some(""), "u//x"));
}

#[test]
fn wildcards_in_identities_do_not_widen_patterns() {
    let a = acl("pattern readwrite dev/%c/#\npattern readwrite home/%u\n");
    assert!(!a.can_publish("+", None, "dev/other/x"));
    assert!(!a.can_read("#", None, "dev/x/y"));
    assert!(!a.can_subscribe("#", None, "dev/#"));
    assert!(!a.can_publish("c", Some("a/#"), "home/a/b"));
    assert!(a.can_publish("ok", None, "dev/ok/x"));
    // Where a deny pattern would be widened, the client is refused
    // everything (fail closed).
    let a = acl("topic readwrite open/#\npattern deny open/%c\n");
    assert!(a.can_publish("fine", None, "open/x"));
    assert!(!a.can_publish("bad+", None, "open/x"));
}

#[test]
fn pattern_substitutions_may_repeat_and_mix() {
    let a = acl("pattern read %u/%c/%u-%c\n");
    assert!(a.can_read("dev", Some("ann"), "ann/dev/ann-dev"));
    assert!(!a.can_read("dev", Some("ann"), "ann/dev/ann-dex"));
    // `%` followed by anything else is literal.
    let a = acl("pattern read a/%x/%\n");
    assert!(a.can_read("c", None, "a/%x/%"));
}

#[test]
fn unknown_user_without_patterns_is_refused() {
    let a = acl("user alice\ntopic readwrite #\n");
    assert!(a.can_publish("c", Some("alice"), "x"));
    assert!(!a.can_publish("c", Some("mallory"), "x"));
    assert!(!a.can_publish("c", None, "x"));
    assert!(!a.can_subscribe("c", Some("mallory"), "x"));
}

#[test]
fn repeated_user_blocks_add_up() {
    let a = acl("user u\ntopic a\nuser v\ntopic b\nuser u\ntopic c\n");
    assert!(a.can_publish("c", Some("u"), "a"));
    assert!(a.can_publish("c", Some("u"), "c"));
    assert!(!a.can_publish("c", Some("u"), "b"));
    assert!(a.can_publish("c", Some("v"), "b"));
}

#[test]
fn usernames_with_spaces_and_tabs_between_words() {
    let a = acl("user   John Smith  \ntopic\treadwrite\tjohn/#\r\n");
    assert!(a.can_publish("c", Some("John Smith"), "john/x"));
}

#[test]
fn sys_and_share_are_never_writable() {
    let a = acl("topic readwrite $SYS/#\ntopic readwrite $share/#\ntopic readwrite #\n");
    assert!(!a.can_publish("c", None, "$SYS/broker/x"));
    assert!(!a.can_publish("c", None, "$share/g/x"));
    assert!(a.can_read("c", None, "$SYS/broker/x"));
}

#[test]
fn empty_file_refuses_everything() {
    let a = acl("# nothing\n\n");
    assert!(!a.can_publish("c", None, "x"));
    assert!(!a.can_read("c", Some("u"), "x"));
    assert!(!a.can_subscribe("c", None, "#"));
}

#[test]
fn parse_errors_name_the_line() {
    assert_eq!(
        line_error("topic read a\nfrobnicate x\n"),
        (2, AclLineError::UnknownKeyword("frobnicate".into()))
    );
    assert_eq!(line_error("\n\ntopic\n"), (3, AclLineError::MissingTopic));
    assert_eq!(line_error("pattern\n"), (1, AclLineError::MissingTopic));
    assert_eq!(
        line_error("topic reed a/b\n"),
        (1, AclLineError::InvalidAccess("reed".into()))
    );
    assert_eq!(line_error("user\n"), (1, AclLineError::MissingUser));
    assert_eq!(line_error("user   \n"), (1, AclLineError::MissingUser));
    assert_eq!(
        line_error("# c\ntopic read a/#/b\n"),
        (
            2,
            AclLineError::InvalidFilter {
                filter: "a/#/b".into(),
                reason: FilterError::MultiLevel
            }
        )
    );
    assert_eq!(
        line_error("pattern write x+\n"),
        (
            1,
            AclLineError::InvalidFilter {
                filter: "x+".into(),
                reason: FilterError::SingleLevel
            }
        )
    );
    match Acl::parse(Path::new("f.acl"), b"topic read ok\ntopic read \xff\n") {
        Err(AclError::Line {
            line: 2,
            reason: AclLineError::NotUtf8,
            ..
        }) => {}
        other => panic!("expected NotUtf8 on line 2, got {other:?}"),
    }
    let err = Acl::parse(Path::new("f.acl"), b"bogus\n").expect_err("bad line");
    assert_eq!(
        err.to_string(),
        "ACL file f.acl, line 1: unknown keyword 'bogus' (expected topic, pattern or user)"
    );
    let err = Acl::load(Path::new("/nonexistent/x.acl")).expect_err("missing file");
    assert!(err.to_string().contains("/nonexistent/x.acl"), "{err}");
}

#[test]
fn literal_prefix_is_a_prefix_of_every_match() {
    assert_eq!(literal_prefix("devices/%c/x"), "devices/%c/x");
    assert_eq!(literal_prefix("a/+/b"), "a/");
    assert_eq!(literal_prefix("a/#"), "a");
    assert_eq!(literal_prefix("#"), "");
    assert_eq!(literal_prefix("+/x"), "");
    // The pre-check must not hide matches at the edges.
    let a = acl("pattern read a/#\npattern read b/+/%c\npattern deny %c/x\n");
    assert!(a.can_read("c", None, "a"));
    assert!(a.can_read("c", None, "a/deep/er"));
    assert!(a.can_read("c", None, "b/any/c"));
    assert!(a.can_subscribe("c", None, "a/#"));
    assert!(a.can_subscribe("c", None, "a"));
    assert!(a.can_subscribe("c", None, "b/+/c"));
    assert!(!a.can_read("c", None, "c/x"));
}
