//! Logging: readable lines on stderr, and a daily-rotated file in the data dir's `logs/`.
//! `RUST_LOG` picks what is logged (default: `info` for Firebreak, `warn` for libraries).

use std::path::Path;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

/// Log files kept before the oldest is removed.
const KEPT_FILES: usize = 7;

/// Installs the global subscriber. Keep the guard alive: dropping it flushes the file.
/// A log dir that cannot be created costs the file, never the run.
pub fn init(log_dir: &Path) -> Option<WorkerGuard> {
    let stderr = stderr_layer();

    let appender = std::fs::create_dir_all(log_dir).ok().and_then(|_| {
        tracing_appender::rolling::Builder::new()
            .rotation(tracing_appender::rolling::Rotation::DAILY)
            .filename_prefix("firebreak")
            .filename_suffix("log")
            .max_log_files(KEPT_FILES)
            .build(log_dir)
            .ok()
    });
    match appender {
        Some(appender) => {
            let (writer, guard) = tracing_appender::non_blocking(appender);
            let file = fmt::layer()
                .with_writer(writer)
                .with_ansi(false)
                .with_filter(filter());
            let _ = tracing_subscriber::registry()
                .with(stderr)
                .with(file)
                .try_init();
            Some(guard)
        }
        None => {
            let _ = tracing_subscriber::registry().with(stderr).try_init();
            tracing::warn!(dir = %log_dir.display(), "cannot write log files; logging to stderr only");
            None
        }
    }
}

/// Installs the global subscriber for a server: stderr only, which systemd's journal (or
/// the container runtime) keeps and rotates.
pub fn init_stderr() {
    let _ = tracing_subscriber::registry()
        .with(stderr_layer())
        .try_init();
}

/// `RUST_LOG`, else `info` for Firebreak's crates and `warn` for libraries.
fn filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn,firebreak=info"))
}

/// Readable lines on stderr, without the module path.
fn stderr_layer<S>() -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_filter(filter())
}
