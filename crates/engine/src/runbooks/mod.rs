//! Runbooks: what the senior engineer knows, as steps anyone on call can follow.
//!
//! `format.rs` parses a file; this module loads the library (built-in runbooks for the
//! simulator's scenarios, the user's runbook folder, and folders named in settings),
//! keeps every load error for the diagnostics view, and matches runbooks to incidents,
//! best match first, with the reasons.

pub mod format;
pub mod rehearse;
pub mod run;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;
use ts_rs::TS;

pub use format::{parse, Runbook, RunbookError, Step};

use firebreak_store::incident::Incident;

/// The runbooks that ship with Firebreak, one per simulator scenario.
pub const BUILT_IN: &[(&str, &str)] = &[
    (
        "bad-model-version.md",
        include_str!("builtin/bad-model-version.md"),
    ),
    (
        "pipeline-bottleneck.md",
        include_str!("builtin/pipeline-bottleneck.md"),
    ),
    (
        "node-loss-cascade.md",
        include_str!("builtin/node-loss-cascade.md"),
    ),
    (
        "kv-cache-pressure.md",
        include_str!("builtin/kv-cache-pressure.md"),
    ),
];

/// The settings key of the extra runbook folders (a JSON list of paths).
pub const FOLDERS_SETTING: &str = "runbooks.folders";

/// Where runbooks are loaded from: the user's runbook folder, then the folders added in
/// settings (a checkout of a team's runbook repository, say).
pub async fn folders(store: &firebreak_store::Store, user_folder: &Path) -> Vec<PathBuf> {
    let mut all = vec![user_folder.to_owned()];
    all.extend(extra_folders(store).await);
    all
}

/// The folders added in settings.
pub async fn extra_folders(store: &firebreak_store::Store) -> Vec<PathBuf> {
    store
        .setting(FOLDERS_SETTING)
        .await
        .ok()
        .flatten()
        .and_then(|s| serde_json::from_str::<Vec<PathBuf>>(&s).ok())
        .unwrap_or_default()
}

/// Files larger than this are refused unread.
const MAX_FILE_BYTES: u64 = 256 * 1024;

/// Every runbook that loaded, and every file that did not.
#[derive(Debug, Clone, Default, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Library {
    pub runbooks: Vec<Runbook>,
    pub errors: Vec<RunbookError>,
}

impl Library {
    /// The built-in runbooks, then each folder's `*.md` files in name order. A later
    /// runbook with the id of an earlier one replaces it (a team can override a built-in),
    /// and the replacement is reported, so it is never a surprise.
    pub fn load(folders: &[PathBuf]) -> Library {
        let mut lib = Library::default();
        for (name, text) in BUILT_IN {
            lib.add(parse(&format!("builtin:{name}"), text));
        }
        for folder in folders {
            let Ok(read) = std::fs::read_dir(folder) else {
                // A folder that does not exist yet is not an error; one that cannot be read is.
                if folder.exists() {
                    lib.errors.push(RunbookError {
                        source: folder.display().to_string(),
                        line: 0,
                        message: "cannot read this folder".into(),
                    });
                }
                continue;
            };
            let mut files: Vec<PathBuf> = read
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "md"))
                .collect();
            files.sort();
            for file in files {
                lib.add(load_file(&file));
            }
        }
        lib
    }

    /// Loads exactly these files (for `firebreak runbooks check`).
    pub fn load_files(files: &[PathBuf]) -> Library {
        let mut lib = Library::default();
        for f in files {
            lib.add(load_file(f));
        }
        lib
    }

    fn add(&mut self, loaded: Result<Runbook, RunbookError>) {
        match loaded {
            Ok(rb) => {
                if let Some(i) = self.runbooks.iter().position(|r| r.id == rb.id) {
                    let replaced = self.runbooks.remove(i);
                    self.errors.push(RunbookError {
                        source: rb.source.clone(),
                        line: 0,
                        message: format!(
                            "runbook {:?} replaces the one from {}",
                            rb.id, replaced.source
                        ),
                    });
                }
                self.runbooks.push(rb);
            }
            Err(e) => self.errors.push(e),
        }
    }

    pub fn get(&self, id: &str) -> Option<&Runbook> {
        self.runbooks.iter().find(|r| r.id == id)
    }
}

/// A cheap fingerprint of the folders' runbook files (names, sizes, times), to notice
/// edits without a file-watching dependency.
pub fn fingerprint(folders: &[PathBuf]) -> Vec<(PathBuf, u64, Option<std::time::SystemTime>)> {
    let mut all = Vec::new();
    for folder in folders {
        if let Ok(read) = std::fs::read_dir(folder) {
            for e in read.flatten() {
                let path = e.path();
                if path.extension().is_some_and(|x| x == "md") {
                    let meta = e.metadata().ok();
                    all.push((
                        path,
                        meta.as_ref().map(|m| m.len()).unwrap_or(0),
                        meta.and_then(|m| m.modified().ok()),
                    ));
                }
            }
        }
    }
    all.sort();
    all
}

fn load_file(path: &Path) -> Result<Runbook, RunbookError> {
    let source = path.display().to_string();
    let fail = |message: String| RunbookError {
        source: source.clone(),
        line: 0,
        message,
    };
    let meta = std::fs::metadata(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(fail(format!(
            "{} bytes is more than a runbook needs (limit {MAX_FILE_BYTES})",
            meta.len()
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|_| fail("not UTF-8 text".into()))?;
    parse(&source, &text)
}

/// What the console knows of an incident that runbooks match on.
#[derive(Debug, Clone, Default)]
pub struct IncidentFacts {
    pub service: Option<String>,
    pub severity: Option<firebreak_store::incident::Severity>,
    pub event_types: BTreeSet<String>,
    /// String fields of the incident's events, each with every value seen.
    pub labels: BTreeMap<String, BTreeSet<String>>,
}

impl IncidentFacts {
    pub fn of(incident: &Incident, events: &[(String, serde_json::Value)]) -> IncidentFacts {
        let mut facts = IncidentFacts {
            service: incident.service.clone(),
            severity: Some(incident.severity),
            ..Default::default()
        };
        for (ty, data) in events {
            facts.event_types.insert(ty.clone());
            if let Some(map) = data.as_object() {
                for (k, v) in map {
                    if let Some(s) = v.as_str() {
                        facts
                            .labels
                            .entry(k.clone())
                            .or_default()
                            .insert(s.to_owned());
                    }
                }
            }
        }
        facts
    }
}

/// A runbook that fits an incident, with why.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Match {
    pub runbook_id: String,
    pub title: String,
    pub score: u32,
    pub reasons: Vec<String>,
}

/// Whether a runbook applies to the incident, and how well: every condition it states
/// must hold; each one that holds adds to the score (event types weigh most: they say
/// what is happening, not only where).
pub fn matches(rb: &Runbook, facts: &IncidentFacts) -> Option<Match> {
    let a = &rb.applies_to;
    let mut score = 0;
    let mut reasons = Vec::new();
    if !a.event_types.is_empty() {
        let seen: Vec<&str> = a
            .event_types
            .iter()
            .filter(|t| facts.event_types.contains(*t))
            .map(|t| t.trim_start_matches("dev.firebreak."))
            .collect();
        if seen.is_empty() {
            return None;
        }
        score += 3 * seen.len() as u32;
        reasons.push(format!("the incident has {} events", seen.join(", ")));
    }
    if !a.services.is_empty() {
        let service = facts.service.as_deref()?;
        if !a.services.iter().any(|s| s == service) {
            return None;
        }
        score += 2;
        reasons.push(format!("it is about {service}"));
    }
    for (key, value) in &a.labels {
        if !facts.labels.get(key).is_some_and(|vs| vs.contains(value)) {
            return None;
        }
        score += 1;
        reasons.push(format!("its events have {key} {value}"));
    }
    if !a.severity.is_empty() {
        let sev = facts.severity?;
        if !a.severity.contains(&sev) {
            return None;
        }
        score += 1;
        reasons.push(format!("its severity is {}", sev.as_str()));
    }
    if reasons.is_empty() {
        // A runbook that states no condition applies to everything, last.
        reasons.push("it applies to every incident".into());
    }
    Some(Match {
        runbook_id: rb.id.clone(),
        title: rb.title.clone(),
        score,
        reasons,
    })
}

/// The runbooks that fit, best first (ties by title).
pub fn matching(lib: &Library, facts: &IncidentFacts) -> Vec<Match> {
    let mut found: Vec<Match> = lib
        .runbooks
        .iter()
        .filter_map(|r| matches(r, facts))
        .collect();
    found.sort_by(|a, b| b.score.cmp(&a.score).then_with(|| a.title.cmp(&b.title)));
    found
}
