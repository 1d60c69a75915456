//! What every request shares: problem+json errors, request ids, routing
//! errors, body limits, content types and CORS.

use ledger_testkit::service::{
    spawn_app, spawn_app_with, spawn_app_with_accounts, ApiResponse, TestApp,
};
use reqwest::{Method, RequestBuilder};
use serde_json::json;

/// `GET path` with one header `name: value`, checked.
async fn get_with_header(app: &TestApp, path: &str, name: &str, value: &str) -> ApiResponse {
    app.send(app.request(Method::GET, path).header(name, value))
        .await
}

/// `POST /accounts` with `body` as it is, declared as JSON.
fn json_text(app: &TestApp, body: &'static str) -> RequestBuilder {
    app.request(Method::POST, "/accounts")
        .header("content-type", "application/json")
        .body(body)
}

#[tokio::test]
async fn errors_are_problem_documents_with_the_request_id() {
    let app = spawn_app().await;

    let response = app
        .get("/accounts/01937a1e-5b4c-7d2f-9a3b-2c4d5e6f7a8b")
        .await;

    response.expect_problem(404, "account_not_found");
    assert_eq!(
        response.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(response.body["type"], "/problems/account_not_found");
    assert_eq!(response.body["title"], "Account not found");
    assert_eq!(response.body["status"], 404);
    assert_eq!(
        response.body["request_id"].as_str(),
        response.header("x-request-id")
    );
}

#[tokio::test]
async fn a_client_request_id_is_echoed_in_the_header_and_the_problem() {
    let app = spawn_app().await;

    let ok = get_with_header(&app, "/health", "X-Request-ID", "trace-abc-123").await;
    let problem = get_with_header(&app, "/accounts/42", "X-Request-ID", "trace-def-456").await;

    assert_eq!(ok.header("x-request-id"), Some("trace-abc-123"));
    assert_eq!(problem.header("x-request-id"), Some("trace-def-456"));
    assert_eq!(problem.body["request_id"], "trace-def-456");
}

#[tokio::test]
async fn a_request_id_is_generated_when_none_or_an_unusable_one_is_sent() {
    let app = spawn_app().await;
    let too_long = "r".repeat(129);
    let cases = [
        (None, "no header"),
        (Some("has spaces"), "not visible ASCII"),
        (Some(too_long.as_str()), "over 128 characters"),
    ];
    let mut ids = Vec::new();
    for (sent, why) in cases {
        let mut request = app.request(Method::GET, "/health");
        if let Some(sent) = sent {
            request = request.header("X-Request-ID", sent);
        }
        let response = app.send(request).await;
        let id = response.header("x-request-id").expect("an id").to_owned();
        let parsed =
            uuid::Uuid::parse_str(&id).unwrap_or_else(|_| panic!("{why}: {id} is no UUID"));
        assert_eq!(parsed.get_version_num(), 7, "{why}: a UUIDv7");
        ids.push(id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 3, "each request gets its own id");
}

#[tokio::test]
async fn an_unknown_route_is_a_not_found_problem() {
    let app = spawn_app().await;
    for path in [
        "/nope",
        "/accounts/01937a1e-5b4c-7d2f-9a3b-2c4d5e6f7a8b/nope",
        "/accounts/",
    ] {
        app.get(path).await.expect_problem(404, "not_found");
    }
}

#[tokio::test]
async fn a_wrong_method_is_a_method_not_allowed_problem_listing_the_allowed_ones() {
    let app = spawn_app().await;
    let cases = [
        (Method::PUT, "/accounts", "POST, GET, HEAD"),
        (Method::POST, "/health", "GET, HEAD"),
        (
            Method::PATCH,
            "/accounts/01937a1e-5b4c-7d2f-9a3b-2c4d5e6f7a8b",
            "GET, HEAD, DELETE",
        ),
        (Method::DELETE, "/transfers", "POST, GET, HEAD"),
        (Method::GET, "/holds", "POST"),
        (Method::POST, "/openapi.json", "GET, HEAD"),
        (Method::DELETE, "/docs/index.html", "GET, HEAD"),
    ];
    for (method, path, allow) in cases {
        let response = app.send(app.request(method.clone(), path)).await;
        response.expect_problem(405, "method_not_allowed");
        assert_eq!(response.header("allow"), Some(allow), "{method} {path}");
    }
}

#[tokio::test]
async fn a_body_over_the_limit_is_too_large() {
    let app = spawn_app_with(|api| api.body_limit_bytes = 1024).await;
    let body = json!({ "metadata": { "blob": "x".repeat(2048) } });

    let response = app.post("/accounts", &body).await;

    response.expect_problem(413, "payload_too_large");
}

#[tokio::test]
async fn a_body_over_the_default_limit_of_64_kib_is_too_large() {
    let app = spawn_app().await;
    let body = json!({ "metadata": { "blob": "x".repeat(65 * 1024) } });
    app.post("/accounts", &body)
        .await
        .expect_problem(413, "payload_too_large");
}

#[tokio::test]
async fn a_body_that_is_not_json_is_an_unsupported_media_type() {
    let app = spawn_app().await;
    let cases = [
        (Some("text/plain"), "plain text"),
        (
            Some("application/x-www-form-urlencoded"),
            "a form (curl -d without a type)",
        ),
        (None, "no content type at all"),
    ];
    for (content_type, why) in cases {
        let mut request = app.request(Method::POST, "/accounts").body("{}");
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = app.send(request).await;
        response.expect_refusal(415, "unsupported_media_type", why);
    }
}

#[tokio::test]
async fn malformed_json_is_a_bad_request() {
    let app = spawn_app().await;
    let cases = [
        ("", "an empty body"),
        ("{", "truncated JSON"),
        ("{\"currency\": \"USD\",}", "a trailing comma"),
        ("not json", "not JSON at all"),
    ];
    for (body, why) in cases {
        let response = app.send(json_text(&app, body)).await;
        response.expect_refusal(400, "invalid_request", why);
    }
}

#[tokio::test]
async fn cors_is_off_unless_origins_are_configured() {
    let app = spawn_app().await;
    let response = get_with_header(&app, "/health", "Origin", "https://app.example").await;
    assert_eq!(response.header("access-control-allow-origin"), None);
}

#[tokio::test]
async fn configured_origins_get_cors_headers() {
    let app = spawn_app_with(|api| api.cors_origins = vec!["https://app.example".to_owned()]).await;
    let response = get_with_header(&app, "/health", "Origin", "https://app.example").await;
    assert_eq!(
        response.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    let exposed = response
        .header("access-control-expose-headers")
        .unwrap_or_default()
        .to_lowercase();
    assert!(exposed.contains("x-request-id"), "{exposed}");
}

#[tokio::test]
async fn every_get_route_answers_head_with_the_same_status_and_headers_and_no_body() {
    let (app, [a, b]) = spawn_app_with_accounts(["5.00", "0"]).await;
    let transfer = app.transfer(&a, &b, json!("1.00")).await;
    let id = transfer.str("id");
    // The proof answers 422 until the final horizon passes the transfer;
    // wait for that, or GET and HEAD could straddle the moment it does.
    for _ in 0..200 {
        if app.get(&format!("/transfers/{id}/proof")).await.status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let paths = [
        "/health".to_owned(),
        "/ready".to_owned(),
        "/accounts".to_owned(),
        format!("/accounts/{a}"),
        format!("/accounts/{a}/balance"),
        format!("/accounts/{a}/transfers"),
        format!("/transfers/{id}"),
        format!("/transfers/{id}/proof"),
        "/journal/digest".to_owned(),
        "/openapi.json".to_owned(),
        "/docs".to_owned(),
        "/docs/".to_owned(),
        "/docs/index.html".to_owned(),
        "/accounts/not-a-uuid".to_owned(),
    ];
    for path in paths {
        let get = app.client.get(app.url(&path)).send().await.expect("GET");
        let get_status = get.status();
        let get_type = get.headers().get("content-type").cloned();
        let get_length = get.bytes().await.expect("a body").len();
        let head = app.client.head(app.url(&path)).send().await.expect("HEAD");
        assert_eq!(head.status(), get_status, "HEAD {path}");
        assert_eq!(
            head.headers().get("content-type").cloned(),
            get_type,
            "HEAD {path}"
        );
        assert!(head.headers().contains_key("x-request-id"), "HEAD {path}");
        if ["/health", "/openapi.json", "/docs/index.html"].contains(&path.as_str()) {
            assert_eq!(
                head.headers()
                    .get("content-length")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<usize>().ok()),
                Some(get_length),
                "HEAD {path} announces the GET body's length"
            );
        }
        assert!(
            head.bytes().await.expect("no body").is_empty(),
            "HEAD {path} has no body"
        );
    }
}

#[tokio::test]
async fn a_missing_docs_asset_is_a_not_found_problem() {
    let app = spawn_app().await;
    app.get("/docs/nope.js")
        .await
        .expect_problem(404, "not_found");
    let page = app.get_unchecked("/docs/index.html").await;
    assert_eq!(page.status(), 200, "the assets that exist are served");
}

#[tokio::test]
async fn a_content_encoding_other_than_identity_is_an_unsupported_media_type() {
    let app = spawn_app().await;
    let cases = [
        ("rot13", "no such coding (it used to be read as identity)"),
        ("gzip", "compressed bodies are not accepted"),
        ("br", "compressed bodies are not accepted"),
        ("identity, gzip", "a coding after identity"),
        ("x-unknown", "an unregistered coding"),
    ];
    for (coding, why) in cases {
        let request = json_text(&app, "{}").header("content-encoding", coding);
        let response = app.send(request).await;
        response.expect_refusal(415, "unsupported_media_type", why);
        assert_eq!(
            response.header("accept-encoding"),
            Some("identity"),
            "{why}"
        );
    }
    for coding in ["identity", "IDENTITY"] {
        let request = json_text(&app, "{}").header("content-encoding", coding);
        app.send(request).await.expect_status(201);
    }
}
