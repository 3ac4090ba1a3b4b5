//! The clusters the console watches, as the engineer manages them: added, edited and
//! removed in the store, their tokens in the OS keychain, their connections in the
//! running engine. The window's cluster settings call this and nothing else.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::ingest::{Engine, Target};
use crate::secrets;
use firebreak_store::{Cluster, NewCluster, Store, StoreError};

/// A watched cluster with what the settings list shows of its token.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct WatchedCluster {
    #[serde(flatten)]
    #[ts(flatten)]
    pub cluster: Cluster,
    /// A token is saved in the keychain (the token itself is never sent back to the page).
    pub has_token: bool,
}

/// What to do with a cluster's token when it is saved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(tag = "change", content = "token", rename_all = "snake_case")]
pub enum TokenChange {
    Keep,
    Set(String),
    Remove,
}

#[derive(Debug, thiserror::Error)]
pub enum WatchlistError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Keychain(#[from] secrets::KeychainError),
}

type Result<T> = std::result::Result<T, WatchlistError>;

/// The token a connection uses: the keychain's, or none (a failed lookup is logged, and
/// the server's refusal then says what is missing).
pub async fn token_of(cluster: &Cluster) -> Option<String> {
    let account = cluster.token_ref.as_deref()?;
    match secrets::load(account).await {
        Ok(token) => token,
        Err(e) => {
            tracing::warn!(cluster = %cluster.name, error = %e, "cannot read the cluster's token");
            None
        }
    }
}

/// Refuses URLs a token would travel to in cleartext (see `secrets::cleartext_refusal`).
fn refuse_cleartext(cluster: &NewCluster) -> Result<()> {
    for url in [&cluster.events_url, &cluster.actions_url] {
        if let Some(why) = secrets::cleartext_refusal(url) {
            return Err(StoreError::Invalid(why).into());
        }
    }
    Ok(())
}

pub struct Watchlist {
    store: Store,
    engine: Arc<Engine>,
}

impl Watchlist {
    pub fn new(store: Store, engine: Arc<Engine>) -> Self {
        Watchlist { store, engine }
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Connects every watched cluster but the demo one (whose simulator lives only as long
    /// as a demo run).
    pub async fn watch_all(&self) -> Result<()> {
        for cluster in self.store.clusters().await? {
            if !cluster.demo {
                self.connect(&cluster).await?;
            }
        }
        Ok(())
    }

    async fn connect(&self, cluster: &Cluster) -> Result<()> {
        let target = Target {
            cluster_id: cluster.id,
            name: cluster.name.clone(),
            events_url: cluster.events_url.clone(),
            token: token_of(cluster).await,
            ca_file: cluster.ca_file.clone().map(Into::into),
        };
        Ok(self.engine.watch(target).await?)
    }

    pub async fn list(&self) -> Result<Vec<WatchedCluster>> {
        let clusters = self.store.clusters().await?;
        Ok(clusters
            .into_iter()
            .map(|cluster| WatchedCluster {
                has_token: cluster.token_ref.is_some(),
                cluster,
            })
            .collect())
    }

    /// Adds a cluster, saves its token in the keychain, and starts watching it.
    pub async fn add(&self, new: &NewCluster, token: Option<&str>) -> Result<WatchedCluster> {
        let new = new.validated()?;
        if token.is_some_and(|t| !t.trim().is_empty()) {
            refuse_cleartext(&new)?;
        }
        // The keychain first: if it is unavailable, nothing is half-added.
        let account = match token.map(str::trim).filter(|t| !t.is_empty()) {
            Some(token) => {
                let account = secrets::new_account();
                secrets::save(&account, token).await?;
                Some(account)
            }
            None => None,
        };
        let added = async {
            let cluster = self.store.add_cluster(&new).await?;
            if let Some(old) = cluster.token_ref.as_deref() {
                // A removed cluster brought back: its old token went with the removal.
                let _ = secrets::delete(old).await;
            }
            self.store
                .set_token_ref(cluster.id, account.as_deref())
                .await?;
            Ok::<_, StoreError>(cluster)
        }
        .await;
        let cluster = match added {
            Ok(c) => c,
            Err(e) => {
                if let Some(account) = &account {
                    let _ = secrets::delete(account).await;
                }
                return Err(e.into());
            }
        };
        let cluster = self.store.cluster(cluster.id).await?;
        self.connect(&cluster).await?;
        Ok(WatchedCluster {
            has_token: cluster.token_ref.is_some(),
            cluster,
        })
    }

    /// Changes a cluster's name, URLs or token, and reconnects it with them.
    pub async fn update(
        &self,
        id: i64,
        new: &NewCluster,
        token: &TokenChange,
    ) -> Result<WatchedCluster> {
        let before = self.store.cluster(id).await?;
        let checked = new.validated()?;
        // A token saved for one server is never handed to another: pointing a cluster
        // elsewhere drops it unless it is entered again in the same change.
        let moved = !secrets::same_server(&before.events_url, &checked.events_url)
            || !secrets::same_server(&before.actions_url, &checked.actions_url);
        let token = match token {
            TokenChange::Keep if moved && before.token_ref.is_some() => {
                tracing::info!(cluster = %before.name, "the cluster moved to another server: its token is dropped");
                &TokenChange::Remove
            }
            other => other,
        };
        let keeps_token = match token {
            TokenChange::Keep => before.token_ref.is_some(),
            TokenChange::Set(t) => !t.trim().is_empty(),
            TokenChange::Remove => false,
        };
        if keeps_token {
            refuse_cleartext(&checked)?;
        }
        let cluster = self.store.update_cluster(id, new).await?;
        match token {
            TokenChange::Keep => {}
            TokenChange::Set(token) if !token.trim().is_empty() => {
                let account = before
                    .token_ref
                    .clone()
                    .unwrap_or_else(secrets::new_account);
                secrets::save(&account, token.trim()).await?;
                self.store.set_token_ref(id, Some(&account)).await?;
            }
            TokenChange::Set(_) | TokenChange::Remove => {
                if let Some(account) = &before.token_ref {
                    secrets::delete(account).await?;
                }
                self.store.set_token_ref(id, None).await?;
            }
        }
        let cluster = self.store.cluster(cluster.id).await?;
        if !cluster.demo {
            self.connect(&cluster).await?;
        }
        Ok(WatchedCluster {
            has_token: cluster.token_ref.is_some(),
            cluster,
        })
    }

    /// Stops watching a cluster and deletes its token. What it recorded stays browsable.
    pub async fn remove(&self, id: i64) -> Result<()> {
        self.engine.unwatch(id).await;
        let before = self.store.remove_cluster(id).await?;
        if let Some(account) = &before.token_ref {
            secrets::delete(account).await?;
        }
        Ok(())
    }
}
