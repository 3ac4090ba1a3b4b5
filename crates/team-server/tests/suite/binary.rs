//! The `firebreak-team-server` program as a server admin installs it.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use std::path::Path;
use std::process::Command;

use firebreak_test_support::{assert_server_program, assert_unit_verifies, workspace_root};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_firebreak-team-server"))
}

#[test]
fn the_team_server_links_no_display_stack_and_checks_the_shipped_example() {
    let example = workspace_root().join("deploy/team-server/team-server.example.toml");
    let said = assert_server_program(bin(), "firebreak-team-server", &example);
    assert!(
        said.contains(": ok: listening on 0.0.0.0:7600 (TLS)"),
        "{said}"
    );
}

#[test]
fn a_configuration_with_the_database_url_written_in_it_fails_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("team.toml");
    std::fs::write(
        &path,
        "listen = \"127.0.0.1:7600\"\ndatabase = \"postgres://u:secret@db/team\"\n",
    )
    .unwrap();
    let out = Command::new(bin())
        .arg("--check")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.starts_with("firebreak-team-server: "), "{said}");
    assert!(said.contains("never written in this file"), "{said}");
    assert!(
        !said.contains("secret@"),
        "the password is not repeated: {said}"
    );
}

/// The unit shipped for the team server passes `systemd-analyze verify`.
#[test]
fn the_team_server_systemd_unit_verifies() {
    assert_unit_verifies(
        &workspace_root().join("deploy/team-server/firebreak-team-server.service"),
        "firebreak-team-server",
        bin(),
    );
}
