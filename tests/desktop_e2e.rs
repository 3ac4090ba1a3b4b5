//! The real console window under a display (Xvfb in CI), driven through tauri-driver.
//! `make test` runs these under xvfb-run; they need tauri-driver and WebKitWebDriver.
#![allow(clippy::unwrap_used)] // a panic is how a test fails

use firebreak_test_support as support;

use std::path::Path;

use support::webdriver::Driver;

/// Two WebKitWebDriver sessions at once interfere with each other: one window at a time.
static ONE_WINDOW: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn app() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_firebreak"))
}

#[tokio::test(flavor = "multi_thread")]
async fn console_frame_and_empty_state_render() {
    let _window = ONE_WINDOW.lock().await;
    let data = tempfile::tempdir().unwrap();
    let driver = Driver::start().await;
    let session = driver
        .session(
            app(),
            &["--data-dir".into(), data.path().display().to_string()],
        )
        .await;

    // The three parts of the frame: status bar, incident list, detail pane.
    let bar = session.wait_for("[data-testid=status-bar]").await;
    assert!(
        session.text(&bar).await.contains("No cluster connected"),
        "status bar with no cluster"
    );
    let empty = session.wait_for("[data-testid=incidents-empty]").await;
    let empty_text = session.text(&empty).await;
    // The empty state must tell a new user what to do next, not just "nothing here".
    assert!(empty_text.contains("No incidents"), "{empty_text}");
    assert!(
        empty_text.contains("cluster"),
        "the empty state explains connecting a cluster: {empty_text}"
    );
    session.wait_for("[data-testid=detail-empty]").await;
    assert_eq!(session.title().await, "Firebreak");

    // The window really talks to its store: open an incident, see it listed and timed.
    session.click_on(".pane-head button").await;
    session
        .type_on(".dialog input", "Checkout latency p99 over 2 s")
        .await;
    session.click_on(".dialog button[type=submit]").await;
    let row = session.wait_for("[data-testid=incident-row]").await;
    session.screenshot("incident-opened").await;
    let row_text = session.text(&row).await;
    assert!(
        row_text.contains("Checkout latency p99 over 2 s"),
        "row: {row_text}"
    );
    let timeline = session.wait_for("[data-testid=timeline] .entry").await;
    assert!(session.text(&timeline).await.contains("Opened by hand"));

    // Acknowledge, and add a note: both land on the timeline with the author.
    session.click_on("[data-testid=advance-status]").await;
    session
        .wait_for("[data-testid=timeline] .kind-status_changed")
        .await;
    session
        .type_on(
            "textarea[aria-label=Note]",
            "Paged the checkout owner; p99 started at 03:12",
        )
        .await;
    session.click_on(".note button[type=submit]").await;
    let added = session.wait_for("[data-testid=timeline] .kind-note").await;
    assert!(session
        .text(&added)
        .await
        .contains("Paged the checkout owner"));
    session.screenshot("console").await;

    // A second launch on the same data dir opens no second window: it brings this one
    // forward and exits (two windows on one store would drive its actions twice).
    let mut second = std::process::Command::new(app())
        .args(["--data-dir"])
        .arg(data.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = second.kill();
            panic!("the second launch did not exit: it opened a second window");
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let mut said = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut said).unwrap();
    assert!(status.success(), "{said}");
    assert!(said.contains("already open"), "{said}");

    // One long word in a title (no spaces) wraps; it never pushes the layout sideways.
    session.click_on(".pane-head button").await;
    session.type_on(".dialog input", &"x".repeat(200)).await;
    session.click_on(".dialog button[type=submit]").await;
    // The new incident opens in the detail pane.
    let mut shown = false;
    for _ in 0..100 {
        let len = session
            .execute(
                "return document.querySelector('.incident-head h1')?.textContent.length ?? 0;",
                serde_json::json!([]),
            )
            .await;
        if len.as_u64() == Some(200) {
            shown = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(shown, "the incident with the long title is shown");
    let widths = session
        .execute(
            "const h = document.querySelector('.incident-head h1'); \
             return { page: document.documentElement.scrollWidth, view: document.documentElement.clientWidth, \
                      title: h.getBoundingClientRect().right };",
            serde_json::json!([]),
        )
        .await;
    let (page, view, title) = (
        widths["page"].as_f64().unwrap(),
        widths["view"].as_f64().unwrap(),
        widths["title"].as_f64().unwrap(),
    );
    assert!(
        page <= view,
        "a long title made the page scroll sideways: {widths}"
    );
    assert!(title <= view, "the title runs off the window: {widths}");
    session.screenshot("long-title").await;

    session.close().await;
    // The incident reached the SQLite file, not only the page.
    let out = std::process::Command::new(app())
        .args(["incidents", "--json", "--data-dir"])
        .arg(data.path())
        .output()
        .unwrap();
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed[0]["title"], "Checkout latency p99 over 2 s");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_it_cannot_open_is_shown_not_touched() {
    let _window = ONE_WINDOW.lock().await;
    let data = tempfile::tempdir().unwrap();
    let db = data.path().join("firebreak.db");
    std::fs::write(&db, b"not a database".repeat(300)).unwrap();
    let before = std::fs::read(&db).unwrap();
    let driver = Driver::start().await;
    let session = driver
        .session(
            app(),
            &["--data-dir".into(), data.path().display().to_string()],
        )
        .await;
    let err = session.wait_for("[data-testid=store-error]").await;
    let text = session.text(&err).await;
    assert!(text.contains("cannot open its database"), "{text}");
    session.close().await;
    assert_eq!(
        std::fs::read(&db).unwrap(),
        before,
        "the unreadable file must be left as it was"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_mode_opens_an_incident_with_its_triggering_events() {
    let _window = ONE_WINDOW.lock().await;
    let data = tempfile::tempdir().unwrap();
    let driver = Driver::start().await;
    // The demo at ten simulated seconds per second: the bad rollout begins within a second.
    let session = driver
        .session(
            app(),
            &[
                "--demo".into(),
                "--demo-speed".into(),
                "10".into(),
                "--data-dir".into(),
                data.path().display().to_string(),
            ],
        )
        .await;
    let status = session.wait_for("[data-testid=cluster-status]").await;
    assert!(
        session.text(&status).await.contains("demo"),
        "the demo cluster is in the status bar"
    );
    let row = session.wait_for("[data-testid=incident-row]").await;
    assert!(
        session.text(&row).await.contains("llm-assistant"),
        "the incident is about the service rolled out"
    );
    session.click(&row).await;
    // The timeline shows what led up to it: the rollout, and the signals.
    session.wait_for("[data-testid=timeline] .kind-event").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let timeline = session.wait_for("[data-testid=timeline]").await;
    loop {
        let text = session.text(&timeline).await;
        if text.contains("Rollout started") && text.contains("HighErrorRate firing") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timeline lacks the triggering events:\n{text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    let status_text = session.text(&status).await;
    assert!(
        status_text.contains("live"),
        "the stream is live: {status_text}"
    );
    // The window's title names the incident on screen (read as the window manager sees it).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let out = std::process::Command::new("xdotool")
            .args(["search", "--name", "^#1 .*llm-assistant.* — Firebreak$"])
            .output()
            .expect("xdotool");
        if !out.stdout.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no window titled after incident #1"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    session.screenshot("demo").await;
    session.close().await;
}

/// Waits until the element's text satisfies `ok`, or fails with the last text seen.
async fn wait_text(
    session: &support::webdriver::Session,
    element: &str,
    what: &str,
    ok: impl Fn(&str) -> bool,
) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let text = session.text(element).await;
        if ok(&text) {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}; last seen:\n{text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
}

/// [`wait_text`] on whatever element matches `css` at each try (one the page replaces
/// as it changes, like a verdict that goes from "after the first wave" to its sentence).
async fn wait_css_text(
    session: &support::webdriver::Session,
    css: &str,
    what: &str,
    ok: impl Fn(&str) -> bool,
) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let element = session.wait_for(css).await;
        let text = session.text(&element).await;
        if ok(&text) {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}; last seen:\n{text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_added_in_the_window_streams_into_the_feed_and_keeps_its_token_in_the_keychain() {
    let _window = ONE_WINDOW.lock().await;
    const SECRET: &str = "e2e-cluster-token-5d1f";
    let s = support::cluster::sim("steady", 1.0, |o| {
        o.token = SECRET.into();
        o.faults.malformed = 0.05;
    })
    .await;
    let data = tempfile::tempdir().unwrap();
    let args = ["--data-dir".to_string(), data.path().display().to_string()];
    let driver = Driver::start().await;
    let session = driver.session(app(), &args).await;

    // Clusters view: add one, with its token.
    session.click_on("[data-testid=tab-settings]").await;
    session.click_on("[data-testid=add-cluster]").await;
    session
        .type_on("[data-testid=cluster-name]", "staging")
        .await;
    for (field, value) in [
        ("cluster-events-url", s.events_url()),
        ("cluster-actions-url", s.actions_url()),
    ] {
        let input = session.wait_for(&format!("[data-testid={field}]")).await;
        session.clear(&input).await;
        session.type_into(&input, &value).await;
    }
    let token = session.wait_for("[data-testid=cluster-token]").await;
    session.type_into(&token, SECRET).await;
    session.click_on("[data-testid=cluster-save]").await;
    let row = session.wait_for("[data-testid=cluster-row]").await;
    wait_text(&session, &row, "the cluster goes live", |t| {
        t.contains("staging") && t.contains("live") && t.contains("saved in keychain")
    })
    .await;

    // Events view: the stream arrives; search finds by word; a row opens its raw event.
    session.click_on("[data-testid=tab-events]").await;
    let list = session.wait_for("[data-testid=feed-list]").await;
    wait_text(&session, &list, "events in the feed", |t| {
        t.contains("staging")
    })
    .await;
    session
        .type_on("[data-testid=feed-search]", "metrics")
        .await;
    wait_text(&session, &list, "search results", |t| {
        t.contains("service.metrics")
    })
    .await;
    session.click_on("[data-testid=feed-row]").await;
    let raw = session.wait_for("[data-testid=raw-event]").await;
    let raw_text = session.text(&raw).await;
    assert!(raw_text.contains("\"specversion\": \"1.0\""), "{raw_text}");
    session.screenshot("events").await;

    // Diagnostics: the malformed frames the cluster sent are listed with their reason.
    session.click_on("[data-testid=tab-diagnostics]").await;
    let quarantine = session.wait_for("[data-testid=quarantine]").await;
    let q = session.text(&quarantine).await;
    assert!(q.contains("staging") && q.contains("not"), "{q}");
    session.screenshot("diagnostics").await;
    session.close().await;
    // The window closes after the session ends; a new start before it has would find it
    // still holding the data dir and only bring it to the front.
    window_closed(data.path()).await;

    // The token went to the keychain, not to the store.
    for file in ["firebreak.db", "firebreak.db-wal"] {
        let bytes = std::fs::read(data.path().join(file)).unwrap_or_default();
        assert!(
            !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
            "{file} holds the token"
        );
    }

    // A new start reads the token back from the keychain and watches the cluster again.
    let session = driver.session(app(), &args).await;
    let status = session.wait_for("[data-testid=cluster-status]").await;
    wait_text(&session, &status, "the cluster live after a restart", |t| {
        t.contains("staging") && t.contains("live")
    })
    .await;

    // Removing it stops the stream; what was recorded stays in the feed.
    session.click_on("[data-testid=tab-settings]").await;
    session.click_on("[data-testid=remove-cluster]").await;
    session.click_on("[data-testid=confirm-remove]").await;
    session.wait_for("[data-testid=clusters-empty]").await;
    session.close().await;
    s.shutdown();
}

/// Answers the native confirmation dialog the way a person at the keyboard would: focus
/// it and press its button's mnemonic (Alt+R for "_Roll back", Escape to cancel).
/// Waits until no window holds `data`: the single-instance lock in it is free.
async fn window_closed(data: &Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let lock = std::fs::File::open(data.join("console.lock")).expect("console.lock");
    loop {
        match lock.try_lock() {
            Ok(()) => return lock.unlock().unwrap(),
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(e)) => panic!("console.lock: {e}"),
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the window on {} did not close",
            data.display()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// The titles of the windows on the display, to say what was there instead.
fn window_titles() -> Vec<String> {
    let out = std::process::Command::new("xdotool")
        .args(["search", "--onlyvisible", "--name", "."])
        .output()
        .expect("xdotool (apt install xdotool)");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|id| {
            let name = std::process::Command::new("xdotool")
                .args(["getwindowname", id])
                .output()
                .ok()?;
            Some(String::from_utf8_lossy(&name.stdout).trim().to_owned())
        })
        .collect()
}

fn answer_dialog(title_part: &str, keys: &str) {
    // A minute, as for the WebDriver's answers: a native dialog on a loaded two-core
    // machine can take a while to be mapped, while one that never comes still fails.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let ok = |args: &[&str]| {
        std::process::Command::new("xdotool")
            .args(args)
            .status()
            .expect("xdotool (apt install xdotool)")
            .success()
    };
    // Found by its title, then focused; a dialog found while it is still being mapped
    // refuses the focus, so both are tried again until it takes it.
    loop {
        let out = std::process::Command::new("xdotool")
            .args(["search", "--name", title_part])
            .output()
            .expect("xdotool (apt install xdotool)");
        let found = String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .map(str::to_owned);
        if let Some(id) = found {
            if ok(&["windowfocus", "--sync", &id]) {
                break;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no dialog titled {title_part:?} took the focus; the windows shown: {:?}",
            window_titles()
        );
        std::process::Command::new("sleep")
            .arg("0.2")
            .status()
            .unwrap();
    }
    assert!(ok(&["key", "--clearmodifiers", keys]), "press {keys}");
}

/// Types a full path into a native save dialog and saves, as a person at the keyboard.
fn save_dialog_as(title_part: &str, path: &Path) {
    answer_dialog(title_part, "ctrl+a");
    let typed = std::process::Command::new("xdotool")
        .args(["type", "--delay", "20"])
        .arg(path)
        .status()
        .unwrap();
    assert!(typed.success());
    let enter = std::process::Command::new("xdotool")
        .args(["key", "Return"])
        .status()
        .unwrap();
    assert!(enter.success());
}

/// Writes quick action settings (short grace and verification) into a fresh data dir.
async fn quick_actions(data: &Path) {
    let store = firebreak_store::Store::open(&data.join("firebreak.db"))
        .await
        .unwrap();
    firebreak_engine::actions::ActionSettings {
        grace_s: 1,
        // Long enough that, on a loaded machine, the samples after a rollback have been
        // recorded before the verdict reads the last of them.
        verify_window_s: 10,
        ..Default::default()
    }
    .save(&store)
    .await
    .unwrap();
    store.close().await;
}

/// The demo at ten times real speed, on `data`, with `more` arguments.
async fn demo_window(driver: &Driver, data: &Path, more: &[String]) -> support::webdriver::Session {
    let mut args = vec![
        "--demo".into(),
        "--demo-speed".into(),
        "10".into(),
        "--data-dir".into(),
        data.display().to_string(),
    ];
    args.extend_from_slice(more);
    driver.session(app(), &args).await
}

/// Opens the demo, waits for its incident and opens it.
async fn demo_incident(driver: &Driver, data: &Path) -> support::webdriver::Session {
    let session = demo_window(driver, data, &[]).await;
    session.click_on("[data-testid=incident-row]").await;
    // Let a few waves of the bad rollout land, so the rollback has something to heal.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    session
}

#[tokio::test(flavor = "multi_thread")]
async fn one_rollback_clicked_through_in_the_window_is_verified_on_the_timeline() {
    let _window = ONE_WINDOW.lock().await;
    let data = tempfile::tempdir().unwrap();
    quick_actions(data.path()).await;
    let driver = Driver::start().await;
    let session = demo_incident(&driver, data.path()).await;

    session.click_on("[data-testid=propose-rollback]").await;
    let preview = session.wait_for("[data-testid=action-preview]").await;
    let text = session.text(&preview).await;
    assert!(
        text.contains("revision 42") && text.contains("revision 41"),
        "{text}"
    );
    assert!(text.contains("expected_revision = 42"), "{text}");
    session
        .type_on(
            "[data-testid=action-reason]",
            "errors climb with every wave of 42",
        )
        .await;
    session
        .type_on("[data-testid=action-typed]", "llm-assistant")
        .await;
    session.screenshot("action-preview").await;
    session.click_on("[data-testid=action-confirm]").await;
    answer_dialog("Confirm: Roll", "alt+r");

    let panel = session.wait_for("[data-testid=actions-panel]").await;
    wait_text(&session, &panel, "the verification verdict", |t| {
        t.contains("RECOVERED") || t.contains("recovered")
    })
    .await;
    let timeline = session.wait_for("[data-testid=timeline]").await;
    let steps = wait_text(&session, &timeline, "the verification entry", |t| {
        t.contains("Recovered: llm-assistant")
    })
    .await;
    for step in [
        "Proposed:",
        "Confirmed by",
        "Sent to the cluster",
        "Succeeded:",
    ] {
        assert!(
            steps.contains(step),
            "no {step:?} on the timeline:\n{steps}"
        );
    }
    session.screenshot("action-verified").await;
    session.close().await;
}

/// The engineer pauses the bad rollout from the Fleet board, through the incident's
/// preview and the system dialog, and the waves stop: the window shows it paused, no wave
/// lands while two more wave intervals pass, and the board says who paused it.
#[tokio::test(flavor = "multi_thread")]
async fn a_bad_rollout_paused_in_the_window_stops_its_waves() {
    let _window = ONE_WINDOW.lock().await;
    let data = tempfile::tempdir().unwrap();
    quick_actions(data.path()).await;
    let scenario = support::cluster::slow_bad_rollout(data.path(), 8);
    let driver = Driver::start().await;
    let session = demo_window(&driver, data.path(), &["--demo-scenario".into(), scenario]).await;
    session.click_on("[data-testid=incident-row]").await;
    let levers = session.wait_for("[data-testid=rollout-levers]").await;
    wait_text(&session, &levers, "the rollout running", |t| {
        t.contains("RUNNING") || t.contains("running")
    })
    .await;
    // From the Fleet board: its Pause proposes through the incident and opens it.
    session.click_on("[data-testid=tab-fleet]").await;
    let board = session.wait_for("[data-testid=fleet-rollout]").await;
    let text = session.text(&board).await;
    assert!(text.contains("r41 → r42"), "{text}");
    // The canary verdict on the board, judged from what the window recorded: revision 42
    // fails at wave 1 against revision 41, said in one sentence.
    let verdict = wait_css_text(
        &session,
        "[data-testid=fleet-verdict]",
        "the canary verdict",
        |t| t.contains("Revision 42 fails"),
    )
    .await;
    assert!(verdict.contains("on revision 41"), "{verdict}");
    session.screenshot("fleet-rollout").await;
    session.click_on("[data-testid=fleet-pause]").await;
    let preview = session.wait_for("[data-testid=action-preview]").await;
    let text = session.text(&preview).await;
    assert!(
        text.contains("Pause the rollout of llm-assistant-serving to revision 42"),
        "{text}"
    );
    assert!(text.contains("no further waves"), "{text}");
    session
        .type_on("[data-testid=action-reason]", "errors climb with each wave")
        .await;
    session.screenshot("pause-preview").await;
    session.click_on("[data-testid=action-confirm]").await;
    answer_dialog("Confirm: Pause", "alt+p");

    let levers = session.wait_for("[data-testid=rollout-levers]").await;
    let paused = wait_text(&session, &levers, "the rollout paused", |t| {
        t.contains("PAUSED") || t.contains("paused")
    })
    .await;
    let waves = |t: &str| {
        t.split("Wave ")
            .nth(1)
            .and_then(|w| w.split(' ').next())
            .map(str::to_owned)
    };
    let at_pause = waves(&paused).expect("the wave shown");
    // Two wave intervals (120 simulated seconds) later, still the same wave.
    tokio::time::sleep(std::time::Duration::from_secs(12)).await;
    let levers = session.wait_for("[data-testid=rollout-levers]").await;
    let later = session.text(&levers).await;
    assert_eq!(waves(&later).as_deref(), Some(at_pause.as_str()), "{later}");
    let timeline = session.wait_for("[data-testid=timeline]").await;
    wait_text(&session, &timeline, "the pause on the timeline", |t| {
        t.contains("Succeeded: Pause the rollout")
    })
    .await;
    session.screenshot("rollout-paused").await;
    // The board says who paused it.
    session.click_on("[data-testid=tab-fleet]").await;
    let board = session.wait_for("[data-testid=fleet-rollout]").await;
    wait_text(&session, &board, "the board showing the pause", |t| {
        t.contains("paused by")
    })
    .await;
    session.close().await;
}

/// The engineer sets llm-assistant to *pause on fail* in Settings (a reason, and the system
/// dialog approves it) before its model rolls out; when the canary verdict fails at wave
/// 1, the console opens the incident and pauses the rollout by itself through the desk:
/// the verdict and the policy with who approved it, and every step of the pause, are on
/// the timeline and in the audit log, and the waves stop at wave 1.
#[tokio::test(flavor = "multi_thread")]
async fn a_pause_on_fail_guard_stops_the_bad_model_rollout_at_wave_1() {
    let _window = ONE_WINDOW.lock().await;
    let data = tempfile::tempdir().unwrap();
    quick_actions(data.path()).await;
    // The rollout starts 40 simulated seconds in (4 s at ten times real speed): time to
    // set the guard once the service has been recorded.
    let scenario = support::cluster::slow_bad_rollout(data.path(), 8);
    let text = std::fs::read_to_string(&scenario)
        .unwrap()
        .replace("at = 10\n", "at = 40\n");
    std::fs::write(&scenario, text).unwrap();
    let driver = Driver::start().await;
    let session = demo_window(&driver, data.path(), &["--demo-scenario".into(), scenario]).await;
    session.click_on("[data-testid=tab-fleet]").await;
    let board = session.wait_for("[data-testid=fleet]").await;
    wait_text(&session, &board, "llm-assistant on the board", |t| {
        t.contains("llm-assistant")
    })
    .await;
    session.click_on("[data-testid=tab-settings]").await;
    let row = "[data-testid=guard-row][data-service=llm-assistant]";
    let shown = session.wait_for(row).await;
    let text = session.text(&shown).await;
    assert!(text.contains("recommends pause on fail"), "{text}");
    session
        .click_on(&format!("{row} [data-testid=guard-pause_on_fail]"))
        .await;
    session
        .type_on(
            "[data-testid=guard-reason]",
            "canaries of this model fail fast",
        )
        .await;
    session.click_on("[data-testid=guard-save]").await;
    answer_dialog("Approve pause on fail", "alt+a");
    let approved = wait_css_text(
        &session,
        &format!("{row} [data-testid=guard-approval]"),
        "the approval",
        |t| t.contains("approved by"),
    )
    .await;
    assert!(
        approved.contains("canaries of this model fail fast"),
        "{approved}"
    );
    session.screenshot("rollout-guard").await;

    // The guard writes on the service's incident (opening one if the rules have not) and
    // pauses at wave 1, with no one clicking.
    session.click_on("[data-testid=tab-incidents]").await;
    wait_css_text(
        &session,
        "[data-testid=incident-row]",
        "an incident on llm-assistant",
        |t| t.contains("llm-assistant"),
    )
    .await;
    session.click_on("[data-testid=incident-row]").await;
    let timeline = session.wait_for("[data-testid=timeline]").await;
    let steps = wait_text(&session, &timeline, "the pause on the timeline", |t| {
        t.contains("Succeeded: Pause the rollout")
    })
    .await;
    for step in [
        "Canary verdict at wave 1 of 8: Revision 42 fails",
        "Rollout guard of llm-assistant: pause on fail, approved by",
        "canaries of this model fail fast",
        "Confirmed by rollout guard",
        "Sent to the cluster",
    ] {
        assert!(
            steps.contains(step),
            "no {step:?} on the timeline:\n{steps}"
        );
    }
    let levers = session.wait_for("[data-testid=rollout-levers]").await;
    let paused = wait_text(&session, &levers, "the rollout paused", |t| {
        t.contains("PAUSED") || t.contains("paused")
    })
    .await;
    assert!(paused.contains("Wave 1 "), "paused at wave 1: {paused}");
    session.screenshot("rollout-guard-paused").await;
    session.close().await;
    window_closed(data.path()).await;

    // The audit log: the policy with who approved it, and the guard's confirmation.
    let store = firebreak_store::Store::open(&data.path().join("firebreak.db"))
        .await
        .unwrap();
    let audit = store.audit_records(None).await.unwrap();
    let policy: Vec<_> = audit.iter().filter(|r| r.what == "rollout_guard").collect();
    assert_eq!(policy.len(), 1, "{policy:?}");
    assert!(policy[0].subject.ends_with("/llm-assistant"), "{policy:?}");
    assert!(policy[0].detail.contains("pause_on_fail"), "{policy:?}");
    assert!(
        audit
            .iter()
            .any(|r| r.actor == "rollout guard" && r.subject.starts_with("action/")),
        "the guard's confirmation is audited"
    );
    assert!(store.verify_audit().await.unwrap().first_bad.is_none());
    store.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn script_in_the_page_cannot_complete_a_rollback() {
    let _window = ONE_WINDOW.lock().await;
    let data = tempfile::tempdir().unwrap();
    quick_actions(data.path()).await;
    let driver = Driver::start().await;
    let session = demo_incident(&driver, data.path()).await;

    // Injected script calls the IPC commands directly, as an XSS would.
    let proposed = session
        .execute(
            "const done = arguments[arguments.length - 1];
             const invoke = window.__TAURI_INTERNALS__.invoke;
             return invoke('list_incidents')
               .then(list => invoke('propose_action', { incidentId: list[0].id, kind: 'rollback' }))
               .then(a => { window.__confirm = invoke('confirm_action', { id: a.id, reason: 'xss', typedName: 'llm-assistant' })
                              .then(r => 'confirmed ' + r.state, e => 'refused ' + e.message);
                            return a.id; });",
            serde_json::json!([]),
        )
        .await;
    let id = proposed
        .as_str()
        .unwrap_or_else(|| panic!("proposal: {proposed}"))
        .to_owned();
    // The confirmation waits on a native dialog that script cannot reach: nothing is sent.
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let store = firebreak_store::Store::open(&data.path().join("firebreak.db"))
        .await
        .unwrap();
    let action = store.action(&id).await.unwrap();
    assert_eq!(
        action.state,
        firebreak_store::actions::ActionState::Proposed,
        "script alone moved the action on"
    );
    // Nor can script answer the dialog through the dialog plugin: the page has no grant.
    let answered = session
        .execute(
            "return window.__TAURI_INTERNALS__.invoke('plugin:dialog|message', { message: 'x' })
               .then(() => 'allowed', e => 'denied: ' + e);",
            serde_json::json!([]),
        )
        .await;
    assert!(
        answered.as_str().unwrap_or_default().starts_with("denied"),
        "{answered}"
    );
    // The person at the screen says no: still nothing sent.
    answer_dialog("Confirm: Roll", "Escape");
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let action = store.action(&id).await.unwrap();
    assert_eq!(
        action.state,
        firebreak_store::actions::ActionState::Proposed
    );
    store.close().await;
    session.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_runbook_walked_through_in_the_window_ends_with_the_incident_mitigated() {
    let _window = ONE_WINDOW.lock().await;
    let data = tempfile::tempdir().unwrap();
    quick_actions(data.path()).await;
    let driver = Driver::start().await;
    let session = demo_incident(&driver, data.path()).await;

    // The matching runbook, with why; start it.
    let panel = session.wait_for("[data-testid=runbook-panel]").await;
    wait_text(&session, &panel, "the matching runbook", |t| {
        t.contains("A new model version makes a service fail") && t.contains("Matched because")
    })
    .await;
    session.click_on("[data-testid=runbook-start]").await;

    // The first step would pause the rollout (another test's subject): skipped, saying why.
    session.click_on("[data-testid=runbook-skip-open]").await;
    session
        .type_on(
            "[data-testid=runbook-skip-reason]",
            "the rollout is nearly done",
        )
        .await;
    session.click_on("[data-testid=runbook-skip]").await;

    // The next check asks for a finding.
    session
        .type_on(
            "[data-testid=runbook-finding]",
            "errors rose with wave 1 of revision 42",
        )
        .await;
    session.click_on("[data-testid=runbook-done]").await;

    // The query and the branch run by themselves (waited for on the timeline, so a run
    // that took the other branch says what it saw); the rollback step proposes the action,
    // which is confirmed through the same preview and system dialog as the buttons.
    let timeline = session.wait_for("[data-testid=timeline]").await;
    wait_text(
        &session,
        &timeline,
        "the branch to choose the rollback",
        |t| t.contains("step correlate: done") && t.contains("step decide:"),
    )
    .await;
    session.click_on("[data-testid=runbook-propose]").await;
    session
        .type_on("[data-testid=action-reason]", "runbook step: roll back")
        .await;
    session
        .type_on("[data-testid=action-typed]", "llm-assistant")
        .await;
    session.click_on("[data-testid=action-confirm]").await;
    answer_dialog("Confirm: Roll", "alt+r");

    // Once verified, the run moves to the last check. Verification watches the service for
    // its window after the rollback succeeds: wait for its outcome on the timeline (longer
    // than an element's wait, on a loaded machine) and fail with what it said.
    wait_css_text(
        &session,
        "[data-testid=timeline]",
        "the rollback step's outcome",
        |t| t.contains("step rollback:"),
    )
    .await;
    session
        .type_on(
            "[data-testid=runbook-finding]",
            "posted in #assistant-models",
        )
        .await;
    session.click_on("[data-testid=runbook-done]").await;
    let run = session.wait_for("[data-testid=runbook-run]").await;
    wait_text(&session, &run, "the finished run", |t| {
        t.contains("finished")
    })
    .await;
    session.screenshot("runbook").await;
    let timeline = session.wait_for("[data-testid=timeline]").await;
    let text = wait_text(&session, &timeline, "the runbook on the timeline", |t| {
        t.contains("The runbook is complete.")
    })
    .await;
    for step in [
        "Started runbook",
        "step correlate: done. Finding: errors rose",
        "step error-rate:",
        "step decide:",
        "step rollback:",
        "Status open → mitigated",
    ] {
        assert!(text.contains(step), "no {step:?} on the timeline:\n{text}");
    }
    session.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_review_in_the_window_lands_in_the_exported_reports() {
    let _window = ONE_WINDOW.lock().await;
    let data = tempfile::tempdir().unwrap();
    let driver = Driver::start().await;
    let session = demo_incident(&driver, data.path()).await;

    // Review mode: the figures with their definitions, the chart, the whole timeline.
    session.click_on("[data-testid=review-mode]").await;
    let figures = session.wait_for("[data-testid=review-figures]").await;
    assert!(session
        .text(&figures)
        .await
        .contains("from impact began to the incident being detected"));
    session.wait_for("[data-testid=review-chart] svg").await;
    session
        .wait_for("[data-testid=review-timeline] .entry")
        .await;

    // Annotate the first entry, then move a moment to it; file the root cause; name a
    // factor; add a follow-up.
    session
        .click_on("[data-testid=review-timeline] .entry .entry-hit")
        .await;
    session
        .click_on("[data-testid=review-timeline] .entry.selected .annotate-link")
        .await;
    session
        .type_on(
            "[data-testid=review-timeline] input[aria-label=Annotation]",
            "<b>first</b> sign, seen by the canary",
        )
        .await;
    session
        .click_on("[data-testid=review-timeline] .annotate button[type=submit]")
        .await;
    session.wait_for("[data-testid=annotation]").await;
    // Move impact began to the selected entry's time, with a reason.
    session
        .click_on("[data-testid=moment-impact_began] button")
        .await;
    session
        .type_on(
            "[data-testid=moment-impact_began] input[aria-label=Reason]",
            "users reported errors before the alert",
        )
        .await;
    session
        .click_on("[data-testid=moment-impact_began] .moment-form button.link")
        .await;
    session
        .click_on("[data-testid=moment-impact_began] button[type=submit]")
        .await;
    let edit = session.wait_for("[data-testid=moment-edit]").await;
    assert!(session
        .text(&edit)
        .await
        .contains("users reported errors before the alert"));
    session
        .click_on("[data-testid=root-cause] option[value='bad model version']")
        .await;
    session
        .type_on(
            "input[aria-label='Contributing factor']",
            "no canary for model weights\u{E007}",
        )
        .await;
    wait_text(
        &session,
        &session.wait_for("[data-testid=factors]").await,
        "the factor is listed",
        |t| t.contains("no canary for model weights"),
    )
    .await;
    session
        .type_on(
            "input[aria-label=Follow-up]",
            "Canary every model weight push",
        )
        .await;
    session
        .type_on("input[aria-label=Owner]", "bo\u{E007}")
        .await;
    wait_text(
        &session,
        &session.wait_for("[data-testid=follow-ups]").await,
        "the follow-up is listed",
        |t| t.contains("Canary every model weight push"),
    )
    .await;
    session.screenshot("review").await;

    // The exported report says all of it, and the annotation's markup stays text.
    session.click_on("[data-testid=export-report]").await;
    let target = data.path().join("exported-report.html");
    save_dialog_as("Export incident report", &target);
    let saved = session.wait_for("[data-testid=exported]").await;
    assert!(session.text(&saved).await.contains("exported-report.html"));
    let html = std::fs::read_to_string(&target).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("<svg"));
    for said in [
        "Root cause: bad model version.",
        "no canary for model weights",
        "Canary every model weight push",
        "moved in review by",
        "users reported errors before the alert",
        "&lt;b&gt;first&lt;/b&gt; sign, seen by the canary",
    ] {
        assert!(html.contains(said), "the report lacks {said:?}");
    }

    // The summit, from the app, of this incident.
    session
        .click(&session.wait_for("[data-testid=open-summit]").await)
        .await;
    session
        .click_on("[data-testid=summit-dialog] input[type=radio][value=incidents]")
        .await;
    session
        .click_on("[data-testid=summit-dialog] .pick input[type=checkbox]")
        .await;
    session
        .click(&session.wait_for("[data-testid=summit-export]").await)
        .await;
    let summit = data.path().join("summit.html");
    save_dialog_as("Export summit report", &summit);
    session.wait_for("[data-testid=summit-saved]").await;
    let html = std::fs::read_to_string(&summit).unwrap();
    for said in [
        "1 chosen incidents",
        "bad model version",
        "Canary every model weight push",
    ] {
        assert!(html.contains(said), "the summit lacks {said:?}");
    }
    session.close().await;
}

/// The window as the window manager sees it: (x, y, width, height) of the app's window
/// titled Firebreak (GTK's 10×10 client leader, "firebreak", left out).
fn window_geometry(pid: u32) -> Option<(i32, i32, i32, i32)> {
    let out = std::process::Command::new("xdotool")
        .args(["search", "--pid", &pid.to_string(), "--name", "Firebreak"])
        .output()
        .ok()?;
    for id in String::from_utf8_lossy(&out.stdout).lines() {
        let geo = std::process::Command::new("xdotool")
            .args(["getwindowgeometry", "--shell", id])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&geo.stdout).to_string();
        let field = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .and_then(|v| v.parse::<i32>().ok())
        };
        let (x, y, w, h) = (field("X")?, field("Y")?, field("WIDTH")?, field("HEIGHT")?);
        if w > 100 {
            return Some((x, y, w, h));
        }
    }
    None
}

/// The window's place and size are remembered per data dir: moved and resized, the
/// console stopped by SIGTERM (as a logout does: it closes as its close button would),
/// the next launch opens where it was left.
#[tokio::test(flavor = "multi_thread")]
async fn the_window_opens_where_it_was_left() {
    let _window = ONE_WINDOW.lock().await;
    let data = tempfile::tempdir().unwrap();
    let launch = || {
        std::process::Command::new(app())
            .arg("--data-dir")
            .arg(data.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let shown = async |pid: u32| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Some(g) = window_geometry(pid) {
                return g;
            }
            assert!(std::time::Instant::now() < deadline, "no window appeared");
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    };
    let mut first = launch();
    shown(first.id()).await;
    // Moved and resized as a person would; a window just mapped can still be settling
    // its first size, so the request is repeated until the window has taken it.
    let place = |pid: u32| {
        let out = std::process::Command::new("xdotool")
            .args(["search", "--pid", &pid.to_string(), "--name", "Firebreak"])
            .output()
            .unwrap();
        for id in String::from_utf8_lossy(&out.stdout).lines() {
            for args in [
                vec!["windowsize", id, "1100", "700"],
                vec!["windowmove", id, "40", "30"],
            ] {
                std::process::Command::new("xdotool")
                    .args(&args)
                    .status()
                    .unwrap();
            }
        }
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        place(first.id());
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let now = window_geometry(first.id());
        if now == Some((40, 30, 1100, 700)) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the window did not take its new place: {now:?}"
        );
    }
    std::process::Command::new("kill")
        .args(["-TERM", &first.id().to_string()])
        .status()
        .unwrap();
    let status = first.wait().unwrap();
    assert!(
        status.success(),
        "SIGTERM closes the console cleanly: {status}"
    );

    // The saved place is applied once the window exists: give it a moment.
    let mut second = launch();
    let mut at = shown(second.id()).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while at != (40, 30, 1100, 700) && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        at = window_geometry(second.id()).unwrap_or(at);
    }
    assert_eq!(at, (40, 30, 1100, 700), "reopened where it was left");
    std::process::Command::new("kill")
        .args(["-TERM", &second.id().to_string()])
        .status()
        .unwrap();
    second.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_summit_view_draws_a_recorded_history_and_opens_the_incidents_behind_a_bar() {
    let _window = ONE_WINDOW.lock().await;
    let data = tempfile::tempdir().unwrap();
    // Two weeks of history up to today: inside the view's default period (the last 4 weeks).
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let recorded = std::process::Command::new(app())
        .arg("--data-dir")
        .arg(data.path())
        .args([
            "demo", "history", "--weeks", "2", "--seed", "3", "--until", &today,
        ])
        .output()
        .unwrap();
    assert!(
        recorded.status.success(),
        "{}",
        String::from_utf8_lossy(&recorded.stderr)
    );
    let driver = Driver::start().await;
    let session = driver
        .session(
            app(),
            &["--data-dir".into(), data.path().display().to_string()],
        )
        .await;
    // (Every incident of the history is resolved: the list keeps them folded away.)
    session.wait_for("[data-testid=status-bar]").await;
    session.click_on("[data-testid=tab-summit]").await;
    let summary = session.wait_for("[data-testid=summit-summary]").await;
    assert!(
        session.text(&summary).await.contains("incidents"),
        "{}",
        session.text(&summary).await
    );
    let demo = session.wait_for("[data-testid=summit-demo]").await;
    assert!(session.text(&demo).await.contains("demo data"));
    let charts = session
        .execute(
            "return document.querySelectorAll('[data-testid=chart] svg').length",
            serde_json::json!([]),
        )
        .await;
    assert_eq!(charts, serde_json::json!(5), "five charts drawn");
    let takeaway = session.wait_for("[data-testid=takeaway]").await;
    assert!(!session.text(&takeaway).await.is_empty());
    session.screenshot("summit-view").await;

    // The top root cause's bar lists its incidents; one click opens the first of them.
    // (A bar is an SVG group with a button's role: reached with the keyboard, as the
    // driver cannot click into SVG.)
    let bar = session.wait_for("[data-testid=chart-row]").await;
    session.type_into(&bar, "\u{E007}").await; // Enter
    let picked = session.wait_for("[data-testid=summit-picked]").await;
    let listed = session.text(&picked).await;
    assert!(listed.contains("Root cause:"), "{listed}");
    session
        .click_on("[data-testid=summit-picked-incident]")
        .await;
    let tab = session
        .wait_for("[data-testid=tab-incidents][aria-current=page]")
        .await;
    assert!(!tab.is_empty());
    session.close().await;
}

/// Two people on one incident: Ana in the window, Ben at a console of his own, both synced
/// through a team server on a real PostgreSQL. Ana links in Settings → Team, sees Ben's
/// incident arrive and Ben looking at it, takes command while her sync is off as Ben
/// takes it online, is told Ben did it first, and redoes it on the current state.
#[tokio::test(flavor = "multi_thread")]
async fn a_window_and_another_console_work_one_incident_through_the_team_server() {
    use firebreak_engine::team::sync::TeamSync;
    use firebreak_store::incident::{NewIncident, Severity};
    let _window = ONE_WINDOW.lock().await;
    let pg = support::postgres::Postgres::start().await;
    let url = pg.database("team_window").await;
    let db = firebreak_team_server::db::TeamDb::connect(&url, 2)
        .await
        .unwrap();
    let ana = db.add_person("ana", &["serving".into()]).await.unwrap();
    let ben = db.add_person("ben", &["serving".into()]).await.unwrap();
    let config = firebreak_team_server::config::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        database: firebreak_gateway::config::Secret::Env("UNUSED".into()),
        max_connections: 8,
        tls: None,
    };
    let server = firebreak_team_server::server::start_with_url(&config, &url)
        .await
        .unwrap();

    // Ben's console.
    let ben_dir = tempfile::tempdir().unwrap();
    let ben_store = firebreak_store::Store::open(&ben_dir.path().join("firebreak.db"))
        .await
        .unwrap();
    ben_store
        .link_team(&server.base_url(), "serving", None, None)
        .await
        .unwrap();
    let ben_sync = TeamSync::start(ben_store.clone(), ben.clone(), std::sync::Arc::new(|_| {}));

    // Ana's window links in Settings → Team.
    let data = tempfile::tempdir().unwrap();
    let args = ["--data-dir".to_string(), data.path().display().to_string()];
    let driver = Driver::start().await;
    let session = driver.session(app(), &args).await;
    session.click_on("[data-testid=tab-settings]").await;
    session
        .type_on("[data-testid=team-url]", &server.base_url())
        .await;
    session.type_on("[data-testid=team-name]", "serving").await;
    session.type_on("[data-testid=team-token]", &ana).await;
    // Linking to a team server needs a person at the screen: cancelled in the native
    // dialog, nothing is linked and the page says why.
    session.click_on("[data-testid=team-link]").await;
    answer_dialog("Link to this team server", "Escape");
    let refused = session.wait_for("[data-testid=team-error]").await;
    wait_text(&session, &refused, "the cancelled link", |t| {
        t.contains("not confirmed in the dialog")
    })
    .await;
    session.click_on("[data-testid=team-link]").await;
    answer_dialog("Link to this team server", "alt+l");
    let linked = session.wait_for("[data-testid=team-linked]").await;
    wait_text(&session, &linked, "the window to link and sync", |t| {
        t.contains("serving") && t.contains("as ana") && t.contains("synced")
    })
    .await;
    let bar = session.wait_for("[data-testid=team-status]").await;
    wait_text(&session, &bar, "the status bar to say synced", |t| {
        t.contains("serving: synced")
    })
    .await;

    // Ben opens an incident and looks at it; it arrives in Ana's list, with Ben on it.
    let opened = ben_store
        .open_incident(
            &NewIncident {
                title: "Queue depth climbing on llm-assistant".into(),
                severity: Severity::Major,
                service: Some("llm-assistant".into()),
                cluster_id: None,
            },
            "ben",
        )
        .await
        .unwrap();
    ben_sync.view(Some(opened.public_id.parse().unwrap()));
    session.click_on("[data-testid=tab-incidents]").await;
    let row = session.wait_for("[data-testid=incident-row]").await;
    wait_text(&session, &row, "ben's incident in ana's list", |t| {
        t.contains("Queue depth climbing")
    })
    .await;
    session.click(&row).await;
    let lookers = session.wait_for("[data-testid=lookers]").await;
    wait_text(&session, &lookers, "ben looking at it", |t| {
        t == "looking now: ben"
    })
    .await;

    // Ana's sync off; she takes command; Ben takes it online; her sync back on.
    session.click_on("[data-testid=tab-settings]").await;
    session.click_on("[data-testid=team-toggle]").await;
    let toggle = session.wait_for("[data-testid=team-toggle]").await;
    wait_text(&session, &toggle, "sync off", |t| {
        t.contains("Turn sync on")
    })
    .await;
    session.click_on("[data-testid=tab-incidents]").await;
    session.click_on("[data-testid=incident-row]").await;
    session.click_on("[data-testid=take-command]").await;
    let author = session
        .text(&session.wait_for("[data-testid=author]").await)
        .await;
    let commander = session.wait_for("[data-testid=commander]").await;
    wait_text(&session, &commander, "ana commands locally", |t| {
        t.contains(&author)
    })
    .await;
    ben_store
        .set_commander(opened.id, Some("ben"), "ben")
        .await
        .unwrap();
    support::rig::wait_for(
        std::time::Duration::from_secs(30),
        "ben's command to reach the server",
        async || ben_store.team_pending_count().await.unwrap() == 0,
    )
    .await;
    session.click_on("[data-testid=tab-settings]").await;
    session.click_on("[data-testid=team-toggle]").await;
    session.click_on("[data-testid=tab-incidents]").await;
    session.click_on("[data-testid=incident-row]").await;
    let redo = session.wait_for("[data-testid=redo-refused]").await;
    let timeline = session
        .text(&session.wait_for("[data-testid=timeline]").await)
        .await;
    assert!(
        timeline.contains("ben took command") && timeline.contains("was not applied"),
        "{timeline}"
    );
    let mine = format!("{author} took command (was nobody)");
    let marked = timeline
        .find("not applied ·")
        .expect("the refused change is marked");
    assert!(
        timeline[marked..]
            .trim_start_matches("not applied ·")
            .trim_start()
            .starts_with(&mine),
        "{timeline}"
    );
    let commander = session.wait_for("[data-testid=commander]").await;
    wait_text(
        &session,
        &commander,
        "ben commands after the refusal",
        |t| t.contains("commander: ben"),
    )
    .await;
    session.screenshot("team-refused").await;

    // Redo: Ana commands, on every console.
    session.click(&redo).await;
    wait_text(&session, &commander, "ana commands after the redo", |t| {
        t.contains(&author)
    })
    .await;
    support::rig::wait_for(
        std::time::Duration::from_secs(30),
        "ben's console to see ana in command",
        async || {
            ben_store
                .incident(opened.id)
                .await
                .unwrap()
                .commander
                .as_deref()
                == Some(author.as_str())
        },
    )
    .await;

    // The saved token stays with its server: pointing the link elsewhere without pasting
    // a token again is refused before anything is asked or sent.
    session.click_on("[data-testid=tab-settings]").await;
    let url_field = session.wait_for("[data-testid=team-url]").await;
    session.clear(&url_field).await;
    session.type_into(&url_field, "http://127.0.0.1:9").await;
    session.click_on("[data-testid=team-link]").await;
    let refused = session.wait_for("[data-testid=team-error]").await;
    wait_text(
        &session,
        &refused,
        "the token kept from another server",
        |t| t.contains("the saved token stays with"),
    )
    .await;
    session.close().await;
    drop(ben_sync);
    server.shutdown();
}
