//! The window: the only module that imports `tauri`.
//!
//! A thin shell over the core: it opens the store, manages it as state, lists the
//! commands the page may call (`commands.rs`, every one of them in one place) and
//! reports a store that cannot be opened in a native dialog as well as in the page.

mod commands;

use anyhow::{Context, Result};
use tauri::{Manager, Runtime};
use tauri_plugin_dialog::{DialogExt, MessageDialogKind};

use crate::ipc::{AppInfo, IpcError};
use crate::paths::DataDir;
use crate::store::Store;

/// What every command can reach.
pub struct Console {
    store: Result<Store, IpcError>,
    info: AppInfo,
    data_dir: DataDir,
}

impl Console {
    fn store(&self) -> Result<&Store, IpcError> {
        self.store.as_ref().map_err(Clone::clone)
    }
}

/// Opens the store (or keeps its error for the page to show) and runs the window.
pub fn run(data_dir: DataDir) -> Result<()> {
    let db = data_dir.database();
    let store = tauri::async_runtime::block_on(Store::open(&db));
    if let Err(e) = &store {
        tracing::error!(error = %e, "store unavailable");
    }
    let store = store.map_err(IpcError::from);
    let author = match &store {
        Ok(s) => tauri::async_runtime::block_on(s.setting("author"))
            .ok()
            .flatten()
            .unwrap_or_else(crate::paths::local_user),
        Err(_) => crate::paths::local_user(),
    };
    let info = AppInfo {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        data_dir: data_dir.root().display().to_string(),
        database: db.display().to_string(),
        author,
        store_error: store.as_ref().err().cloned(),
    };
    let console = Console {
        store,
        info,
        data_dir,
    };
    let app = create_app(tauri::Builder::default(), console)
        .build(tauri::generate_context!())
        .context("cannot start the console window")?;
    app.run(|_, _| {});
    Ok(())
}

/// Builds the app for any runtime, so tests can drive the commands with a mock runtime.
pub fn create_app<R: Runtime>(builder: tauri::Builder<R>, console: Console) -> tauri::Builder<R> {
    builder
        .plugin(tauri_plugin_dialog::init())
        .manage(console)
        .invoke_handler(commands::handler())
        .setup(|app| {
            let console = app.state::<Console>();
            open_main_window(app.handle(), &console.data_dir)?;
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

/// The console window. Its WebKit data (cache, storage) lives in Firebreak's data dir,
/// so a `--data-dir` run shares nothing with another and never touches the user's.
fn open_main_window<R: Runtime>(
    app: &tauri::AppHandle<R>,
    data_dir: &DataDir,
) -> tauri::Result<()> {
    tauri::WebviewWindowBuilder::new(app, "main", tauri::WebviewUrl::App("index.html".into()))
        .title("Firebreak")
        .inner_size(1280.0, 800.0)
        .min_inner_size(900.0, 560.0)
        .data_directory(data_dir.root().join("webview"))
        .build()?;
    Ok(())
}
