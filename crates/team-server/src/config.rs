//! The team server's configuration: one TOML file.
//!
//! ```toml
//! listen = "0.0.0.0:7600"          # plain http/ws only on a loopback address
//! database = { env = "FIREBREAK_TEAM_DATABASE_URL" }   # or { file = "/etc/firebreak/team-db" }
//! max_connections = 16             # to PostgreSQL, per server process
//!
//! [tls]                            # https/wss: needed unless `listen` is loopback
//! cert = "/etc/firebreak/team.crt"
//! key = "/etc/firebreak/team.key"
//! ```
//!
//! The database URL carries a password, so it is read from a file or the environment,
//! never written here.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use firebreak_server::secret::Secret;
use firebreak_server::tls::Tls;

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub database: Secret,
    pub max_connections: u32,
    pub tls: Option<Tls>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    listen: SocketAddr,
    /// Read as any value first: a URL written here must be refused without repeating it.
    database: toml::Value,
    #[serde(default = "default_connections")]
    max_connections: u32,
    tls: Option<RawTls>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecret {
    file: Option<PathBuf>,
    env: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: PathBuf,
    key: PathBuf,
}

fn default_connections() -> u32 {
    16
}

pub fn load(path: &Path) -> Result<Config> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse(&text).with_context(|| format!("{}", path.display()))
}

pub fn parse(text: &str) -> Result<Config> {
    let raw: Raw = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
    if raw.database.is_str() {
        bail!(
            "database: the URL carries a password, so it is never written in this file: put it in a \
             file (database = {{ file = \"/etc/firebreak/team-db\" }}) or the environment \
             (database = {{ env = \"FIREBREAK_TEAM_DATABASE_URL\" }})"
        );
    }
    let database: RawSecret = raw
        .database
        .try_into()
        .map_err(|e: toml::de::Error| anyhow::anyhow!("database: {}", e.message()))?;
    let database = match (database.file, database.env) {
        (Some(f), None) => Secret::File(f),
        (None, Some(e)) if !e.trim().is_empty() => Secret::Env(e.trim().to_owned()),
        _ => bail!("database: give exactly one of file = \"…\" or env = \"…\" (the URL itself is a secret)"),
    };
    if !(1..=1000).contains(&raw.max_connections) {
        bail!("max_connections: 1 to 1000");
    }
    let tls = raw.tls.map(|t| Tls {
        cert: t.cert,
        key: t.key,
    });
    if tls.is_none() && !raw.listen.ip().is_loopback() {
        bail!(
            "listen = \"{}\" is not a loopback address: tokens would cross the network in \
             cleartext; add a [tls] section (cert, key) or listen on 127.0.0.1",
            raw.listen
        );
    }
    Ok(Config {
        listen: raw.listen,
        database,
        max_connections: raw.max_connections,
        tls,
    })
}

/// The database URL the configuration names (its value never appears in an error).
pub fn database_url(config: &Config) -> Result<String> {
    firebreak_server::secret::read(&config.database, "database")
}
