//! Live ingest: one connection task per cluster feeds one writer task through a bounded
//! channel; the writer commits batches (events, cursor, quarantine, gaps and incident
//! changes in one transaction) and tells the sink what changed.
//!
//! ```text
//!  cluster WS ─▶ connection (decode, order, dedup) ─┐ bounded mpsc   ┌─▶ SQLite (one tx per batch)
//!  cluster WS ─▶ connection ────────────────────────┼──────────────▶ writer ─┤
//!                                                    │ (backpressure)  └─▶ ConsoleSink (window / terminal)
//! ```

pub mod backoff;
pub mod connection;
pub mod rules;
pub mod sink;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

pub use connection::Target;
use rules::Rules;
use sink::ConsoleSink;

use crate::store::ingest::Item;
use crate::store::{Store, StoreError};

/// Items waiting for the writer. With hand-offs of at most 512 events, at most ~32k
/// events are in memory between the sockets and the disk.
const CHANNEL_ITEMS: usize = 64;
/// Rows the writer commits in one transaction at most.
const MAX_BATCH_ROWS: usize = 8_192;

/// The running engine: one writer, and a connection per watched cluster that can be
/// added, replaced or removed while it runs. Dropping it does not stop it: call `stop`.
pub struct Engine {
    store: Store,
    sink: Arc<dyn ConsoleSink>,
    writer: mpsc::Sender<Item>,
    writer_task: tokio::task::JoinHandle<()>,
    connections: tokio::sync::Mutex<HashMap<i64, Connection>>,
}

struct Connection {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Connection {
    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

impl Engine {
    /// Starts the writer and a connection per target, each resuming from its committed cursor.
    pub async fn start(
        store: Store,
        targets: Vec<Target>,
        sink: Arc<dyn ConsoleSink>,
    ) -> Result<Engine, StoreError> {
        let (tx, rx) = mpsc::channel(CHANNEL_ITEMS);
        let writer_task = tokio::spawn(writer(store.clone(), rx, sink.clone()));
        let engine = Engine {
            store,
            sink,
            writer: tx,
            writer_task,
            connections: tokio::sync::Mutex::new(HashMap::new()),
        };
        for target in targets {
            engine.watch(target).await?;
        }
        Ok(engine)
    }

    /// Watches a cluster from its committed cursor, replacing the connection it had (new
    /// URL or token). Events the old connection handed over and the new one receives
    /// again are dropped as duplicates by the store.
    pub async fn watch(&self, target: Target) -> Result<(), StoreError> {
        let mut connections = self.connections.lock().await;
        if let Some(old) = connections.remove(&target.cluster_id) {
            old.stop().await;
        }
        let cursor = self.store.cursor(target.cluster_id).await?;
        let (stop, stop_rx) = watch::channel(false);
        let cluster_id = target.cluster_id;
        let task = tokio::spawn(connection::run(
            target,
            cursor,
            self.writer.clone(),
            self.sink.clone(),
            backoff::Backoff::default(),
            stop_rx,
        ));
        connections.insert(cluster_id, Connection { stop, task });
        Ok(())
    }

    /// Stops watching a cluster; what it recorded stays.
    pub async fn unwatch(&self, cluster_id: i64) {
        let old = self.connections.lock().await.remove(&cluster_id);
        if let Some(old) = old {
            old.stop().await;
        }
        self.sink.cluster_removed(cluster_id);
    }

    /// Stops the connections, lets the writer commit what it has, and waits for it.
    pub async fn stop(self) {
        let connections = std::mem::take(&mut *self.connections.lock().await);
        for (_, c) in connections {
            c.stop().await;
        }
        drop(self.writer);
        let _ = self.writer_task.await;
    }
}

/// A jitter source per connection: a small xorshift seeded from the clock and the cluster.
pub(crate) fn jitter_source(salt: i64) -> impl FnMut() -> f64 {
    let mut x = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        ^ (salt as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
        | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Search index rows written at once when the writer is idle: small enough that a batch
/// arriving meanwhile waits only a few milliseconds.
const SEARCH_CHUNK: i64 = 2_000;

async fn writer(store: Store, mut rx: mpsc::Receiver<Item>, sink: Arc<dyn ConsoleSink>) {
    let mut rules = Rules::default();
    // Whether the search index may be behind the events (it is after every commit).
    let mut search_behind = true;
    loop {
        let first = if search_behind {
            match rx.try_recv() {
                Ok(item) => item,
                Err(mpsc::error::TryRecvError::Empty) => {
                    // Nothing to record: bring the search index forward a chunk.
                    search_behind = match store.index_for_search(SEARCH_CHUNK).await {
                        Ok(done) => done == SEARCH_CHUNK as usize,
                        Err(e) => {
                            tracing::warn!(error = %e, "search indexing paused");
                            false
                        }
                    };
                    continue;
                }
                Err(mpsc::error::TryRecvError::Disconnected) => break,
            }
        } else {
            match rx.recv().await {
                Some(item) => item,
                None => break,
            }
        };
        let mut rows = first.rows();
        let mut items = vec![first];
        while rows < MAX_BATCH_ROWS {
            match rx.try_recv() {
                Ok(item) => {
                    rows += item.rows();
                    items.push(item);
                }
                Err(_) => break,
            }
        }
        commit(&store, items, &mut rules, &sink).await;
        search_behind = true;
    }
}

/// Commits a batch; never drops it. A store that is unavailable is retried with a
/// growing pause; a batch the store refuses as a whole is retried item by item, and an
/// item it still refuses is kept in quarantine with the reason.
async fn commit(store: &Store, items: Vec<Item>, rules: &mut Rules, sink: &Arc<dyn ConsoleSink>) {
    let mut pause = Duration::from_millis(100);
    loop {
        match store.ingest(&items, rules).await {
            Ok(done) => {
                sink.committed(&done);
                return;
            }
            Err(StoreError::Constraint(reason)) | Err(StoreError::Invalid(reason))
                if items.len() > 1 || !is_quarantine(&items) =>
            {
                tracing::warn!(%reason, "batch refused; committing item by item");
                for item in items {
                    match store.ingest(std::slice::from_ref(&item), rules).await {
                        Ok(done) => sink.committed(&done),
                        Err(e) => {
                            let kept = to_quarantine(item, &e.to_string());
                            if let Ok(done) = store.ingest(&kept, rules).await {
                                sink.committed(&done);
                            }
                        }
                    }
                }
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot commit ingest batch; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
    }
}

fn is_quarantine(items: &[Item]) -> bool {
    items.iter().all(|i| matches!(i, Item::Quarantine { .. }))
}

fn to_quarantine(item: Item, reason: &str) -> Vec<Item> {
    match item {
        Item::Events {
            cluster_id, events, ..
        } => events
            .into_iter()
            .map(|e| Item::Quarantine {
                cluster_id,
                reason: format!("the store refused this event: {reason}"),
                raw: e.raw.into_bytes(),
            })
            .collect(),
        other => vec![other],
    }
}
