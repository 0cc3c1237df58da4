//! The baseline of the communication overhead: the same agents doing the same work on the
//! same ticks, in a plain loop (no actors, mailboxes, routing or supervision) on as many
//! threads as the runtime has workers, agents grouped on threads as the runtime groups them.
//!
//! The driver runs each tick here right after the same tick in the runtime, while the
//! runtime is quiet, so that a slow spell of the machine (this is measured on shared virtual
//! machines) weighs on both alike. The quiet runtime's own background (heartbeats and
//! failure checks, about 3% of one core for 500 nodes) runs meanwhile and slows the loop a
//! little: the overhead is underestimated by at most that much.

use std::time::Instant;

use qorch_protocol::AgentId;
use rayon::prelude::*;

use crate::workload::{AgentWorkload, Task};

/// What the plain loop did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct BaselineRun {
    /// Wall-clock seconds of the ticks.
    pub(crate) seconds: f64,
    /// Messages sent by the agents' ticks.
    pub(crate) sent: u64,
    /// Messages handled.
    pub(crate) handled: u64,
}

/// The plain loop: every agent's profile, and the agents of each thread.
pub(crate) struct Baseline<W: AgentWorkload> {
    threads: usize,
    /// Agent id -> its profile.
    profiles: Vec<W::Profile>,
    /// Per thread, its agents in id order.
    lanes: Vec<Vec<u32>>,
    thread_of: Vec<u32>,
    pool: rayon::ThreadPool,
    pub(crate) totals: BaselineRun,
}

impl<W: AgentWorkload> Baseline<W> {
    /// A loop on `threads` threads; `thread_of[a]` is the thread agent `a` lives on.
    pub(crate) fn new(workload: &W, threads: usize, thread_of: Vec<u32>) -> Baseline<W> {
        let threads = threads.max(1);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a thread pool of the runtime's size");
        let profiles = (0..thread_of.len() as u32)
            .map(|a| workload.profile(AgentId(a)))
            .collect();
        let mut b = Baseline {
            threads,
            profiles,
            lanes: Vec::new(),
            thread_of: Vec::new(),
            pool,
            totals: BaselineRun::default(),
        };
        b.regroup(thread_of);
        b
    }

    /// Places the agents on threads anew (after agents moved between clusters).
    pub(crate) fn regroup(&mut self, thread_of: Vec<u32>) {
        let mut lanes: Vec<Vec<u32>> = (0..self.threads).map(|_| Vec::new()).collect();
        for (id, &thread) in thread_of.iter().enumerate() {
            lanes[thread as usize % self.threads].push(id as u32);
        }
        self.lanes = lanes;
        self.thread_of = thread_of;
    }

    /// Runs tick `t`: every live agent's tick, then every task handled by its receiver's
    /// thread. `alive(a)` says whether agent `a` works at this tick (lost sub-clusters stop).
    /// A task to an id that is no agent is sent and not handled (a dead letter in the
    /// runtime).
    pub(crate) fn tick(&mut self, workload: &W, t: u64, alive: &(dyn Fn(u32) -> bool + Sync)) {
        let threads = self.threads;
        let (profiles, lanes, thread_of) = (&self.profiles, &self.lanes, &self.thread_of);
        let start = Instant::now();
        let (sent, handled) = self.pool.install(|| {
            // Phase 1: every agent's tick; its tasks sorted by the receiver's thread.
            let outboxes: Vec<(u64, Vec<Vec<Task>>)> = lanes
                .par_iter()
                .map(|lane| {
                    let mut by_thread: Vec<Vec<Task>> = vec![Vec::new(); threads];
                    let mut out = Vec::new();
                    let mut sent = 0_u64;
                    for &a in lane {
                        if !alive(a) {
                            continue;
                        }
                        out.clear();
                        workload.tick(&profiles[a as usize], t, &mut out);
                        sent += out.len() as u64;
                        for task in &out {
                            if let Some(&w) = thread_of.get(task.to.0 as usize) {
                                by_thread[w as usize % threads].push(*task);
                            }
                        }
                    }
                    (sent, by_thread)
                })
                .collect();
            let sent: u64 = outboxes.iter().map(|(n, _)| n).sum();
            // Phase 2: every thread handles the tasks addressed to its agents.
            let handled = (0..threads)
                .into_par_iter()
                .map(|w| {
                    let mut n = 0_u64;
                    for (_, from) in &outboxes {
                        for task in &from[w] {
                            if alive(task.to.0) {
                                workload.handle(&profiles[task.to.0 as usize], task);
                                n += 1;
                            }
                        }
                    }
                    n
                })
                .sum::<u64>();
            (sent, handled)
        });
        self.totals.seconds += start.elapsed().as_secs_f64();
        self.totals.sent += sent;
        self.totals.handled += handled;
    }
}
