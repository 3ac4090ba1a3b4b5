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

use firebreak_store::ingest::{Committed, Item};
use firebreak_store::{Store, StoreError};

/// Items waiting for the writer. With hand-offs of at most 512 events, at most ~32k
/// events are in memory between the sockets and the disk.
const CHANNEL_ITEMS: usize = 64;
/// Rows the writer commits in one transaction at most.
pub const MAX_BATCH_ROWS: usize = 8_192;

/// The running engine: one writer, and a connection per watched cluster that can be
/// added, replaced or removed while it runs. Dropping it does not stop it: call `stop`.
pub struct Engine {
    store: Store,
    sink: Arc<dyn ConsoleSink>,
    writer: mpsc::Sender<Item>,
    writer_task: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    writer_shared: Arc<WriterShared>,
    writer_stop: watch::Sender<bool>,
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
        let (writer_stop, stop_rx) = watch::channel(false);
        let writer_shared = Arc::new(WriterShared::default());
        load_objectives(&store, &writer_shared).await?;
        let writer_task = tokio::spawn(writer(
            store.clone(),
            rx,
            sink.clone(),
            writer_shared.clone(),
            stop_rx,
        ));
        let engine = Engine {
            store,
            sink,
            writer: tx,
            writer_task: tokio::sync::Mutex::new(Some(writer_task)),
            writer_shared,
            writer_stop,
            connections: tokio::sync::Mutex::new(HashMap::new()),
        };
        for target in targets {
            engine.watch(target).await?;
        }
        Ok(engine)
    }

    /// Reads the services' objectives again (after they changed): services with
    /// objectives open incidents on their burn rates, not on the fixed error-rate rule.
    pub async fn objectives_changed(&self) -> Result<(), StoreError> {
        load_objectives(&self.store, &self.writer_shared).await
    }

    /// Watches a cluster from its committed cursor, replacing the connection it had (new
    /// URL or token). Events the old connection handed over and the new one receives
    /// again are dropped as duplicates by the store.
    pub async fn watch(&self, target: Target) -> Result<(), StoreError> {
        let mut connections = self.connections.lock().await;
        if let Some(old) = connections.remove(&target.cluster_id) {
            old.stop().await;
        }
        let cursor = connection::Cursor {
            sequence: self.store.cursor(target.cluster_id).await?,
            stream_id: self.store.stream_id(target.cluster_id).await?,
        };
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
        self.writer_shared
            .forget
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(cluster_id);
        self.sink.cluster_removed(cluster_id);
    }

    /// Stops the connections, lets the writer commit what it has, and waits for it.
    /// Returns within seconds even while recording is paused (a full disk, say): what
    /// is committed stays committed, the rest is fetched again from the cursor next start.
    /// Safe to call more than once (the window calls it on exit).
    pub async fn stop(&self) {
        let connections = std::mem::take(&mut *self.connections.lock().await);
        for (_, c) in connections {
            c.stop().await;
        }
        let _ = self.writer_stop.send(true);
        if let Some(task) = self.writer_task.lock().await.take() {
            let _ = task.await;
        }
    }
}

/// A jitter source per connection: a small xorshift seeded from the clock and the cluster.
pub fn jitter_source(salt: i64) -> impl FnMut() -> f64 {
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
/// Pauses between attempts while the store cannot record (disk full, I/O error, locked).
const PAUSED_RETRY: backoff::Backoff = backoff::Backoff {
    base: Duration::from_millis(250),
    cap: Duration::from_secs(5),
};

/// What the writer shares with the engine: clusters whose rule state to drop, and the
/// services with objectives.
#[derive(Default)]
struct WriterShared {
    forget: std::sync::Mutex<Vec<i64>>,
    with_objectives: rules::WithObjectives,
}

async fn load_objectives(store: &Store, shared: &WriterShared) -> Result<(), StoreError> {
    let now: std::collections::HashSet<(i64, String)> = store
        .objectives()
        .await?
        .into_iter()
        .map(|o| (o.cluster_id, o.service))
        .collect();
    *shared
        .with_objectives
        .write()
        .unwrap_or_else(|e| e.into_inner()) = now;
    Ok(())
}

async fn writer(
    store: Store,
    mut rx: mpsc::Receiver<Item>,
    sink: Arc<dyn ConsoleSink>,
    shared: Arc<WriterShared>,
    mut stop: watch::Receiver<bool>,
) {
    let mut rules = Rules::with_objectives(shared.with_objectives.clone());
    // Whether the search index may be behind the events (it is after every commit).
    let mut search_behind = true;
    loop {
        for cluster in std::mem::take(&mut *shared.forget.lock().unwrap_or_else(|e| e.into_inner()))
        {
            rules.forget_cluster(cluster);
        }
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
            tokio::select! {
                item = rx.recv() => match item {
                    Some(item) => item,
                    None => break,
                },
                _ = stop.changed() => {
                    // Stopping: the connections are stopped; commit what they handed over.
                    rx.close();
                    search_behind = false;
                    continue;
                }
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
        if commit(&store, items, &mut rules, &sink, &mut stop)
            .await
            .is_err()
        {
            // Stopping while the store could not record: what was not committed is
            // fetched again from the cursor on the next start.
            return;
        }
        search_behind = true;
    }
}

/// The engine is stopping.
struct Stopping;

/// Commits a batch; never drops a valid event. While the store cannot record for a
/// reason that is not about the data (disk full, I/O error, locked past its timeout),
/// recording is paused and retried with backoff, the sink told why; nothing is
/// quarantined for it. A batch the store refuses for its data is split until the one
/// offending item is found, and only that is quarantined, with the database's reason.
async fn commit(
    store: &Store,
    items: Vec<Item>,
    rules: &mut Rules,
    sink: &Arc<dyn ConsoleSink>,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), Stopping> {
    let mut parts = vec![items];
    let mut attempt = 0u32;
    // Why recording is paused, as last told to the sink.
    let mut paused: Option<String> = None;
    while let Some(part) = parts.pop() {
        match record_batch(store, &part, rules).await {
            Ok(done) => {
                if paused.take().is_some() {
                    sink.recording(None);
                    tracing::info!("recording resumed");
                }
                attempt = 0;
                sink.committed(&done);
            }
            Err(e) if e.is_about_data() => {
                let mut units = split_units(part);
                if units.len() > 1 {
                    let (first, second) = halves(units);
                    // A stack: the first half is taken next, so stream order is kept.
                    parts.push(second);
                    parts.push(first);
                } else if let Some(unit) = units.pop() {
                    if unit.events().is_empty() {
                        // Not an event (a quarantine row, a gap, a cursor move): there is
                        // nothing further to keep it in. Said loudly, never looped on.
                        tracing::error!(reason = %e, item = ?unit, "the store refused a stream record");
                    } else {
                        tracing::warn!(reason = %e, "the store refused an event; quarantined");
                        parts.extend(
                            to_quarantine(unit, &e.to_string())
                                .into_iter()
                                .rev()
                                .map(|i| vec![i]),
                        );
                    }
                }
            }
            Err(e) => {
                let reason = e.to_string();
                if paused.as_deref() != Some(reason.as_str()) {
                    tracing::error!(%reason, "recording paused: the store cannot write");
                    sink.recording(Some(&reason));
                    paused = Some(reason);
                }
                let delay = PAUSED_RETRY.ceiling(attempt);
                attempt = attempt.saturating_add(1);
                parts.push(part);
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.changed() => return Err(Stopping),
                }
            }
        }
    }
    Ok(())
}

/// Decides every event of a batch on a copy of the rules, commits, and only then makes
/// the copy the rules' state: a batch that did not commit changes no baseline, counter
/// or flag. The one path from decoded events to the store (the writer, tests, benchmarks).
pub async fn record_batch(
    store: &Store,
    items: &[Item],
    rules: &mut Rules,
) -> Result<Committed, StoreError> {
    let mut trial = rules.clone();
    let decisions: Vec<_> = items
        .iter()
        .flat_map(|item| {
            let cluster = match item {
                Item::Events { cluster_id, .. } => *cluster_id,
                _ => 0,
            };
            item.events()
                .iter()
                .map(move |e| (cluster, e))
                .collect::<Vec<_>>()
        })
        .map(|(cluster, e)| trial.decide(cluster, e.ty, &e.event.data))
        .collect();
    let done = store.ingest(items, &decisions).await?;
    *rules = trial;
    Ok(done)
}

/// A batch as the smallest pieces it can be split into: items, with events one by one.
fn split_units(items: Vec<Item>) -> Vec<Item> {
    let mut units = Vec::new();
    for item in items {
        match item {
            Item::Events {
                cluster_id,
                events,
                last_sequence,
            } if events.len() > 1 => {
                let n = events.len();
                for (i, e) in events.into_iter().enumerate() {
                    // The cursor moves with each event; the last carries the hand-off's.
                    let last_sequence = if i + 1 == n {
                        last_sequence
                    } else {
                        e.event.sequence
                    };
                    units.push(Item::Events {
                        cluster_id,
                        events: vec![e],
                        last_sequence,
                    });
                }
            }
            other => units.push(other),
        }
    }
    units
}

/// Two halves of a list of units, each merged back into few items.
fn halves(mut units: Vec<Item>) -> (Vec<Item>, Vec<Item>) {
    let second = units.split_off(units.len() / 2);
    (merge_units(units), merge_units(second))
}

/// Joins consecutive single-event items of one cluster again, so a half commits as few
/// statements as before the split.
fn merge_units(units: Vec<Item>) -> Vec<Item> {
    let mut out: Vec<Item> = Vec::with_capacity(units.len());
    for unit in units {
        if let (
            Some(Item::Events {
                cluster_id: a,
                events: ev,
                last_sequence: last,
            }),
            Item::Events {
                cluster_id: b,
                events,
                last_sequence,
            },
        ) = (out.last_mut(), &unit)
        {
            if *a == *b {
                ev.extend(events.iter().cloned());
                *last = (*last).max(*last_sequence);
                continue;
            }
        }
        out.push(unit);
    }
    out
}

/// An item the store refused for its data: its frames go to quarantine with the reason,
/// and the cursor still moves past them (they will not be better on a replay).
fn to_quarantine(item: Item, reason: &str) -> Vec<Item> {
    match item {
        Item::Events {
            cluster_id,
            events,
            last_sequence,
        } => {
            let mut out: Vec<Item> = events
                .into_iter()
                .map(|e| Item::Quarantine {
                    cluster_id,
                    reason: format!("the store refused this event: {reason}"),
                    sequence: Some(e.event.sequence),
                    raw: e.raw.as_bytes().to_vec(),
                })
                .collect();
            out.push(Item::Events {
                cluster_id,
                events: Vec::new(),
                last_sequence,
            });
            out
        }
        other => vec![other],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_paused_retry_backs_off_up_to_its_cap() {
        // A full disk must not be hammered, nor may the pause grow past the cap.
        assert_eq!(PAUSED_RETRY.ceiling(0), Duration::from_millis(250));
        assert_eq!(PAUSED_RETRY.ceiling(30), Duration::from_secs(5));
    }
}
