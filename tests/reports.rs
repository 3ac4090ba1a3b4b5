//! Incident reports from an incident recorded off the simulator: figures, actions, the
//! three formats, the JSON Schema, hostile recorded text opened in a real browser engine,
//! and the command line's atomic write.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

mod support;

use std::time::Duration;

use firebreak::actions::ActionSettings;
use firebreak::incident::{IncidentStatus, Severity};
use firebreak::protocol::actions::ActionKind;
use firebreak::reports::{build, render, Format};
use firebreak::store::Store;
use support::rig::Live;

/// Text an attacker could get into an event, a note or a title.
const HOSTILE: &str = "<script>window.__pwned=1</script><img src=x onerror=\"window.__pwned=2\"> \
     [click](javascript:window.__pwned=3) </td></tr></table><b>bold</b> ' \" & | * _";

/// The bad-model-rollout incident, rolled back and verified, with a hostile note, then
/// resolved; the store is left at `db`.
async fn recorded_incident(db: &std::path::Path) -> (Store, i64) {
    let sim = support::cluster::sim("bad-model-rollout", 10.0, |_| {}).await;
    let settings = ActionSettings {
        grace_s: 0,
        verify_window_s: 4,
        ..Default::default()
    };
    let Live {
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
    store
        .change_status(incident, IncidentStatus::Acknowledged, "ana")
        .await
        .unwrap();
    store.add_note(incident, HOSTILE, "ana").await.unwrap();
    let proposal = desk
        .propose(incident, ActionKind::Rollback, "ana")
        .await
        .unwrap();
    desk.confirm(&proposal.id, "ana", HOSTILE, Some("llm-assistant"))
        .await
        .unwrap();
    support::rig::wait_for(Duration::from_secs(60), "the verification", async || {
        store
            .action(&proposal.id)
            .await
            .unwrap()
            .verification
            .is_some()
    })
    .await;
    store
        .change_status(incident, IncidentStatus::Mitigated, "ana")
        .await
        .unwrap();
    store
        .change_status(incident, IncidentStatus::Resolved, "ana")
        .await
        .unwrap();
    engine.stop().await;
    sim.shutdown();
    (store, incident)
}

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
    let schema = firebreak::reports::schema();
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
async fn the_html_report_runs_no_script_in_a_real_browser_and_shows_every_string_as_text() {
    let dir = tempfile::tempdir().unwrap();
    let (store, incident) = recorded_incident(&dir.path().join("firebreak.db")).await;
    let report = build(&store, incident).await.unwrap();
    let file = dir.path().join("report.html");
    firebreak::reports::write_atomically(&file, &render(&report, Format::Html)).unwrap();

    let driver = support::webdriver::Driver::start_browser().await;
    let session = driver.browser_session().await;
    session
        .navigate(&format!("file://{}", file.display()))
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
    assert!(text.contains("<script>window.__pwned=1</script>"), "{text}");
    assert!(
        text.contains("[click](javascript:window.__pwned=3)"),
        "{text}"
    );
    session.close().await;
    // Kept beside the window screenshots, for a person to read.
    let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/e2e-shots");
    let _ = std::fs::create_dir_all(&shots);
    let _ = std::fs::copy(&file, shots.join("report.html"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_summit_report_aggregates_the_period_and_keeps_hostile_text_as_text() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = recorded_incident(&dir.path().join("firebreak.db")).await;
    store
        .open_incident(
            &firebreak::incident::NewIncident {
                title: HOSTILE.into(),
                severity: Severity::Minor,
                service: Some("checkout".into()),
                cluster_id: None,
            },
            "ana",
        )
        .await
        .unwrap();
    let today = chrono::Utc::now().date_naive();
    let from = today.and_hms_opt(0, 0, 0).unwrap().and_utc();
    let report = firebreak::reports::summit::summit(&store, from, from + chrono::Days::new(1))
        .await
        .unwrap();
    assert_eq!(report.incidents.len(), 2);
    assert_eq!(
        report.by_severity,
        vec![("critical".to_owned(), 1), ("minor".to_owned(), 1)]
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
    assert!(report.top_alerts.iter().any(|(a, _)| a == "HighErrorRate"));
    assert!(report.mean_times.mttm_s.is_some());
    assert_eq!(report.trend.len(), 1);

    let md = firebreak::reports::summit::summit_markdown(&report);
    assert!(md.contains("&lt;script&gt;") && !md.contains("<script"));
    let html = firebreak::reports::summit::summit_html(&report);
    assert!(html.contains("&lt;script&gt;") && !html.contains("<script") && !html.contains("<img"));
    assert_eq!(
        html.matches("<table").count(),
        html.matches("</table>").count()
    );

    store.close().await;
    let out = dir.path().join("summit.json");
    let day = today.format("%Y-%m-%d").to_string();
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_firebreak"))
        .args([
            "summit", "--from", &day, "--to", &day, "--format", "json", "-o",
        ])
        .arg(&out)
        .env("FIREBREAK_DATA_DIR", dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(json["incidents"].as_array().unwrap().len(), 2);
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
    let entries = timeline(store.clone(), incident).await;
    let actions = store.incident_actions(incident).await.unwrap();
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
}
