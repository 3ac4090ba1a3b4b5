//! The post-incident review as recorded: key moments a reviewer moved (with a reason),
//! annotations on timeline entries, the root-cause category, contributing factors and
//! follow-up items. Nothing here changes the timeline: it says what happened, the review
//! says what the team made of it. Every change carries its author and time.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use super::incidents::{require_author, EntryRow};
use super::{now_ms, Result, Store, StoreError};
use crate::incident::{EntryKind, TimelineEntry};

/// The key moments of an incident's life, in order.
pub const MOMENTS: [&str; 5] = [
    "impact_began",
    "detected",
    "acknowledged",
    "mitigated",
    "resolved",
];

/// Where the editable list of root-cause categories is kept.
pub const ROOT_CAUSES_SETTING: &str = "review.root_causes";

/// The list a new console starts with.
pub const DEFAULT_ROOT_CAUSES: [&str; 5] = [
    "bad model version",
    "deployment pipeline bottleneck",
    "capacity",
    "dependency failure",
    "configuration",
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct MomentEdit {
    pub id: i64,
    pub moment: String,
    /// None: put back to the time found in the recorded data.
    pub at_ms: Option<i64>,
    pub reason: String,
    pub author: String,
    pub edited_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Annotation {
    pub id: i64,
    pub entry_id: i64,
    pub body: String,
    pub author: String,
    pub created_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum FollowUpStatus {
    Open,
    InProgress,
    Done,
}

impl FollowUpStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::InProgress => "in_progress",
            Self::Done => "done",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Open, Self::InProgress, Self::Done]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct FollowUp {
    pub id: i64,
    pub incident_id: i64,
    pub title: String,
    pub owner: String,
    /// YYYY-MM-DD.
    pub due: Option<String>,
    pub status: FollowUpStatus,
    pub created_by: String,
    pub created_ms: i64,
    pub updated_by: String,
    pub updated_ms: i64,
}

/// A follow-up as the reviewer writes it (new, or the whole of an edited one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct FollowUpDraft {
    pub title: String,
    pub owner: String,
    pub due: Option<String>,
    pub status: FollowUpStatus,
}

/// Everything reviewers have recorded about one incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Review {
    pub incident_id: i64,
    pub root_cause: Option<String>,
    pub root_cause_by: Option<String>,
    pub factors: Vec<String>,
    pub follow_ups: Vec<FollowUp>,
    /// Oldest first; the newest edit of a moment is the one in force.
    pub moment_edits: Vec<MomentEdit>,
    /// In timeline-entry order, then oldest first.
    pub annotations: Vec<Annotation>,
}

impl Review {
    /// The edit in force for `moment`, if a reviewer moved it.
    pub fn moment_edit(&self, moment: &str) -> Option<&MomentEdit> {
        self.moment_edits.iter().rev().find(|e| e.moment == moment)
    }
}

/// Which entries of a timeline to show. Empty fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase", default)]
pub struct TimelineFilter {
    pub kinds: Vec<EntryKind>,
    /// Only cluster events about this service.
    pub service: Option<String>,
    pub author: Option<String>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
}

/// One page of a filtered timeline and, with the first page, how many entries the filter
/// keeps in all (later pages do not count again).
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct FilteredPage {
    pub entries: Vec<TimelineEntry>,
    pub total: Option<i64>,
}

/// What the filter can offer for one incident.
#[derive(Debug, Clone, Default, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct TimelineFacets {
    pub kinds: Vec<EntryKind>,
    pub services: Vec<String>,
    pub authors: Vec<String>,
    /// The times of the first and the last entry (None for an empty timeline).
    pub span_ms: Option<(i64, i64)>,
}

/// A factor named on earlier incidents, offered while typing so the same factor is
/// written the same way (and so counted as recurring).
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct KnownFactor {
    pub factor: String,
    pub incidents: i64,
}

/// The key two spellings of one factor share: lower case, single spaces.
pub fn factor_key(factor: &str) -> String {
    factor
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

fn invalid(msg: impl Into<String>) -> StoreError {
    StoreError::Invalid(msg.into())
}

fn clean<'a>(what: &str, text: &'a str, max: usize) -> Result<&'a str> {
    let text = text.trim();
    if text.is_empty() {
        return Err(invalid(format!("{what} is empty")));
    }
    if text.chars().count() > max {
        return Err(invalid(format!("{what} is longer than {max} characters")));
    }
    Ok(text)
}

fn check_due(due: Option<&str>) -> Result<Option<String>> {
    let Some(due) = due.map(str::trim).filter(|d| !d.is_empty()) else {
        return Ok(None);
    };
    chrono::NaiveDate::parse_from_str(due, "%Y-%m-%d").map_err(|_| {
        invalid(format!(
            "the due date {due:?} is not a date like 2026-12-31"
        ))
    })?;
    Ok(Some(due.to_owned()))
}

type FollowUpRow = (
    i64,
    i64,
    String,
    String,
    Option<String>,
    String,
    String,
    i64,
    String,
    i64,
);

fn follow_up(r: FollowUpRow) -> Result<FollowUp> {
    Ok(FollowUp {
        status: FollowUpStatus::parse(&r.5)
            .ok_or_else(|| invalid(format!("unknown follow-up status {:?}", r.5)))?,
        id: r.0,
        incident_id: r.1,
        title: r.2,
        owner: r.3,
        due: r.4,
        created_by: r.6,
        created_ms: r.7,
        updated_by: r.8,
        updated_ms: r.9,
    })
}

/// `$before`, every follow-up column, `$after`: static SQL (sqlx takes no built strings).
macro_rules! follow_up_sql {
    ($before:literal, $after:literal) => {
        concat!(
            $before,
            "id, incident_id, title, owner, due, status, created_by, created_ms, updated_by, \
             updated_ms",
            $after
        )
    };
}

impl Store {
    /// The root-cause categories reviewers pick from.
    pub async fn root_causes(&self) -> Result<Vec<String>> {
        Ok(match self.setting(ROOT_CAUSES_SETTING).await? {
            Some(text) => serde_json::from_str(&text)
                .map_err(|e| invalid(format!("the root-cause list in settings is broken: {e}")))?,
            None => DEFAULT_ROOT_CAUSES.iter().map(|s| s.to_string()).collect(),
        })
    }

    /// Replaces the list. Incidents already filed under a category that leaves the list
    /// keep it: the review said so at the time.
    pub async fn set_root_causes(&self, list: &[String]) -> Result<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        for name in list {
            let name = clean("a category", name, 100)?;
            if out.iter().any(|o| factor_key(o) == factor_key(name)) {
                return Err(invalid(format!("{name:?} is in the list twice")));
            }
            out.push(name.to_owned());
        }
        if out.is_empty() {
            return Err(invalid("keep at least one root-cause category"));
        }
        let text = serde_json::to_string(&out).map_err(|e| invalid(e.to_string()))?;
        self.set_setting(ROOT_CAUSES_SETTING, &text).await?;
        Ok(out)
    }

    pub async fn review(&self, incident_id: i64) -> Result<Review> {
        self.require_incident(incident_id).await?;
        let root: Option<(Option<String>, String)> = sqlx::query_as(
            "SELECT root_cause, updated_by FROM incident_reviews WHERE incident_id = ?",
        )
        .bind(incident_id)
        .fetch_optional(self.reader())
        .await?;
        let factors = self
            .strings_of(
                "SELECT factor FROM contributing_factors WHERE incident_id = ? ORDER BY id",
                incident_id,
            )
            .await?;
        let follow_ups: Vec<FollowUpRow> = sqlx::query_as(follow_up_sql!(
            "SELECT ",
            " FROM follow_ups WHERE incident_id = ? ORDER BY id"
        ))
        .bind(incident_id)
        .fetch_all(self.reader())
        .await?;
        let edits: Vec<(i64, String, Option<i64>, String, String, i64)> = sqlx::query_as(
            "SELECT id, moment, at_ms, reason, author, edited_ms FROM moment_edits \
             WHERE incident_id = ? ORDER BY id",
        )
        .bind(incident_id)
        .fetch_all(self.reader())
        .await?;
        let annotations: Vec<(i64, i64, String, String, i64)> = sqlx::query_as(
            "SELECT id, entry_id, body, author, created_ms FROM annotations \
             WHERE incident_id = ? ORDER BY entry_id, id",
        )
        .bind(incident_id)
        .fetch_all(self.reader())
        .await?;
        let (root_cause, root_cause_by) = match root {
            Some((cause, by)) => (cause, Some(by)),
            None => (None, None),
        };
        Ok(Review {
            incident_id,
            root_cause,
            root_cause_by,
            factors,
            follow_ups: follow_ups
                .into_iter()
                .map(follow_up)
                .collect::<Result<_>>()?,
            moment_edits: edits
                .into_iter()
                .map(
                    |(id, moment, at_ms, reason, author, edited_ms)| MomentEdit {
                        id,
                        moment,
                        at_ms,
                        reason,
                        author,
                        edited_ms,
                    },
                )
                .collect(),
            annotations: annotations
                .into_iter()
                .map(|(id, entry_id, body, author, created_ms)| Annotation {
                    id,
                    entry_id,
                    body,
                    author,
                    created_ms,
                })
                .collect(),
        })
    }

    /// Moves a key moment to `at_ms` (None: back to the recorded default), with a reason.
    pub async fn set_moment(
        &self,
        incident_id: i64,
        moment: &str,
        at_ms: Option<i64>,
        reason: &str,
        author: &str,
    ) -> Result<MomentEdit> {
        let author = require_author(author)?;
        if !MOMENTS.contains(&moment) {
            return Err(invalid(format!(
                "{moment:?} is not a key moment (one of {})",
                MOMENTS.join(", ")
            )));
        }
        let reason = clean("the reason for moving a key moment", reason, 2000)?;
        self.require_incident(incident_id).await?;
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO moment_edits (incident_id, moment, at_ms, reason, author, edited_ms) \
             VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(incident_id)
        .bind(moment)
        .bind(at_ms)
        .bind(reason)
        .bind(author)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(MomentEdit {
            id,
            moment: moment.to_owned(),
            at_ms,
            reason: reason.to_owned(),
            author: author.to_owned(),
            edited_ms: now,
        })
    }

    /// A reviewer's remark on one entry of the incident's timeline.
    pub async fn annotate(
        &self,
        incident_id: i64,
        entry_id: i64,
        body: &str,
        author: &str,
    ) -> Result<Annotation> {
        let author = require_author(author)?;
        let body = clean("an annotation", body, 4000)?;
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let belongs: Option<(i64,)> =
            sqlx::query_as("SELECT id FROM timeline_entries WHERE id = ? AND incident_id = ?")
                .bind(entry_id)
                .bind(incident_id)
                .fetch_optional(&mut *tx)
                .await?;
        if belongs.is_none() {
            return Err(StoreError::NotFound {
                what: format!("timeline entry {entry_id} of incident {incident_id}"),
            });
        }
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO annotations (incident_id, entry_id, body, author, created_ms) \
             VALUES (?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(incident_id)
        .bind(entry_id)
        .bind(body)
        .bind(author)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Annotation {
            id,
            entry_id,
            body: body.to_owned(),
            author: author.to_owned(),
            created_ms: now,
        })
    }

    /// Files the incident under a root-cause category from the list (None: not yet known).
    pub async fn set_root_cause(
        &self,
        incident_id: i64,
        category: Option<&str>,
        author: &str,
    ) -> Result<()> {
        let author = require_author(author)?;
        let category = category.map(str::trim).filter(|c| !c.is_empty());
        if let Some(c) = category {
            let list = self.root_causes().await?;
            if !list.iter().any(|l| l == c) {
                return Err(invalid(format!(
                    "{c:?} is not in the root-cause list ({}); add it in Settings first",
                    list.join(", ")
                )));
            }
        }
        self.require_incident(incident_id).await?;
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO incident_reviews (incident_id, root_cause, updated_by, updated_ms) \
             VALUES (?, ?, ?, ?) ON CONFLICT (incident_id) DO UPDATE SET \
             root_cause = excluded.root_cause, updated_by = excluded.updated_by, \
             updated_ms = excluded.updated_ms",
        )
        .bind(incident_id)
        .bind(category)
        .bind(author)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Adds a contributing factor; naming one already there (in any spelling) is refused.
    pub async fn add_factor(&self, incident_id: i64, factor: &str, author: &str) -> Result<()> {
        let author = require_author(author)?;
        let factor = clean("a contributing factor", factor, 200)?;
        self.require_incident(incident_id).await?;
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO contributing_factors (incident_id, factor, factor_key, added_by, added_ms) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(incident_id)
        .bind(factor)
        .bind(factor_key(factor))
        .bind(author)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(|e| match StoreError::from(e) {
            StoreError::Constraint(_) => {
                invalid(format!("{factor:?} is already a contributing factor"))
            }
            other => other,
        })?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn remove_factor(&self, incident_id: i64, factor: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let gone = sqlx::query(
            "DELETE FROM contributing_factors WHERE incident_id = ? AND factor_key = ?",
        )
        .bind(incident_id)
        .bind(factor_key(factor))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        if gone == 0 {
            return Err(StoreError::NotFound {
                what: format!("contributing factor {factor:?}"),
            });
        }
        Ok(())
    }

    /// Factors named on any incident, the most often named first.
    pub async fn known_factors(&self) -> Result<Vec<KnownFactor>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT MIN(factor), COUNT(DISTINCT incident_id) AS n FROM contributing_factors \
             GROUP BY factor_key ORDER BY n DESC, factor_key LIMIT 200",
        )
        .fetch_all(self.reader())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(factor, incidents)| KnownFactor { factor, incidents })
            .collect())
    }

    pub async fn add_follow_up(
        &self,
        incident_id: i64,
        draft: &FollowUpDraft,
        author: &str,
    ) -> Result<FollowUp> {
        let author = require_author(author)?;
        let title = clean("a follow-up's title", &draft.title, 500)?;
        let owner = clean("a follow-up's owner", &draft.owner, 100)?;
        let due = check_due(draft.due.as_deref())?;
        self.require_incident(incident_id).await?;
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let row: FollowUpRow = sqlx::query_as(follow_up_sql!(
            "INSERT INTO follow_ups (incident_id, title, owner, due, status, created_by, \
             created_ms, updated_by, updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING ",
            ""
        ))
        .bind(incident_id)
        .bind(title)
        .bind(owner)
        .bind(due)
        .bind(draft.status.as_str())
        .bind(author)
        .bind(now)
        .bind(author)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        follow_up(row)
    }

    pub async fn update_follow_up(
        &self,
        id: i64,
        draft: &FollowUpDraft,
        author: &str,
    ) -> Result<FollowUp> {
        let author = require_author(author)?;
        let title = clean("a follow-up's title", &draft.title, 500)?;
        let owner = clean("a follow-up's owner", &draft.owner, 100)?;
        let due = check_due(draft.due.as_deref())?;
        let mut tx = self.begin_write().await?;
        let row: Option<FollowUpRow> = sqlx::query_as(follow_up_sql!(
            "UPDATE follow_ups SET title = ?, owner = ?, due = ?, status = ?, updated_by = ?, \
             updated_ms = ? WHERE id = ? RETURNING ",
            ""
        ))
        .bind(title)
        .bind(owner)
        .bind(due)
        .bind(draft.status.as_str())
        .bind(author)
        .bind(now_ms())
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        follow_up(row.ok_or_else(|| StoreError::NotFound {
            what: format!("follow-up {id}"),
        })?)
    }

    /// One page of the incident's timeline through `filter`, in time order, after the
    /// entry at `after` = (at_ms, id): keyset pagination like [`Store::timeline`].
    pub async fn filtered_timeline(
        &self,
        incident_id: i64,
        filter: &TimelineFilter,
        after: Option<(i64, i64)>,
        limit: i64,
    ) -> Result<Vec<TimelineEntry>> {
        let (after_at, after_id) = after.unwrap_or((i64::MIN, i64::MIN));
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(format!(
            "SELECT {} FROM timeline_entries t WHERE t.incident_id = ",
            super::incidents::ENTRY_COLUMNS
        ));
        q.push_bind(incident_id);
        q.push(" AND (t.at_ms, t.id) > (")
            .push_bind(after_at)
            .push(", ")
            .push_bind(after_id)
            .push(")");
        push_filter(&mut q, filter);
        q.push(" ORDER BY t.at_ms, t.id LIMIT ")
            .push_bind(limit.clamp(1, super::incidents::MAX_PAGE));
        let rows: Vec<EntryRow> = q.build_query_as().fetch_all(self.reader()).await?;
        rows.into_iter().map(TimelineEntry::try_from).collect()
    }

    /// How many entries `filter` keeps.
    pub async fn filtered_timeline_count(
        &self,
        incident_id: i64,
        filter: &TimelineFilter,
    ) -> Result<i64> {
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "SELECT COUNT(*) FROM timeline_entries t WHERE t.incident_id = ",
        );
        q.push_bind(incident_id);
        push_filter(&mut q, filter);
        let (n,): (i64,) = q.build_query_as().fetch_one(self.reader()).await?;
        Ok(n)
    }

    /// The kinds, services and authors found on an incident's timeline.
    pub async fn timeline_facets(&self, incident_id: i64) -> Result<TimelineFacets> {
        let kinds = self
            .strings_of(
                "SELECT DISTINCT kind FROM timeline_entries WHERE incident_id = ? ORDER BY kind",
                incident_id,
            )
            .await?;
        let authors = self
            .strings_of(
                "SELECT DISTINCT author FROM timeline_entries WHERE incident_id = ? ORDER BY author",
                incident_id,
            )
            .await?;
        let services = self
            .strings_of(
                "SELECT DISTINCT e.service FROM timeline_entries t JOIN events e ON e.seq = t.event_seq \
                 WHERE t.incident_id = ? AND e.service IS NOT NULL ORDER BY e.service",
                incident_id,
            )
            .await?;
        let span: (Option<i64>, Option<i64>) = sqlx::query_as(
            "SELECT MIN(at_ms), MAX(at_ms) FROM timeline_entries WHERE incident_id = ?",
        )
        .bind(incident_id)
        .fetch_one(self.reader())
        .await?;
        Ok(TimelineFacets {
            kinds: kinds.iter().filter_map(|k| EntryKind::parse(k)).collect(),
            services,
            authors,
            span_ms: span.0.zip(span.1),
        })
    }

    /// Fails with NotFound unless the incident exists (without counting its timeline, as
    /// [`Store::incident`] does).
    async fn require_incident(&self, incident_id: i64) -> Result<()> {
        let found: Option<(i64,)> = sqlx::query_as("SELECT id FROM incidents WHERE id = ?")
            .bind(incident_id)
            .fetch_optional(self.reader())
            .await?;
        found.map(|_| ()).ok_or_else(|| StoreError::NotFound {
            what: format!("incident {incident_id}"),
        })
    }

    /// The one text column `sql` selects for an incident.
    async fn strings_of(&self, sql: &'static str, incident_id: i64) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(sql)
            .bind(incident_id)
            .fetch_all(self.reader())
            .await?;
        Ok(rows.into_iter().map(|(s,)| s).collect())
    }
}

fn push_filter(q: &mut sqlx::QueryBuilder<sqlx::Sqlite>, f: &TimelineFilter) {
    if !f.kinds.is_empty() {
        q.push(" AND t.kind IN (");
        let mut sep = q.separated(", ");
        for k in &f.kinds {
            sep.push_bind(k.as_str());
        }
        sep.push_unseparated(")");
    }
    if let Some(service) = f.service.as_deref().filter(|s| !s.is_empty()) {
        q.push(" AND EXISTS (SELECT 1 FROM events e WHERE e.seq = t.event_seq AND e.service = ")
            .push_bind(service.to_owned())
            .push(")");
    }
    if let Some(author) = f.author.as_deref().filter(|s| !s.is_empty()) {
        q.push(" AND t.author = ").push_bind(author.to_owned());
    }
    if let Some(from) = f.from_ms {
        q.push(" AND t.at_ms >= ").push_bind(from);
    }
    if let Some(to) = f.to_ms {
        q.push(" AND t.at_ms <= ").push_bind(to);
    }
}
