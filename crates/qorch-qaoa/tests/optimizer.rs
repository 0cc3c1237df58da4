//! The optimizer (strategies, methods, restarts, budget, history) and QAOA as a QUBO solver.

use qorch_qaoa::{
    History, InitStrategy, MemoryPolicy, Method, OptimizeStop, OptimizerConfig, QaoaOptimizer,
    QaoaParams, QaoaSolver, Sense, SimConfig,
};
use qorch_qubo::{
    Budget, ExactSolver, Qubo, QuboBuilder, SolveError, SolveOptions, Solver, StopReason,
};

fn stream(seed: u64) -> impl FnMut() -> f64 {
    let mut s = seed | 1;
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1_u64 << 53) as f64
    }
}

/// A small random QUBO with integer coefficients.
fn qubo(n: usize, seed: u64) -> Qubo {
    let mut r = stream(seed);
    let mut b = QuboBuilder::new(n);
    for i in 0..n {
        b.add_linear(i, (r() * 9.0).floor() - 4.0);
        for j in (i + 1)..n {
            if r() < 0.5 {
                b.add_quadratic(i, j, (r() * 9.0).floor() - 4.0);
            }
        }
    }
    b.build().unwrap()
}

#[test]
fn every_method_improves_on_its_start_and_records_every_iteration() {
    let q = qubo(8, 3);
    for method in [Method::Lbfgs, Method::Adam, Method::NelderMead] {
        let config = OptimizerConfig {
            method,
            init: InitStrategy::LinearRamp,
            max_iterations: 80,
            ..OptimizerConfig::default()
        };
        let mut opt = QaoaOptimizer::for_qubo(&q, SimConfig::default(), config).unwrap();
        let start = opt.initial_params(&InitStrategy::LinearRamp, 2).unwrap();
        let start_e = opt.evaluate(&start).unwrap();
        let result = opt.optimize(2).unwrap();
        assert!(
            result.expectation < start_e - 1e-3,
            "{method:?}: {} vs start {start_e}",
            result.expectation
        );
        let h = opt.history().records.clone();
        assert_eq!(h[0].iteration, 0);
        assert_eq!(h[0].params, start);
        assert!((h[0].expectation - start_e).abs() < 1e-12);
        // Each record's expectation is that of its parameters.
        for r in h.iter().step_by(7) {
            assert!((opt.evaluate(&r.params).unwrap() - r.expectation).abs() < 1e-10);
        }
        assert!(result.evaluations > 0);
    }
}

#[test]
fn lbfgs_converges_to_a_stationary_point() {
    let q = qubo(6, 8);
    let config = OptimizerConfig {
        init: InitStrategy::LinearRamp,
        max_iterations: 500,
        tolerance: 1e-7,
        ..OptimizerConfig::default()
    };
    let mut opt = QaoaOptimizer::for_qubo(&q, SimConfig::default(), config).unwrap();
    let result = opt.optimize(2).unwrap();
    assert_eq!(result.stop, OptimizeStop::Converged);
    let (_, grad) = opt
        .simulator()
        .expectation_and_gradient(&result.params)
        .unwrap();
    assert!(grad.to_vec().iter().all(|g| g.abs() < 1e-5), "{grad:?}");
}

#[test]
fn interp_optimizes_every_depth_up_to_p_and_restarts_are_seeded() {
    let q = qubo(7, 5);
    let config = OptimizerConfig {
        restarts: 2,
        seed: 9,
        max_iterations: 40,
        ..OptimizerConfig::default()
    };
    let run = |config: &OptimizerConfig| {
        let mut opt = QaoaOptimizer::for_qubo(&q, SimConfig::default(), config.clone()).unwrap();
        let result = opt.optimize(3).unwrap();
        (result, opt.history().clone())
    };
    let (a, ha) = run(&config);
    let (b, hb) = run(&config);
    assert_eq!(a.params, b.params, "same seed, same result");
    assert_eq!(ha, hb);
    assert_eq!(a.params.p(), 3);
    for p in 1..=3 {
        let starts: std::collections::BTreeSet<usize> = ha
            .records
            .iter()
            .filter(|r| r.p == p)
            .map(|r| r.start)
            .collect();
        assert_eq!(
            starts.into_iter().collect::<Vec<_>>(),
            [0, 1, 2],
            "depth {p}"
        );
    }
    let (c, _) = run(&OptimizerConfig { seed: 10, ..config });
    assert!(c.expectation.is_finite());
}

#[test]
fn the_history_saves_as_json() {
    let q = qubo(5, 2);
    let mut opt =
        QaoaOptimizer::for_qubo(&q, SimConfig::default(), OptimizerConfig::default()).unwrap();
    opt.optimize(2).unwrap();
    let path = std::env::temp_dir().join(format!("qorch-qaoa-history-{}.json", std::process::id()));
    opt.history().save_json(&path).unwrap();
    let back: History = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(&back, opt.history());
    assert!(back.records.iter().all(|r| r.params.p() == r.p));
}

#[test]
fn the_evaluation_budget_is_respected_and_the_depth_kept() {
    let q = qubo(8, 4);
    let config = OptimizerConfig {
        max_evaluations: Some(12),
        ..OptimizerConfig::default()
    };
    let mut opt = QaoaOptimizer::for_qubo(&q, SimConfig::default(), config).unwrap();
    let result = opt.optimize(4).unwrap();
    assert_eq!(result.stop, OptimizeStop::EvaluationLimit);
    assert_eq!(
        result.params.p(),
        4,
        "INTERP cut short still answers at the depth asked"
    );
    // The line search may finish its step: a few evaluations over the budget at most.
    assert!(result.evaluations <= 12 + 32, "{}", result.evaluations);
}

#[test]
fn bad_settings_are_errors() {
    let q = qubo(4, 1);
    let mut opt = QaoaOptimizer::for_qubo(
        &q,
        SimConfig::default(),
        OptimizerConfig {
            init: InitStrategy::FixedAngles,
            ..OptimizerConfig::default()
        },
    )
    .unwrap();
    assert!(opt.optimize(12).is_err(), "no table entry at p = 12");
    let given = InitStrategy::Given(QaoaParams::new(vec![0.1], vec![0.2]).unwrap());
    opt.set_config(OptimizerConfig {
        init: given,
        ..OptimizerConfig::default()
    });
    assert!(opt.optimize(2).is_err(), "depth mismatch");
    assert!(opt.optimize(1).is_ok());
    opt.set_config(OptimizerConfig {
        tolerance: 0.0,
        ..OptimizerConfig::default()
    });
    assert!(opt.optimize(1).is_err());
}

#[test]
fn the_ramp_points_downhill_for_minimization() {
    // A model whose optimum is all zeros from a strong field: the ramp's first step must
    // lower <E> below the uniform mean.
    let mut b = QuboBuilder::new(6);
    for i in 0..6 {
        b.add_linear(i, 1.0);
    }
    let q = b.build().unwrap();
    let mut opt =
        QaoaOptimizer::for_qubo(&q, SimConfig::default(), OptimizerConfig::default()).unwrap();
    let mean = opt
        .evaluate(&QaoaParams::new(vec![], vec![]).unwrap())
        .unwrap();
    let ramp = opt.initial_params(&InitStrategy::LinearRamp, 3).unwrap();
    assert!(opt.evaluate(&ramp).unwrap() < mean);
    assert_eq!(opt.sense(), Sense::Minimize);
}

#[test]
fn qaoa_solver_finds_optima_of_small_models() {
    let mut hits = 0;
    let trials = 6;
    for seed in 0..trials {
        let q = qubo(8, 100 + seed);
        let exact = ExactSolver::default()
            .solve(&q, &SolveOptions::default())
            .unwrap();
        let sol = QaoaSolver::default()
            .solve(&q, &SolveOptions::new(Budget::default(), seed))
            .unwrap();
        assert_eq!(sol.energy, q.energy(&sol.assignment));
        assert!(sol.energy >= exact.energy);
        assert!(sol.sweeps > 0);
        if sol.energy == exact.energy {
            hits += 1;
        }
    }
    // 1000 samples of an optimized p = 3 state over 256 states: the optimum is (nearly)
    // always among them.
    assert!(hits >= trials - 1, "{hits} of {trials}");
}

#[test]
fn qaoa_solver_reports_budget_and_size_limits() {
    let q = qubo(10, 7);
    let opts = SolveOptions::new(Budget::sweeps(5), 1);
    let sol = QaoaSolver::default().solve(&q, &opts).unwrap();
    assert_eq!(sol.stop, StopReason::SweepLimit);
    let target = SolveOptions::new(Budget::default().with_target(f64::INFINITY), 1);
    assert_eq!(
        QaoaSolver::default().solve(&q, &target).unwrap().stop,
        StopReason::TargetReached
    );
    let small = QaoaSolver {
        max_qubits: 8,
        ..QaoaSolver::default()
    };
    assert!(matches!(
        small.solve(&q, &SolveOptions::default()),
        Err(SolveError::TooLarge { n: 10, max: 8, .. })
    ));
    let capped = QaoaSolver {
        sim: SimConfig {
            memory: MemoryPolicy::capped(4 << 10),
            ..SimConfig::default()
        },
        ..QaoaSolver::default()
    };
    let err = capped.solve(&q, &SolveOptions::default()).unwrap_err();
    assert!(
        matches!(err, SolveError::TooLarge { n: 10, max, .. } if max < 10),
        "{err:?}"
    );
    let wrong = [true; 3];
    assert!(matches!(
        QaoaSolver::default().solve(&q, &SolveOptions::default().with_initial(&wrong)),
        Err(SolveError::InitialLength { .. })
    ));
    let empty = QuboBuilder::new(0).build().unwrap();
    assert_eq!(
        QaoaSolver::default()
            .solve(&empty, &SolveOptions::default())
            .unwrap()
            .assignment,
        Vec::<bool>::new()
    );
}

#[test]
fn the_solver_is_usable_as_a_trait_object() {
    fn assert_send_sync<T: Send + Sync>() {}
    let solvers: Vec<Box<dyn Solver>> = vec![
        Box::new(QaoaSolver::default()),
        Box::new(ExactSolver::default()),
    ];
    let q = qubo(6, 11);
    let energies: Vec<f64> = solvers
        .iter()
        .map(|s| s.solve(&q, &SolveOptions::default()).unwrap().energy)
        .collect();
    assert!(energies[0] >= energies[1]);
    assert_send_sync::<QaoaSolver>();
    assert_send_sync::<qorch_qaoa::QaoaSimulator>();
}
