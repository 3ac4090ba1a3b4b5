//! The console's side of the team sync contract: push records, and open the pull stream.
//! One TLS configuration (trust.rs) for both; redirects off; the token goes in cleartext
//! only to this machine.

use std::path::PathBuf;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::{self, Message};
use uuid::Uuid;

use firebreak_protocol::team::{
    self as wire, Frame, Inbound, PushRequest, PushResponse, Record, TeamError,
};

/// Where a console syncs: the server, the team, and who it is there.
#[derive(Clone)]
pub struct TeamLink {
    /// `https://…` (or `http://` on loopback).
    pub url: String,
    pub team: String,
    pub token: String,
    /// This console's id (one per store).
    pub console: Uuid,
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for TeamLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TeamLink")
            .field("url", &self.url)
            .field("team", &self.team)
            .field("console", &self.console)
            .finish_non_exhaustive()
    }
}

/// Why a request did not get an answer, in words for the status bar.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SyncError {
    /// The server refused us for a reason that retrying will not change (token,
    /// membership, schema): sync stops until the person acts.
    #[error("{message}")]
    Refused { code: String, message: String },
    /// The network or the server is down for now: retry.
    #[error("{0}")]
    Unreachable(String),
}

impl SyncError {
    pub fn is_refusal(&self) -> bool {
        matches!(self, Self::Refused { .. })
    }
}

pub struct TeamClient {
    link: TeamLink,
    /// The server's URL as parsed, without query or fragment.
    url: reqwest::Url,
    http: reqwest::Client,
    tls: std::sync::Arc<rustls::ClientConfig>,
}

const TIMEOUT: Duration = Duration::from_secs(20);

impl TeamClient {
    pub fn new(link: TeamLink) -> Result<Self, SyncError> {
        let fatal = |message: String| SyncError::Refused {
            code: "configuration".into(),
            message,
        };
        let mut url = reqwest::Url::parse(&link.url).map_err(|e| {
            fatal(format!(
                "the team server's URL {:?} is not a URL: {e}",
                link.url
            ))
        })?;
        let loopback = match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d == "localhost",
            None => false,
        };
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            "http" => {
                return Err(fatal(
                    "the team server must be https:// unless it is on this machine: the token would cross the network in cleartext".into(),
                ))
            }
            other => return Err(fatal(format!("the team server's URL is {other}://; use https://"))),
        }
        url.set_query(None);
        url.set_fragment(None);
        let tls = crate::trust::client_config(link.ca_file.as_deref()).map_err(fatal)?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(TIMEOUT)
            .connect_timeout(Duration::from_secs(10))
            .tls_backend_preconfigured(std::sync::Arc::unwrap_or_clone(tls.clone()))
            .build()
            .map_err(|e| fatal(format!("cannot set up HTTP: {e}")))?;
        Ok(Self {
            link,
            url,
            http,
            tls,
        })
    }

    pub fn link(&self) -> &TeamLink {
        &self.link
    }

    /// The server's URL (with any path prefix it has, as behind a reverse proxy) and these
    /// path segments, each percent-encoded: a team may be called "model #2 / east".
    fn endpoint(&self, segments: &[&str]) -> reqwest::Url {
        let mut url = self.url.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// Who the token is and which teams it may use.
    pub async fn me(&self) -> Result<serde_json::Value, SyncError> {
        let response = self
            .http
            .get(self.endpoint(&["v1", "me"]))
            .bearer_auth(&self.link.token)
            .header(wire::SCHEMA_HEADER, wire::SCHEMA.to_string())
            .send()
            .await
            .map_err(|e| SyncError::Unreachable(describe(&e, &self.link)))?;
        answer(response).await
    }

    /// Pushes records (at most [`wire::MAX_PUSH_RECORDS`]); one outcome each.
    pub async fn push(&self, records: Vec<Record>) -> Result<PushResponse, SyncError> {
        let body = PushRequest {
            console: self.link.console,
            records,
        };
        let response = self
            .http
            .post(self.endpoint(&["v1", "teams", &self.link.team, "records"]))
            .bearer_auth(&self.link.token)
            .header(wire::SCHEMA_HEADER, wire::SCHEMA.to_string())
            .json(&body)
            .send()
            .await
            .map_err(|e| SyncError::Unreachable(describe(&e, &self.link)))?;
        answer(response).await
    }

    /// Opens the pull stream after `after`.
    pub async fn subscribe(&self, after: u64) -> Result<Subscription, SyncError> {
        let mut url = self.endpoint(&["v1", "teams", &self.link.team, "sync"]);
        // http and https were checked in `new`; both have a WebSocket twin.
        let ws = if url.scheme() == "https" { "wss" } else { "ws" };
        let _ = url.set_scheme(ws);
        url.query_pairs_mut()
            .append_pair("after", &after.to_string())
            .append_pair("console", &self.link.console.to_string());
        let mut request = tungstenite::client::IntoClientRequest::into_client_request(url.as_str())
            .map_err(|e| SyncError::Refused {
                code: "configuration".into(),
                message: format!("cannot make the sync request: {e}"),
            })?;
        let headers = request.headers_mut();
        headers.insert(
            "authorization",
            format!("Bearer {}", self.link.token)
                .parse()
                .map_err(|_| SyncError::Refused {
                    code: "configuration".into(),
                    message: "the token holds characters a header cannot".into(),
                })?,
        );
        headers.insert(wire::SCHEMA_HEADER, wire::SCHEMA.into());
        let config = tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(4 << 20))
            .max_frame_size(Some(4 << 20));
        let connect = tokio_tungstenite::connect_async_tls_with_config(
            request,
            Some(config),
            false,
            Some(tokio_tungstenite::Connector::Rustls(self.tls.clone())),
        );
        match tokio::time::timeout(TIMEOUT, connect).await {
            Err(_) => Err(SyncError::Unreachable("connecting timed out".into())),
            Ok(Ok((ws, _))) => Ok(Subscription { ws }),
            Ok(Err(tungstenite::Error::Http(response))) => {
                let status = response.status();
                let body = response
                    .body()
                    .as_deref()
                    .and_then(|b| serde_json::from_slice::<TeamError>(b).ok());
                let location = response
                    .headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok());
                Err(classify(status.as_u16(), body, location))
            }
            Ok(Err(e)) => Err(SyncError::Unreachable(crate::trust::explain(
                &e.to_string(),
                self.link.ca_file.as_deref(),
            ))),
        }
    }
}

/// The pull stream: frames in order; [`Subscription::viewing`] says what this console shows.
pub struct Subscription {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl Subscription {
    /// The next frame; `None` when the server closed the stream. A frame that does not
    /// parse is an error (the stream cannot be trusted past it).
    pub async fn next(&mut self) -> Option<Result<Frame, SyncError>> {
        loop {
            let message = match self.ws.next().await? {
                Ok(m) => m,
                Err(e) => return Some(Err(SyncError::Unreachable(e.to_string()))),
            };
            match message {
                Message::Text(text) => {
                    return Some(serde_json::from_str(&text).map_err(|e| {
                        SyncError::Unreachable(format!(
                            "a frame from the team server does not parse: {e}"
                        ))
                    }))
                }
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }

    pub async fn viewing(&mut self, incident: Option<Uuid>) -> Result<(), SyncError> {
        let text = serde_json::to_string(&Inbound::Viewing { incident }).expect("serializes");
        self.ws
            .send(Message::Text(text.into()))
            .await
            .map_err(|e| SyncError::Unreachable(e.to_string()))
    }
}

fn describe(e: &reqwest::Error, link: &TeamLink) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    crate::trust::explain(&text, link.ca_file.as_deref())
}

/// An answer that is not a success: the server's own error when it sent one, else what
/// the status says of the URL (something other than a team server answered there).
fn classify(status: u16, body: Option<TeamError>, location: Option<&str>) -> SyncError {
    let (code, message) = match body {
        Some(b) => (b.error, b.message),
        None => (
            format!("http_{status}"),
            match (status, location) {
                (404, _) => "no Firebreak team server answers at this URL (404 Not Found): \
                             check the server URL in Settings → Team"
                    .to_owned(),
                (300..=399, Some(to)) => format!(
                    "the server at this URL redirects ({status}) to {}; Firebreak does not \
                     follow redirects with a token: put that URL in Settings → Team",
                    firebreak_common::text::shorten(to, 200)
                ),
                _ => format!("the team server answered {status}"),
            },
        ),
    };
    match status {
        300..=399 | 401 | 403 | 426 | 400 | 404 => SyncError::Refused { code, message },
        _ => SyncError::Unreachable(message),
    }
}

async fn answer<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
) -> Result<T, SyncError> {
    let status = response.status();
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = response
        .bytes()
        .await
        .map_err(|e| SyncError::Unreachable(format!("the answer was cut off: {e}")))?;
    if status.is_success() {
        return serde_json::from_slice(&bytes).map_err(|e| {
            SyncError::Unreachable(format!("the team server's answer does not parse: {e}"))
        });
    }
    Err(classify(
        status.as_u16(),
        serde_json::from_slice::<TeamError>(&bytes).ok(),
        location.as_deref(),
    ))
}
