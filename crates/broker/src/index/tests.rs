use super::*;
use proptest::prelude::*;

fn info(qos: QoS) -> SubInfo {
    SubInfo {
        qos,
        no_local: false,
        retain_as_published: false,
        id: None,
    }
}

fn keys(idx: &Index<u64>, topic: &str) -> Vec<u64> {
    let mut out = Vec::new();
    idx.matches(topic, &mut out, |_| true);
    out.iter().map(|m| m.key).collect()
}

#[test]
fn wildcards_match_like_the_spec() {
    let mut idx = Index::new();
    idx.subscribe("sport/tennis/player1/#", 1, 1, info(QoS::AtMostOnce));
    idx.subscribe("sport/+/player1", 2, 2, info(QoS::AtMostOnce));
    idx.subscribe("#", 3, 3, info(QoS::AtMostOnce));
    idx.subscribe("+/+", 4, 4, info(QoS::AtMostOnce));
    idx.subscribe("/+", 5, 5, info(QoS::AtMostOnce));
    assert_eq!(keys(&idx, "sport/tennis/player1"), vec![1, 2, 3]);
    assert_eq!(keys(&idx, "sport/tennis/player1/ranking"), vec![1, 3]);
    assert_eq!(keys(&idx, "sport/tennis"), vec![3, 4]);
    assert_eq!(keys(&idx, "/finance"), vec![3, 4, 5]);
    assert_eq!(keys(&idx, "$SYS/x"), Vec::<u64>::new());
}

#[test]
fn dollar_topics_need_explicit_first_level() {
    let mut idx = Index::new();
    idx.subscribe("$SYS/#", 1, 1, info(QoS::AtMostOnce));
    idx.subscribe("+/monitor/Clients", 2, 2, info(QoS::AtMostOnce));
    idx.subscribe("$SYS/monitor/+", 3, 3, info(QoS::AtMostOnce));
    assert_eq!(keys(&idx, "$SYS/monitor/Clients"), vec![1, 3]);
}

#[test]
fn subscribe_replaces_and_unsubscribe_prunes() {
    let mut idx = Index::new();
    assert!(idx.subscribe("a/b", 1, 1, info(QoS::AtMostOnce)));
    assert!(!idx.subscribe("a/b", 1, 1, info(QoS::ExactlyOnce)));
    assert_eq!(idx.len(), 1);
    let mut out = Vec::new();
    idx.matches("a/b", &mut out, |_| true);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].info.qos, QoS::ExactlyOnce);
    assert!(idx.unsubscribe("a/b", 1));
    assert!(!idx.unsubscribe("a/b", 1));
    assert!(idx.is_empty());
    assert!(idx.root.is_empty(), "branches pruned");
}

#[test]
fn overlapping_filters_are_adjacent() {
    let mut idx = Index::new();
    idx.subscribe("a/#", 7, 7, info(QoS::AtMostOnce));
    idx.subscribe("x/#", 2, 2, info(QoS::AtMostOnce));
    idx.subscribe("a/+", 2, 2, info(QoS::AtMostOnce));
    idx.subscribe("a/b", 7, 7, info(QoS::AtLeastOnce));
    assert_eq!(keys(&idx, "a/b"), vec![2, 7, 7]);
}

#[test]
fn shared_groups_round_robin_and_prefer_online() {
    let mut idx = Index::new();
    for k in 1..=3 {
        idx.subscribe("$share/g/t/#", k, k, info(QoS::AtLeastOnce));
    }
    idx.subscribe("$share/h/t/x", 9, 9, info(QoS::AtLeastOnce));
    let mut seen = Vec::new();
    for _ in 0..6 {
        let mut out = Vec::new();
        idx.matches("t/x", &mut out, |_| true);
        assert_eq!(out.len(), 2, "one member per group");
        assert!(out.iter().all(|m| m.share.is_some()));
        seen.extend(out.iter().filter(|m| m.key != 9).map(|m| m.key));
    }
    seen.sort_unstable();
    assert_eq!(seen, vec![1, 1, 2, 2, 3, 3]);
    // Only member 2 online: it gets everything.
    for _ in 0..4 {
        let mut out = Vec::new();
        idx.matches("t/y", &mut out, |v| *v == 2);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].key, 2);
    }
    let m = idx.pick_shared("$share/g/t/#", 2, |_| true).map(|m| m.key);
    assert!(matches!(m, Some(1) | Some(3)));
    assert!(idx.unsubscribe("$share/g/t/#", 1));
    assert_eq!(idx.len(), 3);
}

fn level() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".to_string()),
        Just("b".to_string()),
        Just("".to_string()),
        Just("$x".to_string()),
    ]
}

fn topic_strategy() -> impl Strategy<Value = String> {
    proptest::collection::vec(level(), 1..5).prop_map(|v| v.join("/"))
}

fn filter_strategy() -> impl Strategy<Value = String> {
    let lvl = prop_oneof![level(), Just("+".to_string())];
    (proptest::collection::vec(lvl, 1..5), any::<bool>()).prop_map(|(mut v, hash)| {
        if hash {
            v.push("#".to_string());
        }
        v.join("/")
    })
}

proptest! {
    #[test]
    fn trie_agrees_with_topic_matches(
        filters in proptest::collection::vec(filter_strategy(), 1..12),
        topics in proptest::collection::vec(topic_strategy(), 1..12),
    ) {
        let mut idx = Index::new();
        for (k, f) in filters.iter().enumerate() {
            idx.subscribe(f, k as u64, k as u64, info(QoS::AtMostOnce));
        }
        for t in &topics {
            let mut got = keys(&idx, t);
            got.dedup();
            let mut want: Vec<u64> = filters
                .iter()
                .enumerate()
                .filter(|(_, f)| topic::matches(f, t))
                .map(|(k, _)| k as u64)
                .collect();
            want.sort_unstable();
            want.dedup();
            // Duplicate filters in `filters` replace each other per key, so
            // compare as sets of keys.
            prop_assert_eq!(got, want, "topic {}", t);
        }
    }
}

#[test]
fn split_level_cases() {
    use super::split_level;
    assert_eq!(split_level("a/b/c"), ("a", Some("b/c")));
    assert_eq!(split_level("a"), ("a", None));
    assert_eq!(split_level(""), ("", None));
    assert_eq!(split_level("/a"), ("", Some("a")));
    assert_eq!(split_level("a/"), ("a", Some("")));
    assert_eq!(split_level("é/ü"), ("é", Some("ü")));
}
