//! Queries from presets per serving stack: a service names its stack (`stack = "vllm"`)
//! and gets its figures' PromQL from here, written once, instead of six hand-written
//! queries per service. Each preset knows its stack's metric names, which label carries
//! the service (overridable), and which figures the stack cannot give. A metric a stack
//! renamed between releases is a list of alternatives, the current name first: the poller
//! uses the first that answers and says which on `/v1/gateway/status`.
//!
//! GPU use comes from NVIDIA's DCGM exporter (`DCGM_FI_DEV_GPU_UTIL`, and its XID field
//! for the GPU signals), whose series name the pod using the GPU: a service's GPUs are
//! those of pods named after its deployment (`pod=~"<deployment>-.*"`).
//!
//! In every template `$S` stands for the service's selector (its label and the region's),
//! `$D` for its deployment; `$region` is left for the poller to fill per region.

use std::fmt;

/// Every figure a service's queries may name, as `service.metrics` carries it.
pub const METRICS: &[&str] = &[
    "latency_p50_ms",
    "latency_p99_ms",
    "error_rate",
    "requests_per_s",
    "queue_depth",
    "gpu_utilization",
];

/// A serving stack with a preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stack {
    Vllm,
    Triton,
    Tgi,
    Sglang,
    Kserve,
}

impl Stack {
    pub const ALL: [Stack; 5] = [
        Stack::Vllm,
        Stack::Triton,
        Stack::Tgi,
        Stack::Sglang,
        Stack::Kserve,
    ];

    pub fn parse(name: &str) -> Option<Stack> {
        Stack::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// The name a configuration gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            Stack::Vllm => "vllm",
            Stack::Triton => "triton",
            Stack::Tgi => "tgi",
            Stack::Sglang => "sglang",
            Stack::Kserve => "kserve",
        }
    }

    /// Its name as people write it.
    pub fn title(self) -> &'static str {
        match self {
            Stack::Vllm => "vLLM",
            Stack::Triton => "NVIDIA Triton",
            Stack::Tgi => "Hugging Face TGI",
            Stack::Sglang => "SGLang",
            Stack::Kserve => "KServe (Knative queue-proxy)",
        }
    }

    /// The label on the stack's metrics that names the model or service, unless a
    /// service says otherwise.
    pub fn service_label(self) -> &'static str {
        match self {
            Stack::Vllm | Stack::Sglang => "model_name",
            Stack::Triton => "model",
            // TGI serves one model per server and labels nothing: the scrape's own
            // target labels (a ServiceMonitor's `service`) carry it.
            Stack::Tgi => "service",
            Stack::Kserve => "service_name",
        }
    }

    /// A gauge every server of the stack exports while it runs, with traffic or without:
    /// discovery reads the service label's values from it.
    pub fn presence(self) -> &'static str {
        match self {
            Stack::Vllm => "vllm:num_requests_waiting",
            Stack::Triton => "nv_inference_pending_request_count",
            Stack::Tgi => "tgi_queue_size",
            Stack::Sglang => "sglang:num_queue_reqs",
            Stack::Kserve => "revision_queue_depth",
        }
    }

    /// The preset's figures: metric name → PromQL alternatives, the current one first.
    /// Each aggregates `by ($G)` (`$B` in a histogram's `by (le$B)`): nothing for one
    /// service's query, its service and region labels for one query across all services.
    fn figures(self) -> &'static [(&'static str, &'static [&'static str])] {
        match self {
            Stack::Vllm => &[
                ("latency_p50_ms", &["histogram_quantile(0.5, sum by (le$B) (rate(vllm:e2e_request_latency_seconds_bucket{$S}[1m]))) * 1000"]),
                ("latency_p99_ms", &["histogram_quantile(0.99, sum by (le$B) (rate(vllm:e2e_request_latency_seconds_bucket{$S}[1m]))) * 1000"]),
                // vLLM counts finished requests by why they finished; aborted and failed
                // ones are its failures (none such: 0).
                ("error_rate", &["(sum by ($G) (rate(vllm:request_success_total{$S,finished_reason=~\"abort|error\"}[1m])) / sum by ($G) (rate(vllm:request_success_total{$S}[1m]))) or (0 * sum by ($G) (rate(vllm:request_success_total{$S}[1m])))"]),
                ("requests_per_s", &["sum by ($G) (rate(vllm:request_success_total{$S}[1m]))"]),
                ("queue_depth", &["sum by ($G) (vllm:num_requests_waiting{$S})"]),
            ],
            Stack::Triton => &[
                // Triton gives quantiles only as summaries (`--metrics-config
                // summary_latencies=true`); the slowest instance's stands for the service.
                ("latency_p50_ms", &["max by ($G) (nv_inference_request_summary_us{$S,quantile=\"0.5\"}) / 1000"]),
                ("latency_p99_ms", &["max by ($G) (nv_inference_request_summary_us{$S,quantile=\"0.99\"}) / 1000"]),
                ("error_rate", &["sum by ($G) (rate(nv_inference_request_failure{$S}[1m])) / (sum by ($G) (rate(nv_inference_request_success{$S}[1m])) + sum by ($G) (rate(nv_inference_request_failure{$S}[1m])))"]),
                ("requests_per_s", &["sum by ($G) (rate(nv_inference_request_success{$S}[1m])) + sum by ($G) (rate(nv_inference_request_failure{$S}[1m]))"]),
                ("queue_depth", &["sum by ($G) (nv_inference_pending_request_count{$S})"]),
            ],
            Stack::Tgi => &[
                ("latency_p50_ms", &["histogram_quantile(0.5, sum by (le$B) (rate(tgi_request_duration_bucket{$S}[1m]))) * 1000"]),
                ("latency_p99_ms", &["histogram_quantile(0.99, sum by (le$B) (rate(tgi_request_duration_bucket{$S}[1m]))) * 1000"]),
                ("error_rate", &["(sum by ($G) (rate(tgi_request_failure{$S}[1m])) / sum by ($G) (rate(tgi_request_count{$S}[1m]))) or (0 * sum by ($G) (rate(tgi_request_count{$S}[1m])))"]),
                ("requests_per_s", &["sum by ($G) (rate(tgi_request_count{$S}[1m]))"]),
                ("queue_depth", &["sum by ($G) (tgi_queue_size{$S})"]),
            ],
            Stack::Sglang => &[
                ("latency_p50_ms", &["histogram_quantile(0.5, sum by (le$B) (rate(sglang:e2e_request_latency_seconds_bucket{$S}[1m]))) * 1000"]),
                ("latency_p99_ms", &["histogram_quantile(0.99, sum by (le$B) (rate(sglang:e2e_request_latency_seconds_bucket{$S}[1m]))) * 1000"]),
                ("error_rate", &["(sum by ($G) (rate(sglang:num_aborted_requests_total{$S}[1m])) / sum by ($G) (rate(sglang:num_requests_total{$S}[1m]))) or (0 * sum by ($G) (rate(sglang:num_requests_total{$S}[1m])))"]),
                ("requests_per_s", &["sum by ($G) (rate(sglang:num_requests_total{$S}[1m]))"]),
                ("queue_depth", &["sum by ($G) (sglang:num_queue_reqs{$S})"]),
            ],
            Stack::Kserve => &[
                // The queue-proxy's histogram is in milliseconds already.
                ("latency_p50_ms", &["histogram_quantile(0.5, sum by (le$B) (rate(revision_app_request_latencies_bucket{$S}[1m])))"]),
                ("latency_p99_ms", &["histogram_quantile(0.99, sum by (le$B) (rate(revision_app_request_latencies_bucket{$S}[1m])))"]),
                ("error_rate", &["(sum by ($G) (rate(revision_app_request_count{$S,response_code_class=\"5xx\"}[1m])) / sum by ($G) (rate(revision_app_request_count{$S}[1m]))) or (0 * sum by ($G) (rate(revision_app_request_count{$S}[1m])))"]),
                ("requests_per_s", &["sum by ($G) (rate(revision_app_request_count{$S}[1m]))"]),
                ("queue_depth", &["sum by ($G) (revision_queue_depth{$S})"]),
            ],
        }
    }

    /// A revision's requests and failed requests (counters: the gateway counts what they
    /// add between polls) and its p50 and p99 now, `$S` selecting the revision too.
    fn revision_templates(self) -> [&'static str; 4] {
        match self {
            Stack::Vllm => [
                "sum(vllm:request_success_total{$S})",
                "sum(vllm:request_success_total{$S,finished_reason=~\"abort|error\"})",
                "histogram_quantile(0.5, sum by (le) (rate(vllm:e2e_request_latency_seconds_bucket{$S}[1m]))) * 1000",
                "histogram_quantile(0.99, sum by (le) (rate(vllm:e2e_request_latency_seconds_bucket{$S}[1m]))) * 1000",
            ],
            Stack::Triton => [
                "sum(nv_inference_request_success{$S}) + sum(nv_inference_request_failure{$S})",
                "sum(nv_inference_request_failure{$S})",
                "max(nv_inference_request_summary_us{$S,quantile=\"0.5\"}) / 1000",
                "max(nv_inference_request_summary_us{$S,quantile=\"0.99\"}) / 1000",
            ],
            Stack::Tgi => [
                "sum(tgi_request_count{$S})",
                "sum(tgi_request_failure{$S})",
                "histogram_quantile(0.5, sum by (le) (rate(tgi_request_duration_bucket{$S}[1m]))) * 1000",
                "histogram_quantile(0.99, sum by (le) (rate(tgi_request_duration_bucket{$S}[1m]))) * 1000",
            ],
            Stack::Sglang => [
                "sum(sglang:num_requests_total{$S})",
                "sum(sglang:num_aborted_requests_total{$S})",
                "histogram_quantile(0.5, sum by (le) (rate(sglang:e2e_request_latency_seconds_bucket{$S}[1m]))) * 1000",
                "histogram_quantile(0.99, sum by (le) (rate(sglang:e2e_request_latency_seconds_bucket{$S}[1m]))) * 1000",
            ],
            Stack::Kserve => [
                "sum(revision_app_request_count{$S})",
                "sum(revision_app_request_count{$S,response_code_class=\"5xx\"})",
                "histogram_quantile(0.5, sum by (le) (rate(revision_app_request_latencies_bucket{$S}[1m])))",
                "histogram_quantile(0.99, sum by (le) (rate(revision_app_request_latencies_bucket{$S}[1m])))",
            ],
        }
    }

    /// The KV cache's use (0 to 1) and the preemptions counter, where the stack has them.
    fn kv_cache(self) -> Option<(&'static [&'static str], &'static str)> {
        match self {
            // vLLM 0.10 renamed gpu_cache_usage_perc to kv_cache_usage_perc.
            Stack::Vllm => Some((
                &[
                    "avg by ($G) (vllm:kv_cache_usage_perc{$S})",
                    "avg by ($G) (vllm:gpu_cache_usage_perc{$S})",
                ],
                "sum by ($G) (vllm:num_preemptions_total{$S})",
            )),
            Stack::Sglang => Some((
                &["avg by ($G) (sglang:token_usage{$S})"],
                "sum by ($G) (sglang:num_retracted_requests_total{$S})",
            )),
            Stack::Triton | Stack::Tgi | Stack::Kserve => None,
        }
    }
}

impl fmt::Display for Stack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a service's GPU figures come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuSource {
    /// NVIDIA's DCGM exporter.
    Dcgm,
    /// Nothing exports them: GPU use is left out, said once.
    None,
}

/// A service's use of a preset: which labels carry it, and where its GPUs are read.
#[derive(Debug, Clone, PartialEq)]
pub struct PresetUse {
    pub stack: Stack,
    /// The label naming the service on the stack's metrics, and its value.
    pub service_label: String,
    pub service_value: String,
    /// The label naming the region (a target label the scrape adds).
    pub region_label: String,
    /// More labels the stack's series must carry, exactly (a namespace, a scrape job),
    /// where the service's label alone matches another's series too.
    pub matching: Vec<(String, String)>,
    /// The label that carries a revision on the stack's metrics (`$revision`'s label in
    /// the figures by revision): the pod template hash a Kubernetes scrape adds, unless
    /// said otherwise.
    pub revision_label: String,
    pub gpu: GpuSource,
}

/// What a preset gives one service.
#[derive(Debug, Clone, PartialEq)]
pub struct Given {
    /// Metric → PromQL alternatives, `$region` left in.
    pub figures: Vec<(&'static str, Vec<String>)>,
    /// Figures it cannot give, each with why.
    pub left_out: Vec<(&'static str, String)>,
    /// KV-cache use (alternatives) and the preemptions counter.
    pub kv_cache: Option<(Vec<String>, String)>,
    /// DCGM's XID field for the service's GPUs, with its node and GPU labels.
    pub xid: Option<String>,
}

/// A label value inside a PromQL string literal.
fn quoted(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"")
}

impl PresetUse {
    /// The PromQL discovery asks: one series per (service, region) the stack serves.
    pub fn discovery_query(&self) -> String {
        let matchers: Vec<String> = self
            .matching
            .iter()
            .map(|(label, value)| format!("{label}=\"{}\"", quoted(value)))
            .collect();
        format!(
            "count by ({}, {}) ({}{{{}}})",
            self.service_label,
            self.region_label,
            self.stack.presence(),
            matchers.join(",")
        )
    }

    /// The service's figures by revision: requests, failed requests, p50 and p99, each
    /// selecting `$revision` by the revision label.
    pub fn revision_queries(&self) -> [String; 4] {
        let selector = format!("{},{}=\"$revision\"", self.selector(), self.revision_label);
        self.stack
            .revision_templates()
            .map(|t| fill(t, &selector, "", ""))
    }

    /// The service's own series: its label, the region's, the preset's matchers.
    fn selector(&self) -> String {
        let mut selector = format!(
            "{}=\"{}\",{}=\"$region\"",
            self.service_label,
            quoted(&self.service_value),
            self.region_label
        );
        for (label, value) in &self.matching {
            selector.push_str(&format!(",{label}=\"{}\"", quoted(value)));
        }
        selector
    }

    /// This preset for the service whose label value is `value`.
    pub fn for_value(&self, value: &str) -> PresetUse {
        PresetUse {
            service_value: value.to_owned(),
            ..self.clone()
        }
    }

    /// The service's figures from its stack's preset.
    pub fn give(&self, deployment: &str) -> Given {
        let selector = self.selector();
        let pods = format!(
            "pod=~\"{}-.*\",{}=\"$region\"",
            regex_quoted(deployment),
            self.region_label
        );
        let fill = |t: &str| fill(t, &selector, "", "").replace("$D", &pods);
        let mut figures: Vec<(&'static str, Vec<String>)> = self
            .stack
            .figures()
            .iter()
            .map(|(metric, ts)| (*metric, ts.iter().map(|t| fill(t)).collect()))
            .collect();
        let mut left_out = Vec::new();
        match self.gpu {
            GpuSource::Dcgm => figures.push((
                "gpu_utilization",
                vec![fill("avg(DCGM_FI_DEV_GPU_UTIL{$D}) / 100")],
            )),
            GpuSource::None => left_out.push((
                "gpu_utilization",
                "gpu = \"none\": nothing exports this service's GPU use".to_owned(),
            )),
        }
        Given {
            figures,
            left_out,
            kv_cache: self.stack.kv_cache().map(|(usage, preempted)| {
                (usage.iter().map(|t| fill(t)).collect(), fill(preempted))
            }),
            xid: (self.gpu == GpuSource::Dcgm).then(|| fill("DCGM_FI_DEV_XID_ERRORS{$D}")),
        }
    }
}

/// A preset's queries across every service it serves: the stack's figures by its service
/// and region labels, GPU use by deployment (read from DCGM's pod names) and region.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Metric → PromQL alternatives, one series per (service label, region label) value.
    pub figures: Vec<(&'static str, Vec<String>)>,
    /// One series per (`DEPLOYMENT_LABEL`, region label) value.
    pub gpu: Option<String>,
    /// KV-cache use (alternatives) and the preemptions counter, by service and region.
    pub kv_cache: Option<(Vec<String>, String)>,
    /// DCGM's XID field of every GPU, each series with its deployment and region.
    pub xid: Option<String>,
}

/// The label a batched GPU query names each deployment by.
pub const DEPLOYMENT_LABEL: &str = "firebreak_deployment";

impl PresetUse {
    /// What services on this preset share (their figures can be asked for together): the
    /// preset but the one service's value.
    pub fn batch_key(&self) -> String {
        format!(
            "{}|{}|{}|{:?}|{:?}",
            self.stack, self.service_label, self.region_label, self.matching, self.gpu
        )
    }

    /// The preset's queries for every service at once.
    pub fn batched(&self) -> Batch {
        let selector = self
            .matching
            .iter()
            .map(|(label, value)| format!("{label}=\"{}\"", quoted(value)))
            .collect::<Vec<_>>()
            .join(",");
        let group = format!("{}, {}", self.service_label, self.region_label);
        let le_group = format!(", {group}");
        let figures = self
            .stack
            .figures()
            .iter()
            .map(|(metric, ts)| {
                (
                    *metric,
                    ts.iter()
                        .map(|t| fill(t, &selector, &le_group, &group))
                        .collect(),
                )
            })
            .collect();
        let kv_cache = self.stack.kv_cache().map(|(usage, preempted)| {
            (
                usage
                    .iter()
                    .map(|t| fill(t, &selector, &le_group, &group))
                    .collect(),
                fill(preempted, &selector, &le_group, &group),
            )
        });
        let by_deployment = |metric: &str| {
            format!(
                "label_replace({metric}{{{}=~\".+\"}}, \"{DEPLOYMENT_LABEL}\", \"$1\", \"pod\", \"(.+)-[a-z0-9]+-[a-z0-9]+\")",
                self.region_label
            )
        };
        // A Deployment's pods are named <deployment>-<template hash>-<pod id>.
        let dcgm = self.gpu == GpuSource::Dcgm;
        let gpu = dcgm.then(|| {
            format!(
                "avg by ({DEPLOYMENT_LABEL}, {}) ({}) / 100",
                self.region_label,
                by_deployment("DCGM_FI_DEV_GPU_UTIL")
            )
        });
        Batch {
            figures,
            gpu,
            kv_cache,
            xid: dcgm.then(|| by_deployment("DCGM_FI_DEV_XID_ERRORS")),
        }
    }
}

/// A template with its selector (`$S`, possibly empty), its histogram grouping (`$B`) and
/// its aggregation grouping (`$G`) filled in.
fn fill(template: &str, selector: &str, le_group: &str, group: &str) -> String {
    let with_more = if selector.is_empty() {
        "{".to_owned()
    } else {
        format!("{{{selector},")
    };
    let filled = template
        .replace("{$S,", &with_more)
        .replace("$S", selector)
        .replace("$B", le_group)
        .replace("$G", group);
    // One service's query reads as written by hand: `sum(…)`, not `sum by () (…)`.
    if group.is_empty() {
        filled.replace(" by () (", "(")
    } else {
        filled
    }
}

/// A deployment's name as a literal inside a PromQL regular expression in a string.
fn regex_quoted(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if ".+*?()[]{}|^$\\".contains(c) {
            // Escaped for the regular expression, then the backslash for the string.
            out.push_str("\\\\");
        }
        if c == '"' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vllm() -> PresetUse {
        PresetUse {
            stack: Stack::Vllm,
            service_label: "model_name".into(),
            service_value: "meta-llama/Llama-3.1-8B".into(),
            region_label: "region".into(),
            matching: vec![("namespace".into(), "serving".into())],
            revision_label: "pod_template_hash".into(),
            gpu: GpuSource::Dcgm,
        }
    }

    #[test]
    fn every_stack_gives_every_figure_or_says_why_not() {
        for stack in Stack::ALL {
            assert_eq!(Stack::parse(stack.as_str()), Some(stack));
            for gpu in [GpuSource::Dcgm, GpuSource::None] {
                let given = PresetUse {
                    stack,
                    gpu,
                    ..vllm()
                }
                .give("chat");
                for metric in METRICS {
                    let from_preset = given.figures.iter().any(|(m, _)| m == metric);
                    let left_out = given.left_out.iter().any(|(m, _)| m == metric);
                    assert!(
                        from_preset != left_out,
                        "{stack}: {metric} is given or left out, one of the two"
                    );
                }
                for (metric, alternatives) in &given.figures {
                    for q in alternatives {
                        assert!(q.contains("$region"), "{stack} {metric}: {q}");
                        assert!(
                            !q.contains("$S")
                                && !q.contains("$D")
                                && !q.contains("$G")
                                && !q.contains("$B"),
                            "{q}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn label_values_are_quoted_and_deployments_are_literal_in_the_pod_regex() {
        let given = PresetUse {
            service_value: "a\"b".into(),
            ..vllm()
        }
        .give("chat.v2");
        let (_, p99) = given
            .figures
            .iter()
            .find(|(m, _)| *m == "latency_p99_ms")
            .unwrap();
        assert!(
            p99[0].contains(r#"model_name="a\"b",region="$region",namespace="serving""#),
            "{}",
            p99[0]
        );
        let (_, gpu) = given
            .figures
            .iter()
            .find(|(m, _)| *m == "gpu_utilization")
            .unwrap();
        assert!(gpu[0].contains(r#"pod=~"chat\\.v2-.*""#), "{}", gpu[0]);
    }

    /// One query per figure across all services: no service or region selected, every
    /// aggregation by both labels, the preset's own matchers kept.
    #[test]
    fn the_batched_queries_group_by_service_and_region() {
        let b = vllm().batched();
        let (_, p99) = b
            .figures
            .iter()
            .find(|(m, _)| *m == "latency_p99_ms")
            .unwrap();
        assert_eq!(
            p99[0],
            "histogram_quantile(0.99, sum by (le, model_name, region) (rate(vllm:e2e_request_latency_seconds_bucket{namespace=\"serving\"}[1m]))) * 1000"
        );
        let (_, errors) = b.figures.iter().find(|(m, _)| *m == "error_rate").unwrap();
        assert!(errors[0].starts_with("(sum by (model_name, region) (rate(vllm:request_success_total{namespace=\"serving\",finished_reason=~\"abort|error\"}[1m]))"), "{}", errors[0]);
        let unmatched = PresetUse {
            matching: Vec::new(),
            ..vllm()
        }
        .batched();
        let (_, errors) = unmatched
            .figures
            .iter()
            .find(|(m, _)| *m == "error_rate")
            .unwrap();
        assert!(
            errors[0].contains("vllm:request_success_total{finished_reason=~"),
            "{}",
            errors[0]
        );
        assert!(
            errors[0].contains("vllm:request_success_total{}[1m]"),
            "{}",
            errors[0]
        );
        assert!(b
            .gpu
            .unwrap()
            .contains("label_replace(DCGM_FI_DEV_GPU_UTIL"));
    }

    #[test]
    fn a_renamed_metric_is_tried_new_name_first() {
        let (usage, _) = vllm().give("chat").kv_cache.unwrap();
        assert!(usage[0].contains("vllm:kv_cache_usage_perc"));
        assert!(usage[1].contains("vllm:gpu_cache_usage_perc"));
    }
}
