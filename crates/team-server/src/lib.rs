//! The team server: several consoles work one incident through it. It keeps each team's
//! records in PostgreSQL (`db`), serves the sync contract (`firebreak_protocol::team`,
//! TEAM.md) over HTTP and a WebSocket stream (`server`), knows who is looking at what
//! (`presence`), reads its configuration (`config`) and describes itself in OpenAPI
//! (`openapi`). Headless like the gateway: it knows nothing of the console's store.
//! `scratch` starts a throwaway PostgreSQL for benchmarks and tests.

pub mod cli;
pub mod config;
pub mod db;
pub mod openapi;
pub mod presence;
pub mod scratch;
pub mod server;

pub use firebreak_protocol::team as wire;
