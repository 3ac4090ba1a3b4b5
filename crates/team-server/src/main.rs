//! `firebreak-team-server`: the team server as a program of its own, for the machine
//! beside PostgreSQL. It links no window and no WebKit (CI checks with `ldd`).

use std::process::ExitCode;

use clap::Parser;
use firebreak_team_server::cli::{run, TeamServerArgs};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The team server: incidents worked by several Firebreak consoles, kept in PostgreSQL.
#[derive(Debug, Parser)]
#[command(name = "firebreak-team-server", version)]
struct Cli {
    #[command(flatten)]
    args: TeamServerArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    firebreak_common::process::serve_main("firebreak-team-server", run(cli.args))
}
