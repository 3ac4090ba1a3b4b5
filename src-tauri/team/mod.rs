//! Working one incident as a team: the sync contract (`wire.rs`, TEAM.md), the team
//! server over PostgreSQL (`server.rs`, `db.rs`, `config.rs`; headless, like the
//! gateway) and its OpenAPI document (`openapi.rs`).

pub mod bench;
pub mod cli;
pub mod client;
pub mod config;
pub mod db;
pub mod openapi;
pub mod presence;
pub mod scratch;
pub mod server;
pub mod sync;

pub use firebreak_protocol::team as wire;
