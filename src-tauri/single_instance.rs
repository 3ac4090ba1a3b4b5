//! One console window per data dir. A second launch on the same data dir brings the
//! running window to the front and exits, so two windows never work one store (two
//! drivers of its actions, two writers of its streams).
//!
//! Per data dir rather than per user: `--data-dir` runs (a second on-call rotation, the
//! tests) stay independent of each other. The first window holds an exclusive lock on
//! `console.lock` in the data dir (released by the OS however the process ends) and
//! listens on `console.sock` beside it; a later launch that finds the lock taken sends
//! `focus` there.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;

/// What a launch found.
pub enum Claim {
    /// This is the first window: keep the guard for as long as the window lives, and
    /// call `on_focus` for every later launch (see [`Guard::serve`]).
    First(Guard),
    /// A window is already open on this data dir; it was asked to come to the front.
    Running,
}

pub struct Guard {
    _lock: File,
    #[cfg(unix)]
    listener: Option<std::os::unix::net::UnixListener>,
}

/// Claims the data dir for this window, or asks the window that has it to come forward.
pub fn claim(root: &Path) -> std::io::Result<Claim> {
    std::fs::create_dir_all(root)?;
    let lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(root.join("console.lock"))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            ask_to_focus(root);
            return Ok(Claim::Running);
        }
        Err(TryLockError::Error(e)) => return Err(e),
    }
    #[cfg(unix)]
    {
        let socket = root.join("console.sock");
        // Left behind by a window that died: we hold the lock, so it is nobody's.
        let _ = std::fs::remove_file(&socket);
        let listener = std::os::unix::net::UnixListener::bind(&socket)
            .map_err(|e| tracing::warn!(error = %e, path = %socket.display(), "a second launch cannot reach this window"))
            .ok();
        Ok(Claim::First(Guard {
            _lock: lock,
            listener,
        }))
    }
    #[cfg(not(unix))]
    Ok(Claim::First(Guard { _lock: lock }))
}

impl Guard {
    /// Calls `on_focus` for each later launch, on a thread of its own, for as long as the
    /// process lives.
    pub fn serve(&mut self, on_focus: impl Fn() + Send + 'static) {
        #[cfg(unix)]
        if let Some(listener) = self.listener.take() {
            let spawned = std::thread::Builder::new()
                .name("single-instance".into())
                .spawn(move || {
                    use std::io::Read;
                    for stream in listener.incoming().flatten() {
                        let mut word = [0u8; 5];
                        let mut stream = stream;
                        if stream.read_exact(&mut word).is_ok() && &word == b"focus" {
                            on_focus();
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "a second launch cannot reach this window");
            }
        }
        #[cfg(not(unix))]
        let _ = on_focus;
    }
}

fn ask_to_focus(root: &Path) {
    #[cfg(unix)]
    {
        use std::io::Write;
        match std::os::unix::net::UnixStream::connect(root.join("console.sock")) {
            Ok(mut s) => {
                let _ = s.write_all(b"focus");
            }
            Err(e) => tracing::debug!(error = %e, "the running window did not answer"),
        }
    }
    #[cfg(not(unix))]
    let _ = root;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_claim_on_one_data_dir_asks_the_first_to_come_forward() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let Ok(Claim::First(mut first)) = claim(dir.path()) else {
            panic!("the first launch must get the data dir");
        };
        let (tx, rx) = std::sync::mpsc::channel();
        first.serve(move || {
            let _ = tx.send(());
        });
        assert!(
            matches!(claim(dir.path()), Ok(Claim::Running)),
            "a second launch on the same data dir must not open another window"
        );
        #[cfg(unix)]
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("the first window is asked to come forward");
        let other = tempfile::tempdir().expect("a temp dir");
        assert!(
            matches!(claim(other.path()), Ok(Claim::First(_))),
            "another data dir is another console"
        );
    }
}
