//! `qorch simulate --serve`: the dashboard in a real browser. Headless Chromium is driven
//! over the Chrome `DevTools` protocol (a small client over a websocket), and the test asserts what a
//! person would see: the tree lists the scenario's clusters and opens one level, a chart has
//! one point per finished round, the round counter advances while the run goes on, a fault
//! appears on the timeline, and the page says when the run has ended. Without Chromium it
//! says SKIPPED, unless `QORCH_REQUIRE_CHROMIUM` is set (`.ci/run` sets it where it
//! installed Chromium). With `QORCH_UPDATE_SCREENSHOT=1` it writes the screenshot of the
//! guide, `docs/img/dashboard.png`; otherwise into Cargo's temporary directory.
//!
//! Also here: the errors before a run (an address that does not parse, a port in use, a
//! non-local address without the flag or the token) and the client bound, over plain HTTP.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Kills a child process when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The Chromium of this machine, if any.
fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("QORCH_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ]
    .iter()
    .flat_map(|name| std::env::split_paths(&path).map(move |d| d.join(name)))
    .find(|p| p.is_file())
}

/// Starts `qorch simulate` with `args` and returns it with the dashboard's address (read
/// from its stderr, which a thread keeps draining).
fn simulate(args: &[&str]) -> (Killed, String) {
    let mut child = common::command()
        .arg("simulate")
        .args(args)
        .env_remove("QORCH_DASHBOARD_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("qorch starts");
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("dashboard: ") {
                let _ = tx.send(url.trim().to_owned());
            }
        }
    });
    let child = Killed(child);
    let url = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("qorch prints the dashboard's address");
    (child, url)
}

/// A `DevTools` protocol session with one page.
struct Page {
    ws: tungstenite::WebSocket<TcpStream>,
    next: u64,
}

impl Page {
    /// Opens `url` in headless Chromium and connects to the page.
    fn open(chromium: &PathBuf, url: &str, profile: &std::path::Path) -> (Killed, Page) {
        let mut child = std::process::Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--remote-debugging-port=0",
                "--window-size=1400,1300",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(url)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chromium starts");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(ws) = line.strip_prefix("DevTools listening on ") {
                    let _ = tx.send(ws.trim().to_owned());
                }
            }
        });
        let child = Killed(child);
        let browser = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("chromium listens for DevTools");
        let port: u16 = browser
            .trim_start_matches("ws://127.0.0.1:")
            .split('/')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("a DevTools port");
        let page_ws = wait_for_page(port);
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connects to DevTools");
        let (ws, _) = tungstenite::client(page_ws.as_str(), stream).expect("websocket handshake");
        (child, Page { ws, next: 0 })
    }

    /// Sends a command and waits for its answer (events in between are skipped).
    fn call(&mut self, method: &str, params: &Value) -> Value {
        self.next += 1;
        let id = self.next;
        let msg = json!({ "id": id, "method": method, "params": params }).to_string();
        self.ws
            .send(tungstenite::Message::text(msg))
            .expect("sends to DevTools");
        loop {
            let m = self.ws.read().expect("reads from DevTools");
            let tungstenite::Message::Text(text) = m else {
                continue;
            };
            let v: Value = serde_json::from_str(text.as_str()).expect("DevTools sends JSON");
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method} failed: {v}");
                return v["result"].clone();
            }
        }
    }

    /// The value of a JavaScript expression in the page.
    fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            &json!({ "expression": expr, "returnByValue": true }),
        );
        r["result"]["value"].clone()
    }

    /// Waits until `expr` is true in the page; panics with `what` after `limit`.
    fn wait_until(&mut self, expr: &str, what: &str, limit: Duration) {
        let start = Instant::now();
        while self.eval(expr) != Value::Bool(true) {
            assert!(start.elapsed() < limit, "the page never showed {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The websocket address of the first page target, from `GET /json/list`.
fn wait_for_page(port: u16) -> String {
    let start = Instant::now();
    loop {
        let list = http_get(port, "/json/list").map(|(_, body)| body);
        if let Some(ws) = list
            .and_then(|body| serde_json::from_str::<Value>(&body).ok())
            .and_then(|v| {
                v.as_array()?
                    .iter()
                    .find(|t| t["type"] == "page")?
                    .get("webSocketDebuggerUrl")?
                    .as_str()
                    .map(str::to_owned)
            })
        {
            return ws;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "chromium lists no page"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A plain HTTP/1.1 GET on loopback: the status code and the body.
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    // Headers, then the body: as long as Content-Length says, or to the end (some servers
    // keep the connection open whatever the request asked).
    let mut reader = BufReader::new(s);
    let mut status = String::new();
    reader.read_line(&mut status).ok()?;
    let code = status.split(' ').nth(1)?.parse().ok()?;
    let mut length = None;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse::<usize>().ok();
        }
    }
    let mut body = Vec::new();
    match length {
        Some(n) => {
            body.resize(n, 0);
            reader.read_exact(&mut body).ok()?;
        }
        None => {
            reader.read_to_end(&mut body).ok()?;
        }
    }
    Some((code, String::from_utf8_lossy(&body).into_owned()))
}

/// Standard base64 (the screenshots' encoding).
fn base64_decode(s: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0_u32, 0);
    for v in s.bytes().filter_map(value) {
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

const SCENARIO: &str = r#"
name = "dashboard"
rounds = 8
workers = 2

[topology]
agents = 1200
clusters = 4

[clustering]
every = 3

[[faults]]
round = 2
kind = "agent_panic"
count = 5
"#;

#[test]
fn the_dashboard_shows_a_run_in_a_browser() {
    let Some(chromium) = chromium() else {
        assert!(
            std::env::var_os("QORCH_REQUIRE_CHROMIUM").is_none(),
            "QORCH_REQUIRE_CHROMIUM is set but no Chromium was found"
        );
        println!("SKIPPED: chromium is not installed (apt-get install chromium)");
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let scenario = dir.path().join("dashboard.toml");
    std::fs::write(&scenario, SCENARIO).expect("writes the scenario");
    let scenario = scenario.to_str().expect("a UTF-8 path");
    let (_qorch, url) = simulate(&[
        scenario,
        "--serve",
        "127.0.0.1:0",
        "--keep-serving",
        "--round-pause",
        "600",
    ]);
    let (_browser, mut page) = Page::open(&chromium, &url, &dir.path().join("profile"));
    let long = Duration::from_secs(120);

    // The tree lists the scenario's clusters, and opens one level.
    page.wait_until(
        "document.querySelectorAll('#tree tr.node[data-level=\"0\"]').length === 4",
        "the four clusters in the tree",
        long,
    );
    let mut names: Vec<String> = serde_json::from_value(page.eval(
        "[...document.querySelectorAll('#tree tr.node[data-level=\"0\"] .name')]\
         .map(e => e.textContent)",
    ))
    .expect("names");
    names.sort();
    assert_eq!(names, ["c0", "c1", "c2", "c3"]);
    page.eval("document.querySelector('#tree tr.node[data-level=\"0\"] button.toggle').click()");
    page.wait_until(
        "document.querySelectorAll('#tree tr.node[data-level=\"1\"]').length > 0",
        "a cluster's sub-clusters once opened",
        long,
    );

    // The round counter advances while the run goes on, with one point per finished round.
    page.wait_until(
        "Number(document.getElementById('round-counter').dataset.round) >= 1",
        "a finished round",
        long,
    );
    let seen = |page: &mut Page| -> (u64, u64, String) {
        let v = page.eval(
            "[Number(document.getElementById('round-counter').dataset.round), \
              document.querySelectorAll('#chart-efficiency .pt').length, \
              document.getElementById('run-state').textContent]",
        );
        (
            v[0].as_u64().unwrap_or(0),
            v[1].as_u64().unwrap_or(0),
            v[2].as_str().unwrap_or("").to_owned(),
        )
    };
    let (first, points, state) = seen(&mut page);
    assert_eq!(points, first, "one point per finished round");
    assert_eq!(
        state, "running",
        "round {first} of 8 was seen while running"
    );
    page.wait_until(
        &format!(
            "Number(document.getElementById('round-counter').dataset.round) > {first} && \
             document.getElementById('run-state').textContent === 'running'"
        ),
        "the round counter advancing while the run goes on",
        long,
    );

    // The fault of round 2 on the timeline.
    page.wait_until(
        "document.querySelector('#timeline li.event[data-kind=\"agent_panic\"]') !== null && \
         document.querySelector('#chart-timeline .event-mark[data-kind=\"agent_panic\"]') !== null",
        "the injected fault on the timeline",
        long,
    );

    // The end: the page says so, with every round's point.
    page.wait_until(
        "document.getElementById('run-state').textContent === 'finished'",
        "the run's end",
        Duration::from_secs(300),
    );
    let (last, points, _) = seen(&mut page);
    assert_eq!((last, points), (8, 8));
    let banner = page.eval("document.getElementById('ended').textContent");
    assert!(
        banner
            .as_str()
            .is_some_and(|b| b.contains("The run has finished")),
        "{banner}"
    );

    let shot = page.call("Page.captureScreenshot", &json!({ "format": "png" }));
    let png = base64_decode(shot["data"].as_str().expect("screenshot data"));
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    let path = if std::env::var_os("QORCH_UPDATE_SCREENSHOT").is_some() {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/img/dashboard.png")
    } else {
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png")
    };
    std::fs::write(&path, png).expect("writes the screenshot");
}

#[test]
fn bad_dashboard_addresses_fail_before_the_run() {
    let check = |args: &[&str], env: Option<&str>, expected: &str| {
        let mut c = common::command();
        c.args([
            "simulate",
            "--agents",
            "200",
            "--clusters",
            "2",
            "--rounds",
            "1",
        ])
        .args(args)
        .env_remove("QORCH_DASHBOARD_TOKEN");
        if let Some(t) = env {
            c.env("QORCH_DASHBOARD_TOKEN", t);
        }
        let out = c.output().expect("qorch runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(expected), "{args:?}: {err}");
        assert!(!err.contains("round 1"), "no run started: {err}");
    };
    check(&["--serve", "localhost"], None, "is not IP:PORT");
    check(&["--serve", "127.0.0.1:99999"], None, "is not IP:PORT");
    check(&["--serve", "0.0.0.0:0"], None, "--serve-remote");
    check(
        &["--serve", "0.0.0.0:0", "--serve-remote"],
        None,
        "QORCH_DASHBOARD_TOKEN",
    );
    check(
        &["--serve", "0.0.0.0:0", "--serve-remote"],
        Some(""),
        "QORCH_DASHBOARD_TOKEN",
    );
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let addr = taken.local_addr().expect("its address").to_string();
    check(&["--serve", &addr], None, "already in use");
    check(
        &["--serve", "127.0.0.1:0", "--serve-clients", "0"],
        None,
        "between 1 and 256",
    );
}

#[test]
fn a_token_is_required_and_clients_are_bounded() {
    let (_qorch, url) = {
        let mut child = common::command()
            .args([
                "simulate",
                "--agents",
                "200",
                "--clusters",
                "2",
                "--rounds",
                "1",
                "--serve",
                "127.0.0.1:0",
                "--serve-clients",
                "1",
                "--keep-serving",
            ])
            .env("QORCH_DASHBOARD_TOKEN", "s3cret")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("qorch starts");
        let stderr = child.stderr.take().expect("piped");
        let child = Killed(child);
        let url = BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .find_map(|l| l.strip_prefix("dashboard: ").map(str::to_owned))
            .expect("the address");
        (child, url)
    };
    let port: u16 = url
        .trim_start_matches("http://127.0.0.1:")
        .trim_end_matches('/')
        .parse()
        .expect("a port");
    assert_eq!(http_get(port, "/").map(|r| r.0), Some(401));
    assert_eq!(http_get(port, "/?token=wrong").map(|r| r.0), Some(401));
    let (code, page) = http_get(port, "/?token=s3cret").expect("the page");
    assert_eq!(code, 200);
    assert!(page.contains("<script src=\"app.js\">"), "{page}");
    // Read-only: nothing but GET.
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connects");
    write!(
        s,
        "POST /api/state?token=s3cret HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("writes");
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    // One client allowed: a first event stream is served, a second refused.
    let mut first = TcpStream::connect(("127.0.0.1", port)).expect("connects");
    write!(
        first,
        "GET /events?token=s3cret HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    .expect("writes");
    let mut head = [0_u8; 12];
    first.read_exact(&mut head).expect("an answer");
    assert_eq!(&head, b"HTTP/1.1 200");
    let (code, body) = http_get(port, "/events?token=s3cret").expect("an answer");
    assert_eq!(code, 503);
    assert!(body.contains("at most 1"), "{body}");
    drop(first);
}
