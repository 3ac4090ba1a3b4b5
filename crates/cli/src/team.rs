//! `firebreak team link | sync | status`: team sync without the window (a server room's
//! console, scripts, and the tests that kill a syncing console mid-way).

use anyhow::{Context, Result};

use std::path::PathBuf;

use clap::Subcommand;
use firebreak_store::Store;

#[derive(Debug, Subcommand)]
pub enum TeamCommand {
    /// Link this data dir to a team: incidents opened from now on are shared. The token is
    /// read from an environment variable and kept in the OS keychain.
    Link {
        /// The team server, https:// (http:// only on this machine).
        #[arg(long)]
        url: String,
        #[arg(long)]
        team: String,
        /// The environment variable holding the token `team-server user add` printed.
        #[arg(long, value_name = "VAR")]
        token_env: String,
        /// Trust this CA certificate file (PEM) besides the OS store.
        #[arg(long, value_name = "FILE")]
        ca_file: Option<PathBuf>,
    },
    /// Sync until Ctrl-C: push what was recorded here, apply what the team recorded.
    Sync {
        /// Read the token from this environment variable instead of the keychain.
        #[arg(long, value_name = "VAR")]
        token_env: Option<String>,
    },
    /// The link, what waits to be pushed, and what was refused.
    Status,
}

pub async fn run(store: &Store, command: TeamCommand) -> Result<()> {
    match command {
        TeamCommand::Link {
            url,
            team,
            token_env,
            ca_file,
        } => {
            let token = std::env::var(&token_env)
                .with_context(|| format!("--token-env: ${token_env} is not set"))?;
            let ca = ca_file.as_ref().map(|p| p.display().to_string());
            // Check the server, the token and the team before keeping anything.
            let client = firebreak_engine::team::client::TeamClient::new(
                firebreak_engine::team::client::TeamLink {
                    url: url.clone(),
                    team: team.clone(),
                    token: token.clone(),
                    console: uuid::Uuid::nil(),
                    ca_file: ca_file.clone(),
                },
            )?;
            let me = client.me().await?;
            let teams: Vec<String> =
                serde_json::from_value(me["teams"].clone()).unwrap_or_default();
            anyhow::ensure!(
                teams.contains(&team),
                "{} is not in team {team:?} on {url} (their teams: {})",
                me["name"].as_str().unwrap_or("this token"),
                if teams.is_empty() {
                    "none".to_owned()
                } else {
                    teams.join(", ")
                }
            );
            let account = firebreak_engine::secrets::new_account();
            firebreak_engine::secrets::save(&account, &token).await?;
            let link = store
                .link_team(&url, &team, Some(&account), ca.as_deref())
                .await?;
            println!(
                "linked to team {} on {} as {} (this console: {})",
                link.team,
                link.url,
                me["name"].as_str().unwrap_or("?"),
                link.console
            );
        }
        TeamCommand::Sync { token_env } => {
            let link = store.team_link().await?.context(
                "this data dir is not linked to a team: run `firebreak team link` first",
            )?;
            let token = token(&link, token_env.as_deref()).await?;
            let sync = firebreak_engine::team::sync::TeamSync::start(
                store.clone(),
                token,
                std::sync::Arc::new(|_| {}),
            );
            let mut status = sync.subscribe();
            eprintln!("syncing team {} on {}; Ctrl-C stops", link.team, link.url);
            let report = async {
                let mut last = None;
                loop {
                    let s = status.borrow_and_update().clone();
                    let line = match s.state {
                        firebreak_engine::team::sync::SyncState::Offline
                        | firebreak_engine::team::sync::SyncState::Refused => {
                            format!("{:?}: {}", s.state, s.reason.as_deref().unwrap_or(""))
                        }
                        _ => format!("{:?}, {} to push", s.state, s.pending),
                    };
                    if last.as_ref() != Some(&line) {
                        println!("{line}");
                        last = Some(line);
                    }
                    if status.changed().await.is_err() {
                        return;
                    }
                }
            };
            tokio::select! {
                _ = report => {}
                _ = firebreak_common::process::shutdown_signal() => {}
            }
        }
        TeamCommand::Status => match store.team_link().await? {
            None => println!("not linked to a team"),
            Some(link) => {
                println!(
                    "team {} on {} ({}), this console {}, read up to record {}, {} to push",
                    link.team,
                    link.url,
                    if link.enabled { "on" } else { "off" },
                    link.console,
                    link.cursor,
                    store.team_pending_count().await?
                );
            }
        },
    }
    Ok(())
}

/// The team token: from the environment variable when named, else the keychain's.
pub async fn token(link: &firebreak_store::team::Link, token_env: Option<&str>) -> Result<String> {
    Ok(match token_env {
        Some(var) => {
            std::env::var(var).with_context(|| format!("--token-env: ${var} is not set"))?
        }
        None => {
            let account = link
                .token_ref
                .clone()
                .context("the team link has no token: link again")?;
            firebreak_engine::secrets::load(&account)
                .await?
                .context("the keychain holds no token for this team: link again")?
        }
    })
}

/// Pushes what waits in the outbox, for a command that changed a shared incident without
/// the window: syncs until nothing waits, the server cannot be reached or refuses, or
/// `limit` passes. What is not pushed stays queued for the next sync.
pub async fn push_now(
    store: &Store,
    token_env: Option<&str>,
    limit: std::time::Duration,
) -> Result<String> {
    let Some(link) = store.team_link().await? else {
        return Ok("not linked to a team".into());
    };
    if !link.enabled {
        return Ok(format!(
            "team {} is switched off here: the change waits until it is on",
            link.team
        ));
    }
    let token = token(&link, token_env).await?;
    let sync = firebreak_engine::team::sync::TeamSync::start(
        store.clone(),
        token,
        std::sync::Arc::new(|_| {}),
    );
    let mut status = sync.subscribe();
    let outcome = tokio::time::timeout(limit, async {
        loop {
            let s = status.borrow_and_update().clone();
            match s.state {
                firebreak_engine::team::sync::SyncState::Synced
                | firebreak_engine::team::sync::SyncState::Syncing
                    if s.pending == 0 =>
                {
                    return format!("pushed to team {} on {}", link.team, link.url)
                }
                firebreak_engine::team::sync::SyncState::Offline
                | firebreak_engine::team::sync::SyncState::Refused => {
                    return format!(
                        "team {} did not take it now ({}): it stays queued for the next sync",
                        link.team,
                        s.reason.as_deref().unwrap_or("no reason given")
                    )
                }
                _ => {}
            }
            if status.changed().await.is_err() {
                return "the team sync stopped: the change stays queued".to_owned();
            }
        }
    })
    .await;
    Ok(outcome.unwrap_or_else(|_| {
        format!(
            "team {} has not answered in {} s: the change stays queued for the next sync",
            link.team,
            limit.as_secs()
        )
    }))
}
