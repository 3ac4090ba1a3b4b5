//! A real PostgreSQL for the tests (Debian's `postgresql`, installed by `.ci/deps.sh
//! --test`): the library's scratch cluster (`team::scratch`), gone when dropped.

pub struct Postgres(firebreak_team_server::scratch::ScratchPostgres);

impl Postgres {
    pub async fn start() -> Postgres {
        Postgres(
            firebreak_team_server::scratch::ScratchPostgres::start()
                .await
                .unwrap(),
        )
    }

    /// One that takes only TLS connections, with this certificate and key (PEM).
    pub async fn start_tls(cert_pem: &str, key_pem: &str) -> Postgres {
        Postgres(
            firebreak_team_server::scratch::ScratchPostgres::start_with(Some(
                firebreak_team_server::scratch::ScratchTls { cert_pem, key_pem },
            ))
            .await
            .unwrap(),
        )
    }

    /// Stops it at once, as a crash or a failover of a managed database does.
    pub fn crash(&mut self) {
        self.0.crash();
    }

    /// Starts it again on the same data and port, once it takes connections.
    pub async fn up(&mut self) {
        self.0.up().await.unwrap();
    }

    /// A new, empty database; its URL.
    pub async fn database(&self, name: &str) -> String {
        self.0.database(name).await.unwrap()
    }
}
