//! OTLP export (the `otlp` feature): `qorch simulate` with `OTEL_EXPORTER_OTLP_ENDPOINT` set
//! posts its spans to a collector, and the test reads what arrived, byte for byte, as
//! OpenTelemetry's protobuf messages (`ExportTraceServiceRequest`).
//!
//! No OpenTelemetry collector installs from Debian or the other registries this project
//! uses, so the collector here is the smallest one that is honest about the bytes: an HTTP
//! server (axum) that keeps every body posted to `/v1/traces` and answers 200, as the OTLP
//! specification's collectors do. The test then checks the trees the spans form: one
//! process's round and its scheduler run, and, over a real `nats-server`, a round's spans in
//! the coordinator and in every node process joined in one trace.

#![cfg(feature = "otlp")]

use std::collections::HashMap;
use std::io::Write as _;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message as _;

mod common;

/// What the collector received: one body per POST to `/v1/traces`, and the paths posted.
#[derive(Default)]
struct Received {
    bodies: Vec<Vec<u8>>,
    paths: Vec<String>,
    content_types: Vec<String>,
}

/// A collector on 127.0.0.1: its base URL, and what it has received so far.
struct Collector {
    url: String,
    received: Arc<Mutex<Received>>,
    _runtime: tokio::runtime::Runtime,
}

fn collector() -> Collector {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let received = Arc::new(Mutex::new(Received::default()));
    let keep = Arc::clone(&received);
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback(
        move |uri: axum::http::Uri, headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let keep = Arc::clone(&keep);
            async move {
                let mut r = keep.lock().unwrap();
                r.paths.push(uri.path().to_owned());
                r.content_types.push(
                    headers
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned(),
                );
                r.bodies.push(body.to_vec());
                // An empty ExportTraceServiceResponse: everything accepted.
                (
                    [("content-type", "application/x-protobuf")],
                    axum::body::Bytes::new(),
                )
            }
        },
    );
    runtime.spawn(async move { axum::serve(listener, app).await });
    Collector {
        url,
        received,
        _runtime: runtime,
    }
}

/// One exported span, flattened with its process's resource.
#[derive(Debug, Clone)]
#[expect(
    clippy::struct_field_names,
    reason = "`span_id` and `parent_span_id` are OTLP's names"
)]
struct Span {
    name: String,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent_span_id: Vec<u8>,
    /// The resource's `process.command` (`simulate` or `node`).
    command: String,
    service: String,
    pid: i64,
    attributes: HashMap<String, String>,
}

fn text(v: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        _ => String::new(),
    }
}

/// Every span of every body, decoded: a body that is not an `ExportTraceServiceRequest`
/// fails the test.
fn spans(received: &Received) -> Vec<Span> {
    let mut out = Vec::new();
    for body in &received.bodies {
        let req = ExportTraceServiceRequest::decode(body.as_slice())
            .expect("the body is an OTLP ExportTraceServiceRequest");
        for rs in req.resource_spans {
            let resource: HashMap<String, String> = rs
                .resource
                .map(|r| {
                    r.attributes
                        .into_iter()
                        .map(|kv| (kv.key, text(kv.value.as_ref())))
                        .collect()
                })
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for s in ss.spans {
                    out.push(Span {
                        name: s.name,
                        trace_id: s.trace_id,
                        span_id: s.span_id,
                        parent_span_id: s.parent_span_id,
                        command: resource.get("process.command").cloned().unwrap_or_default(),
                        service: resource.get("service.name").cloned().unwrap_or_default(),
                        pid: resource
                            .get("process.pid")
                            .and_then(|p| p.parse().ok())
                            .unwrap_or(-1),
                        attributes: s
                            .attributes
                            .into_iter()
                            .map(|kv| (kv.key, text(kv.value.as_ref())))
                            .collect(),
                    });
                }
            }
        }
    }
    out
}

const SCENARIO: &str = r#"
name = "otlp-test"
seed = 5
workers = 1
rounds = 3
ticks_per_round = 1

[topology]
agents = 600
clusters = 4
depth = 1
fanout = 2

[behaviour]
message_work = 100
tick_work = 1000
"#;

/// `qorch` without the environment's OTLP settings, NATS credentials or log filter.
fn qorch() -> Command {
    let mut c = common::command();
    for var in [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_SERVICE_NAME",
        "OTEL_RESOURCE_ATTRIBUTES",
        "QORCH_OTLP_FILTER",
        "QORCH_NATS_PASSWORD",
        "QORCH_NATS_TOKEN",
        "QORCH_NATS_URL",
        "RUST_LOG",
    ] {
        c.env_remove(var);
    }
    c
}

/// Runs `cmd` to its end, or kills it and fails after `limit`.
fn output_within(cmd: &mut Command, limit: Duration) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let id = child.id();
    let done = Arc::new(Mutex::new(false));
    let flag = Arc::clone(&done);
    let watchdog = std::thread::spawn(move || {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if *flag.lock().unwrap() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill").arg("-9").arg(id.to_string()).status();
        true
    });
    let out = child.wait_with_output().unwrap();
    *done.lock().unwrap() = true;
    assert!(
        !watchdog.join().unwrap(),
        "still running after {limit:?}, killed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

const LIMIT: Duration = Duration::from_secs(240);

/// Runs `qorch simulate` on the test scenario with `args`, exporting to `c`, with the extra
/// environment `env`; fails unless it succeeds.
fn simulate_exporting(c: &Collector, args: &[&str], env: &[(&str, &str)]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("otlp.toml");
    std::fs::write(&path, SCENARIO).unwrap();
    let mut cmd = qorch();
    cmd.arg("simulate")
        .arg(&path)
        .arg("--json")
        .args(args)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &c.url)
        .envs(env.iter().copied());
    let out = output_within(&mut cmd, LIMIT);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The span of `spans` with this id.
fn by_id<'a>(spans: &'a [Span], id: &[u8]) -> Option<&'a Span> {
    spans.iter().find(|s| s.span_id == id)
}

#[test]
fn a_simulation_exports_its_rounds_as_span_trees() {
    let c = collector();
    simulate_exporting(&c, &[], &[("QORCH_OTLP_FILTER", "debug")]);
    let received = c.received.lock().unwrap();
    assert!(
        !received.bodies.is_empty(),
        "the collector received nothing"
    );
    assert!(received.paths.iter().all(|p| p == "/v1/traces"));
    assert!(
        received
            .content_types
            .iter()
            .all(|t| t == "application/x-protobuf"),
        "{:?}",
        received.content_types
    );
    let spans = spans(&received);
    let rounds: Vec<&Span> = spans.iter().filter(|s| s.name == "round").collect();
    assert_eq!(rounds.len(), 3, "one span per round");
    let mut traces: Vec<&Vec<u8>> = rounds.iter().map(|r| &r.trace_id).collect();
    traces.dedup();
    assert_eq!(traces.len(), 3, "each round is a trace of its own");
    for s in &spans {
        assert_eq!(s.service, "qorch");
        assert_eq!(s.command, "simulate");
        assert_eq!(s.trace_id.len(), 16);
        assert_eq!(s.span_id.len(), 8);
    }
    // The scheduler's run and its sub-solves hang under their round, in its trace.
    let schedules: Vec<&Span> = spans.iter().filter(|s| s.name == "schedule").collect();
    assert_eq!(schedules.len(), 3, "{:?}", names(&spans));
    for s in &schedules {
        let round = ancestor(&spans, s, "round").expect("a schedule span under a round");
        assert_eq!(round.trace_id, s.trace_id);
    }
    let subsolves = spans.iter().filter(|s| s.name == "subsolve").count();
    assert!(subsolves >= 3, "debug exports the sub-solves: {subsolves}");
    // Events are not exported, nor TRACE spans under a debug filter.
    assert!(!spans.iter().any(|s| s.name == "handle"));
}

/// The names of `spans`, counted.
fn names(spans: &[Span]) -> Vec<(String, usize)> {
    let mut m: HashMap<&str, usize> = HashMap::new();
    for s in spans {
        *m.entry(&s.name).or_default() += 1;
    }
    let mut v: Vec<(String, usize)> = m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    v.sort();
    v
}

/// The nearest ancestor of `span` named `name`, following parent ids through `spans`.
fn ancestor<'a>(spans: &'a [Span], span: &Span, name: &str) -> Option<&'a Span> {
    let mut at = by_id(spans, &span.parent_span_id)?;
    for _ in 0..64 {
        if at.name == name {
            return Some(at);
        }
        at = by_id(spans, &at.parent_span_id)?;
    }
    None
}

#[test]
fn a_distributed_round_is_one_trace_across_processes() {
    let Some(srv) = qorch_net::local_server::start_or_skip(&[], "cli_otlp") else {
        return;
    };
    let c = collector();
    simulate_exporting(
        &c,
        &["--nats", &srv.url(), "--nodes", "2"],
        &[("QORCH_FRAME_KEY", "cli-otlp-test-key-0123456789abcdef")],
    );
    let spans = spans(&c.received.lock().unwrap());
    let coordinator: Vec<&Span> = spans.iter().filter(|s| s.command == "simulate").collect();
    let nodes: Vec<&Span> = spans.iter().filter(|s| s.command == "node").collect();
    let mut node_pids: Vec<i64> = nodes.iter().map(|s| s.pid).collect();
    node_pids.sort_unstable();
    node_pids.dedup();
    assert_eq!(
        node_pids.len(),
        2,
        "both node processes export: {:?}",
        names(&spans)
    );
    let calls: Vec<&Span> = nodes
        .iter()
        .copied()
        .filter(|s| s.name == "control_call")
        .collect();
    assert!(!calls.is_empty(), "{:?}", names(&spans));
    let remote: Vec<&Span> = coordinator
        .iter()
        .copied()
        .filter(|s| s.name == "remote_round")
        .collect();
    // Collection and delivery of 3 rounds.
    assert_eq!(remote.len(), 6, "{:?}", names(&spans));
    for call in &calls {
        // The node's span is the coordinator's span's child, in the coordinator's trace.
        let parent = by_id(&spans, &call.parent_span_id).unwrap_or_else(|| {
            panic!("the parent of a node's control_call was exported: {call:?}")
        });
        assert_eq!(parent.name, "remote_round");
        assert_eq!(parent.command, "simulate");
        assert_eq!(parent.trace_id, call.trace_id);
        // Its fields name the same ids as the exported ones.
        assert_eq!(call.attributes["trace_id"], hex(&call.trace_id));
        assert_eq!(call.attributes["parent_span_id"], hex(&parent.span_id));
    }
    // Every remote round hangs under the optimizer's round, and each node took part in
    // every collection.
    for r in &remote {
        let round = ancestor(&spans, r, "round").expect("remote_round under a round");
        assert_eq!(round.trace_id, r.trace_id);
        if r.attributes["what"] == "collect" {
            let answered: Vec<i64> = calls
                .iter()
                .filter(|c| c.parent_span_id == r.span_id)
                .map(|c| c.pid)
                .collect();
            assert_eq!(answered.len(), 2, "a collection reaches both nodes");
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[test]
fn an_unusable_endpoint_stops_the_command_before_it_runs() {
    for (value, says) in [
        ("ftp://collector:4318", "expected an http:// URL"),
        ("https://collector:4318", "plain http only"),
        ("http://user:hunter2@collector:4318", "no user info"),
    ] {
        let out = output_within(
            qorch()
                .args(["simulate", "--agents", "10", "--clusters", "1"])
                .env("OTEL_EXPORTER_OTLP_ENDPOINT", value),
            LIMIT,
        );
        assert_eq!(out.status.code(), Some(2), "{value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("OTEL_EXPORTER_OTLP_ENDPOINT"), "{err}");
        assert!(err.contains(says), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        assert!(out.stdout.is_empty());
    }
    let out = output_within(
        qorch()
            .args(["simulate", "--agents", "10", "--clusters", "1"])
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
            .env("QORCH_OTLP_FILTER", "[not a filter"),
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("QORCH_OTLP_FILTER"), "{err}");
    let _ = std::io::stderr().flush();
}
