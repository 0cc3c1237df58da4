//! Plain settings of the scheduler, with documented defaults.

use std::time::Duration;

use qorch_qubo::SolverKind;
use serde::{Deserialize, Serialize};

use crate::ScheduleError;

/// How a capacity constraint of a QUBO window is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CapacityEncoding {
    /// Slack bits for integer data whose slack needs at most 10 bits per constraint, the
    /// unbalanced penalty otherwise (and always for windows meant for QAOA, where every qubit
    /// counts).
    #[default]
    Auto,
    /// `P (sum d x + step * sum w z - c)^2` with binary slack bits `z`: exact for integer
    /// data (the penalty is zero on every feasible assignment for the right slack), at the
    /// price of `log2(c / step)` extra variables and couplings between every pair of items
    /// that could share the pool.
    Slack,
    /// `-l1 h + l2 h^2` with `h = c - sum d x` (Montanez-Barrera et al., 2022): no extra
    /// variables, but not exact (it rewards loads near the capacity and may let a small
    /// excess pass); repair catches what it lets through.
    Unbalanced,
}

/// Which local search runs between QUBO windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchMode {
    /// Tabu search for sub-problems with mandatory items (the generalized assignment
    /// problem's shape, where feasibility itself is hard) and at most
    /// [`SchedulerConfig::tabu_max_options`] options; descent otherwise (every item may stay
    /// unserved, so every move can keep feasibility).
    #[default]
    Auto,
    /// First-improvement descent over feasible shifts and ejections (O(options) per sweep).
    Descent,
    /// Penalized tabu search over shifts and swaps (O(options) per iteration).
    Tabu,
}

/// Which QUBO solver handles a window of a given size.
///
/// In order: the exact solver up to `exact_max_vars` variables; QAOA (when enabled and a
/// QAOA solver is plugged in, see
/// [`EnhancedQuboScheduler::with_qaoa_solver`](crate::EnhancedQuboScheduler::with_qaoa_solver))
/// up to `qaoa_max_vars`; `medium` up to `large_from_vars`; `large` beyond.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SolverPolicy {
    /// Largest window solved by exhaustive enumeration.
    pub exact_max_vars: usize,
    /// Use the plugged-in QAOA solver for small windows.
    pub qaoa: bool,
    /// Largest window given to QAOA (the statevector holds `2^n` amplitudes).
    pub qaoa_max_vars: usize,
    /// Solver for windows up to `large_from_vars`.
    pub medium: SolverKind,
    /// Windows from this many variables go to `large`.
    pub large_from_vars: usize,
    /// Solver for large windows.
    pub large: SolverKind,
}

impl Default for SolverPolicy {
    fn default() -> Self {
        SolverPolicy {
            exact_max_vars: 16,
            qaoa: false,
            qaoa_max_vars: 12,
            medium: SolverKind::Tabu,
            large_from_vars: 2_000,
            large: SolverKind::Decompose,
        }
    }
}

/// Settings of an [`EnhancedQuboScheduler`](crate::EnhancedQuboScheduler).
///
/// **Determinism.** With `time_limit: None` every budget is counted in work (move
/// evaluations, subgradient iterations, solver sweeps), and the same seed and input give the
/// same outcome, whatever the number of threads. A time limit stops work wherever it is, so
/// results then depend on the machine's speed and load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchedulerConfig {
    /// Seed of every random choice; per-cluster seeds derive from it and the cluster's id.
    pub seed: u64,
    /// Wall-clock limit of one [`schedule`](crate::EnhancedQuboScheduler::schedule) round or
    /// one [`solve_assignment`](crate::EnhancedQuboScheduler::solve_assignment) call; `None`:
    /// work budgets only (deterministic).
    pub time_limit: Option<Duration>,
    /// Work budget: move evaluations per option of the problem (at least a floor of 20,000
    /// evaluations per sub-problem). Raise it for better allocations, lower it for speed.
    pub effort: f64,
    /// Subgradient iterations of the Lagrangian bound per sub-problem.
    pub bound_iterations: usize,
    /// Which QUBO solver handles which window size.
    pub policy: SolverPolicy,
    /// How window capacities are encoded.
    pub encoding: CapacityEncoding,
    /// Local search between windows.
    pub search: SearchMode,
    /// Sub-problems with at most this many options use tabu search under
    /// [`SearchMode::Auto`].
    pub tabu_max_options: usize,
    /// Target number of QUBO variables per window (before slack bits): 30-50 is where
    /// decomposition samplers work best.
    pub window_vars: usize,
    /// QUBO windows per item of a sub-problem, per improvement phase.
    pub windows_per_item: f64,
    /// Sweeps of the window solver (for the non-exact solvers).
    pub window_sweeps: u64,
    /// Candidate pools per agent at level 2 (its current pool, pools of its affinity
    /// partners, and the pools with the most room).
    pub max_candidates: usize,
    /// Level-1 blocks per pool: a cluster's agents are grouped into blocks of about a
    /// `1 / blocks_per_pool` share of a mean pool.
    pub blocks_per_pool: usize,
    /// Passes of the final polish over the whole allocation (relocations and swaps scored
    /// with the optimal amounts, migration and communication included); 0 turns it off.
    /// Under a time limit the polish runs until it stops gaining or the limit nears.
    pub polish_passes: usize,
    /// Pools the polish tries per agent beyond its home and its partners' pools (every
    /// allowed pool when there are at most one more than this).
    pub polish_candidates: usize,
    /// Solve the sub-problems of a level on rayon's threads.
    pub parallel: bool,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            seed: 0,
            time_limit: None,
            effort: 40.0,
            bound_iterations: 60,
            policy: SolverPolicy::default(),
            encoding: CapacityEncoding::Auto,
            search: SearchMode::Auto,
            tabu_max_options: 1_000_000,
            window_vars: 24,
            windows_per_item: 0.05,
            window_sweeps: 20,
            max_candidates: 6,
            blocks_per_pool: 16,
            polish_passes: 3,
            polish_candidates: 8,
            parallel: true,
        }
    }
}

impl SchedulerConfig {
    /// Checks the settings.
    ///
    /// # Errors
    ///
    /// [`ScheduleError::InvalidConfig`] naming the first setting out of range.
    pub fn validate(&self) -> Result<(), ScheduleError> {
        let bad = |s: String| Err(ScheduleError::InvalidConfig(s));
        if !(self.effort.is_finite() && self.effort >= 0.0) {
            return bad(format!(
                "effort must be finite and non-negative, got {}",
                self.effort
            ));
        }
        if !(self.windows_per_item.is_finite() && self.windows_per_item >= 0.0) {
            return bad(format!(
                "windows_per_item must be finite and non-negative, got {}",
                self.windows_per_item
            ));
        }
        if self.window_vars < 2 {
            return bad(format!(
                "window_vars must be at least 2, got {}",
                self.window_vars
            ));
        }
        if self.max_candidates == 0 {
            return bad("max_candidates must be at least 1".into());
        }
        if self.polish_passes > 0 && self.polish_candidates == 0 {
            return bad("polish_candidates must be at least 1 when polish_passes is set".into());
        }
        if self.blocks_per_pool == 0 {
            return bad("blocks_per_pool must be at least 1".into());
        }
        if self.policy.exact_max_vars > 30 {
            return bad(format!(
                "exact_max_vars {} is too large: enumeration visits 2^n assignments (at most 30)",
                self.policy.exact_max_vars
            ));
        }
        if self.time_limit.is_some_and(|t| t.is_zero()) {
            return bad("time_limit must be positive".into());
        }
        Ok(())
    }
}
