//! Property tests of the model and the solvers, with exact enumeration as ground truth.

use proptest::prelude::*;
use qorch_qubo::{
    Budget, ExactSolver, FlipState, Qubo, QuboBuilder, SolveOptions, Solver, SolverKind,
};

/// A random model: `n` variables, each pair coupled with probability `density`, integer-ish
/// coefficients (so that ties and plateaus occur, as in real problems).
fn model(max_n: usize) -> impl Strategy<Value = Qubo> {
    (1..=max_n, 0.1..0.9_f64, any::<u64>()).prop_map(|(n, density, seed)| {
        let mut s = seed | 1;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let mut b = QuboBuilder::new(n);
        for i in 0..n {
            b.add_linear(i, (next() % 21) as f64 - 10.0);
            for j in (i + 1)..n {
                if (next() % 1000) as f64 / 1000.0 < density {
                    b.add_quadratic(
                        i,
                        j,
                        (next() % 21) as f64 - 10.0 + 0.5 * (next() % 2) as f64,
                    );
                }
            }
        }
        b.add_offset((next() % 7) as f64);
        b.build().unwrap()
    })
}

fn assignment(n: usize, bits: u64) -> Vec<bool> {
    (0..n).map(|i| (bits >> (i % 64)) & 1 == 1).collect()
}

proptest! {
    #[test]
    fn flip_delta_equals_energy_difference(q in model(24), bits in any::<u64>(), i in any::<prop::sample::Index>()) {
        let x = assignment(q.num_vars(), bits);
        let i = i.index(q.num_vars());
        let mut y = x.clone();
        y[i] = !y[i];
        let want = q.energy(&y) - q.energy(&x);
        prop_assert!((q.flip_delta(&x, i) - want).abs() < 1e-9);
    }

    #[test]
    fn flip_state_stays_consistent(q in model(24), bits in any::<u64>(), flips in prop::collection::vec(any::<prop::sample::Index>(), 0..200)) {
        let mut s = FlipState::new(&q, assignment(q.num_vars(), bits));
        for f in flips {
            let i = f.index(q.num_vars());
            let d = s.delta(i);
            let before = s.energy();
            s.flip(i);
            prop_assert!((s.energy() - before - d).abs() < 1e-9);
        }
        prop_assert!((s.energy() - q.energy(s.assignment())).abs() < 1e-6);
        for i in 0..q.num_vars() {
            prop_assert!((s.delta(i) - q.flip_delta(s.assignment(), i)).abs() < 1e-6);
        }
    }

    #[test]
    fn ising_round_trip_preserves_energies(q in model(16), bits in any::<u64>()) {
        let ising = q.to_ising();
        let x = assignment(q.num_vars(), bits);
        let s: Vec<i8> = x.iter().map(|&b| if b { 1 } else { -1 }).collect();
        prop_assert!((q.energy(&x) - ising.energy(&s)).abs() < 1e-9);
        let back = ising.to_qubo();
        prop_assert!((back.energy(&x) - q.energy(&x)).abs() < 1e-9);
    }

    #[test]
    fn clamped_subproblem_agrees_with_the_full_model(q in model(20), bits in any::<u64>(), sub_bits in any::<u64>(), pick in any::<u64>()) {
        let n = q.num_vars();
        let x = assignment(n, bits);
        let vars: Vec<usize> = (0..n).filter(|i| (pick >> i) & 1 == 1).collect();
        let sub = q.clamped_subproblem(&vars, &x);
        let fast = FlipState::new(&q, x.clone()).clamped_subproblem(&vars);
        let y = assignment(vars.len(), sub_bits);
        let mut full = x.clone();
        for (k, &v) in vars.iter().enumerate() {
            full[v] = y[k];
        }
        prop_assert!((sub.energy(&y) - q.energy(&full)).abs() < 1e-9);
        prop_assert!((fast.energy(&y) - q.energy(&full)).abs() < 1e-9);
    }

    #[test]
    fn dense_and_triplet_constructions_agree(q in model(10), bits in any::<u64>()) {
        let dense = Qubo::from_dense(&q.to_dense_upper()).unwrap();
        let x = assignment(q.num_vars(), bits);
        prop_assert!((dense.energy(&x) + q.offset() - q.energy(&x)).abs() < 1e-9);
    }
}

proptest! {
    // Each case runs every solver; fewer cases keep the suite quick.
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn every_solver_finds_the_optimum_of_small_models(q in model(20), seed in any::<u64>()) {
        let exact = ExactSolver::default().solve(&q, &SolveOptions::default()).unwrap();
        let tol = 1e-9 * q.max_abs_coefficient().max(1.0);
        for kind in SolverKind::ALL {
            if kind == SolverKind::Descent {
                continue; // a local method: checked below
            }
            let sol = kind.build().solve(&q, &SolveOptions::new(Budget::sweeps(2_000), seed)).unwrap();
            prop_assert!((sol.energy - q.energy(&sol.assignment)).abs() < 1e-9);
            prop_assert!(sol.energy <= exact.energy + tol, "{kind}: {} > optimum {}", sol.energy, exact.energy);
        }
        // Descent ends in a local minimum: no single flip improves.
        let sol = SolverKind::Descent.build().solve(&q, &SolveOptions::new(Budget::default(), seed)).unwrap();
        for i in 0..q.num_vars() {
            prop_assert!(q.flip_delta(&sol.assignment, i) >= -tol);
        }
    }
}

#[test]
fn solvers_are_deterministic_for_a_seed() {
    let mut b = QuboBuilder::new(60);
    for i in 0..60 {
        b.add_linear(i, ((i * 17) % 13) as f64 - 6.0);
        b.add_quadratic(i, (i * 11 + 5) % 60, ((i * 3) % 7) as f64 - 3.0);
        b.add_quadratic(i, (i * 29 + 1) % 60, 2.0);
    }
    let q = b.build().unwrap();
    for kind in SolverKind::ALL {
        if kind == SolverKind::Exact {
            continue;
        }
        let opts = SolveOptions::new(Budget::sweeps(300), 99);
        let a = kind.build().solve(&q, &opts).unwrap();
        let b = kind.build().solve(&q, &opts).unwrap();
        assert_eq!(a.assignment, b.assignment, "{kind}");
        assert_eq!(a.sweeps, b.sweeps, "{kind}");
    }
}

#[test]
fn target_energy_and_time_limit_stop_the_search() {
    let g =
        qorch_qubo::Graph::new(200, (0..200).map(|i| (i, (i + 1) % 200, 1.0)).collect()).unwrap();
    let q = g.max_cut_qubo();
    for kind in [
        SolverKind::Sa,
        SolverKind::Tabu,
        SolverKind::Pt,
        SolverKind::Decompose,
    ] {
        let budget = Budget::time(std::time::Duration::from_secs(20)).with_target(-150.0);
        let sol = kind
            .build()
            .solve(&q, &SolveOptions::new(budget, 3))
            .unwrap();
        assert!(sol.energy <= -150.0, "{kind}");
        assert!(sol.seconds < 20.0);
        let budget = Budget::time(std::time::Duration::from_millis(100));
        let sol = kind
            .build()
            .solve(&q, &SolveOptions::new(budget, 3))
            .unwrap();
        assert!(
            sol.seconds < 5.0,
            "{kind} overran its time limit: {}",
            sol.seconds
        );
        assert!(!sol.trace.is_empty());
    }
}

/// A time limit beyond what an `Instant` can hold (`Duration::MAX`) is no deadline, never a
/// panic on `Instant + Duration`; the sweep budget still ends the run.
#[test]
fn huge_time_limits_do_not_overflow_deadlines() {
    let mut b = QuboBuilder::new(4);
    b.add_linear(0, -1.0)
        .add_quadratic(0, 1, 2.0)
        .add_quadratic(2, 3, -1.5);
    let q = b.build().unwrap();
    let budget = Budget {
        sweeps: Some(5),
        time_limit: Some(std::time::Duration::MAX),
        target_energy: None,
    };
    for kind in SolverKind::ALL {
        let sol = kind
            .build()
            .solve(&q, &SolveOptions::new(budget, 1))
            .unwrap();
        assert!(sol.energy.is_finite(), "{kind}");
    }
}

/// Coefficients whose absolute values sum past `Qubo::MAX_ABS_SUM` are refused when the
/// model is built, so no solver ever sees an energy that could overflow.
#[test]
fn models_beyond_the_magnitude_bound_are_refused() {
    let mut b = QuboBuilder::new(2);
    b.add_linear(0, 6e99).add_linear(1, 6e99);
    assert!(matches!(
        b.build(),
        Err(qorch_qubo::ModelError::TooLarge { .. })
    ));
    let mut b = QuboBuilder::new(2);
    b.add_quadratic(0, 1, 1e308).add_quadratic(1, 0, 1e308);
    assert!(matches!(
        b.build(),
        Err(qorch_qubo::ModelError::TooLarge { .. })
    ));
    let mut b = QuboBuilder::new(2);
    b.add_linear(0, 4e99).add_linear(1, 4e99);
    assert!(b.build().is_ok());
}
