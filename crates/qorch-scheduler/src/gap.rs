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
    #[error(transparent)]
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
    /// The file is longer than the reader accepts.
    #[error("the GAP file is larger than the limit of {max_bytes} bytes")]
    InputTooLarge {
        /// The limit ([`qorch_qubo::MAX_INPUT_BYTES`]).
        max_bytes: u64,
    },
    /// Numbers whose sums could overflow, or lose precision in the solver's `f64`s.
    #[error(
        "problem {problem}: {what} sum to {sum} in absolute value, above the bound \
         {max} (2^53, so that every objective and load is exact in i64 and f64)"
    )]
    TooLarge {
        /// 1-based problem.
        problem: usize,
        /// Which numbers.
        what: String,
        /// Their sum of absolute values (saturated).
        sum: u128,
        /// [`GapInstance::MAX_ABS_SUM`].
        max: i64,
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
            found: qorch_qubo::quote(t),
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
pub fn read_gap(reader: impl Read) -> Result<Vec<GapInstance>, GapError> {
    read_gap_capped(reader, qorch_qubo::MAX_INPUT_BYTES)
}

fn read_gap_capped(reader: impl Read, cap: u64) -> Result<Vec<GapInstance>, GapError> {
    let mut text = String::new();
    reader
        .take(cap.saturating_add(1))
        .read_to_string(&mut text)?;
    if text.len() as u64 > cap {
        return Err(GapError::InputTooLarge { max_bytes: cap });
    }
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
        let instance = GapInstance {
            agents: m,
            jobs: n,
            cost,
            resource,
            capacity,
        };
        instance.check_bounds(k)?;
        out.push(instance);
    }
    Ok(out)
}

impl GapInstance {
    /// The largest sum of absolute values of the numbers an objective or a load is formed
    /// from: `2^53`, so that every total is exact in `i64` and in the solver's `f64`.
    pub const MAX_ABS_SUM: i64 = 1 << 53;

    /// Checks that no objective or load can overflow: the sum over jobs of each job's
    /// largest absolute cost, and each agent's sum of absolute resource uses and its
    /// capacity, are at most [`MAX_ABS_SUM`](Self::MAX_ABS_SUM); and that the matrices have
    /// the announced shape.
    ///
    /// # Errors
    ///
    /// [`GapError::TooLarge`] naming `problem` (1-based, for messages) and the numbers.
    pub fn check_bounds(&self, problem: usize) -> Result<(), GapError> {
        let too_large = |what: String, sum: u128| GapError::TooLarge {
            problem,
            what,
            sum,
            max: Self::MAX_ABS_SUM,
        };
        let shape = self.cost.len() == self.agents
            && self.resource.len() == self.agents
            && self.capacity.len() == self.agents
            && self
                .cost
                .iter()
                .chain(&self.resource)
                .all(|row| row.len() == self.jobs);
        if !shape {
            return Err(too_large(
                format!(
                    "the matrices are not {} x {} and the capacities",
                    self.agents, self.jobs
                ),
                0,
            ));
        }
        let max = Self::MAX_ABS_SUM.unsigned_abs().into();
        let costs: u128 = (0..self.jobs)
            .map(|j| {
                self.cost
                    .iter()
                    .map(|row| u128::from(row[j].unsigned_abs()))
                    .max()
                    .unwrap_or(0)
            })
            .sum();
        if costs > max {
            return Err(too_large("the jobs' largest costs".into(), costs));
        }
        for (i, row) in self.resource.iter().enumerate() {
            let load: u128 = row.iter().map(|a| u128::from(a.unsigned_abs())).sum();
            let cap = u128::from(self.capacity[i].unsigned_abs());
            if load > max || cap > max {
                return Err(too_large(
                    format!("the resource uses and capacity of agent {}", i + 1),
                    load.max(cap),
                ));
            }
        }
        Ok(())
    }

    /// The instance as a flat assignment problem: a pool per OR-Library agent, a mandatory
    /// item per job, value `c_ij` for [`GapSense::Max`] and `-c_ij` for [`GapSense::Min`].
    ///
    /// # Errors
    ///
    /// A negative capacity or resource use, a job that fits no agent, or numbers above
    /// [`check_bounds`](Self::check_bounds)' bounds.
    pub fn to_problem(&self, sense: GapSense) -> Result<AssignmentProblem, crate::ScheduleError> {
        self.check_bounds(1)
            .map_err(|e| crate::ScheduleError::TooLarge(e.to_string()))?;
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
    ///
    /// The sums are exact: an instance within [`check_bounds`](Self::check_bounds) (as
    /// [`read_gap`] and [`to_problem`](Self::to_problem) ensure) cannot overflow them; one
    /// outside saturates the total and reports the solution infeasible.
    pub fn evaluate(
        &self,
        problem: &AssignmentProblem,
        solution: &AssignmentSolution,
    ) -> (i64, bool) {
        let mut total = 0_i128;
        let mut load = vec![0_i128; self.agents];
        let mut feasible = true;
        for (j, c) in solution.choices.iter().enumerate() {
            match c {
                Some(k) => {
                    let i = problem.option_pool(j, *k);
                    total += i128::from(self.cost[i][j]);
                    load[i] += i128::from(self.resource[i][j]);
                }
                None => feasible = false,
            }
        }
        feasible &= load
            .iter()
            .zip(&self.capacity)
            .all(|(&l, &c)| l <= i128::from(c));
        match i64::try_from(total) {
            Ok(total) => (total, feasible),
            Err(_) if total < 0 => (i64::MIN, false),
            Err(_) => (i64::MAX, false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_whose_sums_overflow_are_refused_at_read_time() {
        let big = i64::MAX / 2;
        let text = format!("1\n1 3\n{big} {big} {big}\n1 1 1\n3\n");
        let err = read_gap(text.as_bytes()).unwrap_err();
        assert!(
            matches!(err, GapError::TooLarge { problem: 1, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("2^53"), "{err}");
        let text = format!("1\n1 2\n1 1\n{big} {big}\n3\n");
        assert!(matches!(
            read_gap(text.as_bytes()),
            Err(GapError::TooLarge { .. })
        ));
    }

    #[test]
    fn headers_announcing_more_than_the_file_holds_end_early() {
        // The matrices grow with the numbers read, not with the header's counts.
        let err = read_gap("1\n100000 10000000\n1 2 3\n".as_bytes()).unwrap_err();
        assert!(matches!(err, GapError::UnexpectedEnd { .. }), "{err}");
    }

    #[test]
    fn readers_stop_at_the_size_cap_and_quote_short() {
        let err = read_gap_capped(std::io::repeat(b'1'), 1000).unwrap_err();
        assert!(
            matches!(err, GapError::InputTooLarge { max_bytes: 1000 }),
            "{err}"
        );
        let long = "x".repeat(1 << 20);
        let err = read_gap(format!("1\n2 {long}\n").as_bytes()).unwrap_err();
        assert!(err.to_string().len() < 300, "{}", err.to_string().len());
    }

    #[test]
    fn evaluate_never_overflows() {
        let inst = GapInstance {
            agents: 1,
            jobs: 2,
            cost: vec![vec![i64::MAX, i64::MAX]],
            resource: vec![vec![0, 0]],
            capacity: vec![0],
        };
        assert!(inst.to_problem(GapSense::Max).is_err());
        let ok = GapInstance {
            cost: vec![vec![1, 1]],
            ..inst.clone()
        };
        let problem = ok.to_problem(GapSense::Max).unwrap();
        let solution = AssignmentSolution {
            choices: vec![Some(0), Some(0)],
        };
        assert_eq!(inst.evaluate(&problem, &solution), (i64::MAX, false));
        assert_eq!(ok.evaluate(&problem, &solution), (2, true));
    }
}
