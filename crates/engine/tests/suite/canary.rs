//! The canary verdict: its statistics against SciPy's reference values, its judgement on
//! windows made to order (a clear failure, a clear pass, too little traffic, a slower
//! tail, two hundred good rollouts that must never fail), and the verdict on the
//! simulator's bad model rollout as the console recorded it over a real socket.

use std::time::Duration;

use firebreak_engine::actions::ActionSettings;
use firebreak_engine::canary::{self, stats, Outcome, Window};
use firebreak_protocol::events::{RevisionFigures, RevisionRole};
use serde_json::Value;

use crate::support;

fn reference() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/canary/reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `a` and `b` agree to `rel` of their size (or both are tiny).
fn close(a: f64, b: f64, rel: f64, what: &str) {
    let scale = a.abs().max(b.abs());
    assert!(
        (a - b).abs() <= rel * scale || (a - b).abs() < 1e-300,
        "{what}: {a} against SciPy's {b}"
    );
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap()
}

#[test]
fn the_normal_distribution_matches_scipy() {
    let r = reference();
    for case in r["normal"]["sf"].as_array().unwrap() {
        let (z, want) = (num(&case[0]), num(&case[1]));
        close(stats::normal_sf(z), want, 1e-12, &format!("sf({z})"));
    }
    for case in r["normal"]["ppf"].as_array().unwrap() {
        let (p, want) = (num(&case[0]), num(&case[1]));
        let got = stats::normal_ppf(p);
        assert!(
            (got - want).abs() < 1e-10,
            "ppf({p}): {got} against SciPy's {want}"
        );
    }
}

#[test]
fn the_two_proportion_test_matches_scipys_chi_squared() {
    for case in reference()["two_proportions"].as_array().unwrap() {
        let n = |k: &str| case[k].as_u64().unwrap();
        let got =
            stats::two_proportions(n("x1"), n("n1"), n("x2"), n("n2"), num(&case["confidence"]))
                .unwrap();
        let what = format!("{}/{} against {}/{}", n("x1"), n("n1"), n("x2"), n("n2"));
        close(got.difference, num(&case["difference"]), 1e-12, &what);
        close(got.z, num(&case["z"]), 1e-10, &format!("{what}: z"));
        close(
            got.p_value,
            num(&case["p_value"]),
            1e-9,
            &format!("{what}: p"),
        );
        close(got.low, num(&case["low"]), 1e-9, &format!("{what}: low"));
        close(got.high, num(&case["high"]), 1e-9, &format!("{what}: high"));
    }
}

#[test]
fn the_rank_test_and_its_interval_match_scipy_and_an_exact_count() {
    for case in reference()["mann_whitney"].as_array().unwrap() {
        let sample =
            |k: &str| -> Vec<f64> { case[k].as_array().unwrap().iter().map(num).collect() };
        let (x, y) = (sample("x"), sample("y"));
        let got = stats::mann_whitney(&x, &y, num(&case["confidence"])).unwrap();
        let what = format!("{} against {} windows", x.len(), y.len());
        assert_eq!(got.u, num(&case["u"]), "{what}: U");
        assert_eq!(got.exact, case["exact"].as_bool().unwrap(), "{what}: exact");
        close(
            got.p_value,
            num(&case["p_value"]),
            1e-9,
            &format!("{what}: p"),
        );
        close(
            got.shift,
            num(&case["shift"]),
            1e-12,
            &format!("{what}: shift"),
        );
        match (&case["low"], &case["high"]) {
            (Value::Null, Value::Null) => {
                assert!(
                    got.low.is_infinite() && got.high.is_infinite(),
                    "{what}: {got:?}"
                );
            }
            (low, high) => {
                close(got.low, num(low), 1e-12, &format!("{what}: low"));
                close(got.high, num(high), 1e-12, &format!("{what}: high"));
            }
        }
    }
}

fn figures(
    revision: u32,
    role: RevisionRole,
    requests: u64,
    errors: u64,
    p99: f64,
) -> RevisionFigures {
    RevisionFigures {
        revision,
        role,
        nodes: 4,
        requests,
        errors,
        latency_p50_ms: p99 / 2.6,
        latency_p99_ms: p99,
    }
}

/// One revision's window: requests, failed requests, p99 (ms).
type Side = (u64, u64, f64);

/// Windows of revision 42 against 41: (canary, stable).
fn windows(each: &[(Side, Side)]) -> Vec<Window> {
    each.iter()
        .enumerate()
        .map(|(i, (c, s))| Window {
            time_ms: 1_000 * i as i64,
            region: "us-east".into(),
            canary: figures(42, RevisionRole::Canary, c.0, c.1, c.2),
            stable: figures(41, RevisionRole::Stable, s.0, s.1, s.2),
        })
        .collect()
}

#[test]
fn a_verdict_fails_passes_or_waits_and_its_sentence_says_why() {
    // The example of the issue: 31 % against 0.4 % over six windows.
    let bad = windows(&[((500, 155, 900.0), (500, 2, 520.0)); 6]);
    let v = canary::judge(42, 41, 1, 4, &bad);
    assert_eq!(v.outcome, Outcome::Fail, "{v:?}");
    assert_eq!(
        v.sentence,
        "Revision 42 fails 31 % of requests against 0.4 % on revision 41 over 6 windows, p < 0.001"
    );
    let e = v.errors.as_ref().unwrap();
    assert!(
        e.low > canary::ERROR_TOLERANCE && e.p_value < v.alpha,
        "{e:?}"
    );
    assert_eq!(v.alpha, 0.05 / 24.0, "four waves, six looks each");

    // Too little traffic: nothing is said but that.
    let thin = windows(&[((50, 20, 900.0), (150, 0, 520.0))]);
    let v = canary::judge(42, 41, 1, 4, &thin);
    assert_eq!(v.outcome, Outcome::Inconclusive);
    assert!(
        v.sentence
            .starts_with("Not enough traffic yet: revision 42 served 50 requests over 1 window"),
        "{}",
        v.sentence
    );
    assert!(v.errors.is_none() && v.latency.is_none());

    // The same errors, a tail three times slower: latency fails alone, once enough
    // windows can tell.
    let slow: Vec<_> = (0..8)
        .map(|i| {
            let stable = 500.0 + 7.0 * i as f64;
            ((2_000, 4, 3.0 * stable), (2_000, 4, stable))
        })
        .collect();
    let v = canary::judge(42, 41, 2, 4, &windows(&slow));
    assert_eq!(v.outcome, Outcome::Fail, "{v:?}");
    assert!(
        v.sentence
            .starts_with("Revision 42's p99 is 3.0× revision 41's"),
        "{}",
        v.sentence
    );
    let few = canary::judge(42, 41, 1, 4, &windows(&slow[..3]));
    assert_ne!(
        few.outcome,
        Outcome::Fail,
        "three windows cannot show it at p < 0.002: {few:?}"
    );

    // As good as the stable revision, with plenty of traffic and windows: a pass.
    let good: Vec<_> = (0..12)
        .map(|i| {
            let jitter = [0.0, 4.0, -3.0, 2.0, -1.0, 5.0][i % 6];
            (
                (20_000, 40 + i as u64 % 3, 520.0 + jitter),
                (20_000, 41, 520.0 - jitter),
            )
        })
        .collect();
    let v = canary::judge(42, 41, 3, 4, &windows(&good));
    assert_eq!(v.outcome, Outcome::Pass, "{v:?}");
    assert!(
        v.sentence
            .starts_with("Revision 42 is as good as revision 41 over 12 windows"),
        "{}",
        v.sentence
    );

    // Windows of another rollout, or where a revision served nothing, do not count.
    let mut other = windows(&[((500, 155, 900.0), (500, 2, 520.0)); 6]);
    for w in &mut other {
        w.canary.revision = 43;
    }
    assert_eq!(canary::judge(42, 41, 1, 4, &other).windows, 0);
}

/// A small deterministic generator for the good rollouts (xorshift).
struct Noise(u64);

impl Noise {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Failures among `n` requests failing with probability `p` each.
    fn failures(&mut self, n: u64, p: f64) -> u64 {
        (0..n).filter(|_| self.unit() < p).count() as u64
    }
}

#[test]
fn two_hundred_good_rollouts_looked_at_after_every_window_are_never_failed() {
    let mut noise = Noise(0x2026_1207);
    let mut fails = Vec::new();
    for rollout in 0..200 {
        // Four waves, six looks each, both revisions alike: 0.4 % errors, p99 around 520 ms.
        let mut seen = Vec::new();
        'looks: for wave in 1..=4u32 {
            for _ in 0..canary::LOOKS_PER_WAVE {
                let canary_requests = 300 * u64::from(wave);
                let stable_requests = 1_200 - canary_requests.min(900);
                let p99 = |noise: &mut Noise| 520.0 * (1.0 + 0.08 * (noise.unit() - 0.5));
                seen.push((
                    (
                        canary_requests,
                        noise.failures(canary_requests, 0.004),
                        p99(&mut noise),
                    ),
                    (
                        stable_requests,
                        noise.failures(stable_requests, 0.004),
                        p99(&mut noise),
                    ),
                ));
                let v = canary::judge(42, 41, wave, 4, &windows(&seen));
                if v.outcome == Outcome::Fail {
                    fails.push((rollout, v.sentence));
                    break 'looks;
                }
            }
        }
    }
    assert!(fails.is_empty(), "good rollouts failed: {fails:?}");
}

/// The simulator's bad model rollout, recorded by a console over a real socket: the
/// verdict fails revision 42 at wave 1, before the second wave, on the counts it
/// recorded; a good revision rolled out the same way is never failed.
#[tokio::test(flavor = "multi_thread")]
async fn the_bad_model_rollout_fails_at_wave_1_and_a_good_one_never_fails() {
    for (bad, speed) in [(true, 20.0), (false, 20.0)] {
        let dir = tempfile::tempdir().unwrap();
        let scenario = firebreak_sim::Scenario::builtin_text("bad-model-rollout")
            .unwrap()
            .replace("bad = true", &format!("bad = {bad}"));
        let path = dir.path().join("rollout.toml");
        std::fs::write(&path, scenario).unwrap();
        let sim = support::cluster::sim(&path.display().to_string(), speed, |_| {}).await;
        let live = support::rig::live(
            &dir.path().join("firebreak.db"),
            &sim,
            ActionSettings::default(),
        )
        .await;
        let mut verdicts = None;
        support::rig::wait_for(Duration::from_secs(60), "the rollout to end", async || {
            verdicts = canary::rollout_verdicts(&live.store, live.cluster, "llm-assistant")
                .await
                .unwrap();
            verdicts.as_ref().is_some_and(|v| v.ended.is_some())
        })
        .await;
        let v = verdicts.unwrap();
        assert_eq!(
            (v.from_revision, v.to_revision, v.waves),
            (41, 42, 4),
            "{v:?}"
        );
        assert!(!v.no_data, "the simulator sends figures by revision");
        let waves: Vec<u32> = v.by_wave.iter().map(|w| w.wave).collect();
        assert_eq!(
            waves,
            [1, 2, 3],
            "a verdict for each wave both revisions served: {v:?}"
        );
        if bad {
            let first = v.first_fail.as_ref().expect("the bad revision failed");
            assert_eq!(first.wave, 1, "caught at wave 1: {first:?}");
            assert!(
                first.sentence.starts_with("Revision 42 fails ")
                    && first.sentence.contains("on revision 41"),
                "{}",
                first.sentence
            );
            assert!(
                v.by_wave.iter().all(|w| w.outcome == Outcome::Fail),
                "{v:?}"
            );
        } else {
            assert!(v.first_fail.is_none(), "a good revision failed: {v:?}");
        }
        live.engine.stop().await;
        sim.shutdown();
    }
}
