//! Clusters Firebreak watches: a name and two URLs. The token is not stored here.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use super::{now_ms, Result, Store, StoreError};

/// A cluster as the console shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Cluster {
    pub id: i64,
    pub name: String,
    pub events_url: String,
    pub actions_url: String,
    pub created_ms: i64,
}

/// What an engineer enters to add a cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct NewCluster {
    pub name: String,
    pub events_url: String,
    pub actions_url: String,
}

type ClusterRow = (i64, String, String, String, i64);

fn from_row((id, name, events_url, actions_url, created_ms): ClusterRow) -> Cluster {
    Cluster {
        id,
        name,
        events_url,
        actions_url,
        created_ms,
    }
}

impl Store {
    /// Adds a cluster; a name already in use is refused.
    pub async fn add_cluster(&self, new: &NewCluster) -> Result<Cluster> {
        self.write_cluster(
            new,
            "INSERT INTO clusters (name, events_url, actions_url, created_ms) VALUES (?, ?, ?, ?) \
             RETURNING id, name, events_url, actions_url, created_ms",
        )
        .await
    }

    /// The cluster of this name, added or with its URLs brought up to date.
    pub async fn ensure_cluster(&self, new: &NewCluster) -> Result<Cluster> {
        self.write_cluster(
            new,
            "INSERT INTO clusters (name, events_url, actions_url, created_ms) VALUES (?, ?, ?, ?) \
             ON CONFLICT (name) DO UPDATE SET events_url = excluded.events_url, actions_url = excluded.actions_url \
             RETURNING id, name, events_url, actions_url, created_ms",
        )
        .await
    }

    /// Validates and writes a cluster with `sql` (an INSERT of the four fields, RETURNING the row).
    async fn write_cluster(&self, new: &NewCluster, sql: &'static str) -> Result<Cluster> {
        let name = new.name.trim();
        if name.is_empty() {
            return Err(StoreError::Invalid("a cluster needs a name".into()));
        }
        let mut tx = self.begin_write().await?;
        let row: ClusterRow = sqlx::query_as(sql)
            .bind(name)
            .bind(new.events_url.trim())
            .bind(new.actions_url.trim())
            .bind(now_ms())
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(from_row(row))
    }

    pub async fn clusters(&self) -> Result<Vec<Cluster>> {
        let rows: Vec<ClusterRow> = sqlx::query_as(
            "SELECT id, name, events_url, actions_url, created_ms FROM clusters ORDER BY name",
        )
        .fetch_all(self.reader())
        .await?;
        Ok(rows.into_iter().map(from_row).collect())
    }
}
