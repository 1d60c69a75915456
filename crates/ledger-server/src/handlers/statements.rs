//! Account statements, streamed: the response starts once the window is
//! checked and the opening balance known, then carries the lines batch by
//! batch as the store reads them, so a statement of any length takes
//! constant memory in the server.

use actix_web::web::Bytes;
use actix_web::{web, HttpResponse};
use ledger_store::StatementReader;
use uuid::Uuid;

use crate::auth::Caller;
use crate::dto::{StatementParams, StatementRecord, StatementWriter};
use crate::error::{ApiError, Problem};
use crate::handlers::responses::AccountNotFound;
use crate::handlers::AppState;

/// An account's statement for the window `[from, to)`: the opening balance
/// (everything before `from`), every transfer in the window oldest first
/// with the running balance, and the closing balance. CSV columns:
/// `record` (`opening`, `transfer` or `closing`), `created_at` (the
/// transfer's time; the window's start for `opening`, its end for
/// `closing`), `transfer_id`, `direction` (`in`/`out`), `counterparty`
/// (the other account), `amount` (positive), `balance` (the account's
/// balance after the record), `metadata` (the transfer's metadata as JSON
/// text, quoted). JSON Lines carries the same records as
/// `StatementRecord` objects. Only a complete statement ends with its
/// `closing` record: a statement cut short by an error after the first byte
/// lacks it. The window must be final (`to` at or before the final
/// horizon), so a statement never changes once issued.
#[utoipa::path(
    get,
    path = "/accounts/{id}/statement",
    tag = "accounts",
    params(("id" = Uuid, Path, description = "The account id."), StatementParams),
    responses(
        (status = 200, description = "The statement, streamed; complete only if it ends with its `closing` record.",
            content(
                (String = "text/csv", example = "record,created_at,transfer_id,direction,counterparty,amount,balance,metadata\r\nopening,2026-01-01T00:00:00Z,,,,,100.00,\r\ntransfer,2026-01-01T10:00:00.123456Z,0193a4a6-5f1e-7c36-9d1c-2f0b8e6f4a10,out,0193a4a6-5f1e-7c36-9d1c-2f0b8e6f4a11,30.00,70.00,\"{\"\"order_id\"\":\"\"A-17\"\"}\"\r\nclosing,2026-01-02T00:00:00Z,,,,,70.00,\r\n"),
                (StatementRecord = "application/jsonl"),
            )),
        (status = 400, description = "`invalid_request`: bad id, missing or malformed `from`/`to`, unknown `format`, unknown parameter.",
            body = Problem, content_type = "application/problem+json"),
        AccountNotFound,
        (status = 422, description = "`validation_failed`: `from` is not before `to`, or `to` is after the final horizon (retry once it has passed).",
            body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn statement(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    params: web::Query<StatementParams>,
) -> Result<HttpResponse, ApiError> {
    let account = caller.account(*id)?;
    let (from, to) = (params.from.get(), params.to.get());
    if from >= to {
        return Err(ApiError::validation(format!(
            "the window [from, to) is empty: from ({}) must be before to ({})",
            from.to_rfc3339(),
            to.to_rfc3339()
        )));
    }
    let format = params.format.unwrap_or_default();
    // Everything that can be refused is refused here, before the first byte.
    let reader = state.ledger.open_statement(account, from, to).await?;
    let writer = StatementWriter {
        format,
        currency: reader.currency,
    };
    let mut head = String::new();
    writer.opening(from, reader.opening, &mut head);
    let body = futures::stream::unfold(Some((reader, Some(head))), move |progress| async move {
        let (reader, head) = progress?;
        match head {
            Some(head) => Some((Ok(Bytes::from(head)), Some((reader, None)))),
            None => next_chunk(writer, reader).await,
        }
    });
    Ok(HttpResponse::Ok()
        .content_type(format.content_type())
        .streaming(body))
}

/// The next piece of the body: a batch of lines, or the closing record
/// (then the end). An error ends the body without the closing record; the
/// client sees an incomplete statement, and the log says why.
async fn next_chunk(
    writer: StatementWriter,
    mut reader: StatementReader,
) -> Option<(
    Result<Bytes, std::io::Error>,
    Option<(StatementReader, Option<String>)>,
)> {
    match reader.next_batch().await {
        Ok(lines) if lines.is_empty() => {
            let mut out = String::new();
            writer.closing(reader.to, reader.balance(), reader.lines(), &mut out);
            Some((Ok(Bytes::from(out)), None))
        }
        Ok(lines) => {
            let mut out = String::with_capacity(lines.len() * 256);
            for line in lines {
                writer.line(line, &mut out);
            }
            Some((Ok(Bytes::from(out)), Some((reader, None))))
        }
        Err(err) => {
            // Debug shows the cause (the database's message), which Display
            // keeps to one line; this is the one place it is logged.
            tracing::error!(
                error = ?err,
                statement.lines = reader.lines(),
                "a statement stopped after its first byte"
            );
            // actix ends the response without its last chunk: the client
            // sees a broken transfer, never a well-formed short body.
            Some((Err(std::io::Error::other(err.to_string())), None))
        }
    }
}
