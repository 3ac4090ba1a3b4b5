//! The headless faces of the action desk: `firebreak act`, `firebreak actions`,
//! `firebreak audit verify`. Same desk, same checks, same idempotency as the window; the
//! confirmation is a prompt on the terminal, or `--yes` for scripts.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::actions::{ActionDesk, Tokens};
use crate::incident::EntryKind;
use crate::ingest::sink::{ConsoleSink, Recorder, StatusBoard, StreamState, Tee};
use crate::ingest::{Engine, Target};
use crate::protocol::actions::ActionKind;
use crate::store::actions::{ActionRecord, ActionState};
use crate::store::Store;

/// A desk with an engine recording the given clusters (their lifecycle events and the
/// metrics verification reads).
async fn desk_for(
    store: &Store,
    clusters: &[i64],
    token_env: Option<&str>,
) -> Result<(Arc<ActionDesk>, Engine)> {
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
    Ok((ActionDesk::new(store.clone(), tokens, board, sink), engine))
}

fn print_preview(a: &ActionRecord) {
    let p = &a.preview;
    println!("{}", p.summary);
    println!("  from → to:     {} → {}", p.from_label, p.to_label);
    println!(
        "  blast radius:  {} nodes, {:.0} requests/s ({:.0} % of the cluster's traffic)",
        p.nodes,
        p.requests_per_s,
        p.traffic_share * 100.0
    );
    let health = match p.target_health.healthy {
        Some(true) => "healthy",
        Some(false) => "NOT healthy",
        None => "unknown",
    };
    println!("  target health: {health}: {}", p.target_health.text);
    println!("  precondition:  {}", p.precondition);
    for w in &p.warnings {
        println!("  warning:       {w}");
    }
}

/// Prints the incident's action and verification entries after `after`, returns the last id.
async fn print_steps(store: &Store, incident: i64, after: &mut Option<(i64, i64)>) -> Result<()> {
    let entries = store.timeline(incident, *after, 500).await?;
    for e in entries {
        *after = Some((e.at_ms, e.id));
        if matches!(e.kind, EntryKind::Action | EntryKind::Verification) {
            println!("  [{}] {}", e.author, e.body);
        }
    }
    Ok(())
}

/// Waits until an action has finished and, when it succeeded, been verified.
async fn settle(
    store: &Store,
    id: &str,
    incident: i64,
    after: &mut Option<(i64, i64)>,
) -> Result<ActionRecord> {
    loop {
        print_steps(store, incident, after).await?;
        let a = store.action(id).await?;
        let done =
            a.state.is_final() && (a.state != ActionState::Succeeded || a.verification.is_some());
        if done {
            print_steps(store, incident, after).await?;
            return Ok(a);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn ask(question: &str) -> Result<String> {
    print!("{question} ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim().to_owned())
}

pub struct ActArgs {
    pub kind: ActionKind,
    pub incident: i64,
    pub reason: String,
    pub yes: bool,
    pub confirm_service: Option<String>,
    pub token_env: Option<String>,
}

/// `firebreak act rollback|failover --incident N --reason … [--yes]`.
pub async fn act(store: &Store, args: ActArgs) -> Result<()> {
    let incident = store.incident(args.incident).await?;
    let Some(cluster_id) = incident.cluster_id else {
        bail!(
            "incident {} names no cluster: there is nothing to act on",
            incident.id
        );
    };
    let (desk, engine) = desk_for(store, &[cluster_id], args.token_env.as_deref()).await?;
    desk.set_driver_name("firebreak act");
    let result = act_with(store, &desk, &args).await;
    engine.stop().await;
    result
}

async fn act_with(store: &Store, desk: &Arc<ActionDesk>, args: &ActArgs) -> Result<()> {
    let who = store.author().await;
    let proposal = desk.propose(args.incident, args.kind, &who).await?;
    print_preview(&proposal);
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
    println!(
        "Confirmed. Sending in {} s: Ctrl-C cancels until then.",
        confirmed.preview.grace_s
    );
    let mut after = None;
    let outcome = tokio::select! {
        a = settle(store, &confirmed.id, args.incident, &mut after) => a?,
        _ = crate::process::shutdown_signal() => {
            match desk.cancel(&confirmed.id, &who).await {
                Ok(_) => bail!("cancelled; nothing was sent"),
                Err(e) => bail!("{e}: it is under way; `firebreak actions --resume` follows it to the end"),
            }
        }
    };
    report(&outcome)
}

fn report(a: &ActionRecord) -> Result<()> {
    match (a.state, a.verification.as_deref()) {
        (ActionState::Succeeded, Some("recovered")) => Ok(()),
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
        let lock = crate::actions::driver_lock::DriverLock::acquire(
            store.path(),
            "firebreak actions --resume",
        )
        .map_err(|why| anyhow::anyhow!(why))?;
        let unfinished = store.unfinished_actions().await?;
        let mut clusters: Vec<i64> = unfinished.iter().map(|a| a.cluster_id).collect();
        clusters.sort_unstable();
        clusters.dedup();
        if !unfinished.is_empty() {
            let (desk, engine) = desk_for(store, &clusters, token_env.as_deref()).await?;
            desk.hold_driver(lock);
            desk.resume_unfinished().await?;
            eprintln!(
                "resuming {} unfinished action(s) with their stored idempotency keys",
                unfinished.len()
            );
            for a in &unfinished {
                let mut after = None;
                settle(store, &a.id, a.incident_id, &mut after).await?;
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
