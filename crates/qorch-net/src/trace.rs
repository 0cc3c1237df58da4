//! Trace context across processes: the ids of a W3C `traceparent` header, carried in the
//! header of every part of a control call ([`rpc`](crate::rpc)), so that the spans a round
//! opens in the coordinator and in each node process share one trace id.
//!
//! The part is sealed under the deployment key like the rest of the frame: the MAC covers
//! the context too. A part from a build without this header does not decode, and is refused
//! as corrupted (a [`DecodeError`](qorch_protocol::DecodeError), logged), never misread.
//!
//! **Exporters.** By itself the context only names the trace in span fields (`trace_id`,
//! `span_id`, `parent_span_id`). An exporter that keeps its own span ids (OpenTelemetry's,
//! behind the `qorch` binary's `otlp` feature) installs a [`TraceBridge`] with
//! [`set_trace_bridge`]: a caller then sends its span's own ids
//! ([`TraceContext::of_span`]), and a callee makes its span a child of them
//! ([`TraceContext::adopt`]), so the exported spans of every process form one tree.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Which trace, and which span in it, a control call was made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TraceContext {
    /// The trace (never zero).
    pub trace_id: u128,
    /// The caller's span (never zero).
    pub span_id: u64,
}

static NEXT: AtomicU64 = AtomicU64::new(1);

fn mix(mut z: u64) -> u64 {
    // splitmix64's finalizer: distinct inputs give distinct, well-spread outputs.
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl TraceContext {
    /// A new trace with its root span: ids from the clock, the process and a counter.
    pub fn new_trace() -> TraceContext {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let hi = mix(now ^ u64::from(std::process::id()).rotate_left(32));
        let lo = mix(hi ^ n);
        TraceContext {
            trace_id: (u128::from(hi) << 64 | u128::from(lo)).max(1),
            span_id: mix(lo ^ 0x5bd1_e995).max(1),
        }
    }

    /// A new span of the same trace.
    #[must_use]
    pub fn child(&self) -> TraceContext {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        TraceContext {
            trace_id: self.trace_id,
            span_id: mix(self.span_id ^ n.rotate_left(17)).max(1),
        }
    }

    /// The trace id as 32 hex digits (W3C).
    pub fn trace_hex(&self) -> String {
        format!("{:032x}", self.trace_id)
    }

    /// The span id as 16 hex digits (W3C).
    pub fn span_hex(&self) -> String {
        format!("{:016x}", self.span_id)
    }

    /// The W3C `traceparent` value: `00-<trace>-<span>-01` (sampled).
    pub fn traceparent(&self) -> String {
        format!("00-{}-{}-01", self.trace_hex(), self.span_hex())
    }
}

/// How a tracing exporter's own ids travel in a [`TraceContext`]: implemented by an
/// exporter (the `qorch` binary's OTLP export), installed once per process with
/// [`set_trace_bridge`]. Without one, contexts are made by [`TraceContext::new_trace`].
pub trait TraceBridge: Send + Sync + 'static {
    /// The exporter's ids of `span`, or `None` where the exporter does not record it (a
    /// disabled span, a level the exporter filters out).
    fn context_of(&self, span: &tracing::Span) -> Option<TraceContext>;

    /// Makes `span`, not entered yet, a child of the remote span `parent`.
    fn adopt(&self, span: &tracing::Span, parent: TraceContext);
}

static BRIDGE: OnceLock<Box<dyn TraceBridge>> = OnceLock::new();

/// Installs the process's [`TraceBridge`]. The first call wins: `false` (and `bridge`
/// dropped) if one was installed before.
pub fn set_trace_bridge(bridge: Box<dyn TraceBridge>) -> bool {
    BRIDGE.set(bridge).is_ok()
}

impl TraceContext {
    /// The context to send from inside `span`: the exporter's ids of `span` where a
    /// [`TraceBridge`] records it, else a new trace.
    pub fn of_span(span: &tracing::Span) -> TraceContext {
        TraceContext::bridged(span).unwrap_or_else(TraceContext::new_trace)
    }

    /// The exporter's ids of `span`, where a [`TraceBridge`] is installed and records it.
    pub fn bridged(span: &tracing::Span) -> Option<TraceContext> {
        BRIDGE.get().and_then(|b| b.context_of(span))
    }

    /// Makes `span` (not entered yet) a child of this remote context, where a
    /// [`TraceBridge`] is installed; without one, does nothing (the span's fields name the
    /// trace).
    pub fn adopt(&self, span: &tracing::Span) {
        if let Some(b) = BRIDGE.get() {
            b.adopt(span, *self);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_keep_the_trace_and_get_new_spans() {
        let root = TraceContext::new_trace();
        let (a, b) = (root.child(), root.child());
        assert_eq!((a.trace_id, b.trace_id), (root.trace_id, root.trace_id));
        assert_ne!(a.span_id, b.span_id);
        assert_ne!(TraceContext::new_trace().trace_id, root.trace_id);
        let tp = root.traceparent();
        assert_eq!(tp.len(), 55);
        assert!(tp.starts_with("00-") && tp.ends_with("-01"));
    }
}
