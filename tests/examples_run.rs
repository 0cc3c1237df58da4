//! Runs the quick examples (built by `cargo test`, which compiles every example) and checks
//! what they print. The large simulation is built but not run here: it takes minutes in a
//! debug build.

use std::path::PathBuf;
use std::process::Command;

/// The example binary next to this test's binary (`target/<profile>/examples/<name>`).
fn example(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?.parent()?.join("examples");
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    path.is_file().then_some(path)
}

fn run(name: &str) -> Option<String> {
    let Some(path) = example(name) else {
        // `cargo test --workspace` builds the examples; a run of this test alone may not.
        eprintln!(
            "SKIPPED: example `{name}` is not built; run `cargo test --workspace` (or \
             `cargo build -p qorch --examples`) first"
        );
        return None;
    };
    let out = Command::new(&path).output().expect("the example runs");
    assert!(
        out.status.success(),
        "{name} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).expect("utf-8"))
}

#[test]
fn quickstart_asks_on_an_interval_and_watches() {
    let Some(out) = run("quickstart") else { return };
    assert_eq!(out.matches(" counted ").count(), 5, "{out}");
    assert!(out.contains("reason: Stopped"), "{out}");
    assert!(out.contains("the app asked: "), "{out}");
}

#[test]
fn rebalance_serves_agents_within_the_pools() {
    let Some(out) = run("rebalance") else { return };
    assert!(out.contains("of 10 served, efficiency"), "{out}");
    assert_eq!(out.matches(", got ").count(), 10, "{out}");
}

#[test]
fn priority_mailbox_example_runs() {
    run("priority_mailbox");
}

#[test]
fn embed_tokio_example_runs() {
    run("embed_tokio");
}

#[cfg(feature = "sim")]
#[test]
fn fault_injection_accounts_for_every_message() {
    let Some(out) = run("fault_injection") else {
        return;
    };
    assert!(out.contains("(0 unaccounted)"), "{out}");
}

#[cfg(feature = "sim")]
#[test]
fn simulate_custom_counts_what_its_workload_sends() {
    let Some(out) = run("simulate_custom") else {
        return;
    };
    assert!(out.contains("pipeline: 8 leaves, "), "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("messages: "))
        .unwrap_or_else(|| panic!("no messages line: {out}"));
    let sent = line.split_whitespace().nth(1).unwrap();
    assert!(
        line.contains(&format!("(the workload says {sent})")),
        "{line}"
    );
    assert!(line.contains("10 panics (0 unaccounted)"), "{line}");
}

#[test]
fn qaoa_subsolver_compares_both_solvers() {
    let Some(out) = run("qaoa_subsolver") else {
        return;
    };
    let solver_of = |l: &str| l.split_whitespace().nth(1).map(str::to_owned);
    let rows: Vec<String> = out.lines().skip(1).filter_map(solver_of).collect();
    assert_eq!(rows.iter().filter(|s| *s == "qaoa").count(), 3, "{out}");
    assert_eq!(rows.iter().filter(|s| *s == "default").count(), 3, "{out}");
}

#[cfg(feature = "net")]
#[test]
fn nats_gateway_example_crosses_processes() {
    if qorch::net::local_server::find_binary().is_none()
        && std::env::var_os("QORCH_REQUIRE_NATS").is_none()
    {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED nats_gateway: nats-server is not installed (apt-get install nats-server)"
        );
        return;
    }
    let Some(out) = run("nats_gateway") else {
        return;
    };
    assert!(out.contains("rally of 10 hits ended at agent/1"), "{out}");
    assert!(
        out.contains("east sent 5 envelopes to west, west 4 to east"),
        "{out}"
    );
}
