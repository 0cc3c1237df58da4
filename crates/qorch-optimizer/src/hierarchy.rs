//! What rounds run against: the [`Hierarchy`] trait, and the local runtime as one.

use std::collections::HashMap;

use qorch_protocol::Address;
use qorch_runtime::{AllocationBatch, ComponentStatus, Host, RoundReport, RuntimeHandle};

use crate::OptimizerError;

/// What optimizer rounds run against: a hierarchy that reports its agents' demand and takes
/// their grants. [`Optimizer::start`] runs on a local runtime ([`RuntimeHandle`]); a
/// distributed run implements it over its transport (the reports and grants of every
/// process), and gets the same rounds, triggers, ledger and summaries.
///
/// Methods block: they are called on the optimizer's own thread.
pub trait Hierarchy: Send + 'static {
    /// Collects every agent's report for round `round`.
    ///
    /// # Errors
    ///
    /// [`OptimizerError::Stopped`] (or another error) if the hierarchy cannot answer.
    fn collect(&mut self, round: u64) -> Result<RoundReport, OptimizerError>;

    /// Components (clusters, sub-clusters, processes) that are failed now.
    fn failed_components(&mut self) -> usize;

    /// The node tree: `(address, name, parent)` of every cluster and sub-cluster, parents
    /// first.
    fn nodes(&mut self) -> Vec<(Address, String, Option<Address>)>;

    /// Sends the grants down and waits until every agent has been told.
    ///
    /// # Errors
    ///
    /// [`OptimizerError::Stopped`] (or another error) if they cannot be delivered.
    fn deliver(&mut self, batch: AllocationBatch) -> Result<(), OptimizerError>;
}

/// A local runtime as the optimizer's hierarchy, driven from a current-thread executor of
/// the optimizer's own.
pub(crate) struct Local<B: Host> {
    pub(crate) handle: RuntimeHandle<B>,
    pub(crate) rt: tokio::runtime::Runtime,
}

impl<B: Host> Hierarchy for Local<B> {
    fn collect(&mut self, round: u64) -> Result<RoundReport, OptimizerError> {
        self.rt
            .block_on(self.handle.round(round))
            .map_err(OptimizerError::Runtime)
    }

    fn failed_components(&mut self) -> usize {
        self.rt.block_on(self.handle.status()).map_or(0, |t| {
            t.components()
                .filter(|c| c.status == ComponentStatus::Failed)
                .count()
        })
    }

    fn nodes(&mut self) -> Vec<(Address, String, Option<Address>)> {
        self.handle.manager().nodes()
    }

    /// The grants travel one level per hop, so one settle pass per level (and one for the
    /// orchestrator).
    fn deliver(&mut self, batch: AllocationBatch) -> Result<(), OptimizerError> {
        self.rt
            .block_on(self.handle.allocate(batch))
            .map_err(OptimizerError::Runtime)?;
        let depth = tree_depth(&self.handle.manager().nodes());
        for _ in 0..=depth {
            self.rt
                .block_on(self.handle.settle())
                .map_err(OptimizerError::Runtime)?;
        }
        Ok(())
    }
}

/// Levels of the node tree (1: clusters only).
fn tree_depth(nodes: &[(Address, String, Option<Address>)]) -> usize {
    let parent: HashMap<Address, Option<Address>> =
        nodes.iter().map(|(a, _, p)| (*a, *p)).collect();
    let mut memo: HashMap<Address, usize> = HashMap::new();
    let mut deepest = 0;
    for (a, _, _) in nodes {
        let mut chain = vec![*a];
        let mut cur = *a;
        let base = loop {
            match parent.get(&cur).copied().flatten() {
                Some(p) => {
                    if let Some(&d) = memo.get(&p) {
                        break d;
                    }
                    chain.push(p);
                    cur = p;
                }
                None => break 0,
            }
        };
        for (i, n) in chain.iter().rev().enumerate() {
            memo.insert(*n, base + i + 1);
        }
        deepest = deepest.max(memo[a]);
    }
    deepest
}
