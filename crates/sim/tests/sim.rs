//! The cluster protocol as the simulator speaks it, over real loopback sockets.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use firebreak_test_support as support;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use firebreak_protocol::events::{Control, EventType};
use firebreak_sim::{Faults, Remedy, Scenario};
use serde_json::json;
use support::cluster::{connect, get, http, post, sim, TOKEN};

const LONG: Duration = Duration::from_secs(60);

fn schemas() -> BTreeMap<String, jsonschema::Validator> {
    let dir = firebreak_test_support::workspace_root().join("docs/protocol/schemas");
    support::generated::read_dir(&dir, ".json")
        .into_iter()
        .map(|(name, text)| {
            let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
            let v = jsonschema::options()
                .should_validate_formats(true)
                .build(&schema)
                .unwrap();
            (name.trim_end_matches(".json").to_owned(), v)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_event_validates_against_its_published_schema() {
    // Fast enough to see every scenario's story, with synthetic load and actions too.
    let s = sim("bad-model-rollout", 200.0, |o| o.rate = 2_000).await;
    let reader = connect(&s.events_url(), Some(TOKEN), Some(0))
        .await
        .unwrap();
    reader
        .wait_until(LONG, "an alert to fire", |seen| {
            seen.events
                .iter()
                .any(|e| e.ty == EventType::AlertFiring.name())
        })
        .await;
    let (status, _) = post(
        &s,
        "/v1/deployments/llm-assistant-serving/rollback",
        "k1",
        json!({"to_revision": 41, "expected_revision": 42, "actor": "ana", "reason": "bad model"}),
    )
    .await;
    assert_eq!(status, 202);
    reader
        .wait_until(LONG, "the rollback to finish", |seen| {
            seen.events
                .iter()
                .any(|e| e.ty == EventType::ActionSucceeded.name())
        })
        .await;
    reader.abort();

    let schemas = schemas();
    let seen = reader.seen.lock().unwrap();
    assert!(
        seen.refused.is_empty(),
        "the simulator sent frames its own decoder refuses: {:?}",
        seen.refused
    );
    let mut types = HashSet::new();
    let mut ids = HashSet::new();
    for raw in &seen.raw {
        let value: serde_json::Value = serde_json::from_str(raw).unwrap();
        let ty = value["type"].as_str().unwrap();
        let validator = schemas
            .get(ty)
            .unwrap_or_else(|| panic!("no published schema for {ty}"));
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| e.to_string())
            .collect();
        assert!(
            errors.is_empty(),
            "{ty} breaks its schema: {errors:?}\n{raw}"
        );
        // CloudEvents: source + id identify an event.
        assert!(
            ids.insert((value["source"].clone(), value["id"].clone())),
            "duplicate id {raw}"
        );
        types.insert(ty.to_owned());
    }
    for ty in [
        "rollout.started",
        "rollout.wave_progressed",
        "model.version_changed",
        "service.metrics",
        "alert.firing",
        "region.status",
        "action.accepted",
        "action.running",
        "action.succeeded",
        "synthetic.load",
    ] {
        assert!(
            types.contains(&format!("dev.firebreak.{ty}")),
            "no {ty} event was seen"
        );
    }
    s.shutdown();
}

#[tokio::test(flavor = "multi_thread")]
async fn resuming_after_dropped_connections_yields_every_sequence_once_in_order() {
    let s = sim("steady", 1.0, |o| {
        o.rate = 5_000;
        o.faults = Faults::parse("drop_every=700").unwrap();
    })
    .await;
    let target = 6_000u64;
    let mut got: Vec<u64> = Vec::new();
    let mut after = 0u64;
    let mut reconnects = 0;
    while after < target {
        let reader = connect(&s.events_url(), Some(TOKEN), Some(after))
            .await
            .unwrap();
        reader
            .wait_until(LONG, "the connection to drop", |seen| {
                seen.closed || seen.events.len() >= 2_000
            })
            .await;
        reader.abort();
        let events = reader.events();
        got.extend(events.iter().map(|e| e.sequence));
        after = got.last().copied().unwrap_or(after);
        reconnects += 1;
    }
    assert!(
        reconnects >= 5,
        "drop_every=700 should have cut the stream repeatedly"
    );
    let expected: Vec<u64> = (1..=after).collect();
    // Resuming from the last sequence seen must neither lose nor repeat anything.
    assert_eq!(got, expected, "every sequence exactly once, in order");
    s.shutdown();
}

#[tokio::test(flavor = "multi_thread")]
async fn asking_for_a_sequence_no_longer_retained_gives_a_gap_notice() {
    let s = sim("steady", 1.0, |o| {
        o.rate = 3_000;
        o.retain = 500;
    })
    .await;
    let probe = connect(&s.events_url(), Some(TOKEN), None).await.unwrap();
    probe
        .wait_until(LONG, "the journal to pass 2,000", |seen| {
            seen.events.iter().any(|e| e.sequence > 2_000)
        })
        .await;
    probe.abort();

    let reader = connect(&s.events_url(), Some(TOKEN), Some(10))
        .await
        .unwrap();
    reader
        .wait_until(LONG, "events after the gap", |seen| !seen.events.is_empty())
        .await;
    reader.abort();
    let seen = reader.seen.lock().unwrap();
    assert!(
        matches!(seen.controls.first(), Some(Control::Hello { .. })),
        "hello comes first: {:?}",
        seen.controls
    );
    let gap = seen.controls.iter().find_map(|c| match c {
        Control::Gap {
            after,
            first_available,
        } => Some((*after, *first_available)),
        _ => None,
    });
    let (after, first) = gap.expect("a gap notice must name what is lost");
    assert_eq!(after, 10);
    assert!(
        first > 11,
        "the first retained sequence is past what was asked for"
    );
    // After the notice, the stream goes on from the first sequence it still has.
    assert_eq!(seen.events[0].sequence, first);
    s.shutdown();
}

#[tokio::test(flavor = "multi_thread")]
async fn heartbeats_carry_the_head() {
    let s = sim("steady", 1.0, |_| {}).await;
    let reader = connect(&s.events_url(), Some(TOKEN), None).await.unwrap();
    reader
        .wait_until(Duration::from_secs(15), "a heartbeat", |seen| {
            seen.controls
                .iter()
                .any(|c| matches!(c, Control::Heartbeat { .. }))
        })
        .await;
    reader.abort();
    s.shutdown();
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_or_wrong_token_is_401_and_changes_nothing() {
    let s = sim("steady", 1.0, |_| {}).await;
    let body =
        json!({"to_revision": 17, "expected_revision": 18, "actor": "mallory", "reason": "x"});
    for auth in [None, Some("wrong")] {
        let mut req = http()
            .post(format!(
                "{}/v1/deployments/recommendations-serving/rollback",
                s.actions_url()
            ))
            .header("idempotency-key", "a")
            .json(&body);
        if let Some(t) = auth {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status().as_u16(), 401, "token {auth:?}");
        let ws = connect(&s.events_url(), auth, Some(0)).await;
        let refused =
            matches!(&ws, Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == 401);
        assert!(
            refused,
            "the event stream must refuse token {auth:?} with 401"
        );
    }
    let d = get(&s, "/v1/deployments/recommendations-serving").await;
    assert_eq!(
        d["current_revision"], 18,
        "an unauthorized rollback must change nothing"
    );
    s.shutdown();
}

#[tokio::test(flavor = "multi_thread")]
async fn idempotency_keys_make_a_request_happen_at_most_once() {
    let s = sim("steady", 1.0, |o| {
        o.faults = Faults::parse("action_delay_ms=1500").unwrap()
    })
    .await;
    let body =
        json!({"to_revision": 17, "expected_revision": 18, "actor": "ana", "reason": "test"});
    let path = "/v1/deployments/recommendations-serving/rollback";

    // Two at once with the same key: the second finds the first still in flight.
    let (first, second) = tokio::join!(post(&s, path, "key-1", body.clone()), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        post(&s, path, "key-1", body.clone()).await
    });
    assert_eq!(first.0, 202, "{first:?}");
    assert_eq!(second.0, 409, "{second:?}");
    assert_eq!(second.1["error"], "idempotency_key_in_flight");

    // A repeat after it finished returns the first response and does nothing again.
    let again = post(&s, path, "key-1", body.clone()).await;
    assert_eq!(again, first, "a repeat returns the first response");

    // The same key with another body is refused.
    let other = post(
        &s,
        path,
        "key-1",
        json!({"to_revision": 17, "expected_revision": 18, "actor": "bo", "reason": "other"}),
    )
    .await;
    assert_eq!(other.0, 422, "{other:?}");

    let (_, sent) = s.sent();
    let accepted = sent
        .iter()
        .filter(|e| e.contains("dev.firebreak.action.accepted"))
        .count();
    assert_eq!(accepted, 1, "one intent, one action");

    // A mutating request without a key is refused outright.
    let r = http()
        .post(format!("{}{path}", s.actions_url()))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    s.shutdown();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_precondition_is_409_with_the_current_state() {
    let s = sim("steady", 50.0, |_| {}).await;
    let path = "/v1/services/search-ranking/failover";
    let (status, action) = post(
        &s,
        path,
        "f1",
        json!({"to_region": "us-east", "expected_primary_region": "eu-west", "actor": "ana", "reason": "drill"}),
    )
    .await;
    assert_eq!(status, 202, "{action}");
    let id = action["id"].as_str().unwrap().to_owned();
    // Wait until the failover has happened.
    for _ in 0..400 {
        if get(&s, &format!("/v1/actions/{id}")).await["state"] == "succeeded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // Someone who still believes eu-west is primary must not move it again.
    let (status, body) = post(
        &s,
        path,
        "f2",
        json!({"to_region": "us-east", "expected_primary_region": "eu-west", "actor": "bo", "reason": "stale click"}),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "precondition_failed");
    assert_eq!(body["current"]["primary_region"], "us-east");
    assert_eq!(body["changed_by"], "ana", "the refusal says who changed it");

    let (status, body) = post(
        &s,
        "/v1/deployments/search-ranking-serving/rollback",
        "r1",
        json!({"to_revision": 30, "expected_revision": 29, "actor": "bo", "reason": "x"}),
    )
    .await;
    assert_eq!(status, 409);
    assert_eq!(body["current"]["revision"], 31);
    s.shutdown();
}

/// The rollout levers over real sockets: a pause of the bad rollout after its first wave
/// (at most once per key, refused on a stale revision), the waves stop on the stream, and
/// an abort brings the stable revision back; each step is an action event of its kind.
#[tokio::test(flavor = "multi_thread")]
async fn the_rollout_levers_pause_and_abort_a_bad_rollout_over_the_wire() {
    let s = sim("bad-model-rollout", 20.0, |_| {}).await;
    let reader = connect(&s.events_url(), Some(TOKEN), Some(0))
        .await
        .unwrap();
    let waves = |seen: &crate::support::cluster::Seen| {
        seen.events
            .iter()
            .filter(|e| e.ty == "dev.firebreak.rollout.wave_progressed")
            .count()
    };
    reader
        .wait_until(LONG, "wave 1", |seen| waves(seen) >= 1)
        .await;
    let path = "/v1/deployments/llm-assistant-serving/pause";
    let body =
        json!({"expected_revision": 42, "actor": "ana", "reason": "errors climb with each wave"});
    let (stale, refused) = post(
        &s,
        path,
        "p0",
        json!({"expected_revision": 41, "actor": "ana", "reason": "x"}),
    )
    .await;
    assert_eq!(
        (stale, refused["error"].as_str()),
        (409, Some("precondition_failed"))
    );
    let first = post(&s, path, "p1", body.clone()).await;
    assert_eq!(first.0, 202, "{first:?}");
    assert_eq!(first.1["kind"], "pause_rollout");
    assert_eq!(
        post(&s, path, "p1", body.clone()).await,
        first,
        "the same key, the same answer"
    );
    let id = first.1["id"].as_str().unwrap().to_owned();
    for _ in 0..400 {
        if get(&s, &format!("/v1/actions/{id}")).await["state"] == "succeeded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let d = get(&s, "/v1/deployments/llm-assistant-serving").await;
    assert_eq!(d["rollout"]["paused"], true, "{d}");
    let at_pause = waves(&reader.seen.lock().unwrap());
    let from = s.sim_time();
    while s.sim_time() < from + 60 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        waves(&reader.seen.lock().unwrap()),
        at_pause,
        "no wave moves while paused"
    );
    assert!(at_pause < 4, "paused before the last wave");

    let (status, abort) = post(
        &s,
        "/v1/deployments/llm-assistant-serving/abort",
        "a1",
        json!({"expected_revision": 42, "actor": "ana", "reason": "bad model"}),
    )
    .await;
    assert_eq!(status, 202, "{abort}");
    assert_eq!(abort["to"], "41");
    reader
        .wait_until(LONG, "the abort", |seen| {
            seen.events.iter().any(|e| {
                e.ty == "dev.firebreak.action.succeeded" && e.data["kind"] == "abort_rollout"
            })
        })
        .await;
    let d = get(&s, "/v1/deployments/llm-assistant-serving").await;
    assert_eq!(d["current_revision"], 41);
    assert!(d["rollout"].is_null());
    let events = reader.events();
    let kinds: Vec<_> = events
        .iter()
        .filter(|e| e.ty == "dev.firebreak.action.accepted")
        .map(|e| e.data["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kinds,
        ["pause_rollout", "abort_rollout"],
        "one action per intent"
    );
    assert!(events.iter().any(|e| e.ty == "dev.firebreak.rollout.failed"
        && e.data["reason"]
            .as_str()
            .unwrap()
            .contains("aborted by ana")));
    reader.abort();
    s.shutdown();
}

/// Each lever's endpoint: a stale revision is 409 with nothing done; the same key and
/// body replays the first answer without acting again; another body under the key is 422.
#[tokio::test(flavor = "multi_thread")]
async fn every_rollout_lever_acts_once_per_key_and_never_on_a_stale_revision() {
    let scenarios = tempfile::tempdir().unwrap();
    let path = support::cluster::slow_bad_rollout(scenarios.path(), 4);
    let s = sim(&path, 10.0, |_| {}).await;
    let d = "/v1/deployments/llm-assistant-serving";
    // Until the rollout is under way.
    for _ in 0..400 {
        if !get(&s, d).await["rollout"].is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let wait_for_state = async |want: &str| {
        for _ in 0..400 {
            let r = get(&s, d).await["rollout"].clone();
            let now = if r.is_null() {
                "none"
            } else if r["paused"] == true {
                "paused"
            } else {
                "running"
            };
            if now == want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the rollout never became {want}");
    };
    for (lever, then) in [
        ("pause", "paused"),
        ("resume", "running"),
        ("promote", "running"),
        ("abort", "none"),
    ] {
        let url = format!("{d}/{lever}");
        let (status, body) = post(
            &s,
            &url,
            &format!("stale-{lever}"),
            json!({"expected_revision": 41, "actor": "ana", "reason": "stale"}),
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (409, Some("precondition_failed")),
            "{lever}: {body}"
        );
        let good = json!({"expected_revision": 42, "actor": "ana", "reason": lever});
        let first = post(&s, &url, &format!("k-{lever}"), good.clone()).await;
        assert_eq!(first.0, 202, "{lever}: {first:?}");
        assert_eq!(first.1["kind"], format!("{lever}_rollout"));
        assert_eq!(
            post(&s, &url, &format!("k-{lever}"), good).await,
            first,
            "{lever}: replayed"
        );
        let other = post(
            &s,
            &url,
            &format!("k-{lever}"),
            json!({"expected_revision": 42, "actor": "bo", "reason": "other"}),
        )
        .await;
        assert_eq!(other.0, 422, "{lever}");
        wait_for_state(then).await;
    }
    let (_, sent) = s.sent();
    let accepted: Vec<String> = sent
        .iter()
        .filter(|e| e.contains("dev.firebreak.action.accepted"))
        .map(|e| {
            let v: serde_json::Value = serde_json::from_str(e).unwrap();
            v["data"]["kind"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        accepted,
        [
            "pause_rollout",
            "resume_rollout",
            "promote_rollout",
            "abort_rollout"
        ],
        "one action per intent, none on a stale revision"
    );
    s.shutdown();
}

/// Folds alert events into which alerts of `service` are firing now.
fn firing(events: &[firebreak_protocol::events::CloudEvent], service: &str) -> HashSet<String> {
    let mut on = HashSet::new();
    for e in events {
        if e.data["service"] != service {
            continue;
        }
        let alert = e.data["alert"].as_str().unwrap_or_default().to_owned();
        if e.ty == EventType::AlertFiring.name() {
            on.insert(alert);
        } else if e.ty == EventType::AlertResolved.name() {
            on.remove(&alert);
        }
    }
    on
}

fn latest_primary_metrics(
    events: &[firebreak_protocol::events::CloudEvent],
    service: &str,
) -> serde_json::Value {
    events
        .iter()
        .rev()
        .find(|e| {
            e.ty == EventType::ServiceMetrics.name()
                && e.data["service"] == service
                && e.data["primary"] == true
        })
        .map(|e| e.data.clone())
        .unwrap_or_default()
}

/// Runs a scenario until its trouble shows, optionally applies the documented remedy,
/// and returns what the stream said 240 simulated seconds later.
async fn outcome(name: &str, remedy: bool) -> (HashSet<String>, serde_json::Value) {
    let scenario = Scenario::load(name).unwrap();
    let service = match &scenario.remedy {
        Remedy::Rollback { service, .. } | Remedy::Failover { service, .. } => service.clone(),
        Remedy::None => panic!("{name} has no remedy"),
    };
    let s = sim(name, 100.0, |_| {}).await;
    let reader = connect(&s.events_url(), Some(TOKEN), Some(0))
        .await
        .unwrap();
    reader
        .wait_until(LONG, "the scenario's first alert", |seen| {
            !firing(&seen.events, &service).is_empty()
        })
        .await;
    if remedy {
        let (status, body) = match &scenario.remedy {
            Remedy::Rollback { to_revision, .. } => {
                let d = get(&s, &format!("/v1/deployments/{service}-serving")).await;
                let body = json!({"to_revision": to_revision, "expected_revision": d["current_revision"], "actor": "test", "reason": "documented remedy"});
                post(
                    &s,
                    &format!("/v1/deployments/{service}-serving/rollback"),
                    "remedy",
                    body,
                )
                .await
            }
            Remedy::Failover { to_region, .. } => {
                let services = get(&s, "/v1/services").await;
                let primary = services["services"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|x| x["name"] == service.as_str())
                    .unwrap()["primary_region"]
                    .clone();
                let body = json!({"to_region": to_region, "expected_primary_region": primary, "actor": "test", "reason": "documented remedy"});
                post(
                    &s,
                    &format!("/v1/services/{service}/failover"),
                    "remedy",
                    body,
                )
                .await
            }
            Remedy::None => unreachable!(),
        };
        assert_eq!(status, 202, "{name}: the remedy was refused: {body}");
    }
    let from = s.sim_time();
    while s.sim_time() < from + 240 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    reader.abort();
    let events = reader.events();
    s.shutdown();
    (
        firing(&events, &service),
        latest_primary_metrics(&events, &service),
    )
}

async fn remedy_heals_and_nothing_does_not(name: &str) {
    let (healed_alerts, healed) = outcome(name, true).await;
    assert!(
        healed_alerts.is_empty(),
        "{name}: alerts still firing after the remedy: {healed_alerts:?}"
    );
    assert!(
        healed["error_rate"].as_f64().unwrap() < 0.05,
        "{name}: error rate after the remedy: {healed}"
    );
    let (left_alerts, left) = outcome(name, false).await;
    assert!(
        !left_alerts.is_empty(),
        "{name}: doing nothing must not heal it (metrics {left})"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_model_rollout_is_healed_by_rollback_only() {
    remedy_heals_and_nothing_does_not("bad-model-rollout").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pipeline_bottleneck_is_relieved_by_failover_only() {
    remedy_heals_and_nothing_does_not("pipeline-bottleneck").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn node_loss_cascade_is_stopped_by_failover_only() {
    remedy_heals_and_nothing_does_not("node-loss-cascade").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kv_cache_pressure_is_relieved_by_failover_only() {
    remedy_heals_and_nothing_does_not("kv-cache-pressure").await;
}

/// The KV-cache scenario says its pressure once when it starts and once when it ends
/// (after the failover moved the traffic), and the GPU's XID once, with the node it is on.
#[tokio::test(flavor = "multi_thread")]
async fn kv_cache_pressure_and_an_xid_are_said_once_each() {
    let s = sim("kv-cache-pressure", 100.0, |_| {}).await;
    let reader = connect(&s.events_url(), Some(TOKEN), Some(0))
        .await
        .unwrap();
    reader
        .wait_until(
            Duration::from_secs(30),
            "the pressure and the XID",
            |seen| seen.events.iter().any(|e| e.ty == "dev.firebreak.gpu.xid"),
        )
        .await;
    let of = |ty: &str| -> Vec<serde_json::Value> {
        reader
            .events()
            .into_iter()
            .filter(|e| e.ty == ty)
            .map(|e| e.data)
            .collect()
    };
    let kv = of("dev.firebreak.service.kv_cache_pressure");
    assert_eq!(kv.len(), 1, "{kv:?}");
    assert_eq!(kv[0]["pressure"], true);
    assert_eq!(kv[0]["region"], "us-east");
    assert!(kv[0]["kv_cache_usage"].as_f64().unwrap() > 0.9);
    let xid = of("dev.firebreak.gpu.xid");
    assert_eq!(xid.len(), 1, "{xid:?}");
    assert_eq!(xid[0]["xid"], 13);
    assert!(
        of("dev.firebreak.gpu.missing").is_empty(),
        "XID 13 takes no GPU off the bus"
    );
    let primary = get(&s, "/v1/services").await["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "llm-assistant")
        .unwrap()["primary_region"]
        .clone();
    let body = json!({"to_region": "eu-west", "expected_primary_region": primary, "actor": "test", "reason": "room"});
    let (status, _) = post(&s, "/v1/services/llm-assistant/failover", "kv", body).await;
    assert_eq!(status, 202);
    reader
        .wait_until(Duration::from_secs(30), "the pressure's end", |seen| {
            seen.events
                .iter()
                .filter(|e| e.ty == "dev.firebreak.service.kv_cache_pressure")
                .count()
                >= 2
        })
        .await;
    let kv = of("dev.firebreak.service.kv_cache_pressure");
    assert_eq!(kv[1]["pressure"], false, "{kv:?}");
    reader.abort();
    s.shutdown();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_seed_tells_the_same_story() {
    // Two runs of one scenario and seed, with a fixed start: the same events in the same order.
    let start = chrono::DateTime::parse_from_rfc3339("2026-11-27T03:00:00Z")
        .unwrap()
        .to_utc();
    let mut stories = Vec::new();
    for _ in 0..2 {
        let s = sim("node-loss-cascade", 200.0, |o| {
            o.seed = 42;
            o.start = Some(start);
        })
        .await;
        let reader = connect(&s.events_url(), Some(TOKEN), Some(0))
            .await
            .unwrap();
        reader
            .wait_until(LONG, "300 events", |seen| seen.events.len() >= 300)
            .await;
        reader.abort();
        let story: Vec<(String, String, serde_json::Value)> = reader
            .events()
            .into_iter()
            .take(300)
            .map(|e| (e.id, e.ty, e.data))
            .collect();
        stories.push(story);
        s.shutdown();
    }
    assert_eq!(stories[0], stories[1]);
}

#[test]
fn protocol_md_shows_a_valid_example_of_every_type() {
    let text =
        std::fs::read_to_string(firebreak_test_support::workspace_root().join("PROTOCOL.md"))
            .unwrap();
    let schemas = schemas();
    let mut shown = HashSet::new();
    for section in text.split("#### `").skip(1) {
        let ty = section.split('`').next().unwrap().to_owned();
        let json = section
            .split("```json")
            .nth(1)
            .unwrap()
            .split("```")
            .next()
            .unwrap();
        let value: serde_json::Value =
            serde_json::from_str(json).unwrap_or_else(|e| panic!("{ty}: {e}"));
        assert_eq!(
            value["type"],
            ty.as_str(),
            "the example under {ty} is of another type"
        );
        let errors: Vec<String> = schemas[&ty]
            .iter_errors(&value)
            .map(|e| e.to_string())
            .collect();
        // The documentation must show what the code accepts, not what it used to.
        assert!(
            errors.is_empty(),
            "PROTOCOL.md's example of {ty} breaks its schema: {errors:?}"
        );
        shown.insert(ty);
    }
    for t in EventType::ALL {
        assert!(
            shown.contains(t.name()),
            "PROTOCOL.md has no example of {}",
            t.name()
        );
    }
}

/// Prints one real event of every type, for PROTOCOL.md (`cargo test -p firebreak-sim --test sim -- --ignored --nocapture`).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "generates documentation examples; run by hand"]
async fn print_protocol_examples() {
    let start = chrono::DateTime::parse_from_rfc3339("2026-11-27T03:00:00Z")
        .unwrap()
        .to_utc();
    let mut examples: BTreeMap<String, String> = BTreeMap::new();
    for (name, fail) in [
        ("bad-model-rollout", false),
        ("pipeline-bottleneck", true),
        ("node-loss-cascade", false),
        ("steady", false),
    ] {
        let s = sim(name, 200.0, |o| {
            o.start = Some(start);
            o.rate = 5;
            if fail {
                o.faults = Faults::parse("action_fail=1").unwrap();
            }
        })
        .await;
        let reader = connect(&s.events_url(), Some(TOKEN), Some(0))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        let body = if name == "bad-model-rollout" {
            Some((
                "/v1/deployments/llm-assistant-serving/rollback",
                json!({"to_revision": 41, "expected_revision": 42, "actor": "ana", "reason": "errors on revision 42"}),
            ))
        } else if name == "node-loss-cascade" {
            Some((
                "/v1/services/recommendations/failover",
                json!({"to_region": "eu-west", "expected_primary_region": "us-east", "actor": "ana", "reason": "pool collapsing"}),
            ))
        } else if name == "pipeline-bottleneck" {
            Some((
                "/v1/services/search-ranking/failover",
                json!({"to_region": "us-east", "expected_primary_region": "eu-west", "actor": "ana", "reason": "queue cascading"}),
            ))
        } else {
            None
        };
        if let Some((path, body)) = body {
            post(&s, path, "ex", body).await;
        }
        while s.sim_time() < 900 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        reader.abort();
        for raw in reader.seen.lock().unwrap().raw.iter() {
            let v: serde_json::Value = serde_json::from_str(raw).unwrap();
            let ty = v["type"].as_str().unwrap().to_owned();
            // Figures by revision: one with both, the new revision's and the stable one's.
            let partial = v["data"]["revisions"]
                .as_array()
                .is_some_and(|r| r.len() < 2);
            if partial {
                continue;
            }
            examples
                .entry(ty)
                .or_insert_with(|| serde_json::to_string_pretty(&v).unwrap());
        }
        s.shutdown();
    }
    for (ty, ex) in &examples {
        println!("#### `{ty}`\n\n```json\n{ex}\n```\n");
    }
    println!("{} of {} types", examples.len(), EventType::ALL.len());
}

/// A rollout told without a server, bad by `how` ("errors = 0.05", "latency = 3"): each
/// role's failed share and median p99 over the windows where both served.
fn by_revision(how: &str) -> ((f64, f64), (f64, f64)) {
    let text = Scenario::builtin_text("bad-model-rollout")
        .unwrap()
        .replace("bad = true", how)
        .replace("wave_interval_s = 12", "wave_interval_s = 40");
    let scenario = Scenario::parse(&text, "test").unwrap();
    let start = "2026-12-01T14:00:00Z".parse().unwrap();
    let told = firebreak_sim::story(&scenario, 7, start, 100);
    let (mut sums, mut p99s) = (BTreeMap::new(), BTreeMap::<String, Vec<f64>>::new());
    for e in told.iter().filter(|e| e.ty == EventType::RevisionMetrics) {
        let revisions = e.data["revisions"].as_array().unwrap();
        if revisions.len() < 2 {
            continue;
        }
        for r in revisions {
            let role = r["role"].as_str().unwrap().to_owned();
            let s = sums.entry(role.clone()).or_insert((0u64, 0u64));
            s.0 += r["errors"].as_u64().unwrap();
            s.1 += r["requests"].as_u64().unwrap();
            p99s.entry(role)
                .or_default()
                .push(r["latency_p99_ms"].as_f64().unwrap());
        }
    }
    let of = |role: &str| {
        let (errors, requests) = sums[role];
        let mut p = p99s[role].clone();
        p.sort_by(f64::total_cmp);
        (errors as f64 / requests as f64, p[p.len() / 2])
    };
    (of("canary"), of("stable"))
}

#[test]
fn a_bad_revision_fails_and_slows_only_on_its_own_nodes_by_its_severity() {
    // Five points of extra errors, no slower.
    let ((canary_errors, canary_p99), (stable_errors, stable_p99)) = by_revision("errors = 0.05");
    assert!((0.045..0.06).contains(&canary_errors), "{canary_errors}");
    assert!(stable_errors < 0.005, "{stable_errors}");
    assert!(
        (canary_p99 / stable_p99 - 1.0).abs() < 0.05,
        "{canary_p99} against {stable_p99}"
    );
    // Three times slower at the tail, no more errors.
    let ((canary_errors, canary_p99), (stable_errors, stable_p99)) = by_revision("latency = 3");
    assert!(
        canary_errors < 0.005 && stable_errors < 0.005,
        "{canary_errors} {stable_errors}"
    );
    assert!(
        (canary_p99 / stable_p99 - 3.0).abs() < 0.15,
        "{canary_p99} against {stable_p99}"
    );
    // A good revision: alike.
    let ((canary_errors, canary_p99), (_, stable_p99)) = by_revision("bad = false");
    assert!(canary_errors < 0.005, "{canary_errors}");
    assert!(
        (canary_p99 / stable_p99 - 1.0).abs() < 0.05,
        "{canary_p99} against {stable_p99}"
    );
}

#[test]
fn a_severity_out_of_range_is_refused_with_where_it_is() {
    for (how, says) in [
        ("errors = 1.5", "errors outside 0 to 1"),
        ("errors = -0.1", "errors outside 0 to 1"),
        ("latency = 0.5", "latency factor below 1"),
    ] {
        let text = Scenario::builtin_text("bad-model-rollout")
            .unwrap()
            .replace("bad = true", how);
        let err = Scenario::parse(&text, "mine.toml").unwrap_err().to_string();
        assert!(
            err.contains("mine.toml") && err.contains("at 10 s") && err.contains(says),
            "{how}: {err}"
        );
    }
}
