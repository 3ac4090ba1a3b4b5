//! A throwaway PostgreSQL for `firebreak bench team` and the tests: a cluster of its own
//! made with initdb in a folder of its own under the system's temporary folder (which the
//! `postgres` user can reach, unlike a root-owned home), on a free loopback port, no Unix socket,
//! stopped (immediate shutdown) and removed when dropped. PostgreSQL refuses to run as
//! root, so as root it runs as the `postgres` user. Needs Debian's `postgresql` (or any
//! PostgreSQL whose initdb is on PATH).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

pub struct ScratchPostgres {
    dir: PathBuf,
    pub port: u16,
    /// The server while it runs (see [`ScratchPostgres::crash`]).
    child: Option<Child>,
    /// How to start it again: the same data, port and settings.
    launch: Vec<std::ffi::OsString>,
    program: PathBuf,
    who: Option<(u32, u32)>,
    tls: bool,
}

/// A PostgreSQL program of the same installation as the scratch server (pg_dump,
/// pg_restore, …).
pub fn tool(name: &str) -> Result<PathBuf> {
    Ok(bindir()?.join(name))
}

/// The folder with initdb and postgres: Debian keeps them out of PATH.
fn bindir() -> Result<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").exists())
        .collect();
    found.sort();
    if let Some(dir) = found.pop() {
        return Ok(dir);
    }
    let on_path = Command::new("sh")
        .args(["-c", "command -v initdb"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    match on_path.as_deref().and_then(Path::parent) {
        Some(dir) => Ok(dir.to_owned()),
        None => bail!(
            "PostgreSQL is missing (no /usr/lib/postgresql/*/bin/initdb, no initdb on PATH): \
             `bash .ci/deps.sh --test` installs Debian's postgresql"
        ),
    }
}

fn id(args: &[&str]) -> Result<u32> {
    let out = Command::new("id")
        .args(args)
        .output()
        .context("cannot run `id`")?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .with_context(|| format!("`id {}` gave no number", args.join(" ")))
}

/// (uid, gid) to run as: ours, or the `postgres` user's when we are root.
fn identity() -> Result<Option<(u32, u32)>> {
    if id(&["-u"])? != 0 {
        return Ok(None);
    }
    let uid = id(&["-u", "postgres"])
        .context("running as root, and there is no `postgres` user to run PostgreSQL as")?;
    Ok(Some((uid, id(&["-g", "postgres"])?)))
}

fn command(program: &Path, who: Option<(u32, u32)>) -> Command {
    let mut c = Command::new(program);
    if let Some((uid, gid)) = who {
        c.uid(uid).gid(gid);
    }
    c
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A certificate and its key (PEM) for a scratch server that takes only TLS connections.
pub struct ScratchTls<'a> {
    pub cert_pem: &'a str,
    pub key_pem: &'a str,
}

impl ScratchPostgres {
    /// initdb in a new folder, then the server, once it accepts connections.
    pub async fn start() -> Result<Self> {
        Self::start_with(None).await
    }

    /// As [`ScratchPostgres::start`]; with `tls`, the server takes only TLS connections
    /// (`hostssl` in pg_hba.conf), as a managed PostgreSQL usually does.
    pub async fn start_with(tls: Option<ScratchTls<'_>>) -> Result<Self> {
        let bin = bindir()?;
        let who = identity()?;
        let dir = std::env::temp_dir().join(format!(
            "scratch-postgres-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot make {}", dir.display()))?;
        if let Some((uid, gid)) = who {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))?;
        }
        let data = dir.join("data");
        let out = command(&bin.join("initdb"), who)
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "firebreak",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .output()
            .context("cannot run initdb")?;
        if !out.status.success() {
            let _ = std::fs::remove_dir_all(&dir);
            bail!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let port = free_port()?;
        let mut postgres = command(&bin.join("postgres"), who);
        postgres
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "unix_socket_directories="])
            .args(["-c", "max_connections=300"]);
        if let Some(tls) = &tls {
            // The key must belong to the server's user and be readable by it alone.
            let (cert, key) = (data.join("server.crt"), data.join("server.key"));
            std::fs::write(&cert, tls.cert_pem)?;
            std::fs::write(&key, tls.key_pem)?;
            std::fs::write(
                data.join("pg_hba.conf"),
                "hostssl all all 127.0.0.1/32 trust\n",
            )?;
            for f in [&cert, &key, &data.join("pg_hba.conf")] {
                if let Some((uid, gid)) = who {
                    std::os::unix::fs::chown(f, Some(uid), Some(gid))?;
                }
                std::fs::set_permissions(f, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
            }
            postgres
                .args(["-c", "ssl=on"])
                .args(["-c", &format!("ssl_cert_file={}", cert.display())])
                .args(["-c", &format!("ssl_key_file={}", key.display())]);
        }
        let mut pg = Self {
            dir,
            port,
            child: None,
            launch: postgres.get_args().map(ToOwned::to_owned).collect(),
            program: bin.join("postgres"),
            who,
            tls: tls.is_some(),
        };
        pg.up().await?;
        Ok(pg)
    }

    /// Stops the server at once, as a crash or a failover does (immediate shutdown: its
    /// connections drop, nothing is flushed politely); [`ScratchPostgres::up`] starts it
    /// again on the same data and port.
    pub fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGQUIT: PostgreSQL's immediate shutdown (its backends exit with it).
            let _ = Command::new("kill")
                .args(["-QUIT", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    /// Starts the server (if it is not running) and returns once it accepts connections.
    pub async fn up(&mut self) -> Result<()> {
        if self.child.is_none() {
            self.child = Some(
                command(&self.program, self.who)
                    .args(&self.launch)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .context("cannot start postgres")?,
            );
        }
        let mut url = self.url("postgres");
        if self.tls {
            url.push_str("?sslmode=require");
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            match sqlx::postgres::PgPool::connect(&url).await {
                Ok(pool) => {
                    pool.close().await;
                    return Ok(());
                }
                Err(e) if tokio::time::Instant::now() > deadline => {
                    bail!("PostgreSQL did not accept connections within 30 s: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://firebreak@127.0.0.1:{}/{database}", self.port)
    }

    /// A new, empty database (its name: lower-case letters and `_`); its URL.
    pub async fn database(&self, name: &str) -> Result<String> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
            bail!("a scratch database's name is lower-case letters and _");
        }
        let pool = sqlx::postgres::PgPool::connect(&self.url("postgres")).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&pool)
            .await?;
        pool.close().await;
        Ok(self.url(name))
    }
}

impl Drop for ScratchPostgres {
    fn drop(&mut self) {
        self.crash();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
