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
        "bench",
        "runtime",
        "--agents",
        "2000",
        "--tokens",
        "10",
        "--hops",
        "100",
        "--no-peers",
        "--ask-samples",
        "200",
        "--json",
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
        "ask_p50_us",
        "ask_p99_us",
        "ask_same_cluster_p50_us",
        "app_ask_p50_us",
        "actix_ask_p50_us",
        "mixed_bytes_per_agent",
    ] {
        let x = v[key]
            .as_f64()
            .unwrap_or_else(|| panic!("missing numeric key {key}"));
        assert!(x.is_finite(), "{key} = {x}");
    }
    assert!(v["ring_msgs_per_s"].as_f64().unwrap() > 0.0);
}

/// The keys `qorch bench runtime` copies from the `qorch-peers` binary (it measures actix's
/// ask itself).
const PEER_KEYS: [&str; 6] = [
    "ractor_ask_p50_us",
    "ractor_ask_p99_us",
    "kameo_ask_p50_us",
    "kameo_ask_p99_us",
    "ractor_shared_ask_p50_us",
    "kameo_shared_ask_p50_us",
];

/// `qorch bench runtime --json` on a small run, with `QORCH_PEERS_BIN` set to `peers`.
fn bench_runtime_with_peers(peers: &std::path::Path, extra: &[&str]) -> std::process::Output {
    common::command()
        .args([
            "bench", "runtime", "--agents", "200", "--tokens", "2", "--hops", "10",
        ])
        .args(["--no-baseline", "--json", "--ask-samples", "100"])
        .args(extra)
        .env("QORCH_PEERS_BIN", peers)
        .output()
        .expect("qorch runs")
}

#[test]
fn bench_runtime_reports_null_peer_figures_when_qorch_peers_is_missing_or_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-qorch-peers");
    for extra in [&[][..], &["--no-peers"][..]] {
        let out = bench_runtime_with_peers(&missing, extra);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        for key in PEER_KEYS {
            assert!(v[key].is_null(), "{key} = {} with {extra:?}", v[key]);
        }
        // One note when it was looked for, none when skipped.
        assert_eq!(
            stderr.contains("not measured"),
            extra.is_empty(),
            "{stderr}"
        );
    }
}

#[cfg(unix)]
#[test]
fn bench_runtime_copies_the_figures_qorch_peers_prints() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("qorch-peers");
    // Checks the samples count it is given, and prints figures as `qorch-peers` does.
    std::fs::write(
        &fake,
        "#!/bin/sh\n[ \"$1 $2\" = \"--samples 300\" ] || exit 3\n\
         echo '{\"actix_ask_p50_us\":1.5,\"actix_ask_p99_us\":2.5,\"ractor_ask_p50_us\":3.5,\
         \"ractor_ask_p99_us\":4.5,\"kameo_ask_p50_us\":5.5,\"kameo_ask_p99_us\":6.5,\
         \"ractor_shared_ask_p50_us\":0.5,\"kameo_shared_ask_p50_us\":0.75,\
         \"samples\":300,\"ractor_version\":\"x\",\"kameo_version\":\"y\"}'\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = bench_runtime_with_peers(&fake, &["--peers-samples", "300"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for (key, want) in PEER_KEYS.iter().zip([3.5, 4.5, 5.5, 6.5, 0.5, 0.75]) {
        assert_eq!(v[key].as_f64(), Some(want), "{key}");
    }
    // actix's is measured by `qorch` itself (not with --no-baseline), never copied.
    assert!(v["actix_ask_p50_us"].is_null());
    // A failing binary gives nulls and a note, not a failure.
    let out = bench_runtime_with_peers(&fake, &["--peers-samples", "7"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("failed"));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(PEER_KEYS.iter().all(|k| v[k].is_null()));
}
