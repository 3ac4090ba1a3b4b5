//! The OpenAPI 3 document of the team server's HTTP side, built from the types server and
//! console share (`wire.rs`). `docs/team/openapi.json` is this document; a test fails
//! when it is stale or when its paths differ from `server::ROUTES`.

use schemars::generate::SchemaSettings;
use serde_json::{json, Value};

use super::wire::*;

fn response(description: &str, schema: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } }
    })
}

fn schema_header() -> Value {
    json!({ "name": SCHEMA_HEADER, "in": "header", "required": true,
            "schema": { "type": "integer", "minimum": OLDEST_CONSOLE_SCHEMA },
            "description": format!("The sync contract's version the console speaks ({SCHEMA} in this build).") })
}

fn team_param() -> Value {
    json!({ "name": "team", "in": "path", "required": true, "schema": { "type": "string" },
            "description": "The team's name" })
}

fn refusals(responses: &mut serde_json::Map<String, Value>, team: bool) {
    responses.insert(
        "401".into(),
        response(
            "Missing, unknown or revoked token; nothing changed",
            "TeamError",
        ),
    );
    responses.insert(
        "426".into(),
        response(
            "schema_too_old: the console is older than this server supports; nothing changed",
            "TeamError",
        ),
    );
    if team {
        responses.insert(
            "403".into(),
            response("not_a_member: the person is not in this team", "TeamError"),
        );
    }
    responses.insert(
        "503".into(),
        response(
            "database_unavailable: nothing was changed; try again",
            "TeamError",
        ),
    );
}

pub fn document() -> Value {
    let mut generator = SchemaSettings::openapi3().into_generator();
    generator.subschema_for::<PushRequest>();
    generator.subschema_for::<PushResponse>();
    generator.subschema_for::<Frame>();
    generator.subschema_for::<Inbound>();
    generator.subschema_for::<TeamError>();
    let schemas = generator.take_definitions(true);

    let mut me = serde_json::Map::new();
    me.insert("200".into(), json!({ "description": "Who the token is, the teams they are in, the server's schema",
        "content": { "application/json": { "schema": { "type": "object", "properties": {
            "name": { "type": "string" }, "teams": { "type": "array", "items": { "type": "string" } },
            "schema": { "type": "integer" } } } } } }));
    refusals(&mut me, false);
    let mut push = serde_json::Map::new();
    push.insert("200".into(), response(
        "One outcome per record, in order: accepted (with its sequence), duplicate (a retried push), refused \
         (a stale command, with the current value and who set it when) or invalid (with why)", "PushResponse"));
    push.insert(
        "400".into(),
        response(
            "invalid_push: the body does not parse, or holds more than 500 records",
            "TeamError",
        ),
    );
    refusals(&mut push, true);
    let mut sync = serde_json::Map::new();
    sync.insert(
        "101".into(),
        json!({ "description": "Switching protocols: Frame messages follow (TEAM.md)" }),
    );
    refusals(&mut sync, true);

    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Firebreak team server",
            "version": SCHEMA.to_string(),
            "description": "Incidents shared between consoles (TEAM.md). Every accepted record gets its team's next \
                            sequence, gap-free; pushes are idempotent by record id; commands carry the value their \
                            sender saw and are refused, never applied, when it is stale. The server never redirects."
        },
        "paths": {
            "/v1/me": { "get": {
                "summary": "Who the token is",
                "security": [{ "bearer": [] }],
                "parameters": [schema_header()],
                "responses": me
            }},
            "/v1/teams/{team}/records": { "post": {
                "summary": "Push records made on a console, oldest first (at most 500; one transaction)",
                "security": [{ "bearer": [] }],
                "parameters": [team_param(), schema_header()],
                "requestBody": { "required": true, "content": { "application/json": {
                    "schema": { "$ref": "#/components/schemas/PushRequest" } } } },
                "responses": push
            }},
            "/v1/teams/{team}/sync": { "get": {
                "summary": "The team's stream (WebSocket upgrade): every record after `after`, in order, then live; \
                            presence and heartbeats between. The console sends Inbound messages",
                "security": [{ "bearer": [] }],
                "parameters": [team_param(), schema_header(),
                    { "name": "after", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 0 },
                      "description": "The last sequence the console applied (0: from the start)" },
                    { "name": "console", "in": "query", "required": true, "schema": { "type": "string", "format": "uuid" },
                      "description": "The console's id, for presence" }],
                "responses": sync
            }}
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": schemas
        }
    })
}
