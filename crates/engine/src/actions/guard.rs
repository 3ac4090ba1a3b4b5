//! The rollout guard: what the console does on its own when a rollout's canary verdict
//! fails, as each service's policy says (`firebreak_store::guards`).
//!
//! ```text
//!  verdict fails ──▶ claim the decision (one per rollout, kept across restarts)
//!                      ▼
//!                 verdict + policy on the incident's timeline (opened if none is open)
//!                      ▼
//!                 desk: propose Pause (evidence in the preview) ── propose: a person confirms
//!                      ▼ pause on fail
//!                 desk: confirm as the guard, the approval in the reason
//!                      ▼
//!                 grace period (Cancel still stops it) ──▶ sent ──▶ verified
//! ```
//!
//! Everything goes through the same desk as a person's click: the idempotency key, the
//! precondition, the audit record and the verification. Read-only mode refuses it as it
//! refuses anyone. Only the process that drives the store's actions (the driver lock)
//! guards, so two consoles on one store never pause twice; a rollout with no figures by
//! revision has no verdict and is never paused.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use ts_rs::TS;

use firebreak_protocol::actions::ActionKind;
use firebreak_store::actions::{ActionRecord, ActionState};
use firebreak_store::guards::{FailedRollout, GuardDecision, GuardMode, RolloutGuard};

use super::{ActionDesk, Choice, DeskError};
use crate::canary::{self, RolloutVerdicts, Verdict};

/// Who proposes and confirms what a guard does, on the timeline and in the audit log.
pub const GUARD_ACTOR: &str = "rollout guard";

/// How often the guard looks at the verdicts of the services it guards.
const EVERY: Duration = Duration::from_secs(1);

/// What one look did about one service.
#[derive(Debug, Clone, PartialEq)]
pub enum Took {
    /// A pause was proposed for a person to confirm.
    Proposed { service: String, action: String },
    /// A pause was confirmed as the policy approved it (it still has its grace period).
    Paused { service: String, action: String },
    /// Nothing was paused, and why (read-only mode, no rollout left to pause, …).
    NotPaused { service: String, why: String },
}

pub struct Guard {
    desk: Arc<ActionDesk>,
}

type Result<T> = std::result::Result<T, DeskError>;

impl Guard {
    pub fn new(desk: Arc<ActionDesk>) -> Arc<Guard> {
        Arc::new(Guard { desk })
    }

    /// Looks every second for as long as the process runs.
    pub fn spawn(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let guard = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut said = String::new();
            loop {
                tick.tick().await;
                let now = match guard.look().await {
                    Ok(took) => {
                        for t in &took {
                            tracing::info!(?t, "rollout guard");
                        }
                        String::new()
                    }
                    Err(e) => e.to_string(),
                };
                // Said once, not every second, while the same thing stops it.
                if now != said && !now.is_empty() {
                    tracing::warn!(error = %now, "the rollout guard cannot look");
                }
                said = now;
            }
        })
    }

    /// One look at every guarded service's newest rollout.
    pub async fn look(&self) -> Result<Vec<Took>> {
        let store = self.desk.store();
        let guards: Vec<RolloutGuard> = store
            .rollout_guards()
            .await?
            .into_iter()
            .filter(|g| g.mode != GuardMode::Watch)
            .collect();
        if guards.is_empty() {
            return Ok(Vec::new());
        }
        // Another process drives this store's actions: it guards, this one does not.
        if self.desk.drives().is_err() {
            return Ok(Vec::new());
        }
        let mut took = Vec::new();
        for g in &guards {
            match self.one(g).await {
                Ok(Some(t)) => took.push(t),
                Ok(None) => {}
                // One service's trouble (its cluster unreachable) is not another's.
                Err(e) => {
                    tracing::warn!(service = %g.service, error = %e, "the rollout guard will try again")
                }
            }
        }
        Ok(took)
    }

    async fn one(&self, g: &RolloutGuard) -> Result<Option<Took>> {
        let store = self.desk.store();
        let Some(rv) = canary::rollout_verdicts(store, g.cluster_id, &g.service).await? else {
            return Ok(None);
        };
        // No verdict without figures by revision, and nothing to pause once it ended.
        if rv.no_data || rv.ended.is_some() {
            return Ok(None);
        }
        let Some(fail) = &rv.first_fail else {
            return Ok(None);
        };
        let decision = store
            .claim_guard_decision(&FailedRollout {
                cluster_id: g.cluster_id,
                service: &g.service,
                rollout_seq: rv.started_seq,
                mode: g.mode,
                verdict_at_ms: fail.at_ms,
                sentence: &fail.sentence,
            })
            .await?;
        if decision.outcome.is_some() {
            return Ok(None);
        }
        self.carry_out(g, &rv, fail, decision).await.map(Some)
    }

    async fn carry_out(
        &self,
        g: &RolloutGuard,
        rv: &RolloutVerdicts,
        fail: &Verdict,
        mut d: GuardDecision,
    ) -> Result<Took> {
        let store = self.desk.store();
        let approval = approval(g);
        if d.incident_id.is_none() {
            let mut body = fail.evidence().join("\n");
            body.push_str(&format!(
                "\nRollout guard of {}: {}, {approval}. {}",
                g.service,
                d.mode.words(),
                match d.mode {
                    GuardMode::PauseOnFail =>
                        "Pausing the rollout (the grace period still runs: Cancel stops it).",
                    _ => "Proposing a pause for a person to confirm.",
                }
            ));
            let title = format!(
                "Revision {} of {} fails its canary ({})",
                fail.canary_revision, g.service, rv.deployment
            );
            d.incident_id = Some(store.guard_incident(&d, &title, &body).await?);
        }
        let incident = d.incident_id.unwrap_or_default();
        let action = match &d.action_id {
            Some(id) => store.action(id).await?,
            None => match self.proposal(incident).await? {
                Ok(a) => {
                    store.guard_action(&d, &a.id).await?;
                    a
                }
                Err(why) => return self.not_paused(&d, why).await,
            },
        };
        if d.mode == GuardMode::Propose {
            store.finish_guard_decision(&d, "proposed", None).await?;
            return Ok(Took::Proposed {
                service: g.service.clone(),
                action: action.id,
            });
        }
        if action.state == ActionState::Proposed {
            let reason = format!(
                "{}. Rollout guard: pause on fail, {approval}",
                fail.sentence
            );
            match self
                .desk
                .confirm(&action.id, GUARD_ACTOR, &reason, Some(&g.service))
                .await
            {
                Ok(_) => {}
                Err(DeskError::ReadOnly) => return self.not_paused(&d, read_only()).await,
                Err(DeskError::Refused(why) | DeskError::NotApplicable(why)) => {
                    return self.not_paused(&d, why).await
                }
                Err(e) => return Err(e),
            }
        } else if action.state == ActionState::Cancelled {
            // A person discarded the proposal before the guard confirmed it.
            return self
                .not_paused(&d, "the proposal was discarded".to_owned())
                .await;
        }
        store.finish_guard_decision(&d, "confirmed", None).await?;
        Ok(Took::Paused {
            service: g.service.clone(),
            action: action.id,
        })
    }

    /// The guard's pause proposal on the incident: one it made before a restart and had
    /// not yet recorded, else a new one. `Err(why)` when the desk will not propose it.
    async fn proposal(&self, incident: i64) -> Result<std::result::Result<ActionRecord, String>> {
        let store = self.desk.store();
        let earlier = store
            .incident_actions(incident)
            .await?
            .into_iter()
            .find(|a| {
                a.kind == ActionKind::PauseRollout
                    && a.proposed_by == GUARD_ACTOR
                    && a.state == ActionState::Proposed
            });
        if let Some(a) = earlier {
            return Ok(Ok(a));
        }
        match self
            .desk
            .propose_with(
                incident,
                ActionKind::PauseRollout,
                Choice::default(),
                GUARD_ACTOR,
            )
            .await
        {
            Ok(a) => Ok(Ok(a)),
            Err(DeskError::ReadOnly) => Ok(Err(read_only())),
            Err(DeskError::Refused(why) | DeskError::NotApplicable(why)) => Ok(Err(why)),
            // The cluster did not answer or the store could not write: next look.
            Err(e) => Err(e),
        }
    }

    async fn not_paused(&self, d: &GuardDecision, why: String) -> Result<Took> {
        let entry = format!("Rollout guard: not paused: {why}. The verdict stands; act from Act.");
        self.desk
            .store()
            .finish_guard_decision(d, &format!("not paused: {why}"), Some(&entry))
            .await?;
        self.desk.changed(d.incident_id.unwrap_or_default());
        Ok(Took::NotPaused {
            service: d.service.clone(),
            why,
        })
    }
}

fn read_only() -> String {
    "read-only mode is on (Settings)".to_owned()
}

/// "approved by ana at 2026-12-07 14:03 UTC: canaries fail fast here".
fn approval(g: &RolloutGuard) -> String {
    let at = chrono::DateTime::from_timestamp_millis(g.approved_at_ms)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| g.approved_at_ms.to_string());
    format!("approved by {} at {at}: {}", g.approved_by, g.reason)
}

/// A service's guard as Settings shows it: the policy in force (none: watch), and the
/// one a runbook recommends for it.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ServiceGuard {
    pub cluster_id: i64,
    pub cluster: String,
    pub service: String,
    pub guard: Option<RolloutGuard>,
    pub suggested: Option<Suggestion>,
}

/// A runbook's recommended guard for a service.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Suggestion {
    pub mode: GuardMode,
    /// The runbook's title and id.
    pub runbook: String,
}

/// Every recorded service's guard, with the recommendation of the first runbook that
/// makes one for it (a runbook naming the service before one naming none).
pub async fn service_guards(
    store: &firebreak_store::Store,
    runbooks: &[crate::runbooks::Runbook],
) -> std::result::Result<Vec<ServiceGuard>, firebreak_store::StoreError> {
    let set = store.rollout_guards().await?;
    let mut out = Vec::new();
    for (cluster_id, cluster, service) in store.services().await? {
        let guard = set
            .iter()
            .find(|g| g.cluster_id == cluster_id && g.service == service)
            .cloned();
        let with_guard = || runbooks.iter().filter(|r| r.rollout_guard.is_some());
        let suggested = with_guard()
            .find(|r| r.applies_to.services.contains(&service))
            .or_else(|| with_guard().find(|r| r.applies_to.services.is_empty()))
            .and_then(|r| {
                Some(Suggestion {
                    mode: r.rollout_guard?,
                    runbook: format!("{} ({})", r.title, r.id),
                })
            });
        out.push(ServiceGuard {
            cluster_id,
            cluster,
            service,
            guard,
            suggested,
        });
    }
    Ok(out)
}
