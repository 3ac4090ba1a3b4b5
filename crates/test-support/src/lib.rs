//! What the workspace's tests share, compiled once: a simulator to run against and a reader
//! of its stream (`cluster`), a console recording it (`rig`), an action desk's rig (`desk`),
//! a fake Kubernetes API (`fake_kube`), scratch PostgreSQL (`postgres`), the servers and
//! tools the suites start (`servers`, `tls`, `webdriver`), generated files kept in step
//! (`generated`), and checks on the programs and files the packages ship. A
//! dev-dependency only; nothing that runs in production uses it. It stays below the
//! gateway, the command line and the window, so an edit there rebuilds no other crate's
//! tests.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is how a test fails

use std::path::Path;
use std::process::Command;

pub mod cluster;
pub mod desk;
pub mod events;
pub mod fake_kube;
pub mod generated;
pub mod postgres;
pub mod prometheus;
pub mod recorded;
pub mod rig;
pub mod runbook;
pub mod servers;
pub mod team;
pub mod tls;
pub mod webdriver;

/// The libraries of a display stack; a server binary links none of them.
const GRAPHICAL: [&str; 7] = [
    "webkit",
    "javascriptcore",
    "gtk",
    "gdk",
    "soup",
    "cairo",
    "x11",
];

/// Asserts that `bin` links no WebKit, GTK or X11 (by `ldd`), so that it installs and runs
/// on a server without a display stack.
pub fn assert_links_nothing_graphical(bin: &Path) {
    let libs = linked(bin);
    assert!(
        libs.contains("libc.so"),
        "ldd lists {}'s libraries: {libs}",
        bin.display()
    );
    for gui in GRAPHICAL {
        assert!(
            !libs.contains(gui),
            "{} links {gui}:\n{libs}",
            bin.display()
        );
    }
}

/// What `ldd` says `bin` links, lowercased.
pub fn linked(bin: &Path) -> String {
    let ldd = Command::new("ldd").arg(bin).output().expect("ldd runs");
    assert!(
        ldd.status.success(),
        "{}",
        String::from_utf8_lossy(&ldd.stderr)
    );
    String::from_utf8_lossy(&ldd.stdout).to_lowercase()
}

/// Runs `systemd-analyze verify` on `unit` (the text of a file named `name`), with
/// `/usr/bin/<program>` replaced by `bin` as an installed one would be found. Returns
/// whether it passed and what it said about this unit (a container may lack others).
pub fn verify_unit(name: &str, unit: &str, program: &str, bin: &Path) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    let text = unit.replace(&format!("/usr/bin/{program}"), &bin.display().to_string());
    std::fs::write(&path, text).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("systemd-analyze (package systemd) runs: `bash .ci/deps.sh --test` installs it");
    let said =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    let about: Vec<&str> = said.lines().filter(|l| l.contains(name)).collect();
    (out.status.success(), about.join("\n"))
}

/// Asserts that the unit shipped at `shipped` verifies, and that the check can fail: the
/// same unit with a typo does not.
pub fn assert_unit_verifies(shipped: &Path, program: &str, bin: &Path) {
    let name = shipped.file_name().unwrap().to_string_lossy().into_owned();
    let text = std::fs::read_to_string(shipped).unwrap();
    let (ok, about) = verify_unit(&name, &text, program, bin);
    assert!(ok && about.is_empty(), "{about}");
    let (_, broken) = verify_unit(
        &name,
        &text.replace("Restart=on-failure", "Restart=on-failur"),
        program,
        bin,
    );
    assert!(broken.contains("restart"), "a typo is reported: {broken}");
}

/// The workspace's root folder (where deploy/, migrations/ and tests/ are).
pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .parent()
        .unwrap()
}

/// A server program as an admin installs it: it links nothing graphical, `--version`
/// names it, and `--check` passes the example configuration shipped with it, with no
/// display. Returns what the check printed.
pub fn assert_server_program(bin: &Path, program: &str, example: &Path) -> String {
    assert_links_nothing_graphical(bin);
    let version = Command::new(bin).arg("--version").output().unwrap();
    let version = String::from_utf8_lossy(&version.stdout).into_owned();
    assert!(version.starts_with(&format!("{program} ")), "{version}");
    let check = Command::new(bin)
        .arg("--check")
        .arg(example)
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    String::from_utf8_lossy(&check.stdout).into_owned()
}
