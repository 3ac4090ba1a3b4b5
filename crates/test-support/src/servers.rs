//! Real server processes for the tests: the gateway (this build's binary), Debian's
//! Alertmanager and Prometheus, on free loopback ports in a temporary folder, each
//! killed with SIGKILL when its guard drops.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A server process, killed with SIGKILL when dropped.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl KillOnDrop {
    /// kill -9, and wait until it is gone.
    pub fn kill_9(&mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Debian server program, or a failure that says how to get it.
pub fn tool(name: &str) -> Command {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{name} is missing: `bash .ci/deps.sh --test` installs Debian's prometheus and prometheus-alertmanager"
    );
    Command::new(name)
}

/// The gateway (`program`: `firebreak-gateway`, or `firebreak gateway` where the console's
/// binary is the one at hand) with `--config FILE` as a process of its own, its data in
/// `data_dir`, once it listens on `port`.
pub async fn spawn_gateway(
    mut program: Command,
    config: &Path,
    data_dir: &Path,
    port: u16,
) -> KillOnDrop {
    let child = program
        .arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(data_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let up = async || {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    };
    crate::rig::wait_for(Duration::from_secs(30), "the gateway to listen", up).await;
    KillOnDrop(child)
}

/// Alertmanager with the shipped configuration (deploy/prometheus/alertmanager.yml),
/// posting to a gateway on `gateway_port` with the token in `dir/webhook.token`, at test
/// speed (group_wait 1 s).
pub fn start_alertmanager(dir: &Path, gateway_port: u16, am_port: u16) -> KillOnDrop {
    let shipped =
        std::fs::read_to_string(crate::workspace_root().join("deploy/prometheus/alertmanager.yml"))
            .unwrap();
    let config = shipped
        .replace(
            "https://127.0.0.1:7443/v1/alertmanager",
            &format!("http://127.0.0.1:{gateway_port}/v1/alertmanager"),
        )
        .replace(
            "/etc/firebreak/alertmanager-token",
            &dir.join("webhook.token").display().to_string(),
        )
        .replace("group_wait: 10s", "group_wait: 1s");
    std::fs::write(dir.join("alertmanager.yml"), config).unwrap();
    let child = tool("prometheus-alertmanager")
        .arg(format!(
            "--config.file={}",
            dir.join("alertmanager.yml").display()
        ))
        .arg(format!("--storage.path={}", dir.join("am-data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    KillOnDrop(child)
}

/// `n` connections to `port` from another loopback address (127.0.0.2), each sending
/// nothing (or, with `slow`, the start of a request and then nothing): what a stranger
/// who can reach a server's port holds against it. The console under test connects from
/// 127.0.0.1, so a cap per address leaves it room.
pub async fn hold_connections(
    port: u16,
    n: usize,
    slow: Option<&str>,
) -> Vec<tokio::net::TcpStream> {
    use tokio::io::AsyncWriteExt;
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        match socket.connect(([127, 0, 0, 1], port).into()).await {
            Ok(mut s) => {
                if let Some(start) = slow {
                    let _ = s.write_all(start.as_bytes()).await;
                }
                held.push(s);
            }
            // The listen backlog is full: the server is shedding them, as it should.
            Err(_) => continue,
        }
    }
    held
}

/// Headers of a request whose body never comes, sent from 127.0.0.3 (another address
/// than the tests' own clients); the answer's status line, read without sending a byte
/// of the body.
pub async fn answer_without_body(port: u16, head: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.3:0".parse().unwrap()).unwrap();
    let mut s = socket.connect(([127, 0, 0, 1], port).into()).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 256];
    let n = tokio::time::timeout(std::time::Duration::from_secs(30), s.read(&mut answer))
        .await
        .expect("an answer before any body byte was sent")
        .unwrap();
    String::from_utf8_lossy(&answer[..n])
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

/// How many of `held` the server has closed (a read sees the end, or an error).
pub async fn closed_by_server(held: &mut [tokio::net::TcpStream]) -> usize {
    use tokio::io::AsyncReadExt;
    let mut closed = 0;
    let mut buf = [0u8; 4096];
    for s in held.iter_mut() {
        loop {
            match tokio::time::timeout(std::time::Duration::from_millis(1), s.read(&mut buf)).await
            {
                // Still open, nothing said.
                Err(_) => break,
                Ok(Ok(0)) | Ok(Err(_)) => {
                    closed += 1;
                    break;
                }
                // An answer (a 408 or 400): read on to the close.
                Ok(Ok(_)) => continue,
            }
        }
    }
    closed
}
