//! The headless faces of the action desk: `firebreak act`, `firebreak actions`,
//! `firebreak audit verify`. Same desk, same checks, same idempotency as the window; the
//! confirmation is a prompt on the terminal, or `--yes` for scripts; `--json` leaves
//! standard output to one JSON document (the action and its outcome) for scripts.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use firebreak_engine::actions::{ActionDesk, Tokens};
use firebreak_engine::ingest::sink::{ConsoleSink, Recorder, StatusBoard, StreamState, Tee};
use firebreak_engine::ingest::{Engine, Target};
use firebreak_protocol::actions::ActionKind;
use firebreak_store::actions::{ActionRecord, ActionState};
use firebreak_store::incident::EntryKind;
use firebreak_store::Store;

/// A desk with an engine recording the given clusters (their lifecycle events and the
/// metrics verification reads).
async fn desk_for(
    store: &Store,
    clusters: &[i64],
    token_env: Option<&str>,
) -> Result<(Arc<ActionDesk>, Engine, Arc<StatusBoard>)> {
    let tokens = Tokens::default();
    if let Some(var) = token_env {
        let token =
            std::env::var(var).with_context(|| format!("environment variable {var} is not set"))?;
        for id in clusters {
            tokens.set(*id, &token);
        }
    }
    let board = Arc::new(StatusBoard::default());
    let sink: Arc<dyn ConsoleSink> =
        Arc::new(Tee(vec![board.clone(), Arc::new(Recorder::default())]));
    let mut targets = Vec::new();
    for id in clusters {
        let cluster = store.cluster(*id).await?;
        targets.push(Target {
            cluster_id: cluster.id,
            name: cluster.name.clone(),
            events_url: cluster.events_url.clone(),
            token: tokens.token(&cluster).await,
            ca_file: cluster.ca_file.clone().map(Into::into),
        });
    }
    let engine = Engine::start(store.clone(), targets, sink.clone()).await?;
    // Give the streams a moment to come live, so previews are made on current data.
    for _ in 0..50 {
        if clusters
            .iter()
            .all(|id| matches!(board.state(*id), Some(StreamState::Live { .. })))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok((
        ActionDesk::new(store.clone(), tokens, board.clone(), sink),
        engine,
        board,
    ))
}

/// Where the human-readable lines go: standard output, or standard error when `--json`
/// keeps standard output for the one JSON document a script reads.
#[derive(Clone, Copy)]
struct Out {
    json: bool,
}

impl Out {
    fn line(self, text: &str) {
        if self.json {
            eprintln!("{text}");
        } else {
            println!("{text}");
        }
    }
}

fn print_preview(out: Out, a: &ActionRecord) {
    let p = &a.preview;
    out.line(&p.summary);
    out.line(&format!(
        "  from → to:     {} → {}",
        p.from_label, p.to_label
    ));
    out.line(&format!(
        "  blast radius:  {} nodes, {:.0} requests/s ({:.0} % of the cluster's traffic)",
        p.nodes,
        p.requests_per_s,
        p.traffic_share * 100.0
    ));
    let health = match p.target_health.healthy {
        Some(true) => "healthy",
        Some(false) => "NOT healthy",
        None => "unknown",
    };
    out.line(&format!(
        "  target health: {health}: {}",
        p.target_health.text
    ));
    out.line(&format!("  precondition:  {}", p.precondition));
    for (i, line) in p.evidence.iter().enumerate() {
        let label = if i == 0 { "evidence:" } else { "" };
        out.line(&format!("  {label:<14} {line}"));
    }
    for w in &p.warnings {
        out.line(&format!("  warning:       {w}"));
    }
}

/// Prints the incident's action and verification entries after `after`, returns the last id.
async fn print_steps(
    out: Out,
    store: &Store,
    incident: i64,
    after: &mut Option<(i64, i64)>,
) -> Result<()> {
    let entries = store.timeline(incident, *after, 500).await?;
    for e in entries {
        *after = Some((e.at_ms, e.id));
        if matches!(e.kind, EntryKind::Action | EntryKind::Verification) {
            out.line(&format!("  [{}] {}", e.author, e.body));
        }
    }
    Ok(())
}

/// Whether an action is at its end: finished, and verified when it succeeded (a silence
/// changes notifications, not the service, and has nothing to verify).
fn settled_now(a: &ActionRecord) -> bool {
    a.state.is_final()
        && (a.state != ActionState::Succeeded
            || a.kind == ActionKind::Silence
            || a.verification.is_some())
}

/// Waits until an action has finished and, when it succeeded, been verified.
async fn settle(
    out: Out,
    store: &Store,
    id: &str,
    incident: i64,
    after: &mut Option<(i64, i64)>,
) -> Result<ActionRecord> {
    loop {
        print_steps(out, store, incident, after).await?;
        let a = store.action(id).await?;
        if settled_now(&a) {
            print_steps(out, store, incident, after).await?;
            return Ok(a);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn ask(question: &str) -> Result<String> {
    // The question goes where a person reads it, whatever --json does with stdout.
    eprint!("{question} ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim().to_owned())
}

/// The action succeeded and nothing the cluster gave said whether the service recovered:
/// its own outcome (exit status 3), neither success nor failure.
#[derive(Debug)]
pub struct Unverified(pub String);

impl std::fmt::Display for Unverified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unverified {}

/// The exit status of an action whose outcome could not be verified.
pub const EXIT_UNVERIFIED: u8 = 3;

pub struct ActArgs {
    pub kind: ActionKind,
    pub incident: i64,
    pub reason: String,
    pub yes: bool,
    pub confirm_service: Option<String>,
    pub token_env: Option<String>,
    /// A rollback's revision (else the one before the rollout).
    pub to_revision: Option<u32>,
    /// A promotion of every remaining wave.
    pub full: bool,
    /// A silence's alert, by name, and the region when it fired in several.
    pub alert: Option<String>,
    pub region: Option<String>,
    /// A silence's length.
    pub silence_s: u32,
    pub json: bool,
}

impl ActArgs {
    /// Each option belongs to one kind of action: a stray one is a mistake, said before
    /// anything is read or proposed.
    fn check(&self) -> Result<()> {
        let kind = self.kind.as_str();
        if self.to_revision.is_some() && self.kind != ActionKind::Rollback {
            bail!("--to-revision is a rollback's, not a {kind}'s");
        }
        if self.full && self.kind != ActionKind::PromoteRollout {
            bail!("--full is a promotion's, not a {kind}'s");
        }
        let silence = self.kind == ActionKind::Silence;
        if silence && self.alert.is_none() {
            bail!("a silence needs --alert NAME: the alert as the incident's timeline shows it");
        }
        if !silence && (self.alert.is_some() || self.region.is_some()) {
            bail!("--alert and --region are a silence's, not a {kind}'s");
        }
        Ok(())
    }
}

/// `firebreak act rollback|failover|pause|resume|abort|promote|silence --incident N …`.
pub async fn act(store: &Store, args: ActArgs) -> Result<()> {
    args.check()?;
    let incident = store.incident(args.incident).await?;
    let Some(cluster_id) = incident.cluster_id else {
        bail!(
            "incident {} names no cluster: there is nothing to act on",
            incident.id
        );
    };
    let out = Out { json: args.json };
    let (desk, engine, board) = desk_for(store, &[cluster_id], args.token_env.as_deref()).await?;
    desk.set_driver_name("firebreak act");
    // This process records the cluster's stream itself for the verification window; say at
    // once when it cannot, rather than after the action.
    if args.kind != ActionKind::Silence {
        match board.state(cluster_id) {
            Some(StreamState::Live { .. }) | Some(StreamState::CatchingUp { .. }) => {}
            other => out.line(&format!(
                "note: the cluster's stream is not live ({}): verification needs its metrics or \
                 rollout state, so unless it comes live within the verification window the \
                 outcome will be \"could not verify\"",
                match other {
                    Some(StreamState::Reconnecting { reason, .. })
                    | Some(StreamState::Failed { reason }) => reason,
                    _ => "still connecting".to_owned(),
                }
            )),
        }
    }
    let result = act_with(out, store, &desk, &args).await;
    engine.stop().await;
    let action = result?;
    if args.json {
        let outcome = match (action.state, action.verification.as_deref()) {
            (ActionState::Succeeded, Some(v)) => v.to_owned(),
            (ActionState::Succeeded, None) => "succeeded".to_owned(),
            (state, _) => state.as_str().to_owned(),
        };
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "outcome": outcome, "action": action })
            )?
        );
    }
    report(&action)
}

async fn act_with(
    out: Out,
    store: &Store,
    desk: &Arc<ActionDesk>,
    args: &ActArgs,
) -> Result<ActionRecord> {
    let who = store.author().await;
    let proposal = match &args.alert {
        Some(alert) => {
            let entry = store
                .alert_entry(args.incident, alert, args.region.as_deref())
                .await?
                .with_context(|| {
                    format!(
                        "no alert {alert:?}{} fired on incident {}: `firebreak timeline {}` shows its alerts",
                        args.region
                            .as_deref()
                            .map(|r| format!(" in {r}"))
                            .unwrap_or_default(),
                        args.incident,
                        args.incident
                    )
                })?;
            desk.propose_silence(args.incident, entry, args.silence_s, &who)
                .await?
        }
        None => {
            let choice = firebreak_engine::actions::Choice {
                to_revision: args.to_revision,
                full: args.full,
            };
            desk.propose_with(args.incident, args.kind, choice, &who)
                .await?
        }
    };
    print_preview(out, &proposal);
    let mut typed = args.confirm_service.clone();
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            desk.cancel(&proposal.id, &who).await.ok();
            bail!("no terminal to confirm on: pass --yes to confirm from a script");
        }
        if proposal.preview.type_to_confirm {
            typed = Some(ask(&format!(
                "This changes {} nodes. Type the service name ({}) to confirm:",
                proposal.preview.nodes, proposal.service
            ))?);
        } else if !ask("Proceed? [y/N]")?.eq_ignore_ascii_case("y") {
            desk.cancel(&proposal.id, &who).await.ok();
            bail!("not confirmed; nothing was sent");
        }
    } else if proposal.preview.type_to_confirm && typed.is_none() {
        desk.cancel(&proposal.id, &who).await.ok();
        bail!(
            "this action changes {} nodes: add --confirm-service {} to confirm it",
            proposal.preview.nodes,
            proposal.service
        );
    }
    let confirmed = match desk
        .confirm(&proposal.id, &who, &args.reason, typed.as_deref())
        .await
    {
        Ok(a) => a,
        Err(e) => {
            desk.cancel(&proposal.id, &who).await.ok();
            return Err(e.into());
        }
    };
    out.line(&format!(
        "Confirmed. Sending in {} s: Ctrl-C cancels until then.",
        confirmed.preview.grace_s
    ));
    let mut after = None;
    let outcome = tokio::select! {
        a = settle(out, store, &confirmed.id, args.incident, &mut after) => a?,
        _ = firebreak_common::process::shutdown_signal() => {
            match desk.cancel(&confirmed.id, &who).await {
                Ok(_) => bail!("cancelled; nothing was sent"),
                Err(e) => bail!("{e}: it is under way; `firebreak actions --resume` follows it to the end"),
            }
        }
    };
    Ok(outcome)
}

fn report(a: &ActionRecord) -> Result<()> {
    match (a.state, a.verification.as_deref()) {
        (ActionState::Succeeded, Some("recovered")) => Ok(()),
        (ActionState::Succeeded, None) if a.kind == ActionKind::Silence => Ok(()),
        (ActionState::Succeeded, Some("unverified")) => Err(Unverified(format!(
            "the {} succeeded; whether {} recovered could not be verified (see above): check it",
            a.kind.noun(),
            a.service
        ))
        .into()),
        (ActionState::Succeeded, _) => {
            bail!("the action succeeded but {} did not recover", a.service)
        }
        (state, _) => bail!(
            "the action ended {}{}",
            state.as_str(),
            a.error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        ),
    }
}

/// `firebreak actions [--incident N] [--json] [--resume]`.
pub async fn actions(
    store: &Store,
    incident: Option<i64>,
    json: bool,
    resume: bool,
    token_env: Option<String>,
) -> Result<()> {
    if resume {
        // Refused at once, with who holds it, while another process drives actions here.
        let lock = firebreak_engine::actions::driver_lock::DriverLock::acquire(
            store.path(),
            "firebreak actions --resume",
        )
        .map_err(|why| anyhow::anyhow!(why))?;
        let unfinished = store.unfinished_actions().await?;
        let mut clusters: Vec<i64> = unfinished.iter().map(|a| a.cluster_id).collect();
        clusters.sort_unstable();
        clusters.dedup();
        if !unfinished.is_empty() {
            let (desk, engine, _) = desk_for(store, &clusters, token_env.as_deref()).await?;
            desk.hold_driver(lock);
            desk.resume_unfinished().await?;
            eprintln!(
                "resuming {} unfinished action(s) with their stored idempotency keys",
                unfinished.len()
            );
            for a in &unfinished {
                let mut after = None;
                settle(Out { json }, store, &a.id, a.incident_id, &mut after).await?;
            }
            engine.stop().await;
        }
    }
    let mut list = Vec::new();
    match incident {
        Some(id) => list = store.incident_actions(id).await?,
        None => {
            for i in store.incidents().await? {
                list.extend(store.incident_actions(i.id).await?);
            }
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    if list.is_empty() {
        println!("no actions recorded");
    }
    for a in list {
        println!(
            "{}  incident {:<4} {:<10} {:<12} {}{}",
            a.id,
            a.incident_id,
            a.state.as_str(),
            a.verification.as_deref().unwrap_or("-"),
            a.preview.summary,
            a.error.map(|e| format!(" ({e})")).unwrap_or_default()
        );
    }
    Ok(())
}

/// `firebreak audit verify`: recomputes the chain; an error names the first bad record.
pub async fn audit_verify(store: &Store) -> Result<()> {
    let v = store.verify_audit().await?;
    if let Some((id, why)) = v.first_bad {
        bail!("audit log broken at record {id} of {}: {why}", v.records);
    }
    println!(
        "audit log intact: {} records, every hash and link matches",
        v.records
    );
    match store.verify_team_audit().await? {
        (0, _) => {}
        (n, None) => println!("teammates' action records intact: {n} records, every hash matches"),
        (n, Some(why)) => bail!("teammates' action records ({n}): {why}"),
    }
    Ok(())
}
