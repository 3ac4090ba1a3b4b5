//! The command line: one binary, a window by default, headless subcommands beside it.
//! Headless subcommands never touch the GUI stack.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use crate::paths::DataDir;
use crate::store::Store;

#[derive(Debug, Parser)]
#[command(
    name = "firebreak",
    version,
    about = "Incident-command console for AI model-serving fleets",
    long_about = "Incident-command console for AI model-serving fleets.\n\n\
                  Without a subcommand, opens the console window."
)]
pub struct Cli {
    /// Where the database and logs live (default: the OS app-data dir).
    #[arg(long, global = true, env = "FIREBREAK_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List incidents, unresolved and most severe first.
    Incidents {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print one incident's timeline.
    Timeline {
        /// The incident's number, as `firebreak incidents` shows it.
        incident: i64,
        #[arg(long)]
        json: bool,
    },
}

/// Parses the command line and runs it. Errors end as one readable line and exit code 1.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("firebreak: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let data_dir = DataDir::resolve(cli.data_dir)?;
    let _log_guard = crate::logging::init(&data_dir.logs());
    match cli.command {
        None => open_window(data_dir),
        Some(command) => {
            let runtime =
                tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            runtime.block_on(headless(command, &data_dir))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn headless(command: Command, data_dir: &DataDir) -> Result<()> {
    let store = Store::open(&data_dir.database()).await?;
    let result = match command {
        Command::Incidents { json } => crate::report::print_incidents(&store, json).await,
        Command::Timeline { incident, json } => {
            crate::report::print_timeline(&store, incident, json).await
        }
    };
    store.close().await;
    result
}

#[cfg(feature = "desktop")]
fn open_window(data_dir: DataDir) -> Result<ExitCode> {
    if let Some(why) = no_display() {
        eprintln!("firebreak: {why}: the console window cannot open. Run `firebreak --help` for the headless commands.");
        return Ok(ExitCode::from(2));
    }
    crate::desktop::run(data_dir)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "desktop"))]
fn open_window(_: DataDir) -> Result<ExitCode> {
    eprintln!("firebreak: this build has no window (built without the `desktop` feature); see `firebreak --help`.");
    Ok(ExitCode::from(2))
}

/// On Linux a window needs an X11 or Wayland display; say so plainly instead of a GTK panic.
#[cfg(feature = "desktop")]
fn no_display() -> Option<&'static str> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let set = |v: &str| std::env::var_os(v).is_some_and(|s| !s.is_empty());
    (!set("DISPLAY") && !set("WAYLAND_DISPLAY"))
        .then_some("no display (DISPLAY and WAYLAND_DISPLAY are unset)")
}
