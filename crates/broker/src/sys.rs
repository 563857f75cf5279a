//! `$SYS/broker/...` topics with Mosquitto's names, published as retained
//! messages every `sys_interval` from the counters in `stats.rs`.

use std::time::Duration;

use bytes::Bytes;
use midge_proto::QoS;

use crate::broker::Broker;
use crate::message::Message;
use crate::stats::Load;

/// Load averages kept between ticks.
#[derive(Debug, Default)]
pub(crate) struct SysState {
    messages_received: Load,
    messages_sent: Load,
    publish_received: Load,
    publish_sent: Load,
    publish_dropped: Load,
    bytes_received: Load,
    bytes_sent: Load,
    connections: Load,
}

fn fmt_load(v: f64) -> String {
    format!("{v:.2}")
}

impl SysState {
    /// The `$SYS` topics and values for this tick.
    pub fn tick(&mut self, broker: &Broker, interval: Duration) -> Vec<(String, String)> {
        let s = broker.stats();
        let mut out: Vec<(String, String)> = vec![
            ("version".into(), broker.config().version.clone()),
            ("uptime".into(), format!("{} seconds", s.uptime.as_secs())),
            ("clients/connected".into(), s.clients_connected.to_string()),
            ("clients/active".into(), s.clients_connected.to_string()),
            (
                "clients/disconnected".into(),
                s.clients_disconnected.to_string(),
            ),
            (
                "clients/inactive".into(),
                s.clients_disconnected.to_string(),
            ),
            ("clients/total".into(), s.clients_total.to_string()),
            ("clients/maximum".into(), s.clients_maximum.to_string()),
            ("messages/received".into(), s.messages_received.to_string()),
            ("messages/sent".into(), s.messages_sent.to_string()),
            ("messages/stored".into(), s.messages_stored.to_string()),
            ("store/messages/count".into(), s.messages_stored.to_string()),
            ("retained messages/count".into(), s.retained.to_string()),
            ("bytes/received".into(), s.bytes_received.to_string()),
            ("bytes/sent".into(), s.bytes_sent.to_string()),
            (
                "publish/messages/dropped".into(),
                s.publish_dropped.to_string(),
            ),
            (
                "publish/messages/received".into(),
                s.publish_received.to_string(),
            ),
            ("publish/messages/sent".into(), s.publish_sent.to_string()),
            ("subscriptions/count".into(), s.subscriptions.to_string()),
        ];
        if let Some(d) = broker.durability() {
            out.extend([
                ("store/engine".into(), d.engine.to_owned()),
                ("store/bytes".into(), d.store.bytes.to_string()),
                ("store/commits".into(), d.store.commits.to_string()),
                ("store/syncs".into(), d.store.syncs.to_string()),
                (
                    "store/sync/time_us".into(),
                    d.store.sync_time_us.to_string(),
                ),
                ("store/backlog".into(), d.store.backlog.to_string()),
                ("store/refused/full".into(), d.refused_full.to_string()),
                ("store/write/failures".into(), d.write_failures.to_string()),
                (
                    "store/dropped/queue_full".into(),
                    d.store.dropped_queue_full.to_string(),
                ),
            ]);
        }
        let loads: [(&str, &mut Load, u64); 8] = [
            (
                "messages/received",
                &mut self.messages_received,
                s.messages_received,
            ),
            ("messages/sent", &mut self.messages_sent, s.messages_sent),
            (
                "publish/received",
                &mut self.publish_received,
                s.publish_received,
            ),
            ("publish/sent", &mut self.publish_sent, s.publish_sent),
            (
                "publish/dropped",
                &mut self.publish_dropped,
                s.publish_dropped,
            ),
            ("bytes/received", &mut self.bytes_received, s.bytes_received),
            ("bytes/sent", &mut self.bytes_sent, s.bytes_sent),
            ("connections", &mut self.connections, s.connections_total),
        ];
        for (name, load, total) in loads {
            load.update(total, interval);
            for (avg, window) in load.avg.iter().zip(["1min", "5min", "15min"]) {
                out.push((format!("load/{name}/{window}"), fmt_load(*avg)));
            }
        }
        out
    }

    /// Publishes this tick's values as retained messages.
    pub fn publish(&mut self, broker: &Broker, interval: Duration) {
        for (name, value) in self.tick(broker, interval) {
            let msg = Message::new(
                format!("$SYS/broker/{name}"),
                Bytes::from(value),
                QoS::AtMostOnce,
                true,
            );
            broker.publish(msg);
        }
    }
}
