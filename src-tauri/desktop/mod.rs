//! The window: the only module that imports `tauri`.
//!
//! A thin shell over the core: it opens the store, manages it as state, lists the
//! commands the page may call (`commands.rs`, every one of them in one place) and
//! reports a store that cannot be opened in a native dialog as well as in the page.

mod commands;
mod live;
mod review;
mod team;

use std::sync::Arc;

use anyhow::{Context, Result};
use tauri::{Manager, Runtime};
use tauri_plugin_dialog::{DialogExt, MessageDialogKind};

use crate::ipc::{AppInfo, IpcError};
use firebreak_store::paths::DataDir;
use firebreak_store::Store;

/// What every command can reach.
pub struct Console {
    store: Result<Store, IpcError>,
    info: AppInfo,
    /// Who this user's changes are recorded as; editable in the window.
    author: std::sync::Mutex<String>,
    data_dir: DataDir,
    live: Arc<live::WindowSink>,
    /// The watched clusters and the engine recording them (absent when the store is).
    watchlist: Option<Arc<firebreak_engine::watchlist::Watchlist>>,
    /// Rollback and failover (absent when the store is).
    desk: Option<Arc<firebreak_engine::actions::ActionDesk>>,
    /// The runbooks loaded, with every file's problems; reloaded when the files change.
    runbooks: Arc<std::sync::RwLock<firebreak_engine::runbooks::Library>>,
    /// The folders they come from (the user's, then those added in settings).
    runbook_folders: Arc<std::sync::RwLock<Vec<std::path::PathBuf>>>,
    demo: Option<firebreak_cli::Demo>,
    /// Team sync, while the store is linked to a team and sync is on.
    team: std::sync::Mutex<Option<firebreak_engine::team::sync::TeamSync>>,
    /// The services' objectives: burn rates that open incidents, and budgets counted
    /// (absent when the store is).
    slo: Option<Arc<firebreak_engine::slo::Watch>>,
}

/// The window as the command line opens it (see `firebreak_cli::Window`).
pub const WINDOW: firebreak_cli::Window = firebreak_cli::Window {
    prepare: choose_webkit_painting,
    open: run,
};

impl Console {
    fn store(&self) -> Result<&Store, IpcError> {
        self.store.as_ref().map_err(Clone::clone)
    }

    fn watchlist(&self) -> Result<&Arc<firebreak_engine::watchlist::Watchlist>, IpcError> {
        match &self.watchlist {
            Some(w) => Ok(w),
            None => Err(self.store().err().unwrap_or_else(|| {
                IpcError::new(
                    crate::ipc::ErrorCode::Internal,
                    "the ingest engine is not running",
                )
            })),
        }
    }

    fn desk(&self) -> Result<&Arc<firebreak_engine::actions::ActionDesk>, IpcError> {
        match &self.desk {
            Some(d) => Ok(d),
            None => Err(self.store().err().unwrap_or_else(|| {
                IpcError::new(
                    crate::ipc::ErrorCode::Internal,
                    "the action desk is not running",
                )
            })),
        }
    }

    fn runner(&self) -> Result<firebreak_engine::runbooks::run::Runner, IpcError> {
        Ok(firebreak_engine::runbooks::run::Runner::new(
            self.store()?.clone(),
            self.desk()?.clone(),
        ))
    }

    fn library(&self) -> firebreak_engine::runbooks::Library {
        self.runbooks
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Tells the page that an incident's timeline gained entries (with the next batch).
    fn timeline_changed(&self, incident_id: i64) {
        use firebreak_engine::ingest::sink::ConsoleSink;
        self.live
            .committed(&firebreak_engine::ingest::sink::Committed {
                updated: vec![incident_id],
                ..Default::default()
            });
    }

    fn author(&self) -> String {
        self.author
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Opens the store (or keeps its error for the page to show) and runs the window.
pub fn run(data_dir: DataDir, demo: Option<firebreak_cli::Demo>) -> Result<()> {
    use crate::single_instance::{claim, Claim};
    let mut instance = match claim(data_dir.root()) {
        Ok(Claim::Running) => {
            eprintln!(
                "Firebreak is already open on {}: brought its window to the front.",
                data_dir.root().display()
            );
            return Ok(());
        }
        Ok(Claim::First(guard)) => Some(guard),
        Err(e) => {
            tracing::warn!(error = %e, "cannot make sure this is the only window on its data dir");
            None
        }
    };
    if let Some(v) = std::env::var_os(CPU_PAINTING) {
        tracing::info!(
            "WebKit paints on the CPU ({CPU_PAINTING}={}: no GPU render node, or set by the user)",
            v.to_string_lossy()
        );
    }
    let db = data_dir.database();
    let store = tauri::async_runtime::block_on(Store::open(&db));
    if let Err(e) = &store {
        tracing::error!(error = %e, "store unavailable");
    }
    let store = store.map_err(IpcError::from);
    let author = match &store {
        Ok(s) => tauri::async_runtime::block_on(s.author()),
        Err(_) => firebreak_store::paths::local_user(),
    };
    let info = AppInfo {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        data_dir: data_dir.root().display().to_string(),
        database: db.display().to_string(),
        author,
        store_error: store.as_ref().err().cloned(),
        bench_frames_s: bench_frames().map(|(s, _)| s),
        bench_paint: bench_paint().is_some(),
    };
    let live = Arc::new(live::WindowSink::default());
    let (watchlist, desk) =
        match &store {
            Ok(store) => {
                // The engine reports to the window and to the board the desk reads stream
                // states from; the desk reports its steps to the window.
                let board = Arc::new(firebreak_engine::ingest::sink::StatusBoard::default());
                let sink = Arc::new(firebreak_engine::ingest::sink::Tee(vec![
                    live.clone(),
                    board.clone(),
                ]));
                let engine = tauri::async_runtime::block_on(
                    firebreak_engine::ingest::Engine::start(store.clone(), Vec::new(), sink),
                )
                .context("cannot start the ingest engine")?;
                let watchlist = Arc::new(firebreak_engine::watchlist::Watchlist::new(
                    store.clone(),
                    Arc::new(engine),
                ));
                let desk = firebreak_engine::actions::ActionDesk::new(
                    store.clone(),
                    firebreak_engine::actions::Tokens::default(),
                    board,
                    live.clone(),
                );
                desk.set_driver_name("the console window");
                (Some(watchlist), Some(desk))
            }
            Err(_) => (None, None),
        };
    let slo = store
        .as_ref()
        .ok()
        .map(|store| firebreak_engine::slo::Watch::new(store.clone(), live.clone()));
    let folders = match &store {
        Ok(store) => tauri::async_runtime::block_on(firebreak_engine::runbooks::folders(
            store,
            data_dir.runbooks(),
        )),
        Err(_) => vec![data_dir.runbooks().to_owned()],
    };
    let runbooks = Arc::new(std::sync::RwLock::new(
        firebreak_engine::runbooks::Library::load(&folders),
    ));
    let runbook_folders = Arc::new(std::sync::RwLock::new(folders));
    watch_runbooks(runbooks.clone(), runbook_folders.clone());
    let console = Console {
        runbooks,
        runbook_folders,
        store,
        author: std::sync::Mutex::new(info.author.clone()),
        info,
        data_dir,
        live,
        watchlist,
        desk,
        demo,
        team: std::sync::Mutex::new(None),
        slo,
    };
    let app = create_app(tauri::Builder::default(), console)
        .build(tauri::generate_context!())
        .context("cannot start the console window")?;
    if let Some(instance) = &mut instance {
        let handle = app.handle().clone();
        instance.serve(move || {
            if let Some(window) = handle.get_webview_window("main") {
                let _ = window.unminimize();
                let _ = window.show();
                let _ = window.set_focus();
            }
        });
    }
    // Ctrl-C or SIGTERM (a logout, a shutdown, `kill`) closes the console as its window's
    // close button does: the engine commits what it holds, the window's place is saved.
    let handle = app.handle().clone();
    tauri::async_runtime::spawn(async move {
        firebreak_common::process::shutdown_signal().await;
        tracing::info!("stop signal: closing the console");
        handle.exit(0);
    });
    app.run(|app, event| {
        if let tauri::RunEvent::Exit = event {
            // As `watch` does on a stop signal: the connections stop, the writer commits
            // what they handed over (or gives up within seconds if the store cannot write).
            if let Some(watchlist) = &app.state::<Console>().watchlist {
                tauri::async_runtime::block_on(watchlist.engine().stop());
            }
        }
    });
    Ok(())
}

/// Builds the app for any runtime, so tests can drive the commands with a mock runtime.
pub fn create_app<R: Runtime>(builder: tauri::Builder<R>, console: Console) -> tauri::Builder<R> {
    // The window's size, position and maximised state, remembered per data dir (the
    // plugin joins the file name to the config dir, so an absolute one lands here).
    let window_state = console.data_dir.root().join("window-state.json");
    builder
        .plugin(
            tauri_plugin_window_state::Builder::default()
                .with_filename(window_state.display().to_string())
                .build(),
        )
        .plugin(tauri_plugin_dialog::init())
        .plugin(tauri_plugin_notification::init())
        .manage(console)
        .invoke_handler(commands::handler())
        .setup(|app| {
            let console = app.state::<Console>();
            open_main_window(app.handle(), &console.data_dir)?;
            console.live.clone().start_flushing(app.handle().clone());
            if let (Some(watchlist), Some(desk)) = (&console.watchlist, &console.desk) {
                let (watchlist, desk) = (watchlist.clone(), desk.clone());
                let slo = console.slo.clone();
                tauri::async_runtime::spawn(async move {
                    if let Err(e) = watchlist.watch_all().await {
                        tracing::error!(error = %e, "cannot start watching the clusters");
                    }
                    // Actions a previous run left under way carry on with their stored keys.
                    match desk.resume_unfinished().await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(actions = n, "resuming unfinished actions"),
                        Err(e) => tracing::error!(error = %e, "cannot resume unfinished actions"),
                    }
                    // The services' rollout guards act on failing canary verdicts.
                    firebreak_engine::actions::guard::Guard::new(desk.clone()).spawn();
                    // Services with objectives open incidents on their burn rates.
                    if let Some(slo) = slo {
                        slo.spawn();
                    }
                });
            }
            advance_runbook_runs(app.handle().clone());
            if console.store.is_ok() {
                let handle = app.handle().clone();
                tauri::async_runtime::spawn(async move {
                    if let Err(e) = handle.state::<Console>().restart_team_sync().await {
                        tracing::warn!(error = %e, "cannot start team sync");
                    }
                });
            }
            if let (Ok(store), Some(watchlist), Some(desk), Some(demo)) = (
                &console.store,
                &console.watchlist,
                &console.desk,
                &console.demo,
            ) {
                start_demo(store.clone(), watchlist.clone(), desk.clone(), demo.clone());
            }
            if let Some(err) = &console.info.store_error {
                app.dialog()
                    .message(err.message.clone())
                    .title("Firebreak cannot open its database")
                    .kind(MessageDialogKind::Error)
                    .show(|_| {});
            }
            Ok(())
        })
}

/// Every second, moves on the runbook runs whose action step's action has settled
/// (verified, failed, refused, cancelled) and tells the page which timelines changed.
fn advance_runbook_runs<R: Runtime>(app: tauri::AppHandle<R>) {
    tauri::async_runtime::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tick.tick().await;
            let console = app.state::<Console>();
            let Ok(runner) = console.runner() else { return };
            match runner.advance_settled(&console.author()).await {
                Ok(changed) => changed
                    .into_iter()
                    .for_each(|i| console.timeline_changed(i)),
                Err(e) => tracing::warn!(error = %e, "cannot move runbook runs on"),
            }
        }
    });
}

/// Reloads the runbook library when a file in its folders changes, or the folders do
/// (checked every 2 s).
fn watch_runbooks(
    library: Arc<std::sync::RwLock<firebreak_engine::runbooks::Library>>,
    folders: Arc<std::sync::RwLock<Vec<std::path::PathBuf>>>,
) {
    std::thread::Builder::new()
        .name("runbook-watch".into())
        .spawn(move || {
            let current = || folders.read().unwrap_or_else(|e| e.into_inner()).clone();
            let mut seen = (
                current(),
                firebreak_engine::runbooks::fingerprint(&current()),
            );
            loop {
                std::thread::park_timeout(std::time::Duration::from_secs(2));
                let folders = current();
                let now = (
                    folders.clone(),
                    firebreak_engine::runbooks::fingerprint(&folders),
                );
                if now != seen {
                    seen = now;
                    let fresh = firebreak_engine::runbooks::Library::load(&folders);
                    tracing::info!(
                        runbooks = fresh.runbooks.len(),
                        problems = fresh.errors.len(),
                        "runbooks reloaded"
                    );
                    *library.write().unwrap_or_else(|e| e.into_inner()) = fresh;
                }
            }
        })
        .map(|_| ())
        .unwrap_or_else(|e| tracing::error!(error = %e, "cannot watch the runbook folder"));
}

/// The console window. Its WebKit data (cache, storage) lives in Firebreak's data dir,
/// so a `--data-dir` run shares nothing with another and never touches the user's.
fn open_main_window<R: Runtime>(
    app: &tauri::AppHandle<R>,
    data_dir: &DataDir,
) -> tauri::Result<()> {
    tauri::WebviewWindowBuilder::new(app, "main", tauri::WebviewUrl::App("index.html".into()))
        .title("Firebreak")
        .inner_size(1280.0, 800.0)
        // The layout holds from 1024×640 up (checked at 1280×720 and 1920×1080).
        .min_inner_size(1024.0, 640.0)
        .data_directory(data_dir.root().join("webview"))
        .build()?;
    Ok(())
}

/// Starts the simulator for the demo and watches it with the app's engine: the same
/// client a real cluster gets; only the URLs point at loopback.
fn start_demo(
    store: Store,
    watchlist: Arc<firebreak_engine::watchlist::Watchlist>,
    desk: Arc<firebreak_engine::actions::ActionDesk>,
    demo: firebreak_cli::Demo,
) {
    tauri::async_runtime::spawn(async move {
        let started = async {
            let (sim, target) =
                firebreak_cli::watch::start_demo(&store, demo.speed, demo.scenario.as_deref())
                    .await?;
            desk.tokens().set(target.cluster_id, &sim.token);
            watchlist.engine().watch(target).await?;
            anyhow::Ok(sim)
        };
        match started.await {
            // The simulator runs until the app exits.
            Ok(sim) => std::mem::forget(sim),
            Err(e) => tracing::error!(error = %e, "the demo could not start"),
        }
    });
}

/// Asks the engineer, in a native dialog over the window, to confirm an action. Page
/// script has no way to answer it: only a person at the screen (or the keyboard) can.
async fn confirm_natively<R: Runtime>(
    app: &tauri::AppHandle<R>,
    window: &tauri::WebviewWindow<R>,
    action: &firebreak_store::actions::ActionRecord,
    reason: &str,
) -> bool {
    let p = &action.preview;
    let health = match p.target_health.healthy {
        Some(true) => "healthy",
        Some(false) => "NOT healthy",
        None => "unknown",
    };
    let mut text = if action.kind == firebreak_protocol::actions::ActionKind::Silence {
        // A silence changes what notifies, not nodes or traffic.
        format!(
            "{}\n\nFrom: {}\nTo: {}\nSilences: {}\nMatchers: {}\nReason: {}\n",
            p.summary,
            p.from_label,
            p.to_label,
            p.target_health.text,
            p.precondition.trim_start_matches("matchers: "),
            reason.trim()
        )
    } else {
        format!(
            "{}\n\nFrom: {}\nTo: {}\nBlast radius: {} nodes, {:.0} requests/s ({:.0} % of the cluster's traffic)\n\
             Target: {health}: {}\nPrecondition: {}\nReason: {}\n",
            p.summary,
            p.from_label,
            p.to_label,
            p.nodes,
            p.requests_per_s,
            p.traffic_share * 100.0,
            p.target_health.text,
            p.precondition,
            reason.trim()
        )
    };
    for w in &p.warnings {
        text.push_str(&format!("\nWarning: {w}"));
    }
    text.push_str(&format!(
        "\n\nIt is sent {} s after you confirm; until then, Cancel in the console stops it.",
        p.grace_s
    ));
    let verb = match action.kind {
        firebreak_protocol::actions::ActionKind::Rollback => "_Roll back",
        firebreak_protocol::actions::ActionKind::Failover => "_Fail over",
        firebreak_protocol::actions::ActionKind::Silence => "_Silence",
        firebreak_protocol::actions::ActionKind::PauseRollout => "_Pause rollout",
        firebreak_protocol::actions::ActionKind::ResumeRollout => "_Resume rollout",
        firebreak_protocol::actions::ActionKind::AbortRollout => "_Abort rollout",
        firebreak_protocol::actions::ActionKind::PromoteRollout => "_Promote rollout",
    };
    ask_natively(app, window, &format!("Confirm: {}", p.summary), text, verb).await
}

/// `FIREBREAK_BENCH_FRAMES=SECONDS:PATH`, set by `firebreak bench frames` on the window it
/// starts: how long the page measures, and the file its frame times go to.
pub(crate) fn bench_frames() -> Option<(u32, std::path::PathBuf)> {
    let v = std::env::var("FIREBREAK_BENCH_FRAMES").ok()?;
    let (s, path) = v.split_once(':')?;
    Some((s.parse().ok()?, path.into()))
}

/// Where WebKit paints the page, chosen before anything else starts (it reads its
/// environment once, and setting a variable is only sound while the process has one
/// thread). Without a GPU render node (a VM, a remote desktop, Xvfb) WebKit's GPU painting
/// runs on Mesa's software rasterizer, whose shader compilation alone delays the first
/// paint by about 70 ms (`bench startup`: 500 ms to 430 ms under Xvfb); Skia's CPU
/// painter is the faster of the two there. With a GPU, WebKit's default stays. A variable
/// the user set is theirs: it is left as it is.
pub fn choose_webkit_painting() {
    if !cfg!(target_os = "linux") || std::env::var_os(CPU_PAINTING).is_some() {
        return;
    }
    let gpu = std::fs::read_dir("/dev/dri").is_ok_and(|dir| {
        dir.flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("renderD"))
    });
    if !gpu {
        // Sound here only: called first thing in `main`, while the process has one thread.
        #[allow(clippy::disallowed_methods)]
        std::env::set_var(CPU_PAINTING, "1");
    }
}

/// WebKitGTK's switch to paint with Skia on the CPU.
const CPU_PAINTING: &str = "WEBKIT_SKIA_ENABLE_CPU_RENDERING";

/// `FIREBREAK_BENCH_PAINT=PATH`, set by `firebreak bench startup`: the file the page's
/// first paint time goes to.
pub(crate) fn bench_paint() -> Option<std::path::PathBuf> {
    std::env::var_os("FIREBREAK_BENCH_PAINT").map(Into::into)
}

/// Text as the native dialog must receive it. On Linux the dialog library hands the
/// message to GTK as a printf format (rfd's gtk3 backend, `format_secondary_text`): a `%`
/// in recorded text ("31 % of the cluster's traffic", a hostile service name) would be
/// read as a conversion, so it is doubled there. A NUL would make the library panic.
pub(crate) fn dialog_text(text: &str) -> String {
    let text = visible_marks(&text.replace('\0', ""));
    if cfg!(any(target_os = "macos", target_os = "windows")) {
        text
    } else {
        text.replace('%', "%%")
    }
}

/// Text with every character that would change how the rest reads without showing
/// itself (bidirectional overrides and isolates, zero-width characters, other control
/// characters but line breaks and tabs) written as a visible mark, `⟨U+202E⟩`: a service
/// named "tsae-su" behind a right-to-left override must not pass for "us-east" in the
/// dialog a person confirms.
pub(crate) fn visible_marks(text: &str) -> String {
    text.chars()
        .map(|c| {
            let hidden = matches!(c,
                '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}'
                | '\u{061C}' | '\u{FEFF}' | '\u{00AD}' | '\u{180E}')
                || (c.is_control() && c != '\n' && c != '\t');
            if hidden {
                format!("⟨U+{:04X}⟩", c as u32)
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Text for a desktop notification's body: some notification daemons render markup, so a
/// hostile service name or title is escaped and shown as typed.
pub(crate) fn notification_text(text: &str) -> String {
    visible_marks(text)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A yes/no question in a native dialog over the window: the one way a person confirms
/// what page script must not be able to do alone (an action, loosening a guard rail).
pub(crate) async fn ask_natively<R: Runtime>(
    app: &tauri::AppHandle<R>,
    window: &tauri::WebviewWindow<R>,
    title: &str,
    text: String,
    verb: &str,
) -> bool {
    use tauri_plugin_dialog::MessageDialogButtons;
    let (tx, rx) = tokio::sync::oneshot::channel();
    app.dialog()
        .message(dialog_text(&text))
        .title(title.replace('\0', ""))
        .kind(MessageDialogKind::Warning)
        .parent(window)
        .buttons(MessageDialogButtons::OkCancelCustom(
            verb.to_owned(),
            "_Cancel".to_owned(),
        ))
        .show(move |confirmed| {
            let _ = tx.send(confirmed);
        });
    rx.await.unwrap_or(false)
}

#[cfg(test)]
mod dialog_tests {
    #[test]
    fn percent_signs_and_nuls_cannot_reach_gtk_as_a_format() {
        let said = super::dialog_text("31 % of traffic on svc-%s%n\0x");
        if cfg!(target_os = "linux") {
            assert_eq!(said, "31 %% of traffic on svc-%%s%%nx");
        }
        assert!(!said.contains('\0'));
    }

    #[test]
    fn invisible_and_direction_changing_characters_show_as_marks() {
        // "us-east" written backwards behind a right-to-left override, a zero-width space
        // and an escape sequence: each shows as what it is.
        let said = super::visible_marks("to \u{202E}tsae-su\u{202C} a\u{200B}b \u{1b}[2J\nnext");
        assert_eq!(
            said,
            "to ⟨U+202E⟩tsae-su⟨U+202C⟩ a⟨U+200B⟩b ⟨U+001B⟩[2J\nnext"
        );
        assert!(super::dialog_text("\u{2066}x").starts_with("⟨U+2066⟩"));
    }

    #[test]
    fn a_notification_shows_markup_as_typed() {
        assert_eq!(
            super::notification_text("<b>svc</b> & <a href='x'>"),
            "&lt;b&gt;svc&lt;/b&gt; &amp; &lt;a href='x'&gt;"
        );
    }
}
