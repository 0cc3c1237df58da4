//! The baseline of the communication overhead: the same agents doing the same work on the
//! same ticks, in a plain loop (no actors, mailboxes, routing or supervision) on as many
//! threads as the runtime has workers, agents grouped on threads as the runtime groups them.

use std::time::Instant;

use rayon::prelude::*;

use crate::model::{AgentModel, ModelSpec, Task};

/// What the plain loop did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct BaselineRun {
    /// Wall-clock seconds of the ticks.
    pub(crate) seconds: f64,
    /// Messages sent by the agents' ticks.
    pub(crate) sent: u64,
    /// Messages handled.
    pub(crate) handled: u64,
}

/// One thread's share: its agents' models.
struct Lane {
    models: Vec<AgentModel>,
}

/// Runs `ticks` in a plain loop. `thread_of[a]` is the thread agent `a` lives on;
/// `alive(a, t)` says whether agent `a` works at tick `t` (lost sub-clusters stop).
pub(crate) fn run(
    spec: &ModelSpec,
    threads: usize,
    thread_of: &[u32],
    ticks: &[u64],
    alive: &(dyn Fn(u32, u64) -> bool + Sync),
) -> BaselineRun {
    let threads = threads.max(1);
    let mut lanes: Vec<Lane> = (0..threads).map(|_| Lane { models: Vec::new() }).collect();
    for id in 0..spec.agents() {
        lanes[thread_of[id as usize] as usize % threads]
            .models
            .push(spec.build(id));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a thread pool of the runtime's size");
    let start = Instant::now();
    let mut handled = 0_u64;
    let mut sent = 0_u64;
    pool.install(|| {
        for &t in ticks {
            // Phase 1: every agent's tick; its tasks sorted by the receiver's thread.
            let outboxes: Vec<Vec<Vec<Task>>> = lanes
                .par_iter()
                .map(|lane| {
                    let mut by_thread: Vec<Vec<Task>> = vec![Vec::new(); threads];
                    let mut out = Vec::new();
                    let mut acc = 0_u64;
                    for m in &lane.models {
                        if !alive(m.id, t) {
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
            sent += outboxes
                .iter()
                .flatten()
                .map(|v| v.len() as u64)
                .sum::<u64>();
            // Phase 2: every thread handles the tasks addressed to its agents.
            handled += (0..threads)
                .into_par_iter()
                .map(|w| {
                    let mut n = 0_u64;
                    let mut acc = 0_u64;
                    for from in &outboxes {
                        for task in &from[w] {
                            if alive(task.to, t) {
                                acc = acc.wrapping_add(ModelSpec::handle(task));
                                n += 1;
                            }
                        }
                    }
                    std::hint::black_box(acc);
                    n
                })
                .sum::<u64>();
        }
    });
    BaselineRun {
        seconds: start.elapsed().as_secs_f64(),
        sent,
        handled,
    }
}
