//! One driver of actions per store. Two processes on one store (a window and
//! `firebreak actions --resume`, two `firebreak act`s) must never drive the same action
//! twice (a double verification, two proposed failovers): whoever sends or follows
//! actions holds an exclusive lock on a file beside the database for as long as it runs.
//! The OS releases the lock when the process ends, however it ends (kill -9 included).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Held while this process drives the store's actions.
#[derive(Debug)]
pub struct DriverLock {
    _file: File,
    path: PathBuf,
}

impl DriverLock {
    /// The lock file of the store at `database`.
    pub fn path_for(database: &Path) -> PathBuf {
        let mut name = database.as_os_str().to_owned();
        name.push(".actions.lock");
        PathBuf::from(name)
    }

    /// Takes the lock, saying who we are (`what`, e.g. "the console window"); when another
    /// process holds it, says who does.
    pub fn acquire(database: &Path, what: &str) -> Result<DriverLock, String> {
        let path = Self::path_for(database);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(format!(
                    "actions on this store are driven by {} right now; only one process drives \
                     them, so nothing is sent or followed twice: use that one, or stop it first",
                    if holder.is_empty() {
                        "another Firebreak process"
                    } else {
                        holder
                    }
                ));
            }
            Err(TryLockError::Error(e)) => {
                return Err(format!("cannot lock {}: {e}", path.display()))
            }
        }
        let _ = file.set_len(0);
        let _ = file.seek(SeekFrom::Start(0));
        let _ = write!(file, "{what} (pid {})", std::process::id());
        let _ = file.flush();
        Ok(DriverLock { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_driver_is_refused_with_who_holds_it_and_may_take_over_after() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let db = dir.path().join("firebreak.db");
        let first = DriverLock::acquire(&db, "the console window").expect("the first driver");
        let refused = DriverLock::acquire(&db, "firebreak actions --resume")
            .expect_err("a second driver on one store must be refused");
        assert!(
            refused.contains("the console window (pid"),
            "the refusal names who drives: {refused}"
        );
        drop(first);
        DriverLock::acquire(&db, "firebreak actions --resume")
            .expect("once the first has gone, another may drive");
    }
}
