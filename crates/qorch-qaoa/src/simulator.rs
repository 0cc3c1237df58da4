//! The statevector simulator: state, layers, expectation, gradient, sampling.

use std::sync::Arc;

use num_complex::Complex64;
use qorch_qubo::{Graph, Ising, Qubo};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::diagonal::{self, FnSource, Kind, QuboSource, Source, Storage};
use crate::kernel::{
    self, Dense, Diag, KernelConfig, Layout, Levels, Mix, PassA, PassAPair, PassB, PassBPair,
    PhaseOp, PhaseTable, cpow,
};
use crate::memory::STATE_BYTES_PER_AMPLITUDE;
use crate::{CostDiagonal, MemoryPolicy, Polynomial, QaoaParams, Sense, SimError};

/// The mixer of every layer.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mixer {
    /// `B = sum_j X_j`: `exp(-i beta B)` rotates every qubit.
    #[default]
    TransverseField,
    /// The XY ring mixer for one-hot groups (Hadfield et al. 2019; Wang et al. 2020): on each
    /// ring `r_0..r_{L-1}`, `exp(-i beta (X_a X_b + Y_a Y_b)/2)` for the ring's neighbouring
    /// pairs, applied in parity order (pairs starting at even positions, then odd ones, then
    /// the closing pair of an odd ring). Each factor swaps a 1 between two qubits, so the
    /// number of ones in every ring, and thus a one-hot encoding, is preserved. Qubits in no
    /// ring get the transverse-field mixer.
    XyRings(Vec<Vec<usize>>),
}

/// The state before the first layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InitialState {
    /// The mixer's default: `|+>^n` for the transverse field, [`OneHotUniform`] for XY rings.
    ///
    /// [`OneHotUniform`]: InitialState::OneHotUniform
    #[default]
    Default,
    /// `|+>^n`, the ground state of `-sum_j X_j`.
    Plus,
    /// One basis state (bit `i` is qubit `i`).
    Basis(u64),
    /// A W state (the uniform superposition of the one-hot states) on every ring, `|+>` on
    /// the other qubits.
    OneHotUniform,
}

/// Settings of a [`QaoaSimulator`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimConfig {
    /// Where allocations are refused.
    pub memory: MemoryPolicy,
    /// Cache blocking and SIMD.
    pub kernel: KernelConfig,
    /// Use several threads from this many qubits on. Smaller registers run on the calling
    /// thread, and a layer then allocates nothing.
    pub parallel_min_qubits: usize,
    /// Threads of a pool of the simulator's own; `None` uses rayon's global pool.
    pub threads: Option<usize>,
    /// The mixer.
    pub mixer: Mixer,
    /// The initial state.
    pub initial: InitialState,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            memory: MemoryPolicy::default(),
            kernel: KernelConfig::default(),
            parallel_min_qubits: 14,
            threads: None,
            mixer: Mixer::TransverseField,
            initial: InitialState::Default,
        }
    }
}

/// The best of a set of sampled basis states.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// The basis state (bit `i` is variable `i`).
    pub index: u64,
    /// Its cost.
    pub cost: f64,
    /// How many of the shots gave it.
    pub count: usize,
    /// The assignment of the model's variables: `assignment[i] = (index >> i) & 1 == 1`.
    pub assignment: Vec<bool>,
}

/// An exact statevector simulator of QAOA circuits for one diagonal cost Hamiltonian.
///
/// The state has `2^n` complex amplitudes (stored as two `f64` arrays); the cost of every
/// basis state is computed once, when the simulator is built. Layer `l` applies
/// `exp(-i gamma_l D)` and then the mixer `exp(-i beta_l B)`, from the initial state
/// (`|+>^n` by default).
///
/// # Examples
///
/// ```
/// use qorch_qaoa::{QaoaParams, QaoaSimulator, SimConfig};
/// use qorch_qubo::Graph;
///
/// // p = 1 on a triangle: <C> = 3 (1/2 + sin(4b) sin(g) cos(g) / 2 - sin^2(2b) (1 - cos(2g)) / 4)
/// // (Wang et al. 2018, every vertex of degree 2 in one triangle).
/// let triangle = Graph::new(3, vec![(0, 1, 1.0), (1, 2, 1.0), (0, 2, 1.0)]).unwrap();
/// let mut sim = QaoaSimulator::for_max_cut(&triangle, SimConfig::default()).unwrap();
/// let (g, b) = (0.7_f64, 0.3_f64);
/// let e = sim.expectation(&QaoaParams::new(vec![g], vec![b]).unwrap()).unwrap();
/// let edge = 0.5 + 0.5 * (4.0 * b).sin() * g.sin() * g.cos()
///     - 0.25 * (2.0 * b).sin().powi(2) * (1.0 - (2.0 * g).cos());
/// assert!((e - 3.0 * edge).abs() < 1e-12);
/// ```
#[derive(Debug)]
pub struct QaoaSimulator {
    n: usize,
    diag: CostDiagonal,
    config: SimConfig,
    layout: Layout,
    pool: Option<Arc<rayon::ThreadPool>>,
    re: Vec<f64>,
    im: Vec<f64>,
    /// The adjoint state of the gradient, allocated on first use.
    adjoint: Option<(Vec<f64>, Vec<f64>)>,
    table: PhaseTable,
    /// The diagonal's levels padded to the range of its index type (empty when dense).
    padded: Vec<f64>,
    /// Qubits the transverse field rotates.
    free: u64,
    /// XY gates `(a, b)` of one mixer layer, in order.
    gates: Vec<(usize, usize)>,
    rings: Vec<Vec<usize>>,
    initial: InitialState,
    /// The parameters of the circuit the state holds, if it holds one.
    prepared: Option<QaoaParams>,
    evaluations: u64,
}

impl QaoaSimulator {
    /// A simulator whose cost is the QUBO's energy `E(x)` (to be minimized).
    ///
    /// # Errors
    ///
    /// [`SimError::InsufficientMemory`] or [`SimError::AboveCap`] when the diagonal and the
    /// state would not fit; [`SimError::TooManyQubits`]; an invalid mixer.
    pub fn from_qubo(qubo: &Qubo, config: SimConfig) -> Result<Self, SimError> {
        Self::from_qubo_signed(qubo, 1.0, config)
    }

    /// A simulator whose cost is the Ising energy `E(s)`, spin `s_i = +1` where bit `i` is 1.
    ///
    /// # Errors
    ///
    /// As [`from_qubo`](Self::from_qubo).
    pub fn from_ising(ising: &Ising, config: SimConfig) -> Result<Self, SimError> {
        Self::from_qubo(&ising.to_qubo(), config)
    }

    /// A simulator whose cost is the weight of the cut `C(x)` of the graph (to be
    /// maximized): `C = sum_(ij) w_ij (1 - Z_i Z_j) / 2`, the convention of the fixed-angle
    /// tables.
    ///
    /// # Errors
    ///
    /// As [`from_qubo`](Self::from_qubo).
    pub fn for_max_cut(graph: &Graph, config: SimConfig) -> Result<Self, SimError> {
        Self::from_qubo_signed(&diagonal::cut_qubo(graph), -1.0, config)
    }

    fn from_qubo_signed(qubo: &Qubo, sign: f64, config: SimConfig) -> Result<Self, SimError> {
        let n = qubo.num_vars();
        config.memory.check(n, STATE_BYTES_PER_AMPLITUDE + 1)?;
        let src = QuboSource::new(qubo, sign);
        let (kind, min, max) = diagonal::qubo_plan(&src);
        Self::build(&src, kind, min, max, config)
    }

    /// A simulator for a custom cost: `cost(x)` of every basis state `x` (bit `i` is qubit
    /// `i`), which may hold terms of any order. The function is called twice per basis state
    /// (once to find the range of costs and the storage, once to store them), from several
    /// threads for large `n`.
    ///
    /// # Errors
    ///
    /// As [`from_qubo`](Self::from_qubo), and [`SimError::NonFiniteCost`].
    pub fn from_fn(
        n: usize,
        cost: impl Fn(u64) -> f64 + Sync,
        config: SimConfig,
    ) -> Result<Self, SimError> {
        config.memory.check(n, STATE_BYTES_PER_AMPLITUDE + 1)?;
        Self::from_source(&FnSource { n, f: cost }, config)
    }

    /// A simulator whose cost is a polynomial over binary variables (terms of any order).
    ///
    /// # Errors
    ///
    /// As [`from_fn`](Self::from_fn), and an invalid polynomial.
    pub fn from_polynomial(poly: &Polynomial, config: SimConfig) -> Result<Self, SimError> {
        poly.check()?;
        config
            .memory
            .check(poly.num_vars(), STATE_BYTES_PER_AMPLITUDE + 1)?;
        Self::from_source(poly, config)
    }

    fn from_source(src: &impl Source, config: SimConfig) -> Result<Self, SimError> {
        let survey = diagonal::survey(src);
        if let Some((index, value)) = survey.non_finite {
            return Err(SimError::NonFiniteCost { index, value });
        }
        let kind = CostDiagonal::plan(&survey);
        Self::build(src, kind, survey.min, survey.max, config)
    }

    fn build(
        src: &impl Source,
        kind: Kind,
        min: f64,
        max: f64,
        config: SimConfig,
    ) -> Result<Self, SimError> {
        let n = src.num_qubits();
        config
            .memory
            .check(n, STATE_BYTES_PER_AMPLITUDE + kind.bytes_per_amplitude())?;
        let (rings, gates, free) = mixer_plan(n, &config.mixer)?;
        let initial = match config.initial {
            InitialState::Default if rings.is_empty() => InitialState::Plus,
            InitialState::Default => InitialState::OneHotUniform,
            InitialState::Basis(x) if n < 64 && x >> n != 0 => {
                return Err(SimError::Circuit(format!(
                    "basis state {x} needs more than {n} qubits"
                )));
            }
            other => other,
        };
        let pool = match config.threads {
            Some(t) => Some(Arc::new(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(t)
                    .build()
                    .map_err(|e| SimError::Config(format!("cannot start {t} threads: {e}")))?,
            )),
            None => None,
        };
        let threads = pool
            .as_ref()
            .map_or_else(rayon::current_num_threads, |p| p.current_num_threads());
        let parallel = n >= config.parallel_min_qubits && threads > 1;
        let layout = Layout::new(n, &config.kernel, parallel, threads);
        let diag = CostDiagonal::build(src, kind, min, max);
        let len = 1_usize << n;
        let mut sim = QaoaSimulator {
            n,
            diag,
            layout,
            pool,
            re: vec![0.0; len],
            im: vec![0.0; len],
            adjoint: None,
            table: PhaseTable::default(),
            padded: Vec::new(),
            free,
            gates,
            rings,
            initial,
            prepared: None,
            evaluations: 0,
            config,
        };
        if let Some(values) = level_values(&sim.diag) {
            sim.padded = values.to_vec();
            sim.padded.resize(table_len(&sim.diag), 0.0);
        }
        sim.reset();
        Ok(sim)
    }

    /// Number of qubits.
    pub fn num_qubits(&self) -> usize {
        self.n
    }

    /// The cost diagonal.
    pub fn diagonal(&self) -> &CostDiagonal {
        &self.diag
    }

    /// The settings.
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// Circuit evaluations so far (expectations and gradients, one each).
    pub fn evaluations(&self) -> u64 {
        self.evaluations
    }

    /// Whether layers run on several threads.
    pub fn is_parallel(&self) -> bool {
        self.layout.parallel
    }

    /// Whether the AVX2+FMA kernels are in use.
    pub fn uses_simd(&self) -> bool {
        self.layout.simd
    }

    /// Passes over the state that one transverse-field layer makes (the phase is fused into
    /// the first).
    pub fn passes_per_layer(&self) -> usize {
        self.layout.passes()
    }

    /// Bytes one transverse-field layer moves between memory and the cores: each pass reads
    /// and writes the state (16 bytes per amplitude each way), and the first also reads the
    /// diagonal.
    pub fn layer_bytes(&self) -> u64 {
        let len = 1_u64 << self.n;
        len * (2 * STATE_BYTES_PER_AMPLITUDE * self.layout.passes() as u64
            + self.diag.bytes_per_amplitude())
    }

    /// Bytes of all `2^n`-sized buffers allocated now (diagonal, state, adjoint state).
    pub fn allocated_bytes(&self) -> u64 {
        let len = 1_u64 << self.n;
        let adjoint = if self.adjoint.is_some() {
            STATE_BYTES_PER_AMPLITUDE
        } else {
            0
        };
        len * (self.diag.bytes_per_amplitude() + STATE_BYTES_PER_AMPLITUDE + adjoint)
    }

    /// The parameters of the circuit whose output the state holds (`p = 0`: the initial
    /// state), or `None` after a gradient (which runs the circuit backwards) or [`layer`].
    ///
    /// [`layer`]: Self::layer
    pub fn prepared(&self) -> Option<&QaoaParams> {
        self.prepared.as_ref()
    }

    /// Runs `f` on the simulator's pool, if it has one.
    fn install<R: Send>(&mut self, f: impl FnOnce(&mut Self) -> R + Send) -> R {
        match self.pool.clone() {
            Some(pool) => pool.install(|| f(self)),
            None => f(self),
        }
    }

    /// Writes the initial state.
    pub fn reset(&mut self) {
        self.install(Self::write_initial);
        self.prepared = Some(QaoaParams {
            gammas: Vec::new(),
            betas: Vec::new(),
        });
    }

    fn write_initial(&mut self) {
        let n = self.n;
        let parallel = self.layout.parallel;
        match self.initial {
            InitialState::Plus | InitialState::Default => {
                let amp = plus_amplitude(n);
                kernel::fill_real(parallel, &mut self.re, &mut self.im, |_| amp);
            }
            InitialState::Basis(x) => {
                let x = x as usize;
                kernel::fill_real(parallel, &mut self.re, &mut self.im, |i| {
                    if i == x { 1.0 } else { 0.0 }
                });
            }
            InitialState::OneHotUniform => {
                let masks: Vec<(usize, f64)> = self
                    .rings
                    .iter()
                    .map(|r| {
                        (
                            r.iter().fold(0, |m, &q| m | 1 << q),
                            1.0 / (r.len() as f64).sqrt(),
                        )
                    })
                    .collect();
                let free = self.free.count_ones() as usize;
                let base = plus_amplitude(free);
                kernel::fill_real(parallel, &mut self.re, &mut self.im, |x| {
                    masks.iter().fold(base, |a, &(m, w)| {
                        if (x & m).is_power_of_two() {
                            a * w
                        } else {
                            0.0
                        }
                    })
                });
            }
        }
    }

    /// The expectation `<psi|D|psi>` of the circuit's output state, which stays in the
    /// simulator (for [`sample`](Self::sample) and [`amplitude`](Self::amplitude)).
    ///
    /// # Errors
    ///
    /// [`SimError::Params`] for invalid parameters.
    pub fn expectation(&mut self, params: &QaoaParams) -> Result<f64, SimError> {
        params.validate()?;
        self.evaluations += 1;
        let e = self.install(|s| s.forward(params, true));
        self.prepared = Some(params.clone());
        Ok(e)
    }

    /// Runs the circuit and leaves its output in the simulator, without the expectation.
    ///
    /// # Errors
    ///
    /// [`SimError::Params`] for invalid parameters.
    pub fn prepare(&mut self, params: &QaoaParams) -> Result<(), SimError> {
        params.validate()?;
        self.install(|s| s.forward(params, false));
        self.prepared = Some(params.clone());
        Ok(())
    }

    /// Applies one more layer `exp(-i beta B) exp(-i gamma D)` to the current state (for
    /// benchmarks and step-by-step use).
    pub fn layer(&mut self, gamma: f64, beta: f64) {
        self.install(|s| s.apply_layer(gamma, beta, false, false));
        self.prepared = None;
    }

    /// The expectation of the current state, without running a circuit.
    pub fn current_expectation(&mut self) -> f64 {
        self.install(Self::expectation_pass)
    }

    fn expectation_pass(&mut self) -> f64 {
        let op = PassA {
            phase: PhaseOp::Skip,
            table: &self.table,
            mix: Mix::Tan(0.0),
            mask: 0,
            fixup: None,
            accumulate: true,
        };
        with_diag(&self.diag, &self.padded, |d| {
            d.pass_a(&self.layout, &op, &mut self.re, &mut self.im)
        })
    }

    /// Fills the phase table for `gamma`.
    fn set_table(&mut self, gamma: f64) {
        self.table.set(
            gamma,
            level_values(&self.diag).unwrap_or(&[]),
            table_len(&self.diag),
        );
    }

    /// The whole circuit; returns `<D>` when `accumulate`.
    fn forward(&mut self, params: &QaoaParams, accumulate: bool) -> f64 {
        let p = params.p();
        let fused_init = self.initial == InitialState::Plus && p > 0;
        if !fused_init {
            self.write_initial();
        }
        let mut e = 0.0;
        for l in 0..p {
            let last = l + 1 == p;
            e = self.apply_layer(
                params.gammas[l],
                params.betas[l],
                fused_init && l == 0,
                accumulate && last,
            );
        }
        if p == 0 && accumulate {
            e = self.expectation_pass();
        }
        e
    }

    /// One layer; with `init`, the state is taken to be `|+>^n` (not read); with
    /// `accumulate`, returns `<D>` of the result.
    fn apply_layer(&mut self, gamma: f64, beta: f64, init: bool, accumulate: bool) -> f64 {
        self.set_table(gamma);
        let (mix, g) = Mix::for_beta(beta);
        // The scaled rotations leave out g per rotated qubit: put g^k back in the last pass.
        let scale = cpow(g, self.free.count_ones());
        let fused_acc = accumulate && self.gates.is_empty();
        let groups = self.layout.groups.clone();
        let group_mask =
            |group: &crate::kernel::Group| (self.free >> group.q0) & ((1 << group.k) - 1);
        let last_group = groups
            .iter()
            .enumerate()
            .rev()
            .find(|(gi, group)| group_mask(group) != 0 || (fused_acc && gi + 1 == groups.len()))
            .map(|(gi, _)| gi);
        let phase = if init {
            PhaseOp::InitPlus(plus_amplitude(self.n))
        } else {
            PhaseOp::Apply
        };
        let op = PassA {
            phase,
            table: &self.table,
            mix,
            mask: self.free & self.layout.low_mask(),
            fixup: last_group.is_none().then_some(scale),
            accumulate: fused_acc && groups.is_empty(),
        };
        let (layout, re, im) = (&self.layout, &mut self.re, &mut self.im);
        let mut e = with_diag(&self.diag, &self.padded, |d| d.pass_a(layout, &op, re, im));
        for (gi, &group) in groups.iter().enumerate() {
            let mask = group_mask(&group);
            let acc = fused_acc && gi + 1 == groups.len();
            if mask == 0 && !acc {
                continue;
            }
            let fixup = (Some(gi) == last_group).then_some(scale);
            let op = PassB {
                group,
                mix,
                mask,
                fixup,
                accumulate: acc,
            };
            e = with_diag(&self.diag, &self.padded, |d| d.pass_b(layout, &op, re, im));
        }
        let (s, c) = beta.sin_cos();
        for &(a, b) in &self.gates {
            kernel::xy_gate(layout.parallel, (&mut *re, &mut *im), None, a, b, (c, s));
        }
        if accumulate && !fused_acc {
            e = self.expectation_pass();
        }
        e
    }

    /// The expectation and its gradient with respect to every angle, by the adjoint method
    /// (see the crate docs): one forward run, then one backward sweep over two states.
    /// Afterwards the simulator's state is no longer the circuit's output
    /// ([`prepared`](Self::prepared) is `None`).
    ///
    /// # Errors
    ///
    /// [`SimError::Params`]; [`SimError::InsufficientMemory`] or [`SimError::AboveCap`] when
    /// the second state (allocated on first use) does not fit.
    pub fn expectation_and_gradient(
        &mut self,
        params: &QaoaParams,
    ) -> Result<(f64, QaoaParams), SimError> {
        params.validate()?;
        if self.adjoint.is_none() {
            let per = 2 * STATE_BYTES_PER_AMPLITUDE + self.diag.bytes_per_amplitude();
            self.config.memory.check(self.n, per)?;
            let len = 1 << self.n;
            self.adjoint = Some((vec![0.0; len], vec![0.0; len]));
        }
        self.evaluations += 1;
        let out = self.install(|s| s.adjoint_gradient(params));
        self.prepared = None;
        Ok(out)
    }

    fn adjoint_gradient(&mut self, params: &QaoaParams) -> (f64, QaoaParams) {
        let p = params.p();
        let e = self.forward(params, true);
        let mut grad = QaoaParams {
            gammas: vec![0.0; p],
            betas: vec![0.0; p],
        };
        let Some((lr, li)) = self.adjoint.as_mut() else {
            unreachable!("allocated by the caller")
        };
        let layout = &self.layout;
        let groups = layout.groups.clone();
        let mut need_lambda = true;
        if !self.gates.is_empty() && p > 0 {
            // l = D p, before undoing the XY gates.
            let op = PassAPair {
                init_lambda: true,
                rot: (1.0, 0.0),
                mask: 0,
                unphase: None,
            };
            with_diag(&self.diag, &self.padded, |d| {
                d.pass_a_pair(
                    layout,
                    &op,
                    (&mut self.re, &mut self.im),
                    (&mut lr[..], &mut li[..]),
                )
            });
            need_lambda = false;
        }
        for l in (0..p).rev() {
            let (s, c) = (-params.betas[l]).sin_cos();
            let mut gb = 0.0;
            for &(a, b) in self.gates.iter().rev() {
                gb += kernel::xy_gate(
                    layout.parallel,
                    (&mut self.re, &mut self.im),
                    Some((&mut lr[..], &mut li[..])),
                    a,
                    b,
                    (c, s),
                );
            }
            for &group in groups.iter().rev() {
                let mask = (self.free >> group.q0) & ((1 << group.k) - 1);
                if mask == 0 {
                    continue;
                }
                let op = PassBPair {
                    group,
                    rot: (c, s),
                    mask,
                    init_lambda: need_lambda,
                };
                need_lambda = false;
                gb += with_diag(&self.diag, &self.padded, |d| {
                    d.pass_b_pair(
                        layout,
                        &op,
                        (&mut self.re, &mut self.im),
                        (&mut lr[..], &mut li[..]),
                    )
                });
            }
            if l > 0 {
                self.table.set(
                    -params.gammas[l],
                    level_values(&self.diag).unwrap_or(&[]),
                    table_len(&self.diag),
                );
            }
            let op = PassAPair {
                init_lambda: need_lambda,
                rot: (c, s),
                mask: self.free & layout.low_mask(),
                unphase: (l > 0).then_some(&self.table),
            };
            need_lambda = false;
            let (gb_low, gd) = with_diag(&self.diag, &self.padded, |d| {
                d.pass_a_pair(
                    layout,
                    &op,
                    (&mut self.re, &mut self.im),
                    (&mut lr[..], &mut li[..]),
                )
            });
            grad.betas[l] = 2.0 * (gb + gb_low);
            grad.gammas[l] = 2.0 * gd;
        }
        (e, grad)
    }

    /// The expectation of any diagonal observable `f` in the current state:
    /// `sum_x |a_x|^2 f(x)`, for example the cut of one edge or a constraint's violation.
    pub fn observable_expectation(&self, f: impl Fn(u64) -> f64 + Sync) -> f64 {
        let bl = 1_usize << self.layout.block_bits;
        let one = |(b, (re, im)): (usize, (&[f64], &[f64]))| {
            re.iter()
                .zip(im)
                .enumerate()
                .map(|(k, (r, i))| (r * r + i * i) * f((b * bl + k) as u64))
                .fold(0.0, |a, x| a + x)
        };
        let parts: Vec<f64> = if self.layout.parallel {
            let run = || {
                self.re
                    .par_chunks(bl)
                    .zip(self.im.par_chunks(bl))
                    .enumerate()
                    .map(one)
                    .collect()
            };
            match &self.pool {
                Some(pool) => pool.install(run),
                None => run(),
            }
        } else {
            self.re
                .chunks(bl)
                .zip(self.im.chunks(bl))
                .enumerate()
                .map(one)
                .collect()
        };
        parts.into_iter().fold(0.0, |a, x| a + x)
    }

    /// The amplitude of basis state `x` in the current state.
    ///
    /// # Panics
    ///
    /// If `x >= 2^n`.
    pub fn amplitude(&self, x: u64) -> Complex64 {
        Complex64::new(self.re[x as usize], self.im[x as usize])
    }

    /// The current state, as complex amplitudes (a copy; for small registers).
    pub fn state(&self) -> Vec<Complex64> {
        self.re
            .iter()
            .zip(&self.im)
            .map(|(&r, &i)| Complex64::new(r, i))
            .collect()
    }

    /// The probability of every basis state in the current state.
    pub fn probabilities(&self) -> Vec<f64> {
        self.re
            .iter()
            .zip(&self.im)
            .map(|(r, i)| r * r + i * i)
            .collect()
    }

    /// `<psi|psi>` of the current state (1 up to rounding).
    pub fn norm_squared(&self) -> f64 {
        block_sums(&self.re, &self.im, 1 << self.layout.block_bits)
            .iter()
            .sum()
    }

    /// `shots` basis states drawn from the current state's distribution, with a seeded
    /// `ChaCha8` stream: the same seed gives the same draws. Costs one pass over the state plus
    /// `O(shots log shots)`.
    pub fn sample(&self, shots: usize, seed: u64) -> Vec<u64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let bl = 1_usize << self.layout.block_bits;
        let sums = block_sums(&self.re, &self.im, bl);
        let total: f64 = sums.iter().sum();
        let mut draws: Vec<(f64, usize)> = (0..shots)
            .map(|k| {
                (
                    (rng.next_u64() >> 11) as f64 * (1.0 / (1_u64 << 53) as f64) * total,
                    k,
                )
            })
            .collect();
        draws.sort_by(|a, b| a.0.total_cmp(&b.0));
        let len = self.re.len();
        let prob = |i: usize| self.re[i] * self.re[i] + self.im[i] * self.im[i];
        let mut out = vec![0_u64; shots];
        let (mut i, mut cum) = (0_usize, 0.0_f64);
        for (u, k) in draws {
            loop {
                let block = i / bl;
                if i % bl == 0 && block + 1 < sums.len() && cum + sums[block] <= u {
                    cum += sums[block];
                    i += bl;
                } else if i + 1 < len && cum + prob(i) <= u {
                    cum += prob(i);
                    i += 1;
                } else {
                    break;
                }
            }
            out[k] = i as u64;
        }
        out
    }

    /// The best of `shots` sampled basis states (lowest cost to minimize, highest to
    /// maximize; ties go to the smallest index), mapped to the model's variables. `None` when
    /// `shots` is 0.
    pub fn best_sample(&self, shots: usize, seed: u64, sense: Sense) -> Option<Sample> {
        let draws = self.sample(shots, seed);
        let mut best: Option<(u64, f64)> = None;
        for &x in &draws {
            let c = self.diag.value(x);
            best = match best {
                Some((bx, bc)) if !(sense.better(c, bc) || (c == bc && x < bx)) => Some((bx, bc)),
                _ => Some((x, c)),
            };
        }
        let (index, cost) = best?;
        Some(Sample {
            index,
            cost,
            count: draws.iter().filter(|&&x| x == index).count(),
            assignment: (0..self.n).map(|i| (index >> i) & 1 == 1).collect(),
        })
    }
}

/// `2^(-n/2)`.
fn plus_amplitude(n: usize) -> f64 {
    (0.5_f64).powf(n as f64 / 2.0)
}

fn level_values(d: &CostDiagonal) -> Option<&[f64]> {
    match d.storage() {
        Storage::Levels8 { values, .. } | Storage::Levels16 { values, .. } => Some(values),
        Storage::Dense(_) => None,
    }
}

/// Entries of the phase table: the range of the level index type.
fn table_len(d: &CostDiagonal) -> usize {
    match d.storage() {
        Storage::Levels8 { .. } => 1 << 8,
        Storage::Levels16 { .. } => 1 << 16,
        Storage::Dense(_) => 0,
    }
}

/// Calls `f` with the kernels' view of the diagonal (`padded`: its levels padded to
/// [`table_len`]).
fn with_diag<R>(d: &CostDiagonal, padded: &[f64], f: impl FnOnce(&dyn DiagDispatch) -> R) -> R {
    match d.storage() {
        Storage::Levels8 { idx, .. } => f(&Levels::<u8, 256> {
            idx,
            values: fixed(padded),
        }),
        Storage::Levels16 { idx, .. } => f(&Levels::<u16, 65_536> {
            idx,
            values: fixed(padded),
        }),
        Storage::Dense(d) => f(&Dense { d }),
    }
}

fn fixed<const N: usize>(v: &[f64]) -> &[f64; N] {
    v.try_into().expect("padded to the index range")
}

/// `sum |a|^2` per block of `bl` amplitudes.
fn block_sums(re: &[f64], im: &[f64], bl: usize) -> Vec<f64> {
    let one = |(r, i): (&[f64], &[f64])| r.iter().zip(i).map(|(r, i)| r * r + i * i).sum::<f64>();
    if re.len() >= 1 << 16 {
        re.par_chunks(bl).zip(im.par_chunks(bl)).map(one).collect()
    } else {
        re.chunks(bl).zip(im.chunks(bl)).map(one).collect()
    }
}

/// The rings, the XY gates of one layer, and the qubits of the transverse field.
type MixerPlan = (Vec<Vec<usize>>, Vec<(usize, usize)>, u64);

/// Validates the mixer against the register and plans its gates.
fn mixer_plan(n: usize, mixer: &Mixer) -> Result<MixerPlan, SimError> {
    let all = if n >= 64 { u64::MAX } else { (1_u64 << n) - 1 };
    let Mixer::XyRings(rings) = mixer else {
        return Ok((Vec::new(), Vec::new(), all));
    };
    let mut used = 0_u64;
    let mut gates = Vec::new();
    let mut odd_gates = Vec::new();
    let mut closing = Vec::new();
    for ring in rings {
        if ring.len() < 2 {
            return Err(SimError::Circuit(format!(
                "an XY ring needs at least 2 qubits, got {ring:?}"
            )));
        }
        for &q in ring {
            if q >= n {
                return Err(SimError::Circuit(format!(
                    "ring qubit {q} out of range 0..{n}"
                )));
            }
            if used >> q & 1 == 1 {
                return Err(SimError::Circuit(format!(
                    "qubit {q} is in more than one ring position"
                )));
            }
            used |= 1 << q;
        }
        let len = ring.len();
        if len == 2 {
            gates.push((ring[0], ring[1]));
            continue;
        }
        for k in 0..len {
            let pair = (ring[k], ring[(k + 1) % len]);
            if len % 2 == 1 && k == len - 1 {
                closing.push(pair);
            } else if k % 2 == 0 {
                gates.push(pair);
            } else {
                odd_gates.push(pair);
            }
        }
    }
    gates.extend(odd_gates);
    gates.extend(closing);
    Ok((rings.clone(), gates, all & !used))
}

/// The diagonal views the kernels are instantiated for, behind one object-safe door so that
/// `with_diag` can hand any of them to the same closure.
pub(crate) trait DiagDispatch {
    fn pass_a(&self, layout: &Layout, op: &PassA<'_>, re: &mut [f64], im: &mut [f64]) -> f64;
    fn pass_b(&self, layout: &Layout, op: &PassB, re: &mut [f64], im: &mut [f64]) -> f64;
    fn pass_a_pair(
        &self,
        layout: &Layout,
        op: &PassAPair<'_>,
        p: (&mut [f64], &mut [f64]),
        l: (&mut [f64], &mut [f64]),
    ) -> (f64, f64);
    fn pass_b_pair(
        &self,
        layout: &Layout,
        op: &PassBPair,
        p: (&mut [f64], &mut [f64]),
        l: (&mut [f64], &mut [f64]),
    ) -> f64;
}

impl<D: Diag> DiagDispatch for D {
    fn pass_a(&self, layout: &Layout, op: &PassA<'_>, re: &mut [f64], im: &mut [f64]) -> f64 {
        kernel::pass_a(layout, self, op, re, im)
    }
    fn pass_b(&self, layout: &Layout, op: &PassB, re: &mut [f64], im: &mut [f64]) -> f64 {
        kernel::pass_b(layout, self, op, re, im)
    }
    fn pass_a_pair(
        &self,
        layout: &Layout,
        op: &PassAPair<'_>,
        p: (&mut [f64], &mut [f64]),
        l: (&mut [f64], &mut [f64]),
    ) -> (f64, f64) {
        kernel::pass_a_pair(layout, self, op, p, l)
    }
    fn pass_b_pair(
        &self,
        layout: &Layout,
        op: &PassBPair,
        p: (&mut [f64], &mut [f64]),
        l: (&mut [f64], &mut [f64]),
    ) -> f64 {
        kernel::pass_b_pair(layout, self, op, p, l)
    }
}
