//! The engine's sink for the window: keeps the latest state of every cluster, gathers
//! what changed, and sends it to the page in one message every `FLUSH_EVERY` through a
//! Tauri channel (never one IPC message per event). Opened incidents also raise a
//! desktop notification.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tauri::ipc::Channel;
use tauri::{AppHandle, Runtime};
use tauri_plugin_notification::NotificationExt;

use firebreak_engine::ingest::sink::{ClusterStatus, Committed, ConsoleSink, ConsoleUpdate};
use firebreak_store::incident::Incident;

const FLUSH_EVERY: Duration = Duration::from_millis(250);

#[derive(Default)]
struct Pending {
    clusters: BTreeMap<i64, ClusterStatus>,
    opened: Vec<Incident>,
    updated: Vec<i64>,
    events: u32,
    quarantined: u32,
    head_seq: i64,
    recording_paused: Option<String>,
    team: Option<firebreak_engine::team::sync::TeamStatus>,
    dirty: bool,
}

#[derive(Default)]
pub struct WindowSink {
    pending: Mutex<Pending>,
    channel: Mutex<Option<Channel<ConsoleUpdate>>>,
}

impl WindowSink {
    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The page subscribes (again, after a reload): it gets the full state at once.
    pub fn subscribe(&self, channel: Channel<ConsoleUpdate>) {
        *self.channel.lock().unwrap_or_else(|e| e.into_inner()) = Some(channel);
        self.pending().dirty = true;
    }

    /// Team sync's state changed (or the console was unlinked: `None`).
    pub fn team_status(&self, status: Option<firebreak_engine::team::sync::TeamStatus>) {
        let mut p = self.pending();
        p.team = status;
        p.dirty = true;
    }

    /// Sends what gathered, on a timer, until the app ends.
    pub fn start_flushing<R: Runtime>(self: Arc<Self>, app: AppHandle<R>) {
        tauri::async_runtime::spawn(async move {
            let mut tick = tokio::time::interval(FLUSH_EVERY);
            loop {
                tick.tick().await;
                let update = {
                    let mut p = self.pending();
                    if !p.dirty {
                        continue;
                    }
                    p.dirty = false;
                    let mut updated = std::mem::take(&mut p.updated);
                    updated.sort_unstable();
                    updated.dedup();
                    ConsoleUpdate {
                        clusters: p.clusters.values().cloned().collect(),
                        opened: std::mem::take(&mut p.opened),
                        updated,
                        events: std::mem::take(&mut p.events),
                        quarantined: std::mem::take(&mut p.quarantined),
                        head_seq: p.head_seq,
                        recording_paused: p.recording_paused.clone(),
                        team: p.team.clone(),
                    }
                };
                for incident in &update.opened {
                    let body = format!(
                        "[{}] {}: {}",
                        incident.severity.as_str(),
                        incident.service.as_deref().unwrap_or("-"),
                        incident.title
                    );
                    if let Err(e) = app
                        .notification()
                        .builder()
                        .title("Incident opened")
                        .body(super::notification_text(&body))
                        .show()
                    {
                        tracing::debug!(error = %e, "desktop notification not shown");
                    }
                }
                let channel = self
                    .channel
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                if let Some(channel) = channel {
                    if channel.send(update).is_err() {
                        tracing::debug!("the page is gone; waiting for it to subscribe again");
                    }
                }
            }
        });
    }
}

impl ConsoleSink for WindowSink {
    fn cluster_status(&self, status: &ClusterStatus) {
        let mut p = self.pending();
        p.clusters.insert(status.cluster_id, status.clone());
        p.dirty = true;
    }

    fn committed(&self, batch: &Committed) {
        let mut p = self.pending();
        p.events += batch.events;
        p.quarantined += batch.quarantined;
        p.opened.extend(batch.opened.iter().cloned());
        p.updated.extend(batch.opened.iter().map(|i| i.id));
        p.updated.extend(batch.updated.iter().copied());
        p.head_seq = p.head_seq.max(batch.head_seq);
        p.dirty = true;
    }

    fn cluster_removed(&self, cluster_id: i64) {
        let mut p = self.pending();
        p.clusters.remove(&cluster_id);
        p.dirty = true;
    }

    fn recording(&self, paused: Option<&str>) {
        let mut p = self.pending();
        p.recording_paused = paused.map(str::to_owned);
        p.dirty = true;
    }
}
