//! The `EnhancedQuboScheduler` end to end: flat assignment problems against brute force and
//! OR-Library optima, hierarchical rounds checked for feasibility, bounds and determinism,
//! and the typed errors of malformed or unsatisfiable problems.

use std::collections::HashMap;
use std::time::Duration;

use qorch_resources::{
    AgentId, ClusterId, Pool, PoolFilter, PoolId, ResourceKinds, ResourceRequest, ResourceVector,
};
use qorch_scheduler::{
    AgentSpec, AllocationProblem, AssignmentBuilder, AssignmentOptions, AssignmentProblem,
    AssignmentSolution, Cluster, CostModel, EnhancedQuboScheduler, GapSense, ScheduleError,
    SchedulerConfig, SyntheticConfig, read_gap,
};

fn scheduler() -> EnhancedQuboScheduler {
    EnhancedQuboScheduler::new(SchedulerConfig::default()).expect("default settings are valid")
}

/// A small seeded stream (the tests must not depend on rand's algorithms).
fn stream(seed: u64) -> impl FnMut() -> f64 {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 11) as f64 / (1_u64 << 53) as f64
    }
}

/// A random assignment problem: `items` items over `pools` pools of one kind, every item
/// optional (unserved is worth 0), integer values and demands.
fn random_problem(items: usize, pools: usize, seed: u64) -> AssignmentProblem {
    let mut r = stream(seed);
    let capacity: Vec<f64> = (0..pools).map(|_| (6.0 + 8.0 * r()).floor()).collect();
    let mut b = AssignmentBuilder::new(1, capacity);
    for _ in 0..items {
        let i = b.add_item(Some(0.0));
        for p in 0..pools {
            if r() < 0.8 {
                let value = (1.0 + 9.0 * r()).floor();
                let demand = (1.0 + 6.0 * r()).floor();
                b.add_option(i, p, value, &[demand]);
            }
        }
    }
    b.build().expect("random problems are valid")
}

/// The optimum by enumeration of every choice (`None` or an option) of every item.
fn brute_force(p: &AssignmentProblem) -> f64 {
    fn walk(p: &AssignmentProblem, i: usize, sol: &mut AssignmentSolution, best: &mut f64) {
        if i == p.num_items() {
            if p.is_feasible(sol) {
                *best = best.max(p.objective(sol));
            }
            return;
        }
        sol.choices[i] = None;
        walk(p, i + 1, sol, best);
        for k in 0..p.num_options_of(i) {
            sol.choices[i] = Some(k);
            walk(p, i + 1, sol, best);
        }
        sol.choices[i] = None;
    }
    let mut sol = AssignmentSolution {
        choices: vec![None; p.num_items()],
    };
    let mut best = f64::NEG_INFINITY;
    walk(p, 0, &mut sol, &mut best);
    best
}

#[test]
fn flat_solves_reach_the_brute_force_optimum() {
    let s = scheduler();
    for seed in 0..12 {
        let p = random_problem(7, 3, seed);
        let exact = brute_force(&p);
        let out = s
            .solve_assignment(&p, &AssignmentOptions::default())
            .expect("built problems solve");
        assert!(out.feasible, "seed {seed}: infeasible answer");
        assert!(
            p.is_feasible(&out.solution),
            "seed {seed}: claims feasibility wrongly"
        );
        assert_eq!(out.objective, p.objective(&out.solution), "seed {seed}");
        assert_eq!(out.objective, exact, "seed {seed}: not the optimum");
        assert!(
            out.bound >= exact - 1e-9,
            "seed {seed}: bound {} below the optimum {exact}",
            out.bound
        );
    }
}

/// Optimal values of `tests/data/gap{1,2,3}.txt` (OR-Library, maximization).
const GAP_OPTIMA: [(&str, [i64; 5]); 3] = [
    ("gap1", [336, 327, 339, 341, 326]),
    ("gap2", [434, 436, 420, 419, 428]),
    ("gap3", [580, 564, 573, 570, 564]),
];

#[test]
fn or_library_gap_problems_reach_their_optima() {
    let s = scheduler();
    for (name, optima) in GAP_OPTIMA {
        let path = format!("{}/tests/data/{name}.txt", env!("CARGO_MANIFEST_DIR"));
        let file = std::fs::File::open(&path).expect("test data is present");
        let instances = read_gap(file).expect("OR-Library files parse");
        assert_eq!(instances.len(), optima.len());
        for (k, (inst, &opt)) in instances.iter().zip(&optima).enumerate() {
            let p = inst.to_problem(GapSense::Max).expect("valid instance");
            // Stops at the optimum; the generous limit only guards against a regression
            // that never finds it (the assertion below then fails, it does not hang).
            let options = AssignmentOptions {
                target: Some(opt as f64),
                time_limit: Some(Duration::from_secs(20)),
                ..AssignmentOptions::default()
            };
            let out = s.solve_assignment(&p, &options).expect("solves");
            let (value, feasible) = inst.evaluate(&p, &out.solution);
            assert!(feasible, "{name} problem {}: infeasible", k + 1);
            assert_eq!(value, opt, "{name} problem {}", k + 1);
            assert!(
                out.bound >= opt as f64,
                "{name} problem {}: bound below optimum",
                k + 1
            );
        }
    }
}

/// Every grant of a round respects its pool filter, lies within [min, desired], and no pool
/// is over capacity in any kind.
fn check_feasible(problem: &AllocationProblem, out: &qorch_scheduler::ScheduleOutcome) {
    let specs: HashMap<AgentId, &AgentSpec> = all_agents(problem).map(|a| (a.id, a)).collect();
    assert_eq!(out.grants.len(), specs.len(), "every agent gets an answer");
    let k = problem.kinds.len();
    let mut load: HashMap<PoolId, Vec<f64>> = HashMap::new();
    let mut served = 0;
    for (agent, grant) in &out.grants {
        let spec = specs[agent];
        let Some(g) = grant else { continue };
        served += 1;
        assert!(
            spec.request.pools.allows(g.pool),
            "{agent} placed on a pool it may not use"
        );
        for r in 0..k {
            let amount = g.amount.amounts()[r];
            let lo = spec.request.min.amounts()[r];
            let hi = spec.request.desired.amounts()[r];
            assert!(
                amount >= lo - 1e-9 && amount <= hi + 1e-9,
                "{agent}: grant {amount} outside [{lo}, {hi}]"
            );
            load.entry(g.pool).or_insert_with(|| vec![0.0; k])[r] += amount;
        }
    }
    assert_eq!(served, out.served);
    for pool in &problem.pools {
        if let Some(l) = load.get(&pool.id) {
            for r in 0..k {
                let cap = pool.capacity.amounts()[r];
                assert!(
                    l[r] <= cap * (1.0 + 1e-9) + 1e-9,
                    "{} over capacity in kind {r}: {} > {cap}",
                    pool.id,
                    l[r]
                );
            }
        }
    }
}

fn all_agents(problem: &AllocationProblem) -> impl Iterator<Item = &AgentSpec> {
    fn sub<'a>(s: &'a qorch_scheduler::SubCluster, out: &mut Vec<&'a AgentSpec>) {
        out.extend(&s.agents);
        for t in &s.subclusters {
            sub(t, out);
        }
    }
    let mut v = Vec::new();
    for c in &problem.clusters {
        v.extend(&c.agents);
        for s in &c.subclusters {
            sub(s, &mut v);
        }
    }
    v.into_iter()
}

#[test]
fn hierarchical_rounds_are_feasible_bounded_and_consistent() {
    let s = scheduler();
    for (agents, clusters, subclusters, pools, load) in [
        (400, 4, 4, 10, 1.1),
        (600, 3, 0, 8, 0.9),
        (300, 2, 2, 5, 1.4),
        // More clusters and sub-clusters than pools: some groups get no share at all.
        (200, 6, 4, 2, 1.1),
    ] {
        let problem = SyntheticConfig {
            agents,
            clusters,
            subclusters,
            pools,
            load,
            ..SyntheticConfig::default()
        }
        .generate();
        let out = s
            .schedule(&problem, None)
            .expect("synthetic problems are valid");
        check_feasible(&problem, &out);
        let what = format!("{agents} agents, {clusters} clusters, load {load}");
        assert!(
            out.bound >= out.objective,
            "{what}: bound {} < objective {}",
            out.bound,
            out.objective
        );
        assert!(
            out.efficiency > 0.0 && out.efficiency <= 1.0,
            "{what}: efficiency {}",
            out.efficiency
        );
        let total = out.value - out.migration_cost - out.communication_cost;
        assert!(
            (total - out.objective).abs() <= 1e-9 * out.objective.abs().max(1.0),
            "{what}"
        );
        assert_eq!(out.served + out.unserved, agents);
        assert!(
            !out.subsolves.is_empty(),
            "{what}: every sub-solve is recorded"
        );
        for sub in &out.subsolves {
            assert!(
                sub.bound >= sub.objective - 1e-9 * sub.objective.abs().max(1.0),
                "{what}: {sub:?}"
            );
        }
    }
}

#[test]
fn the_same_seed_gives_the_same_round() {
    let problem = SyntheticConfig {
        agents: 500,
        clusters: 4,
        pools: 10,
        ..SyntheticConfig::default()
    }
    .generate();
    let a = scheduler().schedule(&problem, None).expect("valid");
    let b = scheduler().schedule(&problem, None).expect("valid");
    assert_eq!(a.grants, b.grants);
    assert_eq!(a.objective, b.objective);
    assert_eq!(a.bound, b.bound);
}

#[test]
fn the_round_does_not_depend_on_the_thread_count() {
    // Sub-clusters (levels solved side by side), affinity, and a polish whose bound runs
    // beside it: the outcome must be the same on one thread, on several, and with the
    // parallel levels switched off.
    let problem = SyntheticConfig {
        agents: 3_000,
        clusters: 6,
        subclusters: 3,
        pools: 12,
        load: 1.2,
        seed: 7,
        ..SyntheticConfig::default()
    }
    .generate();
    let on = |threads: usize, parallel: bool| {
        let s = EnhancedQuboScheduler::new(SchedulerConfig {
            seed: 11,
            parallel,
            ..SchedulerConfig::default()
        })
        .expect("valid settings");
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a thread pool")
            .install(|| s.schedule(&problem, None).expect("valid"))
    };
    let one = on(1, true);
    assert!(one.served > 0);
    for (threads, parallel) in [(4, true), (3, true), (2, false)] {
        let other = on(threads, parallel);
        let what = format!("{threads} threads, parallel {parallel}");
        assert_eq!(one.grants, other.grants, "{what}");
        assert_eq!(one.objective.to_bits(), other.objective.to_bits(), "{what}");
        assert_eq!(one.bound.to_bits(), other.bound.to_bits(), "{what}");
        assert_eq!(one.subsolves.len(), other.subsolves.len(), "{what}");
    }
}

fn one_agent_problem(min: f64, desired: f64, pools: PoolFilter) -> AllocationProblem {
    let kinds = ResourceKinds::from_names(["cpu"]);
    let request = ResourceRequest::new(
        ResourceVector::from(vec![min]),
        ResourceVector::from(vec![desired]),
        1.0,
        pools,
    )
    .expect("valid request");
    AllocationProblem {
        kinds,
        pools: vec![
            Pool::node(PoolId(0), "small", ResourceVector::from(vec![4.0])),
            Pool::node(PoolId(1), "large", ResourceVector::from(vec![16.0])),
        ],
        clusters: vec![Cluster {
            id: ClusterId(0),
            agents: vec![AgentSpec {
                id: AgentId(1),
                request,
                current: None,
            }],
            subclusters: Vec::new(),
        }],
        affinity: Vec::new(),
        costs: CostModel::default(),
    }
}

#[test]
fn unsatisfiable_and_malformed_problems_are_typed_errors() {
    let s = scheduler();
    // Fits the large pool only: served there.
    let ok = one_agent_problem(8.0, 10.0, PoolFilter::Any);
    let out = s.schedule(&ok, None).expect("satisfiable");
    assert_eq!(out.grants[0].1.as_ref().map(|g| g.pool), Some(PoolId(1)));
    // The same minimum restricted to the small pool can never be served.
    let only_small = one_agent_problem(8.0, 10.0, PoolFilter::Only(vec![PoolId(0)]));
    let err = s.schedule(&only_small, None).unwrap_err();
    assert!(
        matches!(
            err,
            ScheduleError::Unsatisfiable {
                agent: AgentId(1),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("can never be served"), "{err}");
    // A filter naming a pool that does not exist.
    let unknown = one_agent_problem(1.0, 2.0, PoolFilter::Only(vec![PoolId(9)]));
    let err = s.schedule(&unknown, None).unwrap_err();
    assert!(matches!(err, ScheduleError::UnknownPool { .. }), "{err:?}");
    // A negative cost coefficient.
    let mut bad = one_agent_problem(1.0, 2.0, PoolFilter::Any);
    bad.costs.migration = -1.0;
    let err = s.schedule(&bad, None).unwrap_err();
    assert!(matches!(err, ScheduleError::InvalidCost { .. }), "{err:?}");
    // No pools at all.
    let mut empty = one_agent_problem(1.0, 2.0, PoolFilter::Any);
    empty.pools.clear();
    assert!(s.schedule(&empty, None).is_err());
}

/// Two clusters of two sub-clusters, 40 agents asking for 80 cpu (at least 40) from pools of
/// 30 and 20: leaves must shrink and evict, and no grant may exceed a capacity.
fn tight_problem() -> AllocationProblem {
    let kinds = ResourceKinds::from_names(["cpu"]);
    let mut next = 0_u32;
    let mut agent = |cpu: f64| {
        next += 1;
        AgentSpec {
            id: AgentId(next),
            request: ResourceRequest::new(
                ResourceVector::from(vec![cpu / 2.0]),
                ResourceVector::from(vec![cpu]),
                1.0,
                PoolFilter::Any,
            )
            .expect("valid request"),
            current: None,
        }
    };
    let clusters = (0..2)
        .map(|c| Cluster {
            id: ClusterId(c),
            agents: Vec::new(),
            subclusters: (0..2)
                .map(|s| qorch_scheduler::SubCluster {
                    id: qorch_resources::SubClusterId(c * 2 + s),
                    agents: (0..10).map(|i| agent(1.0 + f64::from(i % 3))).collect(),
                    subclusters: Vec::new(),
                })
                .collect(),
        })
        .collect();
    AllocationProblem {
        kinds,
        pools: vec![
            Pool::node(PoolId(0), "a", ResourceVector::from(vec![30.0])),
            Pool::node(PoolId(1), "b", ResourceVector::from(vec![20.0])),
        ],
        clusters,
        affinity: Vec::new(),
        costs: CostModel::default(),
    }
}

#[test]
fn tight_rounds_never_exceed_a_capacity() {
    let problem = tight_problem();
    for seed in 0..8 {
        let s = EnhancedQuboScheduler::new(SchedulerConfig {
            seed,
            ..SchedulerConfig::default()
        })
        .expect("valid");
        let out = s.schedule(&problem, None).expect("valid problem");
        check_feasible(&problem, &out);
        assert!(out.served > 0, "seed {seed}: nothing served");
    }
}

fn agents_mut(problem: &mut AllocationProblem) -> Vec<&mut AgentSpec> {
    fn sub<'a>(s: &'a mut qorch_scheduler::SubCluster, out: &mut Vec<&'a mut AgentSpec>) {
        out.extend(s.agents.iter_mut());
        for t in &mut s.subclusters {
            sub(t, out);
        }
    }
    let mut v = Vec::new();
    for c in &mut problem.clusters {
        v.extend(c.agents.iter_mut());
        for s in &mut c.subclusters {
            sub(s, &mut v);
        }
    }
    v
}

#[test]
fn the_polish_brings_rounds_close_to_the_bound() {
    let config = |polish_passes| {
        EnhancedQuboScheduler::new(SchedulerConfig {
            polish_passes,
            ..SchedulerConfig::default()
        })
        .expect("valid")
    };
    let base = SyntheticConfig {
        agents: 2_000,
        clusters: 4,
        subclusters: 4,
        pools: 20,
        ..SyntheticConfig::default()
    }
    .generate();
    // The same round with priority weights of many distinct values (the polish then keeps
    // each pool's agents in sorted blocks instead of one sum per weight).
    let mut varied = base.clone();
    let mut next = stream(3);
    for a in agents_mut(&mut varied) {
        a.request.weight = 0.5 + 3.5 * next();
    }
    for (what, problem, floor) in [
        ("three weights", &base, 0.97),
        ("varied weights", &varied, 0.96),
    ] {
        let without = config(0).schedule(problem, None).expect("valid");
        let with = config(3).schedule(problem, None).expect("valid");
        check_feasible(problem, &with);
        assert!(
            with.objective >= without.objective,
            "{what}: polish lost objective: {} < {}",
            with.objective,
            without.objective
        );
        assert!(
            with.efficiency >= floor,
            "{what}: efficiency {} (without the polish {})",
            with.efficiency,
            without.efficiency
        );
        let polish = with
            .subsolves
            .iter()
            .find(|s| s.solver == "polish")
            .expect("the polish is recorded");
        assert!(
            polish.evaluations > 0 && polish.objective >= 0.0,
            "{polish:?}"
        );
        assert!(without.subsolves.iter().all(|s| s.solver != "polish"));
    }
}
