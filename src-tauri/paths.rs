//! Where Firebreak keeps its files.
//!
//! One data dir holds the database and the logs. It is the OS app-data dir unless
//! `--data-dir` or `FIREBREAK_DATA_DIR` names another (tests always do).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// The chosen dir, or the OS default (`~/.local/share/firebreak` on Linux).
    pub fn resolve(chosen: Option<PathBuf>) -> Result<Self> {
        let root = match chosen {
            Some(dir) => dir,
            None => directories::ProjectDirs::from("dev", "firebreak", "firebreak")
                .context(
                    "cannot find the home directory to keep Firebreak's data in; pass --data-dir",
                )?
                .data_dir()
                .to_owned(),
        };
        Ok(DataDir { root })
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
