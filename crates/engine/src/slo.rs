//! Service level objectives and their burn rates, as SRE teams alert on them (the Google
//! SRE workbook's multiwindow, multi-burn-rate alerts): a condition fires when the error
//! budget burns faster than its factor over both a long and a short window, so it catches
//! a fast burn within minutes and stops firing soon after the burn stops.
//!
//! Two objectives per service:
//! - **availability**: the share of requests that succeed (e.g. 99.5 %); the bad share over
//!   a window is its failed requests over its requests, the requests of each sample that
//!   falls in (t − W, t] (as Prometheus's `rate()` ratio over `[W]` counts the increments
//!   between the samples it holds);
//! - **latency**: the share of time slices whose p99 is at or under a threshold (e.g. 99 %
//!   of slices under 2,000 ms); the bad share over a window is the share of samples in
//!   [t − W, t] over it (as `avg_over_time(…[W])` reads a recorded 0/1 series).
//!
//! The same conditions are written as Prometheus rules by `firebreak gateway slo-rules`,
//! and a test feeds the same series to both and requires them to agree. [`Watch`] opens
//! (or updates) a service's incident when one of its conditions starts firing.

use serde::Serialize;
use ts_rs::TS;

pub use firebreak_store::objectives::{Budget, Objective, Sample};

/// Which objective a burn is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, TS)]
#[serde(rename_all = "lowercase")]
pub enum Sli {
    Availability,
    Latency,
}

impl Sli {
    pub fn as_str(self) -> &'static str {
        match self {
            Sli::Availability => "availability",
            Sli::Latency => "latency",
        }
    }
}

pub use firebreak_protocol::slo::{range, Condition, PAGE};

/// One condition of one objective at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Burn {
    pub sli: Sli,
    pub long_s: i64,
    pub short_s: i64,
    pub factor: f64,
    /// The burn rates over each window (the bad share over the budget's), when the
    /// window holds anything to judge.
    pub long_burn: Option<f64>,
    pub short_burn: Option<f64>,
    pub firing: bool,
}

impl Burn {
    /// "availability: 18.2× over 1h and 21.0× over 5m (page at 14.4×)".
    pub fn sentence(&self) -> String {
        let burn = |b: Option<f64>| b.map_or("no data".into(), |b| format!("{b:.1}×"));
        format!(
            "{}: {} over {} and {} over {} (pages at {}×)",
            self.sli.as_str(),
            burn(self.long_burn),
            range(self.long_s),
            burn(self.short_burn),
            range(self.short_s),
            self.factor
        )
    }
}

/// The bad share of requests over (at − window, at].
fn error_share(samples: &[Sample], at_ms: i64, window_s: i64) -> Option<f64> {
    let from = at_ms - window_s * 1000;
    let (mut requests, mut errors) = (0.0, 0.0);
    for s in samples
        .iter()
        .filter(|s| s.at_ms > from && s.at_ms <= at_ms)
    {
        requests += s.requests;
        errors += s.errors;
    }
    (requests > 0.0).then(|| errors / requests)
}

/// The share of samples in [at − window, at] whose p99 is over `threshold`.
fn slow_share(samples: &[Sample], at_ms: i64, window_s: i64, threshold: f64) -> Option<f64> {
    let from = at_ms - window_s * 1000;
    let inside: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at_ms >= from && s.at_ms <= at_ms)
        .collect();
    if inside.is_empty() {
        return None;
    }
    let slow = inside.iter().filter(|s| s.p99_ms > threshold).count();
    Some(slow as f64 / inside.len() as f64)
}

/// Every page condition of both objectives at `at_ms`, from `samples` (in time order; only
/// those up to `at_ms` count).
pub fn burns(objective: &Objective, samples: &[Sample], at_ms: i64) -> Vec<Burn> {
    let mut out = Vec::new();
    for c in PAGE {
        let long = error_share(samples, at_ms, c.long_s);
        let short = error_share(samples, at_ms, c.short_s);
        out.push(burn(
            Sli::Availability,
            c,
            objective.availability,
            long,
            short,
        ));
        if let Some(threshold) = objective.latency_p99_ms {
            let long = slow_share(samples, at_ms, c.long_s, threshold);
            let short = slow_share(samples, at_ms, c.short_s, threshold);
            out.push(burn(Sli::Latency, c, objective.latency_target, long, short));
        }
    }
    out
}

/// A condition over the windows' bad shares: firing when both are above its threshold
/// (the comparison Prometheus makes with the generated rules), said as burn rates.
fn burn(sli: Sli, c: Condition, target: f64, long: Option<f64>, short: Option<f64>) -> Burn {
    let over = |share: Option<f64>| share.is_some_and(|s| s > c.threshold(target));
    let budget = 1.0 - target;
    Burn {
        sli,
        long_s: c.long_s,
        short_s: c.short_s,
        factor: c.factor,
        long_burn: long.map(|s| s / budget),
        short_burn: short.map(|s| s / budget),
        firing: over(long) && over(short),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OBJ: Objective = Objective {
        availability: 0.995,
        latency_p99_ms: Some(2000.0),
        latency_target: 0.99,
    };

    fn minutes(errors: impl Fn(i64) -> f64, p99: impl Fn(i64) -> f64, n: i64) -> Vec<Sample> {
        (1..=n)
            .map(|m| Sample {
                at_ms: m * 60_000,
                requests: 1000.0,
                errors: errors(m),
                p99_ms: p99(m),
            })
            .collect()
    }

    #[test]
    fn a_fast_burn_pages_on_both_windows_and_stops_soon_after_it_ends() {
        // 0.2 % errors for two hours, then 10 % (20× the budget) for 30 minutes, then calm.
        let s = minutes(
            |m| if (121..=150).contains(&m) { 100.0 } else { 2.0 },
            |_| 800.0,
            240,
        );
        let fast = |m: i64| burns(&OBJ, &s, m * 60_000)[0].clone();
        assert!(!fast(120).firing, "{:?}", fast(120));
        // Five bad minutes: the 5-minute window burns at 20×, the hour not yet at 14.4×.
        assert!(!fast(125).firing);
        // The hour's share passes 14.4 × 0.5 % = 7.2 % after 43 bad minutes: not within
        // 30; six hours at 6× need 3 % over six hours: not either. The slower condition:
        let slow = |m: i64| burns(&OBJ, &s, m * 60_000)[2].clone();
        assert!(!slow(150).firing, "{:?}", slow(150));
        // A stronger burn: 50 % errors pages once the hour's share passes 7.2 %, at its
        // ninth bad minute, and stops five minutes after the errors do.
        let s = minutes(
            |m| if (121..=140).contains(&m) { 500.0 } else { 2.0 },
            |_| 800.0,
            150,
        );
        let at = |m: i64| burns(&OBJ, &s, m * 60_000)[0].clone();
        assert!(!at(128).firing, "{}", at(128).sentence());
        assert!(at(129).firing, "{}", at(129).sentence());
        assert!(at(129).sentence().starts_with("availability: "));
        assert!(at(144).firing, "the last five minutes still burn");
        assert!(!at(145).firing, "{}", at(145).sentence());
    }

    #[test]
    fn latency_burns_on_the_share_of_slow_slices() {
        let s = minutes(|_| 2.0, |m| if m > 100 { 3000.0 } else { 800.0 }, 110);
        let latency = |m: i64| {
            burns(&OBJ, &s, m * 60_000)
                .into_iter()
                .find(|b| b.sli == Sli::Latency)
                .unwrap()
        };
        assert!(!latency(100).firing);
        // 10 of the hour's 61 slices slow: 16 % over a 1 % budget, and all of the last 5.
        assert!(latency(110).firing, "{}", latency(110).sentence());
    }

    #[test]
    fn objectives_that_cannot_be_are_refused() {
        assert!(OBJ.check().is_ok());
        for bad in [
            Objective {
                availability: 1.0,
                ..OBJ
            },
            Objective {
                latency_target: 0.0,
                ..OBJ
            },
            Objective {
                latency_p99_ms: Some(-1.0),
                ..OBJ
            },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
    }
}

/// How often the console looks at the services' burn rates.
const EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// The console's side of the objectives: every few seconds, each service with objectives
/// is judged on its recorded samples; a condition that starts firing opens the service's
/// incident (or writes on the open one) with the burn rates. Said once per burn: a
/// condition must stop firing before it is said again.
pub struct Watch {
    store: firebreak_store::Store,
    sink: std::sync::Arc<dyn crate::ingest::sink::ConsoleSink>,
    firing: std::sync::Mutex<std::collections::HashSet<(i64, String, Sli, i64)>>,
    /// Each service's budget left as last counted, and when it was counted.
    budgets: std::sync::Mutex<std::collections::HashMap<(i64, String), (Budget, i64)>>,
}

/// How often the budgets are counted again (each count reads 30 days of samples).
const BUDGET_EVERY_MS: i64 = 60_000;

impl Watch {
    pub fn new(
        store: firebreak_store::Store,
        sink: std::sync::Arc<dyn crate::ingest::sink::ConsoleSink>,
    ) -> std::sync::Arc<Watch> {
        std::sync::Arc::new(Watch {
            store,
            sink,
            firing: Default::default(),
            budgets: Default::default(),
        })
    }

    pub fn spawn(self: &std::sync::Arc<Self>) -> tokio::task::JoinHandle<()> {
        let watch = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = watch.look().await {
                    tracing::warn!(error = %e, "cannot judge the services' objectives");
                }
                if let Err(e) = watch.count_budgets(false).await {
                    tracing::warn!(error = %e, "cannot count the services' error budgets");
                }
            }
        })
    }

    /// The budget a service had left when last counted.
    pub fn budget(&self, cluster_id: i64, service: &str) -> Option<Budget> {
        self.budgets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(cluster_id, service.to_owned()))
            .map(|(b, _)| *b)
    }

    /// Counts the budgets not counted within the last minute (every one, with `all`), as
    /// of each service's newest sample; forgets those of services without objectives.
    pub async fn count_budgets(&self, all: bool) -> firebreak_store::Result<()> {
        let objectives = self.store.objectives().await?;
        let now = firebreak_store::now_ms();
        for o in &objectives {
            let key = (o.cluster_id, o.service.clone());
            let counted = self
                .budgets
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&key)
                .map(|(_, at)| *at);
            if !all && counted.is_some_and(|at| now - at < BUDGET_EVERY_MS) {
                continue;
            }
            let at = self
                .store
                .service_samples(o.cluster_id, &o.service, now - 60_000)
                .await?
                .last()
                .map_or(now, |s| s.at_ms.max(now));
            let budget = self
                .store
                .budget(o.cluster_id, &o.service, &o.objective, at)
                .await?;
            self.budgets
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key, (budget, now));
        }
        self.budgets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(c, s), _| {
                objectives
                    .iter()
                    .any(|o| o.cluster_id == *c && o.service == *s)
            });
        Ok(())
    }

    /// One look at every service with objectives, each as of its newest sample (a
    /// simulator running faster than time is judged on its own clock): the incidents it
    /// opened or wrote on.
    pub async fn look(&self) -> firebreak_store::Result<Vec<i64>> {
        let longest = PAGE.iter().map(|c| c.long_s).max().unwrap_or(0);
        let mut touched = Vec::new();
        for o in self.store.objectives().await? {
            let now = firebreak_store::now_ms();
            // The windows back from now, and from the newest sample when it is later.
            let mut samples = self
                .store
                .service_samples(o.cluster_id, &o.service, now - longest * 1000 - 60_000)
                .await?;
            let Some(at_ms) = samples.last().map(|s| s.at_ms.max(now)) else {
                continue;
            };
            if at_ms > now {
                samples.retain(|s| s.at_ms > at_ms - longest * 1000 - 60_000);
            }
            for b in burns(&o.objective, &samples, at_ms) {
                let key = (o.cluster_id, o.service.clone(), b.sli, b.long_s);
                let started = {
                    let mut firing = self.firing.lock().unwrap_or_else(|e| e.into_inner());
                    if b.firing {
                        firing.insert(key)
                    } else {
                        firing.remove(&key);
                        false
                    }
                };
                if !started {
                    continue;
                }
                let title = format!(
                    "{} burns its {} error budget ({:.0}× over {})",
                    o.service,
                    b.sli.as_str(),
                    b.long_burn.unwrap_or(0.0),
                    range(b.long_s)
                );
                let entry = format!("Error budget burn: {}", b.sentence());
                let id = self
                    .store
                    .open_or_attach(&firebreak_store::Finding {
                        cluster_id: o.cluster_id,
                        service: &o.service,
                        title: &title,
                        severity: firebreak_store::incident::Severity::Critical,
                        rule: "slo:burn_rate",
                        kind: firebreak_store::incident::EntryKind::Anomaly,
                        entry: &entry,
                        at_ms,
                    })
                    .await?;
                self.sink.committed(&crate::ingest::sink::Committed {
                    updated: vec![id],
                    ..Default::default()
                });
                touched.push(id);
            }
        }
        Ok(touched)
    }
}

/// A recorded service with its objectives, as Settings shows it: its burn rates now
/// when it has objectives.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ServiceObjectives {
    pub cluster_id: i64,
    pub cluster: String,
    pub service: String,
    pub set: Option<firebreak_store::objectives::ServiceObjective>,
    /// Each condition's burn now (at the service's newest sample).
    pub burns: Vec<Burn>,
}

/// Every recorded service, with its objectives and burn rates when it has objectives.
pub async fn service_objectives(
    store: &firebreak_store::Store,
) -> firebreak_store::Result<Vec<ServiceObjectives>> {
    let set = store.objectives().await?;
    let longest = PAGE.iter().map(|c| c.long_s).max().unwrap_or(0);
    let mut out = Vec::new();
    for (cluster_id, cluster, service) in store.services().await? {
        let objective = set
            .iter()
            .find(|o| o.cluster_id == cluster_id && o.service == service)
            .cloned();
        let burns = match &objective {
            Some(o) => {
                let now = firebreak_store::now_ms();
                let samples = store
                    .service_samples(cluster_id, &service, now - longest * 1000 - 60_000)
                    .await?;
                let at = samples.last().map_or(now, |s| s.at_ms.max(now));
                burns(&o.objective, &samples, at)
            }
            None => Vec::new(),
        };
        out.push(ServiceObjectives {
            cluster_id,
            cluster,
            service,
            set: objective,
            burns,
        });
    }
    Ok(out)
}
