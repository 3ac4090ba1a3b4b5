//! Which events open incidents, which attach to them, and the anomaly detector.
//!
//! Pure decisions over one event at a time, made by the writer before it commits (on a
//! copy of the rules' state that replaces the original only once the batch committed);
//! the store carries the decisions out in the same transaction as the events. An incident is keyed by (cluster, service): while one is
//! unresolved, every event about that service attaches to it instead of opening another.

use std::collections::HashMap;

use serde_json::Value;

use firebreak_protocol::events::EventType;
use firebreak_protocol::text::{describe, num, text};
use firebreak_store::incident::{clean_title, Decision, Severity, Signal};

pub use firebreak_store::incident::ERROR_RATE_SLO;
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

/// The (cluster, service) pairs with objectives: their incidents open on burn rates
/// (`crate::slo::Watch`), not on the fixed error-rate rule. Shared with the engine, which
/// updates it when objectives change.
pub type WithObjectives =
    std::sync::Arc<std::sync::RwLock<std::collections::HashSet<(i64, String)>>>;

#[derive(Default, Clone)]
pub struct Rules {
    detectors: HashMap<(i64, String, &'static str), Ewma>,
    burning: HashMap<(i64, String), u32>,
    with_objectives: WithObjectives,
}

/// An alert's summary as the incident's title; where the summary is blank (or nothing
/// printable), the alert's name and the service, so a valid alert always opens its incident.
fn alert_title(data: &Value, svc: &str) -> String {
    clean_title(text(data, "summary")).unwrap_or_else(|| {
        let alert = clean_title(text(data, "alert")).unwrap_or_else(|| "Alert".to_owned());
        clean_title(&format!("{alert} on {svc}")).unwrap_or(alert)
    })
}

fn severity(s: &str) -> Severity {
    Severity::parse(s).unwrap_or(Severity::Major)
}

/// Services (per metric) the rules keep state for, across every cluster: each is a few
/// dozen bytes, and the writer copies the state once per batch.
pub const MAX_TRACKED: usize = 4096;

impl Rules {
    /// Rules that leave the services in `with_objectives` to their burn rates.
    pub fn with_objectives(with_objectives: WithObjectives) -> Rules {
        Rules {
            with_objectives,
            ..Rules::default()
        }
    }

    /// Forgets a cluster's state (it is no longer watched).
    pub fn forget_cluster(&mut self, cluster_id: i64) {
        self.detectors.retain(|(c, _, _), _| *c != cluster_id);
        self.burning.retain(|(c, _), _| *c != cluster_id);
    }

    /// How many (cluster, service) keys the rules hold state for.
    pub fn tracked(&self) -> usize {
        self.burning.len()
    }

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
                        title: alert_title(data, &svc),
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
            T::GpuXid => {
                let xid = num(data, "xid") as u32;
                if let (meaning, Some(action)) = firebreak_protocol::xid::describe(xid) {
                    if action.takes_the_gpu_out() {
                        d.signal = Some(Signal {
                            severity: Severity::Major,
                            title: format!(
                                "XID {xid} ({meaning}) on {} of {svc}: {}",
                                text(data, "node"),
                                action.words()
                            ),
                            rule: "gpu:xid".into(),
                        });
                    }
                }
            }
            T::GpuMissing if num(data, "seen") < num(data, "expected") => {
                d.signal = Some(Signal {
                    severity: Severity::Major,
                    title: format!(
                        "Node {} of {svc} lost a GPU ({} of {})",
                        text(data, "node"),
                        num(data, "seen"),
                        num(data, "expected")
                    ),
                    rule: "gpu:missing".into(),
                });
            }
            T::KvCachePressure if data.get("pressure").and_then(Value::as_bool) == Some(true) => {
                d.signal = Some(Signal {
                    severity: Severity::Minor,
                    title: format!("{svc} runs short of KV cache in {}", text(data, "region")),
                    rule: "kv_cache:pressure".into(),
                });
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
        // Service names come from the network: past the bound, new services are not
        // tracked (their events are still recorded and attached; only these rules skip them).
        if self.burning.len() >= MAX_TRACKED && !self.burning.contains_key(&key) {
            return;
        }
        let judged_by_objectives = self
            .with_objectives
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&key);
        let burning = self.burning.entry(key).or_default();
        if judged_by_objectives {
            *burning = 0;
        } else if error_rate > ERROR_RATE_SLO {
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
    fn gpu_faults_open_incidents_when_the_gpu_must_come_out_and_say_what_to_do() {
        let mut r = Rules::default();
        let xid = |code: u32| {
            json!({"node": "gpu-07", "pool": "gpu-a100", "region": "us-east",
                   "service": "llm-assistant", "gpu": "3", "xid": code})
        };
        let d = r.decide(1, EventType::GpuXid, &xid(79));
        let signal = d.signal.expect("a GPU off the bus takes it out");
        assert_eq!(
            signal.title,
            "XID 79 (GPU has fallen off the bus) on gpu-07 of llm-assistant: drain the node"
        );
        assert!(d
            .entry
            .unwrap()
            .ends_with("XID 79 (GPU has fallen off the bus): drain the node"));
        // An application's own error is said, not paged on; an unknown code is looked up.
        let d = r.decide(1, EventType::GpuXid, &xid(13));
        assert!(d.signal.is_none());
        assert!(d.entry.unwrap().contains("restart the application"));
        let d = r.decide(1, EventType::GpuXid, &xid(999));
        assert!(d.signal.is_none());
        assert!(d
            .entry
            .unwrap()
            .contains("look it up in NVIDIA's XID catalog"));
        let missing = |seen: u32| {
            json!({"node": "gpu-07", "pool": "gpu-a100", "region": "us-east",
                   "service": "llm-assistant", "expected": 8, "seen": seen})
        };
        assert!(r
            .decide(1, EventType::GpuMissing, &missing(7))
            .signal
            .is_some());
        assert!(r
            .decide(1, EventType::GpuMissing, &missing(8))
            .signal
            .is_none());
        let kv = |pressure: bool| {
            json!({"service": "llm-assistant", "region": "us-east", "kv_cache_usage": 0.97,
                   "preemptions_per_s": 4.2, "queue_depth": 310.0, "pressure": pressure})
        };
        let d = r.decide(1, EventType::KvCachePressure, &kv(true));
        assert_eq!(d.signal.unwrap().severity, Severity::Minor);
        assert!(d
            .entry
            .unwrap()
            .contains("cache 97 % full, 4.2 requests/s preempted"));
        assert!(r
            .decide(1, EventType::KvCachePressure, &kv(false))
            .signal
            .is_none());
    }

    #[test]
    fn a_service_with_objectives_is_left_to_its_burn_rates() {
        let with = WithObjectives::default();
        with.write().unwrap().insert((1, "llm-assistant".into()));
        let mut r = Rules::with_objectives(with.clone());
        for _ in 0..5 {
            let d = r.decide(1, EventType::ServiceMetrics, &metrics(0.2, 2400.0));
            assert!(d.signal.is_none(), "the fixed rule stays out: {d:?}");
        }
        // Objectives removed: the fixed rule is back.
        with.write().unwrap().clear();
        let signals = (0..3)
            .filter_map(|_| {
                r.decide(1, EventType::ServiceMetrics, &metrics(0.2, 2400.0))
                    .signal
            })
            .count();
        assert_eq!(signals, 1);
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
    fn a_blank_summary_still_gives_a_title() {
        let mut r = Rules::default();
        let alert = json!({"alert": "HighErrorRate", "service": "llm-assistant", "region": "us-east",
            "severity": "critical", "summary": " \u{0}\t ", "value": 0.09, "threshold": 0.05});
        let signal = r
            .decide(1, EventType::AlertFiring, &alert)
            .signal
            .expect("a critical alert must open an incident whatever its summary");
        assert_eq!(signal.title, "HighErrorRate on llm-assistant");
    }

    #[test]
    fn state_per_service_is_bounded_and_dropped_with_its_cluster() {
        let mut r = Rules::default();
        for i in 0..(MAX_TRACKED + 100) {
            let mut m = metrics(0.001, 100.0);
            m["service"] = json!(format!("svc-{i}"));
            r.decide(7, EventType::ServiceMetrics, &m);
        }
        // Services named by the network must not grow memory without end.
        assert_eq!(r.tracked(), MAX_TRACKED);
        r.forget_cluster(7);
        assert_eq!(r.tracked(), 0, "a removed cluster's state goes with it");
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
