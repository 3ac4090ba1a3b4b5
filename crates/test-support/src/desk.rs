//! An action desk on a live console recording a simulator: the rig the action suites
//! (the engine's and the command line's) share.

use std::sync::Arc;
use std::time::Duration;

use firebreak_engine::actions::{ActionDesk, ActionSettings};
use firebreak_engine::ingest::Engine;
use firebreak_protocol::actions::ActionKind;
use firebreak_sim::{RunningSim, SimOptions};
use firebreak_store::actions::{ActionRecord, ActionState};
use firebreak_store::incident::{EntryKind, Incident};
use firebreak_store::Store;

use crate::cluster::sim;
use crate::rig::wait_for;

pub struct Rig {
    pub sim: RunningSim,
    pub dir: tempfile::TempDir,
    pub store: Store,
    pub engine: Option<Engine>,
    pub desk: Arc<ActionDesk>,
    pub cluster: i64,
}

impl Rig {
    pub async fn start(
        scenario: &str,
        settings: ActionSettings,
        configure: impl FnOnce(&mut SimOptions),
    ) -> Rig {
        let sim = sim(scenario, 10.0, configure).await;
        let dir = tempfile::tempdir().unwrap();
        let live = crate::rig::live(&dir.path().join("firebreak.db"), &sim, settings).await;
        Rig {
            sim,
            dir,
            store: live.store,
            engine: Some(live.engine),
            desk: live.desk,
            cluster: live.cluster,
        }
    }

    /// The incident the rules open for `service`.
    pub async fn incident(&self, service: &str) -> Incident {
        crate::rig::incident_where(&self.store, &format!("an incident on {service}"), |i| {
            i.service.as_deref() == Some(service)
        })
        .await
    }

    /// The bad-model-rollout incident with a rollback proposed and confirmed by ana.
    pub async fn confirmed_rollback(&self) -> (Incident, ActionRecord) {
        let incident = self.incident("llm-assistant").await;
        let proposal = self
            .desk
            .propose(incident.id, ActionKind::Rollback, "ana")
            .await
            .unwrap();
        self.desk
            .confirm(&proposal.id, "ana", "errors on 42", Some("llm-assistant"))
            .await
            .unwrap();
        (incident, proposal)
    }

    /// Waits until the action has finished and, when it succeeded, been verified.
    pub async fn settled(&self, id: &str) -> ActionRecord {
        wait_for(
            Duration::from_secs(90),
            "the action to settle",
            async || {
                let a = self.store.action(id).await.unwrap();
                a.state.is_final()
                    && (a.state != ActionState::Succeeded || a.verification.is_some())
            },
        )
        .await;
        self.store.action(id).await.unwrap()
    }

    pub async fn actions_at_sim(&self) -> u64 {
        crate::cluster::get(&self.sim, "/v1/sim/stats").await["actions"]
            .as_u64()
            .unwrap()
    }

    pub async fn steps(&self, incident: i64) -> Vec<String> {
        self.store
            .timeline(incident, None, 1000)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| matches!(e.kind, EntryKind::Action | EntryKind::Verification))
            .map(|e| e.body)
            .collect()
    }

    pub async fn stop(mut self) {
        if let Some(e) = self.engine.take() {
            e.stop().await;
        }
        self.sim.shutdown();
    }
}

/// Action settings for tests: a one-second grace period and a four-second verification.
pub fn quick() -> ActionSettings {
    ActionSettings {
        grace_s: 1,
        verify_window_s: 4,
        ..ActionSettings::default()
    }
}

/// Whether one of `steps` starts with `start`.
pub fn has(steps: &[String], start: &str) -> bool {
    steps.iter().any(|s| s.starts_with(start))
}
