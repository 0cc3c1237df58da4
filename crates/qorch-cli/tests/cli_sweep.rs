//! The `qorch sweep` command-line contract: the tables, resuming, and each bad input
//! refused before any run starts.

mod common;

use std::path::Path;

use common::qorch;

/// A scenario small enough that a run takes a fraction of a second.
const TINY: &str = r#"
name = "tiny"
rounds = 2
[topology]
agents = 24
clusters = 2
depth = 1
fanout = 2
[pools]
count = 3
[behaviour]
message_work = 100
tick_work = 1000
partners = 2
"#;

fn tiny(dir: &Path) -> String {
    let path = dir.join("tiny.toml");
    std::fs::write(&path, TINY).unwrap();
    path.to_str().unwrap().to_owned()
}

fn sweep_json(args: &[&str]) -> serde_json::Value {
    let out = qorch(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

fn csv(path: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect()
}

#[test]
fn a_sweep_writes_one_row_per_run_and_per_configuration_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = tiny(dir.path());
    let out = dir.path().join("out");
    let out_s = out.to_str().unwrap();
    let args = [
        "sweep",
        &scenario,
        "--set",
        "topology.agents=24,32",
        "--set",
        "pools.count=2,3",
        "--seeds",
        "1..2",
        "--jobs",
        "2",
        "--out",
        out_s,
        "--json",
    ];
    let v = sweep_json(&args);
    assert_eq!((v["runs"].as_u64(), v["ran"].as_u64()), (Some(8), Some(8)));
    assert_eq!(
        (v["skipped"].as_u64(), v["failed"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(v["summary"].as_array().unwrap().len(), 4);
    let first = &v["summary"][0];
    assert_eq!(first["settings"]["topology.agents"], "24");
    assert_eq!(first["settings"]["pools.count"], "2");
    assert_eq!(first["runs"], 2);
    let eff = &first["stats"]["allocation_efficiency"];
    assert_eq!(eff["n"], 2);
    assert!(eff["ci95"].as_array().unwrap().len() == 2, "{eff}");

    check_tables(&out);
    // Every run kept its directory, report last, with its recorded configuration.
    let run_dir = out.join("runs/topology.agents=32,pools.count=3/seed-2");
    for f in [
        "report.json",
        "sweep-run.toml",
        "scenario.toml",
        "timings.json",
    ] {
        assert!(
            run_dir.join(f).is_file(),
            "{f} missing in {}",
            run_dir.display()
        );
    }
    let recorded = std::fs::read_to_string(run_dir.join("sweep-run.toml")).unwrap();
    assert!(
        recorded.contains("workers = 1"),
        "runs default to one worker"
    );

    // The same sweep again: every run is skipped, and the tables are the same.
    let before = std::fs::read(out.join("runs.csv")).unwrap();
    let again = sweep_json(&args);
    assert_eq!(
        (again["ran"].as_u64(), again["skipped"].as_u64()),
        (Some(0), Some(8))
    );
    assert_eq!(std::fs::read(out.join("runs.csv")).unwrap(), before);

    // A run whose report is missing (interrupted) runs again; more seeds add runs.
    std::fs::remove_file(run_dir.join("report.json")).unwrap();
    let mut more = args.to_vec();
    more[7] = "1..3";
    let v = sweep_json(&more);
    assert_eq!(
        (v["runs"].as_u64(), v["ran"].as_u64(), v["skipped"].as_u64()),
        (Some(12), Some(5), Some(7))
    );
    assert_eq!(csv(&out.join("runs.csv")).len(), 1 + 12);
}

#[test]
fn a_changed_scenario_runs_again_and_strings_are_swept() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = tiny(dir.path());
    let out = dir.path().join("out");
    let args = |s: &str| {
        vec![
            "sweep".to_owned(),
            s.to_owned(),
            "--set".into(),
            "solver.name=default,descent".into(),
            "--out".into(),
            out.to_str().unwrap().into(),
            "--json".into(),
        ]
    };
    let run = |a: Vec<String>| sweep_json(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let v = run(args(&scenario));
    assert_eq!((v["runs"].as_u64(), v["ran"].as_u64()), (Some(2), Some(2)));
    assert_eq!(v["summary"][1]["settings"]["solver.name"], "descent");
    // The same keys over a changed file: the recorded configuration differs, so both rerun.
    std::fs::write(&scenario, TINY.replace("rounds = 2", "rounds = 3")).unwrap();
    let v = run(args(&scenario));
    assert_eq!(
        (v["ran"].as_u64(), v["skipped"].as_u64()),
        (Some(2), Some(0))
    );
    // A metric to plot that the reports lack: an error naming it, after the tables.
    let mut bad = args(&scenario);
    bad.extend(["--plot".to_owned(), "unmet_demand,unmet_demnad".to_owned()]);
    let o = qorch(&bad.iter().map(String::as_str).collect::<Vec<_>>());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--plot unmet_demnad: not a numeric scalar"),
        "{err}"
    );
    assert!(err.contains("allocation_efficiency"), "{err}");
    let runs = csv(&out.join("runs.csv"));
    let rounds = runs[0].iter().position(|h| h == "rounds").unwrap();
    assert!(runs[1..].iter().all(|r| r[rounds] == "3"));
}

/// Runs `qorch sweep` with bad input: exit status 2, an error containing each of `want`,
/// and no run started (no `runs` directory).
fn refused(extra: &[&str], want: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let scenario = tiny(dir.path());
    let out = dir.path().join("out");
    let mut args = vec!["sweep", &scenario, "--out", out.to_str().unwrap()];
    args.extend(extra);
    let o = qorch(&args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{extra:?}: {err}");
    for w in want {
        assert!(err.contains(w), "{extra:?}: `{w}` not in: {err}");
    }
    assert!(!out.join("runs").exists(), "{extra:?} started runs");
}

#[test]
fn bad_input_is_refused_before_any_run() {
    refused(
        &["--set", "topology.agnets=10"],
        &[
            "unknown key `topology.agnets`",
            "topology.agents",
            "behaviour.message_work",
        ],
    );
    refused(&["--set", "nosuch=1"], &["unknown key `nosuch`"]);
    refused(
        &["--set", "topology.agents=10,many"],
        &["topology.agents = many", "usize"],
    );
    refused(
        &["--set", "behaviour.locality=high"],
        &["behaviour.locality = high"],
    );
    refused(
        &["--set", "topology.agents="],
        &["topology.agents: the list of values is empty"],
    );
    refused(
        &["--set", "topology.agents=10,,20"],
        &["value 2 of the list is empty"],
    );
    refused(
        &["--set", "topology.agents=0"],
        &["topology.agents must be at least 1"],
    );
    refused(&["--set", "seed=1,2"], &["--seeds"]);
    refused(
        &["--set", "pools.count=1", "--set", "pools.count=2"],
        &["given twice"],
    );
    refused(
        &["--set", "pools.count=2,3,2"],
        &["the value 2 is given twice"],
    );
    refused(&["--seeds", "5..1"], &["reversed"]);
    refused(&["--seeds", "3.."], &["empty range"]);
    refused(&["--seeds", "1..x"], &["not a seed"]);
    refused(&["--seeds", "1..20000"], &["above the limit of 10000"]);
    refused(
        &[
            "--set",
            "topology.agents=10,11,12,13,14,15,16,17,18,19",
            "--seeds",
            "1..1001",
        ],
        &["10 configurations x 1001 seeds = 10010 runs, above the limit of 10000"],
    );
    refused(&["--jobs", "0"], &["--jobs 0 is out of range"]);
    refused(&["--jobs", "100000"], &["--jobs 100000 is out of range"]);
}

#[test]
fn an_unwritable_output_directory_is_refused_before_any_run() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = tiny(dir.path());
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let out = file.join("out");
    let o = qorch(&["sweep", &scenario, "--out", out.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("the output directory"), "{err}");
    let missing = qorch(&[
        "sweep",
        "/nonexistent/s.toml",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/s.toml"));
}

/// The tables and plots of the 2 x 2 x 2 sweep above.
fn check_tables(out: &Path) {
    let runs = csv(&out.join("runs.csv"));
    assert_eq!(runs.len(), 1 + 8, "a header and one row per run");
    let header = &runs[0];
    assert_eq!(header[..3], ["topology.agents", "pools.count", "seed"]);
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    for name in [
        "allocation_efficiency",
        "unmet_demand",
        "messages.handled",
        "faults.agent_panics",
        "timings.wall_seconds",
    ] {
        assert!(
            header.iter().any(|h| h == name),
            "{name} missing: {header:?}"
        );
    }
    assert!(
        !header.iter().any(|h| h.starts_with("per_round")),
        "arrays are left out"
    );
    // Each row is its own run: the report's agents, pools and seed are the row's.
    for row in &runs[1..] {
        assert_eq!(row[col("agents")], row[0]);
        assert_eq!(row[col("pools")], row[1]);
        assert_eq!(row[col("report.seed")], row[2]);
    }
    let seen: Vec<(&str, &str, &str)> = runs[1..]
        .iter()
        .map(|r| (r[0].as_str(), r[1].as_str(), r[2].as_str()))
        .collect();
    assert_eq!(
        seen[..3],
        [("24", "2", "1"), ("24", "2", "2"), ("24", "3", "1")]
    );

    let summary = csv(&out.join("summary.csv"));
    assert_eq!(summary.len(), 1 + 4);
    let h = &summary[0];
    assert_eq!(h[..3], ["topology.agents", "pools.count", "runs"]);
    for name in [
        "unmet_demand.mean",
        "unmet_demand.sd",
        "unmet_demand.ci95_low",
        "unmet_demand.ci95_high",
    ] {
        assert!(h.iter().any(|x| x == name), "{name} missing");
    }
    for plot in ["unmet_demand.svg", "allocation_efficiency.svg", "churn.svg"] {
        assert!(out.join(plot).is_file(), "{plot} missing");
    }
}

#[test]
fn a_failed_run_leaves_the_others_in_the_tables_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = tiny(dir.path());
    let out = dir.path().join("out");
    // A file where the first run's directory should be: that run cannot start.
    std::fs::create_dir_all(out.join("runs/base")).unwrap();
    std::fs::write(out.join("runs/base/seed-1"), "in the way").unwrap();
    let o = qorch(&[
        "sweep",
        &scenario,
        "--seeds",
        "1..2",
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("1 of 2 runs failed") && err.contains("seed-1"),
        "{err}"
    );
    let runs = csv(&out.join("runs.csv"));
    assert_eq!(
        runs.len(),
        2,
        "the header and the run that finished: {runs:?}"
    );
    assert_eq!(runs[1][0], "2");
}

#[test]
fn an_interrupted_sweep_leaves_no_table_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = tiny(dir.path());
    let out = dir.path().join("out");
    let args = [
        "sweep",
        &scenario,
        "--seeds",
        "1..6",
        "--jobs",
        "1",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ];
    let mut child = common::command().args(args).spawn().unwrap();
    let first = out.join("runs/base/seed-1/report.json");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !first.is_file() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Kill the sweep and the run it has started, as a Ctrl-C at a terminal would.
    let runs = common::children_of(child.id());
    child.kill().unwrap();
    for pid in runs {
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
    }
    let finished_anyway = child.wait().unwrap().success();
    if !finished_anyway {
        assert!(
            !out.join("runs.csv").exists(),
            "no table from an interrupted sweep"
        );
    }
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let v = sweep_json(&args);
    let skipped = v["skipped"].as_u64().unwrap();
    assert!(skipped >= 1, "the finished run is skipped: {v}");
    assert_eq!(v["ran"].as_u64().unwrap() + skipped, 6);
    assert_eq!(csv(&out.join("runs.csv")).len(), 1 + 6);
}

#[test]
fn bench_sweep_prints_both_wall_times_and_cleans_up() {
    let tmp = tempfile::tempdir().unwrap();
    let out = common::command()
        .args([
            "bench",
            "sweep",
            "--runs",
            "1",
            "--agents",
            "40",
            "--clusters",
            "2",
            "--rounds",
            "1",
            "--json",
        ])
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(
        (v["runs"].as_u64(), v["agents"].as_u64()),
        (Some(1), Some(40))
    );
    assert_eq!(v["jobs"].as_u64(), Some(2));
    for key in [
        "sequential_seconds",
        "parallel_seconds",
        "speedup",
        "sequential_cpu_seconds",
        "parallel_cpu_seconds",
    ] {
        assert!(v[key].as_f64().is_some_and(|x| x > 0.0), "{key}: {v}");
    }
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "runs removed"
    );
    let bad = qorch(&["bench", "sweep", "--jobs", "0"]);
    assert_eq!(bad.status.code(), Some(2));
}
