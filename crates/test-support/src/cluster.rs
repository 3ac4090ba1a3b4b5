//! A test-side client of the cluster protocol over real sockets: a WebSocket reader that
//! keeps every frame, and an HTTP helper for the action API.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use firebreak_protocol::events::{decode, CloudEvent, Control, Frame};
use firebreak_sim::{RunningSim, Scenario, SimOptions};
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

pub const TOKEN: &str = "test-token";

pub async fn sim(
    scenario: &str,
    speed: f64,
    configure: impl FnOnce(&mut SimOptions),
) -> RunningSim {
    let mut opts = SimOptions::new(Scenario::load(scenario).unwrap(), TOKEN);
    opts.speed = speed;
    configure(&mut opts);
    firebreak_sim::start(opts).await.unwrap()
}

/// bad-model-rollout slowed down: `waves` waves a simulated minute apart, so its rollout
/// is still under way when the incident opens. Written into `dir`; returns the path as the
/// simulator (and `--demo-scenario`) take it.
pub fn slow_bad_rollout(dir: &std::path::Path, waves: u32) -> String {
    let text = Scenario::builtin_text("bad-model-rollout")
        .unwrap()
        .replace("waves = 4", &format!("waves = {waves}"))
        .replace("wave_interval_s = 12", "wave_interval_s = 60");
    let path = dir.join("slow-bad-rollout.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// What a reader saw on one connection.
#[derive(Default)]
pub struct Seen {
    pub events: Vec<CloudEvent>,
    pub raw: Vec<String>,
    pub controls: Vec<Control>,
    pub refused: Vec<String>,
    pub closed: bool,
}

pub struct Reader {
    pub seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl Reader {
    pub fn abort(&self) {
        self.task.abort();
    }

    pub fn events(&self) -> Vec<CloudEvent> {
        self.seen.lock().unwrap().events.clone()
    }

    /// Waits until `done` holds for what was seen, or panics after `limit`.
    pub async fn wait_until(&self, limit: Duration, what: &str, done: impl Fn(&Seen) -> bool) {
        let deadline = Instant::now() + limit;
        loop {
            if done(&self.seen.lock().unwrap()) {
                return;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Opens the stream with `token` (None: no Authorization header) after `after`.
pub async fn connect(
    url: &str,
    token: Option<&str>,
    after: Option<u64>,
) -> Result<Reader, tokio_tungstenite::tungstenite::Error> {
    let url = match after {
        Some(n) => format!("{url}?after={n}"),
        None => url.to_owned(),
    };
    let mut request = url.into_client_request()?;
    if let Some(t) = token {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    let (ws, _) = tokio_tungstenite::connect_async(request).await?;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let sink = seen.clone();
    let task = tokio::spawn(async move {
        let (_, mut read) = ws.split();
        while let Some(msg) = read.next().await {
            let Ok(msg) = msg else { break };
            let mut s = sink.lock().unwrap();
            match msg {
                Message::Text(t) => match decode(t.as_str()) {
                    Ok(Frame::Event(e)) => {
                        s.events.push(*e);
                        s.raw.push(t.as_str().to_owned());
                    }
                    Ok(Frame::Control(c)) => s.controls.push(c),
                    Err(e) => s.refused.push(e.to_string()),
                },
                Message::Binary(_) => s.refused.push("binary frame".into()),
                _ => {}
            }
        }
        sink.lock().unwrap().closed = true;
    });
    Ok(Reader { seen, task })
}

/// An HTTP client as the tests use it (rustls with the app's crypto provider).
pub fn http() -> reqwest::Client {
    firebreak_common::process::install_tls_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

pub async fn get(sim: &RunningSim, path: &str) -> serde_json::Value {
    get_json(&http(), &format!("{}{path}", sim.actions_url()), TOKEN).await
}

pub async fn post(
    sim: &RunningSim,
    path: &str,
    key: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let r = http()
        .post(format!("{}{path}", sim.actions_url()))
        .bearer_auth(TOKEN)
        .header("idempotency-key", key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

/// `url`'s JSON, asked with `token` as a bearer token.
pub async fn get_json(http: &reqwest::Client, url: &str, token: &str) -> serde_json::Value {
    http.get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}
