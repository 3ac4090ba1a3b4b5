//! Accepting connections for the servers that face networks and other people (the
//! gateway, the team server): every connection is bounded before a byte of a request is
//! read. A TLS handshake and a request's headers each have a deadline (an idle or
//! trickling connection is closed, not held), and connections are capped in all and per
//! peer address, so a stranger who can reach the port cannot hold the server's sockets.
//! What a token holder may send is bounded by each route (bodies, fields, streams).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use tokio::sync::Semaphore;

/// The bounds of one server's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once (before they become a WebSocket stream).
    pub max_connections: usize,
    /// Of those, from one peer address.
    pub per_address: usize,
    /// A TLS handshake must finish within this.
    pub handshake: Duration,
    /// A request's headers (the first, or the next on a kept-alive connection) must arrive
    /// within this.
    pub header_read: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1024,
            per_address: 64,
            handshake: Duration::from_secs(10),
            header_read: Duration::from_secs(10),
        }
    }
}

/// How long a token holder may take to send a request's body.
pub const BODY_READ: Duration = Duration::from_secs(30);

/// Serves `app` on `listener` (over TLS when `acceptor` is given) within `limits`, until
/// the task is stopped.
pub async fn serve(
    listener: tokio::net::TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    app: Router,
    limits: Limits,
) {
    let app = app.layer(axum::middleware::from_fn(close_after_refusal));
    let total = Arc::new(Semaphore::new(limits.max_connections));
    let per_address: Counted<IpAddr> = Counted::new(limits.per_address);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, typically: wait rather than spin.
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = total.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "connection refused: the server holds its maximum");
            continue;
        };
        let Some(slot) = per_address.take(peer.ip()) else {
            tracing::debug!(%peer, "connection refused: this address holds its maximum");
            continue;
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let _held = (permit, slot);
            let served = match acceptor {
                Some(acceptor) => {
                    match tokio::time::timeout(limits.handshake, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => http(tls, app, limits).await,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake not finished in time");
                            return;
                        }
                    }
                }
                None => http(tcp, app, limits).await,
            };
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
        });
    }
}

/// A refusal of a request that carries a body ends its connection, and says so.
///
/// A route that refuses before reading the body (a wrong token, a body over its bound)
/// leaves unread bytes on the connection, so the server cannot serve another request on
/// it. Without `Connection: close` the answer would still promise keep-alive, and a
/// client that finished writing the body would reuse the connection just as the server
/// closes it: its next request fails with a broken pipe instead of getting its answer.
async fn close_after_refusal(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let has_body = request
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .is_some_and(|n| n.as_bytes() != b"0")
        || request
            .headers()
            .contains_key(hyper::header::TRANSFER_ENCODING);
    let mut response = next.run(request).await;
    if has_body && (response.status().is_client_error() || response.status().is_server_error()) {
        response.headers_mut().insert(
            hyper::header::CONNECTION,
            hyper::header::HeaderValue::from_static("close"),
        );
    }
    response
}

/// HTTP/1.1 with WebSocket upgrades on one connection, headers under their deadline.
async fn http<S>(io: S, app: Router, limits: Limits) -> Result<(), hyper::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let service = hyper_util::service::TowerToHyperService::new(app);
    hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_read)
        .serve_connection(hyper_util::rt::TokioIo::new(io), service)
        .with_upgrades()
        .await
}

/// Places counted per key (connections per address, streams per person), each capped:
/// a [`Slot`] taken is given back when it drops, however its holder ends.
pub struct Counted<K: std::hash::Hash + Eq + Clone> {
    open: Arc<Mutex<HashMap<K, usize>>>,
    max: usize,
}

impl<K: std::hash::Hash + Eq + Clone> Counted<K> {
    pub fn new(max: usize) -> Self {
        Counted {
            open: Arc::default(),
            max,
        }
    }

    /// A place for `key`, unless it holds its maximum already.
    pub fn take(&self, key: K) -> Option<Slot<K>> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(key.clone()).or_default();
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(Slot {
            open: self.open.clone(),
            key,
        })
    }
}

/// One place in a [`Counted`] key's count.
pub struct Slot<K: std::hash::Hash + Eq + Clone> {
    open: Arc<Mutex<HashMap<K, usize>>>,
    key: K,
}

impl<K: std::hash::Hash + Eq + Clone> Drop for Slot<K> {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// What the server answers on a raw connection to `request`, whole (it must close).
    async fn exchange(request: &str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route(
            "/refuse",
            axum::routing::post(|| async { (axum::http::StatusCode::UNAUTHORIZED, "no") }),
        );
        let server = tokio::spawn(serve(listener, None, app, Limits::default()));
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        // The server closes the connection after a refusal, so this read ends.
        let read = tokio::time::timeout(Duration::from_secs(20), tcp.read_to_end(&mut answer));
        let ended = read.await.is_ok();
        server.abort();
        let answer = String::from_utf8_lossy(&answer).to_ascii_lowercase();
        assert!(ended, "the connection was kept open after: {answer}");
        answer
    }

    #[tokio::test]
    async fn a_refusal_before_the_body_is_read_closes_the_connection_and_says_so() {
        let body = "x".repeat(1000);
        let answer = exchange(&format!(
            "POST /refuse HTTP/1.1\r\nhost: a\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        ))
        .await;
        assert!(answer.starts_with("http/1.1 401"), "{answer}");
        assert!(answer.contains("connection: close"), "{answer}");
    }

    #[test]
    fn an_address_gets_its_slots_back_when_its_connections_close() {
        let counted = Counted::new(2);
        let ip = IpAddr::from([127, 0, 0, 2]);
        let a = counted.take(ip);
        let b = counted.take(ip);
        assert!(a.is_some() && b.is_some());
        assert!(counted.take(ip).is_none(), "the third is over the cap");
        drop(a);
        assert!(counted.take(ip).is_some(), "a closed one frees its place");
        drop(b);
        assert!(
            counted.open.lock().unwrap().is_empty(),
            "no key is kept once its places are all given back"
        );
    }
}
