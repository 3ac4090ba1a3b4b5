//! Checkpoints of the write-ahead log, on a connection of their own.
//!
//! By default SQLite checkpoints on the connection that commits, once the log passes
//! 1,000 pages: the writer then copies pages into the database file and fsyncs it before
//! it can start its next transaction. With recording at saturation that was an eighth of
//! the writer's time. The writer connection turns that off (`wal_autocheckpoint = 0`) and
//! says when it committed; this task runs a PASSIVE checkpoint then, on its own
//! connection (so on another thread), while the writer goes on. A passive checkpoint
//! never waits for readers or the writer: it copies what it can and the next one goes on
//! from there. When the last connection closes, SQLite checkpoints what is left.

use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::ConnectOptions;
use tokio::sync::Notify;

/// At least this long between checkpoints: each copies whatever the log holds by then.
const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// A checkpoint at least this often even without a commit said (a write from a path that
/// does not call `committed`).
const MAX_INTERVAL: Duration = Duration::from_secs(2);

/// The checkpoint task of one store; stops when the last handle to it goes.
#[derive(Debug)]
pub struct Checkpointer {
    committed: Arc<Notify>,
    stop: tokio::sync::watch::Sender<bool>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Checkpointer {
    pub async fn start(options: &SqliteConnectOptions) -> sqlx::Result<Checkpointer> {
        let mut conn = options.connect().await?;
        let committed = Arc::new(Notify::new());
        let notified = committed.clone();
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::timeout(MAX_INTERVAL, notified.notified()) => {}
                    _ = stopped.changed() => break,
                }
                if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                    .execute(&mut conn)
                    .await
                {
                    // The writer's next commit may still succeed (a transient lock); a
                    // log that keeps growing is visible in the data dir.
                    tracing::warn!(error = %e, "checkpoint of the write-ahead log failed");
                }
                tokio::select! {
                    _ = tokio::time::sleep(MIN_INTERVAL) => {}
                    _ = stopped.changed() => break,
                }
            }
            // Closed before the store's other connections, so that the last of those
            // checkpoints what is left and removes the log.
            let _ = sqlx::Connection::close(conn).await;
        });
        Ok(Checkpointer {
            committed,
            stop,
            task: std::sync::Mutex::new(Some(task)),
        })
    }

    /// The writer committed: a checkpoint is due.
    pub fn committed(&self) {
        self.committed.notify_one();
    }

    /// Stops the task and closes its connection.
    pub async fn stop(&self) {
        let _ = self.stop.send(true);
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
    }
}
