//! Reports on an incident recorded off the simulator: the HTML with hostile recorded text
//! opened in a real browser engine, the review (moments, annotations, the filtered
//! timeline), and demo data kept marked through a bundle. Exports through the command
//! line are in the app's tests/e2e/export.rs.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use firebreak_test_support as support;

use firebreak_reports::summit::{summit, Selection};
use firebreak_reports::{build, render, Format};
use firebreak_store::incident::Severity;
use firebreak_store::review::{FollowUpDraft, FollowUpStatus};
use firebreak_store::Store;
use support::recorded::{recorded_incident, HOSTILE};

#[tokio::test(flavor = "multi_thread")]
async fn the_html_report_runs_no_script_in_a_real_browser_and_shows_every_string_as_text() {
    let dir = tempfile::tempdir().unwrap();
    let (store, incident) = recorded_incident(&dir.path().join("firebreak.db")).await;
    // Hostile text in every field a reviewer writes, too (the note and the action's
    // reason already carry it).
    let opened = store.incident(incident).await.unwrap().opened_ms;
    store
        .set_moment(
            incident,
            "impact_began",
            Some(opened - 1_000),
            HOSTILE,
            "bo",
        )
        .await
        .unwrap();
    let first = store.timeline(incident, None, 1).await.unwrap()[0].id;
    store
        .annotate(incident, first, HOSTILE, "bo")
        .await
        .unwrap();
    // Categories and owners are short: the script part of it.
    let short = "<script>window.__pwned=1</script>";
    store.set_root_causes(&[short.into()]).await.unwrap();
    store
        .set_root_cause(incident, Some(short), "bo")
        .await
        .unwrap();
    store.add_factor(incident, HOSTILE, "bo").await.unwrap();
    let draft = FollowUpDraft {
        title: HOSTILE.into(),
        owner: short.into(),
        due: None,
        status: FollowUpStatus::Open,
    };
    store.add_follow_up(incident, &draft, "bo").await.unwrap();
    let report = build(&store, incident).await.unwrap();
    let file = dir.path().join("report.html");
    firebreak_reports::write_atomically(&file, &render(&report, Format::Html)).unwrap();
    let selection = Selection::Incidents {
        ids: vec![incident],
    };
    let summit_report = summit(&store, &selection, &mut |_, _| {}).await.unwrap();
    let summit_file = dir.path().join("summit.html");
    firebreak_reports::write_atomically(
        &summit_file,
        &firebreak_reports::summit::summit_html(&summit_report),
    )
    .unwrap();

    let driver = support::webdriver::Driver::start_browser().await;
    let session = driver.browser_session().await;
    // The incident report: the note, the action's reason, the moved moment's reason, the
    // annotation, the root cause (twice), the factor and the follow-up's title and owner.
    // The summit: the root cause (twice), the factor, the follow-up's owner and title.
    for (page, at_least) in [(&file, 9), (&summit_file, 5)] {
        session
            .navigate(&format!("file://{}", page.display()))
            .await;
        let seen = session
            .execute(
                "return { pwned: window.__pwned === undefined ? null : window.__pwned,
                          scripts: document.scripts.length,
                          images: document.images.length,
                          links: document.links.length,
                          bold: document.querySelectorAll('b').length,
                          text: document.body.innerText };",
                serde_json::json!([]),
            )
            .await;
        assert!(seen["pwned"].is_null(), "script ran: {seen}");
        assert_eq!(seen["scripts"], 0);
        assert_eq!(seen["images"], 0);
        assert_eq!(seen["links"], 0);
        assert_eq!(seen["bold"], 0, "recorded markup was rendered");
        let text = seen["text"].as_str().unwrap();
        let shown = text.matches("<script>window.__pwned=1</script>").count();
        assert!(
            shown >= at_least,
            "{shown} times in {}:\n{text}",
            page.display()
        );
        assert!(
            text.contains("[click](javascript:window.__pwned=3)"),
            "{text}"
        );
    }
    session.close().await;
    // Kept beside the window screenshots, for a person to read.
    let shots = firebreak_test_support::workspace_root().join("target/e2e-shots");
    let _ = std::fs::create_dir_all(&shots);
    let _ = std::fs::copy(&file, shots.join("report.html"));
}

#[tokio::test(flavor = "multi_thread")]
async fn review_moves_moments_with_a_reason_annotates_entries_and_filters_the_timeline() {
    let dir = tempfile::tempdir().unwrap();
    let (store, incident) = recorded_incident(&dir.path().join("firebreak.db")).await;
    let before = build(&store, incident).await.unwrap();
    let figure = |r: &firebreak_reports::IncidentReport, name: &str| {
        r.figures
            .iter()
            .find(|f| f.name == name)
            .unwrap()
            .seconds
            .unwrap()
    };

    // A moment cannot move without a reason, nor can a made-up moment move at all.
    let opened = store.incident(incident).await.unwrap().opened_ms;
    assert!(store
        .set_moment(incident, "impact_began", Some(opened - 120_000), "  ", "bo")
        .await
        .is_err());
    assert!(store
        .set_moment(incident, "lunch", Some(opened), "because", "bo")
        .await
        .is_err());
    let entries = store.timeline(incident, None, 1000).await.unwrap();
    support::rig::review(&store, incident).await;
    let after = build(&store, incident).await.unwrap();
    let impact = &after.key_moments[0];
    assert_eq!(impact.at.unwrap().timestamp_millis(), opened - 120_000);
    assert_eq!(impact.recorded_at, before.key_moments[0].at);
    assert_eq!(impact.edit.as_ref().unwrap().by, "bo");
    // Time to detect and to mitigate run from the moved moment; acknowledging does not.
    assert_eq!(figure(&after, "time to detect"), 120);
    assert!(figure(&after, "time to mitigate") > figure(&before, "time to mitigate"));
    assert_eq!(
        figure(&after, "time to acknowledge"),
        figure(&before, "time to acknowledge")
    );
    // The annotation sits under its entry; the review is in the report, in every format.
    assert_eq!(
        after.timeline[0].annotations[0].text,
        "this is where it started"
    );
    assert_eq!(
        after.review.root_cause.as_deref(),
        Some("bad model version")
    );
    let md = render(&after, Format::Markdown);
    assert!(
        md.contains("moved in review by bo: users reported errors two minutes before the alert")
    );
    assert!(
        md.contains("| Canary model weights | bo | 2027-01-15 | open |"),
        "{md}"
    );
    assert!(md.contains("↳ annotation"));

    // Back to the recorded time: the edit stays as history, the moment is as recorded.
    store
        .set_moment(
            incident,
            "impact_began",
            None,
            "the user reports were about another service",
            "ana",
        )
        .await
        .unwrap();
    let reverted = build(&store, incident).await.unwrap();
    assert_eq!(reverted.key_moments[0].at, before.key_moments[0].at);
    assert!(reverted.key_moments[0].edit.is_none());
    assert_eq!(store.review(incident).await.unwrap().moment_edits.len(), 2);

    // An annotation only goes on an entry of the same incident.
    let other = store
        .open_incident(
            &firebreak_store::incident::NewIncident {
                title: "other".into(),
                severity: Severity::Minor,
                service: None,
                cluster_id: None,
            },
            "ana",
        )
        .await
        .unwrap()
        .id;
    assert!(store
        .annotate(other, entries[0].id, "no", "ana")
        .await
        .is_err());

    // The root cause comes from the editable list; a category leaving it stays where used.
    assert!(store
        .set_root_cause(other, Some("cosmic rays"), "ana")
        .await
        .is_err());
    store
        .set_root_causes(&["cosmic rays".into(), "capacity".into()])
        .await
        .unwrap();
    store
        .set_root_cause(other, Some("cosmic rays"), "ana")
        .await
        .unwrap();
    assert_eq!(
        store.review(incident).await.unwrap().root_cause.as_deref(),
        Some("bad model version")
    );
    assert!(store.set_root_causes(&[]).await.is_err());
    // The same factor twice, in another spelling, is refused; a bad due date too.
    assert!(store
        .add_factor(incident, "No  Canary for model WEIGHTS", "ana")
        .await
        .is_err());
    let bad_due = FollowUpDraft {
        title: "x".into(),
        owner: "ana".into(),
        due: Some("next tuesday".into()),
        status: FollowUpStatus::Open,
    };
    assert!(store
        .add_follow_up(incident, &bad_due, "ana")
        .await
        .is_err());
    let follow = store.review(incident).await.unwrap().follow_ups[0].clone();
    let done = store
        .update_follow_up(
            follow.id,
            &FollowUpDraft {
                title: follow.title.clone(),
                owner: follow.owner.clone(),
                due: follow.due.clone(),
                status: FollowUpStatus::Done,
            },
            "ana",
        )
        .await
        .unwrap();
    assert_eq!(
        (done.status, done.updated_by.as_str()),
        (FollowUpStatus::Done, "ana")
    );

    // Filters: by kind, author, service and time range, each keeping exactly its entries.
    use firebreak_store::incident::EntryKind;
    use firebreak_store::review::TimelineFilter;
    let all = store.timeline(incident, None, 1000).await.unwrap();
    let kept = |f: TimelineFilter| {
        let store = store.clone();
        async move {
            let page = store
                .filtered_timeline(incident, &f, None, 1000)
                .await
                .unwrap();
            assert_eq!(
                store.filtered_timeline_count(incident, &f).await.unwrap(),
                page.len() as i64
            );
            page.into_iter().map(|e| e.id).collect::<Vec<_>>()
        }
    };
    let ids = |pick: &dyn Fn(&firebreak_store::incident::TimelineEntry) -> bool| {
        all.iter()
            .filter(|e| pick(e))
            .map(|e| e.id)
            .collect::<Vec<_>>()
    };
    let notes = kept(TimelineFilter {
        kinds: vec![EntryKind::Note, EntryKind::StatusChanged],
        ..Default::default()
    })
    .await;
    assert_eq!(
        notes,
        ids(&|e| matches!(e.kind, EntryKind::Note | EntryKind::StatusChanged))
    );
    assert!(!notes.is_empty());
    let by_ana = kept(TimelineFilter {
        author: Some("ana".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(by_ana, ids(&|e| e.author == "ana"));
    let facets = store.timeline_facets(incident).await.unwrap();
    assert!(
        facets.services.contains(&"llm-assistant".to_owned()),
        "{facets:?}"
    );
    let service = kept(TimelineFilter {
        service: Some("llm-assistant".into()),
        ..Default::default()
    })
    .await;
    assert!(!service.is_empty() && service.len() < all.len());
    // Only entries about the cluster's events of that service: never a note or a status.
    assert!(service.iter().all(|id| all
        .iter()
        .any(|e| e.id == *id && !matches!(e.kind, EntryKind::Note | EntryKind::StatusChanged))));
    let mid = all[all.len() / 2].at_ms;
    let window = kept(TimelineFilter {
        from_ms: Some(mid),
        to_ms: Some(mid + 60_000),
        ..Default::default()
    })
    .await;
    assert_eq!(window, ids(&|e| e.at_ms >= mid && e.at_ms <= mid + 60_000));
    // Paging through a filter visits every kept entry once.
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .filtered_timeline(incident, &TimelineFilter::default(), after, 7)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some((last.at_ms, last.id));
        paged.extend(page.into_iter().map(|e| e.id));
    }
    assert_eq!(paged, ids(&|_| true));
}

/// An incident recorded from the demo fleet stays marked as demo data wherever its bundle
/// is imported: on a store whose cluster of the same name is a real one, in the imported
/// incident, its report and its next bundle; a bundle from before the mark existed imports
/// as it always did. A team-linked store shares no imported incident.
#[tokio::test]
async fn a_demo_incident_stays_demo_data_wherever_its_bundle_is_imported() {
    use firebreak_store::bundle::Bundle;
    use firebreak_store::incident::NewIncident;
    use firebreak_store::NewCluster;

    let cluster = |events: &str| NewCluster {
        name: "prod-east".into(),
        events_url: events.into(),
        actions_url: "http://127.0.0.1:1/".into(),
        ca_file: None,
    };
    let here = tempfile::tempdir().unwrap();
    let store = Store::open(&here.path().join("firebreak.db"))
        .await
        .unwrap();
    let demo = store
        .ensure_demo_cluster(&cluster("ws://127.0.0.1:1/events"))
        .await
        .unwrap();
    let opened = store
        .open_incident(
            &NewIncident {
                cluster_id: Some(demo.id),
                title: "Demo: p99 over SLO".into(),
                service: Some("llm-assistant".into()),
                severity: Severity::Major,
            },
            "ana",
        )
        .await
        .unwrap();
    assert!(opened.demo);
    let (out, _) = firebreak_reports::bundle(&store, opened.id).await.unwrap();
    let text = serde_json::to_string(&out).unwrap();
    let bundle: Bundle = serde_json::from_str(&text).unwrap();
    assert!(bundle.incident.demo && bundle.cluster.as_ref().unwrap().demo);

    // Another console, with a real cluster called prod-east, linked to a team.
    let there = tempfile::tempdir().unwrap();
    let other = Store::open(&there.path().join("firebreak.db"))
        .await
        .unwrap();
    let real = other
        .add_cluster(&cluster("wss://gateway.internal/events"))
        .await
        .unwrap();
    assert!(!real.demo);
    other
        .link_team("http://127.0.0.1:1", "serving", None, None)
        .await
        .unwrap();
    let id = other.import(&bundle, "ben").await.unwrap();
    let imported = other.incident(id).await.unwrap();
    assert_eq!(imported.cluster_id, Some(real.id));
    assert!(
        imported.demo,
        "imported onto a real cluster, still demo data"
    );
    let report = build(&other, id).await.unwrap();
    assert!(report.incident.demo);
    let markdown = render(&report, Format::Markdown);
    assert!(
        markdown.contains("Demo data: recorded from Firebreak's simulated fleet"),
        "{markdown}"
    );
    let (again, _) = firebreak_reports::bundle(&other, id).await.unwrap();
    let again: Bundle = serde_json::from_str(&serde_json::to_string(&again).unwrap()).unwrap();
    assert!(again.incident.demo, "and in the bundle it makes in turn");
    assert_eq!(
        other.team_pending_count().await.unwrap(),
        0,
        "demo data is not shared with the team"
    );
    assert!(!other.is_shared(id).await.unwrap());

    // A bundle made before the mark: no demo fields, imported as not demo.
    let mut old: serde_json::Value = serde_json::from_str(&text).unwrap();
    old["incident"].as_object_mut().unwrap().remove("demo");
    old["cluster"].as_object_mut().unwrap().remove("demo");
    old["incident"]["public_id"] = uuid::Uuid::now_v7().to_string().into();
    let old: Bundle = serde_json::from_value(old).unwrap();
    let third = tempfile::tempdir().unwrap();
    let plain = Store::open(&third.path().join("firebreak.db"))
        .await
        .unwrap();
    plain
        .link_team("http://127.0.0.1:1", "serving", None, None)
        .await
        .unwrap();
    let id = plain.import(&old, "cai").await.unwrap();
    assert!(!plain.incident(id).await.unwrap().demo);
    // An import is history from another store, never shared, demo or not; nor is what
    // is written on it afterwards.
    plain
        .add_note(id, "read during the review", "cai")
        .await
        .unwrap();
    assert!(!plain.is_shared(id).await.unwrap());
    assert_eq!(plain.team_pending_count().await.unwrap(), 0);
}

/// A service with objectives: the report says the error budget it had left when the
/// incident ended, of each objective, in every format; a service without says nothing.
#[tokio::test(flavor = "multi_thread")]
async fn the_report_says_the_error_budget_left_when_the_service_has_objectives() {
    let dir = tempfile::tempdir().unwrap();
    let (store, incident) = recorded_incident(&dir.path().join("firebreak.db")).await;
    let without = build(&store, incident).await.unwrap();
    assert!(without.error_budget.is_none());
    assert!(!render(&without, Format::Markdown).contains("Error budget"));
    let i = store.incident(incident).await.unwrap();
    store
        .set_objective(
            i.cluster_id.unwrap(),
            i.service.as_deref().unwrap(),
            Some(firebreak_store::objectives::Objective {
                availability: 0.995,
                latency_p99_ms: Some(2000.0),
                latency_target: 0.99,
            }),
            "ana",
        )
        .await
        .unwrap();
    let report = build(&store, incident).await.unwrap();
    let budget = report
        .error_budget
        .clone()
        .expect("the budget, with objectives");
    assert_eq!(
        budget.objectives,
        "99.5 % of requests; p99 ≤ 2000 ms in 99 % of minutes"
    );
    assert!(budget.availability_left.is_some(), "{budget:?}");
    for format in [Format::Markdown, Format::Html] {
        let text = render(&report, format);
        assert!(
            text.contains("Error budget over the 30 days to"),
            "{format:?}"
        );
        assert!(text.contains("availability "), "{format:?}");
    }
    let json = render(&report, Format::Json);
    assert!(json.contains("\"error_budget\""), "{json}");
    store.close().await;
}
