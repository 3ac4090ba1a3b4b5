//! `firebreak-sim`: the simulated fleet as a program of its own (demos, and tests of
//! tools that speak protocol v1), without the console.

use std::process::ExitCode;

use clap::Parser;
use firebreak_sim::cli::{run, SimArgs};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A simulated AI model-serving fleet speaking Firebreak protocol v1.
#[derive(Debug, Parser)]
#[command(name = "firebreak-sim", version)]
struct Cli {
    #[command(flatten)]
    args: SimArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    firebreak_common::process::serve_main("firebreak-sim", run(cli.args))
}
