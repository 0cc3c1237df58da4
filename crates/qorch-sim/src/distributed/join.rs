//! The node processes of a run: gathering those that announce themselves
//! ([`qorch_net::Gathering`]) and starting the missing ones ([`SpawnNode`]).

use std::process::Child;
use std::sync::Arc;
use std::time::Duration;

use qorch_net::{Connection, Gathering, Subjects};

use crate::error::SimError;

/// Starts a node process with the given name (the CLI runs its own binary as
/// `qorch node --nats URL --join NAME`).
pub type SpawnNode = Arc<dyn Fn(&str) -> std::io::Result<Child> + Send + Sync>;

/// How long to listen for nodes already running before starting any (they announce every
/// [`qorch_net::ANNOUNCE_EVERY`]).
const FIRST_LISTEN: Duration = Duration::from_millis(600);

/// Waits for `nodes` nodes to announce themselves (for at most `timeout` once the missing
/// ones are started with `spawn`, into `children`); returns their names.
pub(super) async fn gather(
    control: &Connection,
    subjects: &Subjects,
    nodes: usize,
    spawn: Option<&SpawnNode>,
    timeout: Duration,
    children: &mut Vec<Child>,
) -> Result<Vec<String>, SimError> {
    let mut gathering = Gathering::open(control, subjects).await?;
    gathering.listen(FIRST_LISTEN).await;
    gathering.keep_first(nodes);
    if let Some(spawn) = spawn {
        let run = std::process::id();
        let mut k = 0;
        while gathering.len() + children.len() < nodes {
            let name = format!("node-{run}-{k}");
            k += 1;
            let child = spawn(&name).map_err(|source| SimError::SpawnNode {
                node: name.clone(),
                source,
            })?;
            tracing::info!(node = %name, pid = child.id(), "started a local node process");
            children.push(child);
        }
    }
    if !gathering.wait_for(nodes, timeout).await {
        return Err(SimError::Distributed(format!(
            "{} of {} nodes joined within {:?} ({}); start more with \
             `qorch node --nats URL --join NAME`",
            gathering.len(),
            nodes,
            timeout,
            gathering.names().collect::<Vec<_>>().join(", ")
        )));
    }
    Ok(gathering.names().take(nodes).map(str::to_owned).collect())
}
