//! Checks that committed generated files match what the code generates now; with the
//! named environment variable set, rewrites them instead.

use std::collections::BTreeMap;
use std::path::Path;

pub fn check(
    dir: &Path,
    extension: &str,
    generated: &BTreeMap<String, String>,
    update_var: &str,
    how: &str,
) {
    if std::env::var_os(update_var).is_some() {
        if dir.exists() {
            std::fs::remove_dir_all(dir).unwrap();
        }
        std::fs::create_dir_all(dir).unwrap();
        for (name, text) in generated {
            std::fs::write(dir.join(name), text).unwrap();
        }
        return;
    }
    let committed = read_dir(dir, extension);
    assert_eq!(
        committed.keys().collect::<Vec<_>>(),
        generated.keys().collect::<Vec<_>>(),
        "{} holds other files than the code generates; {how}",
        dir.display()
    );
    for (name, text) in generated {
        assert_eq!(
            &committed[name],
            text,
            "{}/{name} is stale; {how}",
            dir.display()
        );
    }
}

/// Every file in `dir` ending in `extension`, by name.
pub fn read_dir(dir: &Path, extension: &str) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(extension) {
            files.insert(name, std::fs::read_to_string(entry.path()).unwrap());
        }
    }
    files
}
