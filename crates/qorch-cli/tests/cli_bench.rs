//! The `qorch bench` command-line contract: flags, JSON keys, exit codes.

mod common;

use common::qorch;

#[test]
fn bench_mailbox_prints_one_json_object_with_the_documented_keys() {
    let out = qorch(&[
        "bench",
        "mailbox",
        "--json",
        "--messages",
        "2000",
        "--reps",
        "1",
        "--samples",
        "200",
        "--interval-us",
        "10",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "one JSON object on one line");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    for key in [
        "qorch_1p",
        "tokio_1p",
        "crossbeam_1p",
        "qorch_4p",
        "tokio_4p",
        "crossbeam_4p",
        "high_p99_us",
        "empty_mailbox_bytes",
    ] {
        let x = v[key]
            .as_f64()
            .unwrap_or_else(|| panic!("missing numeric key {key}"));
        assert!(x.is_finite() && x > 0.0, "{key} = {x}");
    }
    // An empty mailbox is one small allocation, far below a lane's buffer.
    assert!(v["empty_mailbox_bytes"].as_f64().unwrap() < 512.0);
}

#[test]
fn bad_arguments_exit_with_status_2_and_a_message() {
    let out = qorch(&["bench", "mailbox", "--messages", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--messages"));
    let out = qorch(&["bench", "nonsense"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn bench_runtime_prints_the_documented_keys() {
    let out = qorch(&[
        "bench", "runtime", "--agents", "2000", "--tokens", "10", "--hops", "100", "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["agents"], 2000);
    for key in [
        "spawn_seconds",
        "bytes_per_agent",
        "ring_msgs_per_s",
        "actix_ring_msgs_per_s",
        "report_msgs_per_s",
        "actix_report_msgs_per_s",
    ] {
        let x = v[key]
            .as_f64()
            .unwrap_or_else(|| panic!("missing numeric key {key}"));
        assert!(x.is_finite(), "{key} = {x}");
    }
    assert!(v["ring_msgs_per_s"].as_f64().unwrap() > 0.0);
}
