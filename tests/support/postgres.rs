//! A real PostgreSQL for the tests (Debian's `postgresql`, installed by `.ci/deps.sh
//! --test`): a cluster of its own made with initdb in a temporary folder, on a free
//! loopback port, no Unix socket. PostgreSQL refuses to run as root, so as root it runs
//! as the `postgres` user. Stopped (immediate shutdown) when the guard drops.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Postgres {
    dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
}

/// The folder with initdb and postgres: Debian keeps them out of PATH.
fn bindir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").exists())
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!(
            "PostgreSQL is missing (no /usr/lib/postgresql/*/bin/initdb): \
             `bash .ci/deps.sh --test` installs Debian's postgresql"
        )
    })
}

/// (uid, gid) to run as: ours, or the `postgres` user's when we are root.
fn identity() -> Option<(u32, u32)> {
    let uid = |args: &[&str]| -> u32 {
        let out = Command::new("id").args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|_| {
                panic!("running as root and there is no `postgres` user to run PostgreSQL as")
            })
    };
    if uid(&["-u"]) != 0 {
        return None;
    }
    Some((uid(&["-u", "postgres"]), uid(&["-g", "postgres"])))
}

fn command(program: &Path, who: Option<(u32, u32)>) -> Command {
    let mut c = Command::new(program);
    if let Some((uid, gid)) = who {
        c.uid(uid).gid(gid);
    }
    c
}

impl Postgres {
    pub async fn start() -> Postgres {
        let bin = bindir();
        let who = identity();
        let dir = tempfile::tempdir().unwrap();
        if let Some((uid, gid)) = who {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        let data = dir.path().join("data");
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
            .unwrap();
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = super::servers::free_port();
        let child = command(&bin.join("postgres"), who)
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "unix_socket_directories="])
            .args(["-c", "fsync=off"])
            .args(["-c", "max_connections=300"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pg = Postgres { dir, port, child };
        let url = pg.url("postgres");
        super::rig::wait_for(
            Duration::from_secs(30),
            "PostgreSQL to accept connections",
            async || sqlx::postgres::PgPool::connect(&url).await.is_ok(),
        )
        .await;
        pg
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://firebreak@127.0.0.1:{}/{database}", self.port)
    }

    /// A new, empty database; its URL.
    pub async fn database(&self, name: &str) -> String {
        let pool = sqlx::postgres::PgPool::connect(&self.url("postgres"))
            .await
            .unwrap();
        assert!(name.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        self.url(name)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SIGQUIT: PostgreSQL's immediate shutdown (its backends exit with it).
        let _ = Command::new("kill")
            .args(["-QUIT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}
