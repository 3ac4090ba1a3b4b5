//! Resolving an action against the cluster's state and the recorded stream: what it
//! changes, how much, how healthy the target is, and the precondition it will carry.

use super::client::{ActionClient, Outcome};
use super::{ActionSettings, DeskError, Result};
use firebreak_protocol::actions::{
    ActionKind, Deployment, RolloutLever, RolloutView, Service, PROMOTE_ALL, PROMOTE_NEXT,
};
use firebreak_store::actions::{ActionPreview, ActionRecord, RecordedAlert, TargetHealth};
use firebreak_store::incident::Incident;
use firebreak_store::{Cluster, Store};

/// What a proposal resolved to.
pub struct Plan {
    /// The path the request names: the deployment (rollback) or the service (failover).
    pub target: String,
    /// The precondition: the revision or primary region believed current.
    pub from: String,
    pub to: String,
    pub preview: ActionPreview,
}

fn answer<T>(outcome: Outcome<T>, what: &str) -> Result<T> {
    match outcome {
        Outcome::Ok(v) => Ok(v),
        Outcome::Refused { status, error } => Err(DeskError::Refused(format!(
            "the cluster refused to {what} ({status}): {}",
            error.message
        ))),
        Outcome::InFlight => Err(DeskError::Unreachable(format!("could not {what}"))),
        Outcome::NoAnswer(why) => Err(DeskError::Unreachable(why)),
    }
}

pub(super) fn clock(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

async fn service_of(client: &ActionClient, service: &str) -> Result<(Vec<Service>, Service)> {
    let services = answer(client.services().await, "list its services")?;
    let svc = services
        .iter()
        .find(|s| s.name == service)
        .cloned()
        .ok_or_else(|| DeskError::Refused(format!("the cluster has no service {service:?}")))?;
    Ok((services, svc))
}

/// What the person chose beyond the kind of action: the revision to roll back to (else
/// the one live before the rollout), and whether a promotion runs every remaining wave.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Choice {
    pub to_revision: Option<u32>,
    pub full: bool,
}

#[allow(clippy::too_many_arguments)]
pub async fn plan(
    store: &Store,
    client: &ActionClient,
    cluster: &Cluster,
    incident: &Incident,
    service: &str,
    kind: ActionKind,
    choice: Choice,
    settings: &ActionSettings,
) -> Result<Plan> {
    let (services, svc) = service_of(client, service).await?;
    let deployment: Deployment = answer(
        client.deployment(&svc.deployment).await,
        &format!("describe deployment {}", svc.deployment),
    )?;
    let (own, share) = traffic(store, cluster, &services, service).await?;
    let mut warnings = Vec::new();
    let change = match kind {
        ActionKind::Silence => {
            return Err(DeskError::Refused(
                "a silence is proposed from the alert it silences (an alert entry)".into(),
            ))
        }
        ActionKind::PauseRollout
        | ActionKind::ResumeRollout
        | ActionKind::AbortRollout
        | ActionKind::PromoteRollout => {
            let lever = kind.lever().expect("a rollout lever");
            return plan_lever(
                store,
                cluster,
                incident,
                service,
                &deployment,
                lever,
                choice,
                own,
                share,
                settings,
            )
            .await;
        }
        ActionKind::Rollback => {
            if let Some(rollout) = &deployment.rollout {
                warnings.push(format!(
                    "a rollout to revision {} is {} at wave {} of {}: the rollback stops it",
                    rollout.to_revision,
                    if rollout.stalled {
                        "stalled"
                    } else {
                        "running"
                    },
                    rollout.wave,
                    rollout.waves
                ));
            }
            rollback(store, cluster, service, &deployment, choice, settings).await?
        }
        ActionKind::Failover => failover(store, cluster, service, &svc, &deployment).await?,
    };
    if incident.status == firebreak_store::incident::IncidentStatus::Resolved {
        warnings.push("the incident is resolved".into());
    }
    Ok(Plan {
        target: change.target,
        from: change.from,
        to: change.to,
        preview: ActionPreview {
            summary: change.summary,
            from_label: change.from_label,
            to_label: change.to_label,
            nodes: change.nodes,
            requests_per_s: own,
            traffic_share: share,
            target_health: change.health,
            precondition: change.precondition,
            warnings,
            type_to_confirm: change.nodes >= settings.type_to_confirm_nodes,
            grace_s: settings.grace_s,
            evidence: Vec::new(),
        },
    })
}

/// The service's requests per second on its primary region, and its share of all the
/// cluster's services' requests.
async fn traffic(
    store: &Store,
    cluster: &Cluster,
    services: &[Service],
    service: &str,
) -> Result<(f64, f64)> {
    let mut total = 0.0;
    let mut own = 0.0;
    for s in services {
        if let Some(m) = store
            .latest_sample(cluster.id, &s.name, 200, |m| m.primary)
            .await?
        {
            total += m.requests_per_s;
            if s.name == service {
                own = m.requests_per_s;
            }
        }
    }
    Ok((own, if total > 0.0 { own / total } else { 0.0 }))
}

/// What a rollback or a failover changes, as the preview says it.
struct Change {
    target: String,
    from: String,
    to: String,
    summary: String,
    from_label: String,
    to_label: String,
    nodes: u32,
    health: TargetHealth,
    precondition: String,
}

/// A rollback: to the revision chosen, else the one live before the rollout began, else
/// the newest earlier one in the history; with that revision's health as last recorded.
async fn rollback(
    store: &Store,
    cluster: &Cluster,
    service: &str,
    deployment: &Deployment,
    choice: Choice,
    settings: &ActionSettings,
) -> Result<Change> {
    let current = deployment.current_revision;
    let in_history = |r: u32| deployment.revisions.iter().any(|x| x.revision == r);
    let before = store
        .revision_before_rollout(cluster.id, service, &deployment.name, current)
        .await?
        .filter(|r| *r != current && in_history(*r));
    let older = deployment
        .revisions
        .iter()
        .rev()
        .map(|r| r.revision)
        .find(|r| *r < current);
    if let Some(r) = choice.to_revision {
        if r == current || !in_history(r) {
            return Err(DeskError::Refused(format!(
                "revision {r} is not another revision of {} (history: {})",
                deployment.name,
                deployment
                    .revisions
                    .iter()
                    .map(|x| x.revision.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    let (to, why) = match (choice.to_revision, before, older) {
        (Some(r), _, _) => (r, "chosen from the history".to_owned()),
        (None, Some(r), _) => (
            r,
            format!("the revision live before the rollout to {current} began"),
        ),
        (None, None, Some(r)) => (r, "the newest earlier revision in the history".to_owned()),
        (None, None, None) => {
            return Err(DeskError::Refused(format!(
                "deployment {} has no earlier revision to roll back to",
                deployment.name
            )))
        }
    };
    let seen = store
        .latest_sample(cluster.id, service, 2_000, |m| {
            m.revision == to && m.primary
        })
        .await?;
    let health = match seen {
        Some(m) => TargetHealth {
            healthy: Some(m.error_rate <= settings.max_error_rate),
            text: format!(
                "revision {to} ({why}) last served {service} at {}: error rate {:.1} %, p99 {:.0} ms",
                clock(m.received_ms),
                m.error_rate * 100.0,
                m.latency_p99_ms
            ),
        },
        None => TargetHealth {
            healthy: None,
            text: format!("revision {to} ({why}): no recorded metrics, so its health is unknown"),
        },
    };
    let name = &deployment.name;
    Ok(Change {
        target: name.clone(),
        from: current.to_string(),
        to: to.to_string(),
        summary: match &deployment.object {
            // What it patches, named on the timeline, in the dialog and the reports.
            Some(object) => format!("Roll {name} back from revision {current} to {to} ({object})"),
            None => format!("Roll {name} back from revision {current} to {to}"),
        },
        from_label: format!("revision {current} ({})", model_of(deployment, current)),
        to_label: format!("revision {to} ({})", model_of(deployment, to)),
        nodes: deployment.nodes_total,
        health,
        precondition: match &deployment.object {
            Some(object) => format!(
                "expected_revision = {current}; patches {object}'s pod template, refused if it changed since it was read"
            ),
            None => format!("expected_revision = {current}"),
        },
    })
}

/// A failover: from the primary region to the healthiest other one (healthy first, then
/// the most nodes up), with that region's status and the service's figures there.
async fn failover(
    store: &Store,
    cluster: &Cluster,
    service: &str,
    svc: &Service,
    deployment: &Deployment,
) -> Result<Change> {
    let from = svc.primary_region.clone();
    let mut candidates = Vec::new();
    for r in svc.regions.iter().filter(|r| **r != from) {
        candidates.push((r.clone(), store.region_status(cluster.id, r).await?));
    }
    candidates.sort_by_key(|(_, s)| {
        std::cmp::Reverse(
            s.as_ref()
                .map(|s| (s.status == "healthy", s.nodes_up))
                .unwrap_or((false, 0)),
        )
    });
    let Some((to, status)) = candidates.into_iter().next() else {
        return Err(DeskError::Refused(format!(
            "{service} runs in one region only: there is nowhere to fail over to"
        )));
    };
    let there = store
        .latest_sample(cluster.id, service, 2_000, |m| m.region == to)
        .await?;
    let mut text = match &status {
        Some(s) => format!(
            "{to}: {}, {} of {} nodes up (reported {})",
            s.status,
            s.nodes_up,
            s.nodes_total,
            clock(s.received_ms)
        ),
        None => format!("{to}: no recorded region status"),
    };
    if let Some(m) = &there {
        text.push_str(&format!(
            "; {service} there: error rate {:.1} %, p99 {:.0} ms",
            m.error_rate * 100.0,
            m.latency_p99_ms
        ));
    }
    let health = TargetHealth {
        healthy: status.as_ref().map(|s| s.status == "healthy"),
        text,
    };
    Ok(Change {
        target: service.to_owned(),
        from: from.clone(),
        to: to.clone(),
        summary: match svc.traffic.as_deref() {
            Some(split) => format!(
                "Fail {service} over from {from} to {to} ({})",
                split.split(" (").next().unwrap_or(split)
            ),
            None => format!("Fail {service} over from {from} to {to}"),
        },
        from_label: from.clone(),
        to_label: to.clone(),
        nodes: deployment.nodes_total / (svc.regions.len().max(1) as u32),
        health,
        precondition: match svc.traffic.as_deref() {
            Some(split) => format!(
                "expected_primary_region = {from}; patches {split} to send all traffic to {to}, refused if it changed since it was read"
            ),
            None => format!("expected_primary_region = {from}"),
        },
    })
}

/// The model a revision of the deployment serves, as its history says ("" when unknown).
fn model_of(deployment: &Deployment, revision: u32) -> String {
    deployment
        .revisions
        .iter()
        .find(|x| x.revision == revision)
        .map(|x| x.model_version.clone())
        .unwrap_or_default()
}

fn rollout_words(r: &RolloutView) -> String {
    let state = if r.stalled {
        "stalled"
    } else if r.paused {
        "paused"
    } else {
        "running"
    };
    format!(
        "revision {} rolling out, wave {} of {} ({state})",
        r.to_revision, r.wave, r.waves
    )
}

/// A lever on the rollout under way: what it changes, how many nodes, and how healthy
/// what it leads to looks in the recorded metrics.
#[allow(clippy::too_many_arguments)]
async fn plan_lever(
    store: &Store,
    cluster: &Cluster,
    incident: &Incident,
    service: &str,
    deployment: &Deployment,
    lever: RolloutLever,
    choice: Choice,
    requests_per_s: f64,
    traffic_share: f64,
    settings: &ActionSettings,
) -> Result<Plan> {
    let name = &deployment.name;
    let Some(rollout) = deployment.rollout.clone() else {
        return Err(DeskError::NotApplicable(format!(
            "no rollout is under way on {name} (it is at revision {}): there is nothing to {}",
            deployment.current_revision,
            lever.as_str()
        )));
    };
    let to_rev = rollout.to_revision;
    if let Some(why) = why_not(lever, &rollout) {
        return Err(DeskError::NotApplicable(format!(
            "cannot {} the rollout of {name} to revision {to_rev}: {why}",
            lever.as_str()
        )));
    }
    let seen = Seen {
        // How the new revision has served so far, and the service on its primary now.
        new: store
            .latest_sample(cluster.id, service, 2_000, |m| m.revision == to_rev)
            .await?,
        now: store
            .latest_sample(cluster.id, service, 200, |m| m.primary)
            .await?,
        max_error_rate: settings.max_error_rate,
    };
    let waves = Waves::of(deployment, &rollout);
    let mut warnings = Vec::new();
    let Effect {
        to,
        summary,
        to_label,
        nodes,
        health,
    } = match lever {
        RolloutLever::Pause => Effect::new(
            "paused".to_owned(),
            format!(
                "Pause the rollout of {name} to revision {to_rev} at wave {} of {}",
                rollout.wave, rollout.waves
            ),
            format!(
                "paused at wave {} of {}: no further waves",
                rollout.wave, rollout.waves
            ),
            0,
            seen.of_new(
                deployment,
                to_rev,
                "; pausing keeps it on the nodes it already has",
            ),
        ),
        RolloutLever::Resume => {
            if let Some(over) = seen.over_limit() {
                warnings.push(format!(
                    "{service} is over the error-rate limit ({over}) while revision {to_rev} rolls out: resuming spreads it to {} more nodes",
                    waves.left()
                ));
            }
            Effect::new(
                "running".to_owned(),
                format!("Resume the rollout of {name} to revision {to_rev}"),
                format!("running again: {} waves to go", waves.remaining),
                waves.next(),
                seen.of_new(deployment, to_rev, ""),
            )
        }
        RolloutLever::Abort => {
            abort(
                store, cluster, service, deployment, to_rev, &waves, settings,
            )
            .await?
        }
        RolloutLever::Promote => promote(
            service,
            deployment,
            &rollout,
            choice,
            &seen,
            &waves,
            &mut warnings,
        ),
    };
    if let Some(m) = &seen.now {
        warnings.push(format!(
            "{service} on its primary region now: {}",
            figures(m)
        ));
    }
    if incident.status == firebreak_store::incident::IncidentStatus::Resolved {
        warnings.push("the incident is resolved".into());
    }
    let evidence = verdict_evidence(store, cluster, service, to_rev, lever, &mut warnings).await?;
    let (summary, changes) = match &deployment.object {
        Some(object) => (
            format!("{summary} ({object})"),
            format!("; changes {object}"),
        ),
        None => (summary, String::new()),
    };
    Ok(Plan {
        target: name.clone(),
        from: to_rev.to_string(),
        to,
        preview: ActionPreview {
            summary,
            from_label: rollout_words(&rollout),
            to_label,
            nodes,
            requests_per_s,
            traffic_share,
            target_health: health,
            precondition: format!("expected_revision = {to_rev} (the rollout under way){changes}"),
            warnings,
            type_to_confirm: nodes >= settings.type_to_confirm_nodes,
            grace_s: settings.grace_s,
            evidence,
        },
    })
}

/// The canary verdict of the rollout a lever moves, as its preview's evidence: the newest
/// look's, and the first failing one's when it is another. Promoting or resuming a
/// revision that failed is warned about as well.
async fn verdict_evidence(
    store: &Store,
    cluster: &Cluster,
    service: &str,
    to_rev: u32,
    lever: RolloutLever,
    warnings: &mut Vec<String>,
) -> Result<Vec<String>> {
    let Some(v) = crate::canary::rollout_verdicts(store, cluster.id, service).await? else {
        return Ok(Vec::new());
    };
    if v.to_revision != to_rev {
        return Ok(Vec::new());
    }
    if v.no_data {
        return Ok(vec![
            "No canary verdict: the cluster sent no figures by revision for this rollout"
                .to_owned(),
        ]);
    }
    if let (Some(fail), RolloutLever::Promote | RolloutLever::Resume) = (&v.first_fail, lever) {
        warnings.push(format!(
            "the canary verdict failed at wave {}: {}",
            fail.wave, fail.sentence
        ));
    }
    let mut out = Vec::new();
    if let Some(fail) = &v.first_fail {
        out.extend(fail.evidence());
    }
    if let Some(last) = v
        .by_wave
        .last()
        .filter(|l| Some(&**l) != v.first_fail.as_ref())
    {
        if !out.is_empty() {
            out.push("Since then:".into());
        }
        out.extend(last.evidence());
    }
    Ok(out)
}

/// What a lever leads to: the state named in the request, the preview's words, the nodes
/// it moves and the health of where it leads.
struct Effect {
    to: String,
    summary: String,
    to_label: String,
    nodes: u32,
    health: TargetHealth,
}

impl Effect {
    fn new(
        to: String,
        summary: String,
        to_label: String,
        nodes: u32,
        health: TargetHealth,
    ) -> Effect {
        Effect {
            to,
            summary,
            to_label,
            nodes,
            health,
        }
    }
}

/// An abort: every node back to the revision the rollout started from.
async fn abort(
    store: &Store,
    cluster: &Cluster,
    service: &str,
    deployment: &Deployment,
    to_rev: u32,
    waves: &Waves,
    settings: &ActionSettings,
) -> Result<Effect> {
    let name = &deployment.name;
    let stable = stable_revision(store, cluster, service, deployment, to_rev).await?;
    let last = store
        .latest_sample(cluster.id, service, 2_000, |m| {
            m.revision == stable && m.primary
        })
        .await?;
    Ok(Effect::new(
        stable.to_string(),
        format!(
            "Abort the rollout of {name} to revision {to_rev}: its nodes go back to revision {stable}"
        ),
        format!("revision {stable} ({}) on every node", model_of(deployment, stable)),
        waves.updated.max(waves.per_wave.min(waves.total)),
        match last {
            Some(m) => TargetHealth {
                healthy: Some(m.error_rate <= settings.max_error_rate),
                text: format!("revision {stable} (the stable one) last served {service}: {}", figures(&m)),
            },
            None => TargetHealth {
                healthy: None,
                text: format!("revision {stable} (the stable one): no recorded metrics, so its health is unknown"),
            },
        },
    ))
}

/// A promotion: the next wave now, or every remaining one.
fn promote(
    service: &str,
    deployment: &Deployment,
    rollout: &RolloutView,
    choice: Choice,
    seen: &Seen,
    waves: &Waves,
    warnings: &mut Vec<String>,
) -> Effect {
    let name = &deployment.name;
    let to_rev = rollout.to_revision;
    if !rollout.paused {
        warnings.push("the rollout is not paused: promoting skips the wait between waves".into());
    }
    if let Some(over) = seen.over_limit() {
        warnings.push(format!(
            "{service} is over the error-rate limit ({over}) while revision {to_rev} rolls out: promoting spreads it"
        ));
    }
    let (to, words, nodes) = if choice.full {
        (
            PROMOTE_ALL,
            format!("every remaining wave now ({})", waves.remaining),
            waves.left(),
        )
    } else {
        (
            PROMOTE_NEXT,
            format!(
                "wave {} of {} now",
                (rollout.wave + 1).min(rollout.waves),
                rollout.waves
            ),
            waves.next(),
        )
    };
    Effect::new(
        to.to_owned(),
        format!("Promote the rollout of {name} to revision {to_rev}: {words}"),
        words,
        nodes,
        seen.of_new(deployment, to_rev, ""),
    )
}

/// Why a lever cannot move this rollout, if it cannot.
fn why_not(lever: RolloutLever, rollout: &RolloutView) -> Option<&'static str> {
    match lever {
        RolloutLever::Pause if rollout.paused => Some("it is already paused"),
        RolloutLever::Pause if rollout.stalled => {
            Some("it is stalled, so there is no wave to hold back: abort or roll back")
        }
        RolloutLever::Resume if !rollout.paused => Some("it is not paused"),
        RolloutLever::Promote if rollout.stalled => {
            Some("it is stalled: its wave cannot move, so promoting cannot help")
        }
        _ => None,
    }
}

/// The revision a rollout started from (what an abort returns the nodes to): the one
/// recorded live before it began, else the newest earlier one in the history.
async fn stable_revision(
    store: &Store,
    cluster: &Cluster,
    service: &str,
    deployment: &Deployment,
    to_rev: u32,
) -> Result<u32> {
    let recorded = store
        .revision_before_rollout(cluster.id, service, &deployment.name, to_rev)
        .await?;
    recorded
        .or_else(|| {
            deployment
                .revisions
                .iter()
                .rev()
                .map(|r| r.revision)
                .find(|r| *r < to_rev)
        })
        .ok_or_else(|| {
            DeskError::Refused(format!(
                "the revision {} rolled out from is not known: roll back to a chosen revision instead",
                deployment.name
            ))
        })
}

/// A rollout's nodes by wave: how many each wave takes, how many have the new revision,
/// how many waves are left.
struct Waves {
    total: u32,
    per_wave: u32,
    updated: u32,
    remaining: u32,
}

impl Waves {
    fn of(deployment: &Deployment, rollout: &RolloutView) -> Waves {
        let total = deployment.nodes_total;
        let per_wave = total.div_ceil(rollout.waves.max(1));
        Waves {
            total,
            per_wave,
            updated: (rollout.wave * per_wave).min(total),
            remaining: rollout.waves.saturating_sub(rollout.wave),
        }
    }

    /// The nodes not yet on the new revision.
    fn left(&self) -> u32 {
        self.total - self.updated
    }

    /// The nodes the next wave moves.
    fn next(&self) -> u32 {
        self.per_wave.min(self.left())
    }
}

/// What the recorded metrics say of a rollout: the new revision's latest sample and the
/// service's on its primary region now.
struct Seen {
    new: Option<firebreak_store::signals::MetricSample>,
    now: Option<firebreak_store::signals::MetricSample>,
    max_error_rate: f64,
}

impl Seen {
    /// Whether what is rolling out looks bad: its own samples when a region mostly runs
    /// it, else the service's primary now (a sample names the revision most of its nodes
    /// run).
    fn over_limit(&self) -> Option<String> {
        self.new
            .as_ref()
            .or(self.now.as_ref())
            .filter(|m| m.error_rate > self.max_error_rate)
            .map(|m| format!("error rate {:.1} %", m.error_rate * 100.0))
    }

    /// The new revision's health so far, with `what` said after its figures.
    fn of_new(&self, deployment: &Deployment, to_rev: u32, what: &str) -> TargetHealth {
        let model = model_of(deployment, to_rev);
        match &self.new {
            Some(m) => TargetHealth {
                healthy: Some(m.error_rate <= self.max_error_rate),
                text: format!("revision {to_rev} ({model}) so far: {}{what}", figures(m)),
            },
            None => TargetHealth {
                healthy: None,
                text: format!(
                    "revision {to_rev} ({model}): no recorded metrics yet, so its health is unknown"
                ),
            },
        }
    }
}

fn figures(m: &firebreak_store::signals::MetricSample) -> String {
    format!(
        "error rate {:.1} %, p99 {:.0} ms at {}",
        m.error_rate * 100.0,
        m.latency_p99_ms,
        clock(m.received_ms)
    )
}

/// A silence of `alert` for `duration_s`: its matchers (the alert, its service and its
/// region, exactly), and what they select among the alerts recorded as firing now.
pub async fn plan_silence(
    store: &Store,
    cluster: &Cluster,
    incident: &Incident,
    alert: &RecordedAlert,
    duration_s: u32,
    settings: &ActionSettings,
) -> Result<Plan> {
    if !firebreak_protocol::actions::SILENCE_DURATION_S.contains(&duration_s) {
        return Err(DeskError::Refused(format!(
            "a silence lasts from 1 minute to 7 days (asked: {duration_s} s)"
        )));
    }
    let firing = store
        .firing_regions(cluster.id, &alert.alert, &alert.service)
        .await?;
    let still = firing.contains(&alert.region);
    let health = TargetHealth {
        healthy: None,
        text: if still {
            format!(
                "{} on {} is firing in {} (recorded by this console); the silence quiets its                  notifications there only{}",
                alert.alert,
                alert.service,
                alert.region,
                match firing.iter().filter(|r| **r != alert.region).count() {
                    0 => String::new(),
                    n => format!(
                        "; it also fires in {} other region{} ({}), which stay{} loud",
                        n,
                        if n == 1 { "" } else { "s" },
                        firing
                            .iter()
                            .filter(|r| **r != alert.region)
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", "),
                        if n == 1 { "s" } else { "" }
                    ),
                }
            )
        } else {
            format!(
                "{} on {} in {} has resolved since (as recorded): the silence would quiet it if it fires again",
                alert.alert, alert.service, alert.region
            )
        },
    };
    let hours = f64::from(duration_s) / 3600.0;
    let length = if duration_s.is_multiple_of(3600) {
        format!("{} h", duration_s / 3600)
    } else {
        format!("{hours:.1} h")
    };
    let ends = clock(firebreak_store::now_ms() + i64::from(duration_s) * 1000);
    let mut warnings = vec![format!(
        "a silence hides notifications; it fixes nothing. It ends at {ends} (in {length}) on its own"
    )];
    if incident.status == firebreak_store::incident::IncidentStatus::Resolved {
        warnings.push("the incident is resolved".into());
    }
    let matchers = format!(
        "alertname=\"{}\", service=\"{}\", region=\"{}\"",
        alert.alert, alert.service, alert.region
    );
    Ok(Plan {
        target: alert.alert.clone(),
        from: alert.region.clone(),
        to: duration_s.to_string(),
        preview: ActionPreview {
            summary: format!(
                "Silence {} on {} in {} for {length}",
                alert.alert, alert.service, alert.region
            ),
            from_label: if still {
                "firing, notifying"
            } else {
                "resolved"
            }
            .into(),
            to_label: format!("silenced until {ends}"),
            nodes: 0,
            requests_per_s: 0.0,
            traffic_share: 0.0,
            target_health: health,
            precondition: format!("matchers: {matchers}"),
            warnings,
            type_to_confirm: false,
            grace_s: settings.grace_s,
            evidence: Vec::new(),
        },
    })
}

/// The matchers a recorded silence proposal sends: the alert (`target`), its service and
/// its region (`from`), each exactly.
pub fn silence_matchers(action: &ActionRecord) -> Vec<firebreak_protocol::actions::Matcher> {
    matchers_of_alert(&action.target, &action.service, &action.from)
}

/// One alert's matchers: its name, service and region, each exactly.
pub fn matchers_of_alert(
    alert: &str,
    service: &str,
    region: &str,
) -> Vec<firebreak_protocol::actions::Matcher> {
    let exact = |name: &str, value: &str| firebreak_protocol::actions::Matcher {
        name: name.into(),
        value: value.into(),
        is_regex: false,
        is_equal: true,
    };
    vec![
        exact("alertname", alert),
        exact("service", service),
        exact("region", region),
    ]
}

/// At most this many muted alerts are named in a preview (the count is always given).
const MUTED_SHOWN: usize = 10;

/// Puts what the cluster says a silence would mute now into its preview: the matchers as
/// they will be created (what the cluster adds included) and every alert firing now that
/// they select, by its labels.
pub fn muted_now(preview: &mut ActionPreview, muted: &firebreak_protocol::actions::SilencePreview) {
    let matchers = firebreak_protocol::actions::describe_matchers(&muted.matchers);
    preview.precondition = format!("matchers: {matchers}");
    let n = muted.alerts.len();
    preview.target_health.text = if n == 0 {
        format!(
            "the cluster's alerting has no alert firing now that {matchers} selects: the silence mutes nothing yet, and would quiet such an alert if it fires again"
        )
    } else {
        let named: Vec<String> = muted
            .alerts
            .iter()
            .take(MUTED_SHOWN)
            .map(|a| {
                let labels: Vec<String> =
                    a.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
                format!("{{{}}}", labels.join(", "))
            })
            .collect();
        format!(
            "mutes {n} alert{} firing now, as the cluster's alerting says: {}{}",
            if n == 1 { "" } else { "s" },
            named.join("; "),
            if n > MUTED_SHOWN {
                format!("; and {} more", n - MUTED_SHOWN)
            } else {
                String::new()
            }
        )
    };
}

/// Reads the cluster's state again: `Some(what changed)` when the precondition no
/// longer holds.
pub async fn recheck(client: &ActionClient, action: &ActionRecord) -> Result<Option<String>> {
    if let Some(lever) = action.kind.lever() {
        let d: Deployment = answer(
            client.deployment(&action.target).await,
            &format!("describe deployment {}", action.target),
        )?;
        let conflict = match &d.rollout {
            None => Some(format!(
                "no rollout is under way on {} any more (it is at revision {})",
                action.target, d.current_revision
            )),
            Some(r) if r.to_revision.to_string() != action.from => Some(format!(
                "the rollout under way on {} is now to revision {}, not {}",
                action.target, r.to_revision, action.from
            )),
            Some(r) if lever == RolloutLever::Pause && r.paused => Some(format!(
                "the rollout of {} is already paused",
                action.target
            )),
            Some(r) if lever == RolloutLever::Resume && !r.paused => Some(format!(
                "the rollout of {} is no longer paused",
                action.target
            )),
            Some(r)
                if matches!(lever, RolloutLever::Pause | RolloutLever::Promote) && r.stalled =>
            {
                Some(format!("the rollout of {} has stalled", action.target))
            }
            _ => None,
        };
        return Ok(conflict.map(|c| {
            format!(
                "{c}{}",
                d.last_changed_by
                    .map(|w| format!(" (last changed by {w})"))
                    .unwrap_or_default()
            )
        }));
    }
    match action.kind {
        // A silence carries no precondition: silencing twice is harmless and visible.
        ActionKind::Silence => Ok(None),
        ActionKind::Rollback => {
            let d: Deployment = answer(
                client.deployment(&action.target).await,
                &format!("describe deployment {}", action.target),
            )?;
            Ok((d.current_revision.to_string() != action.from).then(|| {
                format!(
                    "{} is now at revision {}, not {}{}",
                    action.target,
                    d.current_revision,
                    action.from,
                    d.last_changed_by
                        .map(|w| format!(" (changed by {w})"))
                        .unwrap_or_default()
                )
            }))
        }
        ActionKind::Failover => {
            let (_, svc) = service_of(client, &action.service).await?;
            Ok((svc.primary_region != action.from).then(|| {
                format!(
                    "{}'s primary region is now {}, not {}{}",
                    action.service,
                    svc.primary_region,
                    action.from,
                    svc.last_changed_by
                        .map(|w| format!(" (changed by {w})"))
                        .unwrap_or_default()
                )
            }))
        }
        _ => Ok(None),
    }
}
