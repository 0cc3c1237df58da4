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

use std::io::{BufRead, Read};

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

/// The whitespace-separated tokens of a text input with their 1-based lines, read one line
/// at a time (only the current line is held), at most `cap` bytes in all.
struct Tokens<R> {
    input: R,
    cap: u64,
    /// Bytes read so far.
    consumed: u64,
    /// The current line's number, and its text.
    number: usize,
    line: String,
    /// Where the next token of `line` may start.
    at: usize,
}

impl<R: BufRead> Tokens<R> {
    fn new(input: R, cap: u64) -> Self {
        Tokens {
            input,
            cap,
            consumed: 0,
            number: 0,
            line: String::new(),
            at: 0,
        }
    }

    /// The byte range of the next token in `line`, reading lines as needed; `None` at the
    /// end of the input.
    fn advance(&mut self) -> Result<Option<(usize, usize)>, GapError> {
        loop {
            let rest = &self.line[self.at..];
            if let Some(start) = rest.find(|c: char| !c.is_whitespace()) {
                let start = self.at + start;
                let end = self.line[start..]
                    .find(char::is_whitespace)
                    .map_or(self.line.len(), |e| start + e);
                return Ok(Some((start, end)));
            }
            self.line.clear();
            self.at = 0;
            let read = self.input.read_line(&mut self.line)?;
            self.consumed = self.consumed.saturating_add(read as u64);
            if self.consumed > self.cap {
                return Err(GapError::InputTooLarge {
                    max_bytes: self.cap,
                });
            }
            if read == 0 {
                return Ok(None);
            }
            self.number += 1;
        }
    }

    /// The line of the next token (0 at the end of the input).
    fn peek_line(&mut self) -> Result<usize, GapError> {
        Ok(if self.advance()?.is_some() {
            self.number
        } else {
            0
        })
    }

    fn int(&mut self, expected: impl Fn() -> String) -> Result<i64, GapError> {
        let (start, end) = self.advance()?.ok_or_else(|| GapError::UnexpectedEnd {
            expected: expected(),
        })?;
        self.at = end;
        let t = &self.line[start..end];
        t.parse().map_err(|_| GapError::Parse {
            line: self.number,
            expected: expected(),
            found: qorch_qubo::quote(t),
        })
    }

    fn count(&mut self, expected: impl Fn() -> String, max: i64) -> Result<usize, GapError> {
        let line = self.peek_line()?;
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
    let input = std::io::BufReader::new(reader.take(cap.saturating_add(1)));
    let mut t = Tokens::new(input, cap);
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

    /// `pattern` over and over, without end.
    struct Cycle(&'static [u8], usize);

    impl Read for Cycle {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            for b in buf.iter_mut() {
                *b = self.0[self.1 % self.0.len()];
                self.1 += 1;
            }
            Ok(buf.len())
        }
    }

    #[test]
    fn tokens_stream_line_by_line() {
        // Endless inputs: blank lines, and a line without end, stop at the cap; an error or
        // the last problem is answered without reading on.
        for input in [Cycle(b"\n", 0), Cycle(b" ", 0), Cycle(b"1 ", 0)] {
            let err = read_gap_capped(input, 1000).unwrap_err();
            assert!(
                matches!(err, GapError::InputTooLarge { max_bytes: 1000 }),
                "{err}"
            );
        }
        let err = read_gap(Cycle(b"1\n2 3\nx\n", 0)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 3: expected the cost of agent 1 job 1 (problem 1), found `x`"
        );
        let ps = read_gap(Cycle(b"1\n1 1\n5\n2\n3\n", 0)).unwrap();
        assert_eq!((ps[0].cost[0][0], ps[0].resource[0][0]), (5, 2));
        assert_eq!(ps[0].capacity, vec![3]);
        // Lines are numbered across blank lines and CRLF endings; counts peek at the line
        // of the token they read.
        let err = read_gap("1\r\n\r\n  \r\n0 3\r\n".as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 4: expected the number of agents of problem 1 (between 1 and 100000), found `0`"
        );
        let err = read_gap("1\n1".as_bytes()).unwrap_err();
        assert!(matches!(err, GapError::UnexpectedEnd { .. }), "{err}");
        // Invalid UTF-8 is an I/O error, as it was when the file was read whole.
        let err = read_gap(&b"1\n1 1\n\xC3\x28\n"[..]).unwrap_err();
        assert!(matches!(err, GapError::Io(_)), "{err}");
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
