//! Simulated annealing: Metropolis sweeps along a schedule of inverse temperatures.

use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

use super::{
    Run, Solution, SolveError, SolveOptions, Solver, check_beta_range, check_initial,
    default_beta_range, random_assignment, rng,
};
use crate::Qubo;

/// How the inverse temperature moves from hot to cold during one anneal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// `beta` grows by a constant factor each sweep (the usual choice).
    #[default]
    Geometric,
    /// `beta` grows by a constant amount each sweep.
    Linear,
}

impl Schedule {
    /// The inverse temperature of sweep `k` of `sweeps`.
    pub(super) fn beta(self, (hot, cold): (f64, f64), k: u64, sweeps: u64) -> f64 {
        if sweeps <= 1 {
            return cold;
        }
        let t = k as f64 / (sweeps - 1) as f64;
        match self {
            Schedule::Geometric => hot * (cold / hot).powf(t),
            Schedule::Linear => hot + (cold - hot) * t,
        }
    }
}

/// Simulated annealing with restarts ("reads").
///
/// Each read starts from a random assignment (the first from the given initial one, if any)
/// and makes `sweeps_per_read` Metropolis sweeps while the inverse temperature follows the
/// schedule from the hot to the cold end of `beta_range` (by default derived from the model:
/// see the crate docs). The best assignment of all reads wins.
///
/// Reads: `reads` if set; otherwise as many as the sweep budget allows. Under a time limit
/// without a read count, the reads grow: each next read is twice as long as the last while
/// the remaining time allows, because longer anneals find lower energies.
///
/// # Examples
///
/// ```
/// use qorch_qubo::{Budget, Graph, SimulatedAnnealing, SolveOptions, Solver};
///
/// let ring = Graph::new(6, (0..6).map(|i| (i, (i + 1) % 6, 1.0)).collect()).unwrap();
/// let q = ring.max_cut_qubo();
/// let sol = SimulatedAnnealing::default().solve(&q, &SolveOptions::new(Budget::sweeps(2000), 7)).unwrap();
/// assert_eq!(ring.cut_value(&sol.assignment), 6.0); // an even ring is bipartite
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimulatedAnnealing {
    /// Sweeps of one read.
    pub sweeps_per_read: u64,
    /// The temperature schedule.
    pub schedule: Schedule,
    /// `(hot, cold)` inverse temperatures; `None` derives them from the model.
    pub beta_range: Option<(f64, f64)>,
    /// Number of reads; `None` lets the budget decide.
    pub reads: Option<u64>,
}

impl Default for SimulatedAnnealing {
    fn default() -> Self {
        SimulatedAnnealing {
            sweeps_per_read: 1000,
            schedule: Schedule::Geometric,
            beta_range: None,
            reads: None,
        }
    }
}

/// Above `LOG_SKIP / beta` an uphill move's acceptance probability is below `exp(-44)`, so it
/// is rejected without drawing a random number (the same cut-off as D-Wave's samplers).
const LOG_SKIP: f64 = 44.361_419_555_836_5;

/// One Metropolis sweep at inverse temperature `beta` over all variables in order.
///
/// A downhill move is always made, an uphill one with probability `exp(-beta * d)` (tested as
/// `beta * d < E` with `E` exponentially distributed, drawn by the ziggurat method: no
/// transcendental function per move), and a neutral one (`d == 0`) with probability 1/2. Always making neutral moves in a sequential
/// sweep lets domain walls travel with the sweep, one site per update, so that they never meet
/// and annihilate: on a ring or a grid the anneal then never leaves its random start.
#[inline]
pub(crate) fn metropolis_sweep(
    qubo: &Qubo,
    x: &mut [bool],
    field: &mut [f64],
    energy: &mut f64,
    beta: f64,
    rng: &mut Xoshiro256PlusPlus,
) {
    use rand::Rng;
    use rand_distr::{Distribution, Exp1};
    let skip = LOG_SKIP / beta;
    let start = &qubo.start;
    let adj = &qubo.adj;
    for i in 0..x.len() {
        let f = field[i];
        let d = if x[i] { -f } else { f };
        if d >= 0.0 {
            let reject = if d == 0.0 {
                rng.next_u64() >> 63 == 0
            } else {
                d >= skip || beta * d >= Exp1.sample(rng)
            };
            if reject {
                continue;
            }
        }
        *energy += d;
        let on = !x[i];
        x[i] = on;
        let s = if on { 1.0 } else { -1.0 };
        for c in &adj[start[i]..start[i + 1]] {
            field[c.var as usize] += s * c.weight;
        }
    }
}

/// A model whose coefficients are all integers, stored for the integer sweeps: `i32` fields and
/// 8-byte couplings, by variable and in the coloured layout. Integer deltas let the acceptance
/// test be a table lookup.
pub(crate) struct IntModel {
    start: Vec<usize>,
    adj: Vec<(u32, i32)>,
    linear: Vec<i32>,
    /// The same model in the layout of the two-phase sweep.
    pub(super) colored: Colored,
}

/// An integer model renumbered so that each class of a greedy colouring (no two coupled
/// variables share a class) holds consecutive positions: the layout of [`colored_sweep`].
pub(crate) struct Colored {
    /// `order[p]`: the variable at position `p`.
    order: Vec<u32>,
    /// Class `c` holds the positions `classes[c]..classes[c + 1]`.
    classes: Vec<usize>,
    start: Vec<usize>,
    /// Couplings by position: `(neighbour's position, weight)`.
    adj: Vec<(u32, i32)>,
    linear: Vec<i32>,
}

impl Colored {
    /// Colours the variables greedily in index order (each takes the smallest colour none of
    /// its earlier neighbours has) and lays them out class by class.
    fn new(start: &[usize], adj: &[(u32, i32)], linear: &[i32]) -> Colored {
        let n = linear.len();
        let mut color = vec![u32::MAX; n];
        // seen[c] == i: colour c is taken by a neighbour of i.
        let mut seen: Vec<usize> = Vec::new();
        let mut counts: Vec<usize> = Vec::new();
        for i in 0..n {
            for &(j, _) in &adj[start[i]..start[i + 1]] {
                let c = color[j as usize];
                if c != u32::MAX {
                    seen[c as usize] = i;
                }
            }
            let c = seen.iter().position(|&v| v != i).unwrap_or(seen.len());
            if c == seen.len() {
                seen.push(usize::MAX);
                counts.push(0);
            }
            color[i] = c as u32;
            counts[c] += 1;
        }
        let mut classes = Vec::with_capacity(counts.len() + 1);
        classes.push(0);
        for &k in &counts {
            classes.push(classes[classes.len() - 1] + k);
        }
        let mut next = classes.clone();
        let mut pos = vec![0_u32; n];
        let mut order = vec![0_u32; n];
        for i in 0..n {
            let c = color[i] as usize;
            pos[i] = next[c] as u32;
            order[next[c]] = i as u32;
            next[c] += 1;
        }
        let mut cstart = Vec::with_capacity(n + 1);
        let mut cadj = Vec::with_capacity(adj.len());
        cstart.push(0);
        for &i in &order {
            let i = i as usize;
            cadj.extend(
                adj[start[i]..start[i + 1]]
                    .iter()
                    .map(|&(j, w)| (pos[j as usize], w)),
            );
            cstart.push(cadj.len());
        }
        let clinear = order.iter().map(|&i| linear[i as usize]).collect();
        Colored {
            order,
            classes,
            start: cstart,
            adj: cadj,
            linear: clinear,
        }
    }

    /// `x` (by variable) laid out by position.
    pub(super) fn gather(&self, x: &[bool]) -> Vec<bool> {
        self.order.iter().map(|&i| x[i as usize]).collect()
    }

    /// Writes `y` (by position) back into `x` (by variable).
    pub(super) fn scatter(&self, y: &[bool], x: &mut [bool]) {
        for (&i, &v) in self.order.iter().zip(y) {
            x[i as usize] = v;
        }
    }

    /// Local fields of `y`, by position.
    pub(super) fn fields(&self, y: &[bool]) -> Vec<i32> {
        int_fields(&self.start, &self.adj, &self.linear, y)
    }
}

/// Local fields of `x` in an integer model stored as `start`, `adj` and `linear`.
fn int_fields(start: &[usize], adj: &[(u32, i32)], linear: &[i32], x: &[bool]) -> Vec<i32> {
    let mut field = linear.to_vec();
    for (i, &on) in x.iter().enumerate() {
        if on {
            for &(j, w) in &adj[start[i]..start[i + 1]] {
                field[j as usize] += w;
            }
        }
    }
    field
}

impl IntModel {
    /// The integer form of `qubo`, if every coefficient is an integer and every local field
    /// fits an `i32` comfortably.
    pub(crate) fn new(qubo: &Qubo) -> Option<IntModel> {
        const LIMIT: f64 = (1_u64 << 30) as f64;
        let int = |w: f64| w == w.trunc() && w.abs() < LIMIT;
        if !qubo.linear.iter().all(|&a| int(a)) || !qubo.adj.iter().all(|c| int(c.weight)) {
            return None;
        }
        if qubo.max_flip_magnitudes().iter().any(|&m| m >= LIMIT) {
            return None;
        }
        let start = qubo.start.clone();
        let adj: Vec<(u32, i32)> = qubo.adj.iter().map(|c| (c.var, c.weight as i32)).collect();
        let linear: Vec<i32> = qubo.linear.iter().map(|&a| a as i32).collect();
        let colored = Colored::new(&start, &adj, &linear);
        Some(IntModel {
            start,
            adj,
            linear,
            colored,
        })
    }

    /// The couplings of variable `i`: `(neighbour, weight)`.
    #[inline]
    pub(crate) fn couplings(&self, i: usize) -> &[(u32, i32)] {
        &self.adj[self.start[i]..self.start[i + 1]]
    }

    pub(crate) fn fields(&self, x: &[bool]) -> Vec<i32> {
        int_fields(&self.start, &self.adj, &self.linear, x)
    }
}

/// Acceptance thresholds of one inverse temperature for integer deltas: an uphill move of
/// `d < len` is made when a uniform `u64` is below `threshold[d] = exp(-beta d) 2^64`
/// (`threshold[0] = 2^63`: a neutral move is made with probability 1/2).
pub(crate) struct AcceptTable {
    beta: f64,
    skip: f64,
    threshold: Vec<u64>,
    /// The table covers every delta below the skip cut-off and ends with a `0` entry that
    /// stands for all larger deltas, so that a clamped index decides every move.
    complete: bool,
}

impl AcceptTable {
    /// Largest delta kept in the table; beyond it (and below the skip cut-off) the exponential
    /// draw decides.
    const MAX_LEN: usize = 4096;

    pub(crate) fn new() -> Self {
        AcceptTable {
            beta: f64::NAN,
            skip: 0.0,
            threshold: Vec::with_capacity(64),
            complete: false,
        }
    }

    /// Sets the inverse temperature (a few nanoseconds per entry: one multiplication each).
    pub(crate) fn set_beta(&mut self, beta: f64) {
        if beta == self.beta {
            return;
        }
        self.beta = beta;
        self.skip = LOG_SKIP / beta;
        let want = self.skip.ceil() as usize + 1;
        let len = want.min(Self::MAX_LEN);
        self.complete = want <= Self::MAX_LEN;
        let r = (-beta).exp();
        self.threshold.clear();
        self.threshold.push(1 << 63);
        let mut p = 1.0_f64;
        for _ in 1..len {
            p *= r;
            // `as` saturates: p = 1 maps to u64::MAX.
            self.threshold
                .push((p * 18_446_744_073_709_551_616.0) as u64);
        }
        if self.complete {
            self.threshold.push(0);
        }
    }

    #[inline]
    fn accept(&self, d: i32, rng: &mut Xoshiro256PlusPlus) -> bool {
        use rand::Rng;
        use rand_distr::{Distribution, Exp1};
        match self.threshold.get(d as usize) {
            Some(&t) => rng.next_u64() < t,
            None => f64::from(d) < self.skip && self.beta * f64::from(d) < Exp1.sample(rng),
        }
    }
}

/// The integer form of [`metropolis_sweep`]: same rule, with the table's acceptance test.
#[inline]
#[allow(
    clippy::needless_bitwise_bool,
    reason = "both sides are cheap; `|` keeps the decision free of branches"
)]
pub(crate) fn metropolis_sweep_int(
    m: &IntModel,
    x: &mut [bool],
    field: &mut [i32],
    energy: &mut i64,
    table: &AcceptTable,
    rng: &mut Xoshiro256PlusPlus,
) {
    use rand::Rng;
    if table.complete {
        // One uniform draw per variable and a clamped table index: the only branch that
        // depends on the draw is whether to make the move.
        let threshold = table.threshold.as_slice();
        let last = threshold.len() - 1;
        let field = &mut field[..x.len()];
        let mut e = *energy;
        for (i, xi) in x.iter_mut().enumerate() {
            let f = field[i];
            let d = if *xi { -f } else { f };
            let u = rng.next_u64();
            let t = threshold[(d.max(0) as usize).min(last)];
            if !((d < 0) | (u < t)) {
                continue;
            }
            e += i64::from(d);
            *xi = !*xi;
            let s = if *xi { 1 } else { -1 };
            for &(j, w) in &m.adj[m.start[i]..m.start[i + 1]] {
                field[j as usize] += s * w;
            }
        }
        *energy = e;
        return;
    }
    for i in 0..x.len() {
        let f = field[i];
        let d = if x[i] { -f } else { f };
        if d >= 0 {
            let reject = if d == 0 {
                rng.next_u64() >> 63 == 0
            } else {
                !table.accept(d, rng)
            };
            if reject {
                continue;
            }
        }
        *energy += i64::from(d);
        let on = !x[i];
        x[i] = on;
        let couplings = &m.adj[m.start[i]..m.start[i + 1]];
        if on {
            for &(j, w) in couplings {
                field[j as usize] += w;
            }
        } else {
            for &(j, w) in couplings {
                field[j as usize] -= w;
            }
        }
    }
}

/// One Metropolis sweep of the integer model in its coloured layout, class by class, with
/// the same acceptance rule as [`metropolis_sweep_int`]. Variables of one class are not
/// coupled, so a move of one leaves the others' deltas unchanged: the first phase decides
/// every move of the class without a branch on the draw, collecting the accepted positions in
/// `moves`; the second makes them. A sequential sweep branches on every decision and, while
/// the acceptance rate is near one half, mispredicts about every other one: in the hot half
/// of an anneal this kernel sweeps 1.15x (stacked triangulations) to 1.5x (a 2D torus)
/// faster.
#[allow(
    clippy::needless_bitwise_bool,
    reason = "both sides are cheap; `|` keeps the decision free of branches"
)]
pub(super) fn colored_sweep(
    c: &Colored,
    y: &mut [bool],
    field: &mut [i32],
    energy: &mut i64,
    table: &AcceptTable,
    rng: &mut Xoshiro256PlusPlus,
    moves: &mut [u32],
) -> usize {
    use rand::Rng;
    let threshold = table.threshold.as_slice();
    let last = threshold.len() - 1;
    let mut e = *energy;
    let mut made = 0_usize;
    for class in c.classes.windows(2) {
        let mut count = 0_usize;
        if table.complete {
            for p in class[0]..class[1] {
                let f = field[p];
                let d = if y[p] { -f } else { f };
                let u = rng.next_u64();
                let accept = (d < 0) | (u < threshold[(d.max(0) as usize).min(last)]);
                moves[count] = p as u32;
                count += usize::from(accept);
            }
        } else {
            for p in class[0]..class[1] {
                let f = field[p];
                let d = if y[p] { -f } else { f };
                let accept = match d {
                    ..0 => true,
                    0 => rng.next_u64() >> 63 == 1,
                    _ => table.accept(d, rng),
                };
                moves[count] = p as u32;
                count += usize::from(accept);
            }
        }
        made += count;
        for &p in &moves[..count] {
            let p = p as usize;
            let f = field[p];
            let on = !y[p];
            e += i64::from(if on { f } else { -f });
            y[p] = on;
            let s = if on { 1 } else { -1 };
            for &(q, w) in &c.adj[c.start[p]..c.start[p + 1]] {
                field[q as usize] += s * w;
            }
        }
    }
    *energy = e;
    made
}

/// Local fields of `x`.
pub(crate) fn fields_of(qubo: &Qubo, x: &[bool]) -> Vec<f64> {
    let mut field = qubo.linear.clone();
    for (i, &xi) in x.iter().enumerate() {
        if xi {
            for c in qubo.neighbors(i) {
                field[c.var as usize] += c.weight;
            }
        }
    }
    field
}

/// Runs one anneal of `sweeps` sweeps from `x` (left in `x`: the *final* state) along
/// `schedule` over `betas`, offering every improvement of the run's best to `run`. Uses the
/// integer kernels when `int` is given ([`colored_sweep`] while many moves are made, then
/// [`metropolis_sweep_int`]). Returns `false` if the run must stop.
#[allow(
    clippy::too_many_arguments,
    reason = "the state of one anneal; internal"
)]
pub(crate) fn anneal(
    qubo: &Qubo,
    int: Option<&IntModel>,
    run: &mut Run<'_>,
    x: &mut [bool],
    sweeps: u64,
    schedule: Schedule,
    betas: (f64, f64),
    r: &mut Xoshiro256PlusPlus,
) -> bool {
    let offset = qubo.energy(x);
    run.offer(x, offset);
    if let Some(m) = int {
        // Energies relative to the start, exact in integers. The coloured layout while many
        // moves are made; once fewer than one variable in ten moves per sweep, the sequential
        // kernel, whose branches are then predictable and which skips the second pass.
        let c = &m.colored;
        let mut y = c.gather(x);
        let mut field = c.fields(&y);
        let mut moves = vec![0_u32; y.len()];
        let mut colored = true;
        let mut delta = 0_i64;
        let mut best = 0_i64;
        let mut table = AcceptTable::new();
        for k in 0..sweeps {
            table.set_beta(schedule.beta(betas, k, sweeps));
            if colored {
                let made = colored_sweep(c, &mut y, &mut field, &mut delta, &table, r, &mut moves);
                if 10 * made < y.len() {
                    c.scatter(&y, x);
                    field = m.fields(x);
                    colored = false;
                }
            } else {
                metropolis_sweep_int(m, x, &mut field, &mut delta, &table, r);
            }
            if delta < best {
                best = delta;
                if offset + (delta as f64) < run.best_energy {
                    if colored {
                        c.scatter(&y, x);
                    }
                    run.offer(x, offset + delta as f64);
                }
            }
            if run.add_sweeps(1) {
                if colored {
                    c.scatter(&y, x);
                }
                return false;
            }
        }
        if colored {
            c.scatter(&y, x);
        }
        return true;
    }
    let mut field = fields_of(qubo, x);
    let mut energy = offset;
    for k in 0..sweeps {
        let beta = schedule.beta(betas, k, sweeps);
        metropolis_sweep(qubo, x, &mut field, &mut energy, beta, r);
        if energy < run.best_energy {
            run.offer(x, energy);
        }
        if run.add_sweeps(1) {
            return false;
        }
    }
    true
}

/// Share of the time limit that [`sweeps_available`] spends measuring the sweep rate.
const PROBE_SHARE: f64 = 0.01;

/// Most seconds [`sweeps_available`] spends measuring the sweep rate.
const PROBE_MAX_SECONDS: f64 = 0.25;

/// The first state of a run (the given initial one, or random) and the sweeps the run may
/// make: the sweep budget, or, under a time limit, the sweep rate measured on probe anneals of
/// that state (left annealed) times the time left. `None` if the budget ran out in the probe.
///
/// The probe anneals 64 sweeps, then twice as many, and so on, until it has taken
/// [`PROBE_SHARE`] of the time limit (at most [`PROBE_MAX_SECONDS`]), or of the sweep budget
/// where there is one too. A single probe of a few milliseconds is at the mercy of the
/// scheduler on a shared machine: it misjudged the rate by 2 to 5 times on the G-set.
pub(crate) fn sweeps_available(
    qubo: &Qubo,
    int: Option<&IntModel>,
    run: &mut Run<'_>,
    options: &SolveOptions<'_>,
    betas: (f64, f64),
    r: &mut Xoshiro256PlusPlus,
) -> Option<(u64, Vec<bool>)> {
    let mut first = match options.initial {
        Some(x) => x.to_vec(),
        None => random_assignment(qubo.num_vars(), r),
    };
    if run.has_sweep_limit() && !run.has_time_limit() {
        return Some((run.sweeps_left(), first));
    }
    let seconds_left = |run: &Run<'_>| run.time_left().map_or(f64::INFINITY, |d| d.as_secs_f64());
    let long_enough = (PROBE_SHARE * seconds_left(run)).min(PROBE_MAX_SECONDS);
    let t = run.elapsed();
    let (mut probe, mut done) = (64_u64, 0_u64);
    loop {
        if !anneal(
            qubo,
            int,
            run,
            &mut first,
            probe,
            Schedule::Geometric,
            betas,
            r,
        ) {
            return None;
        }
        done += probe;
        let sweeps_spent = run.has_sweep_limit()
            && done as f64 >= PROBE_SHARE * run.sweeps_left().saturating_add(done) as f64;
        if sweeps_spent || run.elapsed() - t >= long_enough {
            break;
        }
        probe *= 2;
    }
    let rate = done as f64 / (run.elapsed() - t).max(1e-9);
    let by_time = (rate * seconds_left(run)) as u64;
    Some((by_time.min(run.sweeps_left()), first))
}

impl Solver for SimulatedAnnealing {
    fn name(&self) -> &str {
        "sa"
    }

    fn solve(&self, qubo: &Qubo, options: &SolveOptions<'_>) -> Result<Solution, SolveError> {
        check_initial(qubo, options)?;
        if self.sweeps_per_read == 0 {
            return Err(SolveError::Config(
                "sweeps_per_read must be at least 1".into(),
            ));
        }
        check_beta_range(self.beta_range)?;
        let n = qubo.num_vars();
        let default_reads = self.reads.unwrap_or(10);
        let mut run = Run::new(
            qubo,
            &options.budget,
            default_reads.saturating_mul(self.sweeps_per_read),
        );
        if n == 0 {
            run.offer(&[], qubo.offset());
            return Ok(run.finish(self.name()));
        }
        let betas = self.beta_range.unwrap_or_else(|| default_beta_range(qubo));
        let grow = self.reads.is_none() && run.has_time_limit() && !run.has_sweep_limit();
        let int = IntModel::new(qubo);
        let mut length = self.sweeps_per_read;
        let mut read = 0_u64;
        loop {
            if self.reads.is_some_and(|r| read >= r) {
                break;
            }
            let mut r = rng(options.seed, read);
            let mut x = match (read, options.initial) {
                (0, Some(init)) => init.to_vec(),
                _ => random_assignment(n, &mut r),
            };
            // Never start a read the sweep budget cannot finish, except the first.
            let sweeps = if read == 0 {
                length.min(run.sweeps_left())
            } else {
                length
            };
            if read > 0 && run.sweeps_left() < sweeps {
                break;
            }
            let started = run.elapsed();
            let done_before = run.sweeps;
            if !anneal(
                qubo,
                int.as_ref(),
                &mut run,
                &mut x,
                sweeps,
                self.schedule,
                betas,
                &mut r,
            ) {
                break;
            }
            read += 1;
            if grow {
                // Double the next read while the remaining time allows it.
                let per_sweep =
                    (run.elapsed() - started) / (run.sweeps - done_before).max(1) as f64;
                let left = run.time_fraction().map_or(0.0, |f| (1.0 - f).max(0.0))
                    * options.budget.time_limit.map_or(0.0, |d| d.as_secs_f64());
                let fits = (left / per_sweep.max(1e-12) * 0.9) as u64;
                if fits < self.sweeps_per_read.min(length) {
                    break;
                }
                length = (2 * length).min(fits);
            }
        }
        Ok(run.finish(self.name()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::solver::{random_assignment, random_model, rng};
    use crate::{Budget, QuboBuilder};
    use rand::RngExt;
    use std::time::Duration;

    #[test]
    fn schedules_run_from_hot_to_cold() {
        for s in [Schedule::Geometric, Schedule::Linear] {
            assert!((s.beta((0.1, 10.0), 0, 100) - 0.1).abs() < 1e-12);
            assert!((s.beta((0.1, 10.0), 99, 100) - 10.0).abs() < 1e-9);
            assert!(s.beta((0.1, 10.0), 50, 100) > 0.1);
        }
    }

    #[test]
    fn same_seed_same_result_and_budget_respected() {
        let mut b = QuboBuilder::new(30);
        for i in 0..30 {
            b.add_linear(i, if i % 3 == 0 { -1.0 } else { 0.5 });
            b.add_quadratic(i, (i * 7 + 3) % 30, 1.5);
        }
        let q = b.build().unwrap();
        let sa = SimulatedAnnealing::default();
        let opts = SolveOptions::new(Budget::sweeps(3000), 42);
        let a = sa.solve(&q, &opts).unwrap();
        let b2 = sa.solve(&q, &opts).unwrap();
        assert_eq!(a.assignment, b2.assignment);
        assert_eq!(a.sweeps, 3000);
        assert!((a.energy - q.energy(&a.assignment)).abs() < 1e-9);
        let c = sa
            .solve(&q, &SolveOptions::new(Budget::sweeps(3000), 43))
            .unwrap();
        assert_eq!(c.sweeps, 3000);
    }

    #[test]
    fn the_colored_sweep_is_a_proper_colouring_and_tracks_energy_and_fields() {
        let n = 300;
        let mut r = rng(5, 0);
        let mut b = QuboBuilder::new(n);
        for i in 0..n {
            b.add_linear(i, f64::from(r.random_range(-3..=3)));
        }
        // A few hubs, as in a stacked triangulation, and a sparse random rest.
        for _ in 0..4 * n {
            let i = if r.random_bool(0.2) {
                r.random_range(0..3)
            } else {
                r.random_range(0..n)
            };
            let j = r.random_range(0..n);
            if i != j {
                b.add_quadratic(i, j, f64::from(r.random_range(-4..=4)));
            }
        }
        let q = b.build().unwrap();
        let m = IntModel::new(&q).unwrap();
        let c = &m.colored;
        let mut class = vec![usize::MAX; n];
        for (k, w) in c.classes.windows(2).enumerate() {
            class[w[0]..w[1]].fill(k);
        }
        assert_eq!(c.classes.last(), Some(&n));
        for p in 0..n {
            for &(q, _) in &c.adj[c.start[p]..c.start[p + 1]] {
                assert_ne!(
                    class[p], class[q as usize],
                    "coupled positions share a class"
                );
            }
        }
        let mut seen = c.order.clone();
        seen.sort_unstable();
        assert!(seen.iter().enumerate().all(|(i, &v)| v as usize == i));

        let x = random_assignment(n, &mut r);
        let mut y = c.gather(&x);
        let mut back = vec![false; n];
        c.scatter(&y, &mut back);
        assert_eq!(back, x);
        let start = q.energy(&x);
        let mut field = c.fields(&y);
        let mut moves = vec![0_u32; n];
        let mut delta = 0_i64;
        let mut table = AcceptTable::new();
        // Hot (an incomplete table: the exponential draw), then colder.
        for beta in [1e-5, 0.05, 0.5, 2.0, 8.0] {
            table.set_beta(beta);
            assert_eq!(table.complete, beta > 0.02);
            for _ in 0..5 {
                colored_sweep(
                    c, &mut y, &mut field, &mut delta, &table, &mut r, &mut moves,
                );
            }
            c.scatter(&y, &mut back);
            assert!((q.energy(&back) - start - delta as f64).abs() < 1e-9);
            assert_eq!(field, c.fields(&y));
        }
    }

    #[test]
    fn the_integer_anneal_switches_kernels_without_losing_track() {
        // A +-1 ring with chords: integer, frustrated, and cold at the end of the schedule.
        let n = 400;
        let mut r = rng(9, 0);
        let mut b = QuboBuilder::new(n);
        for i in 0..n {
            for j in [(i + 1) % n, (i + 37) % n] {
                b.add_quadratic(i, j, if r.random_bool(0.5) { 2.0 } else { -2.0 });
                b.add_linear(i, -1.0);
            }
        }
        let q = b.build().unwrap();
        let m = IntModel::new(&q).unwrap();
        let betas = default_beta_range(&q);
        for (sweeps, budget) in [(500, 1_000), (500, 300)] {
            let mut run = Run::new(&q, &Budget::sweeps(budget), budget);
            let mut x = random_assignment(n, &mut r);
            let go = anneal(
                &q,
                Some(&m),
                &mut run,
                &mut x,
                sweeps,
                Schedule::Geometric,
                betas,
                &mut r,
            );
            // The budget stops the second anneal early, in the sequential part.
            assert_eq!(go, budget > sweeps);
            assert_eq!(run.sweeps, sweeps.min(budget));
            let final_energy = q.energy(&x);
            let sol = run.finish("sa");
            assert!((sol.energy - q.energy(&sol.assignment)).abs() < 1e-9);
            assert!(sol.energy <= final_energy + 1e-9);
        }
    }

    #[test]
    fn the_rate_probe_spends_a_small_share_of_either_budget() {
        let q = random_model(200, 600, 3);
        let int = IntModel::new(&q);
        let betas = (0.1, 5.0);
        // A sweep budget besides a long time limit: the probe stops near 1% of the sweeps
        // (doubling probes overshoot by at most twice), and the rest is left.
        let budget = Budget {
            sweeps: Some(100_000),
            time_limit: Some(Duration::from_secs(3_600)),
            target_energy: None,
        };
        let options = SolveOptions::new(budget, 1);
        let mut run = Run::new(&q, &budget, 0);
        let (total, first) =
            sweeps_available(&q, int.as_ref(), &mut run, &options, betas, &mut rng(1, 0)).unwrap();
        assert!(run.sweeps <= 2_000, "{}", run.sweeps);
        assert!(run.sweeps >= 1_000 || run.elapsed() >= PROBE_MAX_SECONDS);
        assert_eq!(total, 100_000 - run.sweeps);
        assert_eq!(first.len(), 200);
        // A time limit only: the probe runs for its share of it, then prices the rest.
        let budget = Budget::time(Duration::from_secs(2));
        let options = SolveOptions::new(budget, 1);
        let mut run = Run::new(&q, &budget, 0);
        let (total, _) =
            sweeps_available(&q, int.as_ref(), &mut run, &options, betas, &mut rng(1, 0)).unwrap();
        assert!(run.elapsed() >= 0.02);
        assert!(total > 0);
        // A sweep budget alone needs no probe.
        let budget = Budget::sweeps(500);
        let options = SolveOptions::new(budget, 1);
        let mut run = Run::new(&q, &budget, 0);
        let (total, _) =
            sweeps_available(&q, int.as_ref(), &mut run, &options, betas, &mut rng(1, 0)).unwrap();
        assert_eq!((total, run.sweeps), (500, 0));
    }

    #[test]
    fn invalid_settings_are_refused() {
        let q = QuboBuilder::new(2).build().unwrap();
        let bad = SimulatedAnnealing {
            beta_range: Some((1.0, 0.5)),
            ..Default::default()
        };
        assert!(matches!(
            bad.solve(&q, &SolveOptions::default()),
            Err(SolveError::Config(_))
        ));
        let x = [true];
        let opts = SolveOptions::default().with_initial(&x);
        assert!(matches!(
            SimulatedAnnealing::default().solve(&q, &opts),
            Err(SolveError::InitialLength { len: 1, n: 2 })
        ));
    }
}
