//! `GET /openapi.json`: a hand-written OpenAPI 3.1 document for every route,
//! rendered once.

use std::sync::OnceLock;

use axum::body::Bytes;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

fn project_header(required: bool) -> Value {
    json!({"name": "X-LexAlign-Project", "in": "header", "required": required,
           "schema": {"type": "string", "maxLength": 200}})
}

fn agent_headers() -> Vec<Value> {
    ["X-LexAlign-Agent-Model", "X-LexAlign-Agent-Version"]
        .iter()
        .map(|h| json!({"name": h, "in": "header", "required": false, "schema": {"type": "string", "maxLength": 200}}))
        .collect()
}

fn query(name: &str, required: bool, max: Option<usize>) -> Value {
    let mut schema = json!({"type": "string"});
    if let Some(m) = max {
        schema["maxLength"] = json!(m);
    }
    json!({"name": name, "in": "query", "required": required, "schema": schema})
}

fn dependent_params(extra: Vec<Value>) -> Value {
    let mut v = vec![project_header(true)];
    v.extend(agent_headers());
    v.extend(extra);
    Value::Array(v)
}

fn resp(desc: &str, schema: Value) -> Value {
    json!({"description": desc, "content": {"application/json": {"schema": schema}}})
}

fn detail() -> Value {
    resp("Error", json!({"$ref": "#/components/schemas/Detail"}))
}

fn invalid() -> Value {
    resp(
        "Validation error",
        json!({"$ref": "#/components/schemas/ValidationError"}),
    )
}

fn obj() -> Value {
    json!({"type": "object"})
}

fn body(schema: Value) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": schema}}})
}

fn report(summary: &str, params: Vec<Value>) -> Value {
    json!({"get": {"summary": summary, "parameters": params,
                   "responses": {"200": resp("Report", obj()), "422": invalid()}}})
}

fn document() -> Value {
    let verdict = json!({
        "type": "object",
        "required": ["verdict", "reason", "package", "version", "resolved_version", "registry_status",
                     "replacement", "version_constraint", "license", "cve_ids", "max_cvss",
                     "is_requestable", "needs_rationale", "auto_request_approval"],
        "properties": {
            "verdict": {"type": "string", "enum": ["ALLOWED", "PROVISIONALLY_ALLOWED", "DENIED"]},
            "reason": {"type": "string"},
            "package": {"type": "string"},
            "version": {"type": ["string", "null"]},
            "resolved_version": {"type": ["string", "null"]},
            "registry_status": {"type": ["string", "null"]},
            "replacement": {"type": ["string", "null"]},
            "version_constraint": {"type": ["string", "null"]},
            "license": {"type": ["string", "null"]},
            "cve_ids": {"type": "array", "items": {"type": "string"}},
            "max_cvss": {"type": ["number", "null"]},
            "is_requestable": {"type": "boolean"},
            "needs_rationale": {"type": "boolean"},
            "auto_request_approval": {"type": "boolean"},
            "denial_category": {"type": ["string", "null"],
                "enum": ["registry", "license", "cve", "malicious", "not-found", "upstream", null]},
            "requirement": {"type": ["string", "null"]},
            "suggested_requirement": {"type": ["string", "null"]},
            "fixed_versions": {"type": "array", "items": {"type": "object",
                "properties": {"id": {"type": "string"}, "fixed": {"type": "string"}}}},
            "advisories": {"type": "array", "items": {"type": "object"}},
            "upstream_error": {"type": ["string", "null"]},
            "suggestions": {"type": "array", "items": {"type": "string"},
                "description": "For not-found: real names close to the one asked, closest first"},
            "override": {"type": ["object", "null"], "description": "Set when an operator override let a denial through",
                "properties": {"id": {"type": "string"}, "approver": {"type": "string"},
                    "justification": {"type": "string"}, "expires_at": {"type": "string", "format": "date-time"},
                    "original_reason": {"type": "string"}, "original_category": {"type": "string"}}}
        }
    });
    let override_row = json!({"type": "object", "properties": {
        "id": {"type": "string"}, "package": {"type": "string"}, "project": {"type": "string"},
        "version": {"type": ["string", "null"]}, "justification": {"type": "string"},
        "approver": {"type": "string"}, "created_at": {"type": "string"}, "expires_at": {"type": "string"},
        "revoked_at": {"type": ["string", "null"]}, "revoked_by": {"type": ["string", "null"]}}});
    let reload_result = json!({"type": "object", "properties": {
        "ok": {"type": "boolean"}, "previous_version": {"type": ["string", "null"]},
        "new_version": {"type": "string"}, "package_count": {"type": "integer"},
        "added_packages": {"type": "integer"}, "approved_requests": {"type": "integer"},
        "detail": {"type": "string"}, "changed": {"type": "boolean"}}});
    let project_q = vec![query("project", false, None)];
    let name_param = json!({"name": "name", "in": "path", "required": true,
        "description": "A distribution name (PEP 503); anything else is 404",
        "schema": {"type": "string", "maxLength": 200}});
    let version_param = json!({"name": "version", "in": "path", "required": true,
        "description": "PEP 440 characters (letters, digits, `.+!_-`), starting with a letter or digit; anything else is 404",
        "schema": {"type": "string", "maxLength": 100, "pattern": "^[A-Za-z0-9][A-Za-z0-9.+!_-]*$"}});
    let records = json!({"type": "object", "required": ["records"], "properties": {
        "records": {"type": "array", "items": {"type": "object", "description": "An OSV record"}}}});
    let upstream_route = |summary: &str, params: Vec<Value>, ok: Value| {
        json!({"get": {
        "summary": summary, "parameters": params,
        "description": "Upstream sharing (team mode, docs/team.md): answered from the team server's caches or one fetch of its own upstream. Agent role.",
        "responses": {"200": resp("The team's upstream answer", ok),
            "401": detail(), "404": resp("Not a distribution name or version", json!({"$ref": "#/components/schemas/Detail"})),
            "503": resp("The team's own upstream did not answer (the caller asks its own)", json!({"$ref": "#/components/schemas/Detail"}))}}})
    };
    let found = |field: &str| {
        json!({"type": "object", "required": ["found"], "properties": {
        "found": {"type": "boolean", "description": "false: the index does not know it (a real answer)"},
        field: {"type": "object"}}})
    };
    let mut team_paths = json!({
        "/api/v1/registry/events": {"get": {
            "summary": "Registry changes as server-sent events (team mode: what personal daemons follow)",
            "description": "A `registry` event at once, then one per change (`id:` = the registry generation); a `: keep-alive` comment every LEXALIGN_TEAM_KEEPALIVE_SECONDS.",
            "responses": {"200": {"description": "Event stream; each event's data is JSON",
                "content": {"text/event-stream": {"schema": {"type": "string"},
                    "x-event-data": {"type": "object", "properties": {"version": {"type": "string"},
                        "registry_generation": {"type": "integer"}, "etag": {"type": "string"}}}}}},
                "401": detail()}}},
        "/api/v1/audit/ingest": {"post": {
            "summary": "A personal daemon's audit rows into this chain, exactly once by row_id (agent role)",
            "requestBody": body(json!({"type": "object", "required": ["rows"], "properties": {
                "rows": {"type": "array", "maxItems": 500, "items": {"type": "object", "required": ["row_id", "ts"],
                    "description": "row_id, ts and the audit columns of the personal daemon's row"}}}})),
            "responses": {"200": resp("Ingested", json!({"type": "object", "properties": {
                    "accepted": {"type": "integer"}, "duplicates": {"type": "integer"},
                    "new": {"type": "array", "items": {"type": "string"}},
                    "duplicate": {"type": "array", "items": {"type": "string"}}}})),
                "401": detail(),
                "403": resp("A project-scoped key shipping another project's rows", json!({"$ref": "#/components/schemas/Detail"})),
                "413": detail(), "422": detail(), "503": detail()}}},
        "/api/v1/team/whoami": {"get": {"summary": "Who this server takes the caller's key for, and its registry version and generation",
            "responses": {"200": resp("Identity", json!({"type": "object", "properties": {
                "id": {"type": "string"}, "role": {"type": "string"}, "method": {"type": ["string", "null"]},
                "project": {"type": ["string", "null"]}, "registry_version": {"type": "string"},
                "registry_generation": {"type": "integer"}, "etag": {"type": "string"}}})), "401": detail()}}},
        "/api/v1/team/status": {"get": {"summary": "This daemon's team link (`lex-align team status`)",
            "responses": {"200": resp("Link", json!({"type": "object", "required": ["mode"], "properties": {
                "mode": {"type": "string", "enum": ["personal", "standalone"]},
                "url": {"type": "string"}, "state": {"type": "string"}, "identity": {"type": ["string", "null"]},
                "registry_version": {"type": ["string", "null"]}, "lag_generations": {"type": ["integer", "null"]},
                "degraded": {"type": ["object", "null"]}, "outbox": {"type": "object"}}}))}}},
        "/api/v1/upstream/project/{name}": upstream_route("A project's releases from the team's index caches",
            vec![name_param.clone()], found("project")),
        "/api/v1/upstream/release/{name}/{version}": upstream_route("One release's license metadata from the team's index caches",
            vec![name_param.clone(), version_param.clone()], found("metadata")),
        "/api/v1/upstream/release-vulns/{name}/{version}": upstream_route("The index's vulnerabilities of one release (OSV records)",
            vec![name_param.clone(), version_param], records.clone()),
        "/api/v1/upstream/advisories/{name}": upstream_route("Every advisory of a package from the team's advisory source",
            vec![name_param], records)
    });
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {"title": "lex-align server", "version": "2.2.0",
                 "description": "Dependency-policy verdicts for Python packages (lex-align daemon)."},
        "paths": {
            "/api/v1/evaluate": {"get": {
                "summary": "Verdict for one package",
                "parameters": dependent_params(vec![
                    query("package", false, Some(200)), query("version", false, Some(100)),
                    query("requirement", false, Some(1000)),
                    query("envelope", false, None), query("format", false, None)]),
                "description": "`envelope=dsse` (or `Accept: application/vnd.dsse.envelope.v1+json`) answers a signed DSSE envelope; `format=vsa` makes its payload an in-toto SLSA verification summary.",
                "responses": {"200": resp("Verdict (a policy denial is still 200)", json!({"$ref": "#/components/schemas/Verdict"})),
                              "400": detail(), "422": invalid(), "503": detail()}}},
            "/api/v1/evaluate/batch": {"post": {
                "summary": "Verdicts for many requirements in one round of upstream work",
                "parameters": dependent_params(vec![query("envelope", false, None), query("format", false, None)]),
                "requestBody": body(json!({"oneOf": [
                    {"type": "object", "required": ["requirements"], "properties": {"requirements":
                        {"type": "array", "maxItems": 500, "items": {"type": "string"}}}},
                    {"type": "object", "required": ["packages"], "properties": {"packages":
                        {"type": "array", "maxItems": 500, "items": {"type": "object", "properties": {
                            "package": {"type": "string"}, "version": {"type": "string"},
                            "requirement": {"type": "string"}}}}}}]})),
                "responses": {"200": resp("Results in input order; invalid items carry `error`",
                    json!({"type": "object", "properties": {"results": {"type": "array", "items": {"oneOf": [
                        {"$ref": "#/components/schemas/Verdict"},
                        {"type": "object", "properties": {"error": {"type": "object"}}}]}}}})),
                              "400": detail(), "413": detail(), "422": invalid(), "503": detail()}}},
            "/api/v1/approval-requests": {"post": {
                "summary": "Record a request for human review (never a registry write)",
                "parameters": dependent_params(vec![]),
                "requestBody": body(json!({"type": "object", "required": ["package", "rationale"], "properties": {
                    "package": {"type": "string", "minLength": 1, "maxLength": 200},
                    "rationale": {"type": "string", "minLength": 1}}})),
                "responses": {"202": resp("Recorded (and, with a reviewing proposer such as github, queued as a pull request)",
                    json!({"type": "object", "properties": {
                        "request_id": {"type": "string"}, "status": {"type": "string"},
                        "package": {"type": "string"}, "project": {"type": "string"},
                        "agent_model": {"type": ["string", "null"]}, "agent_version": {"type": ["string", "null"]},
                        "proposal": {"type": "object", "properties": {
                            "backend": {"type": "string"},
                            "status": {"type": "string", "enum": ["recorded", "queued"]}}}}})), "400": detail(),
                              "409": resp("Refused: the policy denies this package", json!({"$ref": "#/components/schemas/Detail"})),
                              "422": invalid()}}},
            "/api/v1/health": {"get": {"summary": "Health (always 200)", "responses": {"200": resp("Health", json!({
                "type": "object", "properties": {
                    // Authenticated callers only (docs/plugins.md).
                    "plugins": {"type": "array", "items": {"type": "object",
                        "required": ["path", "name", "kind", "abi", "state", "error"], "properties": {
                        "path": {"type": "string"}, "name": {"type": ["string", "null"]},
                        "kind": {"type": ["string", "null"], "enum": ["authenticator", "proposer", null]},
                        "abi": {"type": ["integer", "null"]},
                        "state": {"type": "string", "enum": ["ready", "failed", "unhealthy"]},
                        "error": {"type": ["string", "null"]}}}}}}))}}},
            "/api/v1/registry": {"get": {"summary": "The live registry", "responses": {"200": resp("Registry", obj())}}},
            "/api/v1/registry/pending": {"get": {"summary": "Triage queue",
                "responses": {"200": resp("Pending", json!({"type": "object", "properties": {
                    "explicit": {"type": "array"}, "implicit": {"type": "array"}}}))}}},
            "/api/v1/registry/proposals": {"post": {
                "summary": "Operator proposal, run through the configured proposer (log_only, local_file, local_git, github)",
                "parameters": dependent_params(vec![]),
                "requestBody": body(json!({"type": "object", "required": ["name", "status"], "properties": {
                    "name": {"type": "string", "minLength": 1}, "status": {"type": "string", "minLength": 1},
                    "reason": {"type": "string"}, "replacement": {"type": "string"},
                    "min_version": {"type": "string"}, "max_version": {"type": "string"},
                    "rationale": {"type": "string"}}})),
                "responses": {"200": resp("Proposal result", json!({"type": "object", "properties": {
                    "backend": {"type": "string"},
                    "status": {"type": "string", "enum": ["opened", "amended", "applied", "logged", "failed"]},
                    "url": {"type": ["string", "null"]}, "branch": {"type": ["string", "null"]},
                    "commit_sha": {"type": ["string", "null"]}, "detail": {"type": "string"}}})),
                              "400": detail(), "422": invalid(), "502": detail()}}},
            "/api/v1/registry/parse-yaml": {"post": {
                "summary": "Validate registry YAML and return the compiled JSON",
                "requestBody": body(json!({"type": "object", "required": ["yaml_text"],
                    "properties": {"yaml_text": {"type": "string", "minLength": 1}}})),
                "responses": {"200": resp("Compiled registry", obj()), "400": detail(), "422": invalid()}}},
            "/api/v1/registry/reload": {"post": {"summary": "Reload REGISTRY_PATH",
                "responses": {"200": resp("Reload result", reload_result), "409": detail()}}},
            "/api/v1/registry/webhook": {"post": {
                "summary": "GitHub-style webhook (HMAC-SHA256); a merged PR into the default branch reloads",
                "parameters": [
                    {"name": "X-Hub-Signature-256", "in": "header", "required": true, "schema": {"type": "string"}},
                    {"name": "X-GitHub-Event", "in": "header", "required": false, "schema": {"type": "string"}},
                    {"name": "X-GitHub-Delivery", "in": "header", "required": true, "schema": {"type": "string"}}],
                "requestBody": body(obj()),
                "responses": {"200": resp("Handled or ignored", obj()), "400": detail(), "401": detail(),
                              "409": resp("Delivery already received (replay)", json!({"$ref": "#/components/schemas/Detail"})),
                              "503": detail()}}},
            "/api/v1/reports/legal": report("License denials", project_q.clone()),
            "/api/v1/reports/security": report("CVE denials and alerts", project_q.clone()),
            "/api/v1/reports/approval-requests": report("Approval requests",
                vec![query("project", false, None), query("status", false, None)]),
            "/api/v1/reports/projects": {"get": {"summary": "Projects", "responses": {"200": resp("Report", obj())}}},
            "/api/v1/reports/agents": report("Agent activity", project_q),
            "/api/v1/keys": {"get": {"summary": "The daemon's public keys (Ed25519) that sign verdicts and audit checkpoints",
                "responses": {"200": resp("Keys", json!({"type": "object", "properties": {"keys": {"type": "array", "items":
                    {"type": "object", "properties": {"key_id": {"type": "string"}, "alg": {"type": "string"},
                        "public_key": {"type": "string", "description": "base64 of the 32 raw bytes"}}}}}}))}}},
            "/api/v1/audit/verify": {"get": {"summary": "Verify the audit log's hash chain",
                "responses": {"200": resp("Chain holds", json!({"$ref": "#/components/schemas/VerifyReport"})),
                              "409": resp("Chain broken", json!({"$ref": "#/components/schemas/VerifyReport"}))}}},
            "/api/v1/overrides": {
                "post": {"summary": "Grant an override (operator): one DENIED package allowed for one project until expires_at",
                    "requestBody": body(json!({"type": "object", "required": ["package", "project", "justification", "expires_at"],
                        "properties": {"package": {"type": "string"}, "project": {"type": "string"},
                            "version": {"type": ["string", "null"]},
                            "justification": {"type": "string", "minLength": 20},
                            "expires_at": {"type": "string", "description": "RFC 3339 time or date; at most 90 days ahead"}}})),
                    "responses": {"201": resp("Granted", override_row.clone()), "403": detail(), "422": invalid()}},
                "get": {"summary": "Active overrides (operator); ?all=true adds lapsed and revoked ones",
                    "parameters": [query("all", false, None)],
                    "responses": {"200": resp("Overrides", json!({"type": "object", "properties": {
                        "overrides": {"type": "array", "items": override_row}}}))}}},
            "/api/v1/overrides/{id}": {"delete": {"summary": "Revoke an override (operator)",
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"200": resp("Revoked", obj()), "404": detail()}}},
            "/metrics": {"get": {"summary": "Prometheus metrics",
                "responses": {"200": {"description": "Text exposition format", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
            "/openapi.json": {"get": {"summary": "This document", "responses": {"200": resp("OpenAPI", obj())}}}
        },
        "security": [{"bearer": []}],
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                "description": "API key (`lex-align admin keys create`) or a token the configured authenticator accepts; only when AUTH_ENABLED=true"}},
            "schemas": {
            "Verdict": verdict,
            "Detail": {"type": "object", "required": ["detail"], "properties": {"detail": {"type": "string"}}},
            "ValidationError": {"type": "object", "properties": {"detail": {"type": "array", "items": {
                "type": "object", "required": ["type", "loc", "msg"], "properties": {
                    "type": {"type": "string"}, "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                    "msg": {"type": "string"}, "input": {}, "ctx": {"type": "object"}}}}}},
            "VerifyReport": {"type": "object", "properties": {
                "rows": {"type": "integer"}, "ok": {"type": "boolean"},
                "first_broken": {"type": ["object", "null"]}, "head_hash": {"type": "string"}}}
        }}
    });
    // The team routes (team/), kept apart so the main table stays readable.
    if let (Some(all), Some(team)) = (doc["paths"].as_object_mut(), team_paths.as_object_mut()) {
        all.append(team);
    }
    doc
}

/// The route list, for tests that check every route is documented.
pub fn document_json() -> &'static Bytes {
    static DOC: OnceLock<Bytes> = OnceLock::new();
    DOC.get_or_init(|| Bytes::from(serde_json::to_vec(&document()).unwrap_or_default()))
}

pub async fn openapi() -> Response {
    let mut r = (StatusCode::OK, document_json().clone()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}
