//! Runbooks: the file format (valid, each kind of invalid with its message and line, any
//! input without a panic), the built-in library, and matching runbooks to incidents.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use crate::support;

use std::time::{Duration, Instant};

use firebreak_engine::runbooks::format::{Condition, Step};
use firebreak_engine::runbooks::{matching, parse, IncidentFacts, Library, BUILT_IN};
use firebreak_store::incident::Severity;
use firebreak_test_support::runbook::VALID;
use proptest::prelude::*;

#[test]
fn a_valid_runbook_parses_with_its_steps_and_body() {
    let rb = parse("checkout.md", VALID).unwrap();
    assert_eq!(
        (rb.id.as_str(), rb.version.as_str()),
        ("checkout-latency", "2")
    );
    assert_eq!(rb.steps.len(), 4);
    assert!(matches!(&rb.steps[1], Step::Query { window_min: 10, .. }));
    assert!(matches!(&rb.steps[2], Step::Branch { on: Some(q), .. } if q == "p99"));
    assert_eq!(rb.applies_to.severity, vec![Severity::Critical]);
    assert!(rb.body.starts_with("# Checkout is slow"), "{}", rb.body);
}

#[test]
fn every_built_in_runbook_is_valid() {
    let lib = Library::load(&[]);
    assert!(lib.errors.is_empty(), "{:?}", lib.errors);
    assert_eq!(lib.runbooks.len(), BUILT_IN.len());
    for rb in &lib.runbooks {
        assert!(
            rb.steps.iter().any(|s| matches!(s, Step::Action { .. })),
            "{} acts",
            rb.id
        );
    }
}

/// (what is wrong, the edit that makes it so, the line the error must name, words it must say)
fn broken() -> Vec<(&'static str, String, usize, &'static str)> {
    vec![
        (
            "no front matter",
            VALID.replacen("---\n", "", 1),
            1,
            "starts with YAML front matter",
        ),
        (
            "unclosed front matter",
            VALID.replace("---\n# Checkout", "# Checkout"),
            1,
            "not closed",
        ),
        (
            "bad YAML",
            VALID.replace("owner: payments-oncall", "owner: [payments"),
            4,
            "",
        ),
        (
            "unknown field",
            VALID.replace("version: 2", "version: 2\ncolour: red"),
            6,
            "unknown field `colour`",
        ),
        (
            "missing title",
            VALID.replace("title: Checkout is slow\n", ""),
            2,
            "missing field `title`",
        ),
        (
            "bad id",
            VALID.replace("id: checkout-latency", "id: Checkout Latency"),
            2,
            "lowercase",
        ),
        (
            "unknown step kind",
            VALID.replace("kind: check", "kind: chek"),
            14,
            "unknown variant `chek`",
        ),
        (
            "unknown query",
            VALID.replace("query: latency_p99", "query: p95"),
            20,
            "unknown variant `p95`",
        ),
        (
            "duplicate step",
            VALID.replace("id: move", "id: look"),
            30,
            "two steps are called \"look\"",
        ),
        (
            "goto nowhere",
            VALID.replace("goto: move", "goto: moev"),
            28,
            "no step is called \"moev\"",
        ),
        (
            "branch on a non-query",
            VALID.replace("on: p99", "on: look"),
            25,
            "not a query step",
        ),
        (
            "bad condition",
            VALID.replace("\"> 800\"", "\"slow\""),
            27,
            "is not a condition",
        ),
        (
            "unknown event type",
            VALID.replace("dev.firebreak.alert.firing", "dev.firebreak.alert.fired"),
            7,
            "unknown event type",
        ),
        (
            "a query that loops to itself",
            VALID.replace(
                "    window_min: 10\n",
                "    window_min: 10\n    next: p99\n",
            ),
            17,
            "steps p99 → p99 run by themselves in a loop",
        ),
        (
            "a branch that loops back through its query",
            VALID.replace("otherwise: end", "otherwise: p99"),
            17,
            "steps p99 → pick → p99 run by themselves in a loop",
        ),
        (
            "no steps",
            VALID.split("steps:").next().unwrap().to_owned() + "steps: []\n---\n",
            12,
            "at least one step",
        ),
    ]
}

#[test]
fn each_kind_of_invalid_runbook_names_the_file_the_line_and_the_problem() {
    for (what, text, line, words) in broken() {
        let err = parse("team/checkout.md", &text).expect_err(what);
        assert_eq!(err.source, "team/checkout.md", "{what}");
        assert_eq!(err.line, line, "{what}: {err}");
        assert!(err.message.contains(words), "{what}: {err}");
        assert!(
            err.to_string()
                .starts_with(&format!("team/checkout.md:{line}: ")),
            "{what}: {err}"
        );
    }
}

#[test]
fn conditions_compare_numbers() {
    let c = Condition::parse(">= 3").unwrap();
    assert!(c.holds(3.0) && !c.holds(2.9));
    assert!(Condition::parse("< 0.05").unwrap().holds(0.01));
    assert!(Condition::parse("> NaN").is_none());
    assert!(Condition::parse("3").is_none());
}

proptest! {
    #[test]
    fn no_input_makes_the_parser_panic(text in ".{0,400}") {
        let _ = parse("fuzz.md", &text);
    }

    #[test]
    fn no_edit_of_a_valid_runbook_makes_the_parser_panic(at in 0usize..900, cut in 0usize..40, insert in ".{0,20}") {
        let mut text = VALID.to_owned();
        let at = at.min(text.len());
        let at = (0..=at).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
        let end = (at + cut).min(text.len());
        let end = (end..=text.len()).find(|i| text.is_char_boundary(*i)).unwrap_or(text.len());
        text.replace_range(at..end, &insert);
        let _ = parse("fuzz.md", &text);
    }
}

#[test]
fn a_folder_loads_in_name_order_and_reports_bad_files_and_overrides() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.md"), VALID).unwrap();
    std::fs::write(
        dir.path().join("b.md"),
        VALID.replace("kind: check", "kind: chek"),
    )
    .unwrap();
    let override_builtin = BUILT_IN[0].1.replace("version: 3", "version: 4");
    std::fs::write(dir.path().join("c.md"), override_builtin).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a runbook").unwrap();
    let lib = Library::load(&[dir.path().to_owned(), dir.path().join("missing")]);
    let ids: Vec<&str> = lib.runbooks.iter().map(|r| r.id.as_str()).collect();
    assert!(ids.contains(&"checkout-latency"), "{ids:?}");
    assert_eq!(lib.get("bad-model-version").unwrap().version, "4");
    assert_eq!(lib.errors.len(), 2, "{:?}", lib.errors);
    assert!(lib
        .errors
        .iter()
        .any(|e| e.source.ends_with("b.md") && e.line == 14));
    assert!(lib
        .errors
        .iter()
        .any(|e| e.message.contains("replaces the one from builtin:")));
}

#[test]
fn matching_requires_every_stated_condition_and_ranks_by_score() {
    let lib = Library::load(&[]);
    let incident_with = |service: &str, severity, types: &[&str]| {
        let mut f = IncidentFacts {
            service: Some(service.into()),
            severity: Some(severity),
            ..Default::default()
        };
        f.event_types = types.iter().map(|t| format!("dev.firebreak.{t}")).collect();
        f
    };
    let facts = incident_with(
        "llm-assistant",
        Severity::Critical,
        &["rollout.started", "alert.firing", "node.degraded"],
    );
    let found = matching(&lib, &facts);
    let ids: Vec<&str> = found.iter().map(|m| m.runbook_id.as_str()).collect();
    assert_eq!(
        ids,
        vec!["bad-model-version", "node-loss-cascade"],
        "{found:#?}"
    );
    assert!(
        found[0].reasons[0].contains("rollout.started, alert.firing"),
        "{:?}",
        found[0].reasons
    );
    assert!(found[0]
        .reasons
        .iter()
        .any(|r| r == "its severity is critical"));

    // A severity the runbook does not list rules it out, whatever else matches.
    let info = incident_with("llm-assistant", Severity::Info, &["rollout.started"]);
    assert!(matching(&lib, &info).is_empty());

    let rb = parse("checkout.md", VALID).unwrap();
    let mut checkout = incident_with("checkout", Severity::Critical, &["alert.firing"]);
    assert!(
        firebreak_engine::runbooks::matches(&rb, &checkout).is_none(),
        "the region label is missing"
    );
    checkout
        .labels
        .entry("region".into())
        .or_default()
        .insert("us-east".into());
    let m = firebreak_engine::runbooks::matches(&rb, &checkout).unwrap();
    assert_eq!(m.score, 3 + 2 + 1 + 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_bad_model_rollout_incident_matches_its_runbook_first() {
    let s = support::cluster::sim("bad-model-rollout", 10.0, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let support::rig::Live { store, engine, .. } =
        support::rig::live(&dir.path().join("firebreak.db"), &s, Default::default()).await;
    let incident = support::rig::incident_where(&store, "a critical incident", |i| {
        i.severity == Severity::Critical
    })
    .await;
    engine.stop().await;
    let facts = IncidentFacts::of(
        &incident,
        &store.incident_event_data(incident.id).await.unwrap(),
    );
    let found = matching(&Library::load(&[]), &facts);
    assert_eq!(found[0].runbook_id, "bad-model-version", "{found:#?}");
    s.shutdown();
}

#[test]
fn the_readme_example_is_a_valid_runbook() {
    let readme = include_str!("../../../../README.md");
    let section = readme.split("## Runbooks").nth(1).unwrap();
    let example = section
        .split("```markdown\n")
        .nth(1)
        .and_then(|s| s.split("\n```").next())
        .unwrap();
    let rb = parse("README.md", example).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rb.id, "checkout-latency");
    assert_eq!(rb.steps.len(), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_built_in_runbook_rehearses_to_a_mitigated_incident() {
    let scratch = tempfile::tempdir().unwrap();
    let lib = Library::load(&[]);
    let pairs = [
        ("bad-model-version", "bad-model-rollout"),
        ("pipeline-bottleneck", "pipeline-bottleneck"),
        ("node-loss-cascade", "node-loss-cascade"),
        ("kv-cache-pressure", "kv-cache-pressure"),
    ];
    let runs = pairs.iter().map(|(rb, scenario)| {
        let rb = lib.get(rb).unwrap().clone();
        let dir = scratch.path().join(rb.id.clone());
        async move {
            let r = firebreak_engine::runbooks::rehearse::rehearse(&rb, scenario, 10.0, &dir)
                .await
                .unwrap();
            (rb.id, r)
        }
    });
    for (id, r) in futures_util::future::join_all(runs).await {
        assert!(r.mitigated, "{id}: {:#?}", r.steps);
        assert!(
            r.steps.iter().any(|s| s.contains("verified recovered")),
            "{id}: {:#?}",
            r.steps
        );
    }
}

/// A store, the simulator's bad rollout recorded live, and a desk and runner on them.
struct Guided {
    sim: firebreak_sim::RunningSim,
    store: firebreak_store::Store,
    engine: firebreak_engine::ingest::Engine,
    desk: std::sync::Arc<firebreak_engine::actions::ActionDesk>,
    incident: i64,
}

async fn guided(db: &std::path::Path, sim: Option<firebreak_sim::RunningSim>) -> Guided {
    let sim = match sim {
        Some(s) => s,
        None => support::cluster::sim("bad-model-rollout", 10.0, |_| {}).await,
    };
    let settings = firebreak_engine::actions::ActionSettings {
        grace_s: 0,
        verify_window_s: 5,
        ..Default::default()
    };
    let support::rig::Live {
        store,
        engine,
        desk,
        ..
    } = support::rig::live(db, &sim, settings).await;
    let incident = support::rig::incident_where(&store, "a critical incident", |i| {
        i.severity == Severity::Critical
    })
    .await
    .id;
    Guided {
        sim,
        store,
        engine,
        desk,
        incident,
    }
}

/// A rollout lever step with no rollout under way has nothing to do: proposing it records
/// the step as skipped with why, and the run goes on (node-loss-cascade has no rollout).
#[tokio::test(flavor = "multi_thread")]
async fn a_rollout_lever_step_without_a_rollout_is_skipped_saying_why() {
    use firebreak_engine::runbooks::run::{Answer, Runner};
    let dir = tempfile::tempdir().unwrap();
    let sim = support::cluster::sim("node-loss-cascade", 10.0, |_| {}).await;
    let g = guided(&dir.path().join("firebreak.db"), Some(sim)).await;
    let rb = Library::load(&[]).get("bad-model-version").unwrap().clone();
    let runner = Runner::new(g.store.clone(), g.desk.clone());
    let run = runner.start(g.incident, &rb, "ana").await.unwrap();
    assert_eq!(run.current_step.as_deref(), Some("pause"));
    let run = runner
        .answer(run.id, "pause", Answer::Propose, "ana")
        .await
        .unwrap();
    assert_eq!(run.current_step.as_deref(), Some("correlate"));
    assert!(run.waiting_action.is_none());
    assert_eq!(run.results[0].outcome, "skipped");
    assert!(
        run.results[0].text.contains("no rollout is under way"),
        "{:?}",
        run.results[0]
    );
    assert!(
        g.store
            .incident_actions(g.incident)
            .await
            .unwrap()
            .is_empty(),
        "nothing proposed"
    );
    g.engine.stop().await;
    g.sim.shutdown();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guided_run_survives_a_restart_and_ends_with_the_incident_mitigated() {
    use firebreak_engine::runbooks::run::{Answer, Runner};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("firebreak.db");
    let g = guided(&db, None).await;
    let rb = Library::load(&[]).get("bad-model-version").unwrap().clone();
    let runner = Runner::new(g.store.clone(), g.desk.clone());
    let run = runner.start(g.incident, &rb, "ana").await.unwrap();
    assert_eq!(run.current_step.as_deref(), Some("pause"));
    // (Pausing is another test's subject: skip it here, as a person may.)
    let run = runner
        .answer(
            run.id,
            "pause",
            Answer::Skip {
                reason: "the rollout is nearly done".into(),
            },
            "ana",
        )
        .await
        .unwrap();
    assert_eq!(run.current_step.as_deref(), Some("correlate"));

    // The first check asks for a finding.
    let err = runner
        .answer(
            run.id,
            "correlate",
            Answer::Done {
                finding: " ".into(),
            },
            "ana",
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("finding"), "{err}");
    let run = runner
        .answer(
            run.id,
            "correlate",
            Answer::Done {
                finding: "errors rose with wave 1 of revision 42".into(),
            },
            "ana",
        )
        .await
        .unwrap();
    // The query and the branch ran by themselves; the run waits at the rollback.
    assert_eq!(
        run.current_step.as_deref(),
        Some("rollback"),
        "{:#?}",
        run.results
    );
    assert!(run.results[2].value.unwrap() > 0.02, "{:?}", run.results[2]);
    assert!(!run.results[2].series.as_ref().unwrap().is_empty());
    // A stale answer to a step already done changes nothing.
    assert!(runner
        .answer(
            run.id,
            "correlate",
            Answer::Done {
                finding: "again".into()
            },
            "ana"
        )
        .await
        .is_err());

    // The app stops (everything dropped, the store closed) and starts again.
    let Guided {
        sim,
        store,
        engine,
        desk,
        incident,
    } = g;
    drop(runner);
    drop(desk);
    engine.stop().await;
    store.close().await;
    let g = guided(&db, Some(sim)).await;
    assert_eq!(g.incident, incident);
    let runner = Runner::new(g.store.clone(), g.desk.clone());
    let run = runner.start(g.incident, &rb, "ana").await.unwrap();
    assert_eq!(
        run.current_step.as_deref(),
        Some("rollback"),
        "resumed where it was"
    );
    assert_eq!(run.results.len(), 4);

    // The action step proposes through the desk; the engineer confirms it like any action.
    let run = runner
        .answer(run.id, "rollback", Answer::Propose, "ana")
        .await
        .unwrap();
    let action = run.waiting_action.clone().unwrap();
    g.desk
        .confirm(
            &action,
            "ana",
            "runbook: errors since revision 42",
            Some("llm-assistant"),
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    let run = loop {
        let run = runner.advance(run.id, "ana").await.unwrap();
        if run.current_step.as_deref() != Some("rollback") {
            break run;
        }
        assert!(Instant::now() < deadline, "the action step did not finish");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(run.current_step.as_deref(), Some("tell-owner"));
    let run = runner
        .answer(
            run.id,
            "tell-owner",
            Answer::Skip {
                reason: "owner already in the channel".into(),
            },
            "ana",
        )
        .await
        .unwrap();
    assert_eq!(run.state, "finished");

    let incident = g.store.incident(g.incident).await.unwrap();
    assert_eq!(
        incident.status,
        firebreak_store::incident::IncidentStatus::Mitigated
    );
    let timeline: Vec<String> = g
        .store
        .timeline(g.incident, None, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == firebreak_store::incident::EntryKind::Runbook)
        .map(|e| e.body)
        .collect();
    for step in [
        "Started runbook",
        "step correlate: done. Finding: errors rose",
        "step error-rate: error rate",
        "step decide:",
        "step rollback: Roll llm-assistant-serving back",
        "step tell-owner: skipped: owner already",
    ] {
        assert!(
            timeline.iter().any(|t| t.contains(step)),
            "no {step:?} in {timeline:#?}"
        );
    }
    assert!(timeline
        .last()
        .unwrap()
        .ends_with("The runbook is complete."));
    g.engine.stop().await;
    g.sim.shutdown();
}

#[test]
fn a_loop_a_person_takes_part_in_is_allowed() {
    // Back to the check after the branch: each round waits for a person's tick.
    let text = VALID.replace("otherwise: end", "otherwise: look");
    parse("loop.md", &text).unwrap_or_else(|e| panic!("a loop through a check is fine: {e}"));
}

#[tokio::test]
async fn a_run_that_loops_by_itself_is_stopped_not_run_forever() {
    use firebreak_engine::runbooks::run::{Runner, MAX_AUTOMATIC_STEPS};
    use firebreak_store::incident::NewIncident;
    let dir = tempfile::tempdir().unwrap();
    let store = firebreak_store::Store::open(&dir.path().join("firebreak.db"))
        .await
        .unwrap();
    let incident = store
        .open_incident(
            &NewIncident {
                title: "Checkout is slow".into(),
                severity: Severity::Major,
                service: Some("checkout".into()),
                cluster_id: None,
            },
            "ana",
        )
        .await
        .unwrap();
    let desk = firebreak_engine::actions::ActionDesk::new(
        store.clone(),
        firebreak_engine::actions::Tokens::default(),
        std::sync::Arc::new(firebreak_engine::ingest::sink::StatusBoard::default()),
        std::sync::Arc::new(firebreak_engine::ingest::sink::Recorder::default()),
    );
    // A loop that got past the check (an older file, a run stored before the check).
    let mut rb = parse("loop.md", VALID).unwrap();
    rb.steps.remove(0);
    for step in &mut rb.steps {
        if let Step::Query { next, .. } = step {
            *next = Some("p99".into());
        }
    }
    let run = Runner::new(store.clone(), desk)
        .start(incident.id, &rb, "ana")
        .await
        .unwrap();
    assert_eq!(run.state, "abandoned", "the engine stops a looping run");
    assert_eq!(
        run.results.len(),
        MAX_AUTOMATIC_STEPS,
        "it stops at its bound, not after writing without end"
    );
    let timeline = store.timeline(incident.id, None, 500).await.unwrap();
    assert!(timeline
        .iter()
        .any(|e| e.body.contains("steps ran by themselves without a person")));
    // Reading the incident's runs again writes nothing.
    let again = store.incident_runs(incident.id).await.unwrap();
    assert_eq!(again[0].results.len(), MAX_AUTOMATIC_STEPS);
}
