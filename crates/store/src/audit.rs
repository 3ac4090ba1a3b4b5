//! The audit log: every mutating action and every incident change, hash-chained.
//!
//! A record's hash is SHA-256 over its id, time, actor, subject, what, detail and the
//! previous record's hash (the first record's previous hash is 64 zeros). Records are
//! written by `record`, inside the transaction of the change they describe, so a change
//! and its record commit together or not at all. `verify` recomputes the chain and names
//! the first record that does not match: an edited, inserted or removed record breaks the
//! chain from there on. (Removing records from the end leaves a shorter valid chain; keep
//! a copy of the last hash elsewhere to detect that.)

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::{Sqlite, Transaction};
use ts_rs::TS;

use super::{now_ms, Result, Store};

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audit record as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    pub id: i64,
    pub at_ms: i64,
    pub actor: String,
    /// What changed: `incident/<id>` or `action/<public id>`.
    pub subject: String,
    pub what: String,
    /// The change's details (JSON).
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verification {
    pub records: i64,
    /// The first record whose hash or link does not match, and why.
    pub first_bad: Option<(i64, String)>,
}

fn hash(
    id: i64,
    at_ms: i64,
    actor: &str,
    subject: &str,
    what: &str,
    detail: &str,
    prev: &str,
) -> String {
    let mut h = Sha256::new();
    for part in [
        &id.to_string(),
        &at_ms.to_string(),
        actor,
        subject,
        what,
        detail,
        prev,
    ] {
        // Length-prefixed, so no two different records hash the same text.
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Appends a record in the caller's transaction (the single writer's).
pub async fn record(
    tx: &mut Transaction<'static, Sqlite>,
    actor: &str,
    subject: &str,
    what: &str,
    detail: &serde_json::Value,
) -> Result<()> {
    Chain::read(tx)
        .await?
        .append(tx, actor, subject, what, detail)
        .await
}

/// The chain's end inside one transaction: many records appended without reading the
/// last one back each time (team sync applies thousands in one transaction).
#[derive(Clone)]
pub struct Chain {
    next_id: i64,
    prev: String,
    /// Records made by [`Chain::defer`], not yet written.
    deferred: Vec<AuditRecord>,
}

impl Chain {
    pub async fn read(tx: &mut Transaction<'static, Sqlite>) -> Result<Chain> {
        let last: Option<(i64, String)> =
            sqlx::query_as("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1")
                .fetch_optional(&mut **tx)
                .await?;
        Ok(match last {
            Some((id, hash)) => Chain {
                next_id: id + 1,
                prev: hash,
                deferred: Vec::new(),
            },
            None => Chain {
                next_id: 1,
                prev: GENESIS.to_owned(),
                deferred: Vec::new(),
            },
        })
    }

    pub async fn append(
        &mut self,
        tx: &mut Transaction<'static, Sqlite>,
        actor: &str,
        subject: &str,
        what: &str,
        detail: &serde_json::Value,
    ) -> Result<()> {
        self.flush(tx).await?;
        let at = now_ms();
        let detail = detail.to_string();
        let id = self.next_id;
        let h = hash(id, at, actor, subject, what, &detail, &self.prev);
        sqlx::query(
            "INSERT INTO audit_log (id, at_ms, actor, subject, what, detail, prev_hash, hash) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id)
        .bind(at)
        .bind(actor)
        .bind(subject)
        .bind(what)
        .bind(&detail)
        .bind(&self.prev)
        .bind(&h)
        .execute(&mut **tx)
        .await?;
        self.next_id = id + 1;
        self.prev = h;
        Ok(())
    }

    /// Makes the next record now (its id and hash are fixed) and writes it with the
    /// others deferred at the next [`Chain::flush`] or [`Chain::append`], many rows a
    /// statement. The caller flushes before its transaction commits.
    pub fn defer(&mut self, actor: &str, subject: &str, what: &str, detail: &serde_json::Value) {
        let at_ms = now_ms();
        let detail = detail.to_string();
        let id = self.next_id;
        let h = hash(id, at_ms, actor, subject, what, &detail, &self.prev);
        let prev_hash = std::mem::replace(&mut self.prev, h.clone());
        self.deferred.push(AuditRecord {
            id,
            at_ms,
            actor: actor.to_owned(),
            subject: subject.to_owned(),
            what: what.to_owned(),
            detail,
            prev_hash,
            hash: h,
        });
        self.next_id = id + 1;
    }

    /// Writes the deferred records.
    pub async fn flush(&mut self, tx: &mut Transaction<'static, Sqlite>) -> Result<()> {
        // 8 parameters a row, well under SQLite's limit per statement.
        for rows in self.deferred.chunks(500) {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO audit_log (id, at_ms, actor, subject, what, detail, prev_hash, hash) ",
            );
            q.push_values(rows, |mut b, r| {
                b.push_bind(r.id)
                    .push_bind(r.at_ms)
                    .push_bind(r.actor.as_str())
                    .push_bind(r.subject.as_str())
                    .push_bind(r.what.as_str())
                    .push_bind(r.detail.as_str())
                    .push_bind(r.prev_hash.as_str())
                    .push_bind(r.hash.as_str());
            });
            q.build().execute(&mut **tx).await?;
        }
        self.deferred.clear();
        Ok(())
    }
}

impl Store {
    /// Records of one subject (or all, oldest first).
    pub async fn audit_records(&self, subject: Option<&str>) -> Result<Vec<AuditRecord>> {
        let rows = sqlx::query_as(
            "SELECT id, at_ms, actor, subject, what, detail, prev_hash, hash FROM audit_log \
             WHERE ?1 IS NULL OR subject = ?1 ORDER BY id",
        )
        .bind(subject)
        .fetch_all(self.reader())
        .await?;
        Ok(rows)
    }

    /// Recomputes the chain from the first record.
    pub async fn verify_audit(&self) -> Result<Verification> {
        Ok(verify_chain(&self.audit_records(None).await?))
    }

    /// Checks the audit records teammates' consoles shared (their actions'): each one's
    /// hash against its content, and its link wherever the record before it in the same
    /// console's chain is here too. `first_bad` names the subject and record id.
    pub async fn verify_team_audit(&self) -> Result<(i64, Option<String>)> {
        let rows: Vec<(String, AuditRecord)> = sqlx::query_as::<_, (String, i64, i64, String, String, String, String, String, String)>(
            "SELECT by_name, audit_id, at_ms, actor, subject, what, detail, prev_hash, hash FROM team_audit \
             ORDER BY by_name, audit_id",
        )
        .fetch_all(self.reader())
        .await?
        .into_iter()
        .map(|(by, id, at_ms, actor, subject, what, detail, prev_hash, hash)| {
            (by, AuditRecord { id, at_ms, actor, subject, what, detail, prev_hash, hash })
        })
        .collect();
        let mut previous: Option<&(String, AuditRecord)> = None;
        for row in &rows {
            let (by, r) = row;
            let own = hash(
                r.id,
                r.at_ms,
                &r.actor,
                &r.subject,
                &r.what,
                &r.detail,
                &r.prev_hash,
            );
            if own != r.hash {
                return Ok((
                    rows.len() as i64,
                    Some(format!(
                        "{by}'s record {} ({}) does not match its hash",
                        r.id, r.subject
                    )),
                ));
            }
            if let Some((pby, p)) = previous {
                if pby == by && p.id + 1 == r.id && p.hash != r.prev_hash {
                    return Ok((
                        rows.len() as i64,
                        Some(format!(
                            "{by}'s record {} ({}) does not link to record {}",
                            r.id, r.subject, p.id
                        )),
                    ));
                }
            }
            previous = Some(row);
        }
        Ok((rows.len() as i64, None))
    }
}

/// Recomputes a chain (a store's, or one carried in an export bundle) from its first
/// record, and names the first record that does not match.
pub fn verify_chain(records: &[AuditRecord]) -> Verification {
    let mut prev = GENESIS.to_owned();
    for (expected_id, r) in (1..).zip(records.iter()) {
        let problem = if r.id != expected_id {
            Some(format!("record {expected_id} is missing"))
        } else if r.prev_hash != prev {
            Some("its link to the previous record does not match".to_owned())
        } else if hash(
            r.id,
            r.at_ms,
            &r.actor,
            &r.subject,
            &r.what,
            &r.detail,
            &r.prev_hash,
        ) != r.hash
        {
            Some("its content does not match its hash".to_owned())
        } else {
            None
        };
        if let Some(why) = problem {
            return Verification {
                records: records.len() as i64,
                first_bad: Some((r.id, why)),
            };
        }
        prev = r.hash.clone();
    }
    Verification {
        records: records.len() as i64,
        first_bad: None,
    }
}
