//! The `qorch simulate` and `qorch bench overhead` command-line contracts: flags, files,
//! JSON keys, reproducibility, exit codes.

mod common;

use common::qorch;

fn ok_stdout(args: &[&str]) -> String {
    let out = qorch(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

const SMALL: [&str; 6] = ["--agents", "300", "--clusters", "3", "--rounds", "2"];

#[test]
fn simulate_json_prints_the_report_with_the_documented_keys() {
    let mut args = vec!["simulate"];
    args.extend(SMALL);
    args.extend(["--workers", "2", "--seed", "7", "--json"]);
    let out = ok_stdout(&args);
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
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
    ] {
        assert!(v.get(key).is_some(), "missing {key}: {v}");
    }
    assert_eq!(v["agents"], 300);
    assert_eq!(v["clusters"], 3);
    assert_eq!(v["rounds"], 2);
    assert_eq!(v["seed"], 7);
    assert_eq!(v["round_latency_seconds"].as_array().unwrap().len(), 2);
    assert!(v["wall_seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(v["messages"]["unaccounted"], 0);
}

#[test]
fn simulate_out_writes_the_report_and_plots_and_one_worker_reproduces_it() {
    let dir = tempfile::tempdir().unwrap();
    let reports: Vec<Vec<u8>> = ["a", "b"]
        .iter()
        .map(|name| {
            let out = dir.path().join(name);
            let mut args = vec!["simulate"];
            args.extend(SMALL);
            args.extend(["--workers", "1", "--out", out.to_str().unwrap()]);
            let table = ok_stdout(&args);
            assert!(table.contains("allocation efficiency"), "{table}");
            for f in [
                "report.json",
                "timings.json",
                "scenario.toml",
                "utilization.svg",
                "round_latency.svg",
                "solver_energy.svg",
                "cluster_sizes.svg",
                "message_rates.svg",
            ] {
                assert!(out.join(f).is_file(), "{f} missing");
            }
            std::fs::read(out.join("report.json")).unwrap()
        })
        .collect();
    assert_eq!(reports[0], reports[1], "same seed, one worker: same bytes");
    // The scenario written next to the report runs again, to the same report.
    let again = dir.path().join("again");
    let scenario = dir.path().join("a/scenario.toml");
    ok_stdout(&[
        "simulate",
        scenario.to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read(again.join("report.json")).unwrap(),
        reports[0]
    );
}

#[test]
fn flags_override_the_scenario_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.toml");
    std::fs::write(
        &file,
        "rounds = 5\nseed = 3\n[topology]\nagents = 5000\nclusters = 50\n",
    )
    .unwrap();
    let toml = ok_stdout(&[
        "simulate",
        file.to_str().unwrap(),
        "--agents",
        "400",
        "--solver",
        "sa",
        "--print-scenario",
    ]);
    let s: toml::Table = toml.parse().unwrap();
    assert_eq!(s["topology"]["agents"].as_integer(), Some(400));
    assert_eq!(s["topology"]["clusters"].as_integer(), Some(50));
    assert_eq!(s["rounds"].as_integer(), Some(5));
    assert_eq!(s["solver"]["name"].as_str(), Some("sa"));
}

#[test]
fn bad_input_exits_2_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[topology]\nagents = 0\n").unwrap();
    for (args, expected) in [
        (vec!["simulate", file.to_str().unwrap()], "topology.agents"),
        (vec!["simulate", "/nonexistent.toml"], "/nonexistent.toml"),
        (
            vec!["simulate", "--solver", "magic"],
            "unknown solver `magic`",
        ),
        (
            vec!["simulate", "--agents", "10", "--clusters", "20"],
            "leaf nodes",
        ),
    ] {
        let out = qorch(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{args:?}: {err}");
    }
}

#[test]
fn bench_overhead_prints_the_comparison() {
    let out = ok_stdout(&[
        "bench",
        "overhead",
        "--agents",
        "400",
        "--clusters",
        "4",
        "--ticks",
        "3",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    for key in [
        "agents",
        "workers",
        "ticks",
        "messages",
        "runtime_seconds",
        "baseline_seconds",
        "overhead",
    ] {
        assert!(v.get(key).is_some(), "missing {key}: {v}");
    }
    assert!(v["messages"].as_u64().unwrap() > 0);
    assert!(v["runtime_seconds"].as_f64().unwrap() > 0.0);
}

#[test]
fn an_unwritable_out_directory_fails_before_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let under_a_file = file.join("out");
    // The default scenario (10,000 agents) would run for a while: the check comes first.
    let out = qorch(&["simulate", "--out", under_a_file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the output directory"), "{err}");
    assert!(!under_a_file.exists());
}

#[test]
fn agent_panics_are_logged_at_warn_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("panics.toml");
    std::fs::write(
        &file,
        "name = \"panics\"\nrounds = 2\nworkers = 1\n\n[topology]\nagents = 200\nclusters = 2\n\n\
         [[faults]]\nround = 1\nkind = \"agent_panic\"\ncount = 2\n",
    )
    .unwrap();
    // The default log filter: no RUST_LOG.
    let out = common::command()
        .env_remove("RUST_LOG")
        .args(["simulate", file.to_str().unwrap(), "--json"])
        .output()
        .expect("qorch runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let restarts = err
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("agent failed: restarting it"))
        .count();
    assert_eq!(restarts, 2, "{err}");
}
