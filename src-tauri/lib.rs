//! Firebreak: an incident-command console for AI model-serving fleets.
//!
//! The domain modules never import `tauri`; only `desktop` does (behind the default
//! `desktop` feature), so the whole core builds and tests without WebKitGTK.

pub use firebreak_common::{clock, logging, process};
pub use firebreak_gateway as gateway;
pub use firebreak_protocol as protocol;
pub use firebreak_server as server;
pub use firebreak_sim as sim;

pub mod act;
pub mod actions;
pub mod bench;
pub mod cli;
pub mod history;
pub mod incident;
pub mod incident_cli;
pub mod ingest;
pub mod ipc;
pub mod paths;
pub mod report;
pub mod reports;
pub mod runbook_step;
pub mod runbooks;
pub mod secrets;
pub mod single_instance;
pub mod store;
pub mod team;
pub mod trust;
pub mod watch;
pub mod watchlist;

#[cfg(feature = "desktop")]
pub mod desktop;
