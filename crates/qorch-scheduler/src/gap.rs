//! OR-Library generalized assignment instances (`gapinfo.txt` format).
//!
//! A file holds a count `P`, then `P` problems, each: `m n` (agents, jobs); the `m x n`
//! matrix of costs (or profits) `c`, row by row; the `m x n` matrix of resource use `a`; the
//! `m` capacities `b`. Every job goes to exactly one agent, and the jobs on agent `i` use at
//! most `b_i`. Osman's `gap1`..`gap12` are read as maximization, Chu & Beasley's types A-D
//! as minimization.
//!
//! In qorch's terms the OR-Library *agents* are pools (capacity `b_i`, one resource kind) and
//! the *jobs* are items that must be assigned, with pool-dependent value and demand.

use std::io::Read;

use serde::{Deserialize, Serialize};

use crate::{AssignmentBuilder, AssignmentProblem, AssignmentSolution};

/// Whether a GAP file's objective is maximized or minimized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GapSense {
    /// Maximize total profit (gap1..gap12).
    Max,
    /// Minimize total cost (types A-D).
    Min,
}

/// One generalized assignment problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GapInstance {
    /// Number of OR-Library agents (pools).
    pub agents: usize,
    /// Number of jobs (items).
    pub jobs: usize,
    /// `cost[i][j]`: cost or profit of job `j` on agent `i`.
    pub cost: Vec<Vec<i64>>,
    /// `resource[i][j]`: what job `j` uses on agent `i`.
    pub resource: Vec<Vec<i64>>,
    /// Capacity of each agent.
    pub capacity: Vec<i64>,
}

/// Why a GAP file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum GapError {
    /// The reader failed.
    #[error("cannot read the GAP file: {0}")]
    Io(#[from] std::io::Error),
    /// A token is not what the format expects there.
    #[error("line {line}: expected {expected}, found `{found}`")]
    Parse {
        /// 1-based line.
        line: usize,
        /// What was expected.
        expected: String,
        /// What was there.
        found: String,
    },
    /// The file ends early.
    #[error("the file ends where {expected} was expected")]
    UnexpectedEnd {
        /// What was expected.
        expected: String,
    },
}

struct Tokens<'a> {
    it: std::iter::Peekable<Box<dyn Iterator<Item = (usize, &'a str)> + 'a>>,
}

impl<'a> Tokens<'a> {
    fn new(text: &'a str) -> Self {
        let it: Box<dyn Iterator<Item = (usize, &'a str)> + 'a> = Box::new(
            text.lines()
                .enumerate()
                .flat_map(|(l, line)| line.split_whitespace().map(move |t| (l + 1, t))),
        );
        Tokens { it: it.peekable() }
    }

    fn int(&mut self, expected: impl Fn() -> String) -> Result<i64, GapError> {
        let (line, t) = self.it.next().ok_or_else(|| GapError::UnexpectedEnd {
            expected: expected(),
        })?;
        t.parse().map_err(|_| GapError::Parse {
            line,
            expected: expected(),
            found: t.to_owned(),
        })
    }

    fn count(&mut self, expected: impl Fn() -> String, max: i64) -> Result<usize, GapError> {
        let line = self.it.peek().map_or(0, |x| x.0);
        let v = self.int(&expected)?;
        if v < 1 || v > max {
            return Err(GapError::Parse {
                line,
                expected: format!("{} (between 1 and {max})", expected()),
                found: v.to_string(),
            });
        }
        Ok(v as usize)
    }
}

/// Reads every problem of an OR-Library GAP file. Tokens after the last problem (some
/// collections append the optimum) are ignored.
///
/// # Errors
///
/// [`GapError`] naming the line and what was expected.
///
/// # Examples
///
/// ```
/// let text = "1\n2 3\n1 2 3\n3 2 1\n1 1 1\n1 1 1\n2 2\n";
/// let ps = qorch_scheduler::read_gap(text.as_bytes()).unwrap();
/// assert_eq!((ps[0].agents, ps[0].jobs), (2, 3));
/// assert_eq!(ps[0].capacity, vec![2, 2]);
/// let err = qorch_scheduler::read_gap("1\n2 x\n".as_bytes()).unwrap_err();
/// assert!(err.to_string().contains("line 2"), "{err}");
/// ```
pub fn read_gap(mut reader: impl Read) -> Result<Vec<GapInstance>, GapError> {
    let mut text = String::new();
    reader.read_to_string(&mut text)?;
    let mut t = Tokens::new(&text);
    let problems = t.count(|| "the number of problems".into(), 10_000)?;
    let mut out = Vec::with_capacity(problems);
    for k in 1..=problems {
        let m = t.count(|| format!("the number of agents of problem {k}"), 100_000)?;
        let n = t.count(|| format!("the number of jobs of problem {k}"), 10_000_000)?;
        let mut matrix = |what: &str| -> Result<Vec<Vec<i64>>, GapError> {
            (0..m)
                .map(|i| {
                    (0..n)
                        .map(|j| {
                            t.int(|| {
                                format!("{what} of agent {} job {} (problem {k})", i + 1, j + 1)
                            })
                        })
                        .collect()
                })
                .collect()
        };
        let cost = matrix("the cost")?;
        let resource = matrix("the resource use")?;
        let capacity = (0..m)
            .map(|i| t.int(|| format!("the capacity of agent {} (problem {k})", i + 1)))
            .collect::<Result<Vec<i64>, _>>()?;
        out.push(GapInstance {
            agents: m,
            jobs: n,
            cost,
            resource,
            capacity,
        });
    }
    Ok(out)
}

impl GapInstance {
    /// The instance as a flat assignment problem: a pool per OR-Library agent, a mandatory
    /// item per job, value `c_ij` for [`GapSense::Max`] and `-c_ij` for [`GapSense::Min`].
    ///
    /// # Errors
    ///
    /// A negative capacity or resource use, or a job that fits no agent.
    pub fn to_problem(&self, sense: GapSense) -> Result<AssignmentProblem, crate::ScheduleError> {
        let sign = match sense {
            GapSense::Max => 1.0,
            GapSense::Min => -1.0,
        };
        let mut b = AssignmentBuilder::new(1, self.capacity.iter().map(|&c| c as f64).collect());
        for j in 0..self.jobs {
            let item = b.add_item(None);
            for i in 0..self.agents {
                b.add_option(
                    item,
                    i,
                    sign * self.cost[i][j] as f64,
                    &[self.resource[i][j] as f64],
                );
            }
        }
        b.build()
    }

    /// The total cost (or profit) of a solution of [`to_problem`](Self::to_problem)'s
    /// problem, and whether it is feasible (every job assigned, capacities respected).
    pub fn evaluate(
        &self,
        problem: &AssignmentProblem,
        solution: &AssignmentSolution,
    ) -> (i64, bool) {
        let mut total = 0;
        let mut load = vec![0_i64; self.agents];
        let mut feasible = true;
        for (j, c) in solution.choices.iter().enumerate() {
            match c {
                Some(k) => {
                    let i = problem.option_pool(j, *k);
                    total += self.cost[i][j];
                    load[i] += self.resource[i][j];
                }
                None => feasible = false,
            }
        }
        feasible &= load.iter().zip(&self.capacity).all(|(l, c)| l <= c);
        (total, feasible)
    }
}
