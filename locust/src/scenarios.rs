//! The goose scenarios. Every request goes through [`call`], which records
//! it, tells expected domain answers from real errors, and leaves every
//! non-2xx a failure in goose's own metrics.

use std::time::Instant;

use chrono::{SecondsFormat, Utc};
use goose::goose::GooseResponse;
use goose::prelude::*;
use rand::Rng;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::auth::authenticate;
use crate::cli::{ScenarioKind, WaitRange};
use crate::setup::is_positive;
use crate::state::shared_state;
use crate::stats::{Kind, Outcome};

/// The goose scenario of `kind`, with a pause after each transaction when
/// `wait` is set.
pub fn scenario(kind: ScenarioKind, wait: Option<WaitRange>) -> Result<Scenario, GooseError> {
    // Sequenced, so it runs before every other on-start transaction.
    let mut scenario = Scenario::new(kind.name()).register_transaction(
        transaction!(authenticate)
            .set_sequence(1)
            .set_on_start()
            .set_name("authenticate"),
    );
    if let Some(wait) = wait {
        scenario = scenario.set_wait_time(wait.min, wait.max)?;
    }
    let scenario = match kind {
        ScenarioKind::Classic => scenario
            .register_transaction(
                transaction!(open_own_account)
                    .set_on_start()
                    .set_name("open own account"),
            )
            .register_transaction(
                transaction!(check_own_balance)
                    .set_weight(3)?
                    .set_name("check own balance"),
            )
            .register_transaction(
                transaction!(transfer_to_another_user)
                    .set_weight(1)?
                    .set_name("transfer 1.00 to another user"),
            ),
        ScenarioKind::Cards => scenario
            .register_transaction(
                transaction!(open_own_account)
                    .set_on_start()
                    .set_name("open own account"),
            )
            .register_transaction(
                transaction!(check_own_balance)
                    .set_weight(2)?
                    .set_name("check own balance"),
            )
            .register_transaction(
                transaction!(authorize_a_payment)
                    .set_weight(1)?
                    .set_name("authorize a payment"),
            )
            .register_transaction(
                transaction!(settle_the_payment)
                    .set_weight(1)?
                    .set_name("settle the payment"),
            ),
        ScenarioKind::Hot | ScenarioKind::Throughput => scenario
            .register_transaction(transaction!(start).set_on_start().set_name("start"))
            .register_transaction(
                transaction!(transfer_within_pool).set_name("transfer within the pool"),
            ),
        ScenarioKind::Batch => scenario
            .register_transaction(transaction!(start).set_on_start().set_name("start"))
            .register_transaction(
                transaction!(batch_within_pool).set_name("batch within the pool"),
            ),
        ScenarioKind::Deposits => scenario
            .register_transaction(transaction!(start).set_on_start().set_name("start"))
            .register_transaction(
                transaction!(deposit_into_pool).set_name("deposit into the pool"),
            ),
        ScenarioKind::Asof => scenario
            .register_transaction(transaction!(start).set_on_start().set_name("start"))
            .register_transaction(
                transaction!(balance_at_past_time)
                    .set_weight(3)?
                    .set_name("balance at a past time"),
            )
            .register_transaction(
                transaction!(transfer_within_pool)
                    .set_weight(1)?
                    .set_name("transfer within the pool"),
            ),
        ScenarioKind::Journal => scenario
            .register_transaction(
                transaction!(start_with_a_transfer)
                    .set_on_start()
                    .set_name("start with a transfer"),
            )
            .register_transaction(
                transaction!(proof_of_own_transfer)
                    .set_weight(4)?
                    .set_name("proof of own transfer"),
            )
            .register_transaction(
                transaction!(read_an_account)
                    .set_weight(1)?
                    .set_name("read an account"),
            ),
    };
    Ok(scenario)
}

/// The account a classic or cards user opened, kept in its session (goose
/// keeps one value per user), and a cards user's authorization waiting to
/// be settled.
#[derive(Clone)]
struct OwnAccount {
    id: Uuid,
    pending_hold: Option<Uuid>,
}

/// Classic, on start: open an account with the initial balance and offer it
/// to the other users as a destination.
async fn open_own_account(user: &mut GooseUser) -> TransactionResult {
    let result = open_account(user).await;
    // Started, whether or not the open worked: the ramp-up is over for this
    // user, and a failed open is retried by its next transaction.
    shared_state().user_started();
    result.map(drop)
}

async fn open_account(user: &mut GooseUser) -> Result<Uuid, Box<TransactionError>> {
    let shared = shared_state();
    let body = json!({ "initial_balance": shared.initial_balance });
    let value = call(
        user,
        Kind::Open,
        GooseMethod::Post,
        "/accounts",
        "/accounts",
        Some(&body),
    )
    .await?;
    let Some(id) = value
        .get("id")
        .and_then(Value::as_str)
        .and_then(|id| id.parse::<Uuid>().ok())
    else {
        // call() recorded the request as a success; the answer says otherwise.
        shared.recorder.error(
            "201 POST /accounts without an id".to_owned(),
            value.to_string(),
        );
        return Err(Box::new(TransactionError::Custom(
            "201 POST /accounts without an id".to_owned(),
        )));
    };
    if is_positive(&shared.initial_balance) {
        shared.recorder.created_row();
    }
    user.set_session_data(OwnAccount {
        id,
        pending_hold: None,
    });
    shared.add_account(id);
    Ok(id)
}

/// The user's own account, opening it again if the on-start open failed.
async fn own_account(user: &mut GooseUser) -> Result<Uuid, Box<TransactionError>> {
    match user.get_session_data::<OwnAccount>() {
        Some(own) => Ok(own.id),
        None => open_account(user).await,
    }
}

/// Classic, weight 3: the user's own balance.
async fn check_own_balance(user: &mut GooseUser) -> TransactionResult {
    let own = own_account(user).await?;
    let path = format!("/accounts/{own}/balance");
    get(user, Kind::Balance, &path, "/accounts/{id}/balance").await
}

/// Classic, weight 1: 1.00 to another user's account.
async fn transfer_to_another_user(user: &mut GooseUser) -> TransactionResult {
    let own = own_account(user).await?;
    let Some(destination) = shared_state().random_account_except(Some(own)) else {
        // The first user to start has nobody to pay yet.
        return Ok(());
    };
    transfer(user, own, destination).await
}

/// Cards, weight 1: a hold of `--amount` to another user, unless one is
/// waiting to be settled already.
async fn authorize_a_payment(user: &mut GooseUser) -> TransactionResult {
    let own = own_account(user).await?;
    if pending_hold(user).is_some() {
        return Ok(());
    }
    let Some(merchant) = shared_state().random_account_except(Some(own)) else {
        return Ok(());
    };
    let body = json!({
        "source": own,
        "destination": merchant,
        "amount": shared_state().amount,
    });
    // A hold is a row of the log (it moves nothing).
    let hold = post(user, Kind::Hold, "/holds", "/holds", &body, 1).await?;
    let id = hold
        .get("id")
        .and_then(Value::as_str)
        .and_then(|id| id.parse().ok());
    if let Some(own) = user.get_session_data_mut::<OwnAccount>() {
        own.pending_hold = id;
    }
    Ok(())
}

fn pending_hold(user: &GooseUser) -> Option<Uuid> {
    user.get_session_data::<OwnAccount>()?.pending_hold
}

/// Cards, weight 1: the waiting authorization captured (9 in 10) or voided.
async fn settle_the_payment(user: &mut GooseUser) -> TransactionResult {
    let Some(hold) = pending_hold(user) else {
        return Ok(());
    };
    if let Some(own) = user.get_session_data_mut::<OwnAccount>() {
        own.pending_hold = None;
    }
    let result = if rand::thread_rng().gen_range(0..10) < 9 {
        let path = format!("/holds/{hold}/capture");
        post(
            user,
            Kind::Capture,
            &path,
            "/holds/{id}/capture",
            &json!({}),
            1,
        )
        .await
    } else {
        let path = format!("/holds/{hold}/void");
        // A void is a resolution, not a row of the log.
        post(user, Kind::Void, &path, "/holds/{id}/void", &json!({}), 0).await
    };
    result.map(drop)
}

/// Hot, throughput and as-of, on start: nothing to open, but the steady
/// state begins once every user has started.
async fn start(_user: &mut GooseUser) -> TransactionResult {
    shared_state().user_started();
    Ok(())
}

/// Hot and throughput: one transfer between two accounts of the pool,
/// picked uniformly or with the hot scenario's skew.
async fn transfer_within_pool(user: &mut GooseUser) -> TransactionResult {
    let Some((source, destination)) = shared_state().pick_pair() else {
        return Ok(());
    };
    transfer(user, source, destination).await
}

/// Batch: one atomic batch of `--batch-legs` transfers of `--amount`, each
/// between two random accounts of the pool. Every leg is a row.
async fn batch_within_pool(user: &mut GooseUser) -> TransactionResult {
    let shared = shared_state();
    let legs: Vec<Value> = (0..shared.batch_legs)
        .filter_map(|_| shared.pick_pair())
        .map(|(source, destination)| {
            json!({ "source": source, "destination": destination, "amount": shared.amount })
        })
        .collect();
    if legs.is_empty() {
        return Ok(());
    }
    let rows = legs.len();
    let body = json!({ "transfers": legs });
    post(user, Kind::Batch, "/batches", "/batches", &body, rows)
        .await
        .map(drop)
}

/// Deposits: `--amount` into a random account of the pool. Recorded as a
/// transfer: a deposit is one transfer row, out of the system account, and
/// the run's transfers/s is the figure to compare with the other scenarios.
async fn deposit_into_pool(user: &mut GooseUser) -> TransactionResult {
    let shared = shared_state();
    let Some(account) = shared.random_account_except(None) else {
        return Ok(());
    };
    let body = json!({ "amount": shared.amount });
    let path = format!("/accounts/{account}/deposits");
    post(
        user,
        Kind::Transfer,
        &path,
        "/accounts/{id}/deposits",
        &body,
        1,
    )
    .await
    .map(drop)
}

/// As-of, weight 3: the balance of a random account at a random time
/// between a little before the accounts were opened and now.
async fn balance_at_past_time(user: &mut GooseUser) -> TransactionResult {
    let shared = shared_state();
    let Some(account) = shared.random_account_except(None) else {
        return Ok(());
    };
    let span_us = (Utc::now() - shared.history_from)
        .num_microseconds()
        .unwrap_or(0)
        .max(1);
    let offset = chrono::Duration::microseconds(rand::thread_rng().gen_range(0..span_us));
    let at = (shared.history_from + offset).to_rfc3339_opts(SecondsFormat::Micros, true);
    let path = format!("/accounts/{account}/balance?at={at}");
    get(user, Kind::BalanceAt, &path, "/accounts/{id}/balance?at=").await
}

/// The transfer a journal user asks proofs of, kept in its session.
#[derive(Clone)]
struct OwnTransfer(Uuid);

/// Journal, on start: one transfer within the pool, to prove later.
async fn start_with_a_transfer(user: &mut GooseUser) -> TransactionResult {
    shared_state().user_started();
    let Some((source, destination)) = shared_state().pick_pair() else {
        return Ok(());
    };
    let value = post_transfer(user, source, destination).await?;
    if let Some(id) = value
        .get("id")
        .and_then(Value::as_str)
        .and_then(|id| id.parse().ok())
    {
        user.set_session_data(OwnTransfer(id));
    }
    Ok(())
}

/// Journal, weight 4: the inclusion proof of the user's transfer (422
/// `validation_failed` until the final horizon has passed it).
async fn proof_of_own_transfer(user: &mut GooseUser) -> TransactionResult {
    let Some(OwnTransfer(id)) = user.get_session_data::<OwnTransfer>().cloned() else {
        return start_with_a_transfer(user).await;
    };
    let path = format!("/transfers/{id}/proof");
    get(user, Kind::Proof, &path, "/transfers/{id}/proof").await
}

/// Journal, weight 1: an account of the pool, the probe of how other
/// requests fare while proofs are computed.
async fn read_an_account(user: &mut GooseUser) -> TransactionResult {
    let Some(account) = shared_state().random_account_except(None) else {
        return Ok(());
    };
    let path = format!("/accounts/{account}");
    get(user, Kind::Account, &path, "/accounts/{id}").await
}

async fn transfer(user: &mut GooseUser, source: Uuid, destination: Uuid) -> TransactionResult {
    post_transfer(user, source, destination).await.map(drop)
}

/// One transfer of `--amount`, one row; gives the answer.
async fn post_transfer(
    user: &mut GooseUser,
    source: Uuid,
    destination: Uuid,
) -> Result<Value, Box<TransactionError>> {
    let body = json!({
        "source": source,
        "destination": destination,
        "amount": shared_state().amount,
    });
    post(user, Kind::Transfer, "/transfers", "/transfers", &body, 1).await
}

/// `GET path` through [`call`] (`name` in the metrics), for its status
/// alone.
async fn get(user: &mut GooseUser, kind: Kind, path: &str, name: &str) -> TransactionResult {
    call(user, kind, GooseMethod::Get, path, name, None)
        .await
        .map(drop)
}

/// `POST body` to `path` through [`call`], a write of `rows` transfer rows,
/// recorded as created once it succeeds; gives the answer.
async fn post(
    user: &mut GooseUser,
    kind: Kind,
    path: &str,
    name: &str,
    body: &Value,
    rows: usize,
) -> Result<Value, Box<TransactionError>> {
    let value = call(user, kind, GooseMethod::Post, path, name, Some(body)).await?;
    for _ in 0..rows {
        shared_state().recorder.created_row();
    }
    Ok(value)
}

/// Sends one request and reads the whole response. A 2xx gives its JSON
/// body. Anything else is recorded, as an expected domain answer when the
/// scenario lists its problem `code`, as a real error otherwise, and fails
/// the transaction (goose counts every non-2xx as a failed request itself).
async fn call(
    user: &mut GooseUser,
    kind: Kind,
    method: GooseMethod,
    path: &str,
    name: &str,
    body: Option<&Value>,
) -> Result<Value, Box<TransactionError>> {
    let shared = shared_state();
    let recorder = &shared.recorder;
    let mut builder = user.get_request_builder(&method, path)?;
    if let Some(body) = body {
        builder = builder.json(body);
    }
    let request = GooseRequest::builder()
        .method(method)
        .path(path)
        .name(name)
        .set_request_builder(builder)
        .build();
    let started = Instant::now();
    let GooseResponse {
        request: mut metric,
        response,
    } = user.request(request).await?;
    let failed = |metric| {
        Box::new(TransactionError::RequestFailed {
            raw_request: Box::new(metric),
        })
    };

    let response = match response {
        Ok(response) => response,
        Err(err) => {
            recorder.record(kind, started, Outcome::Error);
            let what = if err.is_timeout() {
                "timeout"
            } else if err.is_connect() {
                "connection refused or reset"
            } else {
                "transport error"
            };
            recorder.error(format!("{name}: {what}"), format!("{name}: {err}"));
            return Err(failed(metric));
        }
    };
    let status = response.status();
    let text = match response.text().await {
        Ok(text) => text,
        Err(err) => {
            recorder.record(kind, started, Outcome::Error);
            recorder.error(
                format!("{name}: body not read"),
                format!("{name} {status}: {err}"),
            );
            return user
                .set_failure("body not read", &mut metric, None, None)
                .map(|()| Value::Null);
        }
    };
    let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);

    if status.is_success() {
        if value.is_null() {
            recorder.record(kind, started, Outcome::Error);
            recorder.error(
                format!("{status} {name}: not JSON"),
                format!("{name} {status}: {text}"),
            );
            return user
                .set_failure("not JSON", &mut metric, None, Some(&text))
                .map(|()| Value::Null);
        }
        recorder.record(kind, started, Outcome::Ok);
        return Ok(value);
    }

    let code = value.get("code").and_then(Value::as_str).unwrap_or("-");
    let label = format!("{} {name} {code}", status.as_u16());
    if shared.scenario.expected_codes().contains(&code) && status.is_client_error() {
        recorder.record(kind, started, Outcome::Expected);
        recorder.expected(label);
    } else {
        recorder.record(kind, started, Outcome::Error);
        recorder.error(label, format!("{name} {status}: {text}"));
    }
    Err(failed(metric))
}
