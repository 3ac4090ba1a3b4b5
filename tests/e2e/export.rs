//! Reports exported by `firebreak report`, `firebreak summit`, `firebreak export` and `import`
//! from an incident recorded off the simulator: figures, actions, the three formats, the JSON
//! Schema, hostile text kept as text, the atomic write, and a bundle's round trip with a
//! tampered one refused.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use crate::support;

use firebreak_reports::summit::{summit, Selection};
use firebreak_reports::{build, render, Format};
use firebreak_store::incident::Severity;
use firebreak_store::review::{FollowUpDraft, FollowUpStatus};
use firebreak_store::Store;
use support::recorded::{recorded_incident, HOSTILE};

#[tokio::test(flavor = "multi_thread")]
async fn reports_carry_the_figures_and_actions_and_keep_hostile_text_as_text() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("firebreak.db");
    let (store, incident) = recorded_incident(&db).await;
    let report = build(&store, incident).await.unwrap();

    // Figures, with their definitions; every key moment found in the recorded data.
    for name in [
        "time to detect",
        "time to acknowledge",
        "time to mitigate",
        "time to resolve",
    ] {
        let f = report.figures.iter().find(|f| f.name == name).unwrap();
        assert!(f.seconds.is_some() && !f.definition.is_empty(), "{f:?}");
    }
    assert!(
        report.key_moments.iter().all(|k| k.at.is_some()),
        "{:?}",
        report.key_moments
    );
    assert_eq!(report.actions.len(), 1);
    assert_eq!(report.actions[0].verification.as_deref(), Some("recovered"));
    assert!(
        report.alerts.contains(&"HighErrorRate".to_owned()),
        "{:?}",
        report.alerts
    );
    assert!(report.metrics.len() > 3);

    // JSON validates against the published schema.
    let json: serde_json::Value = serde_json::from_str(&render(&report, Format::Json)).unwrap();
    let schema = firebreak_reports::schema();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&json)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert!(json["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["text"] == HOSTILE));

    // Markdown: the hostile text is escaped (no raw tag, no live link syntax).
    let md = render(&report, Format::Markdown);
    assert!(
        md.contains("&lt;script&gt;window.\\_\\_pwned=1&lt;/script&gt;"),
        "{md}"
    );
    assert!(!md.contains("<script") && !md.contains("<img") && !md.contains("](javascript:"));
    assert!(md.starts_with("# Incident "));
    // Control characters are shown as their pictures: the report stays text to every tool.
    for (format, text) in [("markdown", &md), ("html", &render(&report, Format::Html))] {
        let raw: Vec<char> = text
            .chars()
            .filter(|c| c.is_control() && !matches!(c, '\n' | '\t'))
            .collect();
        assert!(
            raw.is_empty(),
            "{format} carries raw control characters {raw:?}"
        );
    }
    assert!(
        md.contains("nul\u{2400}byte esc\u{241b}\\[31m"),
        "NUL and ESC read as ␀ and ␛"
    );

    // HTML: escaped, no script anywhere, tables balanced, the chart inline.
    let html = render(&report, Format::Html);
    assert!(!html.contains("<script") && !html.contains("<img") && !html.contains("onerror=\""));
    assert!(html.contains("&lt;script&gt;window.__pwned=1&lt;/script&gt;"));
    assert_eq!(
        html.matches("<table").count(),
        html.matches("</table>").count()
    );
    assert!(html.contains("<svg") && html.contains("Content-Security-Policy"));

    // The command line writes exactly the chosen file.
    let out = dir.path().join("out").join("report.html");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    store.close().await;
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_firebreak"))
        .args(["report", &incident.to_string(), "--format", "html", "-o"])
        .arg(&out)
        .env("FIREBREAK_DATA_DIR", dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let written = std::fs::read_to_string(&out).unwrap();
    assert!(written.starts_with("<!DOCTYPE html>"));
    let left: Vec<_> = std::fs::read_dir(out.parent().unwrap()).unwrap().collect();
    assert_eq!(left.len(), 1, "no temporary file is left behind");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_summit_report_aggregates_the_period_and_keeps_hostile_text_as_text() {
    let dir = tempfile::tempdir().unwrap();
    let (store, recorded) = recorded_incident(&dir.path().join("firebreak.db")).await;
    let other = store
        .open_incident(
            &firebreak_store::incident::NewIncident {
                title: HOSTILE.into(),
                severity: Severity::Minor,
                // Hostile text where the charts put it too: a service and a root cause.
                service: Some(HOSTILE.into()),
                cluster_id: None,
            },
            "ana",
        )
        .await
        .unwrap()
        .id;
    // The review: both incidents name one factor (spelt two ways) and one each of their own.
    store
        .set_root_cause(recorded, Some("bad model version"), "ana")
        .await
        .unwrap();
    // (A root-cause category is at most 100 characters: the hostile text's first part.)
    let hostile_cause = "<script>window.__pwned=1</script>";
    let mut causes = store.root_causes().await.unwrap();
    causes.push(hostile_cause.into());
    store.set_root_causes(&causes).await.unwrap();
    store
        .set_root_cause(other, Some(hostile_cause), "ana")
        .await
        .unwrap();
    for (incident, factor) in [
        (recorded, "No canary for model weights"),
        (other, "no  canary for MODEL weights"),
        (recorded, "Alert fired late"),
        (other, HOSTILE),
    ] {
        store.add_factor(incident, factor, "ana").await.unwrap();
    }
    let draft = |title: &str, owner: &str, due: Option<&str>, status| FollowUpDraft {
        title: title.into(),
        owner: owner.into(),
        due: due.map(str::to_owned),
        status,
    };
    for (incident, d) in [
        (
            recorded,
            draft(
                "Canary model weights",
                "bo",
                Some("2020-01-31"),
                FollowUpStatus::Open,
            ),
        ),
        (
            recorded,
            draft("Page on p99", "ana", None, FollowUpStatus::Done),
        ),
        (
            other,
            draft(
                HOSTILE,
                "ana",
                Some("2999-12-31"),
                FollowUpStatus::InProgress,
            ),
        ),
    ] {
        store.add_follow_up(incident, &d, "ana").await.unwrap();
    }

    let today = chrono::Utc::now().date_naive();
    let from = today.and_hms_opt(0, 0, 0).unwrap().and_utc();
    let period = Selection::Period {
        from,
        to: from + chrono::Days::new(1),
    };
    let report = summit(&store, &period, &mut |_, _| {}).await.unwrap();
    assert_eq!(report.incidents.len(), 2);
    assert_eq!(
        report.by_severity,
        vec![("critical".to_owned(), 1), ("minor".to_owned(), 1)]
    );
    assert_eq!(
        report.by_root_cause,
        vec![
            (hostile_cause.to_owned(), 1),
            ("bad model version".to_owned(), 1)
        ]
    );
    let rollback = report
        .remediations
        .iter()
        .find(|r| r.kind == "rollback")
        .unwrap();
    assert_eq!(
        (
            rollback.used,
            rollback.succeeded,
            rollback.verified_recovered
        ),
        (1, 1, 1)
    );
    assert!(rollback.mean_time_to_recovery_s.is_some());
    assert!(report.top_alerts.iter().any(|(a, _)| a == "HighErrorRate"));
    assert!(report.mean_times.mttm_s.is_some());
    assert_eq!(report.trend.len(), 1);
    // The factor both named recurs, whatever its spelling; the others were named once.
    assert_eq!(
        report.contributing_factors[0].incidents,
        vec![recorded, other]
    );
    assert_eq!(
        report
            .contributing_factors
            .iter()
            .filter(|f| f.incidents.len() == 1)
            .count(),
        2
    );
    // Open follow-ups by owner (the done one is not open); the past due date is overdue.
    let open: Vec<(&str, bool)> = report
        .open_follow_ups
        .iter()
        .map(|f| (f.owner.as_str(), f.overdue))
        .collect();
    assert_eq!(open, vec![("ana", false), ("bo", true)]);

    let md = firebreak_reports::summit::summit_markdown(&report);
    assert!(md.contains("&lt;script&gt;") && !md.contains("<script"));
    assert!(
        md.contains("## Recurring contributing factors") && md.contains("2020-01-31 \\(overdue\\)")
    );
    let html = firebreak_reports::summit::summit_html(&report);
    assert!(html.contains("&lt;script&gt;") && !html.contains("<script") && !html.contains("<img"));
    // The charts label bars with the service and the root cause: as text, escaped.
    let charts: Vec<&str> = html.split("<svg").skip(1).collect();
    assert_eq!(
        charts.len(),
        7,
        "mean times, per week, two by root cause, two by service, remediations"
    );
    assert!(
        charts
            .iter()
            .filter(|svg| svg.contains("&lt;script&gt;window.__pwned=1&lt;/script&gt;"))
            .count()
            >= 4,
        "the hostile service and root cause label the breakdown charts"
    );
    assert!(report.takeaways.iter().all(|t| !t.text.is_empty()));
    assert_eq!(
        html.matches("<table").count(),
        html.matches("</table>").count()
    );

    // A chosen set instead of a period.
    let one = summit(
        &store,
        &Selection::Incidents { ids: vec![other] },
        &mut |_, _| {},
    )
    .await
    .unwrap();
    assert_eq!(one.incidents.len(), 1);
    assert_eq!(one.by_service, vec![(HOSTILE.to_owned(), 1)]);

    store.close().await;
    let summit_json = |args: &[&str]| {
        let out = dir.path().join("summit.json");
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_firebreak"))
            .arg("summit")
            .args(args)
            .args(["--format", "json", "-o"])
            .arg(&out)
            .env("FIREBREAK_DATA_DIR", dir.path())
            .status()
            .unwrap();
        assert!(status.success());
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        json
    };
    let day = today.format("%Y-%m-%d").to_string();
    let json = summit_json(&["--from", &day, "--to", &day]);
    assert_eq!(json["incidents"].as_array().unwrap().len(), 2);
    let errors: Vec<String> = jsonschema::validator_for(&firebreak_reports::summit::schema())
        .unwrap()
        .iter_errors(&json)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let json = summit_json(&["--incidents", &recorded.to_string()]);
    assert_eq!(json["incidents"][0]["id"], recorded);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exported_bundle_imports_as_the_same_incident_and_a_tampered_one_is_refused() {
    let here = tempfile::tempdir().unwrap();
    let (store, incident) = recorded_incident(&here.path().join("firebreak.db")).await;
    let before = store.incident(incident).await.unwrap();
    let timeline = |s: Store, id: i64| async move {
        s.timeline(id, None, 1000)
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.at_ms, e.kind, e.author, e.body))
            .collect::<Vec<_>>()
    };
    // A reviewed incident: the review travels too.
    support::rig::review(&store, incident).await;
    let entries = timeline(store.clone(), incident).await;
    let actions = store.incident_actions(incident).await.unwrap();
    let report = comparable(build(&store, incident).await.unwrap());
    store.close().await;

    let bundle = here.path().join("incident.bundle.json");
    let cli = |dir: &std::path::Path, args: &[&std::ffi::OsStr]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_firebreak"))
            .args(args)
            .env("FIREBREAK_DATA_DIR", dir)
            .output()
            .unwrap()
    };
    let out = cli(
        here.path(),
        &[
            "export".as_ref(),
            incident.to_string().as_ref(),
            "-o".as_ref(),
            bundle.as_os_str(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Into another store: the same incident, timeline and actions.
    let there = tempfile::tempdir().unwrap();
    let out = cli(there.path(), &["import".as_ref(), bundle.as_os_str()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let other = Store::open(&there.path().join("firebreak.db"))
        .await
        .unwrap();
    let imported = other
        .incidents()
        .await
        .unwrap()
        .into_iter()
        .find(|i| i.public_id == before.public_id)
        .unwrap();
    assert_eq!(
        (
            &imported.title,
            imported.severity,
            imported.status,
            imported.opened_ms,
            imported.mitigated_ms,
            imported.resolved_ms
        ),
        (
            &before.title,
            before.severity,
            before.status,
            before.opened_ms,
            before.mitigated_ms,
            before.resolved_ms
        )
    );
    assert_eq!(timeline(other.clone(), imported.id).await, entries);
    let again = other.incident_actions(imported.id).await.unwrap();
    assert_eq!(again.len(), actions.len());
    assert_eq!(
        (again[0].id.as_str(), again[0].verification.as_deref()),
        (actions[0].id.as_str(), Some("recovered"))
    );
    assert!(other.verify_audit().await.unwrap().first_bad.is_none());
    // The whole report, review, annotations and metric chart included, reads the same.
    assert_eq!(
        comparable(build(&other, imported.id).await.unwrap()),
        report
    );
    other.close().await;
    // Importing the same incident twice is refused.
    let out = cli(there.path(), &["import".as_ref(), bundle.as_os_str()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already here"));

    // One edited audit record in the bundle, and nothing is imported.
    let mut doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&bundle).unwrap()).unwrap();
    let detail =
        doc["audit"][2]["detail"]
            .as_str()
            .unwrap()
            .replacen('{', "{\"edited\": true, ", 1);
    doc["audit"][2]["detail"] = serde_json::Value::String(detail);
    let tampered = here.path().join("tampered.json");
    std::fs::write(&tampered, doc.to_string()).unwrap();
    let third = tempfile::tempdir().unwrap();
    let out = cli(third.path(), &["import".as_ref(), tampered.as_os_str()]);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("audit chain is broken at record 3"), "{said}");
    let empty = Store::open(&third.path().join("firebreak.db"))
        .await
        .unwrap();
    assert!(empty.incidents().await.unwrap().is_empty());

    // A bundle whose action was left under way (a failover pending when it was exported)
    // must never be sent from the store that imports it, even with a cluster of the same
    // name there: it is history, and only the installation that confirmed it drives it.
    let mut doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&bundle).unwrap()).unwrap();
    for a in doc["actions"].as_array_mut().unwrap() {
        a["state"] = "pending".into();
        a["verification"] = serde_json::Value::Null;
    }
    let unfinished = here.path().join("unfinished.json");
    std::fs::write(&unfinished, doc.to_string()).unwrap();
    let fourth = tempfile::tempdir().unwrap();
    let out = cli(fourth.path(), &["import".as_ref(), unfinished.as_os_str()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let there = Store::open(&fourth.path().join("firebreak.db"))
        .await
        .unwrap();
    assert!(
        there.unfinished_actions().await.unwrap().is_empty(),
        "an imported action is never resumed"
    );
    let resumed = cli(fourth.path(), &["actions".as_ref(), "--resume".as_ref()]);
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let imported = there.incidents().await.unwrap()[0].id;
    let still = there.incident_actions(imported).await.unwrap();
    assert_eq!(
        still[0].state.as_str(),
        "pending",
        "`actions --resume` left the imported action as it came"
    );
}

/// A report with what must differ between two stores (the local id, when it was made) blanked.
fn comparable(mut r: firebreak_reports::IncidentReport) -> firebreak_reports::IncidentReport {
    r.incident.id = 0;
    r.generated_at = Default::default();
    r
}
