//! Whole simulations: reproducibility, message accounting, faults, re-clustering, scenario
//! errors, and the report's contract.

use qorch_sim::{Fault, FaultKind, Scenario, SimError, run};

/// A small, light scenario (debug builds run the tests).
fn small(agents: usize, clusters: usize, rounds: u64) -> Scenario {
    let mut s = Scenario {
        name: "test".into(),
        rounds,
        workers: 1,
        faults: Vec::new(),
        ..Scenario::default()
    };
    s.topology.agents = agents;
    s.topology.clusters = clusters;
    s.topology.fanout = 2;
    s.pools.count = 6;
    s.behaviour.message_work = 50;
    s.behaviour.tick_work = 200;
    s.solver.effort = 5.0;
    s.clustering.every = 2;
    s
}

#[test]
fn one_worker_and_the_same_seed_give_the_same_report_byte_for_byte() {
    let mut s = small(600, 4, 4);
    s.faults = vec![
        Fault {
            round: 2,
            kind: FaultKind::AgentPanic,
            count: 3,
        },
        Fault {
            round: 3,
            kind: FaultKind::SubclusterLoss,
            count: 1,
        },
    ];
    let a = run(&s, &mut |_| {}).unwrap().report.to_json();
    let b = run(&s, &mut |_| {}).unwrap().report.to_json();
    assert_eq!(a, b);
    s.seed += 1;
    let c = run(&s, &mut |_| {}).unwrap().report.to_json();
    assert_ne!(a, c, "another seed, another run");
}

#[test]
fn every_message_is_handled_or_reported_and_faults_are_survived() {
    let mut s = small(800, 4, 4);
    s.workers = 2;
    s.faults = vec![
        Fault {
            round: 2,
            kind: FaultKind::AgentPanic,
            count: 5,
        },
        Fault {
            round: 3,
            kind: FaultKind::SubclusterLoss,
            count: 1,
        },
    ];
    let out = run(&s, &mut |_| {}).unwrap();
    let r = &out.report;
    assert_eq!(r.faults.agent_panics, 5);
    assert_eq!(
        r.messages.restarts, 5,
        "each panicking agent restarted once"
    );
    assert_eq!(r.faults.subclusters_lost, 1);
    assert!(r.faults.agents_lost > 0);
    assert_eq!(r.messages.unaccounted, 0, "{:?}", r.messages);
    assert!(r.messages.handled > 0 && r.messages.dead_letters >= 5);
    // The plain loop does the same work, minus what the lost sub-cluster would have received.
    assert_eq!(
        r.messages.baseline_handled + r.messages.dead_letters,
        r.messages.sent + r.faults.agent_panics
    );
    // After the loss, the rounds allocate to the survivors only.
    assert_eq!(r.per_round[1].agents, 800);
    assert_eq!(r.per_round[2].agents as u64, 800 - r.faults.agents_lost);
    for round in &r.per_round {
        assert!(round.served <= round.agents);
        assert!(round.objective <= round.bound + 1e-9, "{round:?}");
    }
    // Timings are reported with more than one worker.
    assert!(!r.timings_omitted);
    assert!(r.wall_seconds.is_some() && r.communication_overhead.is_some());
    assert_eq!(r.round_latency_seconds.len(), 4);
}

#[test]
fn the_report_has_the_documented_keys() {
    let mut s = small(300, 3, 2);
    s.workers = 2;
    let out = run(&s, &mut |_| {}).unwrap();
    let v: serde_json::Value = serde_json::from_str(&out.report.to_json()).unwrap();
    for key in [
        "agents",
        "clusters",
        "rounds",
        "wall_seconds",
        "allocation_efficiency",
        "utilization",
        "fairness",
        "unmet_demand",
        "communication_overhead",
        "round_latency_seconds",
        "churn",
        "forecast_error",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    assert_eq!(v["agents"], 300);
    assert_eq!(v["round_latency_seconds"].as_array().unwrap().len(), 2);
    let e = v["allocation_efficiency"].as_f64().unwrap();
    assert!(e > 0.5 && e <= 1.0 + 1e-9, "{e}");
    // The outputs: report, timings, scenario, five plots.
    let dir = tempfile::tempdir().unwrap();
    // A previous run's files are replaced; report.json is written last, whole, and no
    // temporary file is left.
    std::fs::write(dir.path().join("report.json"), "old").unwrap();
    std::fs::write(dir.path().join("scenario.toml"), "old").unwrap();
    let files = qorch_sim::write_outputs(dir.path(), &s, &out).unwrap();
    assert_eq!(files.len(), 8, "{files:?}");
    assert_eq!(files.last().map(String::as_str), Some("report.json"));
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 8, "{names:?}");
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
    let svg = std::fs::read_to_string(dir.path().join("utilization.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("unmet demand"));
    let back: qorch_sim::Report =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
            .unwrap();
    assert_eq!(back, out.report);
    let again = Scenario::from_path(&dir.path().join("scenario.toml")).unwrap();
    assert_eq!(
        again, s,
        "scenario.toml reads back as the scenario that ran"
    );
}

#[test]
fn reclustering_brings_misplaced_agents_back_to_their_peers() {
    let mut s = small(1_200, 6, 7);
    s.ticks_per_round = 4;
    s.topology.misplaced = 0.3;
    s.behaviour.locality = 1.0;
    s.clustering.every = 2;
    let r = run(&s, &mut |_| {}).unwrap().report;
    assert_eq!(r.reclustering.len(), 3);
    assert!(r.reclustering.iter().map(|p| p.moved).sum::<u64>() > 0);
    assert!(
        r.cross_cluster_traffic.end < 0.7 * r.cross_cluster_traffic.start,
        "{:?}",
        r.cross_cluster_traffic
    );
    assert_eq!(r.messages.unaccounted, 0);
    // Without re-clustering nothing moves.
    s.clustering.every = 0;
    let r0 = run(&s, &mut |_| {}).unwrap().report;
    assert_eq!(r0.cross_cluster_traffic.start, r0.cross_cluster_traffic.end);
}

#[test]
fn scenarios_needing_more_memory_than_available_are_refused() {
    let mut s = Scenario::default();
    s.topology.agents = 9_000_000;
    // 9M agents at 4 KiB, and the default tree's 500 nodes at 48 KiB.
    let err = s.check_memory(Some(16 << 30)).unwrap_err().to_string();
    assert!(err.contains("36888576000 bytes"), "{err}");
    assert!(err.contains("500 cluster nodes"), "{err}");
    assert!(s.check_memory(Some(64 << 30)).is_ok());
    assert!(s.check_memory(None).is_ok());
    // Few agents in a vast tree: the nodes alone are refused, before the run.
    let mut s = Scenario::default();
    (s.topology.agents, s.topology.clusters, s.topology.depth) = (1_000_000, 200_000, 1);
    assert_eq!(s.nodes(), 1_000_000);
    let err = s.check_memory(Some(16 << 30)).unwrap_err().to_string();
    assert!(err.contains("1000000 cluster nodes"), "{err}");
    assert!(err.contains("topology.clusters"), "{err}");
    assert!(s.check_memory(Some(1 << 40)).is_ok());
}

#[test]
fn long_lines_are_quoted_short_in_toml_errors() {
    let toml = format!("[topology]\nagents = {}", "9".repeat(100_000));
    let msg = scenario_error(&toml);
    assert!(msg.len() < 1000, "{} bytes", msg.len());
}

fn scenario_error(toml: &str) -> String {
    match Scenario::from_toml_str(toml) {
        Err(e @ (SimError::Toml(_) | SimError::Scenario(_))) => e.to_string(),
        other => panic!("expected a scenario error for {toml:?}, got {other:?}"),
    }
}

#[test]
fn bad_scenarios_get_errors_that_name_the_field() {
    for (toml, expected) in [
        ("rounds = 0", "rounds must be at least 1"),
        ("[topology]\nagnets = 5", "agnets"),
        ("rounds = \"ten\"", "rounds"),
        ("[topology]\nagents = 10\nclusters = 20", "leaf nodes"),
        ("[pools]\nload = -1.0", "pools.load"),
        ("[pools]\nkinds = [\"cpu\", \"cpu\"]", "duplicates"),
        (
            "[behaviour]\ncompute = 0.0\nchatty = 0.0\nidle = 0.0",
            "all zero",
        ),
        ("[solver]\nname = \"magic\"", "unknown solver `magic`"),
        ("[solver]\nqaoa_max_vars = 40", "2^n"),
        (
            "rounds = 3\n[[faults]]\nround = 5\nkind = \"agent_panic\"",
            "faults[0].round 5",
        ),
        (
            "[[faults]]\nround = 1\nkind = \"meteor\"",
            "unknown variant `meteor`",
        ),
        ("[workload]\nburst_factor = 0.5", "burst_factor"),
        (
            "[pools]\ncapacity = [1.0]",
            "pools.capacity has 1 amounts for 3 kinds",
        ),
        (
            "[pools]\ncapacity = [1.0, -2.0, 3.0]",
            "finite and positive",
        ),
        ("duration_ticks = 0", "duration_ticks"),
        (
            "[pools]\ncount = 1000000000000",
            "pools.count 1000000000000 is above the limit of 100000",
        ),
        (
            "[topology]\nagents = 100000000",
            "topology.agents 100000000 is above the limit of 10000000",
        ),
        (
            "rounds = 1000000000",
            "rounds 1000000000 is above the limit",
        ),
        ("ticks_per_round = 10000000", "ticks_per_round 10000000"),
        (
            "rounds = 1000000\nticks_per_round = 1000000",
            "agent-ticks, above the limit",
        ),
        ("[behaviour]\nmessage_work = 4000000000", "message_work"),
        (
            "[pools]\ncapacity = [1e308, 1.0, 1.0]",
            "pools.capacity amount 1e308 is above the limit of 1e15",
        ),
    ] {
        let msg = scenario_error(toml);
        assert!(msg.contains(expected), "{toml:?}: {msg}");
    }
    let missing = Scenario::from_path(std::path::Path::new("/nonexistent/scenario.toml"));
    assert!(matches!(missing, Err(SimError::Io { .. })));
}

#[test]
fn the_default_scenario_is_the_documented_one() {
    let s = Scenario::default();
    assert_eq!((s.topology.agents, s.topology.clusters), (10_000, 100));
    s.validate().unwrap();
    // A file takes the default for every value it leaves out, except the faults: a file
    // without any injects none.
    let empty = Scenario::from_toml_str("").unwrap();
    assert_eq!(
        empty,
        Scenario {
            faults: Vec::new(),
            ..s.clone()
        }
    );
    assert_eq!(Scenario::from_toml_str(&s.to_toml()).unwrap(), s);
}

#[test]
fn the_shipped_scenario_files_are_valid_and_default_toml_is_the_default() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let s =
                Scenario::from_path(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            if path.file_name().is_some_and(|n| n == "default.toml") {
                assert_eq!(s, Scenario::default(), "regenerate with --print-scenario");
            }
            seen += 1;
        }
    }
    assert!(seen >= 3);
}

#[test]
fn explicit_capacities_and_a_simulated_duration() {
    let mut s = small(300, 3, 99);
    s.duration_ticks = Some(5);
    s.ticks_per_round = 2;
    // Generous pools: everyone is served in full.
    s.pools.capacity = Some(vec![1_000.0, 1_000.0, 1_000.0]);
    let r = run(&s, &mut |_| {}).unwrap().report;
    assert_eq!((r.rounds, r.ticks), (3, 6), "ceil(5 / 2) rounds of 2 ticks");
    assert!(
        r.request_unmet_demand < 1e-9 && r.utilization < 0.3,
        "{r:?}"
    );
}
