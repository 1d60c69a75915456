//! Many clients paying from one account at once.

use futures::future::join_all;
use ledger_domain::Decimal;
use ledger_testkit::service::spawn_app;
use serde_json::json;

#[tokio::test]
async fn a_hundred_concurrent_transfers_from_one_account_never_overdraw_it() {
    let app = spawn_app().await;
    let initial = Decimal::from(60);
    let amount = Decimal::from(1);
    let source = app.funded_account(&initial.to_string()).await;
    let destinations = [app.funded_account("0").await, app.funded_account("0").await];

    let responses = join_all(
        (0..100).map(|i| app.transfer(&source, &destinations[i % 2], json!(amount.to_string()))),
    )
    .await;

    let mut successes: i64 = 0;
    let mut sequence_numbers = Vec::new();
    for response in &responses {
        assert!(
            response.status < 500,
            "no 5xx: {} {}",
            response.status,
            response.body
        );
        match response.status {
            201 => {
                successes += 1;
                sequence_numbers.push(response.body["source_seq"].as_i64().expect("source_seq"));
            }
            _ => {
                response.expect_problem(422, "insufficient_funds");
            }
        }
    }
    let expected = initial - Decimal::from(successes) * amount;
    let balance: Decimal = app.balance(&source).await.parse().expect("a decimal");
    assert_eq!(
        balance, expected,
        "final balance = initial − successes × amount"
    );
    assert!(balance >= Decimal::ZERO, "no overdraft");
    assert_eq!(
        successes, 60,
        "every transfer the balance covered went through"
    );
    sequence_numbers.sort_unstable();
    assert_eq!(
        sequence_numbers,
        (0..successes).collect::<Vec<_>>(),
        "gap-free sequence"
    );
    let mut received = Decimal::ZERO;
    for destination in &destinations {
        received += app
            .balance(destination)
            .await
            .parse::<Decimal>()
            .expect("a decimal");
    }
    assert_eq!(
        received,
        Decimal::from(successes) * amount,
        "money is conserved"
    );
}
