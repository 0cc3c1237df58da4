//! A large simulation: 100,000 agents by default, a million with `--agents 1000000`.
//!
//! Run with `cargo run --release -p qorch --example large_simulation [-- --agents N]`.
//! The agents do little work per tick here (this example measures the runtime and the
//! optimizer at scale, not the agents); the report is printed as a table.

use qorch::sim::{Progress, Scenario};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut agents = 100_000_usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--agents" => agents = args.next().ok_or("--agents needs a number")?.parse()?,
            other => return Err(format!("unknown argument {other}; use --agents N").into()),
        }
    }
    let mut s = Scenario {
        name: format!("large-{agents}"),
        rounds: 3,
        ticks_per_round: 1,
        faults: Vec::new(),
        ..Scenario::default()
    };
    s.topology.agents = agents;
    s.topology.clusters = (agents / 1_000).clamp(1, 1_000);
    s.pools.count = 50;
    s.behaviour.message_work = 100;
    s.behaviour.tick_work = 1_000;
    s.clustering.every = 2;
    let started = std::time::Instant::now();
    let out = qorch::sim::run(&s, &mut |p| match p {
        Progress::Ready { agents, .. } => {
            eprintln!(
                "{agents} agents spawned in {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
        Progress::Round(r) => eprintln!(
            "round {}: {:.2} s, efficiency {:.4}, {} of {} served",
            r.round, r.seconds, r.efficiency, r.served, r.agents
        ),
        _ => {}
    })?;
    println!("{}", out.report.summary_table(&out.timings));
    Ok(())
}
