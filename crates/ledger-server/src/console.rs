//! The web console at `/console/`: a few static files (HTML, CSS, JavaScript
//! modules) compiled into the binary, so that the service needs no second
//! server, no CDN and no build step. The pages hold no ledger data and load
//! without a key; the scripts call the API with the key the person signs in
//! with, kept in the tab's `sessionStorage`.
//!
//! Every console response carries a strict Content-Security-Policy: scripts
//! and styles only from these files (no inline code, no other origin), so a
//! string that found its way into the page (an account's metadata, say)
//! cannot run and read the key.
//!
//! Not operations of the API document, like `/docs/`.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use ledger_domain::CURRENCIES;
use utoipa::openapi::path::HttpMethod;

use crate::error::{ApiError, ErrorCode};
use crate::routes;

/// The policy of every console response (see the module documentation).
/// `img-src data:` for the inline favicon; `form-action 'self'` although
/// the forms are sent by script, so that one without its script cannot post
/// elsewhere.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'self'";

/// The console's files: (name under `/console/`, content type, bytes).
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("../console/index.html"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../console/style.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../console/app.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../console/api.js"),
    ),
    (
        "money.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../console/money.js"),
    ),
    (
        "dom.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../console/dom.js"),
    ),
    (
        "accounts.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../console/accounts.js"),
    ),
    (
        "account.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../console/account.js"),
    ),
    (
        "move.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../console/move.js"),
    ),
    (
        "journal.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../console/journal.js"),
    ),
];

/// The console's resources: `/console` (a redirect, since the pages use
/// relative links) and its files.
pub fn resources() -> Vec<actix_web::Resource> {
    vec![
        routes::resource(
            "/console",
            vec![(
                HttpMethod::Get,
                routes::actix_route(&HttpMethod::Get).to(|| async {
                    HttpResponse::PermanentRedirect()
                        .insert_header((header::LOCATION, "/console/"))
                        .finish()
                }),
            )],
        ),
        routes::resource(
            "/console/{asset:.*}",
            vec![(
                HttpMethod::Get,
                routes::actix_route(&HttpMethod::Get).to(asset),
            )],
        ),
    ]
}

/// One file of the console; `/console/` is its page.
async fn asset(req: HttpRequest, name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let name = match name.as_str() {
        "" => "index.html",
        other => other,
    };
    let (content_type, body) = if name == "currencies.json" {
        ("application/json", currencies_json().into_bytes())
    } else {
        let (_, content_type, bytes) = ASSETS
            .iter()
            .find(|(asset, _, _)| *asset == name)
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::NotFound,
                    format!("no console file at {}", req.path()),
                )
            })?;
        (*content_type, bytes.to_vec())
    };
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        // The files change with the binary; revalidating costs one small
        // request each and never serves an old script to a new server.
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body))
}

/// The decimals of every currency, from the domain's own table, so that
/// the console shows and checks amounts with the same scale the ledger
/// enforces: `{"USD": 2, "JPY": 0, …}`.
fn currencies_json() -> String {
    let table: serde_json::Map<String, serde_json::Value> = CURRENCIES
        .iter()
        .map(|&(code, _, minor_units)| (code.to_owned(), minor_units.into()))
        .collect();
    serde_json::Value::Object(table).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_currency_table_gives_each_currency_its_decimals() {
        let table: serde_json::Value = serde_json::from_str(&currencies_json()).expect("JSON");
        assert_eq!(table["USD"], 2);
        assert_eq!(table["JPY"], 0);
        assert_eq!(table["KWD"], 3);
        assert_eq!(
            table.as_object().map(serde_json::Map::len),
            Some(CURRENCIES.len())
        );
    }
}
