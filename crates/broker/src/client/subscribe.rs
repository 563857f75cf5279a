//! SUBSCRIBE and UNSUBSCRIBE: per-filter checks and codes (the
//! subscriptions-per-client quota among them), index updates, retained
//! messages for new subscriptions.

use bytes::BytesMut;
use midge_proto::{topic, Properties, ReasonCode, SubAck, Subscribe, UnsubAck, Unsubscribe};

use super::{Client, Exit};
use crate::event::Event;
use crate::persist::{Action, Granted};

impl Client {
    pub(super) fn on_subscribe(&mut self, s: Subscribe, out: &mut BytesMut) -> Result<(), Exit> {
        let cfg = self.broker.config();
        let v5 = self.v5();
        let id = s.properties.subscription_identifiers.first().copied();
        let fail = |code: ReasonCode| {
            if v5 {
                code
            } else {
                ReasonCode::UnspecifiedError
            }
        };
        let mut reasons = Vec::with_capacity(s.filters.len());
        let mut granted: Vec<Granted> = Vec::new();
        for sub in s.filters {
            let f = &sub.filter;
            if topic::validate_filter_with_limit(f, cfg.max_topic_levels).is_err() {
                reasons.push(fail(ReasonCode::TopicFilterInvalid));
                continue;
            }
            let shared = topic::parse_shared(f).is_some();
            if shared && sub.options.no_local && v5 {
                return Err(Exit::error(ReasonCode::ProtocolError));
            }
            if !self
                .broker
                .inner
                .hooks
                .authorize_subscribe(&self.client_ref(), f)
            {
                reasons.push(fail(ReasonCode::NotAuthorized));
                continue;
            }
            if cfg.max_subscriptions_per_client > 0 {
                let st = self.session.state.lock();
                if st.subscriptions.len() >= cfg.max_subscriptions_per_client
                    && !st.subscriptions.contains_key(f)
                {
                    reasons.push(fail(ReasonCode::QuotaExceeded));
                    continue;
                }
            }
            let mut options = sub.options;
            options.qos = options.qos.min(cfg.maximum_qos);
            if !v5 {
                options.no_local = false;
                options.retain_as_published = false;
                options.retain_handling = Default::default();
            }
            let sub_id = if v5 { id } else { None };
            let previous = self.session.state.lock().subscriptions.get(f).cloned();
            let is_new = self
                .broker
                .inner
                .subscribe(&self.session, f, options, sub_id);
            reasons.push(ReasonCode::granted(options.qos));
            self.broker.inner.emit(|| Event::Subscribed {
                client_id: self.client_id.clone(),
                filter: f.clone(),
                qos: options.qos,
            });
            granted.push(Granted {
                filter: sub.filter,
                options,
                id: sub_id,
                is_new,
                previous,
            });
        }
        let ack = SubAck {
            pkid: s.pkid,
            reasons,
            properties: Properties::default(),
        };
        // A stored session's subscriptions are durable before the SUBACK;
        // its retained messages follow the SUBACK (`persist/acks.rs`).
        let commit = self.store_subscriptions(&granted);
        self.after_commit(commit, Action::Subscribe { ack, granted }, out)
    }

    pub(super) fn on_unsubscribe(
        &mut self,
        u: Unsubscribe,
        out: &mut BytesMut,
    ) -> Result<(), Exit> {
        let mut reasons = Vec::with_capacity(u.filters.len());
        let mut removed = Vec::new();
        for f in u.filters {
            let Some(was) = self.broker.inner.unsubscribe(&self.session, &f) else {
                reasons.push(ReasonCode::NoSubscriptionExisted);
                continue;
            };
            reasons.push(ReasonCode::Success);
            self.broker.inner.emit(|| Event::Unsubscribed {
                client_id: self.client_id.clone(),
                filter: f.clone(),
            });
            removed.push((f, was));
        }
        if !self.v5() {
            reasons.clear();
        }
        let ack = UnsubAck {
            pkid: u.pkid,
            reasons,
            properties: Properties::default(),
        };
        let commit = self.store_unsubscriptions(&removed);
        self.after_commit(commit, Action::Unsubscribe { ack, removed }, out)
    }
}
