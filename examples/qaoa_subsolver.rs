//! QAOA as a sub-solver of the `EnhancedQuboScheduler`, side by side with the classical
//! default on the same small allocation rounds.
//!
//! QAOA here runs on an exact statevector simulator (classical hardware): it gets the small
//! QUBO windows (up to 10 variables), the default policy uses exhaustive enumeration and tabu
//! search for them. This shows that the plug-in works end to end and what it costs; it does
//! not show, nor claim, any quantum advantage.
//!
//! Run with `cargo run --release -p qorch --example qaoa_subsolver`.

use std::sync::Arc;

use qorch_qaoa::QaoaSolver;
use qorch_scheduler::{EnhancedQuboScheduler, SchedulerConfig, SyntheticConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!(
        "{:>5} {:>12} {:>12} {:>12} {:>12} {:>10}",
        "seed", "solver", "objective", "bound", "qaoa windows", "seconds"
    );
    for seed in 1..=3 {
        let problem = SyntheticConfig {
            agents: 40,
            clusters: 2,
            subclusters: 2,
            pools: 4,
            seed,
            ..SyntheticConfig::default()
        }
        .generate();
        let config = SchedulerConfig {
            seed,
            ..SchedulerConfig::default()
        };
        let classical = EnhancedQuboScheduler::new(config.clone())?;
        let mut qaoa_config = config;
        qaoa_config.policy.qaoa = true;
        qaoa_config.policy.qaoa_max_vars = 10;
        qaoa_config.policy.exact_max_vars = 0;
        let qaoa =
            EnhancedQuboScheduler::new(qaoa_config)?.with_qaoa_solver(Arc::new(QaoaSolver {
                p: 2,
                max_qubits: 10,
                ..QaoaSolver::default()
            }));
        for (name, s) in [("default", &classical), ("qaoa", &qaoa)] {
            let out = s.schedule(&problem, None)?;
            let windows: u64 = out
                .subsolves
                .iter()
                .flat_map(|x| &x.solver_usage)
                .filter(|(n, _, _)| n == "qaoa")
                .map(|(_, w, _)| *w)
                .sum();
            println!(
                "{seed:>5} {name:>12} {:>12.4} {:>12.4} {windows:>12} {:>10.3}",
                out.objective, out.bound, out.seconds
            );
        }
    }
    Ok(())
}
