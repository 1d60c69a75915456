//! The OpenAPI document: locked by a snapshot, and consistent with the
//! error contract. Run with `UPDATE_SNAPSHOTS=1` to accept a change.

use std::path::PathBuf;

use ledger_testkit::service::{header_text, spawn_app};
use serde_json::Value;

fn snapshot_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/openapi.json")
}

#[tokio::test]
async fn the_served_openapi_document_matches_the_snapshot() {
    let app = spawn_app().await;
    let served = app.document().clone();
    let path = snapshot_path();

    if std::env::var_os("UPDATE_SNAPSHOTS").is_some_and(|v| v == "1") {
        let text = serde_json::to_string_pretty(&served).expect("serializable") + "\n";
        std::fs::write(&path, text).expect("Failed to write the snapshot");
        return;
    }
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| {
        panic!(
            "{}: {err}; run with UPDATE_SNAPSHOTS=1 to create it",
            path.display()
        )
    });
    let snapshot: Value = serde_json::from_str(&text).expect("the snapshot is JSON");
    assert!(
        served == snapshot,
        "the served /openapi.json differs from {}; if the change is intended, \
         run `UPDATE_SNAPSHOTS=1 cargo test -p ledger-api-tests` and commit the file.\n\
         served:\n{}",
        path.display(),
        serde_json::to_string_pretty(&served).unwrap_or_default()
    );
}

#[tokio::test]
async fn the_document_is_openapi_3_1_and_lists_every_operation() {
    let app = spawn_app().await;
    let document = app.document();
    assert_eq!(document["openapi"], "3.1.0");
    let mut operations: Vec<String> = document["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("a path item")
                .keys()
                .filter(|key| ["get", "post", "delete", "put", "patch"].contains(&key.as_str()))
                .map(move |method| format!("{} {path}", method.to_uppercase()))
        })
        .collect();
    operations.sort();
    assert_eq!(
        operations,
        [
            "DELETE /accounts/{id}",
            "DELETE /keys/{id}",
            "GET /accounts",
            "GET /accounts/{id}",
            "GET /accounts/{id}/balance",
            "GET /accounts/{id}/holds",
            "GET /accounts/{id}/statement",
            "GET /accounts/{id}/transfers",
            "GET /batches/{id}",
            "GET /health",
            "GET /holds/{id}",
            "GET /journal/consistency",
            "GET /journal/digest",
            "GET /keys",
            "GET /keys/self",
            "GET /ready",
            "GET /transfers",
            "GET /transfers/{id}",
            "GET /transfers/{id}/proof",
            "POST /accounts",
            "POST /accounts/{id}/deposits",
            "POST /accounts/{id}/withdrawals",
            "POST /batches",
            "POST /holds",
            "POST /holds/{id}/capture",
            "POST /holds/{id}/void",
            "POST /keys",
            "POST /transfers",
            "POST /transfers/{id}/reversals",
            "PUT /accounts/{id}/overdraft",
        ]
    );
}

#[tokio::test]
async fn every_error_response_in_the_document_is_a_problem() {
    let app = spawn_app().await;
    let document = app.document();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            let responses = operation["responses"].as_object().expect("responses");
            let statuses: Vec<u16> = responses.keys().filter_map(|s| s.parse().ok()).collect();
            let uses_database = path != "/health";
            if uses_database {
                for status in [500, 503] {
                    if path == "/ready" && status == 500 {
                        continue;
                    }
                    assert!(
                        statuses.contains(&status),
                        "{method} {path} must declare {status}"
                    );
                }
            }
            // Every write with a body; a body-less one (a void) has no
            // body to refuse.
            if method == "post" && operation.get("requestBody").is_some() {
                for status in [400, 413, 415, 422] {
                    assert!(
                        statuses.contains(&status),
                        "{method} {path} must declare {status}"
                    );
                }
            }
            for (status, response) in responses {
                if !status.starts_with('4') && !status.starts_with('5') {
                    continue;
                }
                let content = response["content"].as_object().expect("content");
                assert_eq!(
                    content.keys().collect::<Vec<_>>(),
                    ["application/problem+json"],
                    "{method} {path} {status}"
                );
                assert_eq!(
                    content["application/problem+json"]["schema"]["$ref"],
                    "#/components/schemas/Problem",
                    "{method} {path} {status}"
                );
            }
        }
    }
}

#[tokio::test]
async fn the_interactive_docs_are_served_without_internet_access() {
    let app = spawn_app().await;
    let redirect = app.get_unchecked("/docs").await;
    assert_eq!(redirect.status().as_u16(), 308);
    assert_eq!(
        header_text(redirect.headers(), "location").as_deref(),
        Some("/docs/")
    );

    let page = app.get_unchecked("/docs/").await;
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.expect("a page");
    assert!(html.contains("swagger-ui"), "the Swagger UI page");
    assert!(!html.contains("://cdn"), "no CDN assets");

    let initializer = app.get_unchecked("/docs/swagger-initializer.js").await;
    assert_eq!(initializer.status().as_u16(), 200);
    let script = initializer.text().await.expect("a script");
    assert!(
        script.contains("/openapi.json"),
        "the UI loads our document"
    );
}
