//! Process-wide pieces every entry point needs: the TLS provider, the stop signal, and
//! the shape of a server's `main`.
//! They live here, low in the tree, so no module reaches up into the command line for them.

/// rustls needs one process-wide crypto provider before the first wss connection
/// (without it, connecting panics). Installing twice is harmless: the first one stays.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// An error and its causes on one line, leaving out a cause its parent already quotes
/// (an I/O error wrapped by a library repeats it word for word).
pub fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain().map(ToString::to_string) {
        if line.ends_with(&cause) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&cause);
    }
    line
}

/// The body of a server's `main`: the TLS provider, logging to stderr, a runtime, and
/// `work` on it; an error ends as one line on stderr, prefixed with `program`, and exit
/// status 1.
pub fn serve_main<F>(program: &str, work: F) -> std::process::ExitCode
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    install_tls_provider();
    crate::logging::init_stderr();
    let result = tokio::runtime::Runtime::new()
        .map_err(|e| anyhow::Error::new(e).context("cannot start the async runtime"))
        .and_then(|runtime| runtime.block_on(work));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{program}: {}", one_line(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn an_error_line_keeps_every_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let wrapped = anyhow::Error::new(io)
            .context("error communicating with database: refused")
            .context("cannot connect to the team database");
        assert_eq!(
            one_line(&wrapped),
            "cannot connect to the team database: error communicating with database: refused"
        );
        let distinct = anyhow::anyhow!("disk full").context("cannot record the event");
        assert_eq!(one_line(&distinct), "cannot record the event: disk full");
    }
}
