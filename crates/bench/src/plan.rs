//! The shape of each traffic scenario: which topics the publishers use,
//! which filters the subscribers take, who hears whom, and which closed-loop
//! windows tie them together.

use crate::config::{BenchConfig, Scenario};

/// One subscriber: its filter and the publishers whose messages it must get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriberShape {
    pub filter: String,
    pub hears: Vec<u32>,
}

/// Publishers sharing one window, and the subscribers that receive exactly
/// their messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowShape {
    pub publishers: Vec<u32>,
    pub subscribers: Vec<usize>,
}

/// Topics, filters and windows of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    /// Topic of each publisher, indexed by publisher id.
    pub topics: Vec<String>,
    pub subscribers: Vec<SubscriberShape>,
    pub windows: Vec<WindowShape>,
}

/// Lays out `cfg`'s scenario under `prefix`.
pub fn shape(cfg: &BenchConfig, prefix: &str) -> Shape {
    let n = cfg.publishers as u32;
    let all: Vec<u32> = (0..n).collect();
    match cfg.scenario {
        // Distinct topics, one wildcard subscriber; one window over the
        // total (fan-in) since there is a single receiver.
        Scenario::FanIn | Scenario::Latency | Scenario::Conn => {
            let kind = if cfg.scenario == Scenario::Latency {
                "lat"
            } else {
                "in"
            };
            Shape {
                topics: all.iter().map(|i| format!("{prefix}/{kind}/{i}")).collect(),
                subscribers: (0..cfg.subscribers.max(1))
                    .map(|_| SubscriberShape {
                        filter: format!("{prefix}/{kind}/+"),
                        hears: all.clone(),
                    })
                    .collect(),
                windows: vec![WindowShape {
                    publishers: all.clone(),
                    subscribers: (0..cfg.subscribers.max(1)).collect(),
                }],
            }
        }
        // Every subscriber hears every publisher on one topic; the window
        // follows the slowest subscriber.
        Scenario::FanOut => {
            let topic = format!("{prefix}/out");
            Shape {
                topics: all.iter().map(|_| topic.clone()).collect(),
                subscribers: (0..cfg.subscribers)
                    .map(|_| SubscriberShape {
                        filter: topic.clone(),
                        hears: all.clone(),
                    })
                    .collect(),
                windows: vec![WindowShape {
                    publishers: all.clone(),
                    subscribers: (0..cfg.subscribers).collect(),
                }],
            }
        }
        // Pair i: publisher i to subscriber i on topic i, a window each.
        Scenario::Pairs => Shape {
            topics: all.iter().map(|i| format!("{prefix}/pair/{i}")).collect(),
            subscribers: all
                .iter()
                .map(|i| SubscriberShape {
                    filter: format!("{prefix}/pair/{i}"),
                    hears: vec![*i],
                })
                .collect(),
            windows: all
                .iter()
                .map(|i| WindowShape {
                    publishers: vec![*i],
                    subscribers: vec![*i as usize],
                })
                .collect(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fan_in_uses_one_wildcard() {
        let mut c = BenchConfig::new(Scenario::FanIn);
        c.publishers = 3;
        let s = shape(&c, "p");
        assert_eq!(s.topics, ["p/in/0", "p/in/1", "p/in/2"]);
        assert_eq!(s.subscribers.len(), 1);
        assert_eq!(s.subscribers[0].filter, "p/in/+");
        assert_eq!(s.subscribers[0].hears, [0, 1, 2]);
        assert_eq!(s.windows.len(), 1);
    }

    #[test]
    fn fan_out_and_pairs() {
        let mut c = BenchConfig::new(Scenario::FanOut);
        c.subscribers = 4;
        let s = shape(&c, "p");
        assert_eq!(s.topics, ["p/out"]);
        assert!(s.subscribers.iter().all(|x| x.filter == "p/out"));
        assert_eq!(s.windows[0].subscribers, [0, 1, 2, 3]);

        let mut c = BenchConfig::new(Scenario::Pairs);
        c.publishers = 2;
        c.subscribers = 2;
        let s = shape(&c, "p");
        assert_eq!(s.subscribers[1].filter, "p/pair/1");
        assert_eq!(s.subscribers[1].hears, [1]);
        assert_eq!(s.windows.len(), 2);
        assert_eq!(s.windows[1].subscribers, [1]);
    }
}
