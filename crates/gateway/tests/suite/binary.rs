//! The `firebreak-gateway` program as a server admin installs it.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use std::path::Path;
use std::process::Command;

use firebreak_test_support::{assert_server_program, assert_unit_verifies, workspace_root};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_firebreak-gateway"))
}

#[test]
fn the_gateway_links_no_display_stack_and_checks_the_shipped_example() {
    let example = workspace_root().join("deploy/gateway/gateway.example.toml");
    let said = assert_server_program(bin(), "firebreak-gateway", &example);
    assert!(said.contains(": ok: cluster"), "{said}");
}

#[test]
fn serving_without_a_place_for_the_journal_is_refused_with_what_to_say() {
    let out = Command::new(bin())
        .arg("--config")
        .arg(workspace_root().join("deploy/gateway/gateway.example.toml"))
        .env_remove("FIREBREAK_DATA_DIR")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("--data-dir DIR or FIREBREAK_DATA_DIR"),
        "{said}"
    );
}

/// The unit shipped for the gateway passes `systemd-analyze verify`, pointed at this
/// build's binary as an installed one would be at /usr/bin/firebreak-gateway.
#[test]
fn the_gateway_systemd_unit_verifies() {
    assert_unit_verifies(
        &workspace_root().join("deploy/gateway/firebreak-gateway.service"),
        "firebreak-gateway",
        bin(),
    );
}
