//! Generated files must match the code: the TypeScript IPC types in ui/src/bindings/
//! and the published JSON Schemas of the event types in docs/protocol/schemas/.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use crate::support;

use std::path::Path;

use firebreak_protocol::events::{event_schema, EventType};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn generated_typescript_bindings_are_fresh() {
    let fresh = tempfile::tempdir().unwrap();
    firebreak::ipc::bindings::export(fresh.path()).expect("export bindings");
    // The UI compiles against these files: if they drift from Rust, the UI and the
    // backend disagree about the shape of what crosses IPC.
    support::generated::check(
        &root().join("ui/src/bindings"),
        ".ts",
        &support::generated::read_dir(fresh.path(), ".ts"),
        "UPDATE_BINDINGS",
        "run `make bindings`",
    );
}

#[test]
fn published_event_schemas_are_fresh() {
    let generated = EventType::ALL
        .iter()
        .map(|t| {
            let text = serde_json::to_string_pretty(&event_schema(*t)).unwrap() + "\n";
            (format!("{}.json", t.name()), text)
        })
        .collect();
    // Other tools validate our events against these files: they must say what the code sends.
    support::generated::check(
        &root().join("docs/protocol/schemas"),
        ".json",
        &generated,
        "UPDATE_SCHEMAS",
        "run `make bindings`",
    );
}

/// Checks that `dir/openapi.json` is `doc` as generated, and that its paths are exactly
/// the routes `served` (each (method, path) once).
fn check_openapi(doc: serde_json::Value, dir: &str, served: &[(&str, &str)]) {
    let text = serde_json::to_string_pretty(&doc).unwrap() + "\n";
    support::generated::check(
        &root().join(dir),
        ".json",
        &[("openapi.json".to_owned(), text)].into_iter().collect(),
        "UPDATE_SCHEMAS",
        "run `make bindings`",
    );
    // Every route a server answers is documented, and nothing else is.
    let mut documented: Vec<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.clone(), path.clone()))
        })
        .collect();
    let mut served: Vec<(String, String)> = served
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    documented.sort();
    served.sort();
    served.dedup();
    assert_eq!(documented, served);
}

#[test]
fn published_openapi_document_is_fresh_and_lists_exactly_the_routes() {
    // The simulator's and the gateway's, each path once.
    let served: Vec<(&str, &str)> = firebreak_sim::ROUTES
        .iter()
        .chain(firebreak_gateway::serve::ROUTES)
        .chain(firebreak_server::actions::ROUTES)
        .copied()
        .collect();
    check_openapi(
        firebreak_protocol::openapi::document(),
        "docs/protocol/openapi",
        &served,
    );
}

#[test]
fn published_team_openapi_document_is_fresh_and_lists_exactly_the_routes() {
    check_openapi(
        firebreak_team_server::openapi::document(),
        "docs/team",
        firebreak_team_server::server::ROUTES,
    );
}

#[test]
fn published_incident_report_schema_is_fresh() {
    let schema = |v: serde_json::Value| serde_json::to_string_pretty(&v).unwrap() + "\n";
    // Other tools read our JSON reports against these files.
    support::generated::check(
        &root().join("docs/reports"),
        ".json",
        &[
            (
                "incident-report.schema.json".to_owned(),
                schema(firebreak_reports::schema()),
            ),
            (
                "summit-report.schema.json".to_owned(),
                schema(firebreak_reports::summit::schema()),
            ),
        ]
        .into_iter()
        .collect(),
        "UPDATE_SCHEMAS",
        "run `make bindings`",
    );
}

/// Every relative link in README.md and PROTOCOL.md points at a file that exists: a
/// reader who follows one must not land on nothing (PROTOCOL.md once named a path the
/// OpenAPI document had moved from).
#[test]
fn relative_links_in_the_docs_resolve() {
    let mut broken = Vec::new();
    for doc in ["README.md", "PROTOCOL.md"] {
        let text = std::fs::read_to_string(root().join(doc)).expect("the doc is readable");
        let mut rest = text.as_str();
        while let Some(at) = rest.find("](") {
            rest = &rest[at + 2..];
            let Some(end) = rest.find(')') else { break };
            let target = rest[..end].split('#').next().unwrap_or("").trim();
            rest = &rest[end..];
            if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            if !root().join(target).exists() {
                broken.push(format!("{doc}: {target}"));
            }
        }
    }
    assert!(broken.is_empty(), "links to nothing: {broken:?}");
}
