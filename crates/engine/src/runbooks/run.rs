//! Running a runbook against an incident: one code path for the window, for
//! `firebreak runbooks rehearse` and for the tests.
//!
//! Steps that need nobody run by themselves (a query is answered from the store, a branch
//! on a query picks its arm, an action step whose action has settled records its result);
//! the run then waits at the first step that needs the engineer. Action steps propose
//! through the action desk, and the engineer confirms through the same preview,
//! confirmation, idempotency and verification as the incident view's buttons.

use std::sync::Arc;

use crate::actions::ActionDesk;
use crate::runbooks::format::{Condition, QueryKind, Step};
use crate::runbooks::Runbook;
use firebreak_store::actions::{ActionRecord, ActionState};
use firebreak_store::incident::IncidentStatus;
use firebreak_store::runs::{Recorded, RunRecord};
use firebreak_store::{now_ms, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Desk(#[from] crate::actions::DeskError),
    #[error("{0}")]
    Refused(String),
}

type Result<T> = std::result::Result<T, RunError>;

/// What the engineer says at a step.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, ts_rs::TS)]
#[serde(tag = "answer", rename_all = "snake_case")]
pub enum Answer {
    /// A check is done, with a finding when the step asks for one.
    Done {
        #[serde(default)]
        finding: String,
    },
    /// Any step, skipped, with why.
    Skip { reason: String },
    /// An answer to a branch without a query: one of its arms' `if` texts.
    Choose { option: String },
    /// An action step: propose its action (then confirm it like any other).
    Propose,
}

pub struct Runner {
    store: Store,
    desk: Arc<ActionDesk>,
}

fn step<'a>(run: &'a RunRecord, id: &str) -> Result<&'a Step> {
    run.steps
        .iter()
        .find(|s| s.id() == id)
        .ok_or_else(|| RunError::Refused(format!("the run has no step {id:?}")))
}

/// Steps that need nobody (queries, branches on them) one `advance` runs at most before
/// it stops the run as looping.
pub const MAX_AUTOMATIC_STEPS: usize = 64;

/// The step after `id`: its `next`, else the one below it; `None` ends the run.
fn following(run: &RunRecord, id: &str) -> Option<String> {
    let i = run.steps.iter().position(|s| s.id() == id)?;
    let explicit = match &run.steps[i] {
        Step::Check { next, .. } | Step::Query { next, .. } | Step::Action { next, .. } => {
            next.clone()
        }
        Step::Branch { .. } => None,
    };
    match explicit.as_deref() {
        Some("end") => None,
        Some(next) => Some(next.to_owned()),
        None => run.steps.get(i + 1).map(|s| s.id().to_owned()),
    }
}

fn goto(target: &str) -> Option<&str> {
    (target != "end").then_some(target)
}

/// Where a branch on a query goes: the query's last value, the sentence that says why,
/// and the next step (none: the end).
fn branch<'a>(
    run: &RunRecord,
    query: &str,
    when: &'a [firebreak_store::runbook_step::Arm],
    otherwise: Option<&'a str>,
) -> (Option<f64>, String, Option<&'a str>) {
    let value = run
        .results
        .iter()
        .rev()
        .find(|r| r.step_id == query)
        .and_then(|r| r.value);
    let hit = value.and_then(|v| {
        when.iter()
            .find(|arm| Condition::parse(&arm.condition).is_some_and(|c| c.holds(v)))
    });
    let (text, next) = match (value, hit) {
        (Some(v), Some(arm)) => (
            format!(
                "{query} is {v:.3}, {}: going to {}.",
                arm.condition, arm.goto
            ),
            goto(&arm.goto),
        ),
        (Some(v), None) => (
            format!(
                "{query} is {v:.3}, no condition holds: going to {}.",
                otherwise.unwrap_or("end")
            ),
            otherwise.and_then(goto),
        ),
        (None, _) => (
            format!(
                "{query} has no value: going to {}.",
                otherwise.unwrap_or("end")
            ),
            otherwise.and_then(goto),
        ),
    };
    (value, text, next)
}

/// What an action step's action came to, once it has settled (ended, and verified when
/// it succeeded); none while it has not.
fn settled(action: &ActionRecord) -> Option<String> {
    let settled = action.state.is_final()
        && (action.state != ActionState::Succeeded || action.verification.is_some());
    settled.then(|| {
        format!(
            "{}: {}{}.",
            action.preview.summary,
            action.state.as_str(),
            match action.verification.as_deref() {
                Some("recovered") => ", verified recovered",
                Some("unverified") => ", could not be verified",
                Some(_) => ", NOT recovered",
                None => "",
            }
        )
    })
}

impl Runner {
    pub fn new(store: Store, desk: Arc<ActionDesk>) -> Self {
        Runner { store, desk }
    }

    pub async fn start(
        &self,
        incident_id: i64,
        runbook: &Runbook,
        author: &str,
    ) -> Result<RunRecord> {
        let running = self.store.incident_runs(incident_id).await?;
        if let Some(r) = running
            .iter()
            .find(|r| r.state == "running" && r.runbook_id == runbook.id)
        {
            // Starting it again resumes the run under way.
            return self.advance(r.id, author).await;
        }
        let run = self.store.start_run(incident_id, runbook, author).await?;
        self.advance(run.id, author).await
    }

    /// Runs every step that needs nobody, then returns the run waiting at the next step
    /// that needs the engineer (or ended).
    pub async fn advance(&self, run_id: i64, author: &str) -> Result<RunRecord> {
        let mut automatic = 0usize;
        loop {
            let run = self.store.run(run_id).await?;
            let Some(current) = run.current_step.clone().filter(|_| run.state == "running") else {
                return Ok(run);
            };
            if step(&run, &current).is_ok_and(crate::runbooks::format::is_automatic) {
                automatic += 1;
                // `runbooks check` refuses loops of such steps; this stops one that got
                // past it (an older file, a run stored before the check) all the same.
                if automatic > MAX_AUTOMATIC_STEPS {
                    return Ok(self
                        .store
                        .abandon_run(
                            run_id,
                            &format!(
                                "more than {MAX_AUTOMATIC_STEPS} steps ran by themselves without \
                                 a person; the runbook loops (check it with `firebreak runbooks check`)"
                            ),
                            firebreak_store::incident::ENGINE_AUTHOR,
                        )
                        .await?);
                }
            }
            let recorded = match step(&run, &current)?.clone() {
                Step::Query {
                    query, window_min, ..
                } => {
                    let (value, series, text) = self.query(&run, query, window_min).await?;
                    let next = following(&run, &current);
                    self.store
                        .record_step(
                            run_id,
                            Recorded {
                                step_id: &current,
                                outcome: "value",
                                text: &text,
                                value,
                                series: Some(&series),
                                next: next.as_deref(),
                                author: firebreak_store::incident::ENGINE_AUTHOR,
                            },
                        )
                        .await?
                }
                Step::Branch {
                    on: Some(query),
                    when,
                    otherwise,
                    ..
                } => {
                    let (value, text, next) = branch(&run, &query, &when, otherwise.as_deref());
                    self.store
                        .record_step(
                            run_id,
                            Recorded {
                                step_id: &current,
                                outcome: "branched",
                                text: &text,
                                value,
                                series: None,
                                next,
                                author: firebreak_store::incident::ENGINE_AUTHOR,
                            },
                        )
                        .await?
                }
                Step::Action { .. } => {
                    let Some(action_id) = run.waiting_action.clone() else {
                        return Ok(run);
                    };
                    let action = self.store.action(&action_id).await?;
                    let Some(text) = settled(&action) else {
                        return Ok(run);
                    };
                    let recovered = action.verification.as_deref() == Some("recovered");
                    if recovered {
                        self.mitigated(
                            run.incident_id,
                            action.confirmed_by.as_deref().unwrap_or(author),
                        )
                        .await?;
                    }
                    let next = following(&run, &current);
                    self.store
                        .record_step(
                            run_id,
                            Recorded {
                                step_id: &current,
                                outcome: "action",
                                text: &text,
                                value: None,
                                series: None,
                                next: next.as_deref(),
                                author: firebreak_store::incident::ENGINE_AUTHOR,
                            },
                        )
                        .await?
                }
                Step::Check { .. } | Step::Branch { on: None, .. } => return Ok(run),
            };
            if recorded.is_none() {
                // Someone else recorded this step meanwhile: look again.
                continue;
            }
        }
    }

    /// Moves on every run whose action step's action has settled; returns the incidents
    /// whose timelines changed. The window calls it on a timer, so reading runs never writes.
    pub async fn advance_settled(&self, author: &str) -> Result<Vec<i64>> {
        let mut changed = Vec::new();
        for (run_id, incident_id) in self.store.runs_with_settled_actions().await? {
            self.advance(run_id, author).await?;
            changed.push(incident_id);
        }
        Ok(changed)
    }

    /// The engineer's answer at the current step.
    pub async fn answer(
        &self,
        run_id: i64,
        step_id: &str,
        answer: Answer,
        author: &str,
    ) -> Result<RunRecord> {
        let run = self.store.run(run_id).await?;
        if run.current_step.as_deref() != Some(step_id) || run.state != "running" {
            return Err(RunError::Refused(format!(
                "step {step_id:?} is not the current step (the run is {})",
                run.current_step
                    .as_deref()
                    .map(|s| format!("at {s:?}"))
                    .unwrap_or_else(|| run.state.clone())
            )));
        }
        let current = step(&run, step_id)?.clone();
        let next = following(&run, step_id);
        let record = |outcome: &'static str, text: String, next: Option<String>| async move {
            self.store
                .record_step(
                    run_id,
                    Recorded {
                        step_id,
                        outcome,
                        text: &text,
                        value: None,
                        series: None,
                        next: next.as_deref(),
                        author,
                    },
                )
                .await
        };
        match (&current, answer) {
            (Step::Check { finding, .. }, Answer::Done { finding: found }) => {
                let found = found.trim();
                if *finding && found.is_empty() {
                    return Err(RunError::Refused(
                        "this step asks for a finding: note what you saw".into(),
                    ));
                }
                let text = if found.is_empty() {
                    "done.".to_owned()
                } else {
                    format!("done. Finding: {found}")
                };
                record("done", text, next).await?;
            }
            (_, Answer::Skip { reason }) => {
                if reason.trim().is_empty() {
                    return Err(RunError::Refused("say why the step is skipped".into()));
                }
                if let Some(a) = &run.waiting_action {
                    let action = self.store.action(a).await?;
                    if !action.state.is_final() && action.state != ActionState::Proposed {
                        return Err(RunError::Refused(
                            "the step's action is under way: it cannot be skipped now".into(),
                        ));
                    }
                }
                let next = match &current {
                    Step::Branch { otherwise, .. } => {
                        otherwise.as_deref().and_then(goto).map(str::to_owned)
                    }
                    _ => next,
                };
                record("skipped", format!("skipped: {}", reason.trim()), next).await?;
            }
            (Step::Branch { on: None, when, .. }, Answer::Choose { option }) => {
                let arm = when.iter().find(|a| a.condition == option).ok_or_else(|| {
                    RunError::Refused(format!("{option:?} is not one of this step's answers"))
                })?;
                record(
                    "branched",
                    format!("answered \"{option}\": going to {}.", arm.goto),
                    goto(&arm.goto).map(str::to_owned),
                )
                .await?;
            }
            (
                Step::Action {
                    action,
                    to_revision,
                    ..
                },
                Answer::Propose,
            ) => {
                if run.waiting_action.is_some() {
                    return Ok(run);
                }
                let choice = crate::actions::Choice {
                    to_revision: *to_revision,
                    full: false,
                };
                match self
                    .desk
                    .propose_with(run.incident_id, action.kind(), choice, author)
                    .await
                {
                    Ok(proposal) => {
                        self.store
                            .set_waiting_action(run_id, step_id, &proposal.id)
                            .await?;
                    }
                    // A lever on a rollout that is over (or already paused): the step has
                    // nothing to do, and the run says so and goes on.
                    Err(crate::actions::DeskError::NotApplicable(why)) => {
                        record("skipped", format!("skipped: {why}."), next).await?;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            _ => {
                return Err(RunError::Refused(format!(
                    "that answer does not fit step {step_id:?}"
                )))
            }
        }
        self.advance(run_id, author).await
    }

    async fn mitigated(&self, incident_id: i64, author: &str) -> Result<()> {
        let incident = self.store.incident(incident_id).await?;
        if matches!(
            incident.status,
            IncidentStatus::Open | IncidentStatus::Acknowledged
        ) {
            self.store
                .change_status(incident_id, IncidentStatus::Mitigated, author)
                .await?;
        }
        Ok(())
    }

    async fn query(
        &self,
        run: &RunRecord,
        query: QueryKind,
        window_min: u32,
    ) -> Result<(Option<f64>, Vec<(i64, f64)>, String)> {
        let incident = self.store.incident(run.incident_id).await?;
        let (Some(cluster), Some(service)) = (incident.cluster_id, incident.service.clone()) else {
            return Ok((
                None,
                Vec::new(),
                "the incident names no cluster and service to ask about.".into(),
            ));
        };
        if query == QueryKind::NodesDown {
            let down = self.store.nodes_down(cluster, &service).await?;
            let text = if down.is_empty() {
                format!("no node of {service} is down.")
            } else {
                format!(
                    "{} node(s) of {service} down: {}.",
                    down.len(),
                    down.join(", ")
                )
            };
            return Ok((Some(down.len() as f64), Vec::new(), text));
        }
        let now = now_ms();
        let samples: Vec<_> = self
            .store
            .metric_samples(
                cluster,
                &service,
                now - i64::from(window_min) * 60_000,
                now,
                2_000,
            )
            .await?
            .into_iter()
            .filter(|m| m.primary)
            .collect();
        let pick = |m: &firebreak_store::signals::MetricSample| match query {
            QueryKind::ErrorRate => m.error_rate,
            _ => m.latency_p99_ms,
        };
        let series: Vec<(i64, f64)> = samples.iter().map(|m| (m.received_ms, pick(m))).collect();
        let last: Vec<f64> = series.iter().rev().take(3).map(|(_, v)| *v).collect();
        if last.is_empty() {
            return Ok((
                None,
                series,
                format!("no metrics of {service} in the last {window_min} min."),
            ));
        }
        let now_value = last.iter().sum::<f64>() / last.len() as f64;
        let peak = series.iter().map(|(_, v)| *v).fold(f64::MIN, f64::max);
        let region = samples.last().map(|m| m.region.clone()).unwrap_or_default();
        let text = match query {
            QueryKind::ErrorRate => format!(
                "error rate of {service} on {region}: {:.1} % now (last 3 samples), peak {:.1} % over {window_min} min ({} samples).",
                now_value * 100.0,
                peak * 100.0,
                series.len()
            ),
            _ => format!(
                "p99 latency of {service} on {region}: {now_value:.0} ms now (last 3 samples), peak {peak:.0} ms over {window_min} min ({} samples).",
                series.len()
            ),
        };
        Ok((Some(now_value), series, text))
    }
}
