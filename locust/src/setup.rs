//! Opening a scenario's accounts before the load, with concurrent POSTs.
//!
//! Each account opened with a balance is a deposit from the currency's
//! system account, and deposits serialize on that account's sequence number
//! (docs/design.md): the rate printed here is that limit, not the HTTP
//! stack's.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::stream::{self, StreamExt};
use reqwest::{StatusCode, Url};
use serde_json::{json, Value};
use uuid::Uuid;

/// What opening the accounts took.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Opened {
    /// The accounts, in the order asked.
    #[serde(skip)]
    pub ids: Vec<Uuid>,
    /// Newly opened (201).
    pub created: u64,
    /// Already there (409 `account_exists`, for fixed ids).
    pub existing: u64,
    /// Wall time.
    pub seconds: f64,
    /// Accounts opened per second.
    pub per_s: f64,
}

/// Opens one account per entry of `ids` (`None`: the service picks the id)
/// with `initial_balance`. A fixed id that exists already counts as opened.
pub async fn open_accounts(
    base: &Url,
    ids: Vec<Option<Uuid>>,
    initial_balance: &str,
    concurrency: usize,
) -> anyhow::Result<Opened> {
    let client = reqwest::Client::builder()
        .default_headers(crate::auth::headers())
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(concurrency)
        .build()
        .context("Failed to build the HTTP client")?;
    let url = base
        .join("/accounts")
        .context("Failed to build the /accounts URL")?;
    let started = Instant::now();
    let total = ids.len();
    let mut ids = ids.into_iter();
    // The first funded open creates the currency's system account. It goes
    // alone: the store remembers a system account as existing before the
    // transaction that creates it commits, so opens racing with it can be
    // told the system account does not exist (404 account_not_found).
    let mut results = Vec::with_capacity(total);
    if let Some(first) = ids.next() {
        results.push(open_one(&client, &url, first, initial_balance).await);
    }
    let rest: Vec<anyhow::Result<(Uuid, bool)>> = stream::iter(ids)
        .map(|id| open_one(&client, &url, id, initial_balance))
        .buffered(concurrency.max(1))
        .collect()
        .await;
    results.extend(rest);
    let seconds = started.elapsed().as_secs_f64();

    let mut opened = Opened {
        ids: Vec::with_capacity(total),
        created: 0,
        existing: 0,
        seconds,
        per_s: 0.0,
    };
    let mut failures = Vec::new();
    for result in results {
        match result {
            Ok((id, created)) => {
                opened.ids.push(id);
                if created {
                    opened.created += 1;
                } else {
                    opened.existing += 1;
                }
            }
            Err(err) => failures.push(format!("{err:#}")),
        }
    }
    if let Some(first) = failures.first() {
        bail!(
            "{} of {total} accounts could not be opened; the first: {first}",
            failures.len()
        );
    }
    opened.per_s = if seconds > 0.0 {
        total as f64 / seconds
    } else {
        0.0
    };
    Ok(opened)
}

/// Opens one account; `Ok((id, true))` when created, `(id, false)` when a
/// fixed id existed already.
async fn open_one(
    client: &reqwest::Client,
    url: &Url,
    id: Option<Uuid>,
    initial_balance: &str,
) -> anyhow::Result<(Uuid, bool)> {
    let mut body = json!({ "initial_balance": initial_balance });
    if let Some(id) = id {
        body["id"] = json!(id);
    }
    let response = client
        .post(url.clone())
        .json(&body)
        .send()
        .await
        .context("POST /accounts failed")?;
    let status = response.status();
    let text = response
        .text()
        .await
        .context("Failed to read the response")?;
    let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    match (status, id) {
        (StatusCode::CREATED, _) => {
            let id = value
                .get("id")
                .and_then(Value::as_str)
                .and_then(|text| text.parse::<Uuid>().ok())
                .with_context(|| format!("201 without an account id: {text}"))?;
            Ok((id, true))
        }
        (StatusCode::CONFLICT, Some(id))
            if value.get("code").and_then(Value::as_str) == Some("account_exists") =>
        {
            Ok((id, false))
        }
        _ => bail!("POST /accounts answered {status}: {text}"),
    }
}

/// True when `amount` (a decimal string) is above zero: an account opened
/// with it gets an opening deposit, one row of the log.
pub fn is_positive(amount: &str) -> bool {
    let amount = amount.trim();
    !amount.starts_with('-') && amount.chars().any(|c| ('1'..='9').contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positive_amounts_are_told_apart_from_zero_and_negative_ones() {
        let cases = [
            ("1000000.00", true),
            ("0.01", true),
            ("0", false),
            ("0.00", false),
            ("-5.00", false),
            ("", false),
        ];
        for (amount, positive) in cases {
            assert_eq!(is_positive(amount), positive, "{amount:?}");
        }
    }
}
