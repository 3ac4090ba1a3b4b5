//! The console's engine: everything the console does between the wire and the store,
//! the same with or without a window.
//!
//! - `ingest`: one connection per watched cluster, decoding, the rules that open
//!   incidents, and the sink that records it all (with reconnects and backoff);
//! - `actions`: the action desk (preview, confirm, idempotency keys, preconditions,
//!   verification, the rollout levers) over the cluster's action API;
//! - `runbooks`: loading, matching, running and rehearsing runbooks;
//! - `watchlist`: the clusters the engineer watches; `secrets`: their tokens in the OS
//!   keychain; `trust`: which TLS servers are believed;
//! - `team`: the console's side of working an incident with a team server.

pub mod actions;
pub mod canary;
pub mod ingest;
pub mod runbooks;
pub mod secrets;
pub mod slo;
pub mod team;
pub mod trust;
pub mod watchlist;
