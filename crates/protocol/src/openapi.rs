//! The OpenAPI 3 document of the action API, built from the same types the server uses.
//! `docs/protocol/openapi.json` is this document; a test fails when it is stale, and
//! another checks that its paths are exactly the routes the simulator and the gateway
//! serve (each path says when only one of them serves it).

use schemars::generate::SchemaSettings;
use serde_json::{json, Value};

use super::actions::*;

fn response(description: &str, schema: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } }
    })
}

fn errors(codes: &[(&str, &str)]) -> serde_json::Map<String, Value> {
    codes
        .iter()
        .map(|(code, why)| (code.to_string(), response(why, "ApiError")))
        .collect()
}

fn mutating(summary: &str, request: &str, param: &str, param_doc: &str) -> Value {
    let mut responses = errors(&[
        ("400", "Invalid body, unknown target, or missing Idempotency-Key"),
        ("401", "Missing or wrong bearer token; nothing changed"),
        ("404", "No such deployment or service"),
        (
            "501",
            "Gateway only: this server cannot pull that lever for this workload (no hook or Kubernetes object \
             carries it). Nothing was done",
        ),
        (
            "502",
            "Gateway only: the status hook or Alertmanager could not say (status_unavailable, \
             alertmanager_unavailable). Nothing was done, and this answer is not kept for the key: retry with it",
        ),
        (
            "409",
            "precondition_failed: the current state differs from the expected one (body has `current` and `changed_by`); \
             or idempotency_key_in_flight: the first request with this key is still being handled",
        ),
        ("422", "idempotency_key_reused: this key was used with another request"),
    ]);
    responses.insert(
        "202".into(),
        response(
            "Accepted. A repeat with the same key and body returns this same response with `Idempotent-Replayed: true`.",
            "Action",
        ),
    );
    let mut parameters = Vec::new();
    if !param.is_empty() {
        parameters.push(json!({ "name": param, "in": "path", "required": true, "schema": { "type": "string" }, "description": param_doc }));
    }
    parameters.push(json!({ "name": "Idempotency-Key", "in": "header", "required": true,
              "schema": { "type": "string", "minLength": 1, "maxLength": 200 },
              "description": "One key per intended action. A repeat with the same key and body does nothing again." }));
    json!({
        "summary": summary,
        "security": [{ "bearer": [] }],
        "parameters": parameters,
        "requestBody": { "required": true, "content": { "application/json": {
            "schema": { "$ref": format!("#/components/schemas/{request}") } } } },
        "responses": responses
    })
}

fn read(summary: &str, schema: &str, param: Option<(&str, &str)>) -> Value {
    let mut responses = errors(&[("401", "Missing or wrong bearer token")]);
    responses.insert("200".into(), response("OK", schema));
    let mut op =
        json!({ "summary": summary, "security": [{ "bearer": [] }], "responses": responses });
    if let Some((name, doc)) = param {
        op["parameters"] = json!([{ "name": name, "in": "path", "required": true, "schema": { "type": "string" }, "description": doc }]);
        op["responses"]["404"] = response("Not found", "ApiError");
    }
    op
}

pub fn document() -> Value {
    let mut generator = SchemaSettings::openapi3().into_generator();
    generator.subschema_for::<ServiceList>();
    generator.subschema_for::<DeploymentList>();
    generator.subschema_for::<Deployment>();
    generator.subschema_for::<RollbackRequest>();
    generator.subschema_for::<RolloutRequest>();
    generator.subschema_for::<FailoverRequest>();
    generator.subschema_for::<SilenceRequest>();
    generator.subschema_for::<SilenceScope>();
    generator.subschema_for::<SilencePreview>();
    generator.subschema_for::<Action>();
    generator.subschema_for::<ApiError>();
    let schemas = generator.take_definitions(true);

    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Firebreak cluster action API",
            "version": "1",
            "description": "Read services and deployments; roll back and fail over, at most once per Idempotency-Key and only \
                            when the caller's precondition still holds. Both interfaces of a cluster take the same bearer token. \
                            The server never redirects. The event stream is described in PROTOCOL.md."
        },
        "paths": {
            "/v1/events": { "get": {
                "summary": "The event stream (WebSocket upgrade). Query `after=N` resumes after sequence N; see PROTOCOL.md.",
                "security": [{ "bearer": [] }],
                "parameters": [{ "name": "after", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 0 } }],
                "responses": {
                    "101": { "description": "Switching protocols: CloudEvents and control frames follow" },
                    "401": response("Missing or wrong bearer token", "ApiError")
                }
            }},
            "/v1/services": { "get": read("Services with their primary region", "ServiceList", None) },
            "/v1/deployments": { "get": read("Deployments with their revision history", "DeploymentList", None) },
            "/v1/deployments/{name}": { "get": read("One deployment", "Deployment", Some(("name", "Deployment name"))) },
            "/v1/deployments/{name}/rollback": { "post": mutating(
                "Roll a deployment back to an earlier revision", "RollbackRequest", "name", "Deployment name") },
            "/v1/deployments/{name}/pause": { "post": mutating(
                "Pause the rollout under way: no further waves until resumed or promoted. 409 when no rollout to \
                 expected_revision is under way, or it is already paused, stalled or being aborted", "RolloutRequest", "name", "Deployment name") },
            "/v1/deployments/{name}/resume": { "post": mutating(
                "Resume a paused rollout: its waves go on. 409 unless a rollout to expected_revision is paused",
                "RolloutRequest", "name", "Deployment name") },
            "/v1/deployments/{name}/abort": { "post": mutating(
                "Abort the rollout under way: its updated and drained nodes go back to the stable revision. Abort \
                 always wins: no wave moves once it runs, and a pause, resume or promotion still in flight fails", "RolloutRequest", "name", "Deployment name") },
            "/v1/deployments/{name}/promote": { "post": mutating(
                "Promote the rollout under way: its next wave now, or with `full` every remaining wave. 409 when it \
                 is stalled or being aborted", "RolloutRequest", "name", "Deployment name") },
            "/v1/services/{name}/failover": { "post": mutating(
                "Fail a service over to another region", "FailoverRequest", "name", "Service name") },
            "/v1/actions/{id}": { "get": read("An action's state", "Action", Some(("id", "Action id"))) },
            "/v1/alerts/silence": { "post": mutating(
                "Silence the alerts the matchers select for a while (the gateway: an Alertmanager silence; \
                 the simulator records it). The action comes back succeeded, the silence's id in its output",
                "SilenceRequest", "", "") },
            "/v1/alerts/silence/preview": { "post": {
                "summary": "Which alerts firing now a silence with these matchers would mute, under the same rules as \
                            /v1/alerts/silence; creates nothing (no Idempotency-Key). `matchers` come back as the silence \
                            would be created (the gateway: Alertmanager's label names, its cluster label added)",
                "security": [{ "bearer": [] }],
                "requestBody": { "required": true, "content": { "application/json": {
                    "schema": { "$ref": "#/components/schemas/SilenceScope" } } } },
                "responses": {
                    "200": response("The matchers as they would be created, and the alerts firing now that they select", "SilencePreview"),
                    "400": response("The matchers are not a silence this server would create, and why (the gateway: \
                                     not_configured without an [alertmanager] section)", "ApiError"),
                    "401": response("Missing or wrong bearer token", "ApiError"),
                    "404": response("No such service", "ApiError"),
                    "502": response("Gateway only: Alertmanager did not answer", "ApiError")
                }
            } },
            "/v1/alertmanager": { "post": {
                "summary": "Gateway only: Alertmanager's webhook (payload version 4), with the webhook's own bearer token. \
                            Each alert becomes alert.firing or alert.resolved once (its fingerprint and state are the key)",
                "security": [{ "bearer": [] }],
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object" } } } },
                "responses": {
                    "200": { "description": "Recorded: how many alerts were new, duplicates and refused (with why)",
                             "content": { "application/json": { "schema": { "type": "object" } } } },
                    "400": response("Not a version 4 webhook payload", "ApiError"),
                    "401": response("Missing or wrong webhook token", "ApiError"),
                    "404": response("The gateway has no [alertmanager] section", "ApiError"),
                    "503": response("The journal cannot record: Alertmanager sends the notification again", "ApiError")
                }
            }},
            "/v1/gateway/status": { "get": {
                "summary": "Gateway only: its journal (stream id, head, first retained), failing Prometheus queries with why, \
                            and Alertmanager's last notification",
                "security": [{ "bearer": [] }],
                "responses": { "200": { "description": "OK", "content": { "application/json": { "schema": { "type": "object" } } } },
                               "401": response("Missing or wrong bearer token", "ApiError") }
            }},
            "/v1/sim/stats": { "get": {
                "summary": "Simulator only: journal bounds, malformed frames sent, connections, simulated time",
                "security": [{ "bearer": [] }],
                "responses": { "200": { "description": "OK", "content": { "application/json": { "schema": { "type": "object" } } } },
                               "401": response("Missing or wrong bearer token", "ApiError") }
            }},
            "/metrics": { "get": {
                "summary": "Simulator only: the fleet as Prometheus metrics (text exposition format 0.0.4)",
                "security": [{ "bearer": [] }],
                "responses": { "200": { "description": "OK", "content": { "text/plain": { "schema": { "type": "string" } } } },
                               "401": response("Missing or wrong bearer token", "ApiError") }
            }}
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": schemas
        }
    })
}
