//! The web console's files (`/console/`): served without a key, under a
//! strict Content-Security-Policy, every module the page imports present,
//! and none of it in the API document. What the console does is tested in a
//! real browser: `scripts/browser-tests.sh`.

use std::collections::BTreeSet;
use std::time::Duration;

use ledger_server::console::CONTENT_SECURITY_POLICY;
use ledger_testkit::service::{header_text, http_client, spawn_app};

#[tokio::test]
async fn the_console_is_served_without_a_key_under_a_strict_content_security_policy() {
    let app = spawn_app().await;
    let anonymous = http_client(Duration::from_secs(10));

    let redirect = anonymous
        .get(app.url("/console"))
        .send()
        .await
        .expect("GET /console");
    assert_eq!(redirect.status().as_u16(), 308);
    assert_eq!(
        header_text(redirect.headers(), "location").as_deref(),
        Some("/console/")
    );

    let page = anonymous
        .get(app.url("/console/"))
        .send()
        .await
        .expect("GET /console/");
    assert_eq!(page.status().as_u16(), 200);
    let headers = page.headers().clone();
    assert_eq!(
        header_text(&headers, "content-security-policy").as_deref(),
        Some(CONTENT_SECURITY_POLICY)
    );
    for directive in [
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(CONTENT_SECURITY_POLICY.contains(directive), "{directive}");
    }
    assert!(
        !CONTENT_SECURITY_POLICY.contains("unsafe"),
        "no unsafe-inline or unsafe-eval"
    );
    assert_eq!(
        header_text(&headers, "x-content-type-options").as_deref(),
        Some("nosniff")
    );
    let html = page.text().await.expect("a page");
    // The policy forbids inline code: the page must not need any.
    assert!(
        !html.contains("<script>") && !html.contains("style="),
        "no inline script or style"
    );
    assert!(!html.contains("://"), "nothing from another origin");
}

/// Follows every `import … from "./x.js"` from the entry module: each must be
/// served, as JavaScript, under the same policy.
#[tokio::test]
async fn every_module_the_console_imports_is_served() {
    let app = spawn_app().await;
    let anonymous = http_client(Duration::from_secs(10));
    let mut pending = vec!["app.js".to_owned()];
    let mut seen = BTreeSet::new();
    while let Some(name) = pending.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let response = anonymous
            .get(app.url(&format!("/console/{name}")))
            .send()
            .await
            .expect("a module");
        assert_eq!(response.status().as_u16(), 200, "{name}");
        assert_eq!(
            header_text(response.headers(), "content-type").as_deref(),
            Some("text/javascript; charset=utf-8"),
            "{name}"
        );
        assert!(response.headers().contains_key("content-security-policy"));
        let source = response.text().await.expect("a script");
        for line in source.lines().filter(|line| line.starts_with("import ")) {
            let module = line
                .split("from \"./")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or_else(|| panic!("{name}: an import the console does not use: {line}"));
            pending.push(module.to_owned());
        }
    }
    assert!(seen.len() >= 5, "the modules were followed: {seen:?}");

    for (path, content_type) in [
        ("/console/style.css", "text/css; charset=utf-8"),
        ("/console/currencies.json", "application/json"),
    ] {
        let response = anonymous.get(app.url(path)).send().await.expect(path);
        assert_eq!(response.status().as_u16(), 200, "{path}");
        assert_eq!(
            header_text(response.headers(), "content-type").as_deref(),
            Some(content_type)
        );
    }
    let currencies: serde_json::Value = anonymous
        .get(app.url("/console/currencies.json"))
        .send()
        .await
        .expect("currencies")
        .json()
        .await
        .expect("JSON");
    assert_eq!(currencies["USD"], 2);
    assert_eq!(currencies["JPY"], 0);
}

#[tokio::test]
async fn a_missing_console_file_is_a_404_problem_and_the_console_is_not_in_the_api_document() {
    let app = spawn_app().await;
    let missing = app.get_unchecked("/console/nothing-here.js").await;
    assert_eq!(missing.status().as_u16(), 404);
    assert_eq!(
        header_text(missing.headers(), "content-type").as_deref(),
        Some("application/problem+json")
    );
    let paths = app.document()["paths"].as_object().expect("paths");
    assert!(paths.keys().all(|path| !path.starts_with("/console")));
}
