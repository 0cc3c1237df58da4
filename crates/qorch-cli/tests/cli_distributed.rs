//! Distributed simulations over a real `nats-server` on 127.0.0.1: the coordinator
//! (`qorch simulate --nats URL --nodes 3`) and three node processes, one started by hand
//! (`qorch node --join`) and two started by the coordinator. Messages cross nodes, a node
//! process dies (a `node_crash` fault) and its agents restart on the others, and every
//! message is accounted for exactly, as in the single-process run of the same scenario.
//!
//! Without `nats-server` these tests say so and pass, unless `QORCH_REQUIRE_NATS=1` (set by
//! `.ci/run`, which installs it) makes that a failure.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use qorch_net::local_server::LocalServer;
use serde_json::Value;

mod common;

fn server(args: &[&str]) -> Option<LocalServer> {
    qorch_net::local_server::start_or_skip(args, "cli_distributed")
}

/// `qorch`, without the NATS credentials the environment may hold, and with the test's
/// deployment key (the hand-started node and the coordinator share it).
fn qorch() -> Command {
    let mut c = common::command();
    c.env_remove("QORCH_NATS_PASSWORD")
        .env_remove("QORCH_NATS_TOKEN")
        .env_remove("QORCH_NATS_URL")
        .env("QORCH_FRAME_KEY", "cli-distributed-test-key-0123456789");
    c
}

const SCENARIO: &str = r#"
name = "distributed-test"
seed = 11
workers = 1
rounds = 3
ticks_per_round = 2

[topology]
agents = 900
clusters = 6
depth = 1
fanout = 2

[behaviour]
message_work = 200
tick_work = 2000

[[faults]]
round = 2
kind = "agent_panic"
count = 3
"#;

/// Runs `cmd` to its end, or kills it and fails after `limit` (a hang must fail, not stall CI).
fn output_within(cmd: &mut Command, limit: Duration) -> std::process::Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let read_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut out, &mut v).map(|_| v)
    });
    let read_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut err, &mut v).map(|_| v)
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let err = read_err.join().unwrap().unwrap_or_default();
            panic!(
                "still running after {limit:?}, killed: {}",
                String::from_utf8_lossy(&err)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    std::process::Output {
        status,
        stdout: read_out.join().unwrap().unwrap_or_default(),
        stderr: read_err.join().unwrap().unwrap_or_default(),
    }
}

/// Generous for a debug build on a loaded 2-core machine; these runs take seconds.
const LIMIT: Duration = Duration::from_secs(180);

fn simulate(path: &std::path::Path, extra: &[&str]) -> Value {
    let out = output_within(
        qorch().arg("simulate").arg(path).arg("--json").args(extra),
        LIMIT,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

#[test]
fn three_node_processes_share_a_run_survive_a_crash_and_account_for_every_message() {
    let Some(srv) = server(&[]) else { return };
    let url = srv.url();
    let dir = tempfile::tempdir().unwrap();
    let local_path = dir.path().join("local.toml");
    std::fs::write(&local_path, SCENARIO).unwrap();
    let crash_path = dir.path().join("crash.toml");
    let mut f = std::fs::File::create(&crash_path).unwrap();
    write!(
        f,
        "{SCENARIO}\n[[faults]]\nround = 2\nkind = \"node_crash\"\n"
    )
    .unwrap();

    // One node joins by hand; the coordinator starts the other two.
    let mut by_hand = qorch()
        .args(["node", "--nats", &url, "--join", "by-hand"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let local = simulate(&local_path, &[]);
    let dist = simulate(&crash_path, &["--nats", &url, "--nodes", "3"]);

    // The same report, key for key.
    assert_eq!(keys(&dist), keys(&local));
    assert_eq!(keys(&dist["messages"]), keys(&local["messages"]));
    assert_eq!(
        (local["processes"].as_u64(), dist["processes"].as_u64()),
        (Some(1), Some(3))
    );
    let (lm, dm) = (&local["messages"], &dist["messages"]);
    // Messages crossed between processes...
    assert!(dm["cross_process"].as_u64().unwrap() > 100, "{dm}");
    assert_eq!(lm["cross_process"], 0);
    // ... a node died and its agents restarted elsewhere from where they were ...
    let faults = &dist["faults"];
    assert_eq!(faults["nodes_lost"], 1, "{faults}");
    assert!(
        faults["agents_restarted"].as_u64().unwrap() >= 100,
        "{faults}"
    );
    // ... and the run did exactly the work of the single-process run: every message sent
    // was handled or reported, none lost, none handled twice.
    for k in [
        "sent",
        "handled",
        "baseline_handled",
        "dead_letters",
        "restarts",
        "by_priority",
    ] {
        assert_eq!(dm[k], lm[k], "messages.{k}");
    }
    assert_eq!(dm["unaccounted"], 0);
    assert_eq!(dist["rounds"], 3);
    for r in dist["per_round"].as_array().unwrap() {
        assert_eq!(
            r["agents"], 900,
            "every agent reported, restarted ones included"
        );
    }

    // The node started by hand was used, and left when the run ended (or crashed: one of
    // the three did).
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = by_hand.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the hand-started node is still running"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    // Exit 0 after Finish, or killed by the injected abort if it was the one chosen.
    let _ = status;
}

#[test]
fn a_node_that_cannot_authenticate_refuses_to_start_without_printing_secrets() {
    let Some(srv) = server(&["--user", "qorch", "--pass", "pw-Secret-42"]) else {
        return;
    };
    let out = output_within(
        qorch().args(["node", "--nats", &srv.url(), "--join", "n1"]),
        LIMIT,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refused authentication"), "{err}");

    let out = output_within(
        qorch()
            .args([
                "node",
                "--nats",
                &srv.url(),
                "--join",
                "n1",
                "--nats-user",
                "qorch",
            ])
            .env("QORCH_NATS_PASSWORD", "wrong-Secret-7"),
        LIMIT,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refused authentication"), "{err}");
    assert!(
        !err.contains("wrong-Secret-7"),
        "never print secrets: {err}"
    );

    let out = output_within(
        qorch().args([
            "node",
            "--nats",
            &srv.url(),
            "--join",
            "n1",
            "--nats-user",
            "qorch",
        ]),
        LIMIT,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("QORCH_NATS_PASSWORD"));

    // The coordinator refuses too, before starting any node.
    let out = output_within(
        qorch().args([
            "simulate",
            "--nats",
            &srv.url(),
            "--nodes",
            "2",
            "--agents",
            "100",
            "--clusters",
            "4",
        ]),
        LIMIT,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refused authentication"), "{err}");
}

#[test]
fn node_crash_faults_need_a_distributed_run() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s.toml");
    std::fs::write(
        &p,
        format!("{SCENARIO}\n[[faults]]\nround = 1\nkind = \"node_crash\"\n"),
    )
    .unwrap();
    let out = output_within(qorch().arg("simulate").arg(&p), LIMIT);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("need a distributed run"));
}

#[test]
fn a_distributed_run_survives_a_nats_server_restart() {
    let Some(mut srv) = server(&[]) else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.toml");
    // Distributed runs do not re-cluster: neither does the local run it is compared with.
    let text = format!(
        "{}\n[clustering]\nevery = 0\n",
        SCENARIO.replace("rounds = 3", "rounds = 6")
    );
    std::fs::write(&path, text).unwrap();
    let local = simulate(&path, &[]);
    let mut cmd = qorch();
    cmd.arg("simulate")
        .arg(&path)
        .args(["--json", "--nats", &srv.url(), "--nodes", "2"]);
    let restart = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        srv.restart(Duration::from_millis(300)).unwrap();
        srv
    });
    let out = output_within(&mut cmd, LIMIT);
    let _srv = restart.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut dist: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(dist["messages"]["cross_process"].as_u64().unwrap() > 0);
    // With one worker per process the run is a function of its scenario: apart from where
    // the agents ran, the report is the single-process run's, allocations included, even
    // with the server restarted in the middle.
    dist["processes"] = local["processes"].clone();
    dist["messages"]["cross_process"] = local["messages"]["cross_process"].clone();
    assert_eq!(dist, local);
}
