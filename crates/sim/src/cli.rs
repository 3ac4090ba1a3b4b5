//! `firebreak-sim` (and `firebreak sim`): the simulator as a command.

use anyhow::{Context, Result};

#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: std::net::SocketAddr,
    /// A built-in scenario name (see --list) or a path to a scenario .toml file.
    #[arg(long, required_unless_present = "list")]
    pub scenario: Option<String>,
    /// List the built-in scenarios and exit.
    #[arg(long)]
    pub list: bool,
    /// Seed of the simulation: the same seed tells the same story.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Simulated seconds per real second.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Extra synthetic events per second, for benchmarks.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Bearer token both interfaces require (default: a random one, printed on the third line).
    #[arg(long, env = "FIREBREAK_SIM_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Fault knobs, e.g. drop_every=500,duplicate=0.01,reorder=0.01,malformed=0.005,action_delay_ms=2000,action_fail=1
    #[arg(long, default_value = "")]
    pub faults: String,
    /// Events kept for clients that resume.
    #[arg(long, default_value_t = 200_000)]
    pub retain: usize,
    /// The cluster name in every event's source (/clusters/NAME).
    #[arg(long, default_value = "sim")]
    pub cluster: String,
    /// How many services in how many regions, as SERVICESxREGIONS (up to 1000x6): the
    /// demo's three services keep their names, the rest are numbered.
    #[arg(long, default_value = "3x2", value_name = "SERVICESxREGIONS")]
    pub fleet: crate::FleetShape,
    /// Whose metric names `/metrics` uses: generic (an ingress's http_requests_total),
    /// or a serving stack's own (vllm, vllm-0.9, triton, tgi, sglang, kserve).
    #[arg(long, default_value = "generic", value_name = "STACK")]
    pub metrics_stack: String,
}

/// Serves the simulated fleet until Ctrl-C or SIGTERM; prints its URLs (and the token
/// when it made one up), one per line, for scripts to read.
pub async fn run(args: SimArgs) -> Result<()> {
    use std::io::Write as _;

    use crate::{Faults, Scenario, SimOptions};

    if args.list {
        for s in Scenario::built_in()? {
            println!(
                "{:<22} {}",
                s.name,
                s.summary.split(". ").next().unwrap_or("")
            );
        }
        return Ok(());
    }
    let name = args.scenario.as_deref().unwrap_or_default();
    let scenario = Scenario::load(name)?;
    let generated = args.token.is_none();
    let token = args
        .token
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let mut opts = SimOptions::new(scenario, token);
    opts.listen = args.listen;
    opts.seed = args.seed;
    anyhow::ensure!(args.speed > 0.0, "--speed must be above 0");
    opts.speed = args.speed;
    opts.rate = args.rate;
    opts.faults = Faults::parse(&args.faults).context("--faults")?;
    opts.retain = args.retain;
    opts.cluster = args.cluster;
    opts.fleet = args.fleet;
    opts.metrics = crate::exposition::Naming::parse(&args.metrics_stack).with_context(|| {
        format!(
            "--metrics-stack {:?}: one of {}",
            args.metrics_stack,
            crate::exposition::Naming::NAMES
        )
    })?;
    let sim = crate::start(opts).await?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "events: {}", sim.events_url())?;
        writeln!(out, "actions: {}", sim.actions_url())?;
        if generated {
            writeln!(out, "token: {}", sim.token)?;
        }
        out.flush()?;
    }
    firebreak_common::process::shutdown_signal().await;
    sim.shutdown();
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Args as _;

    /// clap checks a command's definition only when it is parsed: a mistake in it (an
    /// argument conflicting with one that does not exist) would panic at the first run.
    #[test]
    fn the_command_line_is_well_formed() {
        super::SimArgs::augment_args(clap::Command::new("firebreak-sim")).debug_assert();
    }
}
