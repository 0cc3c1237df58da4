//! The `qorch qaoa` command-line contract: flags, JSON keys, values, exit codes.

mod common;

use common::qorch;

fn json(args: &[&str]) -> serde_json::Value {
    let out = qorch(args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "one JSON object on one line");
    serde_json::from_str(&stdout).unwrap()
}

fn num(v: &serde_json::Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("missing numeric key {key} in {v}"))
}

#[test]
fn maxcut_prints_the_documented_keys_and_reproduces_the_p1_table() {
    // A triangle-free cubic graph: the p = 1 fixed angles give the table's cut fraction.
    let v = json(&[
        "qaoa",
        "maxcut",
        "--random-regular",
        "3",
        "--nodes",
        "12",
        "--seed",
        "1",
        "--json",
    ]);
    for key in [
        "n",
        "m",
        "p",
        "expectation",
        "cut_fraction",
        "best_cut",
        "seconds",
    ] {
        assert!(num(&v, key).is_finite(), "{key}");
    }
    assert_eq!(
        (num(&v, "n"), num(&v, "m"), num(&v, "p")),
        (12.0, 18.0, 1.0)
    );
    assert_eq!(v["angles"], "fixed");
    assert_eq!(v["gammas"].as_array().unwrap().len(), 1);
    assert_eq!(v["betas"].as_array().unwrap().len(), 1);
    assert!(num(&v, "girth") > 3.0);
    assert!((num(&v, "cut_fraction") - 0.692_450_047_4).abs() < 1e-6);
    assert!((num(&v, "expectation") / 18.0 - num(&v, "cut_fraction")).abs() < 1e-12);
    assert!(num(&v, "best_cut") <= num(&v, "max_cut"));
    assert!(
        num(&v, "best_cut") > num(&v, "expectation"),
        "1000 shots beat the mean"
    );
}

#[test]
fn explicit_angles_and_a_graph_file_give_the_same_expectation_as_a_random_graph() {
    let dir = std::env::temp_dir().join(format!("qorch-cli-qaoa-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("g.txt");
    let file = file.to_str().unwrap();
    let a = json(&[
        "qaoa",
        "maxcut",
        "--random-regular",
        "3",
        "--nodes",
        "10",
        "--seed",
        "4",
        "--gammas",
        "0.5,-0.3",
        "--betas",
        "0.2,0.7",
        "--write-graph",
        file,
        "--json",
    ]);
    let b = json(&[
        "qaoa", "maxcut", file, "--gammas", "0.5,-0.3", "--betas", "0.2,0.7", "--json",
    ]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(a["angles"], "explicit");
    assert_eq!(num(&a, "p"), 2.0);
    assert_eq!(a["gammas"], serde_json::json!([0.5, -0.3]));
    assert_eq!(num(&a, "expectation"), num(&b, "expectation"));
}

#[test]
fn optimized_angles_are_at_least_as_good_as_fixed_ones_and_the_history_is_saved() {
    let dir = std::env::temp_dir().join(format!("qorch-cli-qaoa-h-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let history = dir.join("history.json");
    let common = [
        "qaoa",
        "maxcut",
        "--random-regular",
        "3",
        "--nodes",
        "10",
        "--seed",
        "2",
        "--p",
        "2",
        "--json",
    ];
    let fixed = json(&common);
    let mut args = common.to_vec();
    args.extend([
        "--angles",
        "optimize",
        "--history",
        history.to_str().unwrap(),
    ]);
    let opt = json(&args);
    assert!(num(&opt, "expectation") >= num(&fixed, "expectation") - 1e-12);
    let h: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&history).unwrap()).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let records = h["records"].as_array().unwrap();
    assert!(!records.is_empty());
    assert!(
        records
            .iter()
            .all(|r| r["params"]["gammas"].is_array() && r["expectation"].is_f64())
    );
    // A ramp is a valid start as well, on any graph.
    let ramp = json(&[
        "qaoa",
        "maxcut",
        "--random-regular",
        "4",
        "--nodes",
        "8",
        "--angles",
        "ramp",
        "--p",
        "3",
        "--json",
    ]);
    assert_eq!(ramp["angles"], "ramp");
    assert!(ramp["table_cut_fraction"].is_null());
}

#[test]
fn bench_prints_layer_and_expectation_times() {
    let v = json(&[
        "qaoa",
        "bench",
        "--nodes",
        "8,10",
        "--reps",
        "1",
        "--bandwidth-mib",
        "8",
        "--gradient",
        "--json",
    ]);
    assert!(num(&v["bandwidth"], "read_write_gbps") > 0.0);
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for r in runs {
        assert!(num(r, "layer_s") > 0.0 && num(r, "layer_bytes") > 0.0);
        let e = &r["expectations"][0];
        assert!(num(e, "expectation_s") > 0.0 && num(e, "gradient_s") > 0.0);
        assert!(num(e, "cut_fraction") > 0.5 && num(e, "cut_fraction") < 1.0);
    }
}

#[test]
fn user_errors_exit_with_status_2_and_say_why() {
    let cases: [(&[&str], &str); 5] = [
        (
            &[
                "qaoa",
                "maxcut",
                "--random-regular",
                "4",
                "--nodes",
                "8",
                "--angles",
                "fixed",
            ],
            "3-regular",
        ),
        (
            &[
                "qaoa",
                "maxcut",
                "--random-regular",
                "3",
                "--nodes",
                "30",
                "--memory-cap-gib",
                "1",
            ],
            "bytes",
        ),
        (
            &["qaoa", "maxcut", "--random-regular", "3", "--nodes", "9"],
            "odd",
        ),
        (
            &[
                "qaoa",
                "maxcut",
                "--random-regular",
                "3",
                "--nodes",
                "8",
                "--gammas",
                "0.1,0.2",
                "--betas",
                "0.1",
            ],
            "gammas",
        ),
        (&["qaoa", "maxcut", "/nonexistent/graph.txt"], "cannot open"),
    ];
    for (args, needle) in cases {
        let out = qorch(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    // No graph at all is a usage error.
    assert_eq!(qorch(&["qaoa", "maxcut"]).status.code(), Some(2));
}

/// Zero, huge and NaN knobs are user errors (`docs/limits.md`), never a NaN or a hang.
#[test]
fn meaningless_knobs_are_user_errors() {
    let base = ["qaoa", "maxcut", "--random-regular", "3", "--nodes", "8"];
    for (flags, want) in [
        (&["--shots", "0"][..], "0 is not in 1..=10000000"),
        (
            &["--threads", "1000000"][..],
            "--threads 1000000 is out of range",
        ),
        (&["--p", "1000000000"][..], "is not in 1..=10000"),
        (
            &["--gammas", "NaN", "--betas", "0.1"][..],
            "NaN is not a finite number",
        ),
        (&["--max-iterations", "0"][..], "0 is not in 1..=1000000"),
    ] {
        let mut args = base.to_vec();
        args.extend(flags);
        let out = qorch(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}
