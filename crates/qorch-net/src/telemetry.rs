//! A gateway's counters published to the [`metrics`] facade: the deltas of its
//! [`GatewayStats`] since the last publication, from the egress task's periodic tick (every
//! quarter of the redelivery timeout), never per frame. Labelled by process. Without an
//! installed recorder the handles are no-ops. `docs/metrics.md` lists the series.

use metrics::{Counter, Gauge, counter, gauge};

use crate::gateway::GatewayStats;

struct Handles {
    envelopes_out: Counter,
    frames_out: Counter,
    frames_redelivered: Counter,
    frames_acked: Counter,
    undeliverable: Counter,
    envelopes_in: Counter,
    frames_in: Counter,
    duplicate_frames: Counter,
    corrupt_frames: Counter,
    refused_frames: Counter,
    dead_letters: Counter,
    bytes_out: Counter,
    bytes_in: Counter,
    frames_pending: Gauge,
    frames_awaiting_ack: Gauge,
}

/// What a gateway published last, and its handles (registered on first publication).
pub(crate) struct GatewayMetrics {
    process: String,
    last: GatewayStats,
    handles: Option<Handles>,
}

impl GatewayMetrics {
    pub(crate) fn new(process: &str) -> Self {
        GatewayMetrics {
            process: process.to_owned(),
            last: GatewayStats::default(),
            handles: None,
        }
    }

    /// Adds what the counters gained since the last publication.
    pub(crate) fn publish(&mut self, now: &GatewayStats) {
        let process = &self.process;
        let h = self.handles.get_or_insert_with(|| Handles::new(process));
        let l = &self.last;
        let d = |now: u64, last: u64| now.saturating_sub(last);
        h.envelopes_out
            .increment(d(now.envelopes_out, l.envelopes_out));
        h.frames_out.increment(d(now.frames_out, l.frames_out));
        h.frames_redelivered
            .increment(d(now.frames_redelivered, l.frames_redelivered));
        h.frames_acked
            .increment(d(now.frames_acked, l.frames_acked));
        h.undeliverable
            .increment(d(now.undeliverable, l.undeliverable));
        h.envelopes_in
            .increment(d(now.envelopes_in, l.envelopes_in));
        h.frames_in.increment(d(now.frames_in, l.frames_in));
        h.duplicate_frames
            .increment(d(now.duplicate_frames, l.duplicate_frames));
        h.corrupt_frames
            .increment(d(now.corrupt_frames, l.corrupt_frames));
        h.refused_frames
            .increment(d(now.refused_frames, l.refused_frames));
        h.dead_letters
            .increment(d(now.dead_letters, l.dead_letters));
        h.bytes_out.increment(d(now.bytes_out, l.bytes_out));
        h.bytes_in.increment(d(now.bytes_in, l.bytes_in));
        h.frames_pending.set(now.frames_pending as f64);
        h.frames_awaiting_ack.set(now.frames_awaiting_ack as f64);
        self.last = *now;
    }
}

impl Handles {
    fn new(process: &str) -> Self {
        let p = || [("process", process.to_owned())];
        Handles {
            envelopes_out: counter!("qorch_nats_envelopes_sent_total", &p()),
            frames_out: counter!("qorch_nats_frames_sent_total", &p()),
            frames_redelivered: counter!("qorch_nats_frames_redelivered_total", &p()),
            frames_acked: counter!("qorch_nats_frames_acknowledged_total", &p()),
            undeliverable: counter!("qorch_nats_undeliverable_total", &p()),
            envelopes_in: counter!("qorch_nats_envelopes_received_total", &p()),
            frames_in: counter!("qorch_nats_frames_received_total", &p()),
            duplicate_frames: counter!("qorch_nats_duplicate_frames_total", &p()),
            corrupt_frames: counter!("qorch_nats_corrupt_frames_total", &p()),
            refused_frames: counter!("qorch_nats_refused_frames_total", &p()),
            dead_letters: counter!("qorch_nats_dead_letters_total", &p()),
            bytes_out: counter!("qorch_nats_sent_bytes_total", &p()),
            bytes_in: counter!("qorch_nats_received_bytes_total", &p()),
            frames_pending: gauge!("qorch_nats_frames_pending", &p()),
            frames_awaiting_ack: gauge!("qorch_nats_frames_awaiting_ack", &p()),
        }
    }
}
