//! No secret in any log line, at `RUST_LOG=trace`, nor in the command lines of the node
//! processes a coordinator starts: a real `nats-server` with a password, a URL holding it,
//! and a run over two node processes.

use std::io::Read as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

mod common;

const PASSWORD: &str = "pw-Secret-42";
const KEY: &str = "frame-key-Secret-0123456789abcdef";

#[test]
fn trace_logs_and_child_command_lines_hold_no_secret() {
    let Some(srv) = qorch_net::local_server::start_or_skip(
        &["--user", "qorch", "--pass", PASSWORD],
        "cli_secrets",
    ) else {
        return;
    };
    let url = srv
        .url()
        .replace("nats://", &format!("nats://qorch:{PASSWORD}@"));
    let mut child = common::command()
        .args([
            "simulate",
            "--json",
            "--nats",
            &url,
            "--nodes",
            "2",
            "--agents",
            "200",
            "--clusters",
            "4",
            "--rounds",
            "2",
            "--workers",
            "1",
        ])
        .env("RUST_LOG", "trace")
        .env("QORCH_FRAME_KEY", KEY)
        .env_remove("QORCH_NATS_URL")
        .env_remove("QORCH_NATS_PASSWORD")
        .env_remove("QORCH_NATS_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        String::from_utf8_lossy(&v).into_owned()
    });
    let mut out = child.stdout.take().unwrap();
    let stdout = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        String::from_utf8_lossy(&v).into_owned()
    });
    // The node processes' command lines, read while they run.
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        for pid in common::children_of(child.id()) {
            if let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) {
                let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                if cmdline.contains(" node ") && !seen.contains(&cmdline) {
                    seen.push(cmdline);
                }
            }
        }
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("still running after 180 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    assert!(status.success(), "{stderr}");
    assert!(stdout.contains("\"processes\":2"), "{stdout}");
    // The trace log is not empty (the filter does not silence everything) ...
    assert!(
        stderr.contains("TRACE") || stderr.contains("DEBUG"),
        "{stderr}"
    );
    // ... and holds neither the password nor the key, from this process or its nodes.
    for secret in [PASSWORD, KEY] {
        assert!(!stderr.contains(secret), "secret in the log: {stderr}");
    }
    assert!(!seen.is_empty(), "no node process seen");
    for cmdline in &seen {
        assert!(cmdline.contains("--join"), "{cmdline}");
        for secret in [PASSWORD, KEY, "qorch:"] {
            assert!(
                !cmdline.contains(secret),
                "secret in a child's argv: {cmdline}"
            );
        }
    }
}
