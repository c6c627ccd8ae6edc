//! The daemon's OpenAPI document, used to check what the daemon answers: every JSON response a
//! test receives through [`crate::daemon::Daemon`] is validated against the schema the document
//! gives for its path, method and status (JSON Schema 2020-12, which OpenAPI 3.1 uses).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

pub struct ApiDocument {
    pub document: Value,
    /// Compiled validators by schema text: benchmarks make thousands of calls.
    compiled: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

/// How a response relates to the document.
#[derive(Debug, PartialEq, Eq)]
pub enum Match {
    /// The path and method are documented and the body fits the schema.
    Valid,
    /// No documented path matches: fine only for the router's own 404 (and 405).
    NoPath,
}

impl ApiDocument {
    pub fn new(document: Value) -> ApiDocument {
        ApiDocument { document, compiled: Mutex::default() }
    }

    /// The documented path template that `path` (no query) matches, preferring literal segments
    /// (`/v1/images/upload` over `/v1/images/{id}`).
    pub fn template_for(&self, path: &str) -> Option<String> {
        let path = path.split('?').next().unwrap_or(path);
        let wanted: Vec<&str> = path.split('/').collect();
        let paths = self.document["paths"].as_object()?;
        paths
            .keys()
            .filter_map(|template| {
                let segments: Vec<&str> = template.split('/').collect();
                if segments.len() != wanted.len() {
                    return None;
                }
                let mut literal = 0;
                for (t, w) in segments.iter().zip(&wanted) {
                    if t.starts_with('{') && t.ends_with('}') {
                        if w.is_empty() {
                            return None;
                        }
                    } else if t == w {
                        literal += 1;
                    } else {
                        return None;
                    }
                }
                Some((literal, template.clone()))
            })
            .max()
            .map(|(_, template)| template)
    }

    /// Checks one response; `Err` says what does not match the document.
    pub fn check(&self, method: &str, path: &str, status: u16, content_type: &str, body: &Value) -> Result<Match, String> {
        let Some(template) = self.template_for(path) else {
            return if matches!(status, 404 | 405) && body.is_null() {
                Ok(Match::NoPath)
            } else {
                Err(format!("{method} {path} answered {status} but no documented path matches it"))
            };
        };
        let method = method.to_ascii_lowercase();
        let Some(operation) = self.document["paths"][&template].get(&method) else {
            return if status == 405 { Ok(Match::Valid) } else { Err(format!("{method} {template} is served ({status}) but not documented")) };
        };
        let responses = &operation["responses"];
        let range = format!("{}XX", status / 100);
        let Some(response) = responses.get(status.to_string()).or_else(|| responses.get(&range)).or_else(|| responses.get("default")) else {
            return Err(format!("{method} {template}: status {status} is not documented"));
        };
        let media = content_type.split(';').next().unwrap_or("").trim();
        if media != "application/json" {
            return Ok(Match::Valid);
        }
        let Some(schema) = response["content"]["application/json"].get("schema") else {
            return Err(format!("{method} {template} {status}: a JSON body where the document gives none"));
        };
        self.validate(schema, body).map_err(|e| format!("{method} {path} ({template}) {status}: {e}\nbody: {body}"))?;
        Ok(Match::Valid)
    }

    /// Validates `instance` against a schema of the document, resolving its `#/components/...` refs.
    pub fn validate(&self, schema: &Value, instance: &Value) -> Result<(), String> {
        let key = schema.to_string();
        let cached = self.compiled.lock().unwrap_or_else(|e| e.into_inner()).get(&key).cloned();
        let validator = match cached {
            Some(v) => v,
            None => {
                let mut rooted = json!({ "$schema": "https://json-schema.org/draft/2020-12/schema", "components": self.document["components"] });
                if let (Some(root), Some(own)) = (rooted.as_object_mut(), schema.as_object()) {
                    for (k, v) in own {
                        root.insert(k.clone(), v.clone());
                    }
                }
                let compiled = Arc::new(jsonschema::draft202012::new(&rooted).map_err(|e| format!("the document's schema does not compile: {e}"))?);
                self.compiled.lock().unwrap_or_else(|e| e.into_inner()).insert(key, compiled.clone());
                compiled
            }
        };
        let errors: Vec<String> = validator.iter_errors(instance).map(|e| format!("{} at {}", e, e.instance_path())).collect();
        if errors.is_empty() { Ok(()) } else { Err(errors.join("; ")) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> ApiDocument {
        ApiDocument::new(json!({
            "paths": {
                "/v1/things": {"get": {"responses": {"200": {"content": {"application/json": {"schema": {"type": "array", "items": {"$ref": "#/components/schemas/Thing"}}}}}}}},
                "/v1/things/{id}": {"get": {"responses": {"200": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}}},
                                                          "4XX": {"content": {"application/json": {"schema": {"type": "object", "required": ["error"]}}}}}}},
                "/v1/things/special": {"get": {"responses": {"204": {}}}}
            },
            "components": {"schemas": {"Thing": {"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}}}}
        }))
    }

    #[test]
    fn literal_segments_win_over_parameters() {
        assert_eq!(doc().template_for("/v1/things/special").as_deref(), Some("/v1/things/special"));
        assert_eq!(doc().template_for("/v1/things/7?x=1").as_deref(), Some("/v1/things/{id}"));
        assert_eq!(doc().template_for("/v1/nothing"), None);
    }

    #[test]
    fn bodies_are_checked_against_referenced_schemas() {
        let d = doc();
        assert_eq!(d.check("GET", "/v1/things", 200, "application/json", &json!([{"id": 1}])), Ok(Match::Valid));
        assert!(d.check("GET", "/v1/things", 200, "application/json", &json!([{"id": "one"}])).is_err());
        assert!(d.check("GET", "/v1/things/1", 404, "application/json", &json!({"error": {}})).is_ok());
        assert!(d.check("GET", "/v1/things/1", 404, "application/json", &json!({"oops": 1})).is_err());
        assert!(d.check("GET", "/v1/things/1", 500, "application/json", &json!({})).is_err(), "undocumented status");
        assert!(d.check("POST", "/v1/things", 201, "application/json", &json!({})).is_err(), "undocumented method");
        assert_eq!(d.check("GET", "/v1/unknown", 404, "", &Value::Null), Ok(Match::NoPath));
        assert!(d.check("GET", "/v1/unknown", 200, "text/plain", &json!("x")).is_err());
    }
}
