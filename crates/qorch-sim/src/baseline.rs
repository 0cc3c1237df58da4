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

use rayon::prelude::*;

use crate::model::{AgentModel, ModelSpec, Task};

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

/// The plain loop: per thread, its agents' models.
pub(crate) struct Baseline {
    threads: usize,
    lanes: Vec<Vec<AgentModel>>,
    thread_of: Vec<u32>,
    pool: rayon::ThreadPool,
    pub(crate) totals: BaselineRun,
}

impl Baseline {
    /// A loop on `threads` threads; `thread_of[a]` is the thread agent `a` lives on.
    pub(crate) fn new(spec: &ModelSpec, threads: usize, thread_of: Vec<u32>) -> Baseline {
        let threads = threads.max(1);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a thread pool of the runtime's size");
        let mut b = Baseline {
            threads,
            lanes: Vec::new(),
            thread_of: Vec::new(),
            pool,
            totals: BaselineRun::default(),
        };
        b.regroup(spec, thread_of);
        b
    }

    /// Places the agents on threads anew (after agents moved between clusters).
    pub(crate) fn regroup(&mut self, spec: &ModelSpec, thread_of: Vec<u32>) {
        let mut lanes: Vec<Vec<AgentModel>> = (0..self.threads).map(|_| Vec::new()).collect();
        for id in 0..spec.agents() {
            lanes[thread_of[id as usize] as usize % self.threads].push(spec.build(id));
        }
        self.lanes = lanes;
        self.thread_of = thread_of;
    }

    /// Runs tick `t`: every live agent's tick, then every task handled by its receiver's
    /// thread. `alive(a)` says whether agent `a` works at this tick (lost sub-clusters stop).
    pub(crate) fn tick(&mut self, spec: &ModelSpec, t: u64, alive: &(dyn Fn(u32) -> bool + Sync)) {
        let threads = self.threads;
        let (lanes, thread_of) = (&self.lanes, &self.thread_of);
        let start = Instant::now();
        let (sent, handled) = self.pool.install(|| {
            // Phase 1: every agent's tick; its tasks sorted by the receiver's thread.
            let outboxes: Vec<Vec<Vec<Task>>> = lanes
                .par_iter()
                .map(|lane| {
                    let mut by_thread: Vec<Vec<Task>> = vec![Vec::new(); threads];
                    let mut out = Vec::new();
                    let mut acc = 0_u64;
                    for m in lane {
                        if !alive(m.id) {
                            continue;
                        }
                        acc = acc.wrapping_add(spec.tick(m, t, &mut out));
                        for task in &out {
                            by_thread[thread_of[task.to as usize] as usize % threads].push(*task);
                        }
                    }
                    std::hint::black_box(acc);
                    by_thread
                })
                .collect();
            let sent: u64 = outboxes.iter().flatten().map(|v| v.len() as u64).sum();
            // Phase 2: every thread handles the tasks addressed to its agents.
            let handled = (0..threads)
                .into_par_iter()
                .map(|w| {
                    let mut n = 0_u64;
                    let mut acc = 0_u64;
                    for from in &outboxes {
                        for task in &from[w] {
                            if alive(task.to) {
                                acc = acc.wrapping_add(ModelSpec::handle(task));
                                n += 1;
                            }
                        }
                    }
                    std::hint::black_box(acc);
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
