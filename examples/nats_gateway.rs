//! Two runtimes joined over NATS, as two processes of an application would be (here in one
//! process, for a short example): each hosts one cluster, the gateways carry what one
//! sends to the other's agents, and a ping-pong crosses between them.
//!
//! Needs Debian's `nats-server` (`apt-get install nats-server`): the example starts one on
//! a free port, or uses `QORCH_NATS_URL` if set.
//!
//! Run with `cargo run --release -p qorch --example nats_gateway`.

use std::sync::Arc;
use std::time::Duration;

use qorch::net::local_server::LocalServer;
use qorch::net::{Gateway, GatewayConfig, NatsConfig, RouteTable, Subjects};
use qorch::protocol::{Address, AgentId, ClusterId, Message};
use qorch::runtime::Factory;
use qorch::{Agent, Context, QuantumOrchestrator};
use serde::{Deserialize, Serialize};

/// A ball sent back and forth; messages that cross processes must serialize.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Ball {
    hits: u32,
}

impl Message for Ball {}

/// Returns the ball to its partner until it has been hit `rally` times.
struct Player {
    partner: AgentId,
    rally: u32,
}

impl Agent for Player {
    type Msg = Ball;

    fn handle(&mut self, ball: Ball, ctx: &mut Context<'_, Ball>) -> qorch::runtime::AgentResult {
        let ball = Ball {
            hits: ball.hits + 1,
        };
        if ball.hits >= self.rally {
            ctx.send_to(Address::Orchestrator, ball);
        } else {
            ctx.send_to(self.partner, ball);
        }
        Ok(())
    }
}

/// One "process": cluster `cluster` with agent `me`, joined to the server at `url`.
async fn side(
    url: &str,
    name: &str,
    cluster: u32,
    me: AgentId,
    partner: AgentId,
) -> Result<(QuantumOrchestrator<Player>, Gateway<Ball>), Box<dyn std::error::Error>> {
    let config = NatsConfig::new(url);
    // Every process knows where every agent lives: agent 0 in cluster 0, agent 1 in cluster 1.
    let routes = Arc::new(RouteTable::new());
    routes.place_agents([
        (AgentId(0), ClusterId(0), None),
        (AgentId(1), ClusterId(1), None),
    ]);
    let (mut gateway, link) = Gateway::new(
        GatewayConfig::new(name),
        Subjects::new(&config.prefix),
        routes,
    );
    let rt = QuantumOrchestrator::<Player>::builder()
        .workers(1)
        .remote(link)
        .build()?;
    let m = rt.manager();
    m.create_cluster_with_id(ClusterId(cluster), name)?;
    let factory: Factory<Player> = Arc::new(move |_| Player { partner, rally: 10 });
    m.spawn_agents_at(ClusterId(cluster).into(), &[me], &factory)?;
    // Data and control on separate connections.
    let data = config.connect(&format!("{name}/data")).await?;
    let control = config.connect(&format!("{name}/control")).await?;
    gateway
        .start(&data, &control, rt.handle(), &[ClusterId(cluster)])
        .await?;
    Ok((rt, gateway))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server;
    let url = if let Ok(url) = std::env::var("QORCH_NATS_URL") {
        url
    } else {
        server = LocalServer::start(&[])?;
        server.url()
    };
    let (a, ga) = side(&url, "east", 0, AgentId(0), AgentId(1)).await?;
    let (b, gb) = side(&url, "west", 1, AgentId(1), AgentId(0)).await?;

    // Serve: the ball crosses between the processes; the tenth hit is west's, whose agent
    // then tells its application.
    a.handle().send_to(AgentId(0), Ball { hits: 0 }).await?;
    let west = b.handle();
    let done = tokio::task::spawn_blocking(move || west.recv_blocking(Duration::from_secs(10)))
        .await?
        .ok_or("the rally did not finish")?;
    println!(
        "rally of {} hits ended at {}; east sent {} envelopes to west, west {} to east",
        done.payload.hits,
        done.from,
        ga.stats().envelopes_out,
        gb.stats().envelopes_out
    );
    let last = (a, b);
    let (a, b) = last;
    tokio::task::spawn_blocking(move || {
        a.shutdown();
        b.shutdown();
    })
    .await?;
    Ok(())
}
