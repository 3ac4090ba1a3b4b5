//! The team server's store: PostgreSQL, through sqlx. Every server process reads and
//! writes only here, so any number of them can serve one team behind a load balancer.
//!
//! Sequences: a push locks its team's row (`SELECT … FOR UPDATE`) for its transaction,
//! takes the next numbers from it and commits, so a team's stream has no gaps and a record
//! is never visible before the ones numbered below it. Each commit notifies
//! [`CHANNEL`] with the team's id; every server process listens and wakes its streams.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::Row;
use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use uuid::Uuid;

use super::wire::{self, Body, Outcome, Record, Shared};
use firebreak_common::text::{cut, shorten};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/team");

/// The channel every commit of new records is announced on (payload: the team's id).
pub const CHANNEL: &str = "firebreak_team_records";
/// The channel a change to a person's access is announced on (payload: the person's id):
/// a revoked token or a team left ends that person's open streams on every process.
pub const ACCESS_CHANNEL: &str = "firebreak_team_access";

/// Who a token belongs to.
#[derive(Debug, Clone)]
pub struct Person {
    pub id: i64,
    pub name: String,
}

/// One record of a push as the server read it: a record, or what was sent in its place
/// and why it does not parse (answered `invalid`; the rest of the push still counts).
#[derive(Debug, Clone)]
pub enum Pushed {
    Record(Record),
    Unreadable {
        /// The record's `id`, when it had a readable one.
        id: Option<Uuid>,
        /// What was sent, as JSON text.
        raw: String,
        message: String,
    },
}

/// A record the server could not take, as `firebreak team-server rejected` lists it.
#[derive(Debug, Clone)]
pub struct Rejected {
    pub team: String,
    pub record_id: Option<Uuid>,
    pub author: String,
    pub console: Uuid,
    pub raw: String,
    pub message: String,
    pub received_at: DateTime<Utc>,
}

/// A person as `firebreak team-server user list` shows them.
#[derive(Debug, Clone)]
pub struct PersonListed {
    pub name: String,
    pub teams: Vec<String>,
    pub since: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Clone)]
pub struct TeamDb {
    pool: PgPool,
}

/// The token's SHA-256: what is stored and looked up. Tokens are 256 random bits, so a
/// plain hash is enough to keep a stolen database from yielding them.
/// A name as given, trimmed, if it is 1 to `max` characters and none of them a control
/// character (a name is shown on every console and in terminals).
fn checked_name<'a>(name: &'a str, what: &str, max: usize) -> Result<&'a str> {
    let name = name.trim();
    anyhow::ensure!(
        (1..=max).contains(&name.chars().count()),
        "{what} is 1 to {max} characters"
    );
    anyhow::ensure!(
        !name.chars().any(char::is_control),
        "{what} cannot hold control characters: {}",
        shorten(name, 200)
    );
    Ok(name)
}

/// The id of the person called `name` whose token is not revoked.
async fn active_person(tx: &mut sqlx::PgConnection, name: &str) -> Result<i64> {
    sqlx::query_scalar("SELECT id FROM people WHERE name = $1 AND revoked_at IS NULL")
        .bind(name.trim())
        .fetch_optional(tx)
        .await?
        .with_context(|| format!("nobody called {} has a token", shorten(name.trim(), 200)))
}

/// Makes `person_id` a member of `teams` (each made when missing).
async fn join_teams(tx: &mut sqlx::PgConnection, person_id: i64, teams: &[String]) -> Result<()> {
    anyhow::ensure!(!teams.is_empty(), "name at least one team (--team)");
    for team in teams {
        let team = checked_name(team, "a team's name", 64)?;
        // A path segment of a URL: one of these would be read as a step up or stay.
        anyhow::ensure!(
            team != "." && team != "..",
            "a team cannot be called {team:?}"
        );
        let team_id: i64 = sqlx::query_scalar(
            "INSERT INTO teams (name) VALUES ($1) \
             ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id",
        )
        .bind(team)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO memberships (person_id, team_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(person_id)
        .bind(team_id)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// Announces, when `tx` commits, that `person_id`'s access changed.
async fn access_changed(tx: &mut sqlx::PgConnection, person_id: i64) -> Result<()> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(ACCESS_CHANNEL)
        .bind(person_id.to_string())
        .execute(tx)
        .await?;
    Ok(())
}

fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A new token: `fbt_` and 64 hex digits from the OS's random source.
pub fn new_token() -> String {
    format!("fbt_{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple())
}

impl TeamDb {
    /// Connects and brings the schema up to date (migrations take PostgreSQL's advisory
    /// lock, so servers starting together do not race).
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self> {
        let options = PgConnectOptions::from_str(url)
            .context("the database URL is not a PostgreSQL URL")?
            .application_name("firebreak-team-server");
        verified_if_remote(&options)?;
        // One connection first: the pool's own error is only "timed out", where this one
        // says why (refused, no such database, the password…).
        let where_ = format!(
            "{}:{}/{}",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or("(default)")
        );
        let first = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            sqlx::ConnectOptions::connect(&options),
        )
        .await
        .map_err(|_| anyhow::anyhow!("no answer within 10 s"))
        .and_then(|c| c.map_err(explain))
        .with_context(|| format!("cannot connect to the team database at {where_}"))?;
        sqlx::Connection::close(first).await.ok();
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect_with(options)
            .await
            .with_context(|| format!("cannot connect to the team database at {where_}"))?;
        MIGRATOR
            .run(&pool)
            .await
            .context("cannot bring the team database's schema up to date")?;
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Adds a person to the teams named (made when missing) and returns their token,
    /// which is kept nowhere: only its hash is stored.
    pub async fn add_person(&self, name: &str, teams: &[String]) -> Result<String> {
        let name = checked_name(name, "a person's name", 100)?;
        let token = new_token();
        let mut tx = self.pool.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO people (name, token_hash) VALUES ($1, $2) \
             ON CONFLICT (name) DO NOTHING RETURNING id",
        )
        .bind(name)
        .bind(token_hash(&token))
        .fetch_optional(&mut *tx)
        .await?
        .with_context(|| {
            format!(
                "{name} already has a token: `user join` adds them to more teams; \
                 `user revoke` first for a new token"
            )
        })?;
        join_teams(&mut tx, id, teams).await?;
        tx.commit().await?;
        Ok(token)
    }

    /// Adds a person who has a token to more teams (made when missing); teams they are
    /// in already are left as they are. Their open consoles read the new teams when
    /// linked to them.
    pub async fn join(&self, name: &str, teams: &[String]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let id = active_person(&mut tx, name).await?;
        join_teams(&mut tx, id, teams).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Takes a person out of teams: from now on they cannot read or write them, and
    /// their open streams of those teams end, on every server process.
    pub async fn leave(&self, name: &str, teams: &[String]) -> Result<()> {
        anyhow::ensure!(!teams.is_empty(), "name at least one team (--team)");
        let mut tx = self.pool.begin().await?;
        let id = active_person(&mut tx, name).await?;
        for team in teams {
            let left = sqlx::query(
                "DELETE FROM memberships m USING teams t \
                 WHERE m.team_id = t.id AND m.person_id = $1 AND t.name = $2",
            )
            .bind(id)
            .bind(team.trim())
            .execute(&mut *tx)
            .await?;
            anyhow::ensure!(
                left.rows_affected() == 1,
                "{} is not in a team called {:?}",
                name.trim(),
                team.trim()
            );
        }
        access_changed(&mut tx, id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Everyone who has or had a token, with their teams, oldest first.
    pub async fn people(&self) -> Result<Vec<PersonListed>> {
        let rows = sqlx::query(
            "SELECT p.name, p.created_at, p.revoked_at, \
                    COALESCE(array_agg(t.name ORDER BY t.name) FILTER (WHERE t.name IS NOT NULL), '{}') \
             FROM people p \
             LEFT JOIN memberships m ON m.person_id = p.id \
             LEFT JOIN teams t ON t.id = m.team_id \
             GROUP BY p.id ORDER BY p.id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| PersonListed {
                name: r.get(0),
                since: r.get(1),
                revoked_at: r.get(2),
                teams: r.get(3),
            })
            .collect())
    }

    /// Revokes a person's token: every request with it is refused from now on, and
    /// their name is free for a new token.
    pub async fn revoke_person(&self, name: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "UPDATE people SET revoked_at = now(), name = name || ' (revoked ' || id || ')' \
             WHERE name = $1 AND revoked_at IS NULL RETURNING id",
        )
        .bind(name.trim())
        .fetch_optional(&mut *tx)
        .await?
        .with_context(|| format!("nobody called {} has a token", name.trim()))?;
        access_changed(&mut tx, id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Whether `person` may still read `team_id`: `None` if so, else the refusal's code
    /// and message (the token was revoked, or the person left the team).
    pub async fn still_allowed(
        &self,
        person: &Person,
        team_id: i64,
    ) -> Result<Option<(&'static str, String)>> {
        let row: Option<(bool, bool)> = sqlx::query_as(
            "SELECT p.revoked_at IS NULL, \
                    EXISTS (SELECT 1 FROM memberships m WHERE m.person_id = p.id AND m.team_id = $2) \
             FROM people p WHERE p.id = $1",
        )
        .bind(person.id)
        .bind(team_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some((true, true)) => None,
            Some((true, false)) => Some((
                "not_a_member",
                format!("{} is no longer in this team", person.name),
            )),
            _ => Some(("unauthorized", "this token was revoked".to_owned())),
        })
    }

    /// The person a token belongs to, unless it is unknown or revoked.
    pub async fn person(&self, token: &str) -> Result<Option<Person>> {
        let row =
            sqlx::query("SELECT id, name FROM people WHERE token_hash = $1 AND revoked_at IS NULL")
                .bind(token_hash(token))
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|r| Person {
            id: r.get(0),
            name: r.get(1),
        }))
    }

    /// The team's id, if `person` belongs to it.
    pub async fn membership(&self, person: &Person, team: &str) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT t.id FROM teams t JOIN memberships m ON m.team_id = t.id \
             WHERE t.name = $1 AND m.person_id = $2",
        )
        .bind(team)
        .bind(person.id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Binds `console` to `person` the first time it is used; `false` when it is already
    /// another person's (the push or stream is then refused: a console id is no disguise).
    pub async fn claim_console(&self, console: Uuid, person: &Person) -> Result<bool> {
        sqlx::query(
            "INSERT INTO consoles (console, person) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(console)
        .bind(&person.name)
        .execute(&self.pool)
        .await?;
        let owner: String = sqlx::query_scalar("SELECT person FROM consoles WHERE console = $1")
            .bind(console)
            .fetch_one(&self.pool)
            .await?;
        Ok(owner == person.name)
    }

    /// The id of the team's record at `seq`, if there is one.
    pub async fn record_id_at(&self, team_id: i64, seq: u64) -> Result<Option<Uuid>> {
        Ok(
            sqlx::query_scalar("SELECT id FROM records WHERE team_id = $1 AND seq = $2")
                .bind(team_id)
                .bind(seq as i64)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// The team's stream head: the last sequence handed out (0 before the first).
    pub async fn head(&self, team_id: i64) -> Result<u64> {
        let next: i64 = sqlx::query_scalar("SELECT next_seq FROM teams WHERE id = $1")
            .bind(team_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(next as u64 - 1)
    }

    /// Accepts a push in one transaction: every record gets its outcome; accepted ones
    /// their sequence. Either the whole push commits or none of it does. A record the
    /// server cannot take is answered `invalid` and kept in `rejected` for diagnosis;
    /// the records beside it are answered as usual.
    pub async fn push(
        &self,
        team_id: i64,
        author: &str,
        console: Uuid,
        pushed: &[Pushed],
    ) -> Result<(Vec<Outcome>, u64)> {
        let records: Vec<&Record> = pushed
            .iter()
            .filter_map(|p| match p {
                Pushed::Record(r) => Some(r),
                Pushed::Unreadable { .. } => None,
            })
            .collect();
        let mut tx = self.pool.begin().await?;
        let mut next: i64 =
            sqlx::query_scalar("SELECT next_seq FROM teams WHERE id = $1 FOR UPDATE")
                .bind(team_id)
                .fetch_one(&mut *tx)
                .await?;
        let first = next;
        // What the push's records already are, read once for the whole push.
        let ids: Vec<Uuid> = records.iter().map(|r| r.id).collect();
        let incidents: Vec<Uuid> = records.iter().map(|r| r.incident).collect();
        let mut batch = Batch {
            known: sqlx::query_as::<_, (Uuid, i64)>(
                "SELECT id, seq FROM records WHERE team_id = $1 AND id = ANY($2)",
            )
            .bind(team_id)
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect(),
            refused: sqlx::query_as::<_, (Uuid, serde_json::Value)>(
                "SELECT id, answer FROM refusals WHERE team_id = $1 AND id = ANY($2)",
            )
            .bind(team_id)
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect(),
            opened: sqlx::query_scalar::<_, Uuid>(
                "SELECT DISTINCT incident FROM incident_fields WHERE team_id = $1 AND incident = ANY($2)",
            )
            .bind(team_id)
            .bind(&incidents)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect(),
            rows: Vec::new(),
        };
        let mut outcomes = Vec::with_capacity(pushed.len());
        // (record id, as sent, why): kept in `rejected`.
        let mut rejected: Vec<(Option<Uuid>, String, String)> = Vec::new();
        for item in pushed {
            let outcome = match item {
                Pushed::Record(record) => {
                    let outcome =
                        accept(&mut tx, &mut batch, team_id, author, console, record, next).await?;
                    if let Outcome::Invalid { message, .. } = &outcome {
                        let raw = serde_json::to_string(record).unwrap_or_default();
                        rejected.push((Some(record.id), raw, message.clone()));
                    }
                    outcome
                }
                Pushed::Unreadable { id, raw, message } => {
                    rejected.push((*id, raw.clone(), message.clone()));
                    Outcome::Invalid {
                        id: id.unwrap_or_else(Uuid::nil),
                        message: message.clone(),
                    }
                }
            };
            if matches!(outcome, Outcome::Accepted { .. }) {
                next += 1;
            }
            outcomes.push(outcome);
        }
        for chunk in rejected.chunks(1000) {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO rejected (team_id, record_id, author, console, raw, message) ",
            );
            q.push_values(chunk, |mut row, (id, raw, message)| {
                row.push_bind(team_id)
                    .push_bind(*id)
                    .push_bind(author)
                    .push_bind(console)
                    .push_bind(storable(cut(raw, wire::MAX_BODY_BYTES)))
                    .push_bind(storable(cut(message, 1000)));
            });
            q.build().execute(&mut *tx).await?;
        }
        if !rejected.is_empty() {
            tracing::warn!(
                team_id,
                author,
                %console,
                count = rejected.len(),
                first = %rejected[0].2,
                "records rejected (kept in the rejected table)"
            );
        }
        // The accepted records, many rows a statement (9 parameters each).
        for chunk in batch.rows.chunks(1000) {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO records (team_id, seq, id, incident, kind, author, console, at, body) ",
            );
            q.push_values(chunk, |mut row, (seq, record, kind)| {
                row.push_bind(team_id)
                    .push_bind(*seq)
                    .push_bind(record.id)
                    .push_bind(record.incident)
                    .push_bind(*kind)
                    .push_bind(author)
                    .push_bind(console)
                    .push_bind(record.at)
                    // As text, cast by the server: a jsonb parameter cannot hold U+0000.
                    .push_bind(serde_json::to_string(&record.body).unwrap_or_default())
                    .push_unseparated("::json");
            });
            q.build().execute(&mut *tx).await?;
        }
        if next != first {
            sqlx::query("UPDATE teams SET next_seq = $2 WHERE id = $1")
                .bind(team_id)
                .bind(next)
                .execute(&mut *tx)
                .await?;
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(team_id.to_string())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok((outcomes, next as u64 - 1))
    }

    /// The last `limit` records the server could not take, newest first, of one team or all.
    pub async fn rejected(&self, team: Option<&str>, limit: i64) -> Result<Vec<Rejected>> {
        let rows = sqlx::query(
            "SELECT t.name, r.record_id, r.author, r.console, r.raw, r.message, r.received_at \
             FROM rejected r JOIN teams t ON t.id = r.team_id \
             WHERE $1::text IS NULL OR t.name = $1 ORDER BY r.n DESC LIMIT $2",
        )
        .bind(team)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| Rejected {
                team: r.get(0),
                record_id: r.get(1),
                author: r.get(2),
                console: r.get(3),
                raw: r.get(4),
                message: r.get(5),
                received_at: r.get(6),
            })
            .collect())
    }

    /// Up to `limit` records after `after`, in order.
    pub async fn after(&self, team_id: i64, after: u64, limit: i64) -> Result<Vec<Shared>> {
        let rows = sqlx::query(
            "SELECT seq, id, incident, author, console, at, accepted_at, body FROM records \
             WHERE team_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(team_id)
        .bind(after as i64)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                let body: serde_json::Value = r.get(7);
                let seq: i64 = r.get(0);
                Ok(Shared {
                    seq: seq as u64,
                    by: r.get(3),
                    console: r.get(4),
                    accepted_at: r.get(6),
                    record: Record {
                        id: r.get(1),
                        incident: r.get(2),
                        at: r.get(5),
                        // A row that does not parse (edited in the database) is sent as a
                        // kind no console knows: each notes it and reads on, rather than
                        // the stream stopping there for everyone.
                        body: serde_json::from_value(body).unwrap_or_else(|e| {
                            tracing::warn!(team_id, seq, error = %e, "a record in the database does not parse; sent as unknown");
                            Body::Unknown
                        }),
                    },
                })
            })
            .collect()
    }

    /// Whether `incident` was opened on the team (only those are ever named in presence).
    pub async fn is_team_incident(&self, team_id: i64, incident: Uuid) -> Result<bool> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM incident_fields WHERE team_id = $1 AND incident = $2)",
        )
        .bind(team_id)
        .bind(incident)
        .fetch_one(&self.pool)
        .await?)
    }
}

/// One push's view of what is already in the database, and the rows it will add.
struct Batch<'a> {
    /// Record ids already in the stream, with their sequence.
    known: HashMap<Uuid, i64>,
    /// Record ids refused before, with the answer given.
    refused: HashMap<Uuid, serde_json::Value>,
    /// Incidents opened on the team.
    opened: HashSet<Uuid>,
    /// Accepted records to insert: (seq, record, kind).
    rows: Vec<(i64, &'a Record, &'static str)>,
}

/// Checks one record and, when it is taken, queues it at `seq`.
async fn accept<'a>(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    batch: &mut Batch<'a>,
    team_id: i64,
    author: &str,
    console: Uuid,
    record: &'a Record,
    seq: i64,
) -> Result<Outcome> {
    let id = record.id;
    if let Some(seq) = batch.known.get(&id) {
        return Ok(Outcome::Duplicate {
            id,
            seq: *seq as u64,
        });
    }
    if let Some(answer) = batch.refused.get(&id) {
        return Ok(serde_json::from_value(answer.clone())?);
    }
    if let Err(message) = check(record).and_then(|()| check_author(record, author)) {
        return Ok(Outcome::Invalid { id, message });
    }
    let opened = batch.opened.contains(&record.incident);
    let kind = match &record.body {
        // `check` answers it first; never taken either way.
        Body::Unknown => {
            return Ok(Outcome::Invalid {
                id,
                message: "its kind is not one this server knows".into(),
            })
        }
        Body::Open {
            title, severity, ..
        } => {
            if !opened {
                for (field, value) in [
                    ("status", Some("open")),
                    ("severity", Some(severity.as_str())),
                    ("commander", None),
                    ("title", Some(title.as_str())),
                    ("root_cause", None),
                ] {
                    set_field(tx, team_id, record, field, value, seq, author).await?;
                }
                batch.opened.insert(record.incident);
            }
            "open"
        }
        Body::Append {
            entry_kind, data, ..
        } => {
            if !opened {
                return Ok(Outcome::Invalid {
                    id,
                    message: "the incident has not been shared with this team (push its open record first)".into(),
                });
            }
            if let Err(message) = owned_by_sender(
                tx,
                team_id,
                author,
                console,
                record.id,
                entry_kind,
                data.as_ref(),
            )
            .await?
            {
                return Ok(Outcome::Invalid { id, message });
            }
            "append"
        }
        Body::Command {
            field,
            expect,
            value,
            ..
        } => {
            if !opened {
                return Ok(Outcome::Invalid {
                    id,
                    message: "the incident has not been shared with this team (push its open record first)".into(),
                });
            }
            let row = sqlx::query(
                "SELECT value, by_name, at FROM incident_fields \
                 WHERE team_id = $1 AND incident = $2 AND field = $3 FOR UPDATE",
            )
            .bind(team_id)
            .bind(record.incident)
            .bind(field)
            .fetch_optional(&mut **tx)
            .await?;
            // A field no command has set yet (one added after the incident was opened) is empty.
            let (current, by, at): (Option<String>, String, DateTime<Utc>) = match &row {
                Some(row) => (
                    serde_json::from_value(row.get::<serde_json::Value, _>(0))?,
                    row.get(1),
                    row.get(2),
                ),
                None => (None, String::new(), record.at),
            };
            if current != *expect {
                let refused = Outcome::Refused {
                    id,
                    field: field.clone(),
                    current,
                    by,
                    at,
                };
                let answer = serde_json::to_value(&refused)?;
                sqlx::query("INSERT INTO refusals (team_id, id, answer) VALUES ($1, $2, $3::json)")
                    .bind(team_id)
                    .bind(id)
                    .bind(answer.to_string())
                    .execute(&mut **tx)
                    .await?;
                batch.refused.insert(id, answer);
                return Ok(refused);
            }
            set_field(tx, team_id, record, field, value.as_deref(), seq, author).await?;
            "command"
        }
    };
    batch.rows.push((seq, record, kind));
    batch.known.insert(id, seq);
    Ok(Outcome::Accepted {
        id,
        seq: seq as u64,
    })
}

/// An action's or a runbook run's state may be recorded only by the console that drives
/// it, under the same person: its first record (an action's first `action.state`, a run's
/// `runbook.run` without `run`) makes that console the owner. `Err(why)` refuses the record.
async fn owned_by_sender(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    team_id: i64,
    person: &str,
    console: Uuid,
    record: Uuid,
    entry_kind: &str,
    data: Option<&serde_json::Value>,
) -> Result<std::result::Result<(), String>> {
    let field = |k: &str| data.and_then(|d| d[k].as_str()).map(str::to_owned);
    let (kind, key, first) = match entry_kind {
        "action.state" => match field("public_id") {
            Some(key) => ("action", key, true),
            None => {
                return Ok(Err(
                    "an action.state record names its action (public_id)".into()
                ))
            }
        },
        "runbook.run" => match field("run") {
            Some(run) => ("run", run, false),
            None => ("run", record.to_string(), true),
        },
        "runbook.step" => match field("run") {
            Some(run) => ("run", run, false),
            None => return Ok(Err("a runbook.step record names its run".into())),
        },
        _ => return Ok(Ok(())),
    };
    if first {
        sqlx::query(
            "INSERT INTO owners (team_id, kind, key, console, person) VALUES ($1, $2, $3, $4, $5)              ON CONFLICT DO NOTHING",
        )
        .bind(team_id)
        .bind(kind)
        .bind(&key)
        .bind(console)
        .bind(person)
        .execute(&mut **tx)
        .await?;
    }
    let owner: Option<(Uuid, String)> = sqlx::query_as(
        "SELECT console, person FROM owners WHERE team_id = $1 AND kind = $2 AND key = $3",
    )
    .bind(team_id)
    .bind(kind)
    .bind(&key)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(match owner {
        Some((c, p)) if c == console && p == person => Ok(()),
        Some((_, p)) => Err(format!(
            "{kind} {} is driven by {}'s console; only that console records its state",
            shorten(&key, 80),
            shorten(&p, 100)
        )),
        None => Err(format!(
            "no {kind} {} was started on this team",
            shorten(&key, 80)
        )),
    })
}

/// An entry's `author` is the person whose token pushed it (or the console's machinery):
/// a teammate cannot write under another's name.
fn check_author(record: &Record, person: &str) -> std::result::Result<(), String> {
    match &record.body {
        Body::Append { author, .. }
            if author.trim() != person && !wire::MACHINE_AUTHORS.contains(&author.trim()) =>
        {
            Err(format!(
                "an entry's author is the person whose token pushed it ({}); this one names {}",
                shorten(person, 100),
                shorten(author, 100)
            ))
        }
        _ => Ok(()),
    }
}

async fn set_field(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    team_id: i64,
    record: &Record,
    field: &str,
    value: Option<&str>,
    seq: i64,
    author: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO incident_fields (team_id, incident, field, value, seq, by_name, at) \
         VALUES ($1, $2, $3, $4::json, $5, $6, $7) ON CONFLICT (team_id, incident, field) \
         DO UPDATE SET value = excluded.value, seq = $5, by_name = $6, at = $7",
    )
    .bind(team_id)
    .bind(record.incident)
    .bind(field)
    .bind(serde_json::to_string(&value)?)
    .bind(seq)
    .bind(author)
    .bind(record.at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A database on another machine is reached over TLS with its certificate and name
/// verified (`sslmode=verify-full`): the team's whole record, and every person's token
/// hash, cross that connection. This machine (loopback, a Unix socket) needs nothing.
fn verified_if_remote(options: &PgConnectOptions) -> Result<()> {
    use sqlx::postgres::PgSslMode;
    let host = options.get_host();
    let local = host.starts_with('/')
        || host.eq_ignore_ascii_case("localhost")
        || host
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if local || matches!(options.get_ssl_mode(), PgSslMode::VerifyFull) {
        return Ok(());
    }
    anyhow::bail!(
        "the team database at {host} is on another machine and its connection is not verified \
         (sslmode={:?}): add sslmode=verify-full to the database URL (and sslrootcert=/path/to/ca.pem \
         if its CA is not one this machine trusts)",
        options.get_ssl_mode()
    )
}

/// A connection error, with what to do when it is about the database's certificate.
fn explain(e: sqlx::Error) -> anyhow::Error {
    let text = e.to_string();
    if text.contains("UnknownIssuer") || text.contains("invalid peer certificate") {
        anyhow::anyhow!(
            "{text}: the database's certificate is not signed by a CA this machine trusts; \
             name its CA in the database URL (sslrootcert=/path/to/ca.pem)"
        )
    } else {
        e.into()
    }
}

/// Text PostgreSQL's `text` can hold: U+0000 (which a parser's message may quote from a
/// hostile record) written out.
fn storable(text: &str) -> String {
    text.replace('\0', "\\u{0}")
}

const STATUSES: [&str; 4] = ["open", "acknowledged", "mitigated", "resolved"];
const SEVERITIES: [&str; 4] = ["critical", "major", "minor", "info"];

/// What the server refuses whatever the state: values outside their sets, oversized text.
fn check(record: &Record) -> std::result::Result<(), String> {
    let size = serde_json::to_vec(&record.body)
        .map(|b| b.len())
        .unwrap_or(usize::MAX);
    if size > wire::MAX_BODY_BYTES {
        return Err(format!(
            "the record is {size} bytes; at most {} are taken",
            wire::MAX_BODY_BYTES
        ));
    }
    let title_ok = |t: &str| (1..=200).contains(&t.trim().chars().count());
    match &record.body {
        Body::Unknown => {
            return Err("its kind is not one this server knows (open, append, command)".into())
        }
        Body::Open {
            title, severity, ..
        } => {
            if !title_ok(title) {
                return Err("an incident's title is 1 to 200 characters".into());
            }
            if !SEVERITIES.contains(&severity.as_str()) {
                return Err(format!("unknown severity {severity:?}"));
            }
        }
        Body::Append {
            entry_kind, author, ..
        } => {
            if !(1..=40).contains(&entry_kind.len()) {
                return Err("an entry's kind is 1 to 40 characters".into());
            }
            if !(1..=100).contains(&author.trim().chars().count()) {
                return Err("an entry's author is 1 to 100 characters".into());
            }
        }
        Body::Command { field, value, .. } => {
            let ok = match (field.as_str(), value.as_deref()) {
                ("status", Some(v)) => STATUSES.contains(&v),
                ("severity", Some(v)) => SEVERITIES.contains(&v),
                ("commander", None) => true,
                ("commander", Some(v)) => (1..=100).contains(&v.trim().chars().count()),
                ("title", Some(v)) => title_ok(v),
                ("root_cause", None) => true,
                ("root_cause", Some(v)) => (1..=100).contains(&v.trim().chars().count()),
                (f, _) if !wire::FIELDS.contains(&f) => {
                    return Err(format!(
                        "{f:?} is not a shared field (those are {})",
                        wire::FIELDS.join(", ")
                    ))
                }
                _ => false,
            };
            if !ok {
                return Err(match value {
                    Some(v) => format!("{v:?} is not a value {field} can take"),
                    None => format!("{field} cannot be cleared"),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_remote_database_must_be_verified_and_a_local_one_need_not() {
        use std::str::FromStr;
        let check =
            |url: &str| super::verified_if_remote(&super::PgConnectOptions::from_str(url).unwrap());
        assert!(check("postgres://u:p@127.0.0.1:5432/team").is_ok());
        assert!(check("postgres://u:p@localhost/team").is_ok());
        assert!(check("postgres://u:p@db.internal/team?sslmode=verify-full").is_ok());
        for unverified in [
            "postgres://u:p@db.internal/team",
            "postgres://u:p@db.internal/team?sslmode=require",
            "postgres://u:p@10.0.0.5/team?sslmode=verify-ca",
        ] {
            let err = check(unverified).expect_err(unverified).to_string();
            assert!(err.contains("sslmode=verify-full"), "{unverified}: {err}");
        }
    }
}
