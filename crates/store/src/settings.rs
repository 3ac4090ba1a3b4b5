//! Small key/value settings. Secrets never go here: tokens live in the OS keychain.

use super::{Result, Store};

impl Store {
    /// Who this user's changes are recorded as: the name set in settings, else the
    /// local user's.
    pub async fn author(&self) -> String {
        self.setting("author")
            .await
            .ok()
            .flatten()
            .unwrap_or_else(crate::paths::local_user)
    }

    pub async fn setting(&self, key: &str) -> Result<Option<String>> {
        let row: Option<(String,)> = sqlx::query_as("SELECT value FROM settings WHERE key = ?")
            .bind(key)
            .fetch_optional(self.reader())
            .await?;
        Ok(row.map(|(v,)| v))
    }

    pub async fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES (?, ?) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
