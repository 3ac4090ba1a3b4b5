//! Working one incident as a team, the console's side: the client of the team server
//! (`client.rs`), the sync loop between the store and the server (`sync.rs`), the
//! `firebreak team` commands (`cli.rs`) and the team benchmark (`bench.rs`). The server
//! itself is the `firebreak-team-server` crate; the sync contract is
//! `firebreak_protocol::team` (TEAM.md).

pub use firebreak_bench::team as bench;
pub mod cli;
pub use firebreak_engine::team::{client, sync};

pub use firebreak_protocol::team as wire;
pub use firebreak_team_server::{config, db, openapi, presence, scratch, server};
