//! Settings → Team and the sync loop behind it: link to a team server (the token checked
//! against the server, then kept in the OS keychain), switch sync on and off, say which
//! incident this console shows, redo a change the team refused.

use tauri::State;

use super::Console;
use crate::ipc::{ErrorCode, IpcError};
use firebreak_engine::team::client::{SyncError, TeamClient, TeamLink};
use firebreak_engine::team::sync::{TeamLinkRequest, TeamSettings, TeamStatus, TeamSync};
use firebreak_store::incident::Incident;

type Reply<T> = Result<T, IpcError>;

fn refused(e: SyncError) -> IpcError {
    match e {
        SyncError::Refused { message, .. } => IpcError::new(ErrorCode::Refused, message),
        SyncError::Unreachable(message) => IpcError::new(
            ErrorCode::Unreachable,
            format!("the team server did not answer: {message}"),
        ),
    }
}

impl Console {
    /// Starts (or restarts) syncing with the token in the keychain; stops when unlinked
    /// or switched off.
    pub(super) async fn restart_team_sync(&self) -> Reply<()> {
        let store = self.store()?.clone();
        let link = store.team_link().await?;
        let token = match &link {
            Some(l) if l.enabled => match &l.token_ref {
                Some(account) => firebreak_engine::secrets::load(account)
                    .await
                    .map_err(|e| IpcError::new(ErrorCode::Keychain, e.to_string()))?,
                None => None,
            },
            _ => None,
        };
        let sync = token.map(|token| {
            let live = self.live.clone();
            let sync = TeamSync::start(
                store,
                token,
                std::sync::Arc::new(move |applied| {
                    use firebreak_engine::ingest::sink::ConsoleSink;
                    live.committed(&firebreak_engine::ingest::sink::Committed {
                        updated: applied.incidents.clone(),
                        ..Default::default()
                    });
                }),
            );
            let mut status = sync.subscribe();
            let live = self.live.clone();
            tauri::async_runtime::spawn(async move {
                loop {
                    live.team_status(Some(status.borrow_and_update().clone()));
                    if status.changed().await.is_err() {
                        return;
                    }
                }
            });
            sync
        });
        if sync.is_none() {
            self.live.team_status(None);
        }
        *self.team.lock().unwrap_or_else(|e| e.into_inner()) = sync;
        Ok(())
    }

    fn team_status(&self) -> TeamStatus {
        self.team
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(TeamSync::status)
            .unwrap_or_else(TeamStatus::off)
    }

    async fn team_settings_now(&self) -> Reply<TeamSettings> {
        let link = self.store()?.team_link().await?;
        Ok(TeamSettings {
            url: link.as_ref().map(|l| l.url.clone()),
            team: link.as_ref().map(|l| l.team.clone()),
            ca_file: link.as_ref().and_then(|l| l.ca_file.clone()),
            enabled: link.as_ref().is_some_and(|l| l.enabled),
            status: self.team_status(),
        })
    }
}

#[tauri::command]
pub async fn team_settings(console: State<'_, Console>) -> Reply<TeamSettings> {
    console.team_settings_now().await
}

/// Links to a team: the server must know the token and have the person in the team
/// before anything is kept.
/// A token saved for one server is never handed to another: pointing the console at
/// another server or CA needs the token pasted again and a person's confirmation in a
/// native dialog, which page script cannot answer.
#[tauri::command]
pub async fn link_team<R: tauri::Runtime>(
    app: tauri::AppHandle<R>,
    window: tauri::WebviewWindow<R>,
    console: State<'_, Console>,
    link: TeamLinkRequest,
) -> Reply<TeamSettings> {
    let store = console.store()?.clone();
    let current = store.team_link().await?;
    let change = firebreak_engine::team::sync::link_change(
        current
            .as_ref()
            .map(|l| (l.url.as_str(), l.ca_file.as_deref())),
        &link.url,
        link.ca_file.as_deref(),
    );
    if link.token.trim().is_empty() && !change.keeps_saved_token {
        return Err(IpcError::new(
            ErrorCode::Invalid,
            match &current {
                Some(l) => format!(
                    "the saved token stays with {}: paste the token for {}",
                    l.url,
                    link.url.trim()
                ),
                None => "paste the token the team server's admin gave you".to_owned(),
            },
        ));
    }
    if !change.to_confirm.is_empty() {
        let text = format!(
            "- {}\n\nThe token goes to this server, and every incident you open while linked is \
             shared with its team. Only a person at this screen can confirm it.",
            change.to_confirm.join("\n- ")
        );
        if !super::ask_natively(&app, &window, "Link to this team server?", text, "_Link").await {
            return Err(IpcError::new(
                ErrorCode::Refused,
                "not confirmed in the dialog: the team link was not changed",
            ));
        }
    }
    let token = match link.token.trim() {
        "" => match current.as_ref().and_then(|l| l.token_ref.clone()) {
            Some(account) => firebreak_engine::secrets::load(&account)
                .await
                .map_err(|e| IpcError::new(ErrorCode::Keychain, e.to_string()))?
                .ok_or_else(|| {
                    IpcError::new(
                        ErrorCode::Invalid,
                        "paste the token the team server's admin gave you",
                    )
                })?,
            None => {
                return Err(IpcError::new(
                    ErrorCode::Invalid,
                    "paste the token the team server's admin gave you",
                ))
            }
        },
        t => t.to_owned(),
    };
    let ca_file = link
        .ca_file
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty());
    let client = TeamClient::new(TeamLink {
        url: link.url.trim().to_owned(),
        team: link.team.trim().to_owned(),
        token: token.clone(),
        console: uuid::Uuid::nil(),
        ca_file: ca_file.map(Into::into),
    })
    .map_err(refused)?;
    let me = client.me().await.map_err(refused)?;
    let teams: Vec<String> = serde_json::from_value(me["teams"].clone()).unwrap_or_default();
    let team = link.team.trim();
    if !teams.iter().any(|t| t == team) {
        return Err(IpcError::new(
            ErrorCode::Refused,
            format!(
                "{} is not in team {team:?} on this server (their teams: {})",
                me["name"].as_str().unwrap_or("this token"),
                if teams.is_empty() {
                    "none".to_owned()
                } else {
                    teams.join(", ")
                }
            ),
        ));
    }
    let account = current
        .and_then(|l| l.token_ref)
        .unwrap_or_else(firebreak_engine::secrets::new_account);
    firebreak_engine::secrets::save(&account, &token)
        .await
        .map_err(|e| IpcError::new(ErrorCode::Keychain, e.to_string()))?;
    store
        .link_team(link.url.trim(), team, Some(&account), ca_file)
        .await?;
    console.restart_team_sync().await?;
    console.team_settings_now().await
}

/// Switches sync on or off; what is recorded meanwhile waits in the outbox.
#[tauri::command]
pub async fn set_team_sync(console: State<'_, Console>, enabled: bool) -> Reply<TeamSettings> {
    console.store()?.set_team_enabled(enabled).await?;
    console.restart_team_sync().await?;
    console.team_settings_now().await
}

/// The incident this console shows (for the team's presence).
#[tauri::command]
pub async fn team_viewing(console: State<'_, Console>, incident: Option<i64>) -> Reply<()> {
    // Only an incident shared with the team is named to it: the id of one that is not
    // (a demo's, an imported one) is this console's own business.
    let store = console.store()?;
    let public = match incident {
        Some(id) if store.is_shared(id).await? => store.incident(id).await?.public_id.parse().ok(),
        _ => None,
    };
    if let Some(sync) = console
        .team
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
    {
        sync.view(public);
    }
    Ok(())
}

/// Makes a refused change again on the incident as it is now.
#[tauri::command]
pub async fn redo_refused(console: State<'_, Console>, entry: i64) -> Reply<Incident> {
    let author = console.author();
    let incident = console.store()?.redo_refused(entry, &author).await?;
    if let Some(sync) = console
        .team
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
    {
        sync.poke();
    }
    Ok(incident)
}

/// Teammates' actions and runbook runs on an incident.
#[tauri::command]
pub async fn team_activity(
    console: State<'_, Console>,
    incident: i64,
) -> Reply<firebreak_store::team::TeamActivity> {
    Ok(console.store()?.team_activity(incident).await?)
}
