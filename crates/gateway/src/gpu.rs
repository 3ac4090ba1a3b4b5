//! GPU and model-server signals from Prometheus, as changes rather than levels: a GPU's
//! XID said when the code it reports changes (DCGM's `DCGM_FI_DEV_XID_ERRORS` holds the
//! last code, it neither counts nor resets, so its level says nothing new), a node that
//! reports fewer GPUs than it had, and KV-cache pressure (the cache nearly full while
//! preemptions rise and the queue grows) when it starts and when it ends. Pure state over
//! what each poll reads; `prometheus.rs` reads and publishes.

use std::collections::BTreeMap;

use firebreak_protocol::events::{EventType, GpuMissing, GpuXid, KvCachePressure};

/// KV-cache use from which, with preemptions rising and the queue growing, a server is
/// under pressure; and below which the pressure is over.
pub const KV_PRESSURE_FROM: f64 = 0.9;
pub const KV_PRESSURE_UNTIL: f64 = 0.8;

/// An event to publish: its type, its subject and its data.
pub type Told = (EventType, String, serde_json::Value);

/// One GPU's XID series as read: its node, the GPU, the code it reports now.
pub struct XidSeries {
    pub node: String,
    pub gpu: String,
    pub xid: f64,
}

#[derive(Default)]
struct Kv {
    preemptions: Option<f64>,
    queue: Option<f64>,
    pressure: bool,
}

/// What the detectors remember between polls.
#[derive(Default)]
pub struct GpuWatch {
    /// (service, region, node, GPU) → the code it reported last.
    xids: BTreeMap<(String, String, String, String), u32>,
    /// (service, region, node) → (the most GPUs it reported, whether a loss was said).
    counts: BTreeMap<(String, String, String), (u32, bool)>,
    kv: BTreeMap<(String, String), Kv>,
}

impl GpuWatch {
    /// One poll of a (service, region)'s XID series: a `gpu.xid` for each GPU whose code
    /// changed to another non-zero one (the first reading of a GPU is only remembered:
    /// it is a level from before), a `gpu.missing` for each node that reports fewer GPUs
    /// than it had, and again once it reports them all.
    pub fn xids(
        &mut self,
        service: &str,
        region: &str,
        pool: &str,
        series: &[XidSeries],
    ) -> Vec<Told> {
        let mut out = Vec::new();
        let mut per_node: BTreeMap<&str, u32> = BTreeMap::new();
        for s in series {
            *per_node.entry(&s.node).or_default() += 1;
            let code = if s.xid.is_finite() && s.xid >= 0.0 {
                s.xid as u32
            } else {
                0
            };
            let key = (
                service.to_owned(),
                region.to_owned(),
                s.node.clone(),
                s.gpu.clone(),
            );
            let before = self.xids.insert(key, code);
            if before.is_some_and(|b| b != code) && code != 0 {
                out.push(told(
                    EventType::GpuXid,
                    &s.node,
                    &GpuXid {
                        node: s.node.clone(),
                        pool: pool.to_owned(),
                        region: region.to_owned(),
                        service: service.to_owned(),
                        gpu: s.gpu.clone(),
                        xid: code,
                    },
                ));
            }
        }
        for (node, seen) in per_node {
            let key = (service.to_owned(), region.to_owned(), node.to_owned());
            let (expected, said) = self.counts.entry(key).or_insert((seen, false));
            *expected = (*expected).max(seen);
            let now_short = seen < *expected;
            if now_short != *said {
                *said = now_short;
                out.push(told(
                    EventType::GpuMissing,
                    node,
                    &GpuMissing {
                        node: node.to_owned(),
                        pool: pool.to_owned(),
                        region: region.to_owned(),
                        service: service.to_owned(),
                        expected: *expected,
                        seen,
                    },
                ));
            }
        }
        out
    }

    /// One poll of a (service, region)'s KV cache: its use (0 to 1), the preemptions
    /// counter, the queue. Pressure starts when the cache is at least 90 % full while
    /// preemptions rose and the queue grew since the last poll, and ends when the cache
    /// is under 80 %. `seconds` is the time since the last poll.
    pub fn kv(
        &mut self,
        service: &str,
        region: &str,
        (usage, preemptions, queue): (f64, f64, f64),
        seconds: f64,
    ) -> Option<Told> {
        let state = self
            .kv
            .entry((service.to_owned(), region.to_owned()))
            .or_default();
        let rising = state.preemptions.is_some_and(|p| preemptions > p);
        let growing = state.queue.is_some_and(|q| queue > q);
        let rate = state
            .preemptions
            .map_or(0.0, |p| (preemptions - p).max(0.0) / seconds.max(1e-3));
        state.preemptions = Some(preemptions);
        state.queue = Some(queue);
        let now = if state.pressure {
            usage >= KV_PRESSURE_UNTIL
        } else {
            usage >= KV_PRESSURE_FROM && rising && growing
        };
        if now == state.pressure {
            return None;
        }
        state.pressure = now;
        let data = KvCachePressure {
            service: service.to_owned(),
            region: region.to_owned(),
            kv_cache_usage: usage.clamp(0.0, 1.0),
            preemptions_per_s: (rate * 10.0).round() / 10.0,
            queue_depth: queue.max(0.0).round(),
            pressure: now,
        };
        Some((
            EventType::KvCachePressure,
            format!("service/{service}"),
            serde_json::to_value(data).unwrap_or_default(),
        ))
    }
}

fn told<T: serde::Serialize>(ty: EventType, node: &str, data: &T) -> Told {
    (
        ty,
        format!("node/{node}"),
        serde_json::to_value(data).unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpus(node: &str, codes: &[f64]) -> Vec<XidSeries> {
        codes
            .iter()
            .enumerate()
            .map(|(i, c)| XidSeries {
                node: node.into(),
                gpu: i.to_string(),
                xid: *c,
            })
            .collect()
    }

    #[test]
    fn an_xid_is_said_when_it_changes_not_for_the_level_it_keeps() {
        let mut w = GpuWatch::default();
        // At start a GPU already reports 13 (an old error): remembered, not said.
        assert!(w
            .xids("chat", "us-east", "a100", &gpus("n1", &[0.0, 13.0]))
            .is_empty());
        assert!(w
            .xids("chat", "us-east", "a100", &gpus("n1", &[0.0, 13.0]))
            .is_empty());
        // GPU 0 reports 48: said once, with its node and GPU.
        let told = w.xids("chat", "us-east", "a100", &gpus("n1", &[48.0, 13.0]));
        assert_eq!(told.len(), 1);
        assert_eq!(told[0].0, EventType::GpuXid);
        assert_eq!(told[0].1, "node/n1");
        assert_eq!(told[0].2["xid"], 48);
        assert_eq!(told[0].2["gpu"], "0");
        assert!(w
            .xids("chat", "us-east", "a100", &gpus("n1", &[48.0, 13.0]))
            .is_empty());
        // Cleared, then the same code again: a new error.
        assert!(w
            .xids("chat", "us-east", "a100", &gpus("n1", &[0.0, 13.0]))
            .is_empty());
        assert_eq!(
            w.xids("chat", "us-east", "a100", &gpus("n1", &[48.0, 13.0]))
                .len(),
            1
        );
    }

    #[test]
    fn a_node_that_loses_a_gpu_is_said_once_and_again_when_it_has_them_all() {
        let mut w = GpuWatch::default();
        assert!(w
            .xids("chat", "us-east", "a100", &gpus("n1", &[0.0; 8]))
            .is_empty());
        let told = w.xids("chat", "us-east", "a100", &gpus("n1", &[0.0; 7]));
        assert_eq!(told.len(), 1);
        assert_eq!(
            (told[0].2["expected"].clone(), told[0].2["seen"].clone()),
            (8.into(), 7.into())
        );
        assert!(w
            .xids("chat", "us-east", "a100", &gpus("n1", &[0.0; 7]))
            .is_empty());
        let back = w.xids("chat", "us-east", "a100", &gpus("n1", &[0.0; 8]));
        assert_eq!(back[0].2["seen"], 8);
    }

    #[test]
    fn kv_pressure_needs_a_full_cache_rising_preemptions_and_a_growing_queue() {
        let mut w = GpuWatch::default();
        assert!(
            w.kv("chat", "us-east", (0.95, 10.0, 100.0), 1.0).is_none(),
            "no earlier reading"
        );
        // Full and preempting, but the queue shrinks: not yet.
        assert!(w.kv("chat", "us-east", (0.95, 20.0, 90.0), 1.0).is_none());
        // Full, preempting and growing: pressure, once.
        let told = w.kv("chat", "us-east", (0.96, 30.0, 120.0), 1.0).unwrap();
        assert_eq!(told.1, "service/chat");
        assert_eq!(told.2["pressure"], true);
        assert_eq!(told.2["preemptions_per_s"], 10.0);
        assert!(
            w.kv("chat", "us-east", (0.85, 31.0, 110.0), 1.0).is_none(),
            "held above 80 %"
        );
        let over = w.kv("chat", "us-east", (0.5, 31.0, 0.0), 1.0).unwrap();
        assert_eq!(over.2["pressure"], false);
        // A full cache alone (no preemptions) is a busy server, not pressure.
        assert!(w.kv("chat", "us-east", (0.99, 31.0, 300.0), 1.0).is_none());
    }
}
