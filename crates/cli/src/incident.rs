//! `firebreak incident ID note|ack|mitigate|resolve|severity|command`: the incident's own
//! changes without the window, through the store calls the window's commands make, so a
//! team-shared incident's change goes into the team outbox the same way, and is pushed
//! before the command ends when the team server answers.

use std::time::Duration;

use anyhow::{bail, Result};

use clap::Subcommand;
use firebreak_store::incident::{Incident, IncidentStatus, Severity};
use firebreak_store::Store;

/// `firebreak incident ID …`: one change, as the window makes it.
#[derive(Debug, Subcommand)]
pub enum IncidentChange {
    /// Add a note to the timeline.
    Note { text: String },
    /// Acknowledge: someone is on it.
    Ack,
    /// Mitigated: the impact has stopped.
    Mitigate,
    /// Resolved.
    Resolve,
    /// Change the severity.
    Severity {
        #[arg(value_parser = ["critical", "major", "minor", "info"])]
        level: String,
    },
    /// Take command (or give it to PERSON); `--step-down` leaves it to no one.
    Command {
        person: Option<String>,
        #[arg(long, conflicts_with = "person")]
        step_down: bool,
    },
}

/// How long a command waits for the team server to take its change before leaving it
/// queued for the next sync.
const PUSH_LIMIT: Duration = Duration::from_secs(15);

pub async fn change(
    store: &Store,
    id: i64,
    change: IncidentChange,
    token_env: Option<String>,
    json: bool,
) -> Result<()> {
    let author = store.author().await;
    let before = store.incident(id).await?;
    let (incident, said): (Incident, String) = match change {
        IncidentChange::Note { text } => {
            let text = text.trim();
            if text.is_empty() {
                bail!("a note needs some text");
            }
            store.add_note(id, text, &author).await?;
            (store.incident(id).await?, format!("note added by {author}"))
        }
        IncidentChange::Ack => {
            status(store, &before, IncidentStatus::Acknowledged, &author).await?
        }
        IncidentChange::Mitigate => {
            status(store, &before, IncidentStatus::Mitigated, &author).await?
        }
        IncidentChange::Resolve => {
            status(store, &before, IncidentStatus::Resolved, &author).await?
        }
        IncidentChange::Severity { level } => {
            let Some(to) = Severity::ALL.into_iter().find(|s| s.as_str() == level) else {
                bail!("{level:?} is not a severity (critical, major, minor, info)");
            };
            let i = store.change_severity(id, to, &author).await?;
            (
                i,
                format!(
                    "severity {} (was {})",
                    to.as_str(),
                    before.severity.as_str()
                ),
            )
        }
        IncidentChange::Command { person, step_down } => {
            let to = if step_down {
                None
            } else {
                Some(person.unwrap_or_else(|| author.clone()))
            };
            let i = store.set_commander(id, to.as_deref(), &author).await?;
            let said = match &i.commander {
                Some(who) => format!("{who} has command"),
                None => "no one has command".to_owned(),
            };
            (i, said)
        }
    };
    let team = if store.is_shared(id).await? {
        Some(crate::team::push_now(store, token_env.as_deref(), PUSH_LIMIT).await?)
    } else {
        None
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&incident)?);
    } else {
        println!(
            "incident {} ({}): {said}; now {}, {}",
            incident.id,
            incident.title,
            incident.status.as_str(),
            incident.severity.as_str()
        );
    }
    if let Some(team) = team {
        eprintln!("{team}");
    }
    Ok(())
}

async fn status(
    store: &Store,
    before: &Incident,
    to: IncidentStatus,
    author: &str,
) -> Result<(Incident, String)> {
    let i = store.change_status(before.id, to, author).await?;
    Ok((
        i,
        format!(
            "{} by {author} (was {})",
            to.as_str(),
            before.status.as_str()
        ),
    ))
}
