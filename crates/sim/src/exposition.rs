//! The simulated fleet as Prometheus metrics (`GET /metrics`, text exposition format
//! 0.0.4), with the names real serving stacks use, so the shipped rules in
//! `deploy/prometheus/` and the gateway's example queries run on the demo unchanged:
//!
//! - `http_requests_total{service, region, revision, code}`: requests served, `code` 200 or 503;
//! - `http_request_duration_seconds{service, region, revision}`: a latency histogram whose
//!   buckets follow each simulated second's p50 and p99 (a log-normal through both);
//! - `vllm:num_requests_waiting{service, region}`: the queue;
//! - `DCGM_FI_DEV_GPU_UTIL{service, region}`: GPU utilisation in percent, as DCGM exports it;
//! - `firebreak_sim_region_primary{service, region}`: 1 where the region serves the traffic.
//!
//! Counters only grow: every simulated second adds its requests to them.
//!
//! With a serving stack's naming (`--metrics-stack vllm|vllm-0.9|triton|tgi|sglang|kserve`),
//! the requests, latency, queue and KV-cache figures come under that stack's own names and
//! labels instead (vLLM's `vllm:` metrics with `model_name`, Triton's `nv_inference_*`
//! with `model`, TGI's `tgi_*`, SGLang's `sglang:`, Knative's queue-proxy `revision_app_*`
//! with `service_name`), as the gateway's presets read them; `vllm-0.9` keeps the KV-cache
//! gauge's name from before vLLM 0.10. DCGM's series always carry the pod using the GPU.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Whose names the exposition uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Naming {
    /// `http_requests_total` and `http_request_duration_seconds`, as an ingress exports.
    #[default]
    Generic,
    Vllm,
    /// vLLM before 0.10 (`vllm:gpu_cache_usage_perc`).
    VllmOld,
    Triton,
    Tgi,
    Sglang,
    Kserve,
}

impl Naming {
    pub const NAMES: &'static str = "generic, vllm, vllm-0.9, triton, tgi, sglang, kserve";

    pub fn parse(name: &str) -> Option<Naming> {
        Some(match name {
            "generic" => Naming::Generic,
            "vllm" => Naming::Vllm,
            "vllm-0.9" => Naming::VllmOld,
            "triton" => Naming::Triton,
            "tgi" => Naming::Tgi,
            "sglang" => Naming::Sglang,
            "kserve" => Naming::Kserve,
            _ => return None,
        })
    }

    /// The label naming the service.
    fn service_label(self) -> &'static str {
        match self {
            Naming::Generic | Naming::Tgi => "service",
            Naming::Vllm | Naming::VllmOld | Naming::Sglang => "model_name",
            Naming::Triton => "model",
            Naming::Kserve => "service_name",
        }
    }
}

/// Histogram bucket bounds, seconds.
pub const BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 7.5, 10.0, 15.0,
    30.0, 60.0,
];

/// One simulated second of one (service, region), as the world served it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Second {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub error_rate: f64,
    pub rps: f64,
    pub queue: f64,
    pub gpu: f64,
    pub revision: u32,
    pub primary: bool,
}

#[derive(Debug, Clone, Default)]
struct Series {
    ok: f64,
    failed: f64,
    /// Cumulative counts per bucket bound (and +Inf last), and the sum of durations.
    buckets: Vec<f64>,
    count: f64,
    sum: f64,
    last: Second,
}

/// What a (service, region)'s model servers and GPUs report beside their traffic: the KV
/// cache's use, requests preempted so far, and each serving node's GPUs with the last XID
/// they reported.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Serving {
    pub kv_cache_usage: f64,
    pub preemptions: f64,
    /// (node, GPUs it reports, last XID or 0)
    pub gpus: Vec<(String, u32, u32)>,
}

/// Every series since the simulator started, keyed by (service, region, revision).
#[derive(Debug, Default)]
pub struct Exposition {
    pub naming: Naming,
    series: BTreeMap<(String, String, u32), Series>,
    gauges: BTreeMap<(String, String), Second>,
    serving: BTreeMap<(String, String), Serving>,
}

impl Exposition {
    /// What a (service, region)'s servers and GPUs report now.
    pub fn serving(&mut self, service: &str, region: &str, now: Serving) {
        self.serving
            .insert((service.to_owned(), region.to_owned()), now);
    }

    /// Adds one simulated second of a (service, region).
    pub fn record(&mut self, service: &str, region: &str, s: Second) {
        self.gauges
            .insert((service.to_owned(), region.to_owned()), s);
        // A region standing by still exports its counters, flat: its rate is 0, not absent.
        let series = self
            .series
            .entry((service.to_owned(), region.to_owned(), s.revision))
            .or_default();
        if series.buckets.is_empty() {
            series.buckets = vec![0.0; BUCKETS.len() + 1];
        }
        if s.rps <= 0.0 {
            return;
        }
        let failed = s.rps * s.error_rate.clamp(0.0, 1.0);
        series.ok += s.rps - failed;
        series.failed += failed;
        let (mu, sigma) = lognormal(s.p50_ms / 1000.0, s.p99_ms / 1000.0);
        for (i, bound) in BUCKETS.iter().enumerate() {
            series.buckets[i] += s.rps * normal_cdf((bound.ln() - mu) / sigma);
        }
        series.buckets[BUCKETS.len()] += s.rps;
        series.count += s.rps;
        // The mean of the log-normal: exp(mu + sigma^2 / 2).
        series.sum += s.rps * (mu + sigma * sigma / 2.0).exp();
        series.last = s;
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        if self.naming != Naming::Generic {
            return self.render_stack();
        }
        let mut out = String::with_capacity(16 * 1024);
        let _ = writeln!(
            out,
            "# HELP http_requests_total Requests served by the model-serving pods.\n# TYPE http_requests_total counter"
        );
        for ((svc, region, rev), s) in &self.series {
            for (code, n) in [("200", s.ok), ("503", s.failed)] {
                let _ = writeln!(
                    out,
                    "http_requests_total{{service=\"{svc}\",region=\"{region}\",revision=\"{rev}\",code=\"{code}\"}} {}",
                    num(n.floor())
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP http_request_duration_seconds End-to-end request latency.\n# TYPE http_request_duration_seconds histogram"
        );
        for ((svc, region, rev), s) in &self.series {
            let labels = format!("service=\"{svc}\",region=\"{region}\",revision=\"{rev}\"");
            for (i, bound) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {}",
                    num(s.buckets[i].floor())
                );
            }
            let _ = writeln!(
                out,
                "http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                num(s.count.floor())
            );
            let _ = writeln!(
                out,
                "http_request_duration_seconds_sum{{{labels}}} {}",
                num(s.sum)
            );
            let _ = writeln!(
                out,
                "http_request_duration_seconds_count{{{labels}}} {}",
                num(s.count.floor())
            );
        }
        for (name, help, value) in [
            (
                "vllm:num_requests_waiting",
                "Requests waiting in the serving queue.",
                (|s: &Second| s.queue) as fn(&Second) -> f64,
            ),
            (
                "firebreak_sim_region_primary",
                "1 where the region is the service's primary (serving its traffic).",
                |s: &Second| if s.primary { 1.0 } else { 0.0 },
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for ((svc, region), s) in &self.gauges {
                let _ = writeln!(
                    out,
                    "{name}{{service=\"{svc}\",region=\"{region}\"}} {}",
                    num(value(s))
                );
            }
        }
        self.render_gpu_use(&mut out);
        self.render_serving(&mut out);
        out
    }

    /// DCGM's GPU use of each (service, region), on the pod using the GPUs as DCGM's
    /// Kubernetes mode labels it.
    fn render_gpu_use(&self, out: &mut String) {
        let name = "DCGM_FI_DEV_GPU_UTIL";
        let _ = writeln!(
            out,
            "# HELP {name} GPU utilisation (percent) of the service's nodes in the region.\n# TYPE {name} gauge"
        );
        for ((svc, region), s) in &self.gauges {
            let _ = writeln!(
                out,
                "{name}{{service=\"{svc}\",region=\"{region}\",pod=\"{}\"}} {}",
                pod(svc, region),
                num((s.gpu * 100.0).round())
            );
        }
    }

    /// The fleet under a serving stack's own names (see the module's documentation).
    fn render_stack(&self) -> String {
        let n = self.naming;
        let label = n.service_label();
        let mut out = String::with_capacity(16 * 1024);
        let head = |out: &mut String, name: &str, kind: &str| {
            let _ = writeln!(
                out,
                "# HELP {name} As the serving stack exports it.\n# TYPE {name} {kind}"
            );
        };
        let series_labels = |svc: &str, region: &str, rev: u32| {
            format!("{label}=\"{svc}\",region=\"{region}\",revision=\"{rev}\"")
        };
        // Requests: (family, [(extra labels, count of)]).
        type Parts = Vec<(&'static str, fn(&Series) -> f64)>;
        let counters: Vec<(&str, Parts)> = match n {
            Naming::Vllm | Naming::VllmOld => vec![(
                "vllm:request_success_total",
                vec![
                    (",finished_reason=\"stop\"", |s: &Series| s.ok),
                    (",finished_reason=\"abort\"", |s: &Series| s.failed),
                ],
            )],
            Naming::Triton => vec![
                (
                    "nv_inference_request_success",
                    vec![("", |s: &Series| s.ok)],
                ),
                (
                    "nv_inference_request_failure",
                    vec![(",reason=\"BACKEND\"", |s: &Series| s.failed)],
                ),
            ],
            Naming::Tgi => vec![
                (
                    "tgi_request_count",
                    vec![("", |s: &Series| s.ok + s.failed)],
                ),
                (
                    "tgi_request_failure",
                    vec![(",err=\"generation\"", |s: &Series| s.failed)],
                ),
            ],
            Naming::Sglang => vec![
                (
                    "sglang:num_requests_total",
                    vec![("", |s: &Series| s.ok + s.failed)],
                ),
                (
                    "sglang:num_aborted_requests_total",
                    vec![("", |s: &Series| s.failed)],
                ),
            ],
            Naming::Kserve => vec![(
                "revision_app_request_count",
                vec![
                    (
                        ",response_code=\"200\",response_code_class=\"2xx\"",
                        |s: &Series| s.ok,
                    ),
                    (
                        ",response_code=\"503\",response_code_class=\"5xx\"",
                        |s: &Series| s.failed,
                    ),
                ],
            )],
            Naming::Generic => Vec::new(),
        };
        for (family, parts) in counters {
            head(&mut out, family, "counter");
            for ((svc, region, rev), s) in &self.series {
                for (extra, value) in &parts {
                    let _ = writeln!(
                        out,
                        "{family}{{{}{extra}}} {}",
                        series_labels(svc, region, *rev),
                        num(value(s).floor())
                    );
                }
            }
        }
        // Latency: a histogram (seconds, or milliseconds for Knative), or Triton's summary.
        let histogram = match n {
            Naming::Vllm | Naming::VllmOld => Some(("vllm:e2e_request_latency_seconds", 1.0)),
            Naming::Tgi => Some(("tgi_request_duration", 1.0)),
            Naming::Sglang => Some(("sglang:e2e_request_latency_seconds", 1.0)),
            Naming::Kserve => Some(("revision_app_request_latencies", 1000.0)),
            Naming::Triton | Naming::Generic => None,
        };
        if let Some((family, scale)) = histogram {
            head(&mut out, family, "histogram");
            for ((svc, region, rev), s) in &self.series {
                let labels = series_labels(svc, region, *rev);
                for (i, bound) in BUCKETS.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "{family}_bucket{{{labels},le=\"{}\"}} {}",
                        bound * scale,
                        num(s.buckets[i].floor())
                    );
                }
                let _ = writeln!(
                    out,
                    "{family}_bucket{{{labels},le=\"+Inf\"}} {}",
                    num(s.count.floor())
                );
                let _ = writeln!(out, "{family}_sum{{{labels}}} {}", num(s.sum * scale));
                let _ = writeln!(out, "{family}_count{{{labels}}} {}", num(s.count.floor()));
            }
        } else if n == Naming::Triton {
            let family = "nv_inference_request_summary_us";
            head(&mut out, family, "summary");
            for ((svc, region, rev), s) in &self.series {
                let labels = series_labels(svc, region, *rev);
                for (q, ms) in [("0.5", s.last.p50_ms), ("0.99", s.last.p99_ms)] {
                    let _ = writeln!(
                        out,
                        "{family}{{{labels},quantile=\"{q}\"}} {}",
                        num((ms * 1000.0).round())
                    );
                }
                let _ = writeln!(
                    out,
                    "{family}_sum{{{labels}}} {}",
                    num((s.sum * 1e6).round())
                );
                let _ = writeln!(out, "{family}_count{{{labels}}} {}", num(s.count.floor()));
            }
        }
        let queue = match n {
            Naming::Vllm | Naming::VllmOld => "vllm:num_requests_waiting",
            Naming::Triton => "nv_inference_pending_request_count",
            Naming::Tgi => "tgi_queue_size",
            Naming::Sglang => "sglang:num_queue_reqs",
            Naming::Kserve | Naming::Generic => "revision_queue_depth",
        };
        head(&mut out, queue, "gauge");
        for ((svc, region), s) in &self.gauges {
            let _ = writeln!(
                out,
                "{queue}{{{label}=\"{svc}\",region=\"{region}\"}} {}",
                num(s.queue)
            );
        }
        let kv = match n {
            Naming::Vllm => Some(("vllm:kv_cache_usage_perc", "vllm:num_preemptions_total")),
            Naming::VllmOld => Some(("vllm:gpu_cache_usage_perc", "vllm:num_preemptions_total")),
            Naming::Sglang => Some(("sglang:token_usage", "sglang:num_retracted_requests_total")),
            _ => None,
        };
        if let Some((usage, preempted)) = kv {
            head(&mut out, usage, "gauge");
            for ((svc, region), s) in &self.serving {
                let _ = writeln!(
                    out,
                    "{usage}{{{label}=\"{svc}\",region=\"{region}\"}} {}",
                    num(s.kv_cache_usage)
                );
            }
            head(&mut out, preempted, "counter");
            for ((svc, region), s) in &self.serving {
                let _ = writeln!(
                    out,
                    "{preempted}{{{label}=\"{svc}\",region=\"{region}\"}} {}",
                    num(s.preemptions.floor())
                );
            }
        }
        self.render_gpu_use(&mut out);
        self.render_xids(&mut out);
        out
    }

    /// vLLM's KV-cache figures per (service, region), and DCGM's XID field per GPU of
    /// each serving node (a GPU that fell off the bus is not exported at all, as DCGM
    /// does).
    fn render_serving(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP vllm:kv_cache_usage_perc KV-cache usage (1 means 100 percent).\n# TYPE vllm:kv_cache_usage_perc gauge"
        );
        for ((svc, region), s) in &self.serving {
            let _ = writeln!(
                out,
                "vllm:kv_cache_usage_perc{{service=\"{svc}\",region=\"{region}\"}} {}",
                num(s.kv_cache_usage)
            );
        }
        let _ = writeln!(
            out,
            "# HELP vllm:num_preemptions_total Requests preempted.\n# TYPE vllm:num_preemptions_total counter"
        );
        for ((svc, region), s) in &self.serving {
            let _ = writeln!(
                out,
                "vllm:num_preemptions_total{{service=\"{svc}\",region=\"{region}\"}} {}",
                num(s.preemptions.floor())
            );
        }
        self.render_xids(out);
    }

    /// DCGM's XID field per GPU of each serving node (a GPU that fell off the bus is not
    /// exported at all, as DCGM does).
    fn render_xids(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP DCGM_FI_DEV_XID_ERRORS Value of the last XID error encountered.\n# TYPE DCGM_FI_DEV_XID_ERRORS gauge"
        );
        for ((svc, region), s) in &self.serving {
            for (node, gpus, xid) in &s.gpus {
                for gpu in 0..*gpus {
                    // The GPU that reported the XID is GPU 3; the others report none.
                    let value = if gpu == 3 { *xid } else { 0 };
                    let _ = writeln!(
                        out,
                        "DCGM_FI_DEV_XID_ERRORS{{service=\"{svc}\",region=\"{region}\",pod=\"{}\",Hostname=\"{node}\",gpu=\"{gpu}\"}} {value}",
                        pod(svc, region)
                    );
                }
            }
        }
    }
}

/// The pod of a (service, region) using the GPUs, named as a Deployment's pods are:
/// `<deployment>-<template hash>-<pod id>` (e.g. `chat-5f8c9d7b4-q2x7k`), the same on
/// every run.
pub fn pod(service: &str, region: &str) -> String {
    // FNV-1a: stable across runs and builds.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in service.bytes().chain([0]).chain(region.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut word = |n: usize| -> String {
        (0..n)
            .map(|_| {
                let c = ALPHABET[(h % ALPHABET.len() as u64) as usize] as char;
                h /= ALPHABET.len() as u64;
                c
            })
            .collect()
    };
    let hash = word(9);
    let id = word(5);
    format!("{service}-{hash}-{id}")
}

/// A number as the exposition format writes it.
fn num(x: f64) -> String {
    if x.is_finite() {
        format!("{x}")
    } else {
        "NaN".into()
    }
}

/// (mu, sigma) of the log-normal whose median is `p50` and 99th percentile `p99` (seconds).
fn lognormal(p50: f64, p99: f64) -> (f64, f64) {
    const Z99: f64 = 2.326_347_874;
    let p50 = p50.max(1e-4);
    let p99 = p99.max(p50 * 1.0001);
    let mu = p50.ln();
    (mu, ((p99.ln() - mu) / Z99).max(1e-3))
}

/// The standard normal CDF (Abramowitz and Stegun 7.1.26; error below 1.5e-7).
fn normal_cdf(z: f64) -> f64 {
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-x * x).exp();
    if z >= 0.0 {
        0.5 * (1.0 + erf)
    } else {
        0.5 * (1.0 - erf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A busy second of a failing revision.
    const SECOND: Second = Second {
        p50_ms: 420.0,
        p99_ms: 2400.0,
        error_rate: 0.05,
        rps: 800.0,
        queue: 12.0,
        gpu: 0.81,
        revision: 41,
        primary: true,
    };

    /// What `histogram_quantile` does with cumulative buckets: linear within the bucket.
    fn quantile(q: f64, buckets: &[f64], count: f64) -> f64 {
        let rank = q * count;
        let mut lower = 0.0;
        let mut below = 0.0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            if buckets[i] >= rank {
                return lower + (bound - lower) * (rank - below) / (buckets[i] - below).max(1e-9);
            }
            lower = *bound;
            below = buckets[i];
        }
        lower
    }

    #[test]
    fn the_histogram_gives_back_the_simulated_quantiles() {
        let mut e = Exposition::default();
        let second = SECOND;
        for _ in 0..60 {
            e.record("llm-assistant", "us-east", second);
        }
        let s = &e.series[&("llm-assistant".into(), "us-east".into(), 41)];
        // PromQL's histogram_quantile on these buckets must land near the simulated
        // figures, or the shipped latency rules would alert on nothing (or on everything).
        let p50 = quantile(0.5, &s.buckets, s.count) * 1000.0;
        let p99 = quantile(0.99, &s.buckets, s.count) * 1000.0;
        assert!((p50 - 420.0).abs() / 420.0 < 0.15, "p50 {p50}");
        assert!((p99 - 2400.0).abs() / 2400.0 < 0.15, "p99 {p99}");
        assert!((s.failed / (s.ok + s.failed) - 0.05).abs() < 1e-9);
        let text = e.render();
        assert!(text.contains(
            "http_requests_total{service=\"llm-assistant\",region=\"us-east\",revision=\"41\",code=\"503\"} 2400"
        ));
        assert!(text.contains(&format!(
            "DCGM_FI_DEV_GPU_UTIL{{service=\"llm-assistant\",region=\"us-east\",pod=\"{}\"}} 81",
            pod("llm-assistant", "us-east")
        )));
        assert!(text.contains("le=\"+Inf\"} 48000"));
    }

    /// Each stack's naming carries its own families and service label, and nothing of
    /// another's: a preset that reads the wrong name would find nothing here.
    #[test]
    fn each_stack_naming_uses_its_own_names_and_labels() {
        let second = SECOND;
        for (naming, has, lacks) in [
            (Naming::Vllm, "vllm:request_success_total{model_name=\"chat\"", "vllm:gpu_cache_usage_perc"),
            (Naming::VllmOld, "vllm:gpu_cache_usage_perc{model_name=\"chat\"", "vllm:kv_cache_usage_perc"),
            (Naming::Triton, "nv_inference_request_summary_us{model=\"chat\",region=\"us-east\",revision=\"41\",quantile=\"0.99\"} 2400000", "http_requests_total"),
            (Naming::Tgi, "tgi_request_failure{service=\"chat\"", "vllm:"),
            (Naming::Sglang, "sglang:num_aborted_requests_total{model_name=\"chat\"", "http_requests_total"),
            (Naming::Kserve, "revision_app_request_latencies_bucket{service_name=\"chat\",region=\"us-east\",revision=\"41\",le=\"1000\"}", "vllm:"),
        ] {
            let mut e = Exposition {
                naming,
                ..Exposition::default()
            };
            e.record("chat", "us-east", second);
            e.serving("chat", "us-east", Serving::default());
            let text = e.render();
            assert!(text.contains(has), "{naming:?} lacks {has}:\n{text}");
            assert!(!text.contains(lacks), "{naming:?} has {lacks}");
            assert!(text.contains(&format!(
                "DCGM_FI_DEV_GPU_UTIL{{service=\"chat\",region=\"us-east\",pod=\"{}\"}} 81",
                pod("chat", "us-east")
            )));
        }
    }

    #[test]
    fn the_normal_cdf_is_right_where_it_matters() {
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_cdf(2.326_347_874) - 0.99).abs() < 1e-6);
        assert!((normal_cdf(-1.959_963_985) - 0.025).abs() < 1e-6);
    }
}
