//! Builders and fixtures shared by the store's integration tests: records
//! with every field set, and a `Kind` that opens (and reopens) either
//! implementation so that one suite runs against both.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use midge_proto::{Properties, Protocol, QoS, RetainHandling, SubscriptionOptions};
use midge_store::{
    DeliveryRecord, DiskStore, MemoryStore, SessionId, SessionRecord, Store, StoreConfig,
    StoredMessage, SubscriptionRecord, WillRecord,
};

/// Opens a store of one kind, and reopens it (the disk kind for real).
pub trait Kind {
    fn open(&mut self, config: StoreConfig) -> Box<dyn Store>;
    fn reopen(&mut self, store: Box<dyn Store>, config: StoreConfig) -> Box<dyn Store>;
}

#[derive(Default)]
pub struct Mem;

impl Kind for Mem {
    fn open(&mut self, config: StoreConfig) -> Box<dyn Store> {
        Box::new(MemoryStore::new(&config))
    }
    fn reopen(&mut self, store: Box<dyn Store>, _: StoreConfig) -> Box<dyn Store> {
        store
    }
}

pub struct Disk {
    pub dir: tempfile::TempDir,
}

impl Default for Disk {
    fn default() -> Self {
        Disk {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }
}

impl Disk {
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

impl Kind for Disk {
    fn open(&mut self, config: StoreConfig) -> Box<dyn Store> {
        Box::new(DiskStore::open(self.path(), config).expect("open disk store"))
    }
    fn reopen(&mut self, store: Box<dyn Store>, config: StoreConfig) -> Box<dyn Store> {
        drop(store);
        self.open(config)
    }
}

/// "Now" for a test: the real time (the disk store stamps its commits with
/// it), taken once so that a test's times agree.
pub fn now_ms() -> u64 {
    static NOW: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *NOW.get_or_init(midge_store::time::now_ms)
}

pub fn message(store: &dyn Store, topic: &str, payload: &[u8]) -> Arc<StoredMessage> {
    Arc::new(StoredMessage {
        id: store.next_message_id(),
        topic: topic.into(),
        payload: Bytes::copy_from_slice(payload),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: Properties::default(),
        publisher: None,
        expires_at_ms: None,
    })
}

/// A message with every optional field set.
pub fn rich_message(store: &dyn Store, topic: &str) -> Arc<StoredMessage> {
    Arc::new(StoredMessage {
        id: store.next_message_id(),
        topic: topic.into(),
        payload: Bytes::from_static(b"\x00\xffbinary payload"),
        qos: QoS::ExactlyOnce,
        retain: true,
        properties: Properties {
            payload_format_indicator: Some(1),
            content_type: Some("application/json".into()),
            response_topic: Some("reply/here".into()),
            correlation_data: Some(Bytes::from_static(b"corr")),
            user_properties: vec![("a".into(), "1".into()), ("b".into(), "2".into())],
            ..Properties::default()
        },
        publisher: Some("publisher-1".into()),
        expires_at_ms: Some(now_ms() + 3_600_000),
    })
}

pub fn session(client_id: &str, expiry: u32, disconnected_at: Option<u64>) -> SessionRecord {
    SessionRecord {
        client_id: client_id.into(),
        protocol: Protocol::V5,
        expiry_interval: expiry,
        disconnected_at,
        username: Some("user".into()),
    }
}

pub fn delivery(msg: &Arc<StoredMessage>, qos: QoS) -> DeliveryRecord {
    DeliveryRecord {
        msg: msg.clone(),
        qos,
        retain: false,
        sub_ids: vec![],
        share: None,
    }
}

pub fn subscription(filter: &str) -> SubscriptionRecord {
    SubscriptionRecord {
        filter: filter.into(),
        options: SubscriptionOptions {
            qos: QoS::ExactlyOnce,
            no_local: true,
            retain_as_published: true,
            retain_handling: RetainHandling::SendIfNew,
        },
        id: Some(268_435_455),
    }
}

pub fn will(store: &dyn Store, due_at_ms: Option<u64>) -> WillRecord {
    // A will is stored inline: its id is not kept.
    WillRecord {
        msg: StoredMessage {
            id: 0,
            ..(*rich_message(store, "will/topic")).clone()
        },
        delay: 30,
        due_at_ms,
    }
}

pub fn sid(n: u64) -> SessionId {
    SessionId(n)
}

/// Disconnected a minute before `now_ms()`, in seconds.
pub fn a_minute_ago() -> Option<u64> {
    Some(now_ms() / 1000 - 60)
}
