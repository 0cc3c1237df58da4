//! Sweeps: one scenario run many times, over a grid of parameter values and seeds
//! (`qorch sweep`).
//!
//! This module holds what a sweep needs besides running the simulations (the CLI runs each
//! one as a `qorch simulate` child process):
//!
//! * [`SweepParam`]: a swept key (a dotted name of the scenario's own TOML, such as
//!   `topology.agents`) and its values, parsed from `KEY=V1,V2,...`;
//!   [`Scenario::with_overrides`] applies values to a scenario through its TOML form, with
//!   the scenario's strict parsing and validation, so an unknown key or a value of the wrong
//!   type is refused before anything runs.
//! * [`scalars`]: every scalar of a `report.json`, nested objects flattened to dotted names.
//! * [`summarize`]: mean, standard deviation and Student-t 95% confidence interval of every
//!   numeric scalar, per configuration; [`write_runs_csv`] and [`write_summary_csv`] write
//!   the two tables whole (temporary file, then rename).
//! * (feature `plots`) [`write_sweep_plots`]: a metric against the first swept key, one
//!   line per value of the others, with its confidence band.
//!
//! ```
//! use qorch_sim::{Scenario, SweepParam};
//! let p = SweepParam::parse("topology.agents=1000,2000").unwrap();
//! assert_eq!(p.labels(), ["1000", "2000"]);
//! let s = Scenario::default().with_overrides(&[(&p.key, &p.values[1])]).unwrap();
//! assert_eq!(s.topology.agents, 2000);
//! // Unknown keys and values of the wrong type are refused.
//! assert!(Scenario::default().with_overrides(&[(&p.key, &"many".into())]).is_err());
//! let typo = SweepParam::parse("topology.agnets=1").unwrap();
//! assert!(Scenario::default().with_overrides(&[(&typo.key, &typo.values[0])]).is_err());
//! ```

mod params;
#[cfg(feature = "plots")]
mod plots;
mod stats;

pub use params::{SweepError, SweepParam};
#[cfg(feature = "plots")]
pub use plots::write_sweep_plots;
pub use stats::{
    RunRecord, Stat, SummaryRow, scalars, summarize, write_runs_csv, write_summary_csv,
};
