//! Scenarios: data files that script what goes wrong in the simulated fleet, and when.
//! The built-in ones live in `scenarios/*.toml` and are compiled into the binary; a path
//! to another file works too.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use firebreak_protocol::events::NodeFault;

const BUILT_IN: &[(&str, &str)] = &[
    (
        "bad-model-rollout",
        include_str!("scenarios/bad-model-rollout.toml"),
    ),
    (
        "pipeline-bottleneck",
        include_str!("scenarios/pipeline-bottleneck.toml"),
    ),
    (
        "node-loss-cascade",
        include_str!("scenarios/node-loss-cascade.toml"),
    ),
    (
        "kv-cache-pressure",
        include_str!("scenarios/kv-cache-pressure.toml"),
    ),
    ("steady", include_str!("scenarios/steady.toml")),
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    pub summary: String,
    /// The documented remedy, for people and for tests.
    pub remedy: Remedy,
    #[serde(default)]
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, tag = "action", rename_all = "snake_case")]
pub enum Remedy {
    None,
    Rollback { service: String, to_revision: u32 },
    Failover { service: String, to_region: String },
}

/// One scripted change, `at` seconds of simulated time after the start.
/// (`deny_unknown_fields` does not combine with `flatten`; `Change` checks its own fields.)
#[derive(Debug, Clone, Deserialize)]
pub struct Step {
    pub at: u64,
    #[serde(flatten)]
    pub change: Change,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "do", rename_all = "snake_case", deny_unknown_fields)]
pub enum Change {
    /// Start rolling out a new revision.
    Rollout {
        service: String,
        revision: u32,
        model: String,
        /// A bad model: errors and latency climb on every node that serves it.
        #[serde(default)]
        bad: bool,
        /// How bad (either makes the revision bad): the share of requests its nodes fail
        /// on top of the usual (0 to 1; 0.3 when only `bad` is said), and how many times
        /// slower their p99 is (at least 1; when only `bad` is said, the median is 1.6
        /// times slower and the p99 3.5 times).
        #[serde(default)]
        errors: Option<f64>,
        #[serde(default)]
        latency: Option<f64>,
        waves: u32,
        wave_interval_s: u64,
        /// The pipeline stalls when it reaches this wave, leaving its nodes drained.
        #[serde(default)]
        stall_at_wave: Option<u32>,
    },
    /// Multiply a service's traffic, reaching `multiplier` over `ramp_s` seconds.
    Load {
        service: String,
        multiplier: f64,
        ramp_s: u64,
    },
    /// Take nodes of a service's pool in a region down.
    NodesDown {
        service: String,
        region: String,
        count: u32,
        reason: NodeFault,
    },
    /// A GPU of one of the service's nodes in a region reports an XID error; with XID 79
    /// (fallen off the bus) the node also loses that GPU and serves at reduced capacity.
    GpuXid {
        service: String,
        region: String,
        xid: u32,
    },
    /// The service's model servers in a region run short of KV cache for `seconds`:
    /// requests are preempted and recomputed, so latency climbs while the region serves.
    KvPressure {
        service: String,
        region: String,
        seconds: u64,
    },
}

impl Scenario {
    /// A built-in scenario by name, or a scenario file by path.
    pub fn load(name_or_path: &str) -> Result<Scenario> {
        if let Some((_, text)) = BUILT_IN.iter().find(|(n, _)| *n == name_or_path) {
            return Self::parse(text, name_or_path);
        }
        let path = Path::new(name_or_path);
        if path.extension().is_some_and(|e| e == "toml") && path.exists() {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read scenario {}", path.display()))?;
            return Self::parse(&text, &path.display().to_string());
        }
        bail!(
            "no scenario {name_or_path:?}: built-in ones are {}; or give a path to a .toml file",
            Self::names().join(", ")
        )
    }

    pub fn parse(text: &str, origin: &str) -> Result<Scenario> {
        let s: Scenario =
            toml::from_str(text).with_context(|| format!("scenario {origin} is not valid"))?;
        for step in &s.steps {
            if let Change::Rollout {
                errors, latency, ..
            } = &step.change
            {
                if errors.is_some_and(|e| !(0.0..=1.0).contains(&e)) {
                    bail!(
                        "scenario {origin}: the rollout at {} s has errors outside 0 to 1",
                        step.at
                    );
                }
                if latency.is_some_and(|l| !(l >= 1.0 && l.is_finite())) {
                    bail!(
                        "scenario {origin}: the rollout at {} s has a latency factor below 1",
                        step.at
                    );
                }
            }
        }
        Ok(s)
    }

    /// A built-in scenario's TOML, to start a variant of it from.
    pub fn builtin_text(name: &str) -> Option<&'static str> {
        BUILT_IN.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
    }

    pub fn names() -> Vec<&'static str> {
        BUILT_IN.iter().map(|(n, _)| *n).collect()
    }

    pub fn built_in() -> Result<Vec<Scenario>> {
        BUILT_IN.iter().map(|(n, t)| Self::parse(t, n)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_scenario_parses_and_is_named_for_its_file() {
        for (name, text) in BUILT_IN {
            let s = Scenario::parse(text, name).unwrap_or_else(|e| panic!("{name}: {e:#}"));
            assert_eq!(s.name, *name, "a scenario's name must match its file name");
        }
    }

    #[test]
    fn unknown_scenario_names_the_built_in_ones() {
        let err = Scenario::load("no-such-thing").unwrap_err().to_string();
        assert!(err.contains("bad-model-rollout"), "{err}");
    }
}
