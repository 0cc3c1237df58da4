//! The simulator against hand-computed amplitudes and an independent, deliberately naive
//! reference (one gate at a time on a complex vector), over every kernel layout.

use num_complex::Complex64;
use qorch_qaoa::{
    InitialState, KernelConfig, MemoryPolicy, Mixer, Polynomial, QaoaParams, QaoaSimulator, Sense,
    SimConfig, SimError,
};
use qorch_qubo::{Qubo, QuboBuilder};

/// The naive reference: `exp(-i g D)` then `exp(-i b X_q)` qubit by qubit, or XY gates.
fn reference(
    diag: &[f64],
    params: &QaoaParams,
    init: &[Complex64],
    rings: &[(usize, usize)],
    free: &[usize],
) -> Vec<Complex64> {
    let mut psi = init.to_vec();
    let i = Complex64::i();
    for (g, b) in params.gammas.iter().zip(&params.betas) {
        for (a, d) in psi.iter_mut().zip(diag) {
            *a *= (-i * g * d).exp();
        }
        let (c, s) = (b.cos(), b.sin());
        for &q in free {
            let bit = 1 << q;
            for x in 0..psi.len() {
                if x & bit == 0 {
                    let (a0, a1) = (psi[x], psi[x | bit]);
                    psi[x] = c * a0 - i * s * a1;
                    psi[x | bit] = c * a1 - i * s * a0;
                }
            }
        }
        for &(u, v) in rings {
            for x in 0..psi.len() {
                if (x >> u) & 1 == 1 && (x >> v) & 1 == 0 {
                    let y = x ^ (1 << u) ^ (1 << v);
                    let (a0, a1) = (psi[x], psi[y]);
                    psi[x] = c * a0 - i * s * a1;
                    psi[y] = c * a1 - i * s * a0;
                }
            }
        }
    }
    psi
}

fn expect(psi: &[Complex64], diag: &[f64]) -> f64 {
    psi.iter().zip(diag).map(|(a, d)| a.norm_sqr() * d).sum()
}

/// A reproducible pseudo-random stream.
fn stream(seed: u64) -> impl FnMut() -> f64 {
    let mut s = seed | 1;
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1_u64 << 53) as f64
    }
}

fn random_qubo(n: usize, seed: u64, integer: bool) -> Qubo {
    let mut r = stream(seed);
    let mut b = QuboBuilder::new(n);
    let coef = |r: &mut dyn FnMut() -> f64| {
        let v = r() * 6.0 - 3.0;
        if integer { v.round() } else { v }
    };
    for i in 0..n {
        b.add_linear(i, coef(&mut r));
        for j in (i + 1)..n {
            if r() < 0.4 {
                b.add_quadratic(i, j, coef(&mut r));
            }
        }
    }
    b.build().unwrap()
}

fn random_params(p: usize, seed: u64) -> QaoaParams {
    let mut r = stream(seed);
    QaoaParams::new(
        (0..p).map(|_| r() * 1.2 - 0.6).collect(),
        (0..p).map(|_| r() * 1.6 - 0.8).collect(),
    )
    .unwrap()
}

/// Kernel settings that exercise every code path on small registers: tiny cache blocks
/// (many high-qubit passes, short runs), the defaults, with and without SIMD and threads.
fn configs() -> Vec<SimConfig> {
    let mut out = Vec::new();
    for (block_bits, min_run_bits) in [(13, 5), (3, 1), (4, 2), (5, 1)] {
        for simd in [false, true] {
            for parallel_min_qubits in [0, 64] {
                out.push(SimConfig {
                    kernel: KernelConfig {
                        block_bits,
                        min_run_bits,
                        simd,
                    },
                    parallel_min_qubits,
                    ..SimConfig::default()
                });
            }
        }
    }
    out
}

fn assert_close(a: f64, b: f64, tol: f64, what: &str) {
    assert!((a - b).abs() <= tol * (1.0 + b.abs()), "{what}: {a} vs {b}");
}

#[test]
fn one_qubit_layer_matches_hand_computed_amplitudes() {
    // D = diag(0, 1): the cost of x0 = 1 is 1. |+> -> (1, e^{-ig})/sqrt2 -> mixer.
    let mut sim = QaoaSimulator::from_fn(1, |x| x as f64, SimConfig::default()).unwrap();
    let (g, b) = (0.9_f64, 0.4_f64);
    let e = sim
        .expectation(&QaoaParams::new(vec![g], vec![b]).unwrap())
        .unwrap();
    let h = std::f64::consts::FRAC_1_SQRT_2;
    let i = Complex64::i();
    let phase = (-i * g).exp();
    let a0 = h * (b.cos() - i * b.sin() * phase);
    let a1 = h * (b.cos() * phase - i * b.sin());
    assert!((sim.amplitude(0) - a0).norm() < 1e-15);
    assert!((sim.amplitude(1) - a1).norm() < 1e-15);
    assert_close(e, a1.norm_sqr(), 1e-15, "expectation");
    // <D> = 1/2 + sin(2b) sin(g) / 2 for this circuit.
    assert_close(
        e,
        0.5 + 0.5 * (2.0 * b).sin() * g.sin(),
        1e-14,
        "closed form",
    );
}

#[test]
fn two_qubit_edge_matches_hand_computed_amplitudes() {
    // One edge, cost = cut. After the phase: (1, e^-ig, e^-ig, 1)/2. At beta = pi/4 the mixer
    // is (I - iX)/sqrt2 per qubit.
    let g = qorch_qubo::Graph::new(2, vec![(0, 1, 1.0)]).unwrap();
    let mut sim = QaoaSimulator::for_max_cut(&g, SimConfig::default()).unwrap();
    let gamma = 0.3_f64;
    sim.prepare(&QaoaParams::new(vec![gamma], vec![std::f64::consts::FRAC_PI_4]).unwrap())
        .unwrap();
    let i = Complex64::i();
    let w = (-i * gamma).exp();
    let v = [Complex64::new(1.0, 0.0), w, w, Complex64::new(1.0, 0.0)].map(|a| a / 2.0);
    // (I - iX) x (I - iX) / 2 applied to v.
    let m = |x: usize, y: usize| -> Complex64 {
        let flips = (x ^ y).count_ones();
        (-i).powu(flips) / 2.0
    };
    for x in 0..4 {
        let want: Complex64 = (0..4).map(|y| m(x, y) * v[y]).sum();
        assert!(
            (sim.amplitude(x as u64) - want).norm() < 1e-15,
            "amplitude {x}"
        );
    }
}

#[test]
fn every_layout_matches_the_reference_state_and_expectation() {
    for n in [1, 2, 3, 5, 7, 9, 10] {
        for integer in [true, false] {
            let q = random_qubo(n, 11 + n as u64, integer);
            let diag: Vec<f64> = (0..1_u64 << n)
                .map(|x| q.energy(&(0..n).map(|i| (x >> i) & 1 == 1).collect::<Vec<_>>()))
                .collect();
            let params = random_params(3, n as u64);
            let plus = vec![Complex64::new((0.5_f64).powf(n as f64 / 2.0), 0.0); 1 << n];
            let all: Vec<usize> = (0..n).collect();
            let want = reference(&diag, &params, &plus, &[], &all);
            let want_e = expect(&want, &diag);
            for config in configs() {
                let mut sim = QaoaSimulator::from_qubo(&q, config.clone()).unwrap();
                let e = sim.expectation(&params).unwrap();
                assert_close(e, want_e, 1e-12, &format!("n={n} {config:?}"));
                for (x, a) in want.iter().enumerate() {
                    assert!(
                        (sim.amplitude(x as u64) - a).norm() < 1e-12,
                        "n={n} x={x} {config:?}"
                    );
                }
                // Layer by layer from the initial state gives the same state.
                sim.reset();
                for (g, b) in params.gammas.iter().zip(&params.betas) {
                    sim.layer(*g, *b);
                }
                assert_close(sim.current_expectation(), want_e, 1e-12, "layer by layer");
                assert_close(sim.norm_squared(), 1.0, 1e-12, "norm");
            }
        }
    }
}

#[test]
fn gradients_match_finite_differences_in_every_layout() {
    for n in [1, 4, 8, 9] {
        let q = random_qubo(n, 3 * n as u64, false);
        let params = random_params(3, 100 + n as u64);
        for config in configs() {
            let mut sim = QaoaSimulator::from_qubo(&q, config.clone()).unwrap();
            let (e, grad) = sim.expectation_and_gradient(&params).unwrap();
            assert_close(e, sim.expectation(&params).unwrap(), 1e-13, "value");
            check_gradient(&mut sim, &params, &grad, &format!("n={n} {config:?}"));
        }
    }
}

/// Central differences, step `h = 1e-5`: truncation error `O(h^2)` ~ 1e-10 times the third
/// derivative, rounding ~ 1e-16 / h.
fn check_gradient(sim: &mut QaoaSimulator, params: &QaoaParams, grad: &QaoaParams, what: &str) {
    let h = 1e-5;
    let theta = params.to_vec();
    let g = grad.to_vec();
    for k in 0..theta.len() {
        let mut up = theta.clone();
        up[k] += h;
        let mut down = theta.clone();
        down[k] -= h;
        let fd = (sim.expectation(&QaoaParams::from_slice(&up)).unwrap()
            - sim.expectation(&QaoaParams::from_slice(&down)).unwrap())
            / (2.0 * h);
        assert!(
            (fd - g[k]).abs() < 1e-7 * (1.0 + fd.abs()),
            "{what}: d/dtheta_{k}: adjoint {} vs fd {fd}",
            g[k]
        );
    }
}

#[test]
fn xy_ring_mixer_matches_the_reference_and_keeps_one_hot() {
    // Two one-hot groups (rings of 3 and 4) and one free qubit.
    let n = 8;
    let rings = vec![vec![0, 1, 2], vec![3, 5, 6, 4]];
    let q = random_qubo(n, 77, false);
    let diag: Vec<f64> = (0..1_u64 << n)
        .map(|x| q.energy(&(0..n).map(|i| (x >> i) & 1 == 1).collect::<Vec<_>>()))
        .collect();
    let params = random_params(2, 5);
    // Gate order of the parity ring mixer.
    let gates = [(0, 1), (3, 5), (6, 4), (1, 2), (5, 6), (4, 3), (2, 0)];
    let one_hot = |x: usize| {
        f64::from(u8::from(
            (x & 0b111).is_power_of_two() && (x & 0b111_1000).is_power_of_two(),
        ))
    };
    let norm = (3.0 * 4.0 * 2.0_f64).sqrt();
    let init: Vec<Complex64> = (0..1 << n)
        .map(|x| Complex64::new(one_hot(x) / norm, 0.0))
        .collect();
    let want = reference(&diag, &params, &init, &gates, &[7]);
    for config in configs() {
        let config = SimConfig {
            mixer: Mixer::XyRings(rings.clone()),
            ..config
        };
        let mut sim = QaoaSimulator::from_qubo(&q, config.clone()).unwrap();
        let e = sim.expectation(&params).unwrap();
        assert_close(e, expect(&want, &diag), 1e-12, "xy expectation");
        for x in 0..1 << n {
            assert!((sim.amplitude(x as u64) - want[x]).norm() < 1e-12);
            if one_hot(x) == 0.0 {
                assert!(
                    sim.amplitude(x as u64).norm() < 1e-15,
                    "left the one-hot subspace"
                );
            }
        }
        let (_, grad) = sim.expectation_and_gradient(&params).unwrap();
        check_gradient(&mut sim, &params, &grad, &format!("xy {config:?}"));
    }
}

#[test]
fn basis_initial_state_and_higher_order_terms() {
    let mut poly = Polynomial::new(5);
    poly.add_term(&[0, 1, 2], 3.0)
        .add_term(&[2, 3, 4], -2.0)
        .add_term(&[1, 4], 0.5)
        .add_offset(1.0);
    let diag: Vec<f64> = (0..32).map(|x| poly.value(x)).collect();
    let params = random_params(2, 9);
    let mut init = vec![Complex64::new(0.0, 0.0); 32];
    init[0b10110] = Complex64::new(1.0, 0.0);
    let want = reference(&diag, &params, &init, &[], &[0, 1, 2, 3, 4]);
    let config = SimConfig {
        initial: InitialState::Basis(0b10110),
        ..SimConfig::default()
    };
    let mut sim = QaoaSimulator::from_polynomial(&poly, config).unwrap();
    assert_close(
        sim.expectation(&params).unwrap(),
        expect(&want, &diag),
        1e-13,
        "poly",
    );
    let (_, grad) = sim.expectation_and_gradient(&params).unwrap();
    check_gradient(&mut sim, &params, &grad, "basis start");
    // The closure path gives the same diagonal.
    let sim2 = QaoaSimulator::from_fn(5, |x| poly.value(x), SimConfig::default()).unwrap();
    assert_eq!(sim2.diagonal().to_vec(), diag);
}

#[test]
fn depth_zero_is_the_initial_state() {
    let q = random_qubo(6, 1, true);
    let mut sim = QaoaSimulator::from_qubo(&q, SimConfig::default()).unwrap();
    let e = sim
        .expectation(&QaoaParams::new(vec![], vec![]).unwrap())
        .unwrap();
    let (mean, _) = sim.diagonal().mean_and_variance();
    assert_close(e, mean, 1e-13, "uniform mean");
    let (e2, grad) = sim
        .expectation_and_gradient(&QaoaParams::new(vec![], vec![]).unwrap())
        .unwrap();
    assert_close(e2, mean, 1e-13, "gradient value");
    assert_eq!(grad.p(), 0);
}

#[test]
fn invalid_requests_are_typed_errors() {
    let q = random_qubo(3, 1, true);
    let mut sim = QaoaSimulator::from_qubo(&q, SimConfig::default()).unwrap();
    let bad = QaoaParams {
        gammas: vec![0.1, 0.2],
        betas: vec![0.1],
    };
    assert!(matches!(sim.expectation(&bad), Err(SimError::Params(_))));
    let ring_err = QaoaSimulator::from_qubo(
        &q,
        SimConfig {
            mixer: Mixer::XyRings(vec![vec![0, 5]]),
            ..SimConfig::default()
        },
    );
    assert!(matches!(ring_err, Err(SimError::Circuit(_))));
    let nan = QaoaSimulator::from_fn(
        3,
        |x| if x == 5 { f64::NAN } else { 0.0 },
        SimConfig::default(),
    );
    assert!(matches!(nan, Err(SimError::NonFiniteCost { index: 5, .. })));
    // The gradient's second state is checked against the cap too.
    let config = SimConfig {
        memory: MemoryPolicy::capped(17 << 10),
        ..SimConfig::default()
    };
    let mut sim = QaoaSimulator::from_qubo(&random_qubo(10, 2, true), config).unwrap();
    let err = sim
        .expectation_and_gradient(&random_params(1, 1))
        .unwrap_err();
    assert!(
        matches!(err, SimError::AboveCap { needed_bytes, .. } if needed_bytes == 33 << 10),
        "{err}"
    );
}

#[test]
fn memory_refusal_above_the_available_memory_names_the_bytes() {
    // 2^36 amplitudes need > 1 TiB: refused from MemAvailable, before any allocation.
    let Some(avail) = qorch_qaoa::available_memory_bytes() else {
        eprintln!("skipped: no /proc/meminfo on this system");
        return;
    };
    let err = QaoaSimulator::from_fn(36, |_| 0.0, SimConfig::default()).unwrap_err();
    match err {
        SimError::InsufficientMemory {
            needed_bytes,
            available_bytes,
            max_qubits,
            ..
        } => {
            assert_eq!(
                needed_bytes,
                17 << 36,
                "the smallest form: state and a one-byte diagonal"
            );
            assert!(available_bytes <= avail * 2);
            assert!(max_qubits < 36);
            assert!(err.to_string().contains(&needed_bytes.to_string()));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn sampling_follows_the_probabilities() {
    use statrs::distribution::{ChiSquared, ContinuousCDF};
    let q = random_qubo(4, 21, false);
    let mut sim = QaoaSimulator::from_qubo(&q, SimConfig::default()).unwrap();
    sim.prepare(&random_params(2, 4)).unwrap();
    let probs = sim.probabilities();
    let shots = 200_000;
    let draws = sim.sample(shots, 42);
    assert_eq!(draws, sim.sample(shots, 42), "seeded");
    assert_ne!(draws, sim.sample(shots, 43));
    let mut counts = [0_usize; 16];
    for &x in &draws {
        counts[x as usize] += 1;
    }
    // Pearson's chi-squared over the 16 outcomes (all have probability > 0 here).
    let chi2: f64 = counts
        .iter()
        .zip(&probs)
        .map(|(&c, &p)| {
            let e = p * shots as f64;
            (c as f64 - e).powi(2) / e
        })
        .sum();
    let p_value = 1.0 - ChiSquared::new(15.0).unwrap().cdf(chi2);
    assert!(p_value > 1e-4, "chi2 = {chi2}, p = {p_value}");
    // States of zero probability are never drawn.
    let config = SimConfig {
        initial: InitialState::Basis(0b0101),
        ..SimConfig::default()
    };
    let mut sim = QaoaSimulator::from_qubo(&q, config).unwrap();
    sim.reset();
    assert!(sim.sample(1000, 1).iter().all(|&x| x == 0b0101));
}

#[test]
fn best_sample_maps_to_the_qubo_variables() {
    let q = random_qubo(8, 5, true);
    let mut sim = QaoaSimulator::from_qubo(&q, SimConfig::default()).unwrap();
    sim.prepare(&random_params(2, 8)).unwrap();
    let best = sim.best_sample(500, 3, Sense::Minimize).unwrap();
    assert_eq!(best.cost, q.energy(&best.assignment));
    for x in sim.sample(500, 3) {
        assert!(sim.diagonal().value(x) >= best.cost);
    }
    assert!(best.count >= 1);
    assert!(sim.best_sample(0, 3, Sense::Minimize).is_none());
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let q = random_qubo(15, 8, false);
    let params = random_params(2, 2);
    let mut values = Vec::new();
    for threads in [1, 2, 3] {
        let config = SimConfig {
            threads: Some(threads),
            parallel_min_qubits: 0,
            kernel: KernelConfig {
                block_bits: 8,
                ..KernelConfig::default()
            },
            ..SimConfig::default()
        };
        let mut sim = QaoaSimulator::from_qubo(&q, config).unwrap();
        let e = sim.expectation(&params).unwrap();
        let (_, g) = sim.expectation_and_gradient(&params).unwrap();
        values.push((
            e.to_bits(),
            g.to_vec().iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        ));
    }
    assert!(
        values.windows(2).all(|w| w[0] == w[1]),
        "bitwise equal across 1, 2 and 3 threads"
    );
}
