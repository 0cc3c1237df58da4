//! A node process killed with SIGKILL from outside, in the middle of a tick: the run
//! recovers (its clusters move to the other node, the tick runs again) and the report says
//! consistently what was lost: the node, the tick run again, and the messages whose fate is
//! unknown, equal to the unaccounted ones.

use std::io::BufRead as _;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

const SCENARIO: &str = r#"
name = "node-kill"
seed = 5
workers = 1
rounds = 1
ticks_per_round = 12

[topology]
agents = 600
clusters = 6
depth = 1
fanout = 2

[behaviour]
message_work = 2000
tick_work = 20000

[clustering]
every = 0
"#;

#[test]
fn a_node_killed_mid_tick_is_reported_consistently() {
    let Some(srv) = qorch_net::local_server::start_or_skip(&[], "cli_node_kill") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.toml");
    std::fs::write(&path, SCENARIO).unwrap();
    let mut child = common::command()
        .arg("simulate")
        .arg(&path)
        .args(["--json", "--nats", &srv.url(), "--nodes", "3"])
        // The coordinator logs each tick's end at debug: the kill waits for the third.
        .env("RUST_LOG", "qorch_sim=debug")
        .env_remove("QORCH_FRAME_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let err = std::io::BufReader::new(child.stderr.take().unwrap());
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in err.lines().map_while(Result::ok) {
            let _ = tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let mut out = child.stdout.take().unwrap();
    let stdout = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut out, &mut v);
        v
    });
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut ticked = 0;
    while ticked < 3 {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the coordinator runs three ticks");
        if line.contains("ticked; termination waves") {
            ticked += 1;
        }
    }
    // Mid-tick: the coordinator has sent tick 3 and waits for quiescence.
    let nodes = common::children_of(child.id());
    assert_eq!(nodes.len(), 3, "three node processes: {nodes:?}");
    let victim = nodes[0];
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &victim.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("still running after 240 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = reader.join().unwrap();
    assert!(status.success(), "{stderr}");
    let report: Value = serde_json::from_slice(&stdout.join().unwrap()).unwrap();
    let (f, m) = (&report["faults"], &report["messages"]);
    assert_eq!(f["nodes_lost"], 1, "{f}");
    assert_eq!(f["nodes_killed"], 1, "{f}");
    assert!(f["agents_restarted"].as_u64().unwrap() > 0, "{f}");
    let rerun = f["ticks_rerun"].as_array().unwrap();
    assert_eq!(rerun.len(), 1, "{f}");
    assert!(rerun[0].as_u64().unwrap() >= 3, "{f}");
    // What is unknown is said once, the same way in both places.
    assert_eq!(f["messages_unknown"], m["unaccounted"], "{report}");
    // The removed key is gone; the one that replaces it says what it means.
    assert!(report.get("reproducible").is_none());
    assert_eq!(report["timings_omitted"], true);
    assert!(stderr.contains("killed mid-tick"), "{stderr}");
}
