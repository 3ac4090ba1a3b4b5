//! `firebreak gateway slo-rules`: each configured service's objectives as Prometheus
//! recording and alerting rules, on the same burn-rate conditions a console opens
//! incidents on (`firebreak_protocol::slo::PAGE`), so Prometheus and the console page on
//! the same thing.
//!
//! Per service, one group evaluated every minute:
//! - `firebreak:slo_errors:ratio_rate<W>`: failed over all requests, from the counters'
//!   `rate()` over each window W the conditions use;
//! - with a latency objective, `firebreak:slo_latency_slow` (1 when the p99 query is over
//!   the threshold, else 0) and `firebreak:slo_latency_slow:ratio<W>`, its average over W;
//! - `FirebreakErrorBudgetBurn` for each objective and condition: both windows' shares
//!   above the condition's threshold, labelled with the service, the objective (`slo`),
//!   the windows and `severity: critical`.
//!
//! Text is written as YAML's double-quoted scalars (JSON strings), so any PromQL goes in
//! as it is.

use firebreak_protocol::slo::{range, Condition, PAGE};

use crate::config::{Config, Service, Slo};

/// The alert's name, in every rule and every test that expects it.
pub const ALERT: &str = "FirebreakErrorBudgetBurn";

/// What the alert says, for a service's objective and condition.
pub fn summary(service: &str, slo: &str, c: &Condition) -> String {
    format!(
        "{service} burns its {slo} error budget over {}× as fast as it allows, over {} and {}",
        c.factor,
        range(c.long_s),
        range(c.short_s)
    )
}

fn q(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into())
}

/// Every window the conditions use, shortest first.
fn windows() -> Vec<i64> {
    let mut w: Vec<i64> = PAGE.iter().flat_map(|c| [c.long_s, c.short_s]).collect();
    w.sort_unstable();
    w.dedup();
    w
}

/// The rules file for every service of `config` with objectives; `source` names the
/// configuration in its header.
pub fn rules(config: &Config, source: &str) -> String {
    let mut out = format!(
        "# Written by `firebreak gateway slo-rules` from {source}:\n\
         # the services' objectives as recording and alerting rules, on the burn-rate conditions\n\
         # Firebreak's consoles open incidents on. Regenerate it rather than edit it; load it\n\
         # with rule_files.\n\
         groups:\n"
    );
    let with: Vec<(&Service, &Slo)> = config
        .services
        .iter()
        .filter_map(|s| Some((s, s.slo.as_ref()?)))
        .collect();
    if with.is_empty() {
        out.push_str("  []\n");
    }
    for (service, slo) in with {
        service_rules(&mut out, &service.name, slo);
    }
    out
}

fn service_rules(out: &mut String, name: &str, slo: &Slo) {
    let labels = format!("{{service: {}}}", q(name));
    let this = format!("{{service={}}}", q(name));
    out.push_str(&format!(
        "  - name: {}\n    interval: 1m\n    rules:\n",
        q(&format!("firebreak-slo:{name}"))
    ));
    for w in windows() {
        let r = range(w);
        out.push_str(&format!(
            "      - record: {}\n        expr: {}\n        labels: {labels}\n",
            q(&format!("firebreak:slo_errors:ratio_rate{r}")),
            q(&format!(
                "sum(rate({}[{r}])) / sum(rate({}[{r}]))",
                slo.errors, slo.requests
            )),
        ));
    }
    if let Some((query, threshold, _)) = &slo.latency {
        out.push_str(&format!(
            "      - record: \"firebreak:slo_latency_slow\"\n        expr: {}\n        labels: {labels}\n",
            q(&format!("({query}) > bool {threshold}")),
        ));
        for w in windows() {
            let r = range(w);
            out.push_str(&format!(
                "      - record: {}\n        expr: {}\n        labels: {labels}\n",
                q(&format!("firebreak:slo_latency_slow:ratio{r}")),
                q(&format!(
                    "avg_over_time(firebreak:slo_latency_slow{this}[{r}])"
                )),
            ));
        }
    }
    for c in PAGE {
        let mut alerts = vec![(
            "availability",
            "firebreak:slo_errors:ratio_rate",
            c.threshold(slo.availability),
        )];
        if let Some((_, _, target)) = &slo.latency {
            alerts.push((
                "latency",
                "firebreak:slo_latency_slow:ratio",
                c.threshold(*target),
            ));
        }
        for (objective, series, threshold) in alerts {
            let (long, short) = (range(c.long_s), range(c.short_s));
            out.push_str(&format!(
                "      - alert: {ALERT}\n        expr: {}\n        labels: {{service: {}, slo: {}, long: {}, short: {}, severity: \"critical\"}}\n        annotations: {{summary: {}}}\n",
                q(&format!(
                    "{series}{long}{this} > {threshold} and {series}{short}{this} > {threshold}"
                )),
                q(name),
                q(objective),
                q(&long),
                q(&short),
                q(&summary(name, objective, &c)),
            ));
        }
    }
}
