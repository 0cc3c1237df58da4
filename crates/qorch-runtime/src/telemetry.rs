//! A node's metrics: counted locally in plain integers on the hot path, published to the
//! [`metrics`] facade as deltas from the node's periodic work (every heartbeat interval) and
//! when the node stops.
//!
//! Nothing here calls a `metrics` macro per message: handles are registered once per node
//! (at its first publication) and a publication adds what was counted since the last one.
//! Series are labelled by node (cluster or sub-cluster name), behaviour type and priority,
//! never by agent. Without an installed recorder the handles are no-ops, and what remains
//! per message is a few integer additions (see `docs/metrics.md` and `docs/benchmarks.md`).
//!
//! Two figures are sampled:
//!
//! * handling time: one message in [`HANDLING_SAMPLE`] per node is timed (two clock reads);
//! * time in mailbox: when the node's timer work samples its mailbox (at most every
//!   [`MAILBOX_SAMPLE_EVERY`]), each lane's last message is marked, and the time until that
//!   message is taken out is recorded (an empty lane records zero). This is the waiting time
//!   a message sent at the sampling instant sees, without a timestamp in any envelope.

use std::time::{Duration, Instant};

use metrics::{Counter, Gauge, Histogram, Label, counter, gauge, histogram};
use qorch_protocol::Priority;

use crate::letter::NodeStats;

/// One message in this many (per node) has its handling timed.
pub(crate) const HANDLING_SAMPLE: u32 = 64;

/// The shortest time between two samples of a node's mailbox.
pub(crate) const MAILBOX_SAMPLE_EVERY: Duration = Duration::from_millis(10);

/// The priority label of each lane (`Priority::lane` order).
const PRIORITIES: [&str; 4] = ["control", "high", "normal", "low"];

/// Samples waiting to be published are capped (a node whose publications stall keeps the
/// first ones).
const MAX_PENDING_SAMPLES: usize = 4096;

/// What one behaviour type did at one node since the node started.
struct BehaviourCounts {
    name: &'static str,
    handled: [u64; 4],
    sent: [u64; 4],
    asks: u64,
    restarts: u64,
    failures: u64,
    handling_seconds: Vec<f64>,
    published: Published,
    handles: Option<BehaviourHandles>,
}

#[derive(Default)]
struct Published {
    handled: [u64; 4],
    sent: [u64; 4],
    asks: u64,
    restarts: u64,
    failures: u64,
}

struct BehaviourHandles {
    handled: [Counter; 4],
    sent: [Counter; 4],
    asks: Counter,
    restarts: Counter,
    failures: Counter,
    handling_seconds: Histogram,
}

struct NodeHandles {
    dead_letters: Counter,
    forwarded: Counter,
    redeliveries: Counter,
    duplicates: Counter,
    undeliverable: Counter,
    backpressured: Counter,
    ask_timeouts: Counter,
    timers_fired: Counter,
    timers_armed: Counter,
    mailbox_depth: [Gauge; 4],
    mailbox_wait: [Histogram; 4],
}

/// A node's local counts and its registered handles.
pub(crate) struct NodeTelemetry {
    behaviours: Vec<BehaviourCounts>,
    /// The behaviour looked up last (most nodes host one type).
    last: usize,
    /// Counts down to the next timed message.
    until_sample: u32,
    pub(crate) ask_timeouts: u64,
    pub(crate) timers_fired: u64,
    pub(crate) timers_armed: u64,
    published_stats: NodeStats,
    published_node: [u64; 3],
    /// Messages taken out of each mailbox lane.
    dequeued: [u64; 4],
    /// The marked message of each lane (its number in `dequeued`) and when it was marked.
    marks: [(u64, Instant); 4],
    last_mailbox_sample: Option<Instant>,
    depth: [usize; 4],
    waits: [Vec<f64>; 4],
    handles: Option<NodeHandles>,
}

impl NodeTelemetry {
    pub(crate) fn new() -> Self {
        let now = Instant::now();
        NodeTelemetry {
            behaviours: Vec::new(),
            last: 0,
            until_sample: HANDLING_SAMPLE,
            ask_timeouts: 0,
            timers_fired: 0,
            timers_armed: 0,
            published_stats: NodeStats::default(),
            published_node: [0; 3],
            dequeued: [0; 4],
            marks: [(u64::MAX, now); 4],
            last_mailbox_sample: None,
            depth: [0; 4],
            waits: Default::default(),
            handles: None,
        }
    }

    /// The index of behaviour type `name` (registered on first sight).
    #[inline]
    pub(crate) fn behaviour(&mut self, name: &'static str) -> usize {
        if let Some(b) = self.behaviours.get(self.last)
            && (std::ptr::eq(b.name, name) || b.name == name)
        {
            return self.last;
        }
        let i = if let Some(i) = self.behaviours.iter().position(|b| b.name == name) {
            i
        } else {
            self.behaviours.push(BehaviourCounts {
                name,
                handled: [0; 4],
                sent: [0; 4],
                asks: 0,
                restarts: 0,
                failures: 0,
                handling_seconds: Vec::new(),
                published: Published::default(),
                handles: None,
            });
            self.behaviours.len() - 1
        };
        self.last = i;
        i
    }

    /// Whether the next message's handling is timed (one in [`HANDLING_SAMPLE`]).
    #[inline]
    pub(crate) fn sample_handling(&mut self) -> bool {
        self.until_sample -= 1;
        if self.until_sample == 0 {
            self.until_sample = HANDLING_SAMPLE;
            true
        } else {
            false
        }
    }

    /// A message handled by behaviour `b` at lane `lane`, timed if `started` is set.
    #[inline]
    pub(crate) fn handled(&mut self, b: usize, lane: usize, started: Option<Instant>) {
        let Some(counts) = self.behaviours.get_mut(b) else {
            return;
        };
        counts.handled[lane] += 1;
        if let Some(t) = started
            && counts.handling_seconds.len() < MAX_PENDING_SAMPLES
        {
            counts.handling_seconds.push(t.elapsed().as_secs_f64());
        }
    }

    /// Messages sent by behaviour `b` at lane `lane`.
    #[inline]
    pub(crate) fn sent(&mut self, b: usize, lane: usize) {
        if let Some(counts) = self.behaviours.get_mut(b) {
            counts.sent[lane] += 1;
        }
    }

    /// Asks placed by behaviour `b`.
    pub(crate) fn asks(&mut self, b: usize, n: u64) {
        if let Some(counts) = self.behaviours.get_mut(b) {
            counts.asks += n;
        }
    }

    /// A restart (or, `failed`, a failure past the restart budget) of behaviour `b`.
    pub(crate) fn restart(&mut self, b: usize, failed: bool) {
        if let Some(counts) = self.behaviours.get_mut(b) {
            if failed {
                counts.failures += 1;
            } else {
                counts.restarts += 1;
            }
        }
    }

    /// A letter taken out of the mailbox at lane `lane`: if it is the marked one, its wait
    /// is recorded.
    #[inline]
    pub(crate) fn dequeued(&mut self, lane: usize) {
        self.dequeued[lane] += 1;
        if self.dequeued[lane] == self.marks[lane].0 {
            self.marks[lane].0 = u64::MAX;
            if self.waits[lane].len() < MAX_PENDING_SAMPLES {
                self.waits[lane].push(self.marks[lane].1.elapsed().as_secs_f64());
            }
        }
    }

    /// Samples the mailbox's lanes (`len` gives each lane's length), at most every
    /// [`MAILBOX_SAMPLE_EVERY`].
    pub(crate) fn sample_mailbox(&mut self, now: Instant, len: impl Fn(Priority) -> usize) {
        if self
            .last_mailbox_sample
            .is_some_and(|t| now.duration_since(t) < MAILBOX_SAMPLE_EVERY)
        {
            return;
        }
        self.last_mailbox_sample = Some(now);
        for p in Priority::DESCENDING {
            let lane = p.lane();
            let n = len(p);
            self.depth[lane] = n;
            if self.marks[lane].0 != u64::MAX {
                continue;
            }
            if n == 0 {
                if self.waits[lane].len() < MAX_PENDING_SAMPLES {
                    self.waits[lane].push(0.0);
                }
            } else {
                self.marks[lane] = (self.dequeued[lane] + n as u64, now);
            }
        }
    }

    /// Publishes what was counted since the last publication (registering the handles on
    /// the first one).
    pub(crate) fn publish(&mut self, node: &str, stats: &NodeStats) {
        let h = self.handles.get_or_insert_with(|| NodeHandles::new(node));
        let p = &self.published_stats;
        h.dead_letters
            .increment(stats.dead_letters.saturating_sub(p.dead_letters));
        h.forwarded
            .increment(stats.forwarded.saturating_sub(p.forwarded));
        h.redeliveries
            .increment(stats.redeliveries.saturating_sub(p.redeliveries));
        h.duplicates
            .increment(stats.duplicates.saturating_sub(p.duplicates));
        h.undeliverable
            .increment(stats.undeliverable.saturating_sub(p.undeliverable));
        h.backpressured
            .increment(stats.backpressured.saturating_sub(p.backpressured));
        self.published_stats = *stats;
        let now = [self.ask_timeouts, self.timers_fired, self.timers_armed];
        let [a, f, t] = self.published_node;
        h.ask_timeouts.increment(now[0] - a);
        h.timers_fired.increment(now[1] - f);
        h.timers_armed.increment(now[2] - t);
        self.published_node = now;
        for lane in 0..4 {
            h.mailbox_depth[lane].set(self.depth[lane] as f64);
            for w in self.waits[lane].drain(..) {
                h.mailbox_wait[lane].record(w);
            }
        }
        for b in &mut self.behaviours {
            b.publish(node);
        }
    }
}

impl BehaviourCounts {
    fn publish(&mut self, node: &str) {
        let name = self.name;
        let h = self
            .handles
            .get_or_insert_with(|| BehaviourHandles::new(node, name));
        let p = &mut self.published;
        for lane in 0..4 {
            h.handled[lane].increment(self.handled[lane] - p.handled[lane]);
            h.sent[lane].increment(self.sent[lane] - p.sent[lane]);
        }
        h.asks.increment(self.asks - p.asks);
        h.restarts.increment(self.restarts - p.restarts);
        h.failures.increment(self.failures - p.failures);
        *p = Published {
            handled: self.handled,
            sent: self.sent,
            asks: self.asks,
            restarts: self.restarts,
            failures: self.failures,
        };
        for s in self.handling_seconds.drain(..) {
            h.handling_seconds.record(s);
        }
    }
}

fn labels(node: &str) -> Vec<Label> {
    vec![Label::new("node", node.to_owned())]
}

fn with(mut labels: Vec<Label>, key: &'static str, value: &'static str) -> Vec<Label> {
    labels.push(Label::from_static_parts(key, value));
    labels
}

impl NodeHandles {
    fn new(node: &str) -> Self {
        let l = labels(node);
        let per_lane = |lane: usize| with(l.clone(), "priority", PRIORITIES[lane]);
        NodeHandles {
            dead_letters: counter!("qorch_dead_letters_total", l.clone()),
            forwarded: counter!("qorch_messages_forwarded_total", l.clone()),
            redeliveries: counter!("qorch_redeliveries_total", l.clone()),
            duplicates: counter!("qorch_duplicates_total", l.clone()),
            undeliverable: counter!("qorch_undeliverable_total", l.clone()),
            backpressured: counter!("qorch_backpressured_total", l.clone()),
            ask_timeouts: counter!("qorch_ask_timeouts_total", l.clone()),
            timers_fired: counter!("qorch_timers_fired_total", l.clone()),
            timers_armed: counter!("qorch_timers_armed_total", l.clone()),
            mailbox_depth: std::array::from_fn(|i| gauge!("qorch_mailbox_messages", per_lane(i))),
            mailbox_wait: std::array::from_fn(|i| {
                histogram!("qorch_mailbox_wait_seconds", per_lane(i))
            }),
        }
    }
}

impl BehaviourHandles {
    fn new(node: &str, behaviour: &'static str) -> Self {
        let l = with(labels(node), "behaviour", behaviour);
        let per_lane = |lane: usize| with(l.clone(), "priority", PRIORITIES[lane]);
        BehaviourHandles {
            handled: std::array::from_fn(|i| counter!("qorch_messages_handled_total", per_lane(i))),
            sent: std::array::from_fn(|i| counter!("qorch_messages_sent_total", per_lane(i))),
            asks: counter!("qorch_asks_total", l.clone()),
            restarts: counter!("qorch_agent_restarts_total", l.clone()),
            failures: counter!("qorch_agent_failures_total", l.clone()),
            handling_seconds: histogram!("qorch_message_handling_seconds", l),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_message_in_the_sample_rate_is_timed() {
        let mut t = NodeTelemetry::new();
        let timed = (0..HANDLING_SAMPLE * 3)
            .filter(|_| t.sample_handling())
            .count();
        assert_eq!(timed, 3);
    }

    #[test]
    fn behaviours_are_found_by_name() {
        let mut t = NodeTelemetry::new();
        let a = t.behaviour("A");
        let b = t.behaviour("B");
        assert_ne!(a, b);
        assert_eq!(t.behaviour("A"), a);
        assert_eq!(t.behaviour(&String::from("B").leak()[..]), b);
    }

    #[test]
    fn the_marked_message_records_its_wait() {
        let mut t = NodeTelemetry::new();
        let now = Instant::now();
        // Normal holds 3 letters, the others none (each records a zero wait).
        t.sample_mailbox(now, |p| if p == Priority::Normal { 3 } else { 0 });
        let normal = Priority::Normal.lane();
        assert_eq!(t.depth[normal], 3);
        assert_eq!(t.waits[Priority::Low.lane()], vec![0.0]);
        t.dequeued(normal);
        t.dequeued(normal);
        assert!(t.waits[normal].is_empty());
        t.dequeued(normal);
        assert_eq!(t.waits[normal].len(), 1);
        // No second sample within the sampling period.
        t.sample_mailbox(now, |_| 5);
        assert_eq!(t.depth[normal], 3);
    }

    #[test]
    fn publications_add_deltas() {
        // Without a recorder the handles are no-ops: publishing twice must not underflow.
        let mut t = NodeTelemetry::new();
        let b = t.behaviour("A");
        t.handled(b, 2, None);
        t.sent(b, 2);
        let mut stats = NodeStats {
            dead_letters: 2,
            ..NodeStats::default()
        };
        t.publish("n", &stats);
        t.handled(b, 2, Some(Instant::now()));
        stats.dead_letters = 3;
        t.publish("n", &stats);
        assert_eq!(t.behaviours[b].published.handled[2], 2);
        assert_eq!(t.published_stats.dead_letters, 3);
        assert!(t.behaviours[b].handling_seconds.is_empty());
    }
}
