//! The cluster's action API over reqwest: redirects off, timeouts set, the bearer token
//! from the OS keychain (or the caller), and the idempotency key on every mutating call.

use std::sync::Arc;
use std::time::Duration;

use firebreak_protocol::actions::{
    Action, ApiError, Deployment, FailoverRequest, RollbackRequest, RolloutLever, RolloutRequest,
    Service, ServiceList, SilencePreview, SilenceRequest, SilenceScope, IDEMPOTENCY_KEY,
};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How a call ended, in the terms the desk acts on.
#[derive(Debug)]
pub enum Outcome<T> {
    Ok(T),
    /// The cluster answered no (4xx, 3xx): it did nothing.
    Refused {
        status: u16,
        error: ApiError,
    },
    /// The same key is still being answered: ask again later.
    InFlight,
    /// No usable answer (timeout, lost connection, 5xx): whether it acted is unknown.
    NoAnswer(String),
}

pub struct ActionClient {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    ca_file: Option<std::path::PathBuf>,
}

impl ActionClient {
    /// A client for the cluster at `actions_url`, trusting the OS store plus `ca_file`.
    pub fn new(
        actions_url: &str,
        token: Option<String>,
        ca_file: Option<&std::path::Path>,
    ) -> anyhow::Result<Self> {
        if token.is_some() {
            if let Some(why) = crate::secrets::cleartext_refusal(actions_url) {
                anyhow::bail!("{why}");
            }
        }
        let tls = crate::trust::client_config(ca_file).map_err(anyhow::Error::msg)?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(Arc::unwrap_or_clone(tls))
            // A cluster never redirects an action; following one could send it elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()?;
        Ok(ActionClient {
            http,
            base: actions_url.trim_end_matches('/').to_owned(),
            token,
            ca_file: ca_file.map(Into::into),
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Outcome<T> {
        let response = match req.send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => return Outcome::NoAnswer("no answer within 10 s".into()),
            Err(e) => {
                // reqwest's own message hides the cause (a refused certificate, say).
                let mut chain = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(cause) = source {
                    chain.push_str(&format!(": {cause}"));
                    source = cause.source();
                }
                let why = crate::trust::explain(&chain, self.ca_file.as_deref());
                return Outcome::NoAnswer(format!("connection failed: {why}"));
            }
        };
        let status = response.status();
        if status.is_success() {
            return match response.json::<T>().await {
                Ok(v) => Outcome::Ok(v),
                Err(e) => Outcome::NoAnswer(format!("unreadable answer: {e}")),
            };
        }
        if status.is_server_error() {
            // Nothing was done. 501 says it never will be (the server cannot pull that
            // lever): a refusal. Any other 5xx may pass: the same key is tried again.
            let error = response.json::<ApiError>().await.ok();
            return match error {
                Some(error) if status == reqwest::StatusCode::NOT_IMPLEMENTED => Outcome::Refused {
                    status: status.as_u16(),
                    error,
                },
                Some(error) => {
                    Outcome::NoAnswer(format!("the cluster answered {status}: {}", error.message))
                }
                None => Outcome::NoAnswer(format!("the cluster answered {status}")),
            };
        }
        if status.is_redirection() {
            return Outcome::Refused {
                status: status.as_u16(),
                error: ApiError {
                    error: "redirect".into(),
                    message: format!(
                        "the cluster answered {status} (a redirect); actions never follow redirects"
                    ),
                    current: None,
                    changed_by: None,
                },
            };
        }
        let error = response
            .json::<ApiError>()
            .await
            .unwrap_or_else(|_| ApiError {
                error: "unknown".into(),
                message: format!("the cluster answered {status}"),
                current: None,
                changed_by: None,
            });
        if error.error == "idempotency_key_in_flight" {
            return Outcome::InFlight;
        }
        Outcome::Refused {
            status: status.as_u16(),
            error,
        }
    }

    pub async fn services(&self) -> Outcome<Vec<Service>> {
        match self
            .send::<ServiceList>(self.request(reqwest::Method::GET, "/v1/services"))
            .await
        {
            Outcome::Ok(list) => Outcome::Ok(list.services),
            Outcome::Refused { status, error } => Outcome::Refused { status, error },
            Outcome::InFlight => Outcome::InFlight,
            Outcome::NoAnswer(e) => Outcome::NoAnswer(e),
        }
    }

    pub async fn deployment(&self, name: &str) -> Outcome<Deployment> {
        self.send(self.request(reqwest::Method::GET, &format!("/v1/deployments/{name}")))
            .await
    }

    pub async fn action(&self, id: &str) -> Outcome<Action> {
        self.send(self.request(reqwest::Method::GET, &format!("/v1/actions/{id}")))
            .await
    }

    pub async fn rollback(
        &self,
        deployment: &str,
        body: &RollbackRequest,
        key: &str,
    ) -> Outcome<Action> {
        let req = self
            .request(
                reqwest::Method::POST,
                &format!("/v1/deployments/{deployment}/rollback"),
            )
            .header(IDEMPOTENCY_KEY, key)
            .json(body);
        self.send(req).await
    }

    /// Pauses, resumes, aborts or promotes the rollout under way on `deployment`.
    pub async fn rollout(
        &self,
        deployment: &str,
        lever: RolloutLever,
        body: &RolloutRequest,
        key: &str,
    ) -> Outcome<Action> {
        let req = self
            .request(
                reqwest::Method::POST,
                &format!("/v1/deployments/{deployment}/{}", lever.as_str()),
            )
            .header(IDEMPOTENCY_KEY, key)
            .json(body);
        self.send(req).await
    }

    pub async fn failover(
        &self,
        service: &str,
        body: &FailoverRequest,
        key: &str,
    ) -> Outcome<Action> {
        let req = self
            .request(
                reqwest::Method::POST,
                &format!("/v1/services/{service}/failover"),
            )
            .header(IDEMPOTENCY_KEY, key)
            .json(body);
        self.send(req).await
    }

    /// Which alerts firing now a silence with these matchers would mute (read-only).
    pub async fn silence_preview(&self, body: &SilenceScope) -> Outcome<SilencePreview> {
        self.send(
            self.request(reqwest::Method::POST, "/v1/alerts/silence/preview")
                .json(body),
        )
        .await
    }

    pub async fn silence(&self, body: &SilenceRequest, key: &str) -> Outcome<Action> {
        let req = self
            .request(reqwest::Method::POST, "/v1/alerts/silence")
            .header(IDEMPOTENCY_KEY, key)
            .json(body);
        self.send(req).await
    }
}
