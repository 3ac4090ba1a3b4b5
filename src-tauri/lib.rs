//! Firebreak: an incident-command console for AI model-serving fleets.
//!
//! The domain modules never import `tauri`; only `desktop` does (behind the default
//! `desktop` feature), so the whole core builds and tests without WebKitGTK.

pub use firebreak_bench as bench;
pub use firebreak_common::{clock, logging, process};
pub use firebreak_engine::{actions, ingest, runbooks, secrets, trust, watchlist};
pub use firebreak_gateway as gateway;
pub use firebreak_protocol as protocol;
pub use firebreak_reports as reports;
pub use firebreak_server as server;
pub use firebreak_sim as sim;
pub use firebreak_store as store;
pub use firebreak_store::{incident, paths, runbook_step};

pub mod act;
pub mod cli;
pub mod history;
pub mod incident_cli;
pub mod ipc;
pub mod report;
pub mod single_instance;
pub mod team;
pub mod watch;

#[cfg(feature = "desktop")]
pub mod desktop;
