//! After an action succeeds: did the service recover? The desk watches the service's
//! metrics on its primary region (the new one, after a failover) for the verification
//! window and compares the last samples with thresholds, recording the figures either way.

use std::time::Duration;

use super::{ActionDesk, ActionSettings, Result};
use crate::protocol::actions::ActionKind;
use crate::store::actions::ActionRecord;
use crate::store::now_ms;

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
        crate::clock::sleep(Duration::from_millis(
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

    let (recovered, body) = if last.is_empty() {
        (
            false,
            format!(
                "NOT verified: no metrics of {service} arrived in the {} s after the {what} \
                 (is the cluster's stream live?). Check the service before relying on it.",
                settings.verify_window_s
            ),
        )
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
            (true, format!("Recovered: {service} {figures}."))
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
                false,
                format!("NOT recovered: {over} still over the limit. {service} {figures}. {next}"),
            )
        }
    };
    store.verify_action(&action.id, recovered, &body).await?;
    if !recovered
        && matches!(action.kind, ActionKind::Rollback | ActionKind::AbortRollout)
        && !settings.read_only
    {
        if let Err(e) = desk
            .propose(
                action.incident_id,
                ActionKind::Failover,
                crate::store::ingest::ENGINE_AUTHOR,
            )
            .await
        {
            tracing::warn!(error = %e, "could not propose the next action");
        }
    }
    Ok(())
}
