//! `firebreak demo history`: weeks of simulated incidents recorded through the real engine,
//! desk and review store, the same for the same seed, marked as demo data; and the summit
//! made from it, checked against golden files in every format (its charts draw the same
//! figures as its tables).
//!
//! The summits are made in this process with the console's clock set (a manual clock is
//! process-wide: this file's tests agree on it), so "overdue" and "generated at" read the
//! same on every run.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use std::path::Path;
use std::process::{Command, Output};

use chrono::{DateTime, Utc};
use firebreak_reports::summit::{summit, Selection, SummitReport};
use firebreak_reports::Format;
use firebreak_store::Store;

const UNTIL: &str = "2026-11-30";

fn history(data_dir: &Path, seed: &str) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_firebreak"))
        .arg("--data-dir")
        .arg(data_dir)
        .args([
            "demo", "history", "--weeks", "3", "--seed", seed, "--until", UNTIL,
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn finished(child: std::process::Child) -> Output {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "demo history failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Ids drawn at random (public ids, action ids, keys) masked.
fn masked(text: &str) -> String {
    regex::Regex::new(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
        .unwrap()
        .replace_all(text, "[uuid]")
        .into_owned()
}

async fn summit_of(db: &Path, from: &str, to: &str) -> SummitReport {
    let store = Store::open(db).await.unwrap();
    let day = |d: &str| -> DateTime<Utc> { format!("{d}T00:00:00Z").parse().unwrap() };
    let report = summit(
        &store,
        &Selection::Period {
            from: day(from),
            to: day(to),
        },
        &mut |_, _| {},
    )
    .await
    .unwrap();
    store.close().await;
    report
}

async fn everything(db: &Path) -> String {
    let store = Store::open(db).await.unwrap();
    let mut all = String::new();
    for i in store.incidents().await.unwrap() {
        all.push_str(&format!("{i:?}\n"));
        for e in store.timeline(i.id, None, 1000).await.unwrap() {
            all.push_str(&format!("{e:?}\n"));
        }
        for a in store.incident_actions(i.id).await.unwrap() {
            all.push_str(&format!(
                "{:?} {:?} {:?} {:?} {:?}\n",
                a.kind, a.state, a.succeeded_ms, a.verification, a.created_ms
            ));
        }
        all.push_str(&format!("{:?}\n", store.review(i.id).await.unwrap()));
    }
    store.close().await;
    masked(&all)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_history_records_the_same_for_a_seed_and_its_summit_matches_the_golden_files() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // Two recordings of one seed side by side.
    let (first, second) = (history(a.path(), "7"), history(b.path(), "7"));
    let out = finished(first);
    finished(second);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("recorded 9 incidents"), "{said}");

    // The same seed records the same history: every incident, entry, action and review.
    let (db_a, db_b) = (a.path().join("firebreak.db"), b.path().join("firebreak.db"));
    let recorded = everything(&db_a).await;
    assert_eq!(recorded, everything(&db_b).await);

    // Marked as demo data in the store, and the audit chain holds.
    let store = Store::open(&db_a).await.unwrap();
    let incidents = store.incidents().await.unwrap();
    assert_eq!(incidents.len(), 9);
    assert!(incidents
        .iter()
        .all(|i| i.demo && i.status.as_str() == "resolved"));
    assert!(store.verify_audit().await.unwrap().first_bad.is_none());
    store.close().await;

    // A second history into the same store is refused, and changes nothing.
    let again = finished_err(history(a.path(), "8"));
    assert!(again.contains("already holds a demo history"), "{again}");
    assert_eq!(everything(&db_a).await, recorded);

    // The summit of the last two weeks, against the week before them, at a fixed time.
    firebreak_common::clock::set_manual(Some(
        "2026-11-30T09:00:00Z"
            .parse::<DateTime<Utc>>()
            .unwrap()
            .timestamp_millis(),
    ));
    let report = summit_of(&db_a, "2026-11-16", "2026-11-30").await;
    firebreak_common::clock::set_manual(None);
    assert_eq!(report.demo_incidents, report.incidents.len());
    let comparison = report.comparison.as_ref().unwrap();
    assert_eq!(comparison.label, "the previous 2 weeks");
    assert!(
        comparison.incidents > 0,
        "the week before the period is in the history"
    );

    // The charts' series are the tables' figures.
    assert_eq!(report.weeks.len(), 2);
    for w in &report.weeks {
        let stacked: usize = w.by_severity.iter().map(|(_, n)| n).sum();
        assert_eq!(stacked, w.ids.len());
        assert_eq!(w.mean_times.incidents, w.ids.len());
        let trend = report.trend.iter().find(|(k, _)| *k == w.week);
        match trend {
            Some((_, m)) => assert_eq!(m, &w.mean_times),
            None => assert!(w.ids.is_empty()),
        }
    }
    for (list, pairs) in [
        (&report.root_causes, &report.by_root_cause),
        (&report.services, &report.by_service),
    ] {
        let drawn: Vec<(String, usize)> =
            list.iter().map(|b| (b.name.clone(), b.incidents)).collect();
        assert_eq!(&drawn, pairs);
        assert_eq!(
            list.iter().map(|b| b.ids.len()).sum::<usize>(),
            report.incidents.len()
        );
    }
    let html = firebreak_reports::summit::render(&report, Format::Html);
    for b in &report.root_causes {
        // Each bar is labelled with its value, as the table says it.
        assert!(
            html.contains(&format!(">{}</text>", b.incidents))
                && html.contains(&format!(">{}</text>", b.minutes)),
            "{b:?}"
        );
    }
    assert_eq!(report.takeaways.len(), 5, "{:?}", report.takeaways);

    // Printed on A4 and on Letter: several pages, every section and takeaway on them.
    let print_dir = tempfile::tempdir().unwrap();
    for paper in ["A4", "letter"] {
        let (pages, text) = printed(print_dir.path(), &html, paper);
        assert!((3..=12).contains(&pages), "{pages} pages on {paper}");
        let text = words(&text);
        let doc = firebreak_reports::summit::doc(&report);
        for block in &doc.blocks {
            if let firebreak_reports::doc::Block::Heading(h) = block {
                assert!(
                    text.contains(h.as_str()),
                    "{paper}: the heading {h:?} is missing"
                );
            }
        }
        for t in &report.takeaways {
            assert!(
                text.contains(&words(&t.text)),
                "{paper}: the takeaway {:?} is missing",
                t.text
            );
        }
        // The charts print as vector text: their axis labels are in the PDF.
        for w in &report.weeks {
            assert!(
                text.contains(&w.week),
                "{paper}: the week {} is missing",
                w.week
            );
        }
    }

    let mut settings = insta::Settings::clone_current();
    settings.add_filter(
        r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        "[uuid]",
    );
    settings.bind(|| {
        insta::assert_snapshot!(
            "summit-history.md",
            firebreak_reports::summit::render(&report, Format::Markdown)
        );
        insta::assert_snapshot!("summit-history.html", html);
        insta::assert_snapshot!(
            "summit-history.json",
            firebreak_reports::summit::render(&report, Format::Json)
        );
    });
}

/// Prints `html` to PDF on `paper` (A4, letter) in headless Chromium; returns the page
/// count and the text (pdftotext).
fn printed(dir: &Path, html: &str, paper: &str) -> (usize, String) {
    let page = dir.join(format!("summit-{paper}.html"));
    let pdf = dir.join(format!("summit-{paper}.pdf"));
    let sized = html.replacen(
        "</head>",
        &format!("<style>@page{{size:{paper}}}</style></head>"),
        1,
    );
    std::fs::write(&page, sized).unwrap();
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-pdf-header-footer",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.join("chromium").display()
        ))
        .arg(format!("--print-to-pdf={}", pdf.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium (apt install chromium; .ci/deps.sh --test installs it)");
    assert!(
        pdf.exists(),
        "chromium printed no PDF: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info = Command::new("pdfinfo").arg(&pdf).output().unwrap();
    let info = String::from_utf8_lossy(&info.stdout).into_owned();
    let pages = info
        .lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no page count in {info}"));
    let text = Command::new("pdftotext")
        .arg(&pdf)
        .arg("-")
        .output()
        .unwrap();
    (pages, String::from_utf8_lossy(&text.stdout).into_owned())
}

fn words(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn finished_err(child: std::process::Child) -> String {
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "a second history was recorded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}
