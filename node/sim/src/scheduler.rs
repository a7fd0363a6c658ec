//! The simulation's clock and agenda: a priority queue of events keyed by simulated time
//! and then by the order they were scheduled in, so two events due in the same
//! millisecond always run in the same order and a seed replays exactly. No wall clock is
//! read anywhere in the simulator.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Simulated time in milliseconds since the section was founded.
pub(crate) type Millis = u64;

struct Entry<E> {
    at: Millis,
    sequence: u64,
    event: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.sequence) == (other.at, other.sequence)
    }
}

impl<E> Eq for Entry<E> {}

impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<E> Ord for Entry<E> {
    /// Reversed, so the max-heap pops the earliest event first.
    fn cmp(&self, other: &Self) -> Ordering {
        other.at.cmp(&self.at).then(other.sequence.cmp(&self.sequence))
    }
}

/// Events waiting for their time.
pub(crate) struct Scheduler<E> {
    queue: BinaryHeap<Entry<E>>,
    scheduled: u64,
    now: Millis,
}

impl<E> Scheduler<E> {
    /// An empty agenda at time 0.
    pub(crate) fn new() -> Self {
        Scheduler { queue: BinaryHeap::new(), scheduled: 0, now: 0 }
    }

    /// The time of the event being processed.
    pub(crate) fn now(&self) -> Millis {
        self.now
    }

    /// Schedules `event` at `at`, or now if `at` is past: time never goes back.
    pub(crate) fn at(&mut self, at: Millis, event: E) {
        let sequence = self.scheduled;
        self.scheduled += 1;
        self.queue.push(Entry { at: at.max(self.now), sequence, event });
    }

    /// Schedules `event` `delay` ms from now.
    pub(crate) fn after(&mut self, delay: Millis, event: E) {
        self.at(self.now.saturating_add(delay), event);
    }

    /// The next event due, with the clock moved to its time.
    pub(crate) fn next(&mut self) -> Option<(Millis, E)> {
        let entry = self.queue.pop()?;
        self.now = entry.at;
        Some((entry.at, entry.event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_come_out_by_time_then_by_the_order_they_went_in() {
        let mut scheduler = Scheduler::new();
        scheduler.at(20, "late");
        scheduler.at(10, "first at 10");
        scheduler.at(10, "second at 10");
        scheduler.at(5, "early");
        let order: Vec<&str> = std::iter::from_fn(|| scheduler.next().map(|(_, event)| event)).collect();
        assert_eq!(order, ["early", "first at 10", "second at 10", "late"]);
        assert_eq!(scheduler.now(), 20);
        scheduler.at(3, "in the past");
        assert_eq!(scheduler.next(), Some((20, "in the past")), "time never goes back");
    }
}
