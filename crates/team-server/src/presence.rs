//! Who is connected to a team and which of its incidents each console shows: kept in the
//! memory of the team server processes, never in the database. A stream tells its own
//! process's [`Board`] when its console arrives, changes incident or leaves; the process
//! says so to the others through a PostgreSQL notification on [`CHANNEL`] (no table is
//! written), and every [`REFRESH`] it says again who is connected through it, so a
//! process that stops without a word (kill -9, a lost host) has its consoles forgotten by
//! the others within [`WINDOW`].
//!
//! Reading presence costs nothing: each stream compares the board with what it sent last,
//! in memory. The database is touched once per change a console makes (debounced by the
//! stream) and once per team per process every [`REFRESH`], whatever the number of
//! consoles.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgPool;
use uuid::Uuid;

use super::wire;

/// The channel presence changes and refreshes are announced on.
pub const CHANNEL: &str = "firebreak_team_presence";
/// Each process says who is connected through it this often.
pub const REFRESH: Duration = Duration::from_secs(5);
/// A console another process has not mentioned for this long is gone.
pub const WINDOW: Duration = Duration::from_secs(15);
/// A notification's payload stays under this (PostgreSQL refuses 8,000 bytes and more).
const NOTE_BYTES: usize = 7_000;

/// One console's place on the board.
#[derive(Debug, Clone)]
struct Seat {
    name: String,
    incident: Option<Uuid>,
    /// The process whose stream holds it.
    process: Uuid,
    /// When that process last said so (this process's clock).
    seen: DateTime<Utc>,
    /// Streams of this process holding it (a console reconnecting may hold two for a
    /// moment); zero for another process's seat.
    streams: usize,
}

/// What one process tells the others.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Note {
    process: Uuid,
    team: i64,
    #[serde(default)]
    here: Vec<NoteSeat>,
    #[serde(default)]
    gone: Vec<Uuid>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct NoteSeat {
    console: Uuid,
    name: String,
    incident: Option<Uuid>,
}

/// A console connected through this process: (console, person's name, incident shown).
type Here = (Uuid, String, Option<Uuid>);

/// This process's view of who is connected to each team.
pub struct Board {
    process: Uuid,
    teams: Mutex<HashMap<i64, HashMap<Uuid, Seat>>>,
    pool: PgPool,
}

impl Board {
    pub fn new(pool: PgPool) -> Board {
        Board {
            process: Uuid::new_v4(),
            teams: Mutex::default(),
            pool,
        }
    }

    fn teams(&self) -> std::sync::MutexGuard<'_, HashMap<i64, HashMap<Uuid, Seat>>> {
        self.teams.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A stream of this process opened for `console`, showing nothing yet.
    pub async fn arrive(&self, team: i64, console: Uuid, name: &str) {
        {
            let mut teams = self.teams();
            let seats = teams.entry(team).or_default();
            let seat = seats.entry(console).or_insert_with(|| Seat {
                name: name.to_owned(),
                incident: None,
                process: self.process,
                seen: Utc::now(),
                streams: 0,
            });
            if seat.process != self.process {
                // The console moved here from another process.
                seat.process = self.process;
                seat.streams = 0;
            }
            seat.streams += 1;
            seat.name = name.to_owned();
            seat.incident = None;
            seat.seen = Utc::now();
        }
        self.announce(team, vec![(console, name.to_owned(), None)], vec![])
            .await;
    }

    /// `console` (connected through this process) now shows `incident`, already checked
    /// to be one of the team's.
    pub async fn view(&self, team: i64, console: Uuid, incident: Option<Uuid>) {
        let name = {
            let mut teams = self.teams();
            let Some(seat) = teams.get_mut(&team).and_then(|s| s.get_mut(&console)) else {
                return;
            };
            if seat.process != self.process {
                return;
            }
            seat.incident = incident;
            seat.seen = Utc::now();
            seat.name.clone()
        };
        self.announce(team, vec![(console, name, incident)], vec![])
            .await;
    }

    /// A stream of this process for `console` ended.
    pub async fn leave(&self, team: i64, console: Uuid) {
        let left = {
            let mut teams = self.teams();
            let Some(seats) = teams.get_mut(&team) else {
                return;
            };
            let left = match seats.get_mut(&console) {
                Some(seat) if seat.process == self.process => {
                    seat.streams = seat.streams.saturating_sub(1);
                    seat.streams == 0
                }
                _ => false,
            };
            if left {
                seats.remove(&console);
            }
            if seats.is_empty() {
                teams.remove(&team);
            }
            left
        };
        if left {
            self.announce(team, vec![], vec![console]).await;
        }
    }

    /// Who is connected to `team`, through any process, in name order.
    pub fn people(&self, team: i64) -> Vec<wire::Presence> {
        let cutoff = Utc::now() - WINDOW;
        let mut people: Vec<wire::Presence> = self
            .teams()
            .get(&team)
            .map(|seats| {
                seats
                    .iter()
                    .filter(|(_, s)| s.process == self.process || s.seen > cutoff)
                    .map(|(console, s)| wire::Presence {
                        name: s.name.clone(),
                        console: *console,
                        incident: s.incident,
                        seen: s.seen,
                    })
                    .collect()
            })
            .unwrap_or_default();
        people.sort_by(|a, b| (&a.name, a.console).cmp(&(&b.name, b.console)));
        people
    }

    /// Takes another process's note (a notification's payload); the team whose board
    /// changed, if one did. This process's own notes and unreadable payloads change
    /// nothing.
    pub fn apply(&self, payload: &str) -> Option<i64> {
        let note: Note = match serde_json::from_str(payload) {
            Ok(note) => note,
            Err(e) => {
                tracing::warn!(error = %e, "a presence notification does not parse");
                return None;
            }
        };
        if note.process == self.process {
            return None;
        }
        let now = Utc::now();
        let mut teams = self.teams();
        let seats = teams.entry(note.team).or_default();
        for here in note.here {
            match seats.get_mut(&here.console) {
                // This process holds the console's stream: its own word wins.
                Some(seat) if seat.process == self.process => {}
                _ => {
                    seats.insert(
                        here.console,
                        Seat {
                            name: here.name,
                            incident: here.incident,
                            process: note.process,
                            seen: now,
                            streams: 0,
                        },
                    );
                }
            }
        }
        for console in note.gone {
            // Only the process holding a seat can give it up: a console that moved to
            // another process stays.
            if seats
                .get(&console)
                .is_some_and(|s| s.process == note.process)
            {
                seats.remove(&console);
            }
        }
        if seats.is_empty() {
            teams.remove(&note.team);
        }
        Some(note.team)
    }

    /// Says again who is connected through this process, and forgets other processes'
    /// consoles not mentioned within [`WINDOW`]. Called every [`REFRESH`]; answers the
    /// teams that lost someone so.
    pub async fn refresh(&self) -> Vec<i64> {
        let now = Utc::now();
        let cutoff = now - WINDOW;
        let mut forgot = Vec::new();
        let mine: Vec<(i64, Vec<Here>)> = {
            let mut teams = self.teams();
            teams.retain(|team, seats| {
                let before = seats.len();
                seats.retain(|_, s| s.process == self.process || s.seen > cutoff);
                if seats.len() < before {
                    forgot.push(*team);
                }
                !seats.is_empty()
            });
            teams
                .iter_mut()
                .filter_map(|(team, seats)| {
                    let here: Vec<_> = seats
                        .iter_mut()
                        .filter(|(_, s)| s.process == self.process)
                        .map(|(console, s)| {
                            s.seen = now;
                            (*console, s.name.clone(), s.incident)
                        })
                        .collect();
                    (!here.is_empty()).then_some((*team, here))
                })
                .collect()
        };
        for (team, here) in mine {
            self.announce(team, here, vec![]).await;
        }
        forgot
    }

    /// Tells the other processes, in as many notifications as the payload limit needs.
    /// A notification that cannot be sent is logged: the next refresh says it again.
    async fn announce(&self, team: i64, here: Vec<Here>, gone: Vec<Uuid>) {
        for note in notes(self.process, team, here, gone) {
            if let Err(e) = self.notify(&note).await {
                tracing::warn!(error = format!("{e:#}"), team, "cannot announce presence");
            }
        }
    }

    async fn notify(&self, payload: &str) -> Result<()> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(payload)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// `here` and `gone` as notification payloads, each under [`NOTE_BYTES`].
fn notes(process: Uuid, team: i64, here: Vec<Here>, gone: Vec<Uuid>) -> Vec<String> {
    let empty = Note {
        process,
        team,
        here: vec![],
        gone: vec![],
    };
    let mut out = Vec::new();
    let mut note = empty.clone();
    let mut size = 0;
    let seats = here
        .into_iter()
        .map(|(console, name, incident)| {
            // A person's name is bounded when it is added; cut here too, so one seat
            // always fits a notification.
            let name: String = name.chars().take(200).collect();
            NoteSeat {
                console,
                name,
                incident,
            }
        })
        .map(Ok)
        .chain(gone.into_iter().map(Err));
    for seat in seats {
        let bytes = match &seat {
            Ok(s) => serde_json::to_string(s).map(|t| t.len()).unwrap_or(0) + 1,
            Err(_) => 39,
        };
        if size + bytes > NOTE_BYTES - 200 && size > 0 {
            out.push(std::mem::replace(&mut note, empty.clone()));
            size = 0;
        }
        size += bytes;
        match seat {
            Ok(s) => note.here.push(s),
            Err(console) => note.gone.push(console),
        }
    }
    if size > 0 {
        out.push(note);
    }
    out.into_iter()
        .filter_map(|n| serde_json::to_string(&n).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_with_many_consoles_says_so_in_notifications_postgresql_takes() {
        let here: Vec<_> = (0..1_000)
            .map(|n| {
                (
                    Uuid::new_v4(),
                    "n".repeat(100 + n % 200),
                    Some(Uuid::new_v4()),
                )
            })
            .collect();
        let gone: Vec<Uuid> = (0..300).map(|_| Uuid::new_v4()).collect();
        let payloads = notes(Uuid::new_v4(), 7, here.clone(), gone.clone());
        assert!(payloads.len() > 1);
        let mut seen_here = 0;
        let mut seen_gone = 0;
        for p in &payloads {
            assert!(p.len() < 8_000, "{} bytes", p.len());
            let note: Note = serde_json::from_str(p).unwrap();
            assert_eq!(note.team, 7);
            seen_here += note.here.len();
            seen_gone += note.gone.len();
        }
        assert_eq!((seen_here, seen_gone), (1_000, 300), "every console, once");
    }
}
