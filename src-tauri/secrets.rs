//! Cluster tokens in the OS keychain: the Secret Service on Linux (GNOME Keyring,
//! KWallet), the Keychain on macOS, the Credential Manager on Windows. A token never goes
//! to SQLite, a config file or a log line; the store keeps only the account name.

/// The keychain "service" every Firebreak token is filed under.
const SERVICE: &str = "dev.firebreak.console";

#[derive(Debug, thiserror::Error)]
#[error(
    "the OS keychain is unavailable ({0}). Cluster tokens are kept only there: start or unlock \
     your keyring (GNOME Keyring, KWallet, or another Secret Service) and try again"
)]
pub struct KeychainError(String);

/// Runs a blocking keychain call off the async runtime.
async fn with_entry<T: Send + 'static>(
    account: &str,
    f: impl FnOnce(keyring::Entry) -> keyring::Result<T> + Send + 'static,
) -> Result<T, KeychainError> {
    let account = account.to_owned();
    tokio::task::spawn_blocking(move || {
        let entry =
            keyring::Entry::new(SERVICE, &account).map_err(|e| KeychainError(e.to_string()))?;
        f(entry).map_err(|e| KeychainError(e.to_string()))
    })
    .await
    .map_err(|e| KeychainError(e.to_string()))?
}

/// A new account name for a token: random, so two data dirs never share one.
pub fn new_account() -> String {
    format!("cluster-token-{}", uuid::Uuid::new_v4().simple())
}

pub async fn save(account: &str, token: &str) -> Result<(), KeychainError> {
    let token = token.to_owned();
    with_entry(account, move |e| e.set_password(&token)).await
}

/// The token, or `None` when the account holds none.
pub async fn load(account: &str) -> Result<Option<String>, KeychainError> {
    with_entry(account, |e| match e.get_password() {
        Ok(token) => Ok(Some(token)),
        Err(keyring::Error::NoEntry) => Ok(None),
        Err(other) => Err(other),
    })
    .await
}

/// Removes the token; an account that holds none is not an error.
pub async fn delete(account: &str) -> Result<(), KeychainError> {
    with_entry(account, |e| match e.delete_credential() {
        Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
        Err(other) => Err(other),
    })
    .await
}
