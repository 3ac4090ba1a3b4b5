//! `firebreak demo history`: weeks of incidents recorded into the store from the built-in
//! simulator, so the summit report has a history to show on a fresh install.
//!
//! Each incident is a simulator run of its own (bad model rollout, node loss, pipeline
//! stall), started at its time in the past and stepped one simulated second at a time,
//! with the console's clock set to the simulator's at every step: the same engine,
//! rules, action desk and review store a person's console uses record it, so everything
//! in it (times, verification, audit) is what the console would have recorded live. A
//! scripted responder acknowledges, takes command, acts through the desk, mitigates,
//! resolves and writes the review, a little faster week by week. The plan comes from the
//! seed alone: the same seed and end date record the same history.
//!
//! The history is recorded as the demo cluster [`CLUSTER`] (`clusters.demo`), so every
//! incident of it reads as demo data in the window and in every report made from it.
//! The manual clock is process-wide: nothing else may record in this process meanwhile.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};

use firebreak_engine::actions::Choice;
use firebreak_engine::actions::{ActionDesk, ActionSettings, Tokens};
use firebreak_engine::ingest::sink::{ClusterStatus, Committed, ConsoleSink, StatusBoard, Tee};
use firebreak_engine::ingest::{Engine, Target};
use firebreak_protocol::actions::ActionKind;
use firebreak_server::rng::Rng;
use firebreak_sim::{RunningSim, Scenario, SimOptions};
use firebreak_store::actions::ActionState;
use firebreak_store::incident::IncidentStatus;
use firebreak_store::review::{FollowUpDraft, FollowUpStatus};
use firebreak_store::{NewCluster, Store};

/// The demo cluster a history is recorded as.
pub const CLUSTER: &str = "demo-history";

/// What to record.
#[derive(Debug, Clone)]
pub struct HistoryOptions {
    pub weeks: u32,
    pub seed: u64,
    /// The history ends here (the start of a day, UTC): its weeks are the ones before.
    pub until: DateTime<Utc>,
}

/// The incident scenarios a history draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Story {
    BadModel,
    NodeLoss,
    PipelineStall,
}

impl Story {
    pub fn scenario(self) -> &'static str {
        match self {
            Story::BadModel => "bad-model-rollout",
            Story::NodeLoss => "node-loss-cascade",
            Story::PipelineStall => "pipeline-bottleneck",
        }
    }

    fn service(self) -> &'static str {
        match self {
            Story::BadModel => "llm-assistant",
            Story::NodeLoss => "recommendations",
            Story::PipelineStall => "search-ranking",
        }
    }

    fn root_cause(self) -> &'static str {
        match self {
            Story::BadModel => "bad model version",
            Story::NodeLoss => "capacity",
            Story::PipelineStall => "deployment pipeline bottleneck",
        }
    }

    /// The remedy that heals it (the scenario's documented one).
    fn remedy(self) -> ActionKind {
        match self {
            Story::BadModel => ActionKind::Rollback,
            Story::NodeLoss | Story::PipelineStall => ActionKind::Failover,
        }
    }

    fn note(self) -> &'static str {
        match self {
            Story::BadModel => {
                "Errors began with the first wave of the new model revision; the old revision is clean."
            }
            Story::NodeLoss => {
                "Three nodes in us-east unreachable; the survivors are running hot and dropping out."
            }
            Story::PipelineStall => {
                "The rollout stalled at wave 2 with its nodes drained; eu-west is short of capacity."
            }
        }
    }
}

/// One incident of the plan.
#[derive(Debug, Clone)]
pub struct Planned {
    /// 0 for the oldest week.
    pub week: u32,
    /// When its simulator run starts (the incident opens a minute or two later).
    pub at: DateTime<Utc>,
    pub story: Story,
    pub remedy: ActionKind,
    pub responder: &'static str,
    /// Seconds from the incident opening to its acknowledgement.
    pub ack_after_s: u64,
    /// Seconds from acknowledging to confirming the remedy.
    pub act_after_s: u64,
    /// Seconds from mitigation to resolving.
    pub resolve_after_s: i64,
    pub seed: u64,
}

const RESPONDERS: [&str; 5] = ["ana", "bo", "chen", "dara", "eli"];

/// The history for `opts`, oldest first: from the seed alone. Over the weeks the team gets
/// faster (acknowledging, acting and resolving take about a third as long at the end),
/// bad model rollouts stop after the canary for model weights lands, node losses become
/// more frequent, and stalled rollouts are no longer first rolled back.
pub fn plan(opts: &HistoryOptions) -> Vec<Planned> {
    let mut rng = Rng::new(opts.seed);
    let weeks = opts.weeks.max(1);
    let start = opts.until - chrono::Duration::weeks(i64::from(weeks));
    let mut out = Vec::new();
    for week in 0..weeks {
        // How far into the history: 0 for the first week, 1 for the last.
        let p = if weeks == 1 {
            1.0
        } else {
            f64::from(week) / f64::from(weeks - 1)
        };
        let count = 2 + (rng.next_u64() % 3) as usize;
        let mut times: Vec<i64> = (0..count)
            .map(|_| {
                let day = (rng.next_u64() % 7) as i64;
                let second = 7 * 3600 + (rng.next_u64() % (14 * 3600)) as i64;
                day * 86_400 + second
            })
            .collect();
        times.sort_unstable();
        for offset in times {
            let at = start
                + chrono::Duration::weeks(i64::from(week))
                + chrono::Duration::seconds(offset);
            let weights = [
                if p < 0.6 { 3.0 * (1.0 - p) } else { 0.0 },
                1.0 + 1.5 * p,
                1.2,
            ];
            let mut pick = rng.unit() * weights.iter().sum::<f64>();
            let mut story = Story::PipelineStall;
            for (s, w) in [Story::BadModel, Story::NodeLoss, Story::PipelineStall]
                .into_iter()
                .zip(weights)
            {
                if pick < w {
                    story = s;
                    break;
                }
                pick -= w;
            }
            // Early on, a stalled rollout is first rolled back, as a bad one would be; the
            // team learns to fail over instead.
            let remedy = match story {
                Story::PipelineStall if p < 0.45 && rng.chance(0.7) => ActionKind::Rollback,
                other => other.remedy(),
            };
            let speed = (1.0 - 0.65 * p) * (1.0 + 0.15 * rng.noise());
            out.push(Planned {
                week,
                at: DateTime::from_timestamp(at.timestamp(), 0).unwrap_or(at),
                story,
                remedy,
                responder: RESPONDERS[(rng.next_u64() % RESPONDERS.len() as u64) as usize],
                ack_after_s: (420.0 * speed).round().max(20.0) as u64,
                act_after_s: (360.0 * speed).round().max(20.0) as u64,
                resolve_after_s: (2400.0 * speed).round().max(120.0) as i64,
                seed: rng.next_u64() % 1_000_000,
            });
        }
    }
    out
}

/// What was recorded for one planned incident.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub planned: Planned,
    pub incident: i64,
    /// The remedies tried, in order, and whether each was verified to help.
    pub actions: Vec<(ActionKind, bool)>,
    pub mitigated_after_s: i64,
}

/// Wakes the recorder when the engine commits.
#[derive(Default)]
struct Commits(tokio::sync::Notify);

impl ConsoleSink for Commits {
    fn cluster_status(&self, _: &ClusterStatus) {}
    fn committed(&self, _: &Committed) {
        self.0.notify_one();
    }
}

/// Records the history into `store`. `progress` hears each incident as it is recorded
/// (its number, the total, what happened). Refused when the store already holds one.
pub async fn record(
    store: &Store,
    opts: &HistoryOptions,
    progress: &mut (dyn FnMut(usize, usize, &Recorded) + Send),
) -> Result<Vec<Recorded>> {
    let existing = store
        .clusters()
        .await?
        .into_iter()
        .find(|c| c.name == CLUSTER);
    if let Some(c) = existing {
        let n = store
            .incidents()
            .await?
            .iter()
            .filter(|i| i.cluster_id == Some(c.id))
            .count();
        if n > 0 {
            bail!(
                "this store already holds a demo history ({n} incidents of the cluster {CLUSTER:?}); \
                 record another into a fresh data dir (--data-dir DIR)"
            );
        }
    }
    if ActionSettings::load(store).await?.read_only {
        bail!("actions are turned off in this store (read-only): the history acts through the action desk");
    }
    let lock = firebreak_engine::actions::driver_lock::DriverLock::acquire(
        store.path(),
        "firebreak demo history",
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;

    let plan = plan(opts);
    let commits = Arc::new(Commits::default());
    let board = Arc::new(StatusBoard::default());
    let sink: Arc<dyn ConsoleSink> = Arc::new(Tee(vec![board.clone(), commits.clone()]));
    let engine = Engine::start(store.clone(), Vec::new(), sink.clone()).await?;
    let tokens = Tokens::default();
    let desk = ActionDesk::new(store.clone(), tokens.clone(), board, sink);
    desk.hold_driver(lock);
    let mut recorder = Recorder {
        store,
        engine: &engine,
        desk: &desk,
        tokens: &tokens,
        commits: &commits,
        until: opts.until,
        filed: Vec::new(),
    };
    let mut done = Vec::new();
    let total = plan.len();
    let result = async {
        for (n, p) in plan.into_iter().enumerate() {
            let r = recorder.incident(p.clone()).await.with_context(|| {
                format!(
                    "recording incident {} of {total} ({})",
                    n + 1,
                    p.story.scenario()
                )
            })?;
            progress(n + 1, total, &r);
            done.push(r);
        }
        anyhow::Ok(())
    }
    .await;
    engine.stop().await;
    firebreak_common::clock::set_manual(None);
    result?;
    Ok(done)
}

struct Recorder<'a> {
    store: &'a Store,
    engine: &'a Engine,
    desk: &'a Arc<ActionDesk>,
    tokens: &'a Tokens,
    commits: &'a Commits,
    until: DateTime<Utc>,
    /// Follow-ups filed so far: for which kind of failure, due when.
    filed: Vec<(Story, DateTime<Utc>)>,
}

/// One simulator run being recorded, one simulated second at a time.
struct Run<'a> {
    sim: RunningSim,
    store: &'a Store,
    commits: &'a Commits,
    cluster: i64,
    t0_ms: i64,
    second: i64,
}

impl Run<'_> {
    fn now_ms(&self) -> i64 {
        self.t0_ms + self.second * 1000
    }

    /// One simulated second: the world moves, the console records all of it at the
    /// second's time, then the clock moves on (and the desk, waiting by it, takes its step).
    async fn step(&mut self) -> Result<()> {
        self.sim.advance(1);
        let head = self.sim.sent_bounds().0;
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.store.cursor(self.cluster).await? < head {
            if Instant::now() > deadline {
                bail!(
                    "the console did not record simulated second {} within 30 s",
                    self.second
                );
            }
            let _ =
                tokio::time::timeout(Duration::from_millis(20), self.commits.0.notified()).await;
        }
        self.second += 1;
        firebreak_common::clock::set_manual(Some(self.now_ms()));
        Ok(())
    }

    async fn steps(&mut self, n: u64) -> Result<()> {
        for _ in 0..n {
            self.step().await?;
        }
        Ok(())
    }
}

/// Polls `done` every few milliseconds for up to 10 s.
async fn until(what: &str, mut done: impl AsyncFnMut() -> Result<bool>) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done().await? {
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    Ok(())
}

impl Recorder<'_> {
    async fn incident(&mut self, p: Planned) -> Result<Recorded> {
        let token = format!("history-{}", p.seed);
        let mut opts = SimOptions::new(Scenario::load(p.story.scenario())?, token.clone());
        opts.seed = p.seed;
        opts.start = Some(p.at);
        opts.stepped = true;
        opts.cluster = CLUSTER.into();
        let sim = firebreak_sim::start(opts).await?;
        let cluster = self
            .store
            .ensure_demo_cluster(&NewCluster {
                ca_file: None,
                name: CLUSTER.into(),
                events_url: sim.events_url(),
                actions_url: sim.actions_url(),
            })
            .await?;
        self.tokens.set(cluster.id, &token);
        firebreak_common::clock::set_manual(Some(p.at.timestamp_millis()));
        self.engine
            .watch(Target {
                cluster_id: cluster.id,
                name: cluster.name.clone(),
                events_url: sim.events_url(),
                token: Some(token),
                ca_file: None,
            })
            .await?;
        // The cluster's cursor still belongs to the previous run's stream until the engine
        // has seen this one's hello: wait for that, or the first steps would not wait.
        let stream = sim.stream_id();
        until("the console to connect to the new stream", async || {
            Ok(self.store.stream_id(cluster.id).await?.as_deref() == Some(stream.as_str()))
        })
        .await?;
        let mut run = Run {
            sim,
            store: self.store,
            commits: self.commits,
            cluster: cluster.id,
            t0_ms: p.at.timestamp_millis(),
            second: 0,
        };
        let recorded = self.respond(&p, &mut run).await;
        self.engine.unwatch(cluster.id).await;
        run.sim.shutdown();
        recorded
    }

    async fn respond(&mut self, p: &Planned, run: &mut Run<'_>) -> Result<Recorded> {
        let store = self.store;
        let who = p.responder;
        let service = p.story.service();
        let incident = loop {
            run.step().await?;
            if run.second > 900 {
                bail!("no incident opened for {service} in 15 simulated minutes");
            }
            let found = store.incidents().await?.into_iter().find(|i| {
                i.cluster_id == Some(run.cluster)
                    && i.service.as_deref() == Some(service)
                    && i.status != IncidentStatus::Resolved
            });
            if let Some(i) = found {
                break i;
            }
        };
        run.steps(p.ack_after_s).await?;
        store.set_commander(incident.id, Some(who), who).await?;
        store
            .change_status(incident.id, IncidentStatus::Acknowledged, who)
            .await?;
        store.add_note(incident.id, p.story.note(), who).await?;
        run.steps(p.act_after_s).await?;

        // The planned remedy first; when it does not help (a failover after a failed
        // rollout left both regions' nodes drained, say), the documented one, then the
        // other of rollback and failover: as a responder would go on.
        let documented = p.story.remedy();
        let other = if documented == ActionKind::Rollback {
            ActionKind::Failover
        } else {
            ActionKind::Rollback
        };
        let mut tries = vec![p.remedy];
        for k in [documented, other, documented] {
            if tries.last() != Some(&k) {
                tries.push(k);
            }
        }
        let mut actions = Vec::new();
        for kind in tries {
            match self.act(run, incident.id, kind, who, service).await {
                Ok(helped) => {
                    actions.push((kind, helped));
                    if helped {
                        break;
                    }
                    let note = format!("{} did not bring {service} back.", kind.as_str());
                    store.add_note(incident.id, &note, who).await?;
                }
                Err(e) => {
                    let note = format!("Could not {}: {e:#}.", kind.as_str().replace('_', " "));
                    store.add_note(incident.id, &note, who).await?;
                }
            }
            run.steps(30).await?;
        }
        if !actions.last().is_some_and(|(_, helped)| *helped) {
            bail!("nothing the responder tried brought {service} back: {actions:?}");
        }
        store
            .change_status(incident.id, IncidentStatus::Mitigated, who)
            .await?;
        let mitigated_ms = run.now_ms();
        // After mitigation nothing more needs recording from the world: the clock jumps
        // to the resolution.
        firebreak_common::clock::set_manual(Some(mitigated_ms + p.resolve_after_s * 1000));
        store
            .change_status(incident.id, IncidentStatus::Resolved, who)
            .await?;
        store
            .close_previous_demo(
                run.cluster,
                &format!(
                    "Resolved with #{}: the same failure, worked there.",
                    incident.id
                ),
            )
            .await?;
        self.review(p, incident.id).await?;
        Ok(Recorded {
            planned: p.clone(),
            incident: incident.id,
            actions,
            mitigated_after_s: (mitigated_ms - incident.opened_ms) / 1000,
        })
    }

    /// Confirms `kind` through the desk (the desk's own proposal of it when it made one,
    /// as after a rollback that did not help), then steps the world until the desk has
    /// verified it (or it ended otherwise). Returns whether it was verified to help.
    async fn act(
        &mut self,
        run: &mut Run<'_>,
        incident: i64,
        kind: ActionKind,
        who: &str,
        service: &str,
    ) -> Result<bool> {
        let store = self.store;
        let proposed = store
            .incident_actions(incident)
            .await?
            .into_iter()
            .find(|a| a.kind == kind && a.state == ActionState::Proposed);
        let proposal = match proposed {
            Some(p) => p,
            None => self
                .desk
                .propose_with(incident, kind, Choice::default(), who)
                .await
                .with_context(|| format!("proposing {}", kind.as_str()))?,
        };
        let id = proposal.id;
        self.desk
            .confirm(
                &id,
                who,
                &format!("{} heals {service}", kind.as_str()),
                Some(service),
            )
            .await
            .with_context(|| format!("confirming {}", kind.as_str()))?;
        // The desk drives the action in a task of its own, waiting on the console's clock
        // between its steps: after each move of the clock, wait until it has taken the
        // step the move allowed and waits again (or is done), so every run records each
        // step at the same clock time.
        let settled = async || -> Result<()> {
            until("the action desk to take its step", async || {
                let a = store.action(&id).await?;
                let done = (a.state.is_final() && a.state != ActionState::Succeeded)
                    || a.verification.is_some();
                Ok(firebreak_common::clock::settled(usize::from(!done)))
            })
            .await
        };
        settled().await?;
        let limit = run.second + 1200;
        loop {
            run.step().await?;
            settled().await?;
            if run.second > limit {
                bail!("{} was not settled in 20 simulated minutes", kind.as_str());
            }
            let a = store.action(&id).await?;
            if a.state.is_final() && a.state != ActionState::Succeeded {
                return Ok(false);
            }
            if let Some(v) = a.verification {
                let recovered = v == "recovered";
                // After a rollback that did not help the desk proposes a failover itself.
                if !recovered && matches!(kind, ActionKind::Rollback | ActionKind::AbortRollout) {
                    until("the desk's next proposal", async || {
                        Ok(store.incident_actions(incident).await?.iter().any(|a| {
                            a.kind == ActionKind::Failover && a.state == ActionState::Proposed
                        }))
                    })
                    .await?;
                }
                return Ok(recovered);
            }
        }
    }

    /// The review a team would write: root cause, factors (some recurring), follow-ups
    /// (the older ones done), an annotation on the first entry.
    async fn review(&mut self, p: &Planned, incident: i64) -> Result<()> {
        let store = self.store;
        let who = p.responder;
        // Impact began with the scenario's first change, before anything alerted.
        let (began_s, what) = match p.story {
            Story::BadModel => (10, "the new model revision's first wave started serving"),
            Story::NodeLoss => (10, "the first nodes became unreachable"),
            Story::PipelineStall => (5, "the evening load began to build on a short pool"),
        };
        store
            .set_moment(
                incident,
                "impact_began",
                Some(p.at.timestamp_millis() + began_s * 1000),
                what,
                who,
            )
            .await?;
        store
            .set_root_cause(incident, Some(p.story.root_cause()), who)
            .await?;
        let factors: &[&str] = match p.story {
            Story::BadModel => &[
                "no canary for model weights",
                "alert fired after the second wave",
            ],
            Story::NodeLoss => &[
                "no headroom for peak traffic",
                "node memory alerts too late",
            ],
            Story::PipelineStall => &[
                "rollout pipeline has no stall timeout",
                "no headroom for peak traffic",
            ],
        };
        for f in factors {
            store.add_factor(incident, f, who).await?;
        }
        let (title, owner, due_days) = match p.story {
            Story::BadModel => (
                "Canary model weights on one node before each wave",
                "bo",
                21,
            ),
            Story::NodeLoss => ("Keep 30 % headroom in every region at peak", "dara", 28),
            Story::PipelineStall => ("Time out a stalled wave and undrain its nodes", "chen", 14),
        };
        // One follow-up per kind of failure at a time: filed again only once the last
        // one is due (follow-ups due before the history's last fortnight were done).
        if self
            .filed
            .iter()
            .any(|(story, due)| *story == p.story && *due > p.at)
        {
            return self.annotate_first(p, incident).await;
        }
        let due = p.at + chrono::Duration::days(due_days);
        self.filed.push((p.story, due));
        let status = if due < self.until - chrono::Duration::weeks(2) {
            FollowUpStatus::Done
        } else {
            FollowUpStatus::Open
        };
        store
            .add_follow_up(
                incident,
                &FollowUpDraft {
                    title: title.into(),
                    owner: owner.into(),
                    due: Some(due.format("%Y-%m-%d").to_string()),
                    status,
                },
                who,
            )
            .await?;
        self.annotate_first(p, incident).await
    }

    /// Annotates the incident's first timeline entry.
    async fn annotate_first(&self, p: &Planned, incident: i64) -> Result<()> {
        let first = self.store.timeline(incident, None, 1).await?;
        if let Some(e) = first.first() {
            self.store
                .annotate(
                    incident,
                    e.id,
                    "demo history: where this incident started",
                    p.responder,
                )
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(seed: u64) -> HistoryOptions {
        HistoryOptions {
            weeks: 8,
            seed,
            until: "2026-11-30T00:00:00Z".parse().unwrap_or_default(),
        }
    }

    #[test]
    fn the_plan_comes_from_the_seed_alone() {
        let key = |p: &[Planned]| -> Vec<(i64, &str, u64)> {
            p.iter()
                .map(|p| (p.at.timestamp(), p.story.scenario(), p.seed))
                .collect()
        };
        let (a, b, other) = (plan(&opts(7)), plan(&opts(7)), plan(&opts(8)));
        assert_eq!(key(&a), key(&b));
        assert_ne!(key(&a), key(&other));
        // Every incident falls in its week, inside the history.
        let start = opts(7).until - chrono::Duration::weeks(8);
        for p in &a {
            let week_start = start + chrono::Duration::weeks(i64::from(p.week));
            assert!(p.at >= week_start && p.at < week_start + chrono::Duration::weeks(1));
        }
    }

    #[test]
    fn the_team_gets_faster_and_bad_rollouts_stop() {
        let p = plan(&opts(7));
        let mean = |week: u32| {
            let w: Vec<&Planned> = p.iter().filter(|x| x.week == week).collect();
            w.iter().map(|x| x.ack_after_s + x.act_after_s).sum::<u64>() / w.len() as u64
        };
        assert!(mean(7) * 2 < mean(0), "{} then {}", mean(0), mean(7));
        assert!(p
            .iter()
            .filter(|x| x.week >= 5)
            .all(|x| x.story != Story::BadModel));
    }
}
