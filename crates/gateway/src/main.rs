//! `firebreak-gateway`: the gateway as a program of its own, for the machine beside a
//! cluster. It links no window and no WebKit (CI checks with `ldd`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use firebreak_gateway::cli::{run, GatewayArgs};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The gateway beside a cluster: its Prometheus, Alertmanager and Kubernetes API as
/// Firebreak protocol v1.
#[derive(Debug, Parser)]
#[command(name = "firebreak-gateway", version)]
struct Cli {
    /// Where the journal lives (`gateway/journal.db` below it). The systemd unit sets it.
    #[arg(long, env = "FIREBREAK_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    args: GatewayArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    firebreak_common::process::serve_main("firebreak-gateway", async move {
        let data_dir = match (&cli.data_dir, &cli.args.config) {
            (Some(dir), _) => dir.clone(),
            (None, None) => PathBuf::new(),
            (None, Some(_)) => {
                anyhow::bail!("say where the journal lives: --data-dir DIR or FIREBREAK_DATA_DIR")
            }
        };
        run(cli.args, &data_dir).await
    })
}
