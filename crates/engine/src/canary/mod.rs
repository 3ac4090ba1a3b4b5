//! The canary verdict: during a rollout, the new revision's figures against the stable
//! one's over the same windows (`service.revision_metrics`), judged after every window
//! and said in one sentence with its evidence.
//!
//! - errors: the failed requests of each, as counts summed over the windows, compared by
//!   a two-proportion test; the new revision fails when it is worse by more than the
//!   tolerance (half a point) with confidence, passes when it is within it with confidence;
//! - latency: each window's p99 of each, compared by the Mann-Whitney U test, with the
//!   Hodges-Lehmann estimate of the ratio (on the logarithms) and its interval; it fails
//!   when significantly slower by at least the tolerance (×1.2), passes when the
//!   interval's top is below it;
//! - looking after every window is paid for: a rollout allows at most six looks a wave,
//!   and each needs p < 0.05 / (waves × 6) (Bonferroni), so that a good rollout is
//!   paused by chance in at most 5 % of rollouts, however often it is looked at.
//!
//! The numbers are plain functions of what was recorded ([`stats`]), checked against
//! SciPy's.

pub mod stats;

use serde::Serialize;
use ts_rs::TS;

use firebreak_protocol::events::{RevisionFigures, RevisionRole};
use firebreak_store::Store;

/// The chance of failing a good rollout, over all its looks.
pub const ALPHA: f64 = 0.05;
/// Looks a wave at most: one a window; after six, the wave's verdict stands.
pub const LOOKS_PER_WAVE: u32 = 6;
/// Extra failed requests the new revision may have (a share: half a point).
pub const ERROR_TOLERANCE: f64 = 0.005;
/// How much slower its p99 may be.
pub const LATENCY_TOLERANCE: f64 = 1.2;
/// Before this many requests on the new revision, nothing is said but "not enough
/// traffic yet".
pub const MIN_REQUESTS: u64 = 200;
/// Windows in which both revisions served, before anything is said.
pub const MIN_WINDOWS: usize = 2;

/// One window of a service's figures in one region, the new revision's and the stable
/// one's.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub time_ms: i64,
    pub region: String,
    pub canary: RevisionFigures,
    pub stable: RevisionFigures,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    Inconclusive,
}

/// The errors' evidence: the rates, their difference (in shares) and ratio, the
/// difference's interval at the look's confidence and the test's p-value.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ErrorEvidence {
    pub canary_requests: u64,
    pub canary_errors: u64,
    pub stable_requests: u64,
    pub stable_errors: u64,
    pub canary_rate: f64,
    pub stable_rate: f64,
    pub difference: f64,
    pub ratio: Option<f64>,
    pub low: f64,
    pub high: f64,
    pub p_value: f64,
}

/// The p99's evidence: the median of each revision's windows, the estimated ratio and its
/// interval, and the rank test's p-value.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct LatencyEvidence {
    pub canary_p99_ms: f64,
    pub stable_p99_ms: f64,
    /// The Hodges-Lehmann estimate of canary / stable.
    pub ratio: f64,
    /// Its interval (absent when the windows are too few to bound it).
    pub ratio_low: Option<f64>,
    pub ratio_high: Option<f64>,
    pub p_value: f64,
    /// Whether the p-value is exact (else the normal approximation, for ties or many
    /// windows).
    pub exact: bool,
}

/// The verdict at one look.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    pub outcome: Outcome,
    /// When the look was taken: the time of its newest windows (Unix ms).
    #[ts(type = "number")]
    pub at_ms: i64,
    /// The one sentence that explains it.
    pub sentence: String,
    pub canary_revision: u32,
    pub stable_revision: u32,
    /// Windows in which both revisions served.
    pub windows: usize,
    /// The wave the rollout was at, and how many it has.
    pub wave: u32,
    pub waves: u32,
    /// The p-value this look needed, and the two-sided confidence of its intervals.
    pub alpha: f64,
    pub confidence: f64,
    pub errors: Option<ErrorEvidence>,
    pub latency: Option<LatencyEvidence>,
}

/// The significance one look needs in a rollout of `waves` waves.
pub fn look_alpha(waves: u32) -> f64 {
    ALPHA / f64::from(waves.max(1) * LOOKS_PER_WAVE)
}

/// Judges the windows recorded so far of a rollout from `stable` to `canary` at `wave` of
/// `waves`. Windows of other revisions, or where either served nothing, are left out.
pub fn judge(canary: u32, stable: u32, wave: u32, waves: u32, windows: &[Window]) -> Verdict {
    let alpha = look_alpha(waves);
    let confidence = 1.0 - 2.0 * alpha;
    let usable: Vec<&Window> = windows
        .iter()
        .filter(|w| {
            w.canary.revision == canary
                && w.stable.revision == stable
                && w.canary.requests > 0
                && w.stable.requests > 0
                && w.canary.errors <= w.canary.requests
                && w.stable.errors <= w.stable.requests
        })
        .collect();
    let sum = |f: fn(&Window) -> u64| usable.iter().map(|w| f(w)).sum::<u64>();
    let canary_requests = sum(|w| w.canary.requests);
    let mut verdict = Verdict {
        outcome: Outcome::Inconclusive,
        at_ms: usable.last().map_or(0, |w| w.time_ms),
        sentence: String::new(),
        canary_revision: canary,
        stable_revision: stable,
        windows: usable.len(),
        wave,
        waves,
        alpha,
        confidence,
        errors: None,
        latency: None,
    };
    if canary_requests < MIN_REQUESTS || usable.len() < MIN_WINDOWS {
        verdict.sentence = format!(
            "Not enough traffic yet: revision {canary} served {} over {} (at least {MIN_REQUESTS} requests over {MIN_WINDOWS} windows are needed)",
            plural(canary_requests, "request"),
            plural(usable.len() as u64, "window"),
        );
        return verdict;
    }
    verdict.errors = stats::two_proportions(
        sum(|w| w.canary.errors),
        canary_requests,
        sum(|w| w.stable.errors),
        sum(|w| w.stable.requests),
        confidence,
    )
    .map(|p| ErrorEvidence {
        canary_requests,
        canary_errors: sum(|w| w.canary.errors),
        stable_requests: sum(|w| w.stable.requests),
        stable_errors: sum(|w| w.stable.errors),
        canary_rate: p.p1,
        stable_rate: p.p2,
        difference: p.difference,
        ratio: p.ratio.is_finite().then_some(p.ratio),
        low: p.low,
        high: p.high,
        p_value: p.p_value,
    });
    let log_p99 = |f: fn(&Window) -> f64| -> Vec<f64> {
        usable.iter().map(|w| f(w).max(1e-3).ln()).collect()
    };
    let c99 = log_p99(|w| w.canary.latency_p99_ms);
    let s99 = log_p99(|w| w.stable.latency_p99_ms);
    verdict.latency = stats::mann_whitney(&c99, &s99, confidence).map(|t| LatencyEvidence {
        canary_p99_ms: stats::median(&c99).unwrap_or(f64::NAN).exp(),
        stable_p99_ms: stats::median(&s99).unwrap_or(f64::NAN).exp(),
        ratio: t.shift.exp(),
        ratio_low: t.low.is_finite().then(|| t.low.exp()),
        ratio_high: t.high.is_finite().then(|| t.high.exp()),
        p_value: t.p_value,
        exact: t.exact,
    });
    decide(&mut verdict);
    verdict
}

/// Fail when either figure is worse beyond its tolerance with confidence; pass when both
/// are within it with confidence; else the evidence is not clear yet.
fn decide(v: &mut Verdict) {
    let (canary, stable, n) = (v.canary_revision, v.stable_revision, v.windows);
    let over = plural(n as u64, "window");
    let errors_fail = v
        .errors
        .as_ref()
        .filter(|e| e.p_value < v.alpha && e.low > ERROR_TOLERANCE);
    let latency_fail = v.latency.as_ref().filter(|l| {
        l.p_value < v.alpha && l.ratio >= LATENCY_TOLERANCE && l.ratio_low.is_some_and(|r| r > 1.0)
    });
    if let Some(e) = errors_fail {
        v.outcome = Outcome::Fail;
        v.sentence = format!(
            "Revision {canary} fails {} of requests against {} on revision {stable} over {over}, {}",
            percent(e.canary_rate),
            percent(e.stable_rate),
            p_text(e.p_value)
        );
        return;
    }
    if let Some(l) = latency_fail {
        v.outcome = Outcome::Fail;
        v.sentence = format!(
            "Revision {canary}'s p99 is {:.1}× revision {stable}'s ({} against {}) over {over}, {}",
            l.ratio,
            ms(l.canary_p99_ms),
            ms(l.stable_p99_ms),
            p_text(l.p_value)
        );
        return;
    }
    let errors_pass = v.errors.as_ref().is_some_and(|e| e.high < ERROR_TOLERANCE);
    let latency_pass = v
        .latency
        .as_ref()
        .is_some_and(|l| l.ratio_high.is_some_and(|r| r < LATENCY_TOLERANCE));
    if errors_pass && latency_pass {
        v.outcome = Outcome::Pass;
        v.sentence = format!(
            "Revision {canary} is as good as revision {stable} over {over}: errors {} against {}, p99 {} against {}",
            percent(v.errors.as_ref().map_or(0.0, |e| e.canary_rate)),
            percent(v.errors.as_ref().map_or(0.0, |e| e.stable_rate)),
            ms(v.latency.as_ref().map_or(0.0, |l| l.canary_p99_ms)),
            ms(v.latency.as_ref().map_or(0.0, |l| l.stable_p99_ms)),
        );
        return;
    }
    v.outcome = Outcome::Inconclusive;
    let mut unsure = Vec::new();
    if !errors_pass {
        unsure.push("errors");
    }
    if !latency_pass {
        unsure.push("p99");
    }
    v.sentence = format!(
        "No clear difference yet between revision {canary} and revision {stable} over {over} ({} not settled)",
        unsure.join(" and ")
    );
}

impl Verdict {
    /// The verdict with its evidence, a line each, as an action's preview and the
    /// timeline carry it: the sentence, the errors' and the p99's figures, and what the
    /// look needed.
    pub fn evidence(&self) -> Vec<String> {
        let (canary, stable) = (self.canary_revision, self.stable_revision);
        let mut out = vec![format!(
            "Canary verdict at wave {} of {}: {}",
            self.wave, self.waves, self.sentence
        )];
        let level = format!("{:.1} %", self.confidence * 100.0);
        if let Some(e) = &self.errors {
            out.push(format!(
                "Errors: {} on revision {canary} ({} of {}) against {} on revision {stable} ({} of {}); \
                 {:+.2} points{}, {level} interval [{:+.2}, {:+.2}], {}",
                percent(e.canary_rate),
                e.canary_errors,
                e.canary_requests,
                percent(e.stable_rate),
                e.stable_errors,
                e.stable_requests,
                e.difference * 100.0,
                e.ratio.map(|r| format!(" (×{r:.1})")).unwrap_or_default(),
                e.low * 100.0,
                e.high * 100.0,
                p_text(e.p_value),
            ));
        }
        if let Some(l) = &self.latency {
            let interval = match (l.ratio_low, l.ratio_high) {
                (Some(lo), Some(hi)) => format!(", {level} interval [×{lo:.2}, ×{hi:.2}]"),
                _ => String::new(),
            };
            out.push(format!(
                "p99: {} on revision {canary} against {} on revision {stable} (median of the windows); \
                 ×{:.2}{interval}, {} ({})",
                ms(l.canary_p99_ms),
                ms(l.stable_p99_ms),
                l.ratio,
                p_text(l.p_value),
                if l.exact { "exact" } else { "normal approximation" },
            ));
        }
        out.push(format!(
            "Over {}; each look needs p < {:.4}, paid for looking after every window",
            plural(self.windows as u64, "window"),
            self.alpha
        ));
        out
    }
}

fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// A share as people read it: "31 %", "4.2 %", "0.4 %", "0.05 %".
pub fn percent(share: f64) -> String {
    let p = share * 100.0;
    if p >= 10.0 {
        format!("{p:.0} %")
    } else if p >= 0.1 || p == 0.0 {
        format!("{p:.1} %")
    } else {
        format!("{p:.2} %")
    }
}

fn ms(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.1} s", v / 1000.0)
    } else {
        format!("{v:.0} ms")
    }
}

/// "p < 0.001", or "p = 0.004".
pub fn p_text(p: f64) -> String {
    if p < 0.001 {
        "p < 0.001".into()
    } else {
        format!("p = {p:.3}")
    }
}

/// Windows of each revision the latency test reads at most (the newest): its pairwise
/// differences grow as the square.
const LATENCY_WINDOWS: usize = 100;

/// The verdicts of a service's newest rollout, look by look as the console took them.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct RolloutVerdicts {
    /// The rollout's `rollout.started` event in the store: what names it.
    #[ts(type = "number")]
    pub started_seq: i64,
    pub deployment: String,
    pub from_revision: u32,
    pub to_revision: u32,
    pub waves: u32,
    /// How it ended (`completed`, `failed`, `rolled back`), while it has not: none.
    pub ended: Option<String>,
    /// The verdict at the last look of each wave that had one, in order.
    pub by_wave: Vec<Verdict>,
    /// The rollout's first failing verdict, if one failed: what a guard acts on.
    pub first_fail: Option<Verdict>,
    /// No figures by revision were recorded for it, so no verdict can be given.
    pub no_data: bool,
}

/// The verdicts of the service's newest rollout, from what the store recorded; none when
/// it never rolled out.
pub async fn rollout_verdicts(
    store: &Store,
    cluster_id: i64,
    service: &str,
) -> firebreak_store::Result<Option<RolloutVerdicts>> {
    let Some(rollout) = store.rollouts(cluster_id, service).await?.pop() else {
        return Ok(None);
    };
    let recorded = store
        .revision_windows(
            cluster_id,
            service,
            rollout.started_seq,
            rollout.ended.as_ref().map(|(seq, _)| *seq),
        )
        .await?;
    Ok(Some(verdicts_of(&rollout, &recorded)))
}

/// The verdicts of one rollout from its figures by revision, oldest first: a look each
/// time windows arrived (every region's at once), at most six a wave.
pub fn verdicts_of(
    rollout: &firebreak_store::rollouts::RecordedRollout,
    recorded: &[firebreak_store::rollouts::RevisionWindow],
) -> RolloutVerdicts {
    let mut out = RolloutVerdicts {
        started_seq: rollout.started_seq,
        deployment: rollout.deployment.clone(),
        from_revision: rollout.from_revision,
        to_revision: rollout.to_revision,
        waves: rollout.waves,
        ended: rollout.ended.as_ref().map(|(_, how)| how.clone()),
        by_wave: Vec::new(),
        first_fail: None,
        no_data: recorded.is_empty(),
    };
    let mut windows: Vec<Window> = Vec::new();
    let mut looks_in_wave = (0u32, 0u32);
    let mut i = 0;
    while i < recorded.len() {
        let time = recorded[i].time_ms;
        let wave = rollout.wave_at(recorded[i].seq);
        while i < recorded.len() && recorded[i].time_ms == time {
            let r = &recorded[i];
            if let (Some(canary), Some(stable)) =
                (r.role(RevisionRole::Canary), r.role(RevisionRole::Stable))
            {
                windows.push(Window {
                    time_ms: r.time_ms,
                    region: r.metrics.region.clone(),
                    canary: canary.clone(),
                    stable: stable.clone(),
                });
            }
            i += 1;
        }
        if looks_in_wave.0 != wave {
            looks_in_wave = (wave, 0);
        }
        if wave == 0 || looks_in_wave.1 >= LOOKS_PER_WAVE {
            continue;
        }
        looks_in_wave.1 += 1;
        let from = windows.len().saturating_sub(LATENCY_WINDOWS);
        let mut verdict = judge_capped(rollout, wave, &windows, from);
        verdict.at_ms = time;
        if verdict.outcome == Outcome::Fail && out.first_fail.is_none() {
            out.first_fail = Some(verdict.clone());
        }
        match out.by_wave.last_mut() {
            Some(last) if last.wave == wave => *last = verdict,
            _ => out.by_wave.push(verdict),
        }
    }
    out
}

/// [`judge`], the errors over every window so far and the latency over the newest
/// (`windows[latency_from..]`).
fn judge_capped(
    rollout: &firebreak_store::rollouts::RecordedRollout,
    wave: u32,
    windows: &[Window],
    latency_from: usize,
) -> Verdict {
    let (canary, stable) = (rollout.to_revision, rollout.from_revision);
    let all = judge(canary, stable, wave, rollout.waves, windows);
    if latency_from == 0 || all.errors.is_none() {
        return all;
    }
    let recent = judge(
        canary,
        stable,
        wave,
        rollout.waves,
        &windows[latency_from..],
    );
    let mut v = Verdict {
        latency: recent.latency,
        ..all
    };
    decide(&mut v);
    v
}
