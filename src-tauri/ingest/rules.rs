//! Which events open incidents, which attach to them, and the anomaly detector.
//!
//! Pure decisions over one event at a time; the store carries them out in the same
//! transaction as the events. An incident is keyed by (cluster, service): while one is
//! unresolved, every event about that service attaches to it instead of opening another.

use std::collections::HashMap;

use serde_json::Value;

use crate::incident::Severity;
use crate::protocol::events::EventType;

/// Error rate above which a service's SLO is burning (5%).
pub const ERROR_RATE_SLO: f64 = 0.05;
/// Consecutive metric samples above the SLO before it opens an incident.
const SLO_SAMPLES: u32 = 3;
/// Share of a pool's nodes down that opens an incident.
pub const POOL_DOWN_SHARE: f64 = 0.25;

/// Anomaly detector parameters: an exponentially weighted mean and variance per
/// (cluster, service, metric) over the primary region's samples.
pub mod anomaly {
    /// Weight of the newest sample in the moving mean and variance.
    pub const ALPHA: f64 = 0.2;
    /// Samples before the detector may flag anything.
    pub const WARMUP: u32 = 4;
    /// How many standard deviations above the mean counts as an anomaly.
    pub const Z: f64 = 4.0;
    /// The deviation never counts as smaller than this share of the mean, so a very
    /// steady metric does not flag its ordinary jitter.
    pub const MIN_STD_SHARE: f64 = 0.1;
    /// Samples back in range before the same metric may flag again.
    pub const REARM_AFTER: u32 = 6;
}

/// What the store should do with one event.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The incident key, when the event is about a service.
    pub service: Option<String>,
    /// A critical signal: opens an incident (or raises the open one's severity).
    pub signal: Option<Signal>,
    /// Text for a timeline entry when the event attaches to an incident.
    pub entry: Option<String>,
    /// The anomaly detector's finding.
    pub anomaly: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    pub severity: Severity,
    pub title: String,
    /// Which rule fired, e.g. `alert:HighErrorRate`.
    pub rule: String,
}

#[derive(Debug, Default, Clone)]
struct Ewma {
    n: u32,
    mean: f64,
    var: f64,
    flagged: bool,
    calm: u32,
}

impl Ewma {
    /// Feeds one sample; returns the z-score when it is an anomaly.
    fn observe(&mut self, x: f64, floor: f64) -> Option<f64> {
        use anomaly::*;
        if self.n == 0 {
            self.mean = x;
            self.n = 1;
            return None;
        }
        let std = self
            .var
            .sqrt()
            .max(self.mean.abs() * MIN_STD_SHARE)
            .max(floor);
        let z = (x - self.mean) / std;
        let warm = self.n >= WARMUP;
        let anomalous = warm && z > Z;
        if anomalous {
            self.calm = 0;
        } else {
            self.calm += 1;
            if self.calm >= REARM_AFTER {
                self.flagged = false;
            }
            // Only normal samples teach the baseline, so a sustained fault stays visible.
            let d = x - self.mean;
            self.mean += ALPHA * d;
            self.var = (1.0 - ALPHA) * (self.var + ALPHA * d * d);
        }
        self.n += 1;
        if anomalous && !self.flagged {
            self.flagged = true;
            return Some(z);
        }
        None
    }
}

/// The timeline text for an event attached to an incident; None for events that are
/// evidence only (metrics, region status, synthetic load).
pub fn describe(ty: EventType, data: &Value) -> Option<String> {
    let svc = text(data, "service");
    use EventType as T;
    Some(match ty {
        T::AlertFiring => format!(
            "Alert {} firing ({}): {}; value {} over threshold {}",
            text(data, "alert"),
            text(data, "severity"),
            text(data, "summary"),
            num(data, "value"),
            num(data, "threshold")
        ),
        T::AlertResolved => format!(
            "Alert {} resolved in {}",
            text(data, "alert"),
            text(data, "region")
        ),
        T::RolloutStalled => format!(
            "Rollout of {svc} revision {} stalled at wave {} of {}: {}",
            num(data, "to_revision"),
            num(data, "wave"),
            num(data, "waves"),
            text(data, "reason")
        ),
        T::RolloutFailed => format!(
            "Rollout of {svc} revision {} failed: {}",
            num(data, "to_revision"),
            text(data, "reason")
        ),
        T::NodeDown => format!(
            "Node {} down ({}): {} of {} nodes of pool {} down",
            text(data, "node"),
            text(data, "reason"),
            num(data, "pool_nodes_down"),
            num(data, "pool_nodes_total"),
            text(data, "pool")
        ),
        T::NodeDegraded => format!(
            "Node {} degraded ({}): {}",
            text(data, "node"),
            text(data, "reason"),
            text(data, "detail")
        ),
        T::NodeUp => format!("Node {} back up", text(data, "node")),
        T::RolloutStarted => format!(
            "Rollout started: {svc} revision {} → {} ({}), {} waves",
            num(data, "from_revision"),
            num(data, "to_revision"),
            text(data, "model_version"),
            num(data, "waves")
        ),
        T::RolloutWaveProgressed => format!(
            "Rollout wave {} of {}: {} of {} nodes on revision {}",
            num(data, "wave"),
            num(data, "waves"),
            num(data, "nodes_updated"),
            num(data, "nodes_total"),
            num(data, "to_revision")
        ),
        T::RolloutCompleted => format!(
            "Rollout completed: {svc} on revision {}",
            num(data, "revision")
        ),
        T::ModelVersionChanged => format!(
            "Model changed ({}): {} → {} (revision {})",
            text(data, "cause"),
            text(data, "from_model"),
            text(data, "to_model"),
            num(data, "revision")
        ),
        T::ActionAccepted | T::ActionRunning | T::ActionSucceeded | T::ActionFailed => {
            let state = ty.name().rsplit('.').next().unwrap_or("");
            let error = data
                .get("error")
                .and_then(Value::as_str)
                .map(|e| format!(": {e}"))
                .unwrap_or_default();
            format!(
                "Cluster: {} {} → {} {state} (by {}){error}",
                text(data, "kind"),
                text(data, "from"),
                text(data, "to"),
                text(data, "actor")
            )
        }
        T::ServiceMetrics | T::RegionStatus | T::SyntheticLoad => return None,
    })
}

#[derive(Default)]
pub struct Rules {
    detectors: HashMap<(i64, String, &'static str), Ewma>,
    burning: HashMap<(i64, String), u32>,
}

fn text<'a>(data: &'a Value, key: &str) -> &'a str {
    data.get(key).and_then(Value::as_str).unwrap_or("")
}

fn num(data: &Value, key: &str) -> f64 {
    data.get(key).and_then(Value::as_f64).unwrap_or(0.0)
}

fn severity(s: &str) -> Severity {
    Severity::parse(s).unwrap_or(Severity::Major)
}

impl Rules {
    pub fn decide(&mut self, cluster: i64, ty: EventType, data: &Value) -> Decision {
        let service = data
            .get("service")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let svc = service.clone().unwrap_or_default();
        let mut d = Decision {
            service,
            signal: None,
            entry: describe(ty, data),
            anomaly: None,
        };
        use EventType as T;
        match ty {
            T::AlertFiring => {
                let sev = severity(text(data, "severity"));
                if matches!(sev, Severity::Critical | Severity::Major) {
                    d.signal = Some(Signal {
                        severity: sev,
                        title: text(data, "summary").to_owned(),
                        rule: format!("alert:{}", text(data, "alert")),
                    });
                }
            }
            T::RolloutStalled => {
                d.signal = Some(Signal {
                    severity: Severity::Major,
                    title: format!(
                        "Rollout of {svc} revision {} stalled at wave {} of {}",
                        num(data, "to_revision"),
                        num(data, "wave"),
                        num(data, "waves")
                    ),
                    rule: "rollout:stalled".into(),
                });
            }
            T::RolloutFailed => {
                d.signal = Some(Signal {
                    severity: Severity::Major,
                    title: format!(
                        "Rollout of {svc} revision {} failed",
                        num(data, "to_revision")
                    ),
                    rule: "rollout:failed".into(),
                });
            }
            T::NodeDown => {
                let down = num(data, "pool_nodes_down");
                let total = num(data, "pool_nodes_total").max(1.0);
                let share = down / total;
                if share >= POOL_DOWN_SHARE {
                    d.signal = Some(Signal {
                        severity: if share >= 0.5 {
                            Severity::Critical
                        } else {
                            Severity::Major
                        },
                        title: format!(
                            "{down} of {total} GPU nodes down in {}",
                            text(data, "pool")
                        ),
                        rule: "nodes:down".into(),
                    });
                }
            }
            T::ServiceMetrics => self.metrics(cluster, &svc, data, &mut d),
            T::RegionStatus | T::SyntheticLoad => d.service = None,
            _ => {}
        }
        d
    }

    fn metrics(&mut self, cluster: i64, svc: &str, data: &Value, d: &mut Decision) {
        if data.get("primary") != Some(&Value::Bool(true)) {
            return;
        }
        let region = text(data, "region");
        let error_rate = num(data, "error_rate");
        let key = (cluster, svc.to_owned());
        let burning = self.burning.entry(key).or_default();
        if error_rate > ERROR_RATE_SLO {
            *burning += 1;
            if *burning == SLO_SAMPLES {
                d.signal = Some(Signal {
                    severity: Severity::Critical,
                    title: format!(
                        "{svc} error rate {:.1}% burning its 5% SLO in {region}",
                        error_rate * 100.0
                    ),
                    rule: "slo:error_rate".into(),
                });
                d.entry = Some(format!(
                    "Error rate {:.1}% for {} samples in a row (SLO 5%)",
                    error_rate * 100.0,
                    SLO_SAMPLES
                ));
            }
        } else {
            *burning = 0;
        }
        for (metric, label, floor, unit) in [
            ("error_rate", "error rate", 0.002, "%"),
            ("latency_p99_ms", "p99 latency", 10.0, " ms"),
        ] {
            let x = num(data, metric);
            let detector = self
                .detectors
                .entry((cluster, svc.to_owned(), metric))
                .or_default();
            let mean = detector.mean;
            if let Some(z) = detector.observe(x, floor) {
                let (shown, usual) = if unit == "%" {
                    (x * 100.0, mean * 100.0)
                } else {
                    (x, mean)
                };
                d.anomaly = Some(format!(
                    "Anomaly: {svc} {label} {shown:.1}{unit} in {region}, usually {usual:.1}{unit} ({z:.0}σ above its moving average)"
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn metrics(error_rate: f64, p99: f64) -> Value {
        json!({"service": "llm-assistant", "region": "us-east", "primary": true,
               "error_rate": error_rate, "latency_p99_ms": p99})
    }

    #[test]
    fn anomaly_is_flagged_once_on_a_jump_and_not_on_jitter() {
        let mut r = Rules::default();
        for i in 0..20 {
            let jitter = if i % 2 == 0 { 1.03 } else { 0.97 };
            let d = r.decide(
                1,
                EventType::ServiceMetrics,
                &metrics(0.002 * jitter, 2400.0 * jitter),
            );
            assert!(
                d.anomaly.is_none(),
                "ordinary jitter must not flag (sample {i})"
            );
        }
        let d = r.decide(1, EventType::ServiceMetrics, &metrics(0.077, 2500.0));
        let finding = d.anomaly.expect("an error-rate jump must be flagged");
        assert!(finding.contains("error rate 7.7%"), "{finding}");
        // A sustained fault is one finding, not one per sample.
        let d = r.decide(1, EventType::ServiceMetrics, &metrics(0.08, 2500.0));
        assert!(d.anomaly.is_none());
    }

    #[test]
    fn a_burning_slo_opens_after_three_samples_and_only_on_the_primary() {
        let mut r = Rules::default();
        let mut standby = metrics(0.5, 1.0);
        standby["primary"] = json!(false);
        assert_eq!(
            r.decide(1, EventType::ServiceMetrics, &standby).signal,
            None,
            "standby regions serve no traffic"
        );
        let signals: Vec<_> = (0..4)
            .map(|_| {
                r.decide(1, EventType::ServiceMetrics, &metrics(0.2, 1.0))
                    .signal
            })
            .collect();
        assert_eq!(
            signals.iter().filter(|s| s.is_some()).count(),
            1,
            "one signal per burn"
        );
        assert!(signals[2].is_some(), "the third sample in a row opens it");
    }

    #[test]
    fn critical_alerts_signal_and_minor_ones_only_attach() {
        let mut r = Rules::default();
        let alert = |sev: &str| {
            json!({"alert": "HighErrorRate", "service": "search-ranking", "region": "eu-west",
            "severity": sev, "summary": "search-ranking error rate above 5%", "value": 0.09, "threshold": 0.05})
        };
        let d = r.decide(1, EventType::AlertFiring, &alert("critical"));
        assert_eq!(d.signal.map(|s| s.severity), Some(Severity::Critical));
        let d = r.decide(1, EventType::AlertFiring, &alert("minor"));
        assert!(d.signal.is_none() && d.entry.is_some());
    }

    #[test]
    fn nodes_down_signal_past_a_quarter_of_the_pool() {
        let mut r = Rules::default();
        let down = |n: u32| {
            json!({"node": "n", "pool": "p", "region": "us-east", "service": "recommendations",
            "reason": "oom", "pool_nodes_down": n, "pool_nodes_total": 8})
        };
        assert!(
            r.decide(1, EventType::NodeDown, &down(1)).signal.is_none(),
            "one node of eight is not an incident"
        );
        assert_eq!(
            r.decide(1, EventType::NodeDown, &down(2))
                .signal
                .map(|s| s.severity),
            Some(Severity::Major)
        );
        assert_eq!(
            r.decide(1, EventType::NodeDown, &down(4))
                .signal
                .map(|s| s.severity),
            Some(Severity::Critical)
        );
    }
}
