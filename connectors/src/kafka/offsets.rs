//! Per-partition low-water marks: which offset may be stored (and so committed)
//! when messages finish out of order.
//!
//! Every consumed message is registered ([`OffsetTracker::begin`]) before it goes
//! downstream, and completed ([`OffsetTracker::complete`]) when all its alerts
//! (or its dead letter) are acknowledged by the broker. The position to store for
//! a partition is the smallest offset still in flight, or one past the highest
//! offset seen when nothing is in flight: never past a message whose alerts are
//! not yet safe (at-least-once), and advancing as soon as the oldest one is.
//!
//! Each assignment of a partition gets a fresh epoch: completions of messages
//! consumed under an earlier assignment (a revoke whose drain timed out, then the
//! partition came back) are ignored instead of moving the new owner's position.

use std::collections::{BTreeSet, HashMap};

/// A topic and partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: String,
    /// Partition number.
    pub partition: i32,
}

impl TopicPartition {
    /// `topic`/`partition`.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }
}

/// A registered message: hand it back to [`OffsetTracker::complete`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// Where the message came from.
    pub tp: TopicPartition,
    /// Its offset.
    pub offset: i64,
    epoch: u64,
}

#[derive(Debug, Default)]
struct PartitionState {
    epoch: u64,
    in_flight: BTreeSet<i64>,
    /// One past the offset registered last. Within one assignment offsets arrive
    /// in order; after an offset reset (the log was truncated or recreated) the
    /// position follows the new log instead of waiting for the old end.
    next: Option<i64>,
    /// The position last handed out for storing.
    stored: Option<i64>,
}

impl PartitionState {
    fn position(&self) -> Option<i64> {
        self.in_flight.first().copied().or(self.next)
    }
}

/// Low-water marks of every partition this consumer owns.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    partitions: HashMap<TopicPartition, PartitionState>,
    next_epoch: u64,
}

impl OffsetTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// A partition was assigned: start it afresh under a new epoch.
    pub fn assign(&mut self, tp: TopicPartition) {
        self.next_epoch += 1;
        self.partitions.insert(
            tp,
            PartitionState {
                epoch: self.next_epoch,
                ..PartitionState::default()
            },
        );
    }

    /// A partition was revoked: forget it; returns how many messages were still
    /// in flight (their completions will be ignored).
    pub fn revoke(&mut self, tp: &TopicPartition) -> usize {
        self.partitions
            .remove(tp)
            .map_or(0, |state| state.in_flight.len())
    }

    /// Registers a consumed message.
    pub fn begin(&mut self, tp: TopicPartition, offset: i64) -> Ticket {
        if !self.partitions.contains_key(&tp) {
            // Messages normally follow their partition's assignment callback; a
            // manual assignment (tests, tools) has none.
            self.assign(tp.clone());
        }
        let state = self.partitions.entry(tp.clone()).or_default();
        state.in_flight.insert(offset);
        state.next = Some(offset + 1);
        // The first message starts where the committed position already is.
        state.stored.get_or_insert(offset);
        Ticket {
            tp,
            offset,
            epoch: state.epoch,
        }
    }

    /// Marks a message done; returns the position to store for its partition when
    /// it moved forward (the next offset to consume, as Kafka commits it).
    pub fn complete(&mut self, ticket: &Ticket) -> Option<i64> {
        let state = self.partitions.get_mut(&ticket.tp)?;
        if state.epoch != ticket.epoch || !state.in_flight.remove(&ticket.offset) {
            return None;
        }
        let position = state.position()?;
        if state.stored == Some(position) {
            return None;
        }
        state.stored = Some(position);
        Some(position)
    }

    /// Messages in flight on `tps` (all partitions when `None`).
    pub fn in_flight(&self, tps: Option<&[TopicPartition]>) -> usize {
        match tps {
            None => self.partitions.values().map(|s| s.in_flight.len()).sum(),
            Some(tps) => tps
                .iter()
                .filter_map(|tp| self.partitions.get(tp))
                .map(|s| s.in_flight.len())
                .sum(),
        }
    }

    /// The position last handed out for `tp`.
    pub fn stored(&self, tp: &TopicPartition) -> Option<i64> {
        self.partitions.get(tp).and_then(|s| s.stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> TopicPartition {
        TopicPartition::new("in", p)
    }

    #[test]
    fn in_order_completion_advances_one_past_each_message() {
        let mut t = OffsetTracker::new();
        t.assign(tp(0));
        let a = t.begin(tp(0), 10);
        let b = t.begin(tp(0), 11);
        assert_eq!(t.complete(&a), Some(11));
        assert_eq!(t.complete(&b), Some(12));
        assert_eq!(t.in_flight(None), 0);
    }

    #[test]
    fn out_of_order_completion_holds_at_the_oldest_message_in_flight() {
        let mut t = OffsetTracker::new();
        t.assign(tp(0));
        let tickets: Vec<Ticket> = (5..=8).map(|o| t.begin(tp(0), o)).collect();
        // 6 and 8 finish first: 5 is still in flight, nothing may be stored.
        assert_eq!(t.complete(&tickets[1]), None);
        assert_eq!(t.complete(&tickets[3]), None);
        // 5 finishes: everything up to 7 (exclusive) is safe.
        assert_eq!(t.complete(&tickets[0]), Some(7));
        assert_eq!(t.stored(&tp(0)), Some(7));
        // 7 finishes: nothing in flight, one past the highest seen.
        assert_eq!(t.complete(&tickets[2]), Some(9));
    }

    #[test]
    fn partitions_are_independent() {
        let mut t = OffsetTracker::new();
        t.assign(tp(0));
        t.assign(tp(1));
        let a = t.begin(tp(0), 0);
        let b = t.begin(tp(1), 100);
        let c = t.begin(tp(1), 101);
        assert_eq!(t.complete(&c), None);
        assert_eq!(t.in_flight(Some(&[tp(1)])), 1);
        assert_eq!(t.complete(&b), Some(102));
        assert_eq!(t.in_flight(Some(&[tp(0)])), 1);
        assert_eq!(t.complete(&a), Some(1));
    }

    #[test]
    fn gaps_in_offsets_are_skipped() {
        // Compacted topics and transaction markers leave holes.
        let mut t = OffsetTracker::new();
        t.assign(tp(0));
        let a = t.begin(tp(0), 3);
        let b = t.begin(tp(0), 9);
        assert_eq!(t.complete(&a), Some(9));
        assert_eq!(t.complete(&b), Some(10));
    }

    #[test]
    fn completions_from_an_earlier_assignment_are_ignored() {
        let mut t = OffsetTracker::new();
        t.assign(tp(0));
        let old = t.begin(tp(0), 40);
        assert_eq!(t.revoke(&tp(0)), 1);
        assert_eq!(t.complete(&old), None, "partition no longer owned");
        t.assign(tp(0));
        let new = t.begin(tp(0), 20);
        assert_eq!(t.complete(&old), None, "stale epoch");
        assert_eq!(t.in_flight(None), 1);
        assert_eq!(t.complete(&new), Some(21));
    }

    #[test]
    fn a_ticket_completes_once() {
        let mut t = OffsetTracker::new();
        let a = t.begin(tp(2), 0);
        let b = t.begin(tp(2), 1);
        assert_eq!(t.complete(&a), Some(1));
        assert_eq!(t.complete(&a), None);
        assert_eq!(t.complete(&b), Some(2));
    }

    #[test]
    fn after_an_offset_reset_the_position_follows_the_new_log() {
        // The broker lost the log (or it was truncated) and the consumer reset to
        // the new start: what is processed there must become committable.
        let mut t = OffsetTracker::new();
        t.assign(tp(0));
        let a = t.begin(tp(0), 50);
        assert_eq!(t.complete(&a), Some(51));
        let b = t.begin(tp(0), 0);
        let c = t.begin(tp(0), 1);
        assert_eq!(t.complete(&b), Some(1));
        assert_eq!(t.complete(&c), Some(2));
        assert_eq!(t.stored(&tp(0)), Some(2));
    }
}
