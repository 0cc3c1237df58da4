//! The `qorch allocate gap` and `qorch bench scheduler` command-line contracts: flags, JSON
//! keys, values, exit codes.

mod common;

use common::qorch;

fn json_lines(args: &[&str]) -> Vec<serde_json::Value> {
    let out = qorch(args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is one JSON object"))
        .collect()
}

fn gap_file(name: &str) -> String {
    format!(
        "{}/../qorch-scheduler/tests/data/{name}.txt",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn allocate_gap_prints_one_object_per_problem_with_the_documented_keys() {
    let file = gap_file("gap1");
    let lines = json_lines(&[
        "allocate",
        "gap",
        &file,
        "--sense",
        "max",
        "--target",
        "336",
        "--problem",
        "1",
        "--json",
    ]);
    assert_eq!(lines.len(), 1);
    let v = &lines[0];
    for key in ["instance", "problem", "objective", "feasible", "seconds"] {
        assert!(!v[key].is_null(), "missing key {key} in {v}");
    }
    assert_eq!(v["instance"], "gap1");
    assert_eq!(v["problem"], 1);
    assert_eq!(v["objective"], 336);
    assert_eq!(v["feasible"], true);
    // Without --problem: every problem of the file, one line each (gap1 holds five).
    let all = json_lines(&["allocate", "gap", &file, "--effort", "50", "--json"]);
    assert_eq!(all.len(), 5);
    for (k, v) in all.iter().enumerate() {
        assert_eq!(v["problem"], k + 1);
        assert_eq!(v["feasible"], true);
    }
}

#[test]
fn allocate_gap_rejects_bad_input_with_status_2() {
    let dir = std::env::temp_dir().join(format!("qorch-cli-allocate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.txt");
    std::fs::write(&bad, "1\n2 3\n1 2 x\n").unwrap();
    let out = qorch(&["allocate", "gap", bad.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 3"), "{err}");
    let missing = qorch(&["allocate", "gap", dir.join("none.txt").to_str().unwrap()]);
    assert_eq!(missing.status.code(), Some(2));
    let file = gap_file("gap1");
    let out = qorch(&["allocate", "gap", &file, "--problem", "9"]);
    assert_eq!(out.status.code(), Some(2));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bench_scheduler_prints_the_documented_keys() {
    let lines = json_lines(&[
        "bench",
        "scheduler",
        "--agents",
        "300",
        "--clusters",
        "3",
        "--pools",
        "6",
        "--json",
    ]);
    assert_eq!(lines.len(), 1);
    let v = &lines[0];
    for key in [
        "agents",
        "clusters",
        "pools",
        "round_seconds",
        "objective",
        "bound",
        "efficiency",
    ] {
        assert!(v[key].is_number(), "missing numeric key {key} in {v}");
    }
    assert_eq!(v["agents"], 300);
    assert_eq!(v["clusters"], 3);
    assert_eq!(v["pools"], 6);
    let (obj, bound, eff) = (
        v["objective"].as_f64().unwrap(),
        v["bound"].as_f64().unwrap(),
        v["efficiency"].as_f64().unwrap(),
    );
    assert!(obj <= bound && eff > 0.0 && eff <= 1.0, "{v}");
}
