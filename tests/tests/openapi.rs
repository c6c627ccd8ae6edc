//! The OpenAPI document (`/v1/openapi.json`) against the daemon that serves it: every documented
//! operation is routed, nothing else is routed on a documented path, the API module registers no
//! route outside the document, and a client that knows only the document can list nodes. (Every
//! other test's JSON answers are validated against the document by `Daemon::call`.)

use metalhost_tests::daemon::{Daemon, TOKEN, node_body, switch_body};
use metalhost_tests::openapi::ApiDocument;
use reqwest::Method;
use serde_json::Value;

const METHODS: [&str; 5] = ["get", "put", "post", "patch", "delete"];

async fn document(daemon: &Daemon) -> Value {
    let response = daemon.http_client().get(format!("{}/v1/openapi.json", daemon.url)).send().await.expect("fetch");
    assert_eq!(response.status(), 200, "the document is served without a token");
    response.json().await.expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_describes_every_route_and_only_those() {
    let daemon = Daemon::start();
    let doc = document(&daemon).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    for expected in ["/v1/nodes", "/v1/nodes/{id}/events", "/v1/instances/{id}", "/v1/agent/task", "/v1/images/{id}/data", "/healthz", "/metrics"] {
        assert!(paths.contains_key(expected), "{expected} is missing from the document");
    }
    let schemes = doc["components"]["securitySchemes"].as_object().expect("security schemes");
    assert_eq!(schemes["operator"]["scheme"], "bearer");

    let http = daemon.http_client();
    let mut ids = std::collections::HashSet::new();
    for (template, item) in paths {
        // A parameter no resource has: a routed operation answers with our error body, the
        // router's own 404 has none.
        let path = template.split('/').map(|s| if s.starts_with('{') { "no-such-thing-4711" } else { s }).collect::<Vec<_>>().join("/");
        for method in METHODS {
            let request = http.request(Method::from_bytes(method.to_uppercase().as_bytes()).expect("method"), format!("{}{path}", daemon.url));
            let response = request.bearer_auth(TOKEN).header("content-type", "application/json").body("{}").send().await.expect("send");
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            match item.get(method) {
                Some(operation) => {
                    let id = operation["operationId"].as_str().expect("operationId").to_owned();
                    assert!(ids.insert(id.clone()), "operationId {id} is used twice");
                    assert!(operation["responses"].get("4XX").is_some(), "{method} {template}: its errors are not documented");
                    assert_ne!(status, 405, "{method} {template} is documented but not routed");
                    assert!(status != 404 || body.contains("\"error\""), "{method} {template} is documented but not routed (404 {body:?})");
                }
                None => assert_eq!(status, 405, "{method} {template} is routed ({status}) but not documented"),
            }
        }
    }
    // Operator routes say they need the operator token, and refuse without it.
    assert_eq!(doc["paths"]["/v1/nodes"]["get"]["security"][0]["operator"], serde_json::json!([]));
    let (status, _) = daemon.call_with_token(Method::GET, "/v1/nodes", None, None).await;
    assert_eq!(status, 401);
    assert!(doc["paths"]["/healthz"]["get"].get("security").is_none());
}

/// Routes are added only through `OpenApiRouter::routes` with a documented handler; a plain axum
/// `.route(` in the API module would be served but missing from the document.
#[test]
fn the_api_module_has_no_undocumented_route() {
    let dir = metalhost_tests::paths::workspace_root().join("host/src/api");
    let mut offenders = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("read host/src/api") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read");
        let handlers = text.matches("#[utoipa::path(").count();
        let routed = text.matches("routes!(").count();
        if text.contains(".route(\"") || text.contains(".route_service(") || text.contains(".nest(") {
            offenders.push(path.display().to_string());
        }
        assert!(routed == 0 || handlers > 0, "{} routes handlers but documents none", path.display());
    }
    assert!(offenders.is_empty(), "plain axum routes (undocumented) in {offenders:?}");
}

/// A client that knows only the document: it finds `list_nodes` and the scheme it needs, calls
/// it, and checks the answer against the schema the document gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_driven_by_the_document_lists_nodes() {
    let daemon = Daemon::start();
    let (status, switch) = daemon.post("/v1/switches", &switch_body("sw1", "pw")).await;
    assert_eq!(status, 201, "{switch}");
    let (status, node) = daemon.post("/v1/nodes", &node_body(1, switch["id"].as_i64().expect("id"), "bmc-pw")).await;
    assert_eq!(status, 201, "{node}");

    let doc = document(&daemon).await;
    let (template, method, operation) = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(t, item)| METHODS.iter().filter_map(move |m| item.get(*m).map(|op| (t.clone(), *m, op.clone()))))
        .find(|(_, _, op)| op["operationId"] == "list_nodes")
        .expect("an operation list_nodes");
    let scheme_name = operation["security"][0].as_object().and_then(|o| o.keys().next().cloned()).expect("a security requirement");
    let scheme = &doc["components"]["securitySchemes"][&scheme_name];
    assert_eq!((scheme["type"].as_str(), scheme["scheme"].as_str()), (Some("http"), Some("bearer")));
    let response = daemon
        .http_client()
        .request(Method::from_bytes(method.to_uppercase().as_bytes()).expect("method"), format!("{}{template}", daemon.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    let schema = &operation["responses"]["200"]["content"]["application/json"]["schema"];
    let api = ApiDocument::new(doc.clone());
    api.validate(schema, &body).expect("the list matches its schema");
    assert_eq!(body[0]["name"], "node1");
    assert!(body[0].get("bmc_password").is_none(), "no password in the API");
    // A body that breaks the schema is caught, so the check above can fail.
    let mut broken = body.clone();
    broken[0]["cpus"] = Value::String("eight".into());
    assert!(api.validate(schema, &broken).is_err());
}

/// Times are RFC 3339 UTC; durations stay numbers with their unit in the name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn times_are_rfc3339() {
    let daemon = Daemon::start();
    let (_, switch) = daemon.post("/v1/switches", &switch_body("sw1", "pw")).await;
    daemon.post("/v1/nodes", &node_body(1, switch["id"].as_i64().expect("id"), "bmc-pw")).await;
    let (status, events) = daemon.get("/v1/nodes/node1/events").await;
    assert_eq!(status, 200);
    let at = events[0]["at"].as_str().expect("`at` is a string");
    let parsed: jiff::Timestamp = at.parse().expect("RFC 3339");
    let age = jiff::Timestamp::now().duration_since(parsed);
    assert!(age.as_secs() >= 0 && age.as_secs() < 600, "{at} is not about now");
    assert!(at.ends_with('Z'), "{at} is UTC");
}
