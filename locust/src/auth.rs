//! The API key every simulated user and the setup send. The service wants
//! `Authorization: Bearer <key>` on every call (`LEDGER_AUTH=off` aside);
//! the key comes from `LEDGER_API_KEY` (`scripts/load.sh` and
//! `scripts/bench.sh` make one), so it never shows in a command line.

use std::sync::OnceLock;
use std::time::Duration;

use goose::prelude::{GooseUser, TransactionResult};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};

static HEADERS: OnceLock<HeaderMap> = OnceLock::new();

/// Reads `LEDGER_API_KEY` once; without it, requests carry no key.
pub fn init() -> anyhow::Result<()> {
    let mut headers = HeaderMap::new();
    if let Ok(key) = std::env::var("LEDGER_API_KEY") {
        let mut value = HeaderValue::from_str(&format!("Bearer {}", key.trim()))
            .map_err(|_| anyhow::anyhow!("LEDGER_API_KEY is not a valid header value"))?;
        value.set_sensitive(true);
        headers.insert(AUTHORIZATION, value);
    }
    // A second call keeps the first value; both read the same variable.
    let _ = HEADERS.set(headers);
    Ok(())
}

/// The headers to send with every request.
pub fn headers() -> HeaderMap {
    HEADERS.get().cloned().unwrap_or_default()
}

/// The first thing every simulated user does: a client that sends the key.
/// Goose's own client otherwise, as goose builds it (60 s timeout).
pub async fn authenticate(user: &mut GooseUser) -> TransactionResult {
    let builder = reqwest::Client::builder()
        .default_headers(headers())
        .timeout(Duration::from_secs(60));
    user.set_client_builder(builder).await?;
    Ok(())
}
