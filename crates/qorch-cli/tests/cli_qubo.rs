//! The `qorch qubo solve` command-line contract.

use std::path::PathBuf;

mod common;

use common::qorch;

fn write(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("qorch-cli-qubo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn json(out: &std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

#[test]
fn solves_a_rudy_graph_as_max_cut_with_every_solver() {
    // A 5-cycle: the best cut has 4 edges.
    let g = write("c5.txt", "5 5\n1 2 1\n2 3 1\n3 4 1\n4 5 1\n5 1 1\n");
    for solver in [
        "sa",
        "pt",
        "tabu",
        "descent",
        "exact",
        "decompose",
        "hybrid",
    ] {
        let out = qorch(&[
            "qubo",
            "solve",
            g.to_str().unwrap(),
            "--solver",
            solver,
            "--seed",
            "3",
            "--json",
        ]);
        let v = json(&out);
        for key in ["energy", "cut", "solver", "n", "m", "seconds", "seed"] {
            assert!(v.get(key).is_some(), "{solver}: missing key {key}");
        }
        assert_eq!(v["solver"], solver);
        assert_eq!(v["n"], 5);
        assert_eq!(v["m"], 5);
        assert_eq!(v["seed"], 3);
        if solver != "descent" {
            assert_eq!(v["cut"], 4.0, "{solver}");
            assert_eq!(v["energy"], -4.0, "{solver}");
        }
    }
}

#[test]
fn reads_qubo_and_json_formats_and_maxcut_of_a_model() {
    let q = write("m.qubo", "c test\np qubo 0 3 2 1\n0 0 -1\n2 2 -1\n0 2 3\n");
    let v = json(&qorch(&[
        "qubo",
        "solve",
        q.to_str().unwrap(),
        "--solver",
        "exact",
        "--json",
    ]));
    assert_eq!(v["energy"], -1.0);
    assert!(v["cut"].is_null());
    let j = write("m.json", r#"{"num_vars": 2, "quadratic": [[0, 1, 1.0]]}"#);
    let v = json(&qorch(&[
        "qubo",
        "solve",
        j.to_str().unwrap(),
        "--maxcut",
        "--solver",
        "exact",
        "--json",
    ]));
    assert_eq!(v["cut"], 1.0);
}

#[test]
fn malformed_input_names_the_line_and_exits_2() {
    let bad = write("bad.txt", "3 2\n1 2 1\n2 9 1\n");
    let out = qorch(&["qubo", "solve", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 3") && err.contains("vertex 9 out of range"),
        "{err}"
    );

    let out = qorch(&["qubo", "solve", "/nonexistent/graph.txt"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open"));

    let g = write("big.txt", "40 1\n1 2 1\n");
    let out = qorch(&["qubo", "solve", g.to_str().unwrap(), "--solver", "exact"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at most 30 variables"));

    let out = qorch(&["qubo", "solve", g.to_str().unwrap(), "--time-limit", "-1"]);
    assert_eq!(out.status.code(), Some(2));
    let out = qorch(&["qubo", "solve", g.to_str().unwrap(), "--solver", "magic"]);
    assert_eq!(out.status.code(), Some(2));
}

/// Inputs that panicked, aborted or exited 0 with a meaningless answer before the limits
/// (`docs/reliability.md`): each is a user error now, with status 2 and a short message.
#[test]
fn hostile_inputs_are_user_errors() {
    let long = "9".repeat(1 << 20);
    let cases: Vec<(PathBuf, Vec<&str>, &str)> = vec![
        (
            write(
                "typo.json",
                r#"{"num_vars": 2, "quadratc": [[0, 1, -1.0]]}"#,
            ),
            vec![],
            "unknown field `quadratc`",
        ),
        (
            write("big.rudy", "3 2\n1 2 1e308\n2 3 1e308\n"),
            vec![],
            "line 2: the absolute edge weights sum to more than 2.5e99",
        ),
        (
            write("inf.qubo", "p qubo 0 2 2 0\n0 0 1e308\n0 0 1e308\n"),
            vec![],
            "above the bound 1e100",
        ),
        (
            write("long.rudy", &format!("3 1\n1 2 x{long}\n")),
            vec![],
            "(1048577 bytes)",
        ),
        (
            write("ok.rudy", "2 1\n1 2 1\n"),
            vec!["--time-limit", "1e20"],
            "at most 2592000",
        ),
        (
            write("ok.rudy", "2 1\n1 2 1\n"),
            vec!["--solver", "sa", "--reads", "0"],
            "0 is not in 1..=1000000000",
        ),
    ];
    for (path, flags, want) in cases {
        let mut args = vec!["qubo", "solve", path.to_str().unwrap()];
        args.extend(flags);
        let out = qorch(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(err.len() < 600, "{args:?}: {} bytes on stderr", err.len());
    }
}
