//! Feeds: the server side of an SSE stream or a long-poll subscription. A
//! feed is an internal session subscribed to some filters, whose messages a
//! pump task numbers (1, 2, ...) into a bounded ring buffer. SSE readers and
//! pollers read the buffer from a sequence number, so a client that comes
//! back (`Last-Event-ID: FEED-SEQ`, `cursor=FEED-SEQ`) resumes where it left
//! off; what the ring had to drop meanwhile is counted and reported.
//!
//! A feed outlives its HTTP connections for `http.stream_idle_secs`, then
//! the reaper closes its session. Feeds are bounded in number
//! (`http.max_streams`) and each in size (`http.stream_buffer`).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::message::MessageJson;
use super::session::{Inbox, InternalClient};

/// One buffered message and its number.
#[derive(Debug)]
pub struct Item {
    pub seq: u64,
    pub msg: MessageJson,
}

/// What a read found.
#[derive(Debug, Default)]
pub struct Batch {
    pub items: Vec<Arc<Item>>,
    /// Messages after the reader's position that the ring dropped before
    /// they could be read.
    pub dropped: u64,
    /// The session has ended (kicked, broker shutting down): nothing more
    /// will come.
    pub closed: bool,
}

#[derive(Debug)]
struct Ring {
    items: VecDeque<Arc<Item>>,
    /// The number the next message gets.
    next_seq: u64,
    cap: usize,
    closed: bool,
}

/// One feed.
#[derive(Debug)]
pub struct Feed {
    pub id: String,
    pub username: Option<String>,
    pub filters: Vec<String>,
    ring: Mutex<Ring>,
    notify: Notify,
    attached: AtomicUsize,
    /// Milliseconds since the hub's epoch of the last detach or read.
    last_active: AtomicU64,
    epoch: Instant,
    cancel: CancellationToken,
    /// Messages the ring dropped (oldest first) because it was full.
    pub evicted: AtomicU64,
}

impl Feed {
    fn new(
        id: String,
        username: Option<String>,
        filters: Vec<String>,
        cap: usize,
        epoch: Instant,
    ) -> Feed {
        Feed {
            id,
            username,
            filters,
            ring: Mutex::new(Ring {
                items: VecDeque::new(),
                next_seq: 1,
                cap: cap.max(1),
                closed: false,
            }),
            notify: Notify::new(),
            attached: AtomicUsize::new(0),
            last_active: AtomicU64::new(epoch.elapsed().as_millis() as u64),
            epoch,
            cancel: CancellationToken::new(),
            evicted: AtomicU64::new(0),
        }
    }

    fn push(&self, msg: MessageJson) {
        {
            let mut r = self.ring.lock();
            let seq = r.next_seq;
            r.next_seq += 1;
            if r.items.len() >= r.cap {
                r.items.pop_front();
                self.evicted.fetch_add(1, Ordering::Relaxed);
            }
            r.items.push_back(Arc::new(Item { seq, msg }));
        }
        self.notify.notify_waiters();
    }

    fn close(&self) {
        self.ring.lock().closed = true;
        self.notify.notify_waiters();
    }

    /// The last number given out (0 before the first message).
    pub fn last_seq(&self) -> u64 {
        self.ring.lock().next_seq - 1
    }

    /// Up to `max` messages numbered after `after`.
    pub fn read_after(&self, after: u64, max: usize) -> Batch {
        let r = self.ring.lock();
        let after = after.min(r.next_seq - 1);
        let first = r.items.front().map_or(r.next_seq, |i| i.seq);
        let dropped = first.saturating_sub(after + 1);
        let skip = (after + 1).saturating_sub(first) as usize;
        Batch {
            items: r.items.iter().skip(skip).take(max).cloned().collect(),
            dropped,
            closed: r.closed,
        }
    }

    /// As [`Feed::read_after`], waiting until something is there, the feed
    /// closes, or `deadline`.
    pub async fn wait_after(
        &self,
        after: u64,
        max: usize,
        deadline: tokio::time::Instant,
    ) -> Batch {
        loop {
            // Registered before looking, so a push in between is not missed.
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let b = self.read_after(after, max);
            if !b.items.is_empty() || b.dropped > 0 || b.closed {
                return b;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return b;
            }
        }
    }

    /// Forgets messages up to `seq` (a poller has them).
    pub fn trim(&self, seq: u64) {
        let mut r = self.ring.lock();
        while r.items.front().is_some_and(|i| i.seq <= seq) {
            r.items.pop_front();
        }
    }

    pub fn touch(&self) {
        self.last_active
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = self.last_active.load(Ordering::Relaxed);
        Duration::from_millis((self.epoch.elapsed().as_millis() as u64).saturating_sub(last))
    }

    pub fn is_closed(&self) -> bool {
        self.ring.lock().closed
    }

    /// Marks a reader attached until the guard drops.
    pub fn attach(self: &Arc<Self>) -> Attached {
        self.attached.fetch_add(1, Ordering::Relaxed);
        self.touch();
        Attached(self.clone())
    }

    pub fn buffered(&self) -> usize {
        self.ring.lock().items.len()
    }
}

/// An SSE connection reading a feed; detaches on drop.
#[derive(Debug)]
pub struct Attached(pub Arc<Feed>);

impl Drop for Attached {
    fn drop(&mut self) {
        self.0.touch();
        self.0.attached.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Every live feed.
#[derive(Debug)]
pub struct FeedHub {
    feeds: Mutex<HashMap<String, Arc<Feed>>>,
    buffer: usize,
    idle: Duration,
    max: usize,
    epoch: Instant,
}

impl FeedHub {
    pub fn new(buffer: usize, idle: Duration, max: usize) -> FeedHub {
        FeedHub {
            feeds: Mutex::new(HashMap::new()),
            buffer,
            idle,
            max,
            epoch: Instant::now(),
        }
    }

    /// Whether another feed may be opened.
    pub fn has_room(&self) -> bool {
        self.feeds.lock().len() < self.max
    }

    /// Registers a feed for a subscribed session and starts its pump.
    pub fn start(
        &self,
        client: InternalClient,
        mut inbox: Inbox,
        filters: Vec<String>,
    ) -> Arc<Feed> {
        let id = super::random_id();
        let feed = Arc::new(Feed::new(
            id.clone(),
            client.username().map(str::to_owned),
            filters,
            self.buffer,
            self.epoch,
        ));
        self.feeds.lock().insert(id, feed.clone());
        let pump = feed.clone();
        tokio::spawn(async move {
            // The pump owns the session: it ends when the feed is reaped.
            let _client = client;
            loop {
                tokio::select! {
                    _ = pump.cancel.cancelled() => break,
                    m = inbox.next() => match m {
                        Some(m) => pump.push(MessageJson::from(&m)),
                        None => break,
                    },
                }
            }
            pump.close();
        });
        feed
    }

    /// The feed `id` if `username` owns it.
    pub fn get(&self, id: &str, username: Option<&str>) -> Option<Arc<Feed>> {
        let f = self.feeds.lock().get(id).cloned()?;
        (f.username.as_deref() == username).then_some(f)
    }

    /// Ends a feed now.
    pub fn remove(&self, id: &str) {
        if let Some(f) = self.feeds.lock().remove(id) {
            f.cancel.cancel();
        }
    }

    /// Closes feeds nobody attached to for the idle time, and closed ones.
    pub fn reap(&self) {
        let mut gone = Vec::new();
        self.feeds.lock().retain(|_, f| {
            let keep = !(f.attached.load(Ordering::Relaxed) == 0
                && (f.idle_for() >= self.idle || f.is_closed()));
            if !keep {
                gone.push(f.clone());
            }
            keep
        });
        for f in gone {
            f.cancel.cancel();
        }
    }

    /// Ends every feed (shutdown).
    pub fn close_all(&self) {
        for (_, f) in self.feeds.lock().drain() {
            f.cancel.cancel();
        }
    }

    pub fn len(&self) -> usize {
        self.feeds.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Messages dropped by full rings, over the live feeds.
    pub fn evicted(&self) -> u64 {
        self.feeds
            .lock()
            .values()
            .map(|f| f.evicted.load(Ordering::Relaxed))
            .sum()
    }

    pub fn idle(&self) -> Duration {
        self.idle
    }
}

/// A feed id and a sequence number, `FEED-SEQ`.
pub fn parse_position(s: &str) -> Option<(&str, u64)> {
    let (id, seq) = s.trim().rsplit_once('-')?;
    if id.is_empty() {
        return None;
    }
    Some((id, seq.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(n: u32) -> MessageJson {
        MessageJson {
            topic: format!("t/{n}"),
            payload: Some(n.to_string()),
            payload_base64: None,
            qos: 0,
            retain: false,
            properties: Default::default(),
        }
    }

    #[test]
    fn ring_numbers_drops_and_trims() {
        let f = Feed::new("f".into(), None, vec![], 3, Instant::now());
        assert_eq!(f.read_after(0, 10).items.len(), 0);
        for n in 1..=5 {
            f.push(msg(n));
        }
        let b = f.read_after(0, 10);
        assert_eq!(
            b.items.iter().map(|i| i.seq).collect::<Vec<_>>(),
            vec![3, 4, 5]
        );
        assert_eq!(b.dropped, 2, "1 and 2 fell out of the ring");
        assert_eq!(f.evicted.load(Ordering::Relaxed), 2);
        let b = f.read_after(3, 10);
        assert_eq!(b.items.len(), 2);
        assert_eq!(b.dropped, 0);
        assert_eq!(f.read_after(4, 1).items[0].seq, 5);
        assert!(
            f.read_after(99, 10).items.is_empty(),
            "future positions read nothing"
        );
        f.trim(4);
        assert_eq!(f.buffered(), 1);
        assert_eq!(f.read_after(4, 10).dropped, 0);
        assert_eq!(f.last_seq(), 5);
    }

    #[tokio::test]
    async fn wait_wakes_on_push_and_on_deadline() {
        let f = Arc::new(Feed::new("f".into(), None, vec![], 8, Instant::now()));
        let start = tokio::time::Instant::now();
        let b = f.wait_after(0, 8, start + Duration::from_millis(50)).await;
        assert!(b.items.is_empty());
        assert!(start.elapsed() >= Duration::from_millis(50));
        let g = f.clone();
        let waiter = tokio::spawn(async move {
            g.wait_after(0, 8, tokio::time::Instant::now() + Duration::from_secs(10))
                .await
        });
        // Pushed while the waiter waits (or before: it then finds it at once).
        f.push(msg(1));
        let b = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .expect("joined");
        assert_eq!(b.items.len(), 1);
    }

    #[test]
    fn positions_parse() {
        assert_eq!(parse_position("ab12-7"), Some(("ab12", 7)));
        assert_eq!(parse_position("-7"), None);
        assert_eq!(parse_position("ab12"), None);
        assert_eq!(parse_position("ab-x"), None);
    }
}
