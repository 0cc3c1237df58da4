//! `qorch bench ...`: benchmarks that measure qorch and its baselines in the same run.

mod ask;
mod mailbox;
mod nats;
mod overhead;
mod peers;
mod runtime;
mod scheduler;
mod sweep;

use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub(crate) enum BenchCommand {
    /// Priority mailbox against tokio mpsc and crossbeam-channel: throughput with 1 and 4
    /// producers, High-priority latency under a Low flood, and the heap bytes of an empty
    /// mailbox.
    Mailbox(mailbox::Args),
    /// The actor runtime against plain actix actors: spawn time, memory per agent, ring and
    /// hierarchical report throughput; and the ask round trip of actix, ractor and kameo (run
    /// by the `qorch-peers` binary).
    Runtime(runtime::Args),
    /// One round of the `EnhancedQuboScheduler` on a synthetic problem of N agents in K
    /// clusters over P pools: round time, objective, Lagrangian bound, efficiency.
    Scheduler(scheduler::Args),
    /// One scenario in one process and over 2 and 4 local node processes joined by NATS:
    /// messages per second, messages across processes per second, round latency.
    Nats(nats::Args),
    /// The runtime's communication overhead: the same agent work in the runtime and in a
    /// plain loop on as many threads.
    Overhead(overhead::Args),
    /// A sweep's parallel speed-up: the same runs one at a time and `--jobs` at a time,
    /// back to back.
    Sweep(sweep::Args),
}

pub(crate) fn run(cmd: &BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Mailbox(args) => mailbox::run(args),
        BenchCommand::Runtime(args) => runtime::run(args),
        BenchCommand::Scheduler(args) => scheduler::run(args),
        BenchCommand::Overhead(args) => overhead::run(args),
        BenchCommand::Nats(args) => nats::run(args),
        BenchCommand::Sweep(args) => sweep::run(args),
    }
}
