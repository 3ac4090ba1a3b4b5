//! Secrets a server reads at start (its tokens, a webhook's, a database URL): from a file
//! or an environment variable, never from the configuration itself. Every value read is
//! remembered so that whatever a server relays from elsewhere (a hook's output) can be
//! masked of it before a client reads it.

use std::path::PathBuf;
use std::sync::RwLock;

use anyhow::{bail, Context, Result};

/// Where a secret is read from at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Secret {
    File(PathBuf),
    Env(String),
}

/// The values of the secrets this process read: masked in relayed text.
static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Reads `secret`; `what` names it in errors. The secret itself never appears in an error.
pub fn read(secret: &Secret, what: &str) -> Result<String> {
    let value = match secret {
        Secret::File(path) => std::fs::read_to_string(path)
            .with_context(|| format!("{what}: cannot read {}", path.display()))?,
        Secret::Env(var) => std::env::var(var)
            .with_context(|| format!("{what}: the environment variable {var} is not set"))?,
    };
    let value = value.trim().to_owned();
    if value.is_empty() {
        bail!("{what}: the token is empty");
    }
    keep(&value);
    Ok(value)
}

/// Remembers a secret this process holds, so no relayed text can hand it on.
pub fn keep(value: &str) {
    // Very short values would mask ordinary words; tokens are long.
    if value.len() >= 8 {
        let mut all = SECRETS.write().unwrap_or_else(|e| e.into_inner());
        if !all.iter().any(|s| s == value) {
            all.push(value.to_owned());
        }
    }
}

/// `text` with every known secret (and each of `extra`) written as `[secret]`.
pub fn mask(text: &str, extra: &[String]) -> String {
    let all = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    let mut out = text.to_owned();
    for s in all.iter().chain(extra).filter(|s| s.len() >= 8) {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), "[secret]");
        }
    }
    out
}
