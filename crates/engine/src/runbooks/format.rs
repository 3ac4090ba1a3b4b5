//! The runbook file format: Markdown with YAML front matter. The front matter says what
//! the runbook is, which incidents it applies to, and its ordered steps; the Markdown
//! body is the context an engineer reads first. README has a complete example.
//!
//! Parsing never panics (a property test feeds it anything) and every error names the
//! file, the line and the problem.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use firebreak_store::incident::Severity;
pub use firebreak_store::runbook_step::{Arm, QueryKind, Step, StepAction};

/// A runbook as loaded.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Runbook {
    pub id: String,
    pub title: String,
    pub owner: String,
    pub version: String,
    pub applies_to: AppliesTo,
    /// The rollout guard this runbook recommends for the services it applies to (every
    /// service when it names none): shown in Settings beside each, and in force only once
    /// a person approves it there.
    pub rollout_guard: Option<firebreak_store::guards::GuardMode>,
    pub steps: Vec<Step>,
    /// The Markdown body, shown as text.
    pub body: String,
    /// Where it came from: a path, or `builtin:<file>`.
    pub source: String,
}

impl<'a> From<&'a Runbook> for firebreak_store::runs::RunbookVersion<'a> {
    fn from(r: &'a Runbook) -> Self {
        Self {
            id: &r.id,
            title: &r.title,
            version: &r.version,
            steps: &r.steps,
        }
    }
}

/// Which incidents a runbook is for. Every list that is given must match; an empty list
/// matches anything.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
#[ts(rename_all = "camelCase")]
pub struct AppliesTo {
    /// Event types of which at least one must be on the incident.
    #[serde(default)]
    pub event_types: Vec<String>,
    #[serde(default)]
    pub services: Vec<String>,
    /// Fields of the incident's events that must have these values (`region: us-east`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub severity: Vec<Severity>,
}

/// Whether a step runs without a person: a query, or a branch on a query's value.
pub fn is_automatic(step: &Step) -> bool {
    matches!(step, Step::Query { .. } | Step::Branch { on: Some(_), .. })
}

/// Where a step can go next (step ids; `end` left out), as a run follows it: `next`, else
/// the step below; a branch's arms and `otherwise` (a branch without `otherwise` ends).
fn successors(steps: &[Step], i: usize) -> Vec<&str> {
    let below = || steps.get(i + 1).map(Step::id);
    let mut out: Vec<&str> = match &steps[i] {
        Step::Check { next, .. } | Step::Query { next, .. } | Step::Action { next, .. } => {
            match next.as_deref() {
                Some(n) => vec![n],
                None => below().into_iter().collect(),
            }
        }
        Step::Branch {
            when, otherwise, ..
        } => when
            .iter()
            .map(|a| a.goto.as_str())
            .chain(otherwise.as_deref())
            .collect(),
    };
    out.retain(|n| *n != "end");
    out
}

/// A loop made only of steps that run by themselves (it would write results without end),
/// as the ids along it with the first repeated at the end; None when there is none.
pub fn automatic_cycle(steps: &[Step]) -> Option<Vec<String>> {
    let index = |id: &str| steps.iter().position(|s| s.id() == id);
    // 0 unvisited, 1 on the current path, 2 done.
    let mut state = vec![0u8; steps.len()];
    let mut path: Vec<usize> = Vec::new();
    fn visit(
        steps: &[Step],
        i: usize,
        state: &mut [u8],
        path: &mut Vec<usize>,
        index: &dyn Fn(&str) -> Option<usize>,
    ) -> Option<Vec<String>> {
        state[i] = 1;
        path.push(i);
        for next in successors(steps, i).into_iter().filter_map(index) {
            if !is_automatic(&steps[next]) {
                continue;
            }
            if state[next] == 1 {
                let from = path.iter().position(|p| *p == next).unwrap_or(0);
                let mut ids: Vec<String> = path[from..]
                    .iter()
                    .map(|p| steps[*p].id().to_owned())
                    .collect();
                ids.push(steps[next].id().to_owned());
                return Some(ids);
            }
            if state[next] == 0 {
                if let Some(found) = visit(steps, next, state, path, index) {
                    return Some(found);
                }
            }
        }
        path.pop();
        state[i] = 2;
        None
    }
    for i in 0..steps.len() {
        if is_automatic(&steps[i]) && state[i] == 0 {
            if let Some(found) = visit(steps, i, &mut state, &mut path, &index) {
                return Some(found);
            }
        }
    }
    None
}

/// A comparison in a branch arm.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Condition {
    pub op: Op,
    pub value: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
}

impl Condition {
    /// `> 0.05`, `>= 3`, `< 100`, `<= 1.5`, `= 0`.
    pub fn parse(text: &str) -> Option<Condition> {
        let t = text.trim();
        let (op, rest) = [
            (">=", Op::Ge),
            ("<=", Op::Le),
            (">", Op::Gt),
            ("<", Op::Lt),
            ("=", Op::Eq),
        ]
        .into_iter()
        .find_map(|(s, op)| t.strip_prefix(s).map(|rest| (op, rest)))?;
        let value: f64 = rest.trim().parse().ok()?;
        value.is_finite().then_some(Condition { op, value })
    }

    pub fn holds(&self, x: f64) -> bool {
        match self.op {
            Op::Gt => x > self.value,
            Op::Ge => x >= self.value,
            Op::Lt => x < self.value,
            Op::Le => x <= self.value,
            Op::Eq => x == self.value,
        }
    }
}

/// A problem with a runbook file, at a line (1-based; 0 when the file as a whole).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct RunbookError {
    pub source: String,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for RunbookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}: {}", self.source, self.line, self.message)
        } else {
            write!(f, "{}: {}", self.source, self.message)
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FrontMatter {
    id: String,
    title: String,
    owner: String,
    version: serde_yaml_ng::Value,
    #[serde(default)]
    applies_to: AppliesTo,
    #[serde(default)]
    rollout_guard: Option<firebreak_store::guards::GuardMode>,
    steps: Vec<Step>,
}

/// The 1-based line of the first line of `text` that contains `needle` after `from`.
fn line_of(text: &str, needle: &str, from: usize) -> usize {
    text.lines()
        .enumerate()
        .skip(from.saturating_sub(1))
        .find(|(_, l)| l.contains(needle))
        .map(|(i, _)| i + 1)
        .unwrap_or(from)
}

/// Makes an error at a line of the file being read.
type At<'a> = &'a dyn Fn(usize, String) -> RunbookError;

/// Parses one runbook file. `source` names it in errors.
pub fn parse(source: &str, text: &str) -> Result<Runbook, RunbookError> {
    let err = |line: usize, message: String| RunbookError {
        source: source.to_owned(),
        line,
        message,
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let (yaml, body_at) = front_matter(text, &err)?;
    let fm = read_front_matter(&yaml, text, &err)?;
    let version = check_header(&fm, text, &err)?;
    let lines_of = check_steps(&fm.steps, text, &err)?;
    check_paths(&fm.steps, &lines_of, text, &err)?;
    if let Some(cycle) = automatic_cycle(&fm.steps) {
        let first = fm
            .steps
            .iter()
            .position(|s| s.id() == cycle[0])
            .map_or(line_of(text, "steps:", 1), |i| lines_of[i]);
        return Err(err(
            first,
            format!(
                "steps {} run by themselves in a loop: a check or an action (something a \
                 person does) must be part of every loop",
                cycle.join(" → ")
            ),
        ));
    }
    let body = text.get(body_at..).unwrap_or_default().trim().to_owned();
    Ok(Runbook {
        id: fm.id,
        title: fm.title.trim().to_owned(),
        owner: fm.owner.trim().to_owned(),
        version,
        applies_to: fm.applies_to,
        rollout_guard: fm.rollout_guard,
        steps: fm.steps,
        body,
        source: source.to_owned(),
    })
}

/// The YAML between the first line (`---`) and the next line that is exactly `---`, and
/// where the body after it starts.
fn front_matter(text: &str, err: At) -> Result<(String, usize), RunbookError> {
    let mut lines = text.split_inclusive('\n');
    if lines.next().map(str::trim_end) != Some("---") {
        return Err(err(
            1,
            "a runbook starts with YAML front matter: a first line of `---`".into(),
        ));
    }
    let mut yaml = String::new();
    let mut pos = text.find('\n').map(|i| i + 1).unwrap_or(text.len());
    for line in lines {
        if line.trim_end() == "---" {
            return Ok((yaml, pos + line.len()));
        }
        yaml.push_str(line);
        pos += line.len();
    }
    Err(err(
        1,
        "the front matter is not closed: add a line of `---` after it".into(),
    ))
}

/// The front matter read, its errors at the file's lines.
fn read_front_matter(yaml: &str, text: &str, err: At) -> Result<FrontMatter, RunbookError> {
    serde_yaml_ng::from_str(yaml).map_err(|e| {
        // Front matter line n is file line n + 1 (after the opening `---`).
        let line = e.location().map(|l| l.line() + 1).unwrap_or(2);
        let message = e.to_string();
        // serde_yaml appends " at line X column Y" for the YAML's own lines: drop it, the
        // line this error names is the file's.
        let message = message
            .split(" at line ")
            .next()
            .unwrap_or(&message)
            .to_owned();
        // Steps are tagged by `kind`, which makes the YAML reader point at the start of the
        // step: an unknown kind, field or value is better found by its own text.
        let line = if message.contains("unknown variant") || message.contains("unknown field") {
            message
                .split('`')
                .nth(1)
                .map(|token| line_of(text, token, line))
                .unwrap_or(line)
        } else {
            line
        };
        err(line, message)
    })
}

/// An id is 1 to 64 lowercase letters, digits or dashes.
fn check_id(what: &str, id: &str, line: usize, err: At) -> Result<(), RunbookError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(err(
            line,
            format!("{what} {id:?} must be 1 to 64 lowercase letters, digits or dashes"),
        ))
    }
}

/// The runbook's own fields: id, title, owner, at least one step, known event types.
/// Returns its version as text.
fn check_header(fm: &FrontMatter, text: &str, err: At) -> Result<String, RunbookError> {
    let version = match &fm.version {
        serde_yaml_ng::Value::String(s) => s.clone(),
        serde_yaml_ng::Value::Number(n) => n.to_string(),
        _ => {
            return Err(err(
                line_of(text, "version:", 1),
                "version is a number or a string".into(),
            ))
        }
    };
    check_id("the runbook id", &fm.id, line_of(text, "id:", 1), err)?;
    for (what, value) in [("title", &fm.title), ("owner", &fm.owner)] {
        if value.trim().is_empty() {
            return Err(err(
                line_of(text, &format!("{what}:"), 1),
                format!("{what} must not be empty"),
            ));
        }
    }
    if fm.steps.is_empty() {
        return Err(err(
            line_of(text, "steps:", 1),
            "a runbook needs at least one step".into(),
        ));
    }
    for ty in &fm.applies_to.event_types {
        if firebreak_protocol::events::EventType::parse(ty).is_none() {
            return Err(err(
                line_of(text, ty, 1),
                format!("unknown event type {ty:?} in applies_to (see PROTOCOL.md)"),
            ));
        }
    }
    Ok(version)
}

/// Each step on its own: a good id, not `end`, not twice, a title, `to_revision` only on
/// a rollback. Returns each step's line in the file.
fn check_steps(steps: &[Step], text: &str, err: At) -> Result<Vec<usize>, RunbookError> {
    let mut ids = HashSet::new();
    let mut lines_of = Vec::new();
    let mut after = line_of(text, "steps:", 1);
    for step in steps {
        // Each step's line is searched for below the previous step's.
        let line = line_of(text, &format!("id: {}", step.id()), after + 1);
        after = line;
        check_id("the step id", step.id(), line, err)?;
        if step.id() == "end" {
            return Err(err(line, "`end` is reserved: it ends the run".into()));
        }
        if !ids.insert(step.id().to_owned()) {
            return Err(err(line, format!("two steps are called {:?}", step.id())));
        }
        if step.title().trim().is_empty() {
            return Err(err(line, format!("step {:?} needs a title", step.id())));
        }
        if let Step::Action {
            action,
            to_revision: Some(_),
            ..
        } = step
        {
            if *action != StepAction::Rollback {
                return Err(err(
                    line_of(text, "to_revision:", line),
                    format!(
                        "step {:?}: `to_revision` names the revision a rollback goes to; a {} has none",
                        step.id(),
                        action.kind().noun()
                    ),
                ));
            }
        }
        lines_of.push(line);
    }
    Ok(lines_of)
}

/// Where the steps lead: every `next`, `goto` and `otherwise` names a step (or `end`), a
/// branch has arms, branches on a query step, and compares with conditions it can read.
fn check_paths(
    steps: &[Step],
    lines_of: &[usize],
    text: &str,
    err: At,
) -> Result<(), RunbookError> {
    let ids: HashSet<&str> = steps.iter().map(Step::id).collect();
    let query_ids: HashSet<&str> = steps
        .iter()
        .filter(|s| matches!(s, Step::Query { .. }))
        .map(Step::id)
        .collect();
    let target = |to: &str, line: usize| -> Result<(), RunbookError> {
        if to == "end" || ids.contains(to) {
            Ok(())
        } else {
            Err(err(
                line,
                format!(
                    "no step is called {to:?} (known: {})",
                    steps.iter().map(Step::id).collect::<Vec<_>>().join(", ")
                ),
            ))
        }
    };
    for (step, &line) in steps.iter().zip(lines_of) {
        if let Some(next) = step.next() {
            target(next, line_of(text, &format!("next: {next}"), line))?;
        }
        let Step::Branch {
            id,
            on,
            when,
            otherwise,
            ..
        } = step
        else {
            continue;
        };
        if when.is_empty() {
            return Err(err(
                line,
                format!("branch {id:?} needs at least one `when` arm"),
            ));
        }
        if let Some(q) = on {
            if !query_ids.contains(q.as_str()) {
                return Err(err(
                    line_of(text, &format!("on: {q}"), line),
                    format!("branch {id:?} is on {q:?}, which is not a query step"),
                ));
            }
        }
        for arm in when {
            let arm_line = line_of(text, &format!("goto: {}", arm.goto), line);
            if on.is_some() && Condition::parse(&arm.condition).is_none() {
                return Err(err(
                    line_of(text, &arm.condition, line),
                    format!(
                        "{:?} is not a condition: write a comparison and a number, like \"> 0.05\"",
                        arm.condition
                    ),
                ));
            }
            target(&arm.goto, arm_line)?;
        }
        if let Some(o) = otherwise {
            target(o, line_of(text, &format!("otherwise: {o}"), line))?;
        }
    }
    Ok(())
}
