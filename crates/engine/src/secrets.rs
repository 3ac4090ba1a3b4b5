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

/// Why a token must not go to `url`, if it must not: a token travels over TLS (wss://,
/// https://) to any host, and in cleartext (ws://, http://) only to this machine
/// (localhost, 127.0.0.0/8, ::1), where nobody on the network can read it.
pub fn cleartext_refusal(url: &str) -> Option<String> {
    let parsed = reqwest::Url::parse(url).ok()?;
    if !matches!(parsed.scheme(), "ws" | "http") {
        return None;
    }
    let loopback = match parsed.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    (!loopback).then(|| {
        format!(
            "the token would travel in cleartext to {}: use {}:// (TLS), or a loopback address",
            parsed.host_str().unwrap_or("?"),
            if parsed.scheme() == "ws" {
                "wss"
            } else {
                "https"
            }
        )
    })
}

/// Whether two URLs name the same server (scheme, host and port): a token saved for one
/// is not handed to another without being entered again.
pub fn same_server(a: &str, b: &str) -> bool {
    match (reqwest::Url::parse(a), reqwest::Url::parse(b)) {
        (Ok(a), Ok(b)) => {
            a.scheme() == b.scheme()
                && a.host_str() == b.host_str()
                && a.port_or_known_default() == b.port_or_known_default()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_go_in_cleartext_only_to_this_machine() {
        for ok in [
            "wss://cluster.example/v1/events",
            "https://cluster.example/v1",
            "ws://127.0.0.1:9/v1/events",
            "ws://127.8.0.1/v1/events",
            "http://localhost:8080/v1",
            "http://[::1]:80/v1",
        ] {
            assert_eq!(cleartext_refusal(ok), None, "{ok} may carry a token");
        }
        for bad in [
            "ws://cluster.example/v1/events",
            "http://10.0.0.8/v1",
            "http://localhost.evil.example/v1",
        ] {
            let why = cleartext_refusal(bad).unwrap_or_default();
            assert!(why.contains("cleartext"), "{bad} must be refused: {why:?}");
        }
    }

    #[test]
    fn a_server_is_its_scheme_host_and_port() {
        assert!(same_server(
            "wss://a.example/v1/events",
            "wss://a.example:443/other"
        ));
        assert!(!same_server(
            "wss://a.example/v1/events",
            "wss://b.example/v1/events"
        ));
        assert!(!same_server(
            "wss://a.example/v1/events",
            "wss://a.example:8443/v1/events"
        ));
        assert!(!same_server(
            "wss://a.example/v1/events",
            "ws://a.example/v1/events"
        ));
    }
}
