//! `firebreak-gateway` (and `firebreak gateway`): serve a configuration, or check one.

use std::path::{Path, PathBuf};

use anyhow::Result;

/// What the gateway is asked to do.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("gateway_mode").args(["config", "check"])))]
#[command(args_conflicts_with_subcommands = true)]
pub struct GatewayArgs {
    #[command(subcommand)]
    pub command: Option<GatewayCommand>,
    /// Serve with this configuration until Ctrl-C or SIGTERM: the event stream from its
    /// durable journal (in the data dir), Alertmanager's webhook, Prometheus queries and
    /// the action API.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Check this configuration file (every mistake with file, line and key; exit 1 on
    /// any) and exit, for CI and for systemd before a restart.
    #[arg(long, value_name = "FILE")]
    pub check: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
pub enum GatewayCommand {
    /// Inspect Prometheus (and the Kubernetes API) and write a first configuration that
    /// discovers the serving fleet: each choice with why, what it could not decide marked
    /// QUESTION; `--check` accepts it as written.
    Init(crate::init::InitArgs),
    /// Write the configured services' objectives (`[services.slo]`) as Prometheus
    /// recording and alerting rules, on the burn-rate conditions consoles open incidents
    /// on: to standard output, or to `--out` (e.g. deploy/prometheus/slo-rules.yml).
    SloRules {
        /// The gateway's configuration.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Where to write the rules (default: standard output).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

/// Runs what `args` asks; the journal lives in `data_dir/gateway/`.
pub async fn run(args: GatewayArgs, data_dir: &Path) -> Result<()> {
    match args.command {
        Some(GatewayCommand::SloRules { config, out }) => {
            return slo_rules(&config, out.as_deref())
        }
        Some(GatewayCommand::Init(init)) => return crate::init::run(&init).await,
        None => {}
    }
    match (args.check, args.config) {
        (Some(check), _) => check_config(&check),
        (None, Some(path)) => serve(&path, data_dir).await,
        (None, None) => anyhow::bail!(
            "say --config FILE to serve, --check FILE to check, init --prometheus URL to write a \
             first configuration, or slo-rules --config FILE"
        ),
    }
}

fn slo_rules(path: &Path, out: Option<&Path>) -> Result<()> {
    let config = crate::config::load(path)?;
    let text = crate::slo::rules(&config, &path.display().to_string());
    match out {
        Some(out) => {
            std::fs::write(out, &text)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", out.display()))?;
            let n = config.services.iter().filter(|s| s.slo.is_some()).count();
            eprintln!("{}: the objectives of {n} service(s)", out.display());
        }
        None => print!("{text}"),
    }
    Ok(())
}

fn check_config(check: &Path) -> Result<()> {
    let config = crate::config::load(check)?;
    println!(
        "{}: ok: cluster {}, listening on {} ({}), {} token(s), {} service(s){}{}",
        check.display(),
        config.cluster,
        config.listen,
        if config.tls.is_some() {
            "TLS"
        } else {
            "loopback, no TLS"
        },
        config.tokens.len(),
        config.services.len(),
        if config.prometheus.is_some() {
            ", Prometheus"
        } else {
            ""
        },
        if config.alertmanager.is_some() {
            ", Alertmanager"
        } else {
            ""
        },
    );
    Ok(())
}

async fn serve(path: &Path, data_dir: &Path) -> Result<()> {
    let config = crate::config::load(path)?;
    let journal = data_dir.join("gateway").join("journal.db");
    let running = crate::serve::start(&config, &journal).await?;
    println!("gateway for cluster {}", config.cluster);
    println!("events: {}", running.events_url());
    println!("journal: {}", journal.display());
    firebreak_common::process::shutdown_signal().await;
    running.shutdown();
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Args as _;

    /// clap checks a command's definition only when it is parsed: a mistake in it (an
    /// argument conflicting with one that does not exist) would panic at the first run.
    #[test]
    fn the_command_line_is_well_formed() {
        super::GatewayArgs::augment_args(clap::Command::new("firebreak-gateway")).debug_assert();
    }
}
