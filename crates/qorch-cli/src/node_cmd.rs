//! `qorch node --nats URL --join NAME`: a node process of distributed simulations. It hosts
//! the clusters the coordinator (`qorch simulate --nats URL --nodes K`) gives it, until the
//! run ends.

use anyhow::Context as _;
use clap::Args as ClapArgs;

use crate::nats_args::NatsArgs;

/// Runs a node process of distributed simulations.
#[derive(ClapArgs, Debug)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) nats: NatsArgs,
    /// This node's name (letters, digits, '-' and '_'), unique on the server.
    #[arg(long, value_name = "NAME")]
    pub(crate) join: String,
    #[command(flatten)]
    pub(crate) metrics: crate::metrics_endpoint::MetricsArgs,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let Some(config) = args.nats.config()? else {
        anyhow::bail!(
            "qorch node needs --nats URL (or {})",
            crate::nats_args::URL_ENV
        );
    };
    if config.frame_key.is_none() {
        anyhow::bail!(
            "qorch node needs the run's deployment key: --frame-key-file FILE or {} (the \
             coordinator's nodes get it from the coordinator)",
            crate::nats_args::KEY_ENV
        );
    }
    args.metrics.serve()?;
    qorch_sim::run_node(&config, &args.join).with_context(|| format!("node {}", args.join))
}
