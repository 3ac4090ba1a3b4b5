//! Every command the page can call, in one place. Each is also listed in
//! `src-tauri/build.rs` (so it gets a permission) and granted, one by one, in
//! `src-tauri/capabilities/main.json`.

use tauri::State;

use super::Console;
use crate::incident::{Incident, IncidentStatus, NewIncident, TimelineEntry};
use crate::ipc::{AppInfo, IpcError};
use crate::store::Cluster;

use crate::ingest::sink::ConsoleUpdate;

type Reply<T> = Result<T, IpcError>;

pub fn handler<R: tauri::Runtime>() -> impl Fn(tauri::ipc::Invoke<R>) -> bool + Send + Sync + 'static
{
    tauri::generate_handler![
        app_info,
        list_clusters,
        list_incidents,
        get_incident,
        incident_timeline,
        open_incident,
        change_incident_status,
        add_note,
        subscribe,
    ]
}

#[tauri::command]
fn app_info(console: State<'_, Console>) -> AppInfo {
    console.info.clone()
}

#[tauri::command]
async fn list_clusters(console: State<'_, Console>) -> Reply<Vec<Cluster>> {
    Ok(console.store()?.clusters().await?)
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
    let author = console.info.author.clone();
    Ok(console.store()?.open_incident(&incident, &author).await?)
}

#[tauri::command]
async fn change_incident_status(
    console: State<'_, Console>,
    id: i64,
    to: IncidentStatus,
) -> Reply<Incident> {
    let author = console.info.author.clone();
    Ok(console.store()?.change_status(id, to, &author).await?)
}

#[tauri::command]
async fn add_note(console: State<'_, Console>, id: i64, text: String) -> Reply<TimelineEntry> {
    let author = console.info.author.clone();
    Ok(console.store()?.add_note(id, &text, &author).await?)
}

/// The page's live feed: cluster states and incident changes, batched.
#[tauri::command]
fn subscribe(console: State<'_, Console>, channel: tauri::ipc::Channel<ConsoleUpdate>) {
    console.live.subscribe(channel);
}
