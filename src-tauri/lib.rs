//! Firebreak's desktop app: the console window over the engine (Tauri 2, WebKitGTK on
//! Linux). Everything below the window lives in the workspace's crates (README, Layout);
//! this crate holds only what needs `tauri`: the window and its commands (`desktop`),
//! the types that cross into the page (`ipc`), and one console per data dir
//! (`single_instance`). `main.rs` hands the window to the command line.

pub mod desktop;
pub mod ipc;
pub mod single_instance;
