//! Embedding qorch in an application that already runs its own tokio runtime.
//!
//! The actor system runs on its own threads; the application talks to it through a cloneable
//! `RuntimeHandle` whose async methods work from any tokio task.
//!
//! Run with `cargo run --release -p qorch --example embed_tokio`.

use std::time::Duration;

use qorch::protocol::{Address, Message, Priority};
use qorch::{Agent, Context, QuantumOrchestrator};

/// Requests the application sends in, and the answers agents send back.
#[derive(Debug, Clone)]
enum Job {
    /// Square this number and tell the application.
    Square(u64),
    /// The answer.
    Squared { n: u64, square: u64 },
}

impl Message for Job {
    fn priority(&self) -> Priority {
        Priority::Normal
    }
}

/// A worker agent.
struct Worker {
    done: u64,
}

impl Agent for Worker {
    type Msg = Job;

    fn handle(&mut self, job: Job, ctx: &mut Context<'_, Job>) -> qorch::runtime::AgentResult {
        if let Job::Square(n) = job {
            self.done += 1;
            ctx.send_to(Address::Orchestrator, Job::Squared { n, square: n * n });
        }
        Ok(())
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // The application's own runtime is already running here.
    let rt = QuantumOrchestrator::<Worker>::builder()
        .workers(2)
        .build()
        .expect("runtime starts");
    let manager = rt.manager();
    let cluster = manager.create_cluster("workers").expect("cluster");
    let workers = manager
        .spawn_agents(cluster.into(), 16, |_| Worker { done: 0 })
        .expect("agents");
    let handle = rt.handle();

    // Application tasks feed jobs concurrently...
    let feeders: Vec<_> = (0..4_u64)
        .map(|t| {
            let (handle, workers) = (handle.clone(), workers.clone());
            tokio::spawn(async move {
                for i in 0..250 {
                    let n = t * 250 + i;
                    let to = workers[(n % workers.len() as u64) as usize];
                    handle
                        .send(&to, Job::Square(n))
                        .await
                        .expect("runtime running");
                }
            })
        })
        .collect();
    for f in feeders {
        f.await.expect("feeder finished");
    }

    // ... and another collects the answers.
    let mut sum = 0;
    for _ in 0..1000 {
        let env = tokio::time::timeout(Duration::from_secs(10), handle.recv())
            .await
            .expect("answers arrive")
            .expect("runtime running");
        if let Job::Squared { n, square } = env.payload {
            assert_eq!(square, n * n);
            sum += square;
        }
    }
    let status = handle.status().await.expect("status");
    println!(
        "1000 jobs answered (sum of squares {sum}); runtime status: {}",
        status.worst()
    );

    // Shutting down blocks; do it off the async workers.
    let report = tokio::task::spawn_blocking(move || rt.shutdown())
        .await
        .expect("shutdown");
    println!(
        "handled {} messages, {} left anywhere",
        report.stats.handled, report.left_in_outboxes
    );
}
