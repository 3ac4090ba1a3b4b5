//! Every command the page can call, in one place. Each is also listed in
//! `src-tauri/build.rs` (so it gets a permission) and granted, one by one, in
//! `src-tauri/capabilities/main.json`.

use tauri::State;

use super::Console;
use crate::incident::{Incident, IncidentStatus, NewIncident, Severity, TimelineEntry};
use crate::ipc::{AppInfo, ErrorCode, IpcError};
use crate::store::feed::{Diagnostics, FeedFilter, FeedPage, FeedPageRequest, RawEvent};
use crate::store::NewCluster;
use crate::watchlist::{TokenChange, WatchedCluster};

use crate::ingest::sink::ConsoleUpdate;

type Reply<T> = Result<T, IpcError>;

pub fn handler<R: tauri::Runtime>() -> impl Fn(tauri::ipc::Invoke<R>) -> bool + Send + Sync + 'static
{
    tauri::generate_handler![
        app_info,
        list_clusters,
        add_cluster,
        update_cluster,
        remove_cluster,
        event_feed,
        raw_event,
        diagnostics,
        list_incidents,
        get_incident,
        incident_timeline,
        open_incident,
        change_incident_status,
        add_note,
        change_incident_severity,
        set_commander,
        set_author,
        subscribe,
    ]
}

#[tauri::command]
fn app_info(console: State<'_, Console>) -> AppInfo {
    AppInfo {
        author: console.author(),
        ..console.info.clone()
    }
}

#[tauri::command]
async fn list_clusters(console: State<'_, Console>) -> Reply<Vec<WatchedCluster>> {
    Ok(console.watchlist()?.list().await?)
}

/// Adds a cluster and starts watching it; the token goes to the OS keychain.
#[tauri::command]
async fn add_cluster(
    console: State<'_, Console>,
    cluster: NewCluster,
    token: Option<String>,
) -> Reply<WatchedCluster> {
    Ok(console.watchlist()?.add(&cluster, token.as_deref()).await?)
}

#[tauri::command]
async fn update_cluster(
    console: State<'_, Console>,
    id: i64,
    cluster: NewCluster,
    token: TokenChange,
) -> Reply<WatchedCluster> {
    Ok(console.watchlist()?.update(id, &cluster, &token).await?)
}

/// Stops watching a cluster; its recorded events and incidents stay.
#[tauri::command]
async fn remove_cluster(console: State<'_, Console>, id: i64) -> Reply<()> {
    Ok(console.watchlist()?.remove(id).await?)
}

#[tauri::command]
async fn event_feed(
    console: State<'_, Console>,
    filter: FeedFilter,
    page: FeedPageRequest,
) -> Reply<FeedPage> {
    Ok(console.store()?.feed(&filter, page).await?)
}

#[tauri::command]
async fn raw_event(console: State<'_, Console>, seq: i64) -> Reply<RawEvent> {
    Ok(console.store()?.raw_event(seq).await?)
}

#[tauri::command]
async fn diagnostics(console: State<'_, Console>) -> Reply<Diagnostics> {
    Ok(console.store()?.diagnostics().await?)
}

#[tauri::command]
async fn list_incidents(console: State<'_, Console>) -> Reply<Vec<Incident>> {
    Ok(console.store()?.incidents().await?)
}

#[tauri::command]
async fn get_incident(console: State<'_, Console>, id: i64) -> Reply<Incident> {
    Ok(console.store()?.incident(id).await?)
}

#[tauri::command]
async fn incident_timeline(
    console: State<'_, Console>,
    id: i64,
    after_at: Option<i64>,
    after_id: Option<i64>,
    limit: i64,
) -> Reply<Vec<TimelineEntry>> {
    let after = after_at.zip(after_id);
    Ok(console.store()?.timeline(id, after, limit).await?)
}

#[tauri::command]
async fn open_incident(console: State<'_, Console>, incident: NewIncident) -> Reply<Incident> {
    let author = console.author();
    Ok(console.store()?.open_incident(&incident, &author).await?)
}

#[tauri::command]
async fn change_incident_status(
    console: State<'_, Console>,
    id: i64,
    to: IncidentStatus,
) -> Reply<Incident> {
    let author = console.author();
    Ok(console.store()?.change_status(id, to, &author).await?)
}

#[tauri::command]
async fn add_note(console: State<'_, Console>, id: i64, text: String) -> Reply<TimelineEntry> {
    let author = console.author();
    Ok(console.store()?.add_note(id, &text, &author).await?)
}

/// The page's live feed: cluster states and incident changes, batched.
#[tauri::command]
fn subscribe(console: State<'_, Console>, channel: tauri::ipc::Channel<ConsoleUpdate>) {
    console.live.subscribe(channel);
}

#[tauri::command]
async fn change_incident_severity(
    console: State<'_, Console>,
    id: i64,
    to: Severity,
) -> Reply<Incident> {
    let author = console.author();
    Ok(console.store()?.change_severity(id, to, &author).await?)
}

/// `commander`: the new commander (this user's own name to take command), or null to step down.
#[tauri::command]
async fn set_commander(
    console: State<'_, Console>,
    id: i64,
    commander: Option<String>,
) -> Reply<Incident> {
    let author = console.author();
    Ok(console
        .store()?
        .set_commander(id, commander.as_deref(), &author)
        .await?)
}

/// Changes who this user's changes are recorded as (kept in settings).
#[tauri::command]
async fn set_author(console: State<'_, Console>, name: String) -> Reply<String> {
    let name = name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(IpcError::new(
            ErrorCode::Invalid,
            "an author name is 1 to 100 characters",
        ));
    }
    console.store()?.set_setting("author", &name).await?;
    *console.author.lock().unwrap_or_else(|e| e.into_inner()) = name.clone();
    Ok(name)
}
