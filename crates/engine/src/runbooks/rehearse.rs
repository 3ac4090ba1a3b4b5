//! `firebreak runbooks rehearse`: a runbook against the simulator, headless, so a team
//! can test its runbooks before an incident does. Checks are answered "done", a branch
//! without a query takes its first answer, action steps are confirmed as a person would
//! (same desk, same idempotency and verification); the report says whether the incident
//! ended mitigated, which steps ran and how long it took.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::format::Step;
use super::run::{Answer, Runner};
use super::Runbook;
use crate::actions::{ActionDesk, ActionSettings, Tokens};
use crate::ingest::sink::{ConsoleSink, Recorder, StatusBoard, Tee};
use crate::ingest::{Engine, Target};
use firebreak_sim::{Remedy, Scenario, SimOptions};
use firebreak_store::actions::ActionState;
use firebreak_store::incident::IncidentStatus;
use firebreak_store::runs::RunRecord;
use firebreak_store::{NewCluster, Store};

const WHO: &str = "rehearsal";

/// What a rehearsal found.
pub struct Rehearsal {
    pub mitigated: bool,
    pub steps: Vec<String>,
    pub took: Duration,
    pub simulated_s: f64,
}

/// Rehearses `runbook` against a fresh simulator running `scenario` at `speed`, in a
/// throwaway store under `scratch`.
pub async fn rehearse(
    runbook: &Runbook,
    scenario: &str,
    speed: f64,
    scratch: &std::path::Path,
) -> Result<Rehearsal> {
    let scenario = Scenario::load(scenario)?;
    let service = match &scenario.remedy {
        Remedy::Rollback { service, .. } | Remedy::Failover { service, .. } => service.clone(),
        Remedy::None => bail!(
            "scenario {} has no incident to rehearse against",
            scenario.name
        ),
    };
    let token = uuid::Uuid::new_v4().simple().to_string();
    let mut opts = SimOptions::new(scenario, token.clone());
    opts.speed = speed;
    let sim = firebreak_sim::start(opts).await?;
    let started = Instant::now();

    std::fs::create_dir_all(scratch)?;
    let store = Store::open(&scratch.join("firebreak.db")).await?;
    // Verification watches a minute of simulated time, however fast the simulation runs.
    ActionSettings {
        grace_s: 0,
        verify_window_s: (60.0 / speed).ceil().max(3.0) as u32,
        ..ActionSettings::default()
    }
    .save(&store)
    .await?;
    let cluster = store
        .ensure_cluster(&NewCluster {
            ca_file: None,
            name: "rehearsal".into(),
            events_url: sim.events_url(),
            actions_url: sim.actions_url(),
        })
        .await?;
    let board = Arc::new(StatusBoard::default());
    let sink: Arc<dyn ConsoleSink> =
        Arc::new(Tee(vec![board.clone(), Arc::new(Recorder::default())]));
    let engine = Engine::start(
        store.clone(),
        vec![Target {
            cluster_id: cluster.id,
            name: cluster.name.clone(),
            events_url: cluster.events_url.clone(),
            token: Some(token.clone()),
            ca_file: cluster.ca_file.clone().map(Into::into),
        }],
        sink.clone(),
    )
    .await?;
    let tokens = Tokens::default();
    tokens.set(cluster.id, &token);
    let desk = ActionDesk::new(store.clone(), tokens, board, sink);
    let runner = Runner::new(store.clone(), desk.clone());

    let result = async {
        let deadline = Instant::now() + Duration::from_secs(300);
        let incident = loop {
            let found = store
                .incidents()
                .await?
                .into_iter()
                .find(|i| i.service.as_deref() == Some(service.as_str()));
            if let Some(i) = found {
                break i;
            }
            anyhow::ensure!(Instant::now() < deadline, "no incident opened on {service}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let mut run = runner.start(incident.id, runbook, WHO).await?;
        while let Some(current) = run.current_step.clone().filter(|_| run.state == "running") {
            anyhow::ensure!(
                Instant::now() < deadline,
                "the rehearsal did not finish in 5 minutes (at step {current})"
            );
            run = answer_as_a_person(&runner, &desk, &store, runbook, run, &current).await?;
        }
        let incident = store.incident(incident.id).await?;
        let sim_time = sim.sim_time() as f64;
        anyhow::Ok(Rehearsal {
            mitigated: matches!(
                incident.status,
                IncidentStatus::Mitigated | IncidentStatus::Resolved
            ),
            steps: run
                .results
                .iter()
                .map(|r| format!("{}: {}", r.step_id, r.text))
                .collect(),
            took: started.elapsed(),
            simulated_s: sim_time,
        })
    }
    .await;
    engine.stop().await;
    sim.shutdown();
    store.close().await;
    result
}

/// Takes the step the run waits at as the engineer would: a check done, a choice's first
/// option, an action proposed then confirmed; a query waits for the store.
async fn answer_as_a_person(
    runner: &Runner,
    desk: &Arc<ActionDesk>,
    store: &Store,
    runbook: &Runbook,
    run: RunRecord,
    current: &str,
) -> Result<RunRecord> {
    let step = run
        .steps
        .iter()
        .find(|s| s.id() == current)
        .cloned()
        .context("no such step")?;
    Ok(match step {
        Step::Check { .. } => {
            runner
                .answer(
                    run.id,
                    current,
                    Answer::Done {
                        finding: "(answered by the rehearsal)".into(),
                    },
                    WHO,
                )
                .await?
        }
        Step::Branch { on: None, when, .. } => {
            let option = when
                .first()
                .map(|a| a.condition.clone())
                .unwrap_or_default();
            runner
                .answer(run.id, current, Answer::Choose { option }, WHO)
                .await?
        }
        Step::Action { .. } => match run.waiting_action.clone() {
            None => runner.answer(run.id, current, Answer::Propose, WHO).await?,
            Some(id) => {
                let action = store.action(&id).await?;
                if action.state == ActionState::Proposed {
                    let reason = format!("rehearsal of runbook {}", runbook.id);
                    desk.confirm(&id, WHO, &reason, Some(&action.service))
                        .await?;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                runner.advance(run.id, WHO).await?
            }
        },
        // Queries and query branches run by themselves; a run waiting on one is
        // waiting on the store.
        _ => {
            tokio::time::sleep(Duration::from_millis(200)).await;
            runner.advance(run.id, WHO).await?
        }
    })
}
