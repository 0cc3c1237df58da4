//! `qorch_dashboard::serve` in an embedding application: the tree of its runtime, sampled
//! while a page (an event stream) is open, one level at a time; the feed's rounds and
//! events in the state; the end of the run in the last update.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use qorch_dashboard::{Event, RoundPoint};
use qorch_protocol::Address;
use qorch_runtime::{Agent, AgentResult, Context, QuantumOrchestrator};
use serde_json::Value;

struct Counter;

impl Agent for Counter {
    type Msg = u64;
    fn handle(&mut self, _: u64, _: &mut Context<'_, u64>) -> AgentResult {
        Ok(())
    }
}

/// A GET: the status code and the body (the answers carry their length).
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connects");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("writes");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("reads");
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status");
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (code, body)
}

/// Opens the event stream (a page) and returns its reader, past the headers.
fn open_stream(addr: SocketAddr) -> BufReader<TcpStream> {
    let mut s = TcpStream::connect(addr).expect("connects");
    write!(s, "GET /events HTTP/1.1\r\nHost: x\r\n\r\n").expect("writes");
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).expect("a status line");
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    r
}

/// The next update of an event stream.
fn next_update(r: &mut BufReader<TcpStream>) -> Value {
    loop {
        let mut line = String::new();
        assert!(
            r.read_line(&mut line).expect("reads") > 0,
            "the stream ended"
        );
        if let Some(data) = line.strip_prefix("data: ") {
            return serde_json::from_str(data).expect("an update is JSON");
        }
    }
}

#[test]
fn an_application_serves_its_runtime() {
    let rt = QuantumOrchestrator::<Counter>::builder()
        .build()
        .expect("a runtime");
    let m = rt.manager();
    for c in 0..3 {
        let cluster = Address::Cluster(m.create_cluster(&format!("c{c}")).expect("a cluster"));
        for s in 0..2 {
            let sub = m
                .create_sub_cluster(cluster, &format!("c{c}/s{s}"))
                .expect("a sub-cluster");
            m.spawn_agents(Address::SubCluster(sub), 10, |_| Counter)
                .expect("agents");
        }
    }
    let dashboard = qorch_dashboard::serve(&rt.handle(), "127.0.0.1:0").expect("serves");
    let addr = dashboard.local_addr();
    let (code, page) = get(addr, "/");
    assert_eq!(code, 200);
    assert!(page.contains("qorch dashboard"));
    assert!(get(addr, "/app.js").1.contains("EventSource"));

    dashboard.feed().round(RoundPoint {
        round: 1,
        efficiency: 0.97,
        energies: vec![-1.0; 1000],
        ..RoundPoint::default()
    });
    dashboard.feed().event(Event {
        round: 1,
        kind: "agent_panic".into(),
        count: 2,
        detail: "two agents panicked".into(),
        at_seconds: 0.0,
    });

    // A page opens: the tree is sampled, and its top level comes in an update.
    let mut page = open_stream(addr);
    let first = next_update(&mut page);
    assert_eq!(first["rounds"][0]["round"], 1);
    assert_eq!(
        first["rounds"][0]["energies"].as_array().map(Vec::len),
        Some(qorch_dashboard::ENERGIES_KEPT)
    );
    assert_eq!(first["events"][0]["kind"], "agent_panic");
    assert_eq!(first["observed"], true);
    let start = Instant::now();
    loop {
        let u = next_update(&mut page);
        assert!(
            u["rounds"].as_array().is_some_and(Vec::is_empty),
            "sent once"
        );
        if u["totals"]["agents"] == 60 {
            assert_eq!(u["totals"]["children"], 3);
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no tree: {u}");
    }
    let level = |query: &str| -> Value {
        let (code, body) = get(addr, &format!("/api/tree{query}"));
        assert_eq!(code, 200, "{query}: {body}");
        serde_json::from_str(&body).expect("JSON")
    };
    let top = level("?sort=name");
    assert_eq!(top["total"], 3);
    let tree = top["nodes"].as_array().expect("a list").clone();
    let names: Vec<&str> = tree.iter().filter_map(|n| n["name"].as_str()).collect();
    assert_eq!(names, ["c0", "c1", "c2"]);
    assert!(
        tree.iter()
            .all(|n| n["children"] == 2 && n["level"] == 0 && n["agents"] == 20)
    );
    let cut = level("?sort=agents&limit=2");
    assert_eq!(
        (cut["total"].as_u64(), cut["nodes"].as_array().map(Vec::len)),
        (Some(3), Some(2))
    );

    // One level at a time: a cluster's children on request, no deeper.
    let key = tree[0]["key"].as_str().expect("a key");
    let subs = level(&format!("?node={key}"));
    let subs = subs["nodes"].as_array().expect("a list");
    assert_eq!(subs.len(), 2);
    assert!(subs.iter().all(|n| n["agents"] == 10 && n["level"] == 1));
    assert_eq!(get(addr, "/api/tree?node=nowhere").0, 404);
    assert_eq!(get(addr, "/api/tree?sort=sideways").0, 400);

    // The end: the page's last update says so, then its stream ends.
    dashboard.feed().finish(Ok("all done".into()));
    dashboard.stop();
    let mut last = Value::Null;
    loop {
        let mut line = String::new();
        if page.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        if let Some(data) = line.strip_prefix("data: ") {
            last = serde_json::from_str(data).expect("JSON");
        }
    }
    assert_eq!(last["run"]["state"], "finished");
    assert_eq!(last["run"]["summary"], "all done");
    rt.shutdown();
}
