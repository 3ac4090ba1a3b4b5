//! The TypeScript IPC types in ui/src/bindings/ are generated from the Rust types.
//! This test fails when they are stale; `UPDATE_BINDINGS=1 cargo test --test bindings`
//! regenerates them.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use std::collections::BTreeMap;
use std::path::Path;

fn read_dir(dir: &Path) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".ts") {
            files.insert(name, std::fs::read_to_string(entry.path()).unwrap());
        }
    }
    files
}

#[test]
fn generated_typescript_bindings_are_fresh() {
    let fresh = tempfile::tempdir().unwrap();
    firebreak::ipc::bindings::export(fresh.path()).expect("export bindings");
    let generated = read_dir(fresh.path());
    let committed_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("ui/src/bindings");

    if std::env::var_os("UPDATE_BINDINGS").is_some() {
        if committed_dir.exists() {
            std::fs::remove_dir_all(&committed_dir).unwrap();
        }
        std::fs::create_dir_all(&committed_dir).unwrap();
        for (name, text) in &generated {
            std::fs::write(committed_dir.join(name), text).unwrap();
        }
        return;
    }
    let committed = read_dir(&committed_dir);
    // The UI compiles against these files: if they drift from Rust, the UI and the
    // backend disagree about the shape of what crosses IPC.
    assert_eq!(
        committed.keys().collect::<Vec<_>>(),
        generated.keys().collect::<Vec<_>>(),
        "ui/src/bindings has other files than the Rust types generate; run UPDATE_BINDINGS=1 cargo test --test bindings"
    );
    for (name, text) in &generated {
        assert_eq!(
            &committed[name], text,
            "ui/src/bindings/{name} is stale; run UPDATE_BINDINGS=1 cargo test --test bindings"
        );
    }
}
