//! Clusters Firebreak watches: a name and two URLs. The token is not stored here: the
//! cluster only names the OS keychain account that holds it (`token_ref`).

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
    /// The built-in simulator of demo mode (watched only in demo mode).
    pub demo: bool,
    /// The keychain account of its token, when one was saved. Not a secret, but the page
    /// has no use for it.
    #[serde(skip)]
    #[ts(skip)]
    pub token_ref: Option<String>,
    /// A CA certificate file (PEM) trusted for this cluster besides the OS store.
    pub ca_file: Option<String>,
}

/// What an engineer enters to add or edit a cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct NewCluster {
    pub name: String,
    pub events_url: String,
    pub actions_url: String,
    /// A CA certificate file (PEM) to trust for this cluster besides the OS store: for a
    /// gateway behind a company's own certificate authority.
    #[serde(default)]
    #[ts(optional)]
    pub ca_file: Option<String>,
}

type ClusterRow = (
    i64,
    String,
    String,
    String,
    i64,
    bool,
    Option<String>,
    Option<String>,
);

fn from_row(
    (id, name, events_url, actions_url, created_ms, demo, token_ref, ca_file): ClusterRow,
) -> Cluster {
    Cluster {
        id,
        name,
        events_url,
        actions_url,
        created_ms,
        demo,
        token_ref,
        ca_file,
    }
}

impl NewCluster {
    /// Trims the fields and checks them, with a message that says what to fix.
    pub fn validated(&self) -> Result<NewCluster> {
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 64 {
            return Err(StoreError::Invalid(
                "a cluster name is 1 to 64 characters".into(),
            ));
        }
        let events_url = self.events_url.trim();
        check_url(events_url, &["ws", "wss"], "events URL")?;
        let actions_url = self.actions_url.trim();
        check_url(actions_url, &["http", "https"], "actions URL")?;
        let ca_file = match self.ca_file.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(path) => {
                if !std::path::Path::new(path).is_absolute() {
                    return Err(StoreError::Invalid(format!(
                        "the CA file must be an absolute path (got {path:?})"
                    )));
                }
                firebreak_common::certs::read_ca_file(std::path::Path::new(path))
                    .map_err(StoreError::Invalid)?;
                Some(path.to_owned())
            }
        };
        Ok(NewCluster {
            name: name.to_owned(),
            events_url: events_url.to_owned(),
            actions_url: actions_url.to_owned(),
            ca_file,
        })
    }
}

fn check_url(url: &str, schemes: &[&str], what: &str) -> Result<()> {
    let wanted = schemes.join(":// or ") + "://";
    let parsed = url::Url::parse(url)
        .map_err(|e| StoreError::Invalid(format!("the {what} {url:?} is not a URL ({e})")))?;
    if !schemes.contains(&parsed.scheme()) {
        return Err(StoreError::Invalid(format!(
            "the {what} must start with {wanted} (got {url:?})"
        )));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(StoreError::Invalid(format!(
            "the {what} {url:?} has no host"
        )));
    }
    Ok(())
}

impl Store {
    /// Adds a cluster. A name in use by a watched cluster is refused; the name of a removed
    /// one brings it back with the new URLs (its recorded history continues).
    pub async fn add_cluster(&self, new: &NewCluster) -> Result<Cluster> {
        let new = new.validated()?;
        let mut tx = self.begin_write().await?;
        let existing: Option<(i64, Option<i64>)> =
            sqlx::query_as("SELECT id, removed_ms FROM clusters WHERE name = ?")
                .bind(&new.name)
                .fetch_optional(&mut *tx)
                .await?;
        let row: ClusterRow = match existing {
            Some((_, None)) => {
                return Err(StoreError::Invalid(format!(
                    "a cluster named {:?} is already watched",
                    new.name
                )))
            }
            Some((id, Some(_))) => {
                sqlx::query_as(
                    "UPDATE clusters SET events_url = ?, actions_url = ?, ca_file = ?, removed_ms = NULL \
                     WHERE id = ? RETURNING id, name, events_url, actions_url, created_ms, demo, token_ref, ca_file",
                )
                .bind(&new.events_url)
                .bind(&new.actions_url)
                .bind(&new.ca_file)
                .bind(id)
                .fetch_one(&mut *tx)
                .await?
            }
            None => {
                sqlx::query_as(
                    "INSERT INTO clusters (name, events_url, actions_url, created_ms, ca_file) VALUES (?, ?, ?, ?, ?) \
                     RETURNING id, name, events_url, actions_url, created_ms, demo, token_ref, ca_file",
                )
                .bind(&new.name)
                .bind(&new.events_url)
                .bind(&new.actions_url)
                .bind(now_ms())
                .bind(&new.ca_file)
                .fetch_one(&mut *tx)
                .await?
            }
        };
        tx.commit().await?;
        Ok(from_row(row))
    }

    /// The cluster of this name, added or with its URLs brought up to date (`watch`, tests).
    pub async fn ensure_cluster(&self, new: &NewCluster) -> Result<Cluster> {
        self.write_cluster(
            new,
            "INSERT INTO clusters (name, events_url, actions_url, created_ms, ca_file) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (name) DO UPDATE SET events_url = excluded.events_url, \
             actions_url = excluded.actions_url, ca_file = excluded.ca_file, removed_ms = NULL \
             RETURNING id, name, events_url, actions_url, created_ms, demo, token_ref, ca_file",
        )
        .await
    }

    /// The demo cluster, pointed at this run's simulator.
    pub async fn ensure_demo_cluster(&self, new: &NewCluster) -> Result<Cluster> {
        self.write_cluster(
            new,
            "INSERT INTO clusters (name, events_url, actions_url, created_ms, ca_file, demo) VALUES (?, ?, ?, ?, ?, 1) \
             ON CONFLICT (name) DO UPDATE SET events_url = excluded.events_url, \
             actions_url = excluded.actions_url, ca_file = excluded.ca_file, removed_ms = NULL, demo = 1 \
             RETURNING id, name, events_url, actions_url, created_ms, demo, token_ref, ca_file",
        )
        .await
    }

    /// Validates and writes a cluster with `sql` (an INSERT of the five fields, RETURNING the row).
    async fn write_cluster(&self, new: &NewCluster, sql: &'static str) -> Result<Cluster> {
        let new = new.validated()?;
        let mut tx = self.begin_write().await?;
        let row: ClusterRow = sqlx::query_as(sql)
            .bind(&new.name)
            .bind(&new.events_url)
            .bind(&new.actions_url)
            .bind(now_ms())
            .bind(&new.ca_file)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(from_row(row))
    }

    /// Renames a watched cluster or changes its URLs.
    pub async fn update_cluster(&self, id: i64, new: &NewCluster) -> Result<Cluster> {
        let new = new.validated()?;
        let mut tx = self.begin_write().await?;
        let taken: Option<(i64,)> =
            sqlx::query_as("SELECT id FROM clusters WHERE name = ? AND id != ?")
                .bind(&new.name)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        if taken.is_some() {
            return Err(StoreError::Invalid(format!(
                "the name {:?} belongs to another cluster",
                new.name
            )));
        }
        let row: Option<ClusterRow> = sqlx::query_as(
            "UPDATE clusters SET name = ?, events_url = ?, actions_url = ?, ca_file = ? \
             WHERE id = ? AND removed_ms IS NULL \
             RETURNING id, name, events_url, actions_url, created_ms, demo, token_ref, ca_file",
        )
        .bind(&new.name)
        .bind(&new.events_url)
        .bind(&new.actions_url)
        .bind(&new.ca_file)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let row = row.ok_or_else(|| StoreError::NotFound {
            what: format!("cluster {id}"),
        })?;
        tx.commit().await?;
        Ok(from_row(row))
    }

    /// Records (or clears) the keychain account that holds a cluster's token.
    pub async fn set_token_ref(&self, id: i64, token_ref: Option<&str>) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE clusters SET token_ref = ? WHERE id = ?")
            .bind(token_ref)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stops listing a cluster as watched. Its events, incidents and cursor stay.
    /// Returns the cluster as it was, so its token can be removed from the keychain.
    pub async fn remove_cluster(&self, id: i64) -> Result<Cluster> {
        let before = self.cluster(id).await?;
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE clusters SET removed_ms = ?, token_ref = NULL WHERE id = ?")
            .bind(now_ms())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(before)
    }

    /// A watched cluster.
    pub async fn cluster(&self, id: i64) -> Result<Cluster> {
        let sql = "SELECT id, name, events_url, actions_url, created_ms, demo, token_ref, ca_file \
                   FROM clusters WHERE id = ? AND removed_ms IS NULL";
        let row: Option<ClusterRow> = sqlx::query_as(sql)
            .bind(id)
            .fetch_optional(self.reader())
            .await?;
        row.map(from_row).ok_or_else(|| StoreError::NotFound {
            what: format!("cluster {id}"),
        })
    }

    /// Every watched cluster, by name.
    pub async fn clusters(&self) -> Result<Vec<Cluster>> {
        let rows: Vec<ClusterRow> = sqlx::query_as(
            "SELECT id, name, events_url, actions_url, created_ms, demo, token_ref, ca_file \
             FROM clusters WHERE removed_ms IS NULL ORDER BY name",
        )
        .fetch_all(self.reader())
        .await?;
        Ok(rows.into_iter().map(from_row).collect())
    }
}
