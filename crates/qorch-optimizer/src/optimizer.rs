//! The running optimizer: a handle to its thread, which runs the rounds.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::Sender;
use qorch_resources::{Allocation, ChangeContext, Reason, ResourceManager};
use qorch_runtime::{Host, RuntimeHandle};
use qorch_scheduler::EnhancedQuboScheduler;

use crate::hierarchy::{Hierarchy, Local};
use crate::policy::PolicyState;
use crate::worker::{Command, Worker};
use crate::{OptimizationState, OptimizerConfig, OptimizerError, RoundReason, RoundSummary};

/// The running optimizer: a handle to its thread.
pub struct Optimizer {
    tx: Sender<Command>,
    state: Arc<Mutex<OptimizationState>>,
    thread: Option<JoinHandle<()>>,
}

impl Optimizer {
    /// Starts the optimizer for a runtime.
    ///
    /// # Errors
    ///
    /// [`OptimizerError::Config`] for invalid pools or scheduler settings.
    pub fn start<B: Host>(
        handle: RuntimeHandle<B>,
        config: OptimizerConfig,
    ) -> Result<Optimizer, OptimizerError> {
        let scheduler = EnhancedQuboScheduler::new(config.scheduler.clone())
            .map_err(OptimizerError::Scheduler)?;
        Self::start_with(handle, config, scheduler)
    }

    /// Starts the optimizer with a scheduler built by the caller (for instance one with a
    /// QAOA sub-solver plugged in, see `EnhancedQuboScheduler::with_qaoa_solver`); the
    /// scheduler's own settings are used, `config.scheduler` is ignored.
    ///
    /// # Errors
    ///
    /// [`OptimizerError::Config`] for invalid pools.
    pub fn start_with<B: Host>(
        handle: RuntimeHandle<B>,
        config: OptimizerConfig,
        scheduler: EnhancedQuboScheduler,
    ) -> Result<Optimizer, OptimizerError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| OptimizerError::Start {
                what: "executor",
                source,
            })?;
        Self::start_on(Local { handle, rt }, config, scheduler)
    }

    /// Starts the optimizer on any [`Hierarchy`] (for instance the processes of a
    /// distributed run); otherwise as [`start_with`](Self::start_with).
    ///
    /// # Errors
    ///
    /// [`OptimizerError::Config`] for invalid pools.
    pub fn start_on<H: Hierarchy>(
        hierarchy: H,
        config: OptimizerConfig,
        scheduler: EnhancedQuboScheduler,
    ) -> Result<Optimizer, OptimizerError> {
        if config.pools.is_empty() {
            return Err(OptimizerError::Config("at least one pool is needed".into()));
        }
        if !(0.0..=1.0).contains(&config.affinity_memory) {
            return Err(OptimizerError::Config(format!(
                "affinity_memory {} must lie in [0, 1]",
                config.affinity_memory
            )));
        }
        config
            .policy
            .validate()
            .map_err(|e| OptimizerError::Config(format!("allocation policy: {e}")))?;
        let mut resources = ResourceManager::new(&config.kinds);
        let setup = ChangeContext::new(0, 0, Reason::Configuration);
        for p in &config.pools {
            let id = resources
                .add_pool(p.name.clone(), p.kind, &p.capacity, &setup)
                .map_err(|source| OptimizerError::Pool { pool: p.id, source })?;
            if id != p.id {
                return Err(OptimizerError::Config(format!(
                    "pool ids must be 0, 1, 2, .. in order; found {} at position {}",
                    p.id, id
                )));
            }
        }
        let state = Arc::new(Mutex::new(OptimizationState {
            round: 0,
            history: Vec::new(),
            last: None,
            solvers: BTreeMap::new(),
            allocation: Allocation::new(),
            resources,
            affinity: HashMap::new(),
            policy: PolicyState::default(),
        }));
        let (tx, rx) = crossbeam_channel::unbounded();
        let worker = Worker {
            hierarchy,
            config,
            scheduler,
            state: Arc::clone(&state),
            started: Instant::now(),
        };
        let thread = std::thread::Builder::new()
            .name("qorch-optimizer".into())
            .spawn(move || {
                let mut worker = worker;
                worker.run(&rx);
            })
            .map_err(|source| OptimizerError::Start {
                what: "thread",
                source,
            })?;
        Ok(Optimizer {
            tx,
            state,
            thread: Some(thread),
        })
    }

    /// Runs a round now (or joins the one about to run) and waits for it.
    ///
    /// # Errors
    ///
    /// An [`OptimizerError`] if the round failed or the optimizer stopped.
    pub fn run_round(&self) -> Result<RoundSummary, Arc<OptimizerError>> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.tx
            .send(Command::Run(RoundReason::Requested, Some(tx)))
            .map_err(|_| Arc::new(OptimizerError::Stopped))?;
        rx.recv().map_err(|_| Arc::new(OptimizerError::Stopped))?
    }

    /// Asks for a round without waiting.
    pub fn trigger(&self) {
        let _ = self.tx.send(Command::Run(RoundReason::Requested, None));
    }

    /// Reads the optimization state.
    pub fn with_state<R>(&self, f: impl FnOnce(&OptimizationState) -> R) -> R {
        f(&self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// The summaries of every round so far.
    pub fn history(&self) -> Vec<RoundSummary> {
        self.with_state(|s| s.history.clone())
    }

    /// Stops the thread (after the round in progress, if any).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let _ = self.tx.send(Command::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Optimizer {
    fn drop(&mut self) {
        self.shutdown();
    }
}
