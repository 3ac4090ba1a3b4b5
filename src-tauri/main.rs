// No console window behind the app on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

/// mimalloc for every allocation the Rust side makes (see Cargo.toml; WebKit keeps its own).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The command line, given the window to open when no subcommand is asked for.
fn main() -> std::process::ExitCode {
    firebreak_cli::main(&firebreak::desktop::WINDOW)
}
