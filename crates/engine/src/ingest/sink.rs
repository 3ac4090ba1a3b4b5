//! Where the ingest engine reports to: the window (over a Tauri channel), the terminal
//! (`firebreak watch`), or a test (a Vec). The engine never knows which.

use serde::Serialize;
use ts_rs::TS;

use firebreak_store::incident::Incident;
pub use firebreak_store::ingest::Committed;

/// A cluster stream's state, as the status bar shows it.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(
    tag = "state",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum StreamState {
    Connecting,
    /// Caught up with the server; `head` is the newest sequence committed.
    Live {
        head: i64,
    },
    /// Replaying what was missed: `behind` events still to come.
    CatchingUp {
        behind: i64,
    },
    /// Waiting before the next attempt.
    Reconnecting {
        attempt: u32,
        retry_at_ms: i64,
        reason: String,
    },
    /// Not retrying until something changes (a wrong token, say).
    Failed {
        reason: String,
    },
}

/// A cluster's state with the cluster it belongs to and since when.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    pub cluster_id: i64,
    pub name: String,
    pub since_ms: i64,
    pub stream: StreamState,
}

/// One message to the page: the state of every cluster and what changed since the last.
#[derive(Debug, Clone, Default, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ConsoleUpdate {
    pub clusters: Vec<ClusterStatus>,
    /// Incidents opened since the last update.
    pub opened: Vec<Incident>,
    /// Incidents whose timeline or fields changed.
    pub updated: Vec<i64>,
    /// Events committed since the last update.
    pub events: u32,
    pub quarantined: u32,
    /// The store's newest event (`events.seq`): the live feed fetches up to it.
    pub head_seq: i64,
    /// Why recording is paused (the store cannot write: disk full, I/O error), if it is.
    pub recording_paused: Option<String>,
    /// Where team sync stands, when the console is linked to a team.
    pub team: Option<crate::team::sync::TeamStatus>,
}

pub trait ConsoleSink: Send + Sync + 'static {
    fn cluster_status(&self, status: &ClusterStatus);
    fn committed(&self, batch: &Committed);
    /// A cluster is no longer watched: forget its state.
    fn cluster_removed(&self, _cluster_id: i64) {}
    /// Recording is paused because the store cannot write (`Some(reason)`), or resumed.
    fn recording(&self, _paused: Option<&str>) {}
}

/// A sink that keeps everything, for tests.
#[derive(Default)]
pub struct Recorder {
    pub statuses: std::sync::Mutex<Vec<ClusterStatus>>,
    pub batches: std::sync::Mutex<Vec<Committed>>,
    /// Every pause (`Some(reason)`) and resume (`None`) of recording, in order.
    pub recording: std::sync::Mutex<Vec<Option<String>>>,
}

impl ConsoleSink for Recorder {
    fn cluster_status(&self, status: &ClusterStatus) {
        self.statuses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(status.clone());
    }
    fn committed(&self, batch: &Committed) {
        self.batches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(batch.clone());
    }
    fn recording(&self, paused: Option<&str>) {
        self.recording
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(paused.map(str::to_owned));
    }
}

/// The latest stream state of every watched cluster, for whoever must know whether what
/// the store holds is current (the action desk warns before acting on a stale stream).
#[derive(Default)]
pub struct StatusBoard {
    states: std::sync::Mutex<std::collections::HashMap<i64, StreamState>>,
}

impl StatusBoard {
    pub fn state(&self, cluster_id: i64) -> Option<StreamState> {
        self.states
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&cluster_id)
            .cloned()
    }
}

impl ConsoleSink for StatusBoard {
    fn cluster_status(&self, status: &ClusterStatus) {
        self.states
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(status.cluster_id, status.stream.clone());
    }
    fn committed(&self, _: &Committed) {}
    fn cluster_removed(&self, cluster_id: i64) {
        self.states
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&cluster_id);
    }
}

/// Several sinks as one.
pub struct Tee(pub Vec<std::sync::Arc<dyn ConsoleSink>>);

impl ConsoleSink for Tee {
    fn cluster_status(&self, status: &ClusterStatus) {
        self.0.iter().for_each(|s| s.cluster_status(status));
    }
    fn committed(&self, batch: &Committed) {
        self.0.iter().for_each(|s| s.committed(batch));
    }
    fn cluster_removed(&self, cluster_id: i64) {
        self.0.iter().for_each(|s| s.cluster_removed(cluster_id));
    }
    fn recording(&self, paused: Option<&str>) {
        self.0.iter().for_each(|s| s.recording(paused));
    }
}
