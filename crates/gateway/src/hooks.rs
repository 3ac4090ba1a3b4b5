//! Running a service's action hooks: the team's own deploy tooling, until the gateway
//! speaks Kubernetes. A hook is a command (run without a shell: the program and its
//! arguments with `{placeholder}`s filled in, the same values in `FIREBREAK_<NAME>`
//! environment variables, the request as JSON on stdin) or an HTTP POST of the request as
//! JSON (redirects off). Exit status 0 or a 2xx answer is success; its output is kept on
//! the action. The contract is in PROTOCOL.md ("Gateway action hooks").

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::config::{Hook, Secret};
use firebreak_server::secret::mask;

/// Output kept from a hook: its last bytes, where the reason for a failure usually is.
pub const OUTPUT_LIMIT: usize = 16 * 1024;

/// What a hook is told: the placeholders' values (also the JSON it receives).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Call {
    pub cluster: String,
    pub kind: String,
    pub service: String,
    pub deployment: String,
    pub action_id: String,
    pub from: String,
    pub to: String,
    pub actor: String,
    pub requested_by: String,
    pub reason: String,
}

impl Call {
    fn values(&self) -> BTreeMap<&'static str, &str> {
        BTreeMap::from([
            ("cluster", self.cluster.as_str()),
            ("kind", self.kind.as_str()),
            ("service", self.service.as_str()),
            ("deployment", self.deployment.as_str()),
            ("action_id", self.action_id.as_str()),
            ("from", self.from.as_str()),
            ("to", self.to.as_str()),
            ("actor", self.actor.as_str()),
            ("requested_by", self.requested_by.as_str()),
            ("reason", self.reason.as_str()),
        ])
    }

    /// `text` with each `{name}` replaced by its value (`encode` applied to the value).
    fn fill(&self, text: &str, encode: impl Fn(&str) -> String) -> String {
        let values = self.values();
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            match after
                .find('}')
                .and_then(|close| values.get(&after[..close]).map(|v| (close, v)))
            {
                Some((close, value)) => {
                    out.push_str(&encode(value));
                    rest = &after[close + 1..];
                }
                None => {
                    out.push('{');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out
    }
}

/// How a hook ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub ok: bool,
    /// Exit status or HTTP status, said for people ("exit status 3", "HTTP 500", "timed out
    /// after 300 s").
    pub status: String,
    /// The last [`OUTPUT_LIMIT`] bytes of stdout and stderr (or the HTTP answer's body).
    pub output: String,
}

/// Runs `hook` for `call`; never panics, never waits past `timeout`. What it said is cut
/// to its last [`OUTPUT_LIMIT`] bytes and has the gateway's secrets masked: it reaches
/// every holder of a console token.
pub async fn run(
    hook: &Hook,
    call: &Call,
    timeout: Duration,
    pass_env: &[String],
    http: &reqwest::Client,
    read_secret: impl Fn(&Secret) -> anyhow::Result<String>,
) -> Outcome {
    let passed: Vec<String> = pass_env
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .collect();
    let mut outcome = match hook {
        Hook::Command(argv) => run_command(argv, call, timeout, pass_env).await,
        Hook::Http { url, token } => {
            let token = match token.as_ref().map(&read_secret).transpose() {
                Ok(t) => t,
                Err(e) => {
                    return Outcome {
                        ok: false,
                        status: "not run".into(),
                        output: format!("{e:#}"),
                    }
                }
            };
            run_http(url, token, call, timeout, http).await
        }
    };
    outcome.output = mask(&outcome.output, &passed);
    outcome
}

fn tail(bytes: &[u8]) -> String {
    let start = bytes.len().saturating_sub(OUTPUT_LIMIT);
    let text = String::from_utf8_lossy(&bytes[start..]).into_owned();
    if start > 0 {
        format!("[…{start} bytes before]\n{text}")
    } else {
        text
    }
}

async fn run_command(
    argv: &[String],
    call: &Call,
    timeout: Duration,
    pass_env: &[String],
) -> Outcome {
    let args: Vec<String> = argv.iter().map(|a| call.fill(a, str::to_owned)).collect();
    let Some((program, rest)) = args.split_first() else {
        return Outcome {
            ok: false,
            status: "not run".into(),
            output: "the hook's command is empty".into(),
        };
    };
    let mut command = tokio::process::Command::new(program);
    command
        .args(rest)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a timeout stops whatever it started too.
        .process_group(0)
        .kill_on_drop(true)
        // A clean environment: the gateway's tokens are in its own, and a deploy script
        // that logs its environment must not publish them.
        .env_clear()
        .env(
            "PATH",
            std::env::var("PATH").unwrap_or_else(|_| SAFE_PATH.into()),
        )
        .env(
            "LANG",
            std::env::var("LANG").unwrap_or_else(|_| "C.UTF-8".into()),
        );
    for name in pass_env {
        if let Ok(value) = std::env::var(name) {
            command.env(name, value);
        }
    }
    for (name, value) in call.values() {
        command.env(format!("FIREBREAK_{}", name.to_ascii_uppercase()), value);
    }
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Outcome {
                ok: false,
                status: "not run".into(),
                output: format!("cannot start {program}: {e}"),
            }
        }
    };
    let group = child.id();
    let input = serde_json::to_vec(call).unwrap_or_default();
    let mut stdin = child.stdin.take();
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    // Writing stdin and reading both outputs at once, all inside the timeout: a hook that
    // writes much and reads nothing can block neither side.
    let collect = async {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let write_in = async {
            if let Some(mut s) = stdin.take() {
                // A hook that does not read its stdin is fine: a broken pipe is no failure.
                let _ = s.write_all(&input).await;
            }
        };
        let read_out = async {
            if let Some(s) = stdout.as_mut() {
                let _ = s.read_to_end(&mut out).await;
            }
        };
        let read_err = async {
            if let Some(s) = stderr.as_mut() {
                let _ = s.read_to_end(&mut err).await;
            }
        };
        tokio::join!(write_in, read_out, read_err);
        let status = child.wait().await;
        (status, out, err)
    };
    let finished = tokio::time::timeout(timeout, collect).await;
    match finished {
        Err(_) => {
            if let Some(pid) = group.and_then(|p| i32::try_from(p).ok()) {
                // The whole group: a script's children (a `kubectl` it started) stop too.
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            Outcome {
                ok: false,
                status: format!("timed out after {} s (stopped)", timeout.as_secs()),
                output: String::new(),
            }
        }
        Ok((status, out, err)) => {
            let mut both = out;
            if !err.is_empty() {
                if !both.is_empty() && !both.ends_with(b"\n") {
                    both.push(b'\n');
                }
                both.extend_from_slice(&err);
            }
            match status {
                Ok(s) => Outcome {
                    ok: s.success(),
                    status: match s.code() {
                        Some(code) => format!("exit status {code}"),
                        None => "killed by a signal".into(),
                    },
                    output: tail(&both),
                },
                Err(e) => Outcome {
                    ok: false,
                    status: "lost".into(),
                    output: format!("cannot wait for {program}: {e}"),
                },
            }
        }
    }
}

/// PATH for a hook when the gateway has none.
const SAFE_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

fn percent_encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

async fn run_http(
    url: &str,
    token: Option<String>,
    call: &Call,
    timeout: Duration,
    http: &reqwest::Client,
) -> Outcome {
    let url = call.fill(url, percent_encode);
    let mut request = http.post(&url).timeout(timeout).json(call);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    match request.send().await {
        Err(e) => Outcome {
            ok: false,
            status: if e.is_timeout() {
                format!("timed out after {} s", timeout.as_secs())
            } else {
                "no answer".into()
            },
            output: format!("POST {url}: {e}"),
        },
        Ok(response) => {
            let status = response.status();
            let body = response.bytes().await.unwrap_or_default();
            Outcome {
                ok: status.is_success(),
                status: format!("HTTP {}", status.as_u16()),
                output: tail(&body),
            }
        }
    }
}

/// What a status hook reports (its stdout, or its HTTP answer, as JSON). Every field is
/// optional; an action needs the one its precondition is about.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Status {
    /// The revision the deployment is at.
    pub revision: Option<u32>,
    /// Its history, oldest first: rollbacks may go to any of these.
    #[serde(default)]
    pub revisions: Vec<StatusRevision>,
    /// The region serving the service now.
    pub primary_region: Option<String>,
    /// How many nodes serve the deployment.
    pub nodes_total: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StatusRevision {
    pub revision: u32,
    #[serde(default)]
    pub model_version: String,
    pub created_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Reads a status hook's output; the error says what was wrong with it.
pub fn parse_status(outcome: &Outcome) -> Result<Status, String> {
    if !outcome.ok {
        return Err(format!(
            "the status hook failed ({}): {}",
            outcome.status,
            outcome.output.trim()
        ));
    }
    serde_json::from_str(outcome.output.trim()).map_err(|e| {
        format!(
            "the status hook's output is not the expected JSON ({e}); it said: {}",
            outcome.output.chars().take(300).collect::<String>()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_and_unknown_braces_left_alone() {
        let call = Call {
            service: "llm-assistant".into(),
            to: "41".into(),
            ..Call::default()
        };
        assert_eq!(
            call.fill("rollback {service} to {to} {json}", str::to_owned),
            "rollback llm-assistant to 41 {json}"
        );
        let call = Call {
            service: "a b&c".into(),
            ..Call::default()
        };
        assert_eq!(
            call.fill("https://deploy/{service}", percent_encode),
            "https://deploy/a+b%26c"
        );
    }

    #[test]
    fn a_status_is_read_or_refused_with_what_it_said() {
        let ok = Outcome {
            ok: true,
            status: "exit status 0".into(),
            output: r#"{"revision": 42, "revisions": [{"revision": 41, "model_version": "m1"}], "primary_region": "us-east"}"#.into(),
        };
        let s = parse_status(&ok).unwrap_or_default();
        assert_eq!(s.revision, Some(42));
        assert_eq!(s.revisions[0].model_version, "m1");
        let garbage = Outcome {
            output: "Traceback (most recent call last)".into(),
            ..ok.clone()
        };
        let err = parse_status(&garbage).expect_err("not JSON");
        assert!(err.contains("Traceback"), "{err}");
        let failed = Outcome {
            ok: false,
            status: "exit status 2".into(),
            output: "kubectl: forbidden".into(),
        };
        let err = parse_status(&failed).expect_err("failed");
        assert!(
            err.contains("exit status 2") && err.contains("forbidden"),
            "{err}"
        );
    }
}
