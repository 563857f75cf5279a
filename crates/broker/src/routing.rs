//! The publish path: retain, route through the subscription index, queue
//! one `Delivery` per subscriber (sharing the message and its payload), and
//! the subscribe side (index updates, retained messages on subscribe).

use std::sync::Arc;
use std::time::Instant;

use bytestring::ByteString;
use midge_proto::{QoS, RetainHandling, SubscriptionOptions};

use crate::broker::Inner;
use crate::event::{DropReason, Event};
use crate::hooks::ClientRef;
use crate::index::{Match, SubInfo};
use crate::message::Message;
use crate::persist::Durable;
use crate::session::{Delivery, Session, Subscribed};
use crate::stats::Tally;

/// Reusable buffer of index matches, owned by each publisher's task so that
/// routing allocates nothing per message.
pub(crate) type Scratch = Vec<Match<Arc<Session>>>;

impl Inner {
    /// Retains (if asked and available) and routes a message published
    /// from inside midge. Returns the number of subscribers it was queued
    /// for.
    pub fn dispatch(&self, msg: Message, scratch: &mut Scratch) -> usize {
        if !msg.topic.starts_with("$SYS/") {
            self.counters.count_published(msg.qos, msg.payload.len());
        }
        // Nobody waits for an internal message: its writes are detached.
        let mut durable = Durable::default();
        let n = self.dispatch_uncounted(msg, scratch, &mut durable);
        self.submit_durable(durable, false);
        n
    }

    /// [`Inner::dispatch`] for a client's message: counted in its tally,
    /// which reaches the shared counters in batches. Its store writes are
    /// gathered in `durable`, for the caller to submit (and wait for before
    /// acknowledging).
    pub fn dispatch_from(
        &self,
        msg: Message,
        scratch: &mut Scratch,
        tally: &mut Tally,
        durable: &mut Durable,
    ) -> usize {
        if !msg.topic.starts_with("$SYS/") {
            tally.count_published(msg.qos, msg.payload.len());
        }
        self.dispatch_uncounted(msg, scratch, durable)
    }

    fn dispatch_uncounted(
        &self,
        msg: Message,
        scratch: &mut Scratch,
        durable: &mut Durable,
    ) -> usize {
        let msg = Arc::new(msg);
        if msg.retain && self.config.retain_available {
            // Stored long: its own copy, so the read buffer it came in can
            // be freed (deletes store nothing).
            let stored = if msg.payload.is_empty() {
                msg.clone()
            } else {
                Arc::new(msg.detached())
            };
            self.persist_retained(&stored, durable);
            self.retained.write().set(stored);
        }
        // `$SYS` updates are the broker talking to itself: no event each.
        if !msg.topic.starts_with("$SYS/") {
            self.emit_message(|| Event::MessagePublished {
                topic: msg.topic.clone(),
                qos: msg.qos,
                retain: msg.retain,
                payload_len: msg.payload.len(),
                payload: msg.payload.clone(),
                client_id: msg.publisher.clone(),
            });
        }
        self.route(&msg, scratch, durable)
    }

    /// Queues `msg` for every matching subscriber: once per client even
    /// with overlapping filters (highest QoS, all subscription identifiers),
    /// one member per shared group.
    pub fn route(&self, msg: &Arc<Message>, scratch: &mut Scratch, durable: &mut Durable) -> usize {
        scratch.clear();
        self.index
            .read()
            .matches(&msg.topic, scratch, |s| s.is_online());
        let mut delivered = 0;
        let mut i = 0;
        while i < scratch.len() && scratch[i].share.is_none() {
            let key = scratch[i].key;
            let mut qos: Option<QoS> = None;
            let mut rap = false;
            let mut ids = Vec::new();
            let mut j = i;
            while j < scratch.len() && scratch[j].share.is_none() && scratch[j].key == key {
                let m = &scratch[j];
                let own = m.info.no_local && msg.publisher.as_deref() == Some(&*m.value.client_id);
                if !own {
                    qos = qos.max(Some(m.info.qos));
                    rap |= m.info.retain_as_published;
                    if let Some(id) = m.info.id {
                        ids.push(id);
                    }
                }
                j += 1;
            }
            if let Some(granted) = qos {
                let d = Delivery {
                    msg: msg.clone(),
                    qos: granted.min(msg.qos),
                    retain: msg.retain && rap,
                    sub_ids: ids,
                    share: None,
                };
                if self.deliver_routed(&scratch[i].value, d, durable) {
                    delivered += 1;
                }
            }
            i = j;
        }
        for m in &scratch[i..] {
            let d = Delivery {
                msg: msg.clone(),
                qos: m.info.qos.min(msg.qos),
                retain: msg.retain && m.info.retain_as_published,
                sub_ids: m.info.id.into_iter().collect(),
                share: m.share.clone(),
            };
            if self.deliver_routed(&m.value, d, durable) {
                delivered += 1;
            }
        }
        scratch.clear();
        delivered
    }

    /// Queues one delivery after `authorize_deliver`; counts drops.
    pub fn deliver(&self, session: &Session, d: Delivery) -> bool {
        let username = session.username();
        let client = ClientRef {
            client_id: &session.client_id,
            username: username.as_deref(),
        };
        if !self.hooks.authorize_deliver(&client, &d.msg.topic) {
            return false;
        }
        match session.deliver(d) {
            Ok(()) => true,
            Err(DropReason::Offline) => false,
            Err(reason) => {
                self.note_drops(session, reason, 1);
                false
            }
        }
    }

    /// Adds or replaces a subscription of `session`. Returns true if new.
    pub fn subscribe(
        &self,
        session: &Arc<Session>,
        filter: &ByteString,
        options: SubscriptionOptions,
        id: Option<u32>,
    ) -> bool {
        let info = SubInfo {
            qos: options.qos,
            no_local: options.no_local,
            retain_as_published: options.retain_as_published,
            id,
        };
        let new = self
            .index
            .write()
            .subscribe(filter, session.id, session.clone(), info);
        let ended = {
            let mut st = session.state.lock();
            if !st.ended {
                st.subscriptions
                    .insert(filter.clone(), Subscribed { options, id });
            }
            st.ended
        };
        // The session ended (discarded by an administrator, taken over with
        // clean start) while its connection still ran: `end_session` may
        // have cleaned the index already, so the entry just added goes too.
        if ended {
            self.index.write().unsubscribe(filter, session.id);
        }
        new
    }

    /// Removes a subscription of `session`. Returns its options if it
    /// existed, so that a removal the store refuses can be undone.
    pub fn unsubscribe(&self, session: &Session, filter: &str) -> Option<Subscribed> {
        let existed = self.index.write().unsubscribe(filter, session.id);
        let removed = session.state.lock().subscriptions.remove(filter);
        if existed {
            // Index and session map change together; only an ended
            // session's map can be empty already.
            Some(removed.unwrap_or_else(|| Subscribed {
                options: SubscriptionOptions::default(),
                id: None,
            }))
        } else {
            None
        }
    }

    /// Queues the retained messages matching a new subscription, as the
    /// retain handling option asks.
    pub fn send_retained(
        &self,
        session: &Session,
        filter: &str,
        options: SubscriptionOptions,
        id: Option<u32>,
        is_new: bool,
    ) {
        let wanted = match options.retain_handling {
            RetainHandling::SendAtSubscribe => true,
            RetainHandling::SendIfNew => is_new,
            RetainHandling::DoNotSend => false,
        };
        if !wanted
            || !self.config.retain_available
            || midge_proto::topic::parse_shared(filter).is_some()
        {
            return;
        }
        let mut found = Vec::new();
        self.retained
            .read()
            .matching(filter, Instant::now(), &mut found);
        for msg in found {
            let d = Delivery {
                qos: options.qos.min(msg.qos),
                msg,
                retain: true,
                sub_ids: id.into_iter().collect(),
                share: None,
            };
            self.deliver_stored(session, d);
        }
    }

    /// Gives unacknowledged shared-subscription messages of an ending
    /// session to other members of their groups.
    pub fn redeliver_shared(&self, from: &Session, deliveries: Vec<Delivery>) {
        for mut d in deliveries {
            let Some(share) = d.share.clone() else {
                continue;
            };
            let picked = self
                .index
                .read()
                .pick_shared(&share, from.id, |s| s.is_online());
            if let Some(m) = picked {
                d.qos = m.info.qos.min(d.msg.qos);
                d.sub_ids = m.info.id.into_iter().collect();
                self.deliver_stored(&m.value, d);
            }
        }
    }
}
