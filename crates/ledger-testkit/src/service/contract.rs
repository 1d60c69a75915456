//! The contract check of every response: the served OpenAPI document, with
//! compiled response validators.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use super::ApiResponse;

/// The served OpenAPI document, with compiled response validators.
pub(crate) struct Spec {
    pub(crate) document: Value,
    validators: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

impl Spec {
    pub(crate) fn new(document: Value) -> Self {
        Self {
            document,
            validators: Mutex::default(),
        }
    }

    /// The path template of the spec that `path` matches, if any. A literal
    /// segment beats a `{parameter}`.
    fn template_for(&self, path: &str) -> Option<String> {
        let segments: Vec<&str> = path.split('/').collect();
        let paths = self.document["paths"].as_object()?;
        paths
            .keys()
            .filter_map(|template| {
                let parts: Vec<&str> = template.split('/').collect();
                if parts.len() != segments.len() {
                    return None;
                }
                let mut literals = 0;
                for (part, segment) in parts.iter().zip(&segments) {
                    if part.starts_with('{') && part.ends_with('}') {
                        if segment.is_empty() {
                            return None;
                        }
                    } else if part == segment {
                        literals += 1;
                    } else {
                        return None;
                    }
                }
                Some((literals, template.clone()))
            })
            .max()
            .map(|(_, template)| template)
    }

    pub(crate) fn check(&self, method: &str, path: &str, response: &ApiResponse) {
        let what = format!("{} {path} → {}", method.to_uppercase(), response.status);
        let request_id = response
            .header("x-request-id")
            .unwrap_or_else(|| panic!("{what}: no X-Request-ID header"));
        let content_type = response
            .header("content-type")
            .map(|ct| ct.split(';').next().unwrap_or_default().trim().to_owned());

        if response.status >= 400 {
            assert_eq!(
                content_type.as_deref(),
                Some("application/problem+json"),
                "{what}: errors are problem+json"
            );
            let body = response
                .body
                .as_object()
                .unwrap_or_else(|| panic!("{what}: no body"));
            let mut keys: Vec<&str> = body.keys().map(String::as_str).collect();
            keys.sort_unstable();
            // A refused batch names its failing leg; nothing else carries one.
            if path == "/batches" && body.contains_key("leg") {
                assert!(
                    body["leg"].as_u64().is_some(),
                    "{what}: leg is an index from 0"
                );
                keys.retain(|key| *key != "leg");
            }
            assert_eq!(
                keys,
                ["code", "detail", "request_id", "status", "title", "type"],
                "{what}: problem fields"
            );
            assert_eq!(
                body["status"],
                json!(response.status),
                "{what}: problem status"
            );
            assert_eq!(
                body["request_id"],
                json!(request_id),
                "{what}: problem request_id"
            );
            assert!(
                !body["detail"].as_str().unwrap_or_default().is_empty(),
                "{what}: detail"
            );
        }

        let operation = self.template_for(path).and_then(|template| {
            let operation = &self.document["paths"][&template][method];
            operation.is_object().then(|| (template, operation.clone()))
        });
        let Some((template, operation)) = operation else {
            // Only the router's own answers are outside the document.
            assert!(
                matches!(response.status, 404 | 405),
                "{what}: undocumented operation"
            );
            let key = "#/components/schemas/Problem".to_owned();
            let schema = json!({ "$ref": key });
            self.validate(&key, &schema, &response.body, &what);
            return;
        };
        let status = response.status.to_string();
        let declared = &operation["responses"][&status];
        assert!(
            declared.is_object(),
            "{what}: status {status} is not declared for {} {template}",
            method.to_uppercase()
        );
        let content = declared["content"].as_object();
        match (content, content_type) {
            (None, _) => assert!(response.body.is_null(), "{what}: undeclared body"),
            (Some(content), Some(content_type)) => {
                let media = content.get(&content_type).unwrap_or_else(|| {
                    panic!("{what}: content type {content_type} is not declared")
                });
                let key = format!("{method} {template} {status} {content_type}");
                self.validate(&key, &media["schema"], &response.body, &what);
            }
            (Some(_), None) => panic!("{what}: no content type"),
        }
    }

    fn validate(&self, key: &str, schema: &Value, body: &Value, what: &str) {
        let validator = {
            let mut validators = self.validators.lock().expect("not poisoned");
            validators
                .entry(key.to_owned())
                .or_insert_with(|| {
                    // The response schema, with the document's components
                    // beside it so that `#/components/schemas/…` resolves.
                    let root = json!({
                        "$schema": "https://json-schema.org/draft/2020-12/schema",
                        "components": self.document["components"],
                        "allOf": [schema],
                    });
                    let validator = jsonschema::options()
                        .should_validate_formats(true)
                        .build(&root)
                        .unwrap_or_else(|err| panic!("{what}: invalid schema: {err}"));
                    Arc::new(validator)
                })
                .clone()
        };
        let errors: Vec<String> = validator
            .iter_errors(body)
            .map(|err| format!("{} at {}", err, err.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{what}: the body does not match the OpenAPI document:\n  {}\nbody: {body}",
            errors.join("\n  ")
        );
    }
}
