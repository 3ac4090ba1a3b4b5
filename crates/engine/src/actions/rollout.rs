//! What the window needs to offer the rollout levers that apply: the incident's
//! deployment, the rollout under way (its wave, whether it is paused or stalled), and the
//! history a rollback can go back to, each revision with when it served and how it did
//! while it did (from the metrics this console recorded).

use serde::Serialize;
use ts_rs::TS;

use super::client::Outcome;
use super::{ActionDesk, DeskError, Result};
use firebreak_protocol::actions::Deployment;

/// Samples read to tell how each revision served (newest first; about 4 hours of one
/// service's metrics in both regions at the simulator's pace).
const SAMPLES: i64 = 6_000;

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct RolloutState {
    pub deployment: String,
    /// What an action on it patches, when the cluster acts on Kubernetes.
    pub object: Option<String>,
    pub current_revision: u32,
    pub rollout: Option<RolloutProgress>,
    /// The service on its primary region now, against the desk's error-rate limit (none
    /// without recorded metrics): a rollout is promoted only when paused and healthy.
    pub healthy: Option<bool>,
    /// Oldest first.
    pub revisions: Vec<RevisionChoice>,
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct RolloutProgress {
    pub to_revision: u32,
    pub wave: u32,
    pub waves: u32,
    pub stalled: bool,
    pub paused: bool,
    pub nodes_total: u32,
}

/// One revision of the history, as the rollback picker lists it.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct RevisionChoice {
    pub revision: u32,
    pub model_version: String,
    #[ts(type = "number")]
    pub created_ms: i64,
    /// The first and last recorded metrics of the service on its primary region while
    /// most of its nodes ran this revision and no rollout was under way (a rollout's
    /// samples speak for a mix); none when the console never saw it serve alone.
    #[ts(type = "number | null")]
    pub live_from_ms: Option<i64>,
    #[ts(type = "number | null")]
    pub live_to_ms: Option<i64>,
    /// Mean error rate (0–1) and p99 (ms) over those samples.
    pub error_rate: Option<f64>,
    pub p99_ms: Option<f64>,
    pub current: bool,
}

impl ActionDesk {
    /// The incident's deployment as the cluster has it now, with each revision's record.
    pub async fn rollout_state(&self, incident_id: i64) -> Result<RolloutState> {
        let incident = self.store.incident(incident_id).await?;
        let (Some(cluster_id), Some(service)) = (incident.cluster_id, incident.service.clone())
        else {
            return Err(DeskError::Refused(
                "this incident names no cluster and service".into(),
            ));
        };
        let (_, _, client) = self.client_for(cluster_id).await?;
        let name = match client.services().await {
            Outcome::Ok(services) => services
                .into_iter()
                .find(|s| s.name == service)
                .map(|s| s.deployment)
                .ok_or_else(|| {
                    DeskError::Refused(format!("the cluster has no service {service:?}"))
                })?,
            other => return Err(unanswered(other)),
        };
        let deployment: Deployment = match client.deployment(&name).await {
            Outcome::Ok(d) => d,
            other => return Err(unanswered(other)),
        };
        let samples = self
            .store
            .metric_samples(cluster_id, &service, i64::MIN, i64::MAX, SAMPLES)
            .await?;
        let rollouts = self.store.rollout_windows(cluster_id, &service).await?;
        let settled = |at: i64| {
            !rollouts
                .iter()
                .any(|(from, to)| at >= *from && to.is_none_or(|to| at <= to))
        };
        let limit = super::ActionSettings::load(&self.store)
            .await?
            .max_error_rate;
        let healthy = samples
            .iter()
            .rev()
            .find(|m| m.primary)
            .map(|m| m.error_rate <= limit);
        let revisions = deployment
            .revisions
            .iter()
            .map(|r| {
                let served: Vec<_> = samples
                    .iter()
                    .filter(|m| m.primary && m.revision == r.revision && settled(m.seq))
                    .collect();
                let n = served.len() as f64;
                RevisionChoice {
                    revision: r.revision,
                    model_version: r.model_version.clone(),
                    created_ms: r.created_at.timestamp_millis(),
                    live_from_ms: served.first().map(|m| m.received_ms),
                    live_to_ms: served.last().map(|m| m.received_ms),
                    error_rate: (n > 0.0)
                        .then(|| served.iter().map(|m| m.error_rate).sum::<f64>() / n),
                    p99_ms: (n > 0.0)
                        .then(|| served.iter().map(|m| m.latency_p99_ms).sum::<f64>() / n),
                    current: r.revision == deployment.current_revision,
                }
            })
            .collect();
        Ok(RolloutState {
            object: deployment.object.clone(),
            current_revision: deployment.current_revision,
            rollout: deployment.rollout.as_ref().map(|r| RolloutProgress {
                to_revision: r.to_revision,
                wave: r.wave,
                waves: r.waves,
                stalled: r.stalled,
                paused: r.paused,
                nodes_total: deployment.nodes_total,
            }),
            deployment: deployment.name,
            healthy,
            revisions,
        })
    }
}

fn unanswered<T>(outcome: Outcome<T>) -> DeskError {
    match outcome {
        Outcome::Ok(_) => DeskError::Unreachable("an answer was expected to be refused".into()),
        Outcome::Refused { status, error } => {
            DeskError::Refused(format!("the cluster refused ({status}): {}", error.message))
        }
        Outcome::InFlight => DeskError::Unreachable("the cluster is busy".into()),
        Outcome::NoAnswer(why) => DeskError::Unreachable(why),
    }
}
