//! Inbound QoS 2 state of one session, sans-IO: the packet ids received
//! (PUBREC sent) and not yet released, so that a retransmitted PUBLISH is
//! acknowledged again but delivered only once. Part of the session: it
//! survives a reconnect.

use std::collections::HashSet;

/// Outcome of an inbound QoS 2 PUBLISH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qos2Publish {
    /// First time: route it, then PUBREC.
    New,
    /// Same pkid before PUBREL: PUBREC again, do not route.
    Duplicate,
    /// More unreleased QoS 2 messages than the Receive Maximum allows.
    ReceiveMaximumExceeded,
}

#[derive(Debug, Default, Clone)]
pub struct Inbound {
    // Created with the first QoS 2 PUBLISH: most sessions never receive
    // one, and an empty set with its hasher keys is 64 bytes of each
    // (boxed on purpose: `Option<Box<_>>` is one word).
    #[allow(clippy::box_collection)]
    pending: Option<Box<HashSet<u16, ahash::RandomState>>>,
}

impl Inbound {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many QoS 2 messages wait for PUBREL.
    pub fn pending(&self) -> usize {
        self.pending.as_ref().map_or(0, |p| p.len())
    }

    pub fn publish(&mut self, pkid: u16, receive_maximum: u16) -> Qos2Publish {
        let pending = self.pending.get_or_insert_with(Box::default);
        if pending.contains(&pkid) {
            return Qos2Publish::Duplicate;
        }
        if pending.len() >= usize::from(receive_maximum) {
            return Qos2Publish::ReceiveMaximumExceeded;
        }
        pending.insert(pkid);
        Qos2Publish::New
    }

    /// PUBREL: true if the pkid was pending (answer PUBCOMP Success, else
    /// 0x92 Packet Identifier Not Found in 5.0).
    pub fn release(&mut self, pkid: u16) -> bool {
        self.pending.as_mut().is_some_and(|p| p.remove(&pkid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_is_not_new_until_released() {
        let mut i = Inbound::new();
        assert_eq!(i.publish(7, 10), Qos2Publish::New);
        assert_eq!(i.publish(7, 10), Qos2Publish::Duplicate);
        assert!(i.release(7));
        assert!(!i.release(7));
        assert_eq!(i.publish(7, 10), Qos2Publish::New);
    }

    #[test]
    fn receive_maximum_enforced() {
        let mut i = Inbound::new();
        assert_eq!(i.publish(1, 2), Qos2Publish::New);
        assert_eq!(i.publish(2, 2), Qos2Publish::New);
        assert_eq!(i.publish(3, 2), Qos2Publish::ReceiveMaximumExceeded);
        assert_eq!(i.publish(2, 2), Qos2Publish::Duplicate);
        i.release(1);
        assert_eq!(i.publish(3, 2), Qos2Publish::New);
    }
}
