//! After an action succeeds: did the service recover? The desk watches the service's
//! metrics on its primary region (the new one, after a failover) for the verification
//! window and compares the last samples with thresholds, recording the figures either way.
//! A cluster that sends no metrics (a gateway with only the Kubernetes API) still tells
//! the rollout a rollback started: the restored revision completing, with no pod failing
//! and no rollout stalling after it, is the evidence then, and said to be. With neither,
//! the outcome is "could not verify", which is not a failure and proposes nothing.

use std::time::Duration;

use super::{ActionDesk, ActionSettings, Result};
use firebreak_protocol::actions::ActionKind;
use firebreak_store::actions::{ActionRecord, Verdict};
use firebreak_store::now_ms;

/// Samples the verdict looks at: the last ones of the window.
const LAST_SAMPLES: usize = 3;
/// The service's usual p99 is taken from this long before the incident opened.
const BASELINE_MS: i64 = 30 * 60 * 1000;

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

pub async fn verify(desk: &ActionDesk, action: &ActionRecord) -> Result<()> {
    if action.kind == ActionKind::Silence {
        // A silence changes what notifies, not the service: there is no recovery to check.
        return Ok(());
    }
    let store = desk.store();
    let settings = ActionSettings::load(store).await?;
    let start = action.succeeded_ms.unwrap_or_else(now_ms);
    let end = start + i64::from(settings.verify_window_s) * 1000;
    while now_ms() < end {
        firebreak_common::clock::sleep(Duration::from_millis(
            (end - now_ms()).clamp(1, 1_000) as u64
        ))
        .await;
    }
    let incident = store.incident(action.incident_id).await?;
    let service = &action.service;
    let before: Vec<f64> = store
        .metric_samples(
            action.cluster_id,
            service,
            incident.opened_ms - BASELINE_MS,
            incident.opened_ms,
            400,
        )
        .await?
        .into_iter()
        .filter(|m| m.primary)
        .map(|m| m.latency_p99_ms)
        .collect();
    let baseline = median(before);
    let after: Vec<_> = store
        .metric_samples(action.cluster_id, service, start, end, 400)
        .await?
        .into_iter()
        .filter(|m| m.primary)
        .collect();
    let last = &after[after.len().saturating_sub(LAST_SAMPLES)..];
    let what = action.kind.noun();

    let (verdict, body) = if last.is_empty() {
        let configured = store.has_metrics(action.cluster_id, service).await?;
        let sent = action.send_after_ms.unwrap_or(start).min(start);
        let evidence = store
            .rollout_state_since(action.cluster_id, service, sent)
            .await?;
        by_rollout_state(action, &evidence, configured, settings.verify_window_s)
    } else {
        let err = last.iter().map(|m| m.error_rate).fold(0.0, f64::max);
        let p99 = last.iter().map(|m| m.latency_p99_ms).fold(0.0, f64::max);
        let err_ok = err <= settings.max_error_rate;
        let p99_limit = baseline.map(|b| b * settings.max_latency_factor);
        let p99_ok = p99_limit.is_none_or(|l| p99 <= l);
        let p99_text = match (baseline, p99_limit) {
            (Some(b), Some(l)) => format!(
                "p99 {p99:.0} ms (limit {l:.0} ms: {}× the {b:.0} ms before the incident)",
                settings.max_latency_factor
            ),
            _ => format!("p99 {p99:.0} ms (no baseline before the incident to compare with)"),
        };
        let figures = format!(
            "error rate {:.1} % (limit {:.1} %), {p99_text}, worst of the last {} samples on {}, {} s after the {what}",
            err * 100.0,
            settings.max_error_rate * 100.0,
            last.len(),
            last[last.len() - 1].region,
            settings.verify_window_s
        );
        if err_ok && p99_ok {
            (
                Verdict::Recovered,
                format!("Recovered: {service} {figures}."),
            )
        } else {
            let over = match (err_ok, p99_ok) {
                (false, false) => "error rate and latency are",
                (false, true) => "the error rate is",
                _ => "latency is",
            };
            let next = match action.kind {
                ActionKind::Rollback | ActionKind::AbortRollout => {
                    format!("Next: failing {service} over to a healthy region is proposed.")
                }
                ActionKind::PauseRollout => format!(
                    "Paused, the damage stops growing; next, abort the rollout or roll {service} back."
                ),
                _ => {
                    "No further action is proposed automatically: follow the runbook.".to_owned()
                }
            };
            (
                Verdict::NotRecovered,
                format!("NOT recovered: {over} still over the limit. {service} {figures}. {next}"),
            )
        }
    };
    let recorded = store.verify_action(&action.id, verdict, &body).await?;
    // The next step is proposed on evidence that this one did not help, never on silence,
    // and once (by the driver whose verdict was recorded).
    if recorded
        && verdict == Verdict::NotRecovered
        && matches!(action.kind, ActionKind::Rollback | ActionKind::AbortRollout)
        && !settings.read_only
    {
        if let Err(e) = desk
            .propose(
                action.incident_id,
                ActionKind::Failover,
                firebreak_store::incident::ENGINE_AUTHOR,
            )
            .await
        {
            tracing::warn!(error = %e, "could not propose the next action");
        }
    }
    Ok(())
}

/// The verdict from what the cluster told of the rollout the action started, when no
/// metrics came: `evidence` is [`firebreak_store::Store::rollout_state_since`]'s, from when
/// the action was sent.
fn by_rollout_state(
    action: &ActionRecord,
    evidence: &[(String, i64, serde_json::Value)],
    metrics_configured: bool,
    window_s: u32,
) -> (Verdict, String) {
    let service = &action.service;
    let what = action.kind.noun();
    let no_metrics = if metrics_configured {
        format!("no metrics of {service} arrived in the {window_s} s after the {what}")
    } else {
        "no metrics configured".to_owned()
    };
    let restores = matches!(action.kind, ActionKind::Rollback | ActionKind::AbortRollout);
    if !restores {
        return (
            Verdict::Unverified,
            format!(
                "Could not verify: a {what} shows only in metrics, and {no_metrics}{}. \
                 Check {service} before relying on it.",
                if metrics_configured {
                    " (is the cluster's stream live?)"
                } else {
                    " for it on this cluster"
                }
            ),
        );
    }
    let text = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap_or_default().to_owned();
    // The last completion, and what went wrong after the last start or completion.
    let mut completed: Option<(i64, &serde_json::Value)> = None;
    let mut stuck: Option<String> = None;
    let mut failing: Option<String> = None;
    for (ty, at, data) in evidence {
        match ty.as_str() {
            "rollout.started" => stuck = None,
            "rollout.completed" => {
                completed = Some((*at, data));
                stuck = None;
                failing = None;
            }
            "rollout.stalled" | "rollout.failed" => {
                stuck = Some(format!(
                    "the rollout of revision {} {}: {}",
                    data["to_revision"],
                    if ty == "rollout.stalled" {
                        "stalled"
                    } else {
                        "failed"
                    },
                    text(data, "reason")
                ))
            }
            "pod.failing" if completed.is_some() => {
                failing = Some(format!(
                    "pod {} is {} ({} restarts: {})",
                    text(data, "pod"),
                    match data["reason"].as_str() {
                        Some("oom_killed") => "OOMKilled",
                        _ => "crash-looping",
                    },
                    data["restarts"],
                    text(data, "detail")
                ))
            }
            _ => {}
        }
    }
    let next = format!("Next: failing {service} over to a healthy region is proposed.");
    match (completed, stuck, failing) {
        (_, Some(stuck), _) => (
            Verdict::NotRecovered,
            format!("NOT recovered (by rollout state, {no_metrics}): {stuck}. {next}"),
        ),
        (Some(_), None, Some(failing)) => (
            Verdict::NotRecovered,
            format!(
                "NOT recovered (by rollout state, {no_metrics}): the restored revision completed, but {failing}. {next}"
            ),
        ),
        (Some((at, done)), None, None) => {
            let after_s = (at - action.succeeded_ms.unwrap_or(at)).max(0) / 1000;
            (
                Verdict::Recovered,
                format!(
                    "Recovered, verified by rollout state ({no_metrics}): {} completed revision {} {after_s} s after the {what}; \
                     no pod has crash-looped or been OOMKilled since, and no rollout stalled.",
                    text(done, "deployment"),
                    done["revision"]
                ),
            )
        }
        (None, None, _) => (
            Verdict::Unverified,
            format!(
                "Could not verify: {no_metrics}, and the cluster told nothing of the rollout the {what} started \
                 in {window_s} s (no completion, no stall). Check {service} before relying on it."
            ),
        ),
    }
}
