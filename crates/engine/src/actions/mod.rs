//! One-click actions, made safe: the action desk.
//!
//! ```text
//!  propose ──▶ proposed ──confirm (reason, native dialog / --yes)──▶ pending ──grace──▶ sent
//!                 │                                                   │ cancel          │
//!                 ▼                                                   ▼                 ▼
//!             (nothing)                                          cancelled     accepted / refused / unknown
//!                                                                                   │          (same key again)
//!                                                   running ◀───────────────────────┘
//!                                                      ▼
//!                                           succeeded ──verify window──▶ recovered / not recovered
//!                                            / failed                        (→ next proposal)
//! ```
//!
//! The page (or a script) only ever names an action the desk proposed; the desk resolves
//! the target, re-checks it against the cluster, and holds the idempotency key. The key
//! is stored with the action before the first request, so a retry, a double click or a
//! restart after a crash sends the same key and the cluster acts at most once. A request
//! that got no answer is reconciled by asking again with that key (the cluster replays
//! its first answer), never by deciding anew.

pub mod client;
pub mod driver_lock;
pub mod guard;
mod preview;
pub mod rollout;
mod verify;

pub use preview::Choice;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use client::{ActionClient, Outcome};

use crate::ingest::sink::{Committed, ConsoleSink, StatusBoard};
use firebreak_protocol::actions::{
    ActionKind, ActionState as Remote, FailoverRequest, RollbackRequest, RolloutRequest,
    SilenceRequest, PROMOTE_ALL,
};
use firebreak_store::actions::{ActionRecord, ActionState, Step};
use firebreak_store::{now_ms, Store, StoreError};

/// The desk's settings, kept in the store's settings table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ActionSettings {
    /// Hides and refuses every mutating action.
    pub read_only: bool,
    /// Seconds between confirming and sending, during which Cancel stops the action.
    pub grace_s: u32,
    /// Seconds of health signals watched after an action succeeds.
    pub verify_window_s: u32,
    /// From this many nodes up, confirming also needs the service's name typed.
    pub type_to_confirm_nodes: u32,
    /// Recovered means an error rate at or under this (0–1)…
    pub max_error_rate: f64,
    /// …and a p99 latency at or under this multiple of the service's p99 before the incident.
    pub max_latency_factor: f64,
}

impl Default for ActionSettings {
    fn default() -> Self {
        ActionSettings {
            read_only: false,
            grace_s: 5,
            verify_window_s: 60,
            type_to_confirm_nodes: 12,
            max_error_rate: 0.02,
            max_latency_factor: 1.5,
        }
    }
}

const SETTINGS_KEY: &str = "actions";

impl ActionSettings {
    pub async fn load(store: &Store) -> std::result::Result<Self, StoreError> {
        Ok(store
            .setting(SETTINGS_KEY)
            .await?
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default())
    }

    /// What `new` loosens of the guard rails these settings keep, in words for the
    /// confirmation a person must give (empty when nothing is loosened).
    pub fn weakened_by(&self, new: &ActionSettings) -> Vec<String> {
        let mut out = Vec::new();
        if self.read_only && !new.read_only {
            out.push("read-only mode off: rollback and failover become possible".to_owned());
        }
        if new.grace_s < self.grace_s {
            out.push(format!(
                "grace period shortened from {} s to {} s",
                self.grace_s, new.grace_s
            ));
        }
        if new.type_to_confirm_nodes > self.type_to_confirm_nodes {
            out.push(format!(
                "typing the service's name needed only from {} nodes up (was {})",
                new.type_to_confirm_nodes, self.type_to_confirm_nodes
            ));
        }
        // Verification is a guard rail too: an easier pass would count an action that did
        // not help as recovered, and the desk would then propose nothing further.
        if new.max_error_rate > self.max_error_rate {
            out.push(format!(
                "an action counts as recovered with an error rate up to {} (was {})",
                percent(new.max_error_rate),
                percent(self.max_error_rate)
            ));
        }
        if new.max_latency_factor > self.max_latency_factor {
            out.push(format!(
                "an action counts as recovered with p99 latency up to {}× the level before the incident (was {}×)",
                new.max_latency_factor, self.max_latency_factor
            ));
        }
        if new.verify_window_s < self.verify_window_s {
            out.push(format!(
                "the health after an action is watched for {} s only (was {} s)",
                new.verify_window_s, self.verify_window_s
            ));
        }
        out
    }

    pub async fn save(&self, store: &Store) -> std::result::Result<(), StoreError> {
        if self.grace_s > 600 || self.verify_window_s == 0 || self.verify_window_s > 3600 {
            return Err(StoreError::Invalid(
                "the grace period is 0–600 s and the verification window 1–3,600 s".into(),
            ));
        }
        if !(0.0..=1.0).contains(&self.max_error_rate) || self.max_latency_factor < 1.0 {
            return Err(StoreError::Invalid(
                "the error-rate threshold is between 0 and 1, the latency factor at least 1".into(),
            ));
        }
        let text = serde_json::to_string(self).map_err(|e| StoreError::Invalid(e.to_string()))?;
        store.set_setting(SETTINGS_KEY, &text).await
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DeskError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("read-only mode is on: mutating actions are turned off in settings")]
    ReadOnly,
    #[error("{0}")]
    Refused(String),
    /// The action does not apply to what the cluster is doing now (no rollout under way to
    /// pause, say): nothing to confirm, and a runbook step can be passed over.
    #[error("{0}")]
    NotApplicable(String),
    #[error("the cluster's action API did not answer: {0}")]
    Unreachable(String),
}

type Result<T> = std::result::Result<T, DeskError>;

/// Where the desk finds a cluster's token: one the caller set (a `--token-env` variable,
/// the demo's simulator), else the OS keychain.
#[derive(Default, Clone)]
pub struct Tokens {
    fixed: Arc<Mutex<std::collections::HashMap<i64, String>>>,
}

impl Tokens {
    pub fn set(&self, cluster_id: i64, token: &str) {
        self.fixed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(cluster_id, token.to_owned());
    }

    pub async fn token(&self, cluster: &firebreak_store::Cluster) -> Option<String> {
        let fixed = self
            .fixed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&cluster.id)
            .cloned();
        match fixed {
            Some(t) => Some(t),
            None => crate::watchlist::token_of(cluster).await,
        }
    }
}

/// Pauses between attempts at an action the store cannot move on (250 ms doubling to 30 s).
const STUCK_RETRY: crate::ingest::backoff::Backoff = crate::ingest::backoff::Backoff {
    base: Duration::from_millis(250),
    cap: Duration::from_secs(30),
};

pub struct ActionDesk {
    store: Store,
    tokens: Tokens,
    streams: Arc<StatusBoard>,
    sink: Arc<dyn ConsoleSink>,
    /// Actions a task is driving now, so a second confirm or a resume never starts another.
    driving: Mutex<HashSet<String>>,
    /// Actions this desk cannot move on right now, with why (shown on the action panel).
    stuck: Mutex<std::collections::HashMap<String, String>>,
    /// This process's hold on driving the store's actions, taken on first need.
    driver: Mutex<Option<driver_lock::DriverLock>>,
    /// Who this process is, for the lock's holder text ("the console window").
    driver_name: Mutex<String>,
}

impl ActionDesk {
    pub fn new(
        store: Store,
        tokens: Tokens,
        streams: Arc<StatusBoard>,
        sink: Arc<dyn ConsoleSink>,
    ) -> Arc<Self> {
        Arc::new(ActionDesk {
            store,
            tokens,
            streams,
            sink,
            driving: Mutex::new(HashSet::new()),
            stuck: Mutex::new(std::collections::HashMap::new()),
            driver: Mutex::new(None),
            driver_name: Mutex::new(format!(
                "Firebreak ({})",
                firebreak_store::paths::local_user()
            )),
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn tokens(&self) -> &Tokens {
        &self.tokens
    }

    pub(crate) fn changed(&self, incident_id: i64) {
        self.sink.committed(&Committed {
            updated: vec![incident_id],
            ..Default::default()
        });
    }

    async fn client_for(
        &self,
        cluster_id: i64,
    ) -> Result<(firebreak_store::Cluster, Option<String>, ActionClient)> {
        let cluster = self.store.cluster(cluster_id).await?;
        let token = self.tokens.token(&cluster).await;
        let client = ActionClient::new(
            &cluster.actions_url,
            token.clone(),
            cluster.ca_file.as_deref().map(std::path::Path::new),
        )
        .map_err(|e| DeskError::Unreachable(e.to_string()))?;
        Ok((cluster, token, client))
    }

    /// Resolves what `kind` would do for the incident right now, records the proposal
    /// and returns it with its preview.
    pub async fn propose(
        &self,
        incident_id: i64,
        kind: ActionKind,
        actor: &str,
    ) -> Result<ActionRecord> {
        self.propose_with(incident_id, kind, Choice::default(), actor)
            .await
    }

    /// As [`propose`](Self::propose), with what the person chose: a rollback's revision, a
    /// promotion of every remaining wave.
    pub async fn propose_with(
        &self,
        incident_id: i64,
        kind: ActionKind,
        choice: Choice,
        actor: &str,
    ) -> Result<ActionRecord> {
        let settings = ActionSettings::load(&self.store).await?;
        if settings.read_only {
            return Err(DeskError::ReadOnly);
        }
        let incident = self.store.incident(incident_id).await?;
        let (Some(cluster_id), Some(service)) = (incident.cluster_id, incident.service.clone())
        else {
            return Err(DeskError::Refused(
                "this incident names no cluster and service, so there is nothing to act on".into(),
            ));
        };
        let (cluster, token, client) = self.client_for(cluster_id).await?;
        if token.is_none() {
            // Without a token the cluster answers nothing, not even its current state.
            return Err(DeskError::Refused(format!(
                "no token is saved for cluster {}: nothing can be sent, and its current state \
                 cannot be read. Add the token in Clusters",
                cluster.name
            )));
        }
        let plan = preview::plan(
            &self.store,
            &client,
            &cluster,
            &incident,
            &service,
            kind,
            choice,
            &settings,
        )
        .await?;
        let mut preview = plan.preview;
        match self.streams.state(cluster.id) {
            Some(crate::ingest::sink::StreamState::Live { .. }) => {}
            other => preview.warnings.push(format!(
                "the stream of cluster {} is {}: what the console recorded may be behind the cluster",
                cluster.name,
                other.map(|s| stream_word(&s)).unwrap_or("not watched")
            )),
        }
        let action = self
            .store
            .propose_action(&firebreak_store::actions::NewAction {
                incident_id,
                cluster_id,
                kind,
                service: &service,
                target: &plan.target,
                from: &plan.from,
                to: &plan.to,
                preview: &preview,
                proposed_by: actor,
            })
            .await?;
        self.changed(incident_id);
        Ok(action)
    }

    /// Proposes silencing the alert of a timeline entry (an `alert.firing` event the
    /// incident recorded) for `duration_s`, with a preview of what its matchers select.
    /// The page names only the incident and the entry; the matchers come from the event.
    pub async fn propose_silence(
        &self,
        incident_id: i64,
        entry_id: i64,
        duration_s: u32,
        actor: &str,
    ) -> Result<ActionRecord> {
        let settings = ActionSettings::load(&self.store).await?;
        if settings.read_only {
            return Err(DeskError::ReadOnly);
        }
        let incident = self.store.incident(incident_id).await?;
        let alert = self
            .store
            .alert_of_entry(incident_id, entry_id)
            .await?
            .ok_or_else(|| {
                DeskError::Refused(
                    "only an alert that fired can be silenced, and this entry is not one".into(),
                )
            })?;
        let (cluster, token, client) = self.client_for(alert.cluster_id).await?;
        if token.is_none() {
            return Err(DeskError::Refused(format!(
                "no token is saved for cluster {}: nothing can be sent. Add the token in Clusters",
                cluster.name
            )));
        }
        let plan = preview::plan_silence(
            &self.store,
            &cluster,
            &incident,
            &alert,
            duration_s,
            &settings,
        )
        .await?;
        let mut preview = plan.preview;
        // What it would mute now, as the cluster's alerting says (with what the cluster adds
        // to every silence); what this console recorded when the cluster cannot say.
        let scope = firebreak_protocol::actions::SilenceScope {
            matchers: preview::matchers_of_alert(&alert.alert, &alert.service, &alert.region),
        };
        match client.silence_preview(&scope).await {
            client::Outcome::Ok(muted) => preview::muted_now(&mut preview, &muted),
            client::Outcome::Refused { status, error } if status == 400 || status == 403 => {
                return Err(DeskError::Refused(format!(
                    "cluster {} would refuse this silence: {}",
                    cluster.name, error.message
                )));
            }
            client::Outcome::Refused { error, .. } => preview.warnings.push(format!(
                "cluster {} cannot say which alerts the silence mutes now ({}): shown is what this console recorded",
                cluster.name, error.message
            )),
            client::Outcome::InFlight => {}
            client::Outcome::NoAnswer(why) => preview.warnings.push(format!(
                "cluster {} did not say which alerts the silence mutes now ({why}): shown is what this console recorded",
                cluster.name
            )),
        }
        if !matches!(
            self.streams.state(cluster.id),
            Some(crate::ingest::sink::StreamState::Live { .. })
        ) {
            preview.warnings.push(format!(
                "the stream of cluster {} is not live: the alerts shown as firing may be out of date",
                cluster.name
            ));
        }
        let action = self
            .store
            .propose_action(&firebreak_store::actions::NewAction {
                incident_id,
                cluster_id: cluster.id,
                kind: ActionKind::Silence,
                service: &alert.service,
                target: &plan.target,
                from: &plan.from,
                to: &plan.to,
                preview: &preview,
                proposed_by: actor,
            })
            .await?;
        self.changed(incident_id);
        Ok(action)
    }

    /// Checks that a proposed action can be confirmed as it stands: the reason, the typed
    /// name, the token, and the cluster's state against the precondition. Returns the
    /// action, so the caller can ask for the final confirmation with its preview.
    pub async fn check(&self, id: &str, reason: &str, typed: Option<&str>) -> Result<ActionRecord> {
        let settings = ActionSettings::load(&self.store).await?;
        if settings.read_only {
            return Err(DeskError::ReadOnly);
        }
        let action = self.store.action(id).await?;
        if action.state != ActionState::Proposed {
            // A second click on an action already under way: nothing new happens.
            return Ok(action);
        }
        if reason.trim().is_empty() {
            return Err(DeskError::Refused(
                "give a reason: it goes on the timeline and in the report".into(),
            ));
        }
        if action.preview.type_to_confirm && typed.map(str::trim) != Some(action.service.as_str()) {
            return Err(DeskError::Refused(format!(
                "this action changes {} nodes: type the service name ({}) to confirm",
                action.preview.nodes, action.service
            )));
        }
        let (_, _, client) = self.client_for(action.cluster_id).await?;
        if let Some(conflict) = preview::recheck(&client, &action).await? {
            let refused = self
                .store
                .step_action(
                    id,
                    &[ActionState::Proposed],
                    ActionState::Refused,
                    Step {
                        error: Some(conflict.clone()),
                        ..Step::default()
                    },
                    firebreak_store::incident::ENGINE_AUTHOR,
                    &format!("Not sent: {conflict}. Propose again from the current state."),
                )
                .await?;
            self.changed(action.incident_id);
            return Err(DeskError::Refused(format!(
                "{conflict}; the proposal was withdrawn{}",
                refused.map(|_| "").unwrap_or("")
            )));
        }
        Ok(action)
    }

    /// Confirms a checked action: stores its idempotency key, starts the grace period,
    /// and drives it from there. Confirming again changes nothing.
    pub async fn confirm(
        self: &Arc<Self>,
        id: &str,
        actor: &str,
        reason: &str,
        typed: Option<&str>,
    ) -> Result<ActionRecord> {
        let action = self.check(id, reason, typed).await?;
        if action.state != ActionState::Proposed {
            return Ok(action);
        }
        self.ensure_driver()?;
        let settings = ActionSettings::load(&self.store).await?;
        let grace_ms = i64::from(settings.grace_s) * 1000;
        let confirmed = self
            .store
            .step_action(
                id,
                &[ActionState::Proposed],
                ActionState::Pending,
                Step {
                    confirmed_by: Some(actor.to_owned()),
                    reason: Some(reason.trim().to_owned()),
                    idempotency_key: Some(uuid::Uuid::new_v4().to_string()),
                    send_after_ms: Some(now_ms() + grace_ms),
                    ..Step::default()
                },
                actor,
                &format!(
                    "Confirmed by {actor}: {}. Reason: {}. Sending in {} s unless cancelled.",
                    action.preview.summary,
                    reason.trim(),
                    settings.grace_s
                ),
            )
            .await?;
        let Some(confirmed) = confirmed else {
            return Ok(self.store.action(id).await?);
        };
        self.changed(confirmed.incident_id);
        self.spawn_drive(id);
        Ok(confirmed)
    }

    /// Cancels an action in its grace period. Once sent, it can no longer be cancelled.
    pub async fn cancel(&self, id: &str, actor: &str) -> Result<ActionRecord> {
        let stepped = self
            .store
            .step_action(
                id,
                &[ActionState::Proposed, ActionState::Pending],
                ActionState::Cancelled,
                Step::default(),
                actor,
                &format!("Cancelled by {actor}; nothing was sent."),
            )
            .await?;
        match stepped {
            Some(a) => {
                self.changed(a.incident_id);
                Ok(a)
            }
            None => {
                let a = self.store.action(id).await?;
                Err(DeskError::Refused(format!(
                    "too late to cancel: the action is {}",
                    a.state.as_str()
                )))
            }
        }
    }

    /// Carries on every action a previous run left unfinished (after a crash, say).
    /// Names this process in the driver lock ("the console window", "firebreak act").
    pub fn set_driver_name(&self, name: &str) {
        *self.driver_name.lock().unwrap_or_else(|e| e.into_inner()) = name.to_owned();
    }

    /// Hands the desk a driver lock this process already took.
    pub fn hold_driver(&self, lock: driver_lock::DriverLock) {
        *self.driver.lock().unwrap_or_else(|e| e.into_inner()) = Some(lock);
    }

    /// Whether this process drives the store's actions (taking the hold when no process
    /// does); refused with who does otherwise.
    pub fn drives(&self) -> Result<()> {
        self.ensure_driver()
    }

    /// Takes (or keeps) this process's hold on driving the store's actions; refused with
    /// who holds it when another process does.
    fn ensure_driver(&self) -> Result<()> {
        let mut held = self.driver.lock().unwrap_or_else(|e| e.into_inner());
        if held.is_none() {
            let name = self
                .driver_name
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            *held = Some(
                driver_lock::DriverLock::acquire(self.store.path(), &name)
                    .map_err(DeskError::Refused)?,
            );
        }
        Ok(())
    }

    pub async fn resume_unfinished(self: &Arc<Self>) -> Result<usize> {
        self.ensure_driver()?;
        let unfinished = self.store.unfinished_actions().await?;
        for a in &unfinished {
            self.spawn_drive(&a.id);
        }
        Ok(unfinished.len())
    }

    fn spawn_drive(self: &Arc<Self>, id: &str) {
        if !self
            .driving
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_owned())
        {
            return;
        }
        let desk = self.clone();
        let id = id.to_owned();
        tokio::spawn(async move {
            let mut attempt = 0u32;
            loop {
                match desk.drive(&id).await {
                    Ok(_) => {
                        desk.set_stuck(&id, None).await;
                        break;
                    }
                    // The store could not write (locked, disk full, an I/O error): the
                    // action is where it was; try again, and say so on its panel.
                    Err(DeskError::Store(e)) if !e.is_about_data() => {
                        let delay = STUCK_RETRY.ceiling(attempt);
                        attempt = attempt.saturating_add(1);
                        tracing::warn!(action = %id, error = %e, retry_in_ms = delay.as_millis() as u64, "action stuck; retrying");
                        desk.set_stuck(&id, Some(format!("stuck, retrying: {e}")))
                            .await;
                        tokio::time::sleep(delay).await;
                    }
                    Err(e) => {
                        tracing::error!(action = %id, error = %e, "action stopped");
                        desk.set_stuck(&id, Some(format!("stopped: {e}"))).await;
                        break;
                    }
                }
            }
            desk.driving
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
        });
    }

    /// Records (or clears) why an action cannot move on, and tells the window.
    async fn set_stuck(&self, id: &str, why: Option<String>) {
        let changed = {
            let mut stuck = self.stuck.lock().unwrap_or_else(|e| e.into_inner());
            match why {
                Some(why) => stuck.insert(id.to_owned(), why.clone()) != Some(why),
                None => stuck.remove(id).is_some(),
            }
        };
        if changed {
            if let Ok(a) = self.store.action(id).await {
                self.changed(a.incident_id);
            }
        }
    }

    /// The actions with what this desk knows of them beyond the store: why one is stuck.
    pub fn with_status(&self, mut actions: Vec<ActionRecord>) -> Vec<ActionRecord> {
        let stuck = self.stuck.lock().unwrap_or_else(|e| e.into_inner());
        for a in &mut actions {
            a.stuck = stuck.get(&a.id).cloned();
        }
        actions
    }

    /// Why an action cannot move on right now, if it cannot.
    pub fn stuck(&self, id: &str) -> Option<String> {
        self.stuck
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    /// Drives an action to its end: waits out the grace period, sends, follows, verifies.
    /// Safe to call again at any point: every step is guarded by the state it starts from.
    pub async fn drive(&self, id: &str) -> Result<ActionRecord> {
        let mut retry = Duration::from_millis(500);
        loop {
            let action = self.store.action(id).await?;
            let next = match action.state {
                ActionState::Pending => self.after_grace(&action).await?,
                ActionState::Sent | ActionState::Unknown => self.send(&action).await?,
                ActionState::Accepted | ActionState::Running => self.follow(&action).await?,
                ActionState::Succeeded
                    if action.verification.is_none() && action.kind != ActionKind::Silence =>
                {
                    verify::verify(self, &action).await?;
                    Progress::Moved
                }
                _ => return Ok(action),
            };
            match next {
                Progress::Moved => {
                    retry = Duration::from_millis(500);
                    // It moves again: whatever held it is over.
                    self.stuck
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(id);
                }
                Progress::Wait => {
                    tokio::time::sleep(retry).await;
                    retry = (retry * 2).min(Duration::from_secs(15));
                }
                Progress::Poll => firebreak_common::clock::sleep(Duration::from_millis(500)).await,
            }
            if let Ok(a) = self.store.action(id).await {
                self.changed(a.incident_id);
            }
        }
    }

    async fn after_grace(&self, action: &ActionRecord) -> Result<Progress> {
        let wait = action.send_after_ms.unwrap_or(0) - now_ms();
        if wait > 0 {
            firebreak_common::clock::sleep(Duration::from_millis(wait.min(1_000) as u64)).await;
            return Ok(Progress::Moved);
        }
        self.store
            .step_action(
                &action.id,
                &[ActionState::Pending],
                ActionState::Sent,
                Step::default(),
                firebreak_store::incident::ENGINE_AUTHOR,
                &format!("Sent to the cluster: {}.", action.preview.summary),
            )
            .await?;
        Ok(Progress::Moved)
    }

    /// Sends the stored request with the stored key (again, after no answer).
    async fn send(&self, action: &ActionRecord) -> Result<Progress> {
        let key = action
            .idempotency_key
            .clone()
            .ok_or_else(|| DeskError::Refused("a sent action has no idempotency key".into()))?;
        let (_, _, client) = self.client_for(action.cluster_id).await?;
        let actor = action
            .confirmed_by
            .clone()
            .unwrap_or_else(|| action.proposed_by.clone());
        let reason = action.reason.clone().unwrap_or_default();
        let outcome = match action.kind {
            ActionKind::PauseRollout
            | ActionKind::ResumeRollout
            | ActionKind::AbortRollout
            | ActionKind::PromoteRollout => {
                let lever = action.kind.lever().expect("a rollout lever");
                let Ok(expected) = action.from.parse() else {
                    return Err(DeskError::Refused(
                        "the recorded revision is not a number".into(),
                    ));
                };
                let body = RolloutRequest {
                    expected_revision: expected,
                    full: action.kind == ActionKind::PromoteRollout && action.to == PROMOTE_ALL,
                    actor,
                    reason,
                };
                client.rollout(&action.target, lever, &body, &key).await
            }
            ActionKind::Rollback => {
                let (Ok(to), Ok(expected)) = (action.to.parse(), action.from.parse()) else {
                    return Err(DeskError::Refused(
                        "the recorded revisions are not numbers".into(),
                    ));
                };
                let body = RollbackRequest {
                    to_revision: to,
                    expected_revision: expected,
                    actor,
                    reason,
                };
                client.rollback(&action.target, &body, &key).await
            }
            ActionKind::Failover => {
                let body = FailoverRequest {
                    to_region: action.to.clone(),
                    expected_primary_region: action.from.clone(),
                    actor,
                    reason,
                };
                client.failover(&action.target, &body, &key).await
            }
            ActionKind::Silence => {
                let Ok(duration_s) = action.to.parse() else {
                    return Err(DeskError::Refused(
                        "the recorded silence duration is not a number".into(),
                    ));
                };
                let body = SilenceRequest {
                    matchers: preview::silence_matchers(action),
                    duration_s,
                    comment: reason,
                    actor,
                };
                client.silence(&body, &key).await
            }
        };
        let from = [ActionState::Sent, ActionState::Unknown];
        let engine = firebreak_store::incident::ENGINE_AUTHOR;
        match outcome {
            Outcome::Ok(remote) => {
                self.store
                    .step_action(
                        &action.id,
                        &from,
                        ActionState::Accepted,
                        Step {
                            remote_id: Some(remote.id.clone()),
                            ..Step::default()
                        },
                        engine,
                        &format!("Accepted by the cluster as action {}.", remote.id),
                    )
                    .await?;
                Ok(Progress::Moved)
            }
            Outcome::Refused { status, error } => {
                let mut text = error.message.clone();
                if let Some(current) = &error.current {
                    text.push_str(&format!("; current: {}", describe_current(current)));
                }
                if let Some(who) = &error.changed_by {
                    text.push_str(&format!(", changed by {who}"));
                }
                self.store
                    .step_action(
                        &action.id,
                        &from,
                        ActionState::Refused,
                        Step {
                            error: Some(text.clone()),
                            ..Step::default()
                        },
                        engine,
                        &format!(
                            "Refused by the cluster ({status} {}): {text}. Nothing was changed.",
                            error.error
                        ),
                    )
                    .await?;
                Ok(Progress::Moved)
            }
            Outcome::InFlight => Ok(Progress::Wait),
            Outcome::NoAnswer(why) => {
                if action.state == ActionState::Sent {
                    self.store
                        .step_action(
                            &action.id,
                            &[ActionState::Sent],
                            ActionState::Unknown,
                            Step::default(),
                            engine,
                            &format!(
                                "Outcome unknown ({why}): asking the cluster again with the same \
                                 idempotency key; it acts at most once."
                            ),
                        )
                        .await?;
                }
                Ok(Progress::Wait)
            }
        }
    }

    /// Reads the cluster's record of the action and records each new state.
    async fn follow(&self, action: &ActionRecord) -> Result<Progress> {
        let Some(remote_id) = &action.remote_id else {
            return Err(DeskError::Refused(
                "an accepted action has no cluster id".into(),
            ));
        };
        let (_, _, client) = self.client_for(action.cluster_id).await?;
        let remote = match client.action(remote_id).await {
            Outcome::Ok(a) => a,
            Outcome::NoAnswer(_) | Outcome::InFlight => return Ok(Progress::Wait),
            Outcome::Refused { error, .. } => {
                tracing::warn!(action = %action.id, error = %error.message, "cannot read the action");
                return Ok(Progress::Wait);
            }
        };
        let engine = firebreak_store::incident::ENGINE_AUTHOR;
        let from = [ActionState::Accepted, ActionState::Running];
        match remote.state {
            Remote::Accepted => Ok(Progress::Poll),
            Remote::Running if action.state == ActionState::Running => Ok(Progress::Poll),
            Remote::Running => {
                self.store
                    .step_action(
                        &action.id,
                        &from,
                        ActionState::Running,
                        Step::default(),
                        engine,
                        "Running on the cluster.",
                    )
                    .await?;
                Ok(Progress::Moved)
            }
            Remote::Succeeded => {
                let settings = ActionSettings::load(&self.store).await?;
                self.store
                    .step_action(
                        &action.id,
                        &from,
                        ActionState::Succeeded,
                        Step {
                            succeeded_ms: Some(now_ms()),
                            ..Step::default()
                        },
                        engine,
                        &match action.kind {
                            ActionKind::Silence => format!(
                                "Succeeded: {}{}.",
                                action.preview.summary,
                                remote
                                    .output
                                    .as_deref()
                                    .map(|o| format!(" ({})", o.trim()))
                                    .unwrap_or_default()
                            ),
                            _ => format!(
                                "Succeeded: {}. Watching {}'s health for {} s to verify.",
                                action.preview.summary, action.service, settings.verify_window_s
                            ),
                        },
                    )
                    .await?;
                Ok(Progress::Moved)
            }
            Remote::Failed => {
                let error = remote.error.unwrap_or_else(|| "no reason given".into());
                self.store
                    .step_action(
                        &action.id,
                        &from,
                        ActionState::Failed,
                        Step {
                            error: Some(error.clone()),
                            ..Step::default()
                        },
                        engine,
                        &format!("Failed on the cluster: {error}."),
                    )
                    .await?;
                Ok(Progress::Moved)
            }
        }
    }
}

enum Progress {
    /// The action changed: look again at once.
    Moved,
    /// Nothing changed and something failed: back off.
    Wait,
    /// Nothing changed yet: look again shortly.
    Poll,
}

fn stream_word(s: &crate::ingest::sink::StreamState) -> &'static str {
    use crate::ingest::sink::StreamState as S;
    match s {
        S::Connecting => "connecting",
        S::Live { .. } => "live",
        S::CatchingUp { .. } => "catching up",
        S::Reconnecting { .. } => "reconnecting",
        S::Failed { .. } => "failed",
    }
}

fn describe_current(v: &serde_json::Value) -> String {
    match v.as_object() {
        Some(map) => map
            .iter()
            .map(|(k, v)| {
                format!(
                    "{} {}",
                    k.replace('_', " "),
                    v.as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| v.to_string())
                )
            })
            .collect::<Vec<_>>()
            .join(", "),
        None => v.to_string(),
    }
}

/// A share as a person reads it: 0.02 → "2 %", 0.005 → "0.5 %".
fn percent(share: f64) -> String {
    format!("{} %", (share * 1000.0).round() / 10.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loosening_a_guard_rail_is_named_and_tightening_is_not() {
        let strict = ActionSettings {
            read_only: true,
            ..Default::default()
        };
        let loose = ActionSettings {
            read_only: false,
            grace_s: 1,
            type_to_confirm_nodes: 40,
            ..Default::default()
        };
        let said = strict.weakened_by(&loose);
        assert_eq!(said.len(), 3, "each loosened rail is named: {said:?}");
        assert!(said[0].contains("read-only mode off"));
        assert!(said[1].contains("5 s to 1 s"));
        assert!(said[2].contains("from 40 nodes"));
        // Tightening, or changing what only verifies, needs no confirmation.
        assert!(loose.weakened_by(&strict).is_empty());
        let longer_verification = ActionSettings {
            verify_window_s: 120,
            max_error_rate: 0.01,
            max_latency_factor: 1.2,
            ..strict.clone()
        };
        assert!(strict.weakened_by(&longer_verification).is_empty());
    }

    #[test]
    fn making_verification_easier_to_pass_is_a_loosened_guard_rail() {
        let now = ActionSettings::default();
        for (easier, named) in [
            (
                ActionSettings {
                    max_error_rate: 1.0,
                    ..now.clone()
                },
                "error rate up to 100 % (was 2 %)",
            ),
            (
                ActionSettings {
                    max_latency_factor: 50.0,
                    ..now.clone()
                },
                "up to 50× the level",
            ),
            (
                ActionSettings {
                    verify_window_s: 1,
                    ..now.clone()
                },
                "watched for 1 s only (was 60 s)",
            ),
        ] {
            let said = now.weakened_by(&easier);
            // Page script could otherwise make every action count as recovered without
            // the native confirmation a person must give.
            assert_eq!(said.len(), 1, "{easier:?} must need a person: {said:?}");
            assert!(said[0].contains(named), "{said:?} names {named:?}");
        }
    }
}
