//! Working one incident as a team, the console's side: the client of the team server
//! (`client`) and the sync loop between the store and the server (`sync`). The server is
//! the `firebreak-team-server` crate; the contract between them is
//! `firebreak_protocol::team` (TEAM.md).

pub mod client;
pub mod sync;
