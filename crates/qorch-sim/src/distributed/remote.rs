//! The node processes as the optimizer's [`Hierarchy`] ([`Remote`]): rounds' reports
//! collected from every node, grants delivered to the nodes hosting the agents.

use std::collections::BTreeMap;

use futures_util::future::join_all;
use qorch_net::TraceContext;
use qorch_optimizer::{Hierarchy, OptimizerError};
use qorch_protocol::{Address, AgentId};
use qorch_resources::Grant;
use qorch_runtime::{AllocationBatch, RoundReport};

use super::calls::{Calls, unexpected};
use super::protocol::{FromNode, ToNode};

/// The nodes as the optimizer's hierarchy.
pub(super) struct Remote {
    pub(super) calls: Calls,
    pub(super) exec: tokio::runtime::Handle,
    /// The planned nodes: address, name, parent.
    pub(super) nodes: Vec<(Address, String, Option<Address>)>,
    /// The trace of the round in progress (its collection opens it, its grants close it).
    pub(super) round_trace: Option<(u64, TraceContext)>,
}

/// A span of a round's calls to the nodes, and the trace context it sends them: the
/// exporter's ids of the span where one is installed ([`TraceContext::bridged`]), else
/// `otherwise()`. The span's fields name the context, which the nodes' spans join.
fn round_span(
    what: &'static str,
    round: u64,
    otherwise: impl FnOnce() -> TraceContext,
) -> (tracing::Span, TraceContext) {
    let span = tracing::info_span!(
        "remote_round",
        what,
        round,
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty
    );
    let trace = TraceContext::bridged(&span).unwrap_or_else(otherwise);
    span.record("trace_id", tracing::field::display(trace.trace_hex()));
    span.record("span_id", tracing::field::display(trace.span_hex()));
    (span, trace)
}

impl Hierarchy for Remote {
    fn collect(&mut self, round: u64) -> Result<RoundReport, OptimizerError> {
        let (span, trace) = round_span("collect", round, TraceContext::new_trace);
        self.round_trace = Some((round, trace));
        let _span = span.entered();
        let results = self.exec.block_on(
            self.calls
                .call_all_traced(&ToNode::Collect(round), Some(trace)),
        );
        let mut all = RoundReport {
            round,
            ..RoundReport::default()
        };
        for (_, r) in results {
            match r.map_err(|e| OptimizerError::Hierarchy(e.into()))? {
                FromNode::Report(rep) => {
                    all.agents.extend(rep.agents);
                    all.affinity.extend(rep.affinity);
                }
                other => return Err(OptimizerError::Hierarchy(unexpected(&other).into())),
            }
        }
        all.agents.sort_by_key(|a| a.agent);
        all.affinity
            .sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)).then(a.2.total_cmp(&b.2)));
        Ok(all)
    }

    /// Clusters whose node is lost and that no other node has adopted yet.
    fn failed_components(&mut self) -> usize {
        self.calls
            .placement()
            .slots
            .iter()
            .filter(|s| !s.alive)
            .map(|s| s.clusters.len())
            .sum()
    }

    fn nodes(&mut self) -> Vec<(Address, String, Option<Address>)> {
        self.nodes.clone()
    }

    fn deliver(&mut self, batch: AllocationBatch) -> Result<(), OptimizerError> {
        let mut by_node: BTreeMap<String, Vec<(AgentId, Option<Grant>)>> = BTreeMap::new();
        for (a, g) in batch.grants {
            if let Some(host) = self.calls.host_of_agent(a) {
                by_node.entry(host).or_default().push((a, g));
            }
        }
        let (span, trace) = round_span("deliver", batch.round, || match self.round_trace {
            Some((r, t)) if r == batch.round => t.child(),
            _ => TraceContext::new_trace(),
        });
        let _span = span.entered();
        let calls = &self.calls;
        let results = self.exec.block_on(join_all(by_node.into_iter().map(
            |(name, grants)| async move {
                let b = AllocationBatch {
                    round: batch.round,
                    grants,
                };
                calls
                    .call_traced(&name, &ToNode::Allocate(b), Some(trace))
                    .await
            },
        )));
        for r in results {
            r.map_err(|e| OptimizerError::Hierarchy(e.into()))?;
        }
        Ok(())
    }
}
