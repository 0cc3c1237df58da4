//! `--metrics ADDR`: the Prometheus endpoint of `qorch simulate`, scraped by a real
//! Prometheus server (Debian's `prometheus`) on 127.0.0.1, and its address errors.
//!
//! Without `prometheus` the scrape test says SKIPPED and passes, unless
//! `QORCH_REQUIRE_PROMETHEUS=1` (set by `.ci/run`, which installs it) makes that a failure.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

/// A free loopback port (bound, read, released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The `prometheus` binary, if installed.
fn prometheus_binary() -> Option<PathBuf> {
    let candidates = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|d| d.join("prometheus"))
        .chain([PathBuf::from("/usr/bin/prometheus")]);
    candidates.into_iter().find(|p| p.is_file())
}

/// A child process killed when dropped (a failing test leaves no server behind).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `GET path` on 127.0.0.1:`port`: the status code and the body (HTTP/1.0, no keep-alive).
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.to_owned()))
}

/// The value of a one-element vector answer of Prometheus's `/api/v1/query`.
fn query(port: u16, promql: &str) -> Option<f64> {
    let encoded: String = promql
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    let (code, body) = http_get(port, &format!("/api/v1/query?query={encoded}"))?;
    if code != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

#[test]
fn prometheus_scrapes_a_simulation() {
    let Some(binary) = prometheus_binary() else {
        assert!(
            std::env::var_os("QORCH_REQUIRE_PROMETHEUS").is_none(),
            "prometheus is required (QORCH_REQUIRE_PROMETHEUS) but not installed"
        );
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED prometheus_scrapes_a_simulation: prometheus is not installed \
             (apt-get install prometheus)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (metrics_port, web_port) = (free_port(), free_port());
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 200ms\n  scrape_timeout: 200ms\n\
             scrape_configs:\n  - job_name: qorch\n    static_configs:\n      \
             - targets: ['127.0.0.1:{metrics_port}']\n"
        ),
    )
    .unwrap();
    let server = Killed(
        Command::new(&binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{web_port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus starts"),
    );
    let start = Instant::now();
    while http_get(web_port, "/-/ready").is_none_or(|(c, _)| c != 200) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "prometheus not ready within 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Prometheus applies its targets a few seconds after it starts (its discovery updates are
    // rate-limited): wait until it lists ours, so that it scrapes the run from its start.
    let target = format!("127.0.0.1:{metrics_port}");
    while http_get(web_port, "/api/v1/targets").is_none_or(|(_, body)| !body.contains(&target)) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "prometheus did not take the target within 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let out = common::command()
        .args([
            "simulate",
            "--agents",
            "300",
            "--clusters",
            "2",
            "--rounds",
            "4",
            "--workers",
            "1",
            "--json",
            "--metrics",
            &format!("127.0.0.1:{metrics_port}"),
        ])
        .output()
        .expect("qorch runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let handled = report["messages"]["handled"].as_u64().unwrap();
    assert!(handled > 0);

    // The run is over: its series are stale, so look back over the last minutes.
    let grown = |metric: &str| {
        query(web_port, &format!("sum(max_over_time({metric}[10m]))")).unwrap_or(0.0)
    };
    let start = Instant::now();
    let (mut messages, mut rounds) = (0.0, 0.0);
    while start.elapsed() < Duration::from_secs(10) {
        messages = grown("qorch_messages_handled_total");
        rounds = grown("qorch_rounds_total");
        if messages > 0.0 && rounds > 0.0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(messages > 0.0, "prometheus saw no handled messages");
    assert!(rounds > 0.0, "prometheus saw no rounds");
    // What was scraped never exceeds what the run reports.
    assert!(messages <= handled as f64, "{messages} > {handled}");
    drop(server);
}

#[test]
fn a_metrics_address_that_does_not_parse_is_a_usage_error() {
    let out = common::qorch(&["simulate", "--metrics", "localhost-9464", "--rounds", "1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--metrics"), "{err}");
}

#[test]
fn a_metrics_port_in_use_fails_before_the_run() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    // The default scenario (10,000 agents) would run for a while: the check comes first
    // (nothing on stdout: no run, no table).
    let out = common::qorch(&["simulate", "--metrics", &addr]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already in use"), "{err}");
    assert!(err.contains(&addr), "{err}");
    drop(taken);
}
