//! Where Firebreak keeps its files.
//!
//! One data dir holds the database and the logs. It is the OS app-data dir unless
//! `--data-dir` or `FIREBREAK_DATA_DIR` names another (tests always do).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
    /// The user's runbook folder: the OS config dir's, or `<data dir>/runbooks` when the
    /// data dir was chosen (so a `--data-dir` run shares nothing with the user's own).
    runbooks: PathBuf,
}

impl DataDir {
    /// The chosen dir, or the OS default (`~/.local/share/firebreak` on Linux).
    pub fn resolve(chosen: Option<PathBuf>) -> Result<Self> {
        Ok(match chosen {
            Some(dir) => DataDir {
                runbooks: dir.join("runbooks"),
                root: dir,
            },
            None => {
                let dirs = directories::ProjectDirs::from("dev", "firebreak", "firebreak")
                    .context(
                    "cannot find the home directory to keep Firebreak's data in; pass --data-dir",
                )?;
                DataDir {
                    root: dirs.data_dir().to_owned(),
                    runbooks: dirs.config_dir().join("runbooks"),
                }
            }
        })
    }

    pub fn runbooks(&self) -> &Path {
        &self.runbooks
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn database(&self) -> PathBuf {
        self.root.join("firebreak.db")
    }

    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }
}

/// The name recorded as the author of this user's changes, unless settings say otherwise.
pub fn local_user() -> String {
    ["USER", "USERNAME", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.trim().is_empty()))
        .unwrap_or_else(|| "on-call".to_owned())
}
